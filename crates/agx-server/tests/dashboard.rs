//! The dashboard's sign-in against the binary, without a browser (the
//! browser walk is `cargo xtask browser`): the cookie's flags, the trusted
//! proxy rule for `Secure`, expiry, the pages' security headers, and, on
//! PostgreSQL, one session and one key seen by two instances.

mod common;

use std::time::Duration;

use common::{exchange, free_port, start_with};

const TOKEN: &str = "test-admin-token";

/// Signs in with the admin token; returns the `Set-Cookie` of the session.
async fn sign_in(base: &str, headers: &[(&str, &str)]) -> String {
    sign_in_with(base, TOKEN, headers).await
}

async fn sign_in_with(base: &str, token: &str, headers: &[(&str, &str)]) -> String {
    let (status, got, _) = exchange("GET", &format!("{base}/dashboard/login"), headers, "").await;
    assert_eq!(status, 200);
    let login = got.get("set-cookie").unwrap().to_str().unwrap().to_owned();
    let value = login.split(';').next().unwrap().strip_prefix("agx_login=").unwrap().to_owned();
    let cookie = format!("agx_login={value}");
    let mut with: Vec<(&str, &str)> = vec![("cookie", &cookie), ("content-type", "application/x-www-form-urlencoded")];
    with.extend_from_slice(headers);
    let form = format!("csrf={value}&token={token}");
    let (status, got, _) = exchange("POST", &format!("{base}/dashboard/login"), &with, &form).await;
    assert_eq!(status, 303);
    got.get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("agx_session="))
        .expect("a session cookie")
}

