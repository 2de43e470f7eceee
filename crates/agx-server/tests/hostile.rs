//! Bad input against the binary, on the memory store and on PostgreSQL: each
//! gets a clear error in the JSON envelope, never a 500, never an echo of
//! what was sent; paths the router and the classifier could read differently
//! are refused by the core; connections are bounded.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{call, free_port, start_with};
use serde_json::Value;

const ADMIN: (&str, &str) = ("authorization", "Bearer test-admin-token");
const JSON: (&str, &str) = ("content-type", "application/json");

struct Api {
    base: String,
}

impl Api {
    async fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
        call(method, &format!("{}{path}", self.base), headers, body).await
    }

    async fn admin(&self, method: &str, path: &str, body: &str) -> (u16, Value) {
        let (status, text) = self.send(method, &format!("/api/admin{path}"), &[ADMIN, JSON], body).await;
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    async fn key(&self, org: &str, body: &str) -> String {
        let (status, created) = self.admin("POST", &format!("/orgs/{org}/keys"), body).await;
        assert_eq!(status, 201, "{created}");
        created["key"].as_str().unwrap().to_owned()
    }
}

/// A refusal in the envelope, with `code`, whose body holds none of `secrets`.
#[track_caller]
fn refused(reply: &(u16, String), status: u16, code: &str, secrets: &[&str]) {
    let (got, body) = reply;
    assert_eq!(*got, status, "{body}");
    let v: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body:?}"));
    assert_eq!(v["error"]["code"], code, "{body}");
    for s in secrets {
        assert!(!body.contains(s), "the body echoes {s:?}: {body}");
    }
}

