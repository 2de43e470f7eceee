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

/// Starts the server and returns it with the demo key it printed.
fn start(port: u16) -> (Server, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_agx-server"))
        .env("AGX_BIND", format!("127.0.0.1:{port}"))
        .env("AGX_ADMIN_TOKEN", "test-admin-token")
        .env_remove("AGX_DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the agx-server binary starts");
    let stdout = child.stdout.take().unwrap();
    let mut key = None;
    let mut lines = BufReader::new(stdout).lines();
    for line in lines.by_ref().map_while(Result::ok) {
        if let Some(k) = line.strip_prefix("demo key (every scope): ") {
            key = Some(k.to_owned());
        }
        if line.starts_with("try:") {
            break;
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
    (server, key.expect("the server printed a demo key"))
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