fn cookie_of(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_strict_secure_behind_a_trusted_proxy_and_expire() {
    let port = free_port();
    let env = [("AGX_TRUSTED_PROXIES", "127.0.0.1"), ("AGX_SESSION_TTL", "2s")];
    let (_server, _) = start_with(port, None, &env);
    let base = format!("http://127.0.0.1:{port}");

    let plain = sign_in(&base, &[]).await;
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=2"] {
        assert!(plain.contains(flag), "{plain}");
    }
    assert!(!plain.contains("Secure"), "no TLS said: {plain}");
    let tls = sign_in(&base, &[("x-forwarded-proto", "https")]).await;
    assert!(tls.contains("Secure"), "the trusted proxy says https: {tls}");

    let cookie = cookie_of(&plain);
    let keys = format!("{base}/dashboard/orgs/demo-org/settings/api-keys");
    let (status, got, page) = exchange("GET", &keys, &[("cookie", &cookie)], "").await;
    assert_eq!(status, 200, "{page}");
    let csp = got.get("content-security-policy").unwrap().to_str().unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'"), "{csp}");
    assert_eq!(got.get("x-frame-options").unwrap(), "DENY");
    assert!(!page.contains("<script>"), "no inline script");
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let (status, got, _) = exchange("GET", &keys, &[("cookie", &cookie)], "").await;
    assert_eq!((status, got.get("location").map(|v| v.to_str().unwrap())), (303, Some("/dashboard/login")), "expired");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_forwarded_proto_is_ignored() {
    let port = free_port();
    let (_server, _) = start_with(port, None, &[]);
    let set = sign_in(&format!("http://127.0.0.1:{port}"), &[("x-forwarded-proto", "https")]).await;
    assert!(!set.contains("Secure"), "anyone may send X-Forwarded-Proto: {set}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_sessions_and_keys() {
    let Some(url) = agx_auth_postgres::testing::fresh_database("dashboard_two_instances").await else { return };
    let (a, b) = (free_port(), free_port());
    let (_first, _) = start_with(a, Some(&url), &[]);
    let (_second, _) = start_with(b, Some(&url), &[]);
    let (base_a, base_b) = (format!("http://127.0.0.1:{a}"), format!("http://127.0.0.1:{b}"));
    let admin = [("authorization", "Bearer test-admin-token"), ("content-type", "application/json")];
    let (status, _, _) =
        exchange("POST", &format!("{base_a}/api/admin/orgs"), &admin, r#"{"id":"shared","name":"S"}"#).await;
    assert_eq!(status, 201);

    // Signed in on A, the session works on B, with its CSRF token.
    let cookie = cookie_of(&sign_in(&base_a, &[]).await);
    let keys_b = format!("{base_b}/dashboard/orgs/shared/settings/api-keys");
    let (status, _, page) = exchange("GET", &keys_b, &[("cookie", &cookie)], "").await;
    assert_eq!(status, 200, "{page}");
    let csrf = page.split("name=\"csrf-token\" content=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    let with = [("cookie", cookie.as_str()), ("x-csrf-token", csrf.as_str()), ("content-type", "application/json")];
    let (status, _, created) =
        exchange("POST", &format!("{base_a}/api/admin/orgs/shared/keys"), &with, r#"{"name":"on A"}"#).await;
    assert_eq!(status, 201, "{created}");
    // The key made through A's dashboard is on B's page.
    let (_, _, page) = exchange("GET", &keys_b, &[("cookie", &cookie)], "").await;
    assert!(page.contains("<td>on A</td>"), "{page}");
    let plaintext = serde_json::from_str::<serde_json::Value>(&created).unwrap()["key"].as_str().unwrap().to_owned();
    assert!(!page.contains(&plaintext), "never the key itself");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guesses_doubled_cookies_and_foreign_deletes_get_nothing() {
    let port = free_port();
    let (_server, _) = start_with(port, None, &[]);
    let base = format!("http://127.0.0.1:{port}");
    let admin = [("authorization", "Bearer test-admin-token"), ("content-type", "application/json")];
    for id in ["mine", "theirs"] {
        let body = format!(r#"{{"id":"{id}","name":"{id}"}}"#);
        assert_eq!(exchange("POST", &format!("{base}/api/admin/orgs"), &admin, &body).await.0, 201);
    }
    let url = format!("{base}/api/admin/orgs/mine/dashboard-tokens");
    let (_, _, created) = exchange("POST", &url, &admin, r#"{"name":"t"}"#).await;
    let created: serde_json::Value = serde_json::from_str(&created).unwrap();
    let (token, id) = (created["token"].as_str().unwrap(), created["id"].as_str().unwrap());
    let session = cookie_of(&sign_in_with(&base, token, &[]).await);
    let page = format!("{base}/dashboard/orgs/mine/settings/api-keys");
    assert_eq!(exchange("GET", &page, &[("cookie", &session)], "").await.0, 200);

    // Deleting the token through another org's path is a 404 and ends nothing.
    let foreign = format!("{base}/api/admin/orgs/theirs/dashboard-tokens/{id}");
    assert_eq!(exchange("DELETE", &foreign, &admin, "").await.0, 404);
    assert_eq!(exchange("GET", &page, &[("cookie", &session)], "").await.0, 200, "the session lives on");

    // A second agx_session cookie (one planted for a narrower path is sent first): signed out.
    let doubled = format!("agx_session=planted; {session}");
    assert_eq!(exchange("GET", &page, &[("cookie", &doubled)], "").await.0, 303);

    // Deleted through its own org's path, the token's session ends.
    let own = format!("{base}/api/admin/orgs/mine/dashboard-tokens/{id}");
    assert_eq!(exchange("DELETE", &own, &admin, "").await.0, 204);
    assert_eq!(exchange("GET", &page, &[("cookie", &session)], "").await.0, 303);

    // A hundred wrong tokens a minute from one address; the next is not even looked at, a right one neither.
    let orgs = format!("{base}/api/admin/orgs");
    for i in 0..100 {
        let bearer = format!("Bearer agxd_wrong{i}");
        assert_eq!(exchange("GET", &orgs, &[("authorization", &bearer)], "").await.0, 401);
    }
    let (status, _, body) = exchange("GET", &orgs, &[("authorization", "Bearer agxd_wrong")], "").await;
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("TOO_MANY_ATTEMPTS"), "{body}");
    assert_eq!(exchange("GET", &orgs, &admin, "").await.0, 429, "even the right token waits");
}

#[test]
fn a_session_lifetime_past_a_year_is_refused_at_start() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_agx-server"))
        .env("AGX_BIND", "127.0.0.1:0")
        .env("AGX_ADMIN_TOKEN", TOKEN)
        .env("AGX_SESSION_TTL", "500000000000years")
        .env_remove("AGX_DATABASE_URL")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--session-ttl"), "{}", String::from_utf8_lossy(&out.stderr));
}
