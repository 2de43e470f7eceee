//! The README's walkthrough against the real binary on the in-memory
//! default: the printed key works, the admin API creates a scope-limited key
//! that gets 403 where it lacks the scope, and a deleted key gets 401.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts the server and returns it with the demo key it printed (memory).
fn start(port: u16) -> (Server, String) {
    let (server, key) = start_with(port, None);
    (server, key.expect("the server printed a demo key"))
}

fn start_with(port: u16, database_url: Option<&str>) -> (Server, Option<String>) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_agx-server"));
    command.env("AGX_BIND", format!("127.0.0.1:{port}")).env("AGX_ADMIN_TOKEN", "test-admin-token");
    match database_url {
        Some(url) => command.env("AGX_DATABASE_URL", url),
        None => command.env_remove("AGX_DATABASE_URL"),
    };
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("the agx-server binary starts");
    let stdout = child.stdout.take().unwrap();
    let mut key = None;
    let mut lines = BufReader::new(stdout).lines();
    // Only the in-memory default prints a demo key (and a curl line after it).
    if database_url.is_none() {
        for line in lines.by_ref().map_while(Result::ok) {
            if let Some(k) = line.strip_prefix("demo key (every scope): ") {
                key = Some(k.to_owned());
            }
            if line.starts_with("try:") {
                break;
            }
        }
    }
    // Keep reading, so that the server never writes into a closed pipe.
    std::thread::spawn(move || lines.for_each(drop));
    let server = Server(child);
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < Duration::from_secs(10), "the server did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    (server, key)
}

async fn call(method: &str, url: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut req = http::Request::builder().method(method).uri(url);
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    let resp = client.request(req.body(Full::new(Bytes::from(body.to_owned()))).unwrap()).await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn readme_walkthrough() {
    let port = free_port();
    let (_server, demo_key) = start(port);
    let base = format!("http://127.0.0.1:{port}");
    let json = ("content-type", "application/json");
    let chat = format!("{base}/api/public/agents/demo-agent/chat");
    let hello = r#"{"message":"Hello","sessionId":"demo-session"}"#;

    // The printed curl line: 200, a streamed answer.
    let bearer = format!("Bearer {demo_key}");
    let (status, body) = call("POST", &chat, &[("authorization", &bearer), json], hello).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("You said: \"Hello\""), "{body}");

    // Create a chat-only key through the admin API.
    let admin = ("authorization", "Bearer test-admin-token");
    let (status, created) = call(
        "POST",
        &format!("{base}/api/admin/orgs/demo-org/keys"),
        &[admin, json],
        r#"{"name":"widget","scopes":["chat"]}"#,
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let created: serde_json::Value = serde_json::from_str(&created).unwrap();
    let key = created["key"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();

    // It chats, but reading the agent's configuration needs `config`: 403.
    let widget_auth = ("x-api-key", key.as_str());
    assert_eq!(call("POST", &chat, &[widget_auth, json], hello).await.0, 200);
    let (status, body) = call("GET", &format!("{base}/api/public/agents/demo-agent"), &[widget_auth], "").await;
    assert_eq!(status, 403);
    assert!(body.contains("INSUFFICIENT_SCOPE"), "{body}");

    // Usage: one admitted chat (the 403 spent nothing and counts nothing).
    let (status, usage) = call("GET", &format!("{base}/api/admin/orgs/demo-org/keys/{id}/usage"), &[admin], "").await;
    assert_eq!(status, 200, "{usage}");
    let usage: serde_json::Value = serde_json::from_str(&usage).unwrap();
    assert_eq!(usage["usage"][0]["class"], "chat", "{usage}");
    assert_eq!(usage["usage"][0]["requests"], 1, "{usage}");
    assert!(usage["lastUsedAt"].is_string(), "{usage}");

    // The listing never shows a key.
    let (status, listing) = call("GET", &format!("{base}/api/admin/orgs/demo-org/keys"), &[admin], "").await;
    assert_eq!(status, 200);
    assert!(!listing.contains(&key) && !listing.contains(&demo_key), "{listing}");

    // Delete it: 204, then 401.
    let (status, _) = call("DELETE", &format!("{base}/api/admin/orgs/demo-org/keys/{id}"), &[admin], "").await;
    assert_eq!(status, 204);
    let (status, body) = call("POST", &chat, &[widget_auth, json], hello).await;
    assert_eq!(status, 401);
    assert!(body.contains("INVALID_API_KEY"), "{body}");

    // Without the admin token: 401; malformed JSON: 400.
    assert_eq!(call("GET", &format!("{base}/api/admin/orgs/demo-org/keys"), &[], "").await.0, 401);
    let (status, body) = call("POST", &chat, &[("authorization", &bearer), json], "{not json").await;
    assert_eq!(status, 400);
    assert!(body.contains("INVALID_JSON"), "{body}");
}

/// Stops the server as an operator would (SIGTERM), and waits for it.
fn stop(mut server: Server) {
    let pid = server.0.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let _ = server.0.wait();
}

#[tokio::test]
async fn a_restart_on_postgres_keeps_keys_conversations_and_usage() {
    let Some(url) = agx_auth_postgres::testing::fresh_database("a_restart_on_postgres_keeps").await else { return };
    let port = free_port();
    let (server, _) = start_with(port, Some(&url));
    let base = format!("http://127.0.0.1:{port}");
    let admin = ("authorization", "Bearer test-admin-token");
    let json = ("content-type", "application/json");
    for (path, body) in [
        ("/api/admin/orgs", r#"{"id":"acme","name":"Acme"}"#),
        ("/api/admin/orgs/acme/agents", r#"{"id":"helper","name":"Helper"}"#),
    ] {
        assert_eq!(call("POST", &format!("{base}{path}"), &[admin, json], body).await.0, 201);
    }
    let (_, created) =
        call("POST", &format!("{base}/api/admin/orgs/acme/keys"), &[admin, json], r#"{"name":"k"}"#).await;
    let created: serde_json::Value = serde_json::from_str(&created).unwrap();
    let (key, id) = (created["key"].as_str().unwrap().to_owned(), created["id"].as_str().unwrap().to_owned());
    let chat = format!("{base}/api/public/agents/helper/chat");
    let auth = ("x-api-key", key.as_str());
    for _ in 0..3 {
        let (status, body) = call("POST", &chat, &[auth, json], r#"{"message":"Hi","sessionId":"s1"}"#).await;
        assert_eq!(status, 200, "{body}");
    }
    stop(server);

    let port = free_port();
    let (_server, _) = start_with(port, Some(&url));
    let base = format!("http://127.0.0.1:{port}");
    let (status, body) = call("GET", &format!("{base}/api/public/agents/helper/conversations/s1"), &[auth], "").await;
    assert_eq!(status, 200, "the key and the conversation survive: {body}");
    let conversation: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(conversation["messageCount"], 6, "{body}");
    let (status, usage) = call("GET", &format!("{base}/api/admin/orgs/acme/keys/{id}/usage"), &[admin], "").await;
    assert_eq!(status, 200, "{usage}");
    let usage: serde_json::Value = serde_json::from_str(&usage).unwrap();
    // The three chats were counted before the restart and flushed at shutdown.
    let chats: u64 = usage["usage"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["class"] == "chat")
        .map(|u| u["requests"].as_u64().unwrap())
        .sum();
    assert_eq!(chats, 3, "{usage}");
}
