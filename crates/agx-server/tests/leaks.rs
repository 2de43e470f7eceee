//! An organization's leak report against the binary: its live keys in a
//! pasted text are revoked, another organization's are answered unknown
//! and keep working, the answer and the audit log never hold a key, and bad
//! reports are refused without an echo; on PostgreSQL too.

mod common;

use common::{call, free_port, start_with};
use serde_json::{Value, json};

const ADMIN: (&str, &str) = ("authorization", "Bearer test-admin-token");
const JSON: (&str, &str) = ("content-type", "application/json");

async fn admin(base: &str, method: &str, path: &str, body: &str) -> (u16, Value) {
    let (status, text) = call(method, &format!("{base}/api/admin{path}"), &[ADMIN, JSON], body).await;
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

async fn config(base: &str, agent: &str, key: &str) -> u16 {
    call("GET", &format!("{base}/api/public/agents/{agent}"), &[("x-api-key", key)], "").await.0
}

async fn leaks_hold(base: &str) {
    for (org, agent) in [("acme", "support"), ("rival", "sales")] {
        assert_eq!(admin(base, "POST", "/orgs", &json!({"id": org, "name": org}).to_string()).await.0, 201);
        let body = json!({"id": agent, "name": agent}).to_string();
        assert_eq!(admin(base, "POST", &format!("/orgs/{org}/agents"), &body).await.0, 201);
    }
    let (_, mine) = admin(base, "POST", "/orgs/acme/keys", r#"{"name":"mine"}"#).await;
    let (_, theirs) = admin(base, "POST", "/orgs/rival/keys", r#"{"name":"theirs"}"#).await;
    let (mine_key, theirs_key) = (mine["key"].as_str().unwrap(), theirs["key"].as_str().unwrap());
    let text = format!(
        "AGX_KEY={mine_key}\nexample: agx_live_XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX\n{theirs_key} and again {mine_key}\n"
    );
    let body = json!({"text": text, "foundIn": "https://paste.example/abc"}).to_string();
    let (status, report) = admin(base, "POST", "/orgs/acme/leaks", &body).await;
    assert_eq!(status, 200, "{report}");
    let want = json!({"keys": [
        {"prefix": mine["prefix"], "line": 1, "column": 9, "standing": "revoked", "keyId": mine["id"]},
        {"prefix": theirs["prefix"], "line": 3, "column": 1, "standing": "unknown", "keyId": null},
    ]});
    assert_eq!(report, want);
    assert!(!report.to_string().contains(mine_key) && !report.to_string().contains(theirs_key), "never a key");
    assert_eq!(config(base, "support", mine_key).await, 401, "revoked at once");
    assert_eq!(config(base, "sales", theirs_key).await, 200, "another org's key is left alone");
    // Reported again, it is deleted; an empty text finds nothing.
    let (_, again) = admin(base, "POST", "/orgs/acme/leaks", &json!({"text": mine_key}).to_string()).await;
    assert_eq!(again["keys"][0]["standing"], "deleted");
    assert_eq!(admin(base, "POST", "/orgs/acme/leaks", r#"{"text":""}"#).await.1, json!({"keys": []}));
    // The org is told, by who reported it and where it was found.
    let (_, log) = admin(base, "GET", "/orgs/acme/audit-log?limit=1", "").await;
    let event = &log["events"][0];
    assert_eq!(
        (&event["action"], &event["target"], &event["actor"]),
        (&json!("key.revoked_leaked"), &mine["id"], &json!("adminToken"))
    );
    assert_eq!(event["changes"]["foundIn"], "https://paste.example/abc");
    assert!(!log.to_string().contains(mine_key));

    // Refusals: each without an echo of what was sent.
    let many: String = (0..101u32)
        .map(|i| {
            let mut random = [b'a'; agx_auth::RANDOM_LEN];
            random[0] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"[(i % 62) as usize];
            random[1] = b"0123456789"[(i / 62) as usize];
            format!(
                "{} ",
                agx_auth::ApiKey::from_random_part(agx_auth::KeyMode::Live, &random).unwrap().expose_secret()
            )
        })
        .collect();
    let (status, body) = admin(base, "POST", "/orgs/acme/leaks", &json!({"text": many}).to_string()).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("INVALID_REQUEST_DATA")), "{body}");
    assert!(!body.to_string().contains("agx_live_"), "{body}");
    let long = "x".repeat(64 * 1024);
    assert_eq!(admin(base, "POST", "/orgs/acme/leaks", &json!({"text": long}).to_string()).await.0, 413);
    let bad_place = json!({"text": "", "foundIn": "bell\u{7}"}).to_string();
    assert_eq!(admin(base, "POST", "/orgs/acme/leaks", &bad_place).await.0, 400);
    assert_eq!(admin(base, "POST", "/orgs/acme/leaks", r#"{"text":"", "extra": 1}"#).await.0, 400);
    assert_eq!(admin(base, "POST", "/orgs/nobody/leaks", r#"{"text":""}"#).await.0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leak_reports_on_memory() {
    let port = free_port();
    let (_server, _) = start_with(port, None, &[]);
    leaks_hold(&format!("http://127.0.0.1:{port}")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leak_reports_on_postgres() {
    let Some(url) = agx_auth_postgres::testing::fresh_database("leak_reports_on_postgres").await else { return };
    let port = free_port();
    let (_server, _) = start_with(port, Some(&url), &[]);
    leaks_hold(&format!("http://127.0.0.1:{port}")).await;
}
