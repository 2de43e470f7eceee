//! The admin API's rules against the binary, on the memory store and on
//! PostgreSQL: one org's writes never take over another org's agents or
//! teams, and bad requests get the JSON envelope.

mod common;

use common::{call, free_port, start_with};
use serde_json::Value;

const ADMIN: (&str, &str) = ("authorization", "Bearer test-admin-token");
const JSON: (&str, &str) = ("content-type", "application/json");

struct Admin {
    base: String,
}

impl Admin {
    async fn post(&self, path: &str, body: &str) -> (u16, Value) {
        let (status, text) = call("POST", &format!("{}/api/admin{path}", self.base), &[ADMIN, JSON], body).await;
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let (status, text) = call("GET", &format!("{}/api/admin{path}", self.base), &[ADMIN], "").await;
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// A key with every scope in `org`.
    async fn key(&self, org: &str) -> String {
        let (status, created) = self.post(&format!("/orgs/{org}/keys"), r#"{"name":"k"}"#).await;
        assert_eq!(status, 201, "{created}");
        created["key"].as_str().unwrap().to_owned()
    }
}

async fn public(base: &str, method: &str, path: &str, key: &str, body: &str) -> (u16, Value) {
    let (status, text) = call(method, &format!("{base}/api/public{path}"), &[("x-api-key", key), JSON], body).await;
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

async fn the_admin_rules_hold(base: String) {
    let admin = Admin { base: base.clone() };
    for (id, name) in [("acme", "Acme"), ("rival", "Rival")] {
        assert_eq!(admin.post("/orgs", &format!(r#"{{"id":"{id}","name":"{name}"}}"#)).await.0, 201);
    }
    assert_eq!(admin.post("/orgs/acme/agents", r#"{"id":"support","name":"Support"}"#).await.0, 201);
    assert_eq!(admin.post("/orgs/rival/agents", r#"{"id":"sales","name":"Sales"}"#).await.0, 201);
    let acme_key = admin.key("acme").await;
    let rival_key = admin.key("rival").await;

    // Rival cannot take Acme's agent by naming its id.
    let (status, body) = admin.post("/orgs/rival/agents", r#"{"id":"support","name":"Mine now"}"#).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("CONFLICT")), "{body}");
    assert_eq!(public(&base, "GET", "/agents/support", &acme_key, "").await.0, 200, "still Acme's");
    let (status, body) = public(&base, "GET", "/agents/support", &rival_key, "").await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("ORG_MISMATCH")), "{body}");
    // Acme itself may update its agent.
    assert_eq!(admin.post("/orgs/acme/agents", r#"{"id":"support","name":"Help desk"}"#).await.0, 201);
    let (_, config) = public(&base, "GET", "/agents/support", &acme_key, "").await;
    assert_eq!(config["name"], "Help desk", "the instance that wrote sees its write at once");

    // Teams: only the org's own agents, valid ids, and no taking over.
    let (status, body) = admin.post("/orgs/rival/teams", r#"{"id":"t1","name":"T","agentIds":["support"]}"#).await;
    assert_eq!(status, 409, "another org's agent is answered like a missing one: {body}");
    let (status, body) = admin.post("/orgs/acme/teams", r#"{"id":"bad id!","name":"T","agentIds":[]}"#).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("INVALID_REQUEST_DATA")), "{body}");
    assert_eq!(admin.post("/orgs/acme/teams", r#"{"id":"desk","name":"Desk","agentIds":["support"]}"#).await.0, 201);
    let (status, _) = admin.post("/orgs/rival/teams", r#"{"id":"desk","name":"Desk","agentIds":["sales"]}"#).await;
    assert_eq!(status, 409);
    let twice = r#"{"id":"pair","name":"Pair","agentIds":["support","support"]}"#;
    let (status, body) = admin.post("/orgs/acme/teams", twice).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("INVALID_REQUEST_DATA")), "{body}");
    let (status, body) = admin.post("/orgs/nobody/agents", r#"{"id":"stray","name":"Stray"}"#).await;
    assert_eq!(status, 404, "{body}");

    // A team named like an agent does not write into that agent's conversations.
    assert_eq!(admin.post("/orgs/acme/teams", r#"{"id":"support","name":"Team","agentIds":["support"]}"#).await.0, 201);
    let hello = r#"{"message":"Hello","sessionId":"s1"}"#;
    assert_eq!(public(&base, "POST", "/agents/support/chat", &acme_key, hello).await.0, 200);
    assert_eq!(public(&base, "POST", "/teams/support/chat", &acme_key, hello).await.0, 200);
    let (status, conversation) = public(&base, "GET", "/agents/support/conversations/s1", &acme_key, "").await;
    assert_eq!(status, 200, "{conversation}");
    assert_eq!(conversation["messageCount"], 2, "the team's turn landed in the agent's conversation: {conversation}");

    // Paging parameters that do not parse get the JSON envelope.
    for query in ["limit=abc", "offset=-1", "limit=0"] {
        let path = format!("/agents/support/conversations/s1?{query}");
        let (status, body) = public(&base, "GET", &path, &acme_key, "").await;
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some("INVALID_REQUEST_DATA")), "{query}: {body}");
    }

    // An unknown org has no key list, not an empty one.
    let (status, body) = admin.get("/orgs/nobody/keys").await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(admin.get("/orgs/acme/keys").await.0, 200);

    // A name with a bidirectional override could show as another in the dashboard: refused.
    let (status, body) = admin.post("/orgs/acme/keys", r#"{"name":"\u202eProduction"}"#).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("INVALID_REQUEST_DATA")), "{body}");

    // An expired key is not revived by a roll.
    let (status, expired) = admin.post("/orgs/acme/keys", r#"{"name":"old","expiresAt":"2001-01-01T00:00:00Z"}"#).await;
    assert_eq!(status, 201, "{expired}");
    let id = expired["id"].as_str().unwrap();
    let (status, body) = admin.post(&format!("/orgs/acme/keys/{id}/roll"), r#"{"gracePeriodSeconds":60}"#).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("CONFLICT")), "{body}");
}

/// An org dashboard token reaches its own org through the admin API and
/// nothing else, cannot make orgs or tokens, and stops working once deleted.
async fn dashboard_tokens_reach_one_org(base: String) {
    let admin = Admin { base: base.clone() };
    for id in ["own", "other"] {
        assert_eq!(admin.post("/orgs", &format!(r#"{{"id":"{id}","name":"{id}"}}"#)).await.0, 201);
    }
    let (status, created) = admin.post("/orgs/own/dashboard-tokens", r#"{"name":"ops"}"#).await;
    assert_eq!(status, 201, "{created}");
    let token = created["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("agxd_"));
    let bearer = format!("Bearer {token}");
    let as_org = |method: &'static str, path: &'static str, body: &'static str| {
        let (base, bearer) = (base.clone(), bearer.clone());
        async move {
            let (status, text) =
                call(method, &format!("{base}/api/admin{path}"), &[("authorization", bearer.as_str()), JSON], body)
                    .await;
            (status, serde_json::from_str::<Value>(&text).unwrap_or(Value::String(text)))
        }
    };
    assert_eq!(as_org("POST", "/orgs/own/keys", r#"{"name":"k"}"#).await.0, 201);
    assert_eq!(as_org("GET", "/orgs/own/keys", "").await.0, 200);
    let (status, body) = as_org("GET", "/orgs/other/keys", "").await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("NOT_FOUND")), "as if it did not exist");
    assert_eq!(as_org("POST", "/orgs/other/keys", r#"{"name":"k"}"#).await.0, 404);
    let (_, orgs) = as_org("GET", "/orgs", "").await;
    assert_eq!(orgs, serde_json::json!([{"id": "own", "name": "own"}]), "only its own org is listed");
    let (status, body) = as_org("POST", "/orgs", r#"{"name":"mine"}"#).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("FORBIDDEN")), "{body}");
    assert_eq!(as_org("POST", "/orgs/own/dashboard-tokens", r#"{"name":"more"}"#).await.0, 403);
    // Listed without the token itself; deleted, it signs nobody in.
    let (_, listed) = admin.get("/orgs/own/dashboard-tokens").await;
    assert!(!listed.to_string().contains(&token), "{listed}");
    let id = created["id"].as_str().unwrap();
    let (status, _) = call("DELETE", &format!("{base}/api/admin/orgs/own/dashboard-tokens/{id}"), &[ADMIN], "").await;
    assert_eq!(status, 204);
    assert_eq!(as_org("GET", "/orgs/own/keys", "").await.0, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_rules_on_memory() {
    let port = free_port();
    let (_server, _) = start_with(port, None, &[]);
    the_admin_rules_hold(format!("http://127.0.0.1:{port}")).await;
    dashboard_tokens_reach_one_org(format!("http://127.0.0.1:{port}")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_rules_on_postgres() {
    let Some(url) = agx_auth_postgres::testing::fresh_database("admin_rules_on_postgres").await else { return };
    let port = free_port();
    let (_server, _) = start_with(port, Some(&url), &[]);
    the_admin_rules_hold(format!("http://127.0.0.1:{port}")).await;
    dashboard_tokens_reach_one_org(format!("http://127.0.0.1:{port}")).await;

    // `agx-server orgs token` writes to the same database; the running server takes its token.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_agx-server"))
        .args(["orgs", "token", "--org", "own", "--name", "cli"])
        .env("AGX_DATABASE_URL", &url)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout} {}", String::from_utf8_lossy(&out.stderr));
    let token = stdout.lines().find_map(|l| l.strip_prefix("token: ")).unwrap().split_whitespace().next().unwrap();
    let bearer = format!("Bearer {token}");
    let keys = format!("http://127.0.0.1:{port}/api/admin/orgs/own/keys");
    assert_eq!(call("GET", &keys, &[("authorization", bearer.as_str())], "").await.0, 200);
}
