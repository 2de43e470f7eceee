//! The README's walkthrough against the real binary on the in-memory
//! default: the printed key works, the admin API creates a scope-limited key
//! that gets 403 where it lacks the scope, and a deleted key gets 401.

mod common;

use std::process::Command;

use common::{Server, call, free_port, start, start_with};

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
    let (server, _) = start_with(port, Some(&url), &[]);
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
    let (_server, _) = start_with(port, Some(&url), &[]);
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

#[tokio::test]
async fn a_connection_that_never_finishes_does_not_hold_the_shutdown() {
    use std::io::Write;
    use std::time::{Duration, Instant};

    let port = free_port();
    let (server, _) = start_with(port, None, &[("AGX_DRAIN_LIMIT", "1s")]);
    // Half a request: the server waits for the rest of its headers.
    let mut stuck = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stuck.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    stop(server);
    let took = started.elapsed();
    println!("stopped {took:?} after SIGTERM with a stuck connection (drain limit 1 s)");
    assert!(took < Duration::from_secs(5), "the stuck connection held the shutdown for {took:?}");
    drop(stuck);
}
