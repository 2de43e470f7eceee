//! Keys limited to networks, against the binary: without trusted proxies a
//! forwarded header is never read; the admin API takes CIDR and single
//! addresses and refuses anything else; on PostgreSQL the networks outlive
//! the server.

mod common;

use common::{call, free_port, start_with};
use serde_json::{Value, json};

const ADMIN: (&str, &str) = ("authorization", "Bearer test-admin-token");
const JSON: (&str, &str) = ("content-type", "application/json");

async fn admin(base: &str, method: &str, path: &str, body: &str) -> (u16, Value) {
    let (status, text) = call(method, &format!("{base}/api/admin{path}"), &[ADMIN, JSON], body).await;
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

async fn config(base: &str, key: &str, forwarded: Option<&str>) -> (u16, String) {
    let mut headers = vec![("x-api-key", key)];
    if let Some(f) = forwarded {
        headers.push(("x-forwarded-for", f));
    }
    call("GET", &format!("{base}/api/public/agents/support"), &headers, "").await
}

/// Sets up an org, an agent and two keys; returns (remote key, local key).
async fn networks_hold(base: &str) -> (String, String) {
    assert_eq!(admin(base, "POST", "/orgs", r#"{"id":"acme","name":"Acme"}"#).await.0, 201);
    assert_eq!(admin(base, "POST", "/orgs/acme/agents", r#"{"id":"support","name":"Support"}"#).await.0, 201);
    for bad in [
        r#"["10.0.0.0/33"]"#,
        r#"["not a network"]"#,
        r#"["10.0.0.0/8/8"]"#,
        r#"["fe80::1%eth0"]"#,
        r#"[""]"#,
        r#"[7]"#,
    ] {
        let (status, body) =
            admin(base, "POST", "/orgs/acme/keys", &format!(r#"{{"name":"k","allowedNetworks":{bad}}}"#)).await;
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some("INVALID_REQUEST_DATA")), "{bad}: {body}");
        assert!(!body.to_string().contains("not a network"), "never echoed");
    }
    let too_many: Vec<String> = (0..101).map(|i| format!("\"10.0.{i}.0/24\"")).collect();
    let body = format!(r#"{{"name":"k","allowedNetworks":[{}]}}"#, too_many.join(","));
    assert_eq!(admin(base, "POST", "/orgs/acme/keys", &body).await.0, 400);

    // As the core compares them: an IPv4 network written in IPv6 is the IPv4
    // one, and repeats are kept once.
    let (status, same) = admin(
        base,
        "POST",
        "/orgs/acme/keys",
        r#"{"name":"same","allowedNetworks":["::ffff:10.1.0.0/104","10.0.0.1/8","10.0.0.0/8"]}"#,
    )
    .await;
    assert_eq!((status, &same["allowedNetworks"]), (201, &serde_json::json!(["10.0.0.0/8"])), "{same}");
    let (status, remote) = admin(
        base,
        "POST",
        "/orgs/acme/keys",
        r#"{"name":"remote","allowedNetworks":["192.0.2.9/24","2001:db8::/32"]}"#,
    )
    .await;
    assert_eq!(status, 201, "{remote}");
    assert_eq!(remote["allowedNetworks"], serde_json::json!(["192.0.2.0/24", "2001:db8::/32"]), "host bits cleared");
    let (_, local) =
        admin(base, "POST", "/orgs/acme/keys", r#"{"name":"local","allowedNetworks":["127.0.0.1"]}"#).await;
    assert_eq!(local["allowedNetworks"], serde_json::json!(["127.0.0.1/32"]));
    let (remote, local) = (remote["key"].as_str().unwrap().to_owned(), local["key"].as_str().unwrap().to_owned());

    // No proxy is trusted: the client is the connection, whatever it forwards.
    let (status, body) = config(base, &remote, Some("192.0.2.7")).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("NETWORK_NOT_ALLOWED") && !body.contains("192.0.2"), "{body}");
    assert_eq!(config(base, &local, None).await.0, 200);
    assert_eq!(config(base, &local, Some("203.0.113.1")).await.0, 200, "a forwarded header changes nothing");
    (remote, local)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn networks_on_memory() {
    let port = free_port();
    let (_server, _) = start_with(port, None, &[]);
    networks_hold(&format!("http://127.0.0.1:{port}")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn networks_on_postgres_through_a_trusted_proxy() {
    let Some(url) = agx_auth_postgres::testing::fresh_database("networks_on_postgres").await else { return };
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let (server, _) = start_with(port, Some(&url), &[]);
    let (remote, local) = networks_hold(&base).await;
    drop(server);
    // Restarted behind a proxy on loopback: the networks were kept, and the
    // client is now the right-most hop the proxy did not write.
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let (_server, _) = start_with(port, Some(&url), &[("AGX_TRUSTED_PROXIES", "127.0.0.1")]);
    assert_eq!(config(&base, &remote, Some("192.0.2.7")).await.0, 200);
    assert_eq!(config(&base, &remote, Some("[2001:db8::5]:443")).await.0, 200);
    assert_eq!(config(&base, &remote, Some("192.0.2.7, 198.51.100.3")).await.0, 403, "spoofed left-most entry");
    assert_eq!(config(&base, &local, Some("192.0.2.7")).await.0, 403, "the client is no longer the proxy");
    assert_eq!(config(&base, &local, None).await.0, 403, "a proxy naming no client is not one itself");
    let (_, keys) = admin(&base, "GET", "/orgs/acme/keys", "").await;
    let listed: Vec<&Value> = keys.as_array().unwrap().iter().map(|k| &k["allowedNetworks"]).collect();
    let want = [json!(["10.0.0.0/8"]), json!(["192.0.2.0/24", "2001:db8::/32"]), json!(["127.0.0.1/32"])];
    assert_eq!(listed, want.iter().collect::<Vec<_>>());
    // The command line limits keys the same way.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_agx-server"))
        .args(["keys", "create", "--org", "acme", "--name", "cli"])
        .args(["--allowed-network", "198.51.100.7/24", "--allowed-network", "::ffff:203.0.113.9"])
        .env("AGX_DATABASE_URL", &url)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_agx-server"))
        .args(["keys", "create", "--org", "acme", "--name", "bad", "--allowed-network", "10.0.0.0/40"])
        .env("AGX_DATABASE_URL", &url)
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2), "a bad network is a usage error");
    let (_, keys) = admin(&base, "GET", "/orgs/acme/keys", "").await;
    let cli = keys.as_array().unwrap().iter().find(|k| k["name"] == "cli").unwrap();
    assert_eq!(cli["allowedNetworks"], json!(["198.51.100.0/24", "203.0.113.9/32"]));
    // The audit log says what each key was limited to.
    let (_, log) = admin(&base, "GET", "/orgs/acme/audit-log?limit=2", "").await;
    assert_eq!(log["events"][0]["changes"]["allowedNetworks"], "198.51.100.0/24 203.0.113.9/32");
    assert_eq!(log["events"][0]["actor"], "cli");
    assert_eq!(log["events"][1]["changes"]["allowedNetworks"], "127.0.0.1/32");
}