async fn world(api: &Api, tag: &str) -> String {
    let org = format!("h{tag}");
    assert_eq!(api.admin("POST", "/orgs", &format!(r#"{{"id":"{org}","name":"Hostile"}}"#)).await.0, 201);
    let agent = format!(r#"{{"id":"{org}-a","name":"A","allowedDomains":["example.com"]}}"#);
    assert_eq!(api.admin("POST", &format!("/orgs/{org}/agents"), &agent).await.0, 201);
    let open = format!(r#"{{"id":"{org}-open","name":"Open"}}"#);
    assert_eq!(api.admin("POST", &format!("/orgs/{org}/agents"), &open).await.0, 201);
    org
}

async fn hostile_input_is_refused(base: String, tag: &str) {
    let api = Api { base };
    let org = world(&api, tag).await;
    let agent = format!("{org}-open");

    // Empty ids: the route is the chat route; the id names nothing; no budget is spent.
    let config_only = api.key(&org, r#"{"name":"c","scopes":["config"],"rateLimits":{"chat":1}}"#).await;
    let k = [("x-api-key", config_only.as_str()), JSON];
    for path in ["/api/public/agents//chat", "/api/public/agents//conversations/s1"] {
        for _ in 0..3 {
            let method = if path.ends_with("chat") { "POST" } else { "GET" };
            refused(
                &api.send(method, path, &k, r#"{"message":"hi","sessionId":"s"}"#).await,
                404,
                "AGENT_NOT_FOUND",
                &[],
            );
        }
    }
    refused(&api.send("POST", "/api/public/teams//chat", &k, "{}").await, 404, "TEAM_NOT_FOUND", &[]);
    let full = api.key(&org, r#"{"name":"f","rateLimits":{"chat":1}}"#).await;
    let f = [("x-api-key", full.as_str()), JSON];
    refused(&api.send("POST", "/api/public/agents//chat", &f, "{}").await, 404, "AGENT_NOT_FOUND", &[]);
    let chat = format!("/api/public/agents/{agent}/chat");
    let (status, body) = api.send("POST", &chat, &f, r#"{"message":"hi","sessionId":"s"}"#).await;
    assert_eq!(status, 200, "the refused requests spent nothing: {body}");

    // No request value in any error body: not a key, not a field, not a name.
    let key = api.key(&org, r#"{"name":"main","rateLimits":{"chat":1000,"conversations":1000}}"#).await;
    let k = [("x-api-key", key.as_str()), JSON];
    let secret = key.as_str();
    for body in [
        format!(r#"{{"message":"hi","sessionId":"s","{secret}":1}}"#),
        format!(r#"{{"message":{{"{secret}":1}},"sessionId":"s"}}"#),
        format!(r#"{{"message":"hi","sessionId":"s","metadata":"{secret}"}}"#),
        format!(r#"{{"message":"hi","sessionId":["{secret}"]}}"#),
    ] {
        refused(&api.send("POST", &chat, &k, &body).await, 400, "INVALID_REQUEST_DATA", &[secret]);
    }
    refused(&api.send("POST", &chat, &k, &format!(r#"{{"message":"{secret}"#)).await, 400, "INVALID_JSON", &[secret]);
    // Nesting past serde's recursion limit: refused, not a stack overflow.
    let deep =
        format!(r#"{{"message":"hi","sessionId":"s","metadata":{{"a":{}{}}}}}"#, "[".repeat(5000), "]".repeat(5000));
    refused(&api.send("POST", &chat, &k, &deep).await, 400, "INVALID_JSON", &[]);
    refused(
        &api.send("POST", &chat, &[("x-api-key", secret), ("content-type", "text/plain")], "hi").await,
        400,
        "INVALID_JSON",
        &[],
    );
    let big = format!(r#"{{"message":"{}","sessionId":"s"}}"#, "x".repeat(70_000));
    refused(&api.send("POST", &chat, &k, &big).await, 413, "PAYLOAD_TOO_LARGE", &[]);
    let (status, body) =
        api.admin("POST", &format!("/orgs/{org}/keys"), &format!(r#"{{"name":"n","scopes":["{secret}"]}}"#)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("INVALID_REQUEST_DATA")));
    assert!(!body.to_string().contains(secret), "{body}");

    // Text no store can hold: 400 on every store, before the database.
    for body in [
        r#"{"message":"a\u0000b","sessionId":"s"}"#,
        r#"{"message":"hi","sessionId":"\u0000"}"#,
        r#"{"message":"hi","sessionId":"s","visitorName":"x\u0000"}"#,
        r#"{"message":"hi","sessionId":"s","metadata":{"k":"\u0000"}}"#,
        r#"{"message":"hi","sessionId":"s","metadata":{"\u0000":1}}"#,
        r#"{"message":"hi","sessionId":"s","metadata":{"a":[{"b":"\u0000"}]}}"#,
        r#"{"message":"   ","sessionId":"s"}"#,
    ] {
        refused(&api.send("POST", &chat, &k, body).await, 400, "INVALID_REQUEST_DATA", &[]);
    }
    let conv = format!("/api/public/agents/{agent}/conversations");
    refused(&api.send("GET", &format!("{conv}/%00"), &k, "").await, 404, "CONVERSATION_NOT_FOUND", &[]);
    refused(
        &api.send("PATCH", &format!("{conv}/s"), &k, r#"{"metadata":{"x":"\u0000"}}"#).await,
        400,
        "INVALID_REQUEST_DATA",
        &[],
    );
    refused(&api.send("GET", &format!("{conv}/%FF"), &k, "").await, 400, "INVALID_REQUEST_DATA", &[]);
    refused(&api.send("GET", &format!("{conv}/s?limit=abc"), &k, "").await, 400, "INVALID_REQUEST_DATA", &[]);
    refused(&api.send("GET", &format!("{conv}/s?offset=-1"), &k, "").await, 400, "INVALID_REQUEST_DATA", &[]);
    refused(&api.send("GET", &format!("{conv}/s?limit=101"), &k, "").await, 400, "INVALID_REQUEST_DATA", &[]);
    let (status, body) = api.admin("POST", "/orgs", r#"{"name":"a\u0000b"}"#).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("INVALID_REQUEST_DATA")), "{body}");
    let (status, body) = api.admin("POST", "/orgs/%00/agents", r#"{"name":"x"}"#).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("NOT_FOUND")), "{body}");
    let (status, _) =
        api.admin("POST", &format!("/orgs/{org}/agents"), r#"{"name":"x","allowedDomains":["a\u0000.com"]}"#).await;
    assert_eq!(status, 400);
    let (status, _) = api.admin("POST", &format!("/orgs/{org}/teams"), r#"{"name":"t","agentIds":["a\u0000"]}"#).await;
    assert_eq!(status, 400);
    let (status, _) = api.admin("GET", "/orgs/%00/keys", "").await;
    assert_eq!(status, 404);

    // Dates the calendar does not have, and text that is not a date.
    for at in ["2026-02-30T00:00:00Z", "2026-12-02T12:00:00+25:00", "2026-12-02T12:00:00+0é00"] {
        let (status, body) =
            api.admin("POST", &format!("/orgs/{org}/keys"), &format!(r#"{{"name":"d","expiresAt":"{at}"}}"#)).await;
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some("INVALID_REQUEST_DATA")), "{at}: {body}");
    }

    // Everything else is in the envelope too.
    refused(&api.send("GET", "/nothing-here", &[], "").await, 404, "NOT_FOUND", &[]);
    refused(
        &api.send("PUT", &format!("/api/admin/orgs/{org}/keys"), &[ADMIN], "").await,
        405,
        "METHOD_NOT_ALLOWED",
        &[],
    );

    // Caps: metadata stays under 16 KiB after any number of merges.
    let session = format!("{conv}/capped");
    let chat_capped = r#"{"message":"hi","sessionId":"capped"}"#;
    assert_eq!(api.send("POST", &chat, &k, chat_capped).await.0, 200);
    let mut refused_at = None;
    for i in 0..25 {
        let patch = format!(r#"{{"metadata":{{"k{i}":"{}"}}}}"#, "x".repeat(2000));
        let (status, body) = api.send("PATCH", &session, &k, &patch).await;
        if status == 413 {
            refused(&(status, body), 413, "PAYLOAD_TOO_LARGE", &[]);
            refused_at = Some(i);
            break;
        }
        assert_eq!(status, 200, "{body}");
        assert!(body.len() < 20_000, "the answer grows without a bound: {} bytes", body.len());
    }
    assert!(refused_at.is_some_and(|i| (7..=8).contains(&i)), "refused at {refused_at:?}");
    let too_big = format!(r#"{{"message":"hi","sessionId":"capped","metadata":{{"big":"{}"}}}}"#, "y".repeat(3000));
    refused(&api.send("POST", &chat, &k, &too_big).await, 413, "PAYLOAD_TOO_LARGE", &[]);

    // Caps: a conversation holds at most 1000 messages (500 turns).
    let turn = r#"{"message":"hi","sessionId":"long"}"#;
    for i in 0..500 {
        let (status, body) = api.send("POST", &chat, &k, turn).await;
        assert_eq!(status, 200, "turn {i}: {body}");
    }
    refused(&api.send("POST", &chat, &k, turn).await, 400, "INVALID_REQUEST_DATA", &[]);
    let (status, body) = api.send("GET", &format!("{conv}/long?limit=1"), &k, "").await;
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["messageCount"], 1000);

    // The configuration tells a key its own limit.
    let seven = api.key(&org, r#"{"name":"seven","rateLimits":{"chat":7}}"#).await;
    let (_, body) = api.send("GET", &format!("/api/public/agents/{agent}"), &[("x-api-key", &seven)], "").await;
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["limits"]["rateLimitPerMinute"], 7, "{body}");
}

async fn cors_follows_the_core(base: String, tag: &str) {
    let api = Api { base };
    let org = world(&api, tag).await;
    let preflight = |agent: String, origin: &'static str| {
        let api = &api;
        async move {
            let path = format!("/api/public/agents/{agent}/chat");
            let headers = [("origin", origin), ("access-control-request-method", "POST")];
            let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<http_body_util::Full<bytes::Bytes>>();
            let mut req = http::Request::builder().method("OPTIONS").uri(format!("{}{path}", api.base));
            for (n, v) in headers {
                req = req.header(n, v);
            }
            let resp = client.request(req.body(Default::default()).unwrap()).await.unwrap();
            (resp.status().as_u16(), resp.headers().get("access-control-allow-origin").cloned())
        }
    };
    let allowed = preflight(format!("{org}-a"), "https://app.example.com").await;
    assert_eq!(allowed.0, 200);
    assert_eq!(allowed.1.as_ref().map(|v| v.to_str().unwrap()), Some("https://app.example.com"));
    assert_eq!(preflight(format!("{org}-a"), "https://evil.test").await.1, None, "a foreign origin");
    let unknown = preflight("no-such-agent".into(), "https://evil.test").await;
    let open = preflight(format!("{org}-open"), "https://evil.test").await;
    assert_eq!(unknown, open, "a preflight does not tell an unknown agent from an open one");
    // A plain OPTIONS is no preflight: it is judged like any request.
    let (status, _) = api.send("OPTIONS", &format!("/api/public/agents/{org}-a/chat"), &[], "").await;
    assert_eq!(status, 401);
}

/// Idle and half-sent connections are closed, a stalled body is answered
/// 408; past the cap, a connection waits.
fn connections_are_bounded(port: u16) {
    let started = Instant::now();
    let mut idle = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut half = TcpStream::connect(("127.0.0.1", port)).unwrap();
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").unwrap();
    for s in [&mut idle, &mut half] {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 256];
        // Closed (0 bytes, or a 408 and then closed), within the 1 s limit and some slack.
        let n = s.read(&mut buf).unwrap_or(0);
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(n == 0 || text.starts_with("HTTP/1.1 408"), "{text}");
    }
    assert!(started.elapsed() < Duration::from_secs(5), "closed after {:?}", started.elapsed());

    // A body that stops half-way is answered 408, in the JSON envelope, at the request deadline.
    let started = Instant::now();
    let mut slow = TcpStream::connect(("127.0.0.1", port)).unwrap();
    slow.write_all(
        b"POST /api/admin/orgs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer test-admin-token\r\n\
          Content-Type: application/json\r\nContent-Length: 40\r\n\r\n{\"id\":",
    )
    .unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut answer = String::new();
    let _ = slow.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.ends_with(r#"{"error":{"code":"REQUEST_TIMEOUT","message":"The request took too long"}}"#),
        "{answer}"
    );
    assert!(started.elapsed() < Duration::from_secs(5), "answered after {:?}", started.elapsed());

    // The cap is 2: a third connection is not served while two are open.
    let a = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let b = TcpStream::connect(("127.0.0.1", port)).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let mut third = TcpStream::connect(("127.0.0.1", port)).unwrap();
    third.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    third.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let mut buf = [0u8; 64];
    assert!(third.read(&mut buf).is_err(), "served past the cap");
    drop((a, b));
    third.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let n = third.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"), "served once a slot is free");
}

#[tokio::test]
async fn hostile_input_on_memory() {
    let port = free_port();
    let (_server, _) = start_with(port, None, &[]);
    hostile_input_is_refused(format!("http://127.0.0.1:{port}"), "m").await;
    cors_follows_the_core(format!("http://127.0.0.1:{port}"), "mc").await;
}

#[tokio::test]
async fn hostile_input_on_postgres() {
    let Some(url) = agx_auth_postgres::testing::fresh_database("agx_server_hostile").await else { return };
    let port = free_port();
    let (_server, _) = start_with(port, Some(&url), &[]);
    hostile_input_is_refused(format!("http://127.0.0.1:{port}"), "p").await;
    cors_follows_the_core(format!("http://127.0.0.1:{port}"), "pc").await;
}

#[test]
fn idle_half_sent_and_surplus_connections() {
    let port = free_port();
    let env = [("AGX_HEADER_TIMEOUT", "1s"), ("AGX_REQUEST_TIMEOUT", "1s"), ("AGX_MAX_CONNECTIONS", "2")];
    let (_server, _) = start_with(port, None, &env);
    connections_are_bounded(port);
}
