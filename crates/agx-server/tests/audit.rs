//! The audit log against the binary, on the memory store and on
//! PostgreSQL: every change through the admin API (and the command line)
//! is listed per org, newest first, by whom, a page at a time, and no key
//! ever appears in it.

mod common;

use common::{call, free_port, start_with};
use serde_json::{Value, json};

const ADMIN: (&str, &str) = ("authorization", "Bearer test-admin-token");
const JSON: (&str, &str) = ("content-type", "application/json");

async fn send(base: &str, auth: &str, method: &str, path: &str, body: &str) -> (u16, Value) {
    let url = format!("{base}/api/admin{path}");
    let (status, text) = call(method, &url, &[("authorization", auth), JSON], body).await;
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// Every event of `org`, walking the pages `limit` at a time.
async fn all_events(base: &str, org: &str, limit: usize) -> Vec<Value> {
    let mut events = Vec::new();
    let mut before = String::new();
    loop {
        let (status, page) =
            send(base, ADMIN.1, "GET", &format!("/orgs/{org}/audit-log?limit={limit}{before}"), "").await;
        assert_eq!(status, 200, "{page}");
        let got = page["events"].as_array().unwrap();
        assert!(got.len() <= limit);
        events.extend(got.iter().cloned());
        match page["nextBefore"].as_u64() {
            Some(next) => before = format!("&before={next}"),
            None => return events,
        }
    }
}

async fn changes_are_logged(base: String) -> Vec<String> {
    let admin = ADMIN.1;
    let mut keys = Vec::new();
    for id in ["acme", "rival"] {
        assert_eq!(send(&base, admin, "POST", "/orgs", &format!(r#"{{"id":"{id}","name":"{id}"}}"#)).await.0, 201);
    }
    let (_, token) = send(&base, admin, "POST", "/orgs/acme/dashboard-tokens", r#"{"name":"ops"}"#).await;
    let (token_id, token) = (token["id"].as_str().unwrap().to_owned(), token["token"].as_str().unwrap().to_owned());
    let org_token = format!("Bearer {token}");
    assert_eq!(send(&base, admin, "POST", "/orgs/acme/agents", r#"{"id":"support","name":"Support"}"#).await.0, 201);
    let patch = r#"{"allowedDomains":["app.example.com"]}"#;
    assert_eq!(send(&base, &org_token, "PATCH", "/orgs/acme/agents/support", patch).await.0, 200);
    let team = r#"{"id":"tier1","name":"Tier 1","agentIds":["support"]}"#;
    assert_eq!(send(&base, admin, "POST", "/orgs/acme/teams", team).await.0, 201);
    let new_key = r#"{"name":"widget","scopes":["chat"],"rateLimits":{"chat":30}}"#;
    let (status, key) = send(&base, &org_token, "POST", "/orgs/acme/keys", new_key).await;
    assert_eq!(status, 201, "{key}");
    keys.push(key["key"].as_str().unwrap().to_owned());
    let id = key["id"].as_str().unwrap().to_owned();
    let (status, rolled) =
        send(&base, admin, "POST", &format!("/orgs/acme/keys/{id}/roll"), r#"{"gracePeriodSeconds":60}"#).await;
    assert_eq!(status, 201, "{rolled}");
    keys.push(rolled["key"].as_str().unwrap().to_owned());
    let new_id = rolled["id"].as_str().unwrap().to_owned();
    assert_eq!(send(&base, &org_token, "DELETE", &format!("/orgs/acme/keys/{new_id}"), "").await.0, 204);
    // Nothing of Acme's is logged under Rival, and a refused write logs nothing.
    let (status, _) = send(&base, admin, "POST", "/orgs/acme/keys", r#"{"name":"k","scopes":["nope"]}"#).await;
    assert_eq!(status, 400);

    let events = all_events(&base, "acme", 2).await;
    let summary: Vec<(String, String, String)> = events
        .iter()
        .map(|e| {
            let by = e["actorId"].as_str().map_or_else(|| e["actor"].as_str().unwrap().to_owned(), str::to_owned);
            (e["action"].as_str().unwrap().to_owned(), e["target"].as_str().unwrap().to_owned(), by)
        })
        .collect();
    let s = |a: &str, t: &str, b: &str| (a.to_owned(), t.to_owned(), b.to_owned());
    assert_eq!(
        summary,
        [
            s("key.deleted", &new_id, &token_id),
            s("key.rolled", &id, "adminToken"),
            s("key.created", &id, &token_id),
            s("team.created", "tier1", "adminToken"),
            s("agent.updated", "support", &token_id),
            s("agent.created", "support", "adminToken"),
            s("dashboard_token.created", &token_id, "adminToken"),
            s("org.created", "acme", "adminToken"),
        ]
    );
    let by_action = |a: &str| events.iter().find(|e| e["action"] == a).unwrap().clone();
    let created = by_action("key.created");
    assert_eq!(created["actor"], "dashboardToken");
    assert_eq!(created["changes"]["name"], "widget");
    assert_eq!(created["changes"]["scopes"], "chat");
    assert_eq!(created["changes"]["rateLimits"], "chat=30");
    assert_eq!(created["changes"]["prefix"], key["prefix"]);
    assert_eq!(by_action("key.rolled")["changes"]["replacedBy"], new_id.as_str());
    assert_eq!(by_action("key.rolled")["changes"]["gracePeriodSeconds"], "60");
    assert_eq!(by_action("agent.updated")["changes"]["allowedDomains"], "app.example.com");
    assert!(events.windows(2).all(|w| w[0]["id"].as_u64() > w[1]["id"].as_u64()), "newest first");
    let text = Value::from(events).to_string();
    assert!(keys.iter().all(|k| !text.contains(k.as_str())) && !text.contains(&token), "never a key or a token");

    let rival = all_events(&base, "rival", 50).await;
    assert_eq!(rival.len(), 1, "{rival:?}");
    // The org token reaches its own org's log only; bad pages are 400.
    assert_eq!(send(&base, &org_token, "GET", "/orgs/acme/audit-log", "").await.0, 200);
    let (status, body) = send(&base, &org_token, "GET", "/orgs/rival/audit-log", "").await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("NOT_FOUND")));
    assert_eq!(send(&base, admin, "GET", "/orgs/ghost/audit-log", "").await.0, 404);
    for query in ["limit=0", "limit=201", "limit=x", "before=-1", "after=3"] {
        let (status, body) = send(&base, admin, "GET", &format!("/orgs/acme/audit-log?{query}"), "").await;
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some("INVALID_REQUEST_DATA")), "{query}");
    }
    let (_, page) = send(&base, admin, "GET", "/orgs/acme/audit-log?limit=3&before=1", "").await;
    assert_eq!(page, json!({"events": [], "nextBefore": null}));
    // The dashboard token's deletion is logged under its own id as target.
    let (status, _) = send(&base, admin, "DELETE", &format!("/orgs/acme/dashboard-tokens/{token_id}"), "").await;
    assert_eq!(status, 204);
    let (_, page) = send(&base, admin, "GET", "/orgs/acme/audit-log?limit=1", "").await;
    assert_eq!(page["events"][0]["action"], "dashboard_token.deleted");
    assert_eq!(page["events"][0]["target"], token_id.as_str());
    keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_log_on_memory() {
    let port = free_port();
    let (_server, _) = start_with(port, None, &[]);
    changes_are_logged(format!("http://127.0.0.1:{port}")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_log_on_postgres() {
    let Some(url) = agx_auth_postgres::testing::fresh_database("audit_log_on_postgres").await else { return };
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let (server, _) = start_with(port, Some(&url), &[]);
    changes_are_logged(base.clone()).await;

    // The command line's changes land in the same log, as `cli`.
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_agx-server"))
            .args(args)
            .env("AGX_DATABASE_URL", &url)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let out = cli(&["keys", "create", "--org", "acme", "--name", "from-cli"]);
    let id = out.lines().find_map(|l| l.strip_prefix("id:")).unwrap().trim().to_owned();
    let (_, page) = send(&base, ADMIN.1, "GET", "/orgs/acme/audit-log?limit=1", "").await;
    assert_eq!(page["events"][0]["action"], "key.created");
    assert_eq!(page["events"][0]["target"], id.as_str());
    assert_eq!(page["events"][0]["actor"], "cli");

    // And the log outlives the server.
    drop(server);
    let port = free_port();
    let (_server, _) = start_with(port, Some(&url), &[]);
    let events = all_events(&format!("http://127.0.0.1:{port}"), "acme", 200).await;
    assert_eq!(events.len(), 10, "{events:?}");
}
