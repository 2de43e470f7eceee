//! Usage credits against the binary: given at creation, shown with what is
//! left, spent by the public API, refused with 403 `CREDITS_EXHAUSTED`,
//! changed in place by `PATCH …/keys/{keyId}` (and logged as
//! `key.updated`), bad input refused without an echo; on PostgreSQL with
//! Redis, two instances spend one balance exactly.

mod common;

use common::{call, free_port, start_with};
use serde_json::{Value, json};

const ADMIN: (&str, &str) = ("authorization", "Bearer test-admin-token");
const JSON: (&str, &str) = ("content-type", "application/json");

async fn admin(base: &str, method: &str, path: &str, body: &str) -> (u16, Value) {
    let (status, text) = call(method, &format!("{base}/api/admin{path}"), &[ADMIN, JSON], body).await;
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

async fn config(base: &str, key: &str) -> (u16, String) {
    call("GET", &format!("{base}/api/public/agents/support"), &[("x-api-key", key)], "").await
}

async fn listed(base: &str, id: &str) -> Value {
    let (_, keys) = admin(base, "GET", "/orgs/acme/keys", "").await;
    keys.as_array().unwrap().iter().find(|k| k["id"] == id).cloned().expect("the key is listed")
}

/// Sets up an org and an agent, checks the whole life of a metered key;
/// returns a key with 50 credits and no refill.
async fn credits_hold(base: &str) -> (String, String) {
    assert_eq!(admin(base, "POST", "/orgs", r#"{"id":"acme","name":"Acme"}"#).await.0, 201);
    assert_eq!(admin(base, "POST", "/orgs/acme/agents", r#"{"id":"support","name":"Support"}"#).await.0, 201);
    for bad in [
        r#"{"remaining":-1}"#,
        r#"{"remaining":9007199254740992}"#,
        r#"{"remaining":1.5}"#,
        r#"{"remaining":"lots"}"#,
        r#"{"remaining":5,"refill":{"amount":5,"intervalSeconds":0}}"#,
        r#"{"remaining":5,"refill":{"amount":5,"intervalSeconds":315360001}}"#,
        r#"{"remaining":5,"refill":{"amount":5}}"#,
        r#"{"remaining":5,"extra":1}"#,
        r#"[7,null]"#,
        r#"{"remaining":5,"refill":[1,2]}"#,
        r#"{}"#,
    ] {
        let (status, body) =
            admin(base, "POST", "/orgs/acme/keys", &format!(r#"{{"name":"k","credits":{bad}}}"#)).await;
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some("INVALID_REQUEST_DATA")), "{bad}: {body}");
        assert!(!body.to_string().contains("lots"), "never echoed: {body}");
    }
    let (status, metered) = admin(
        base,
        "POST",
        "/orgs/acme/keys",
        r#"{"name":"metered","credits":{"remaining":3,"refill":{"amount":2,"intervalSeconds":86400}}}"#,
    )
    .await;
    assert_eq!(status, 201, "{metered}");
    let credits = &metered["credits"];
    assert_eq!((&credits["remaining"], &credits["initial"]), (&json!(3), &json!(3)), "{metered}");
    assert_eq!(credits["refill"], json!({"amount": 2, "intervalSeconds": 86400}));
    assert!(credits["nextRefillAt"].is_string() && credits["since"].is_string(), "{metered}");
    let (id, key) = (metered["id"].as_str().unwrap().to_owned(), metered["key"].as_str().unwrap().to_owned());
    for _ in 0..3 {
        assert_eq!(config(base, &key).await.0, 200);
    }
    let (status, body) = config(base, &key).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("CREDITS_EXHAUSTED") && body.contains("no usage credits left"), "{body}");
    assert_eq!(listed(base, &id).await["credits"]["remaining"], 0);

    // Set afresh, without a refill: what was spent is forgotten.
    let (status, patched) =
        admin(base, "PATCH", &format!("/orgs/acme/keys/{id}"), r#"{"credits":{"remaining":1}}"#).await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!((&patched["credits"]["remaining"], &patched["credits"]["refill"]), (&json!(1), &Value::Null));
    assert_eq!(patched["credits"]["nextRefillAt"], Value::Null);
    assert!(patched.get("key").is_none(), "a patch never answers with the key");
    assert_eq!(config(base, &key).await.0, 200);
    assert_eq!(config(base, &key).await.0, 403);
    // Taken away: not counted. Networks and rate limits change alike.
    let body = r#"{"credits":null,"rateLimits":{"config":7},"allowedNetworks":["127.0.0.0/8"]}"#;
    let (status, patched) = admin(base, "PATCH", &format!("/orgs/acme/keys/{id}"), body).await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["credits"], Value::Null);
    assert_eq!((&patched["rateLimits"], &patched["allowedNetworks"]), (&json!({"config": 7}), &json!(["127.0.0.0/8"])));
    let (status, _) = config(base, &key).await;
    assert_eq!(status, 200);
    // An empty patch changes nothing and logs nothing.
    assert_eq!(admin(base, "PATCH", &format!("/orgs/acme/keys/{id}"), "{}").await.0, 200);
    let (_, log) = admin(base, "GET", "/orgs/acme/audit-log?limit=3", "").await;
    let events = log["events"].as_array().unwrap();
    assert_eq!(events[0]["action"], "key.updated", "{log}");
    assert_eq!(
        events[0]["changes"],
        json!({"rateLimits": "config=7", "allowedNetworks": "127.0.0.0/8", "credits": ""})
    );
    assert_eq!(events[1]["changes"], json!({"credits": "1"}), "{log}");
    assert_eq!(events[2]["action"], "key.created");
    assert_eq!(events[2]["changes"]["credits"], "3 refill 2/86400s");
    assert!(!log.to_string().contains(&key), "never a key in the log");

    // Bad patches: 400 without an echo; unknown keys and other orgs' keys 404.
    for bad in [
        r#"{"credits":{"remaining":-5}}"#,
        r#"{"rateLimits":{"nope":1}}"#,
        r#"{"allowedNetworks":["x"]}"#,
        r#"{"name":"n"}"#,
    ] {
        let (status, body) = admin(base, "PATCH", &format!("/orgs/acme/keys/{id}"), bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let missing = "key_00000000000000000000000000000000";
    assert_eq!(admin(base, "PATCH", &format!("/orgs/acme/keys/{missing}"), "{}").await.0, 404);
    assert_eq!(admin(base, "PATCH", &format!("/orgs/other/keys/{id}"), "{}").await.0, 404);

    // A roll's halves share the credits, also once they are given again.
    let (_, two) = admin(base, "POST", "/orgs/acme/keys", r#"{"name":"two","credits":{"remaining":2}}"#).await;
    let (old_id, old_key) = (two["id"].as_str().unwrap(), two["key"].as_str().unwrap());
    assert_eq!(config(base, old_key).await.0, 200);
    let (status, rolled) =
        admin(base, "POST", &format!("/orgs/acme/keys/{old_id}/roll"), r#"{"gracePeriodSeconds":3600}"#).await;
    assert_eq!(status, 201, "{rolled}");
    let (new_id, new_key) = (rolled["id"].as_str().unwrap(), rolled["key"].as_str().unwrap());
    assert_eq!(rolled["credits"]["remaining"], 1, "a roll refills nothing");
    let patch = r#"{"credits":{"remaining":2}}"#;
    assert_eq!(admin(base, "PATCH", &format!("/orgs/acme/keys/{new_id}"), patch).await.0, 200);
    let mut statuses = Vec::new();
    for key in [old_key, new_key, old_key, new_key] {
        statuses.push(config(base, key).await.0);
    }
    assert_eq!(statuses, [200, 200, 403, 403], "two between the halves, not two each");
    let (_, log) = admin(base, "GET", "/orgs/acme/audit-log?limit=2", "").await;
    assert_eq!(log["events"][0]["target"], old_id, "{log}");
    assert_eq!(log["events"][0]["changes"], json!({"credits": "2", "changedWith": new_id}));
    assert_eq!(log["events"][1]["target"], new_id);

    let (status, fifty) =
        admin(base, "POST", "/orgs/acme/keys", r#"{"name":"fifty","credits":{"remaining":50}}"#).await;
    assert_eq!(status, 201, "{fifty}");
    (fifty["id"].as_str().unwrap().to_owned(), fifty["key"].as_str().unwrap().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credits_on_memory() {
    let port = free_port();
    let (_server, _) = start_with(port, None, &[]);
    let base = format!("http://127.0.0.1:{port}");
    let (id, key) = credits_hold(&base).await;
    // The verify API tells a service what is left.
    let body = json!({"key": key, "method": "GET", "path": "/api/public/agents/support"}).to_string();
    let (status, text) = call("POST", &format!("{base}/api/verify"), &[JSON], &body).await;
    let verdict: Value = serde_json::from_str(&text).unwrap();
    assert_eq!((status, &verdict["creditsRemaining"]), (200, &json!(49)), "{verdict}");
    assert_eq!(listed(&base, &id).await["credits"]["remaining"], 49);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_postgres_and_redis_spend_one_balance() {
    let Some(url) = agx_auth_postgres::testing::fresh_database("credits_two_instances").await else { return };
    let Some(redis) = agx_auth_redis::testing::reachable("server credits").await else { return };
    let prefix = agx_auth_redis::testing::unique_prefix("server-credits");
    let env = [("AGX_REDIS_URL", redis.as_str()), ("AGX_REDIS_PREFIX", prefix.as_str())];
    let (a, b) = (free_port(), free_port());
    let (_one, _) = start_with(a, Some(&url), &env);
    let (_two, _) = start_with(b, Some(&url), &env);
    let (base_a, base_b) = (format!("http://127.0.0.1:{a}"), format!("http://127.0.0.1:{b}"));
    let (id, key) = credits_hold(&base_a).await;
    // 80 requests, half on each instance, 8 at a time: exactly 50 admitted.
    let mut admitted = 0;
    let mut exhausted = 0;
    for round in 0..10 {
        let calls: Vec<_> = (0..8)
            .map(|i| {
                let base = if (round + i) % 2 == 0 { base_a.clone() } else { base_b.clone() };
                let key = key.clone();
                tokio::spawn(async move { config(&base, &key).await })
            })
            .collect();
        for c in calls {
            let (status, body) = c.await.unwrap();
            match status {
                200 => admitted += 1,
                403 if body.contains("CREDITS_EXHAUSTED") => exhausted += 1,
                other => panic!("unexpected {other}: {body}"),
            }
        }
    }
    assert_eq!((admitted, exhausted), (50, 30), "one balance across two instances");
    assert_eq!(listed(&base_b, &id).await["credits"]["remaining"], 0, "each instance reads the shared balance");
    // The CLI gives credits too.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_agx-server"))
        .args(["keys", "create", "--org", "acme", "--name", "cli", "--credits", "10", "--refill", "5/1h"])
        .env("AGX_DATABASE_URL", &url)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (_, keys) = admin(&base_a, "GET", "/orgs/acme/keys", "").await;
    let cli = keys.as_array().unwrap().iter().find(|k| k["name"] == "cli").unwrap();
    assert_eq!(cli["credits"]["refill"], json!({"amount": 5, "intervalSeconds": 3600}));
    for refill in ["5/0s", "5/1500ms", "5", "x/1h"] {
        let bad = std::process::Command::new(env!("CARGO_BIN_EXE_agx-server"))
            .args(["keys", "create", "--org", "acme", "--name", "bad", "--credits", "1", "--refill", refill])
            .env("AGX_DATABASE_URL", &url)
            .output()
            .unwrap();
        assert_eq!(bad.status.code(), Some(2), "--refill {refill} is a usage error");
    }
}
