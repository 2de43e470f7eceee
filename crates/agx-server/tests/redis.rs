//! The server with `--redis-url`: both outage modes end to end, through a
//! proxy in front of Redis that the test cuts, and a clear refusal to start
//! when Redis is unreachable.

mod common;

use std::time::{Duration, Instant};

use agx_testkit::Proxy;
use common::{call, free_port, start_with};

const CONFIG: &str = "/api/public/agents/demo-agent";

/// The server on memory, with Redis behind a proxy; `None` when Redis is
/// absent and not required.
async fn behind_proxy(label: &str, outage: &str) -> Option<(common::Server, String, String, Proxy)> {
    let url = agx_auth_redis::testing::reachable(label).await?;
    let authority = url.trim_start_matches("redis://").split('/').next().unwrap().to_owned();
    let proxy = Proxy::start(authority).await;
    let port = free_port();
    let redis_url = format!("redis://{}", proxy.authority());
    let env = [("AGX_REDIS_URL", redis_url.as_str()), ("AGX_REDIS_OUTAGE", outage)];
    let (server, key) = tokio::task::block_in_place(|| start_with(port, None, &env));
    Some((server, format!("http://127.0.0.1:{port}"), key.expect("the demo key"), proxy))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cells_live_under_the_configured_prefix() {
    let Some(url) = agx_auth_redis::testing::reachable("server redis prefix").await else { return };
    let prefix = agx_auth_redis::testing::unique_prefix("server-prefix");
    let port = free_port();
    let env = [("AGX_REDIS_URL", url.as_str()), ("AGX_REDIS_PREFIX", prefix.as_str()), ("AGX_REDIS_TIMEOUT_MS", "500")];
    let (_server, key) = tokio::task::block_in_place(|| start_with(port, None, &env));
    let (status, _) =
        call("GET", &format!("http://127.0.0.1:{port}{CONFIG}"), &[("x-api-key", &key.unwrap())], "").await;
    assert_eq!(status, 200);
    let client = redis::Client::open(url).unwrap();
    let mut direct = client.get_multiplexed_async_connection().await.unwrap();
    let cells: Vec<String> = redis::cmd("KEYS").arg(format!("{prefix}:*")).query_async(&mut direct).await.unwrap();
    assert_eq!(cells.len(), 1, "{cells:?}");
    assert!(cells[0].ends_with(":config"), "{cells:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_fails_closed_by_default_and_recovers() {
    let Some((_server, base, key, proxy)) = behind_proxy("server fail closed", "closed").await else { return };
    let auth = ("x-api-key", key.as_str());
    assert_eq!(call("GET", &format!("{base}{CONFIG}"), &[auth], "").await.0, 200);
    let (status, ready) = call("GET", &format!("{base}/readyz"), &[], "").await;
    assert_eq!(status, 200, "{ready}");
    assert!(ready.contains("redis rate limits"), "{ready}");

    proxy.cut().await;
    let (status, body) = call("GET", &format!("{base}{CONFIG}"), &[auth], "").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("AUTH_UNAVAILABLE"), "{body}");
    assert_eq!(call("GET", &format!("{base}/readyz"), &[], "").await.0, 503);
    let (_, metrics) = call("GET", &format!("{base}/metrics"), &[], "").await;
    assert!(metrics.contains("agx_rate_limiter_outage 1"), "{metrics}");

    proxy.restore();
    let started = Instant::now();
    while call("GET", &format!("{base}{CONFIG}"), &[auth], "").await.0 != 200 {
        assert!(started.elapsed() < Duration::from_secs(10), "no recovery within 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("server, fail closed: recovered {:?} after Redis returned", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_with_local_fallback_keeps_serving_with_a_per_instance_limit() {
    let Some((_server, base, key, proxy)) = behind_proxy("server fail open local", "local").await else { return };
    let auth = ("x-api-key", key.as_str());
    assert_eq!(call("GET", &format!("{base}{CONFIG}"), &[auth], "").await.0, 200);
    proxy.cut().await;
    // The config class allows 120 a minute: the local limiter admits its burst, then refuses.
    let mut statuses = Vec::new();
    for _ in 0..125 {
        statuses.push(call("GET", &format!("{base}{CONFIG}"), &[auth], "").await.0);
    }
    let admitted = statuses.iter().filter(|&&s| s == 200).count();
    assert!(statuses.iter().all(|&s| s == 200 || s == 429), "{statuses:?}");
    assert!((120..=122).contains(&admitted), "{admitted} admitted by the local limiter");
    let (status, ready) = call("GET", &format!("{base}/readyz"), &[], "").await;
    assert_eq!(status, 200, "{ready}");
    assert!(ready.contains("per-instance rate limits"), "{ready}");
    proxy.restore();
    let started = Instant::now();
    loop {
        let (_, metrics) = call("GET", &format!("{base}/metrics"), &[], "").await;
        if metrics.contains("agx_rate_limiter_outage 0") {
            assert!(metrics.contains("agx_rate_limiter_outages_total 1"), "{metrics}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "no recovery within 10 s");
        call("GET", &format!("{base}{CONFIG}"), &[auth], "").await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn an_unreachable_redis_stops_the_server_with_a_clear_error() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_agx-server"))
        .env("AGX_BIND", format!("127.0.0.1:{}", free_port()))
        .env("AGX_ADMIN_TOKEN", "test-admin-token")
        .env("AGX_REDIS_URL", "redis://:hunter2@127.0.0.1:1/0")
        .env_remove("AGX_DATABASE_URL")
        .output()
        .expect("the binary runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot reach Redis at redis://:***@127.0.0.1:1/0"), "{stderr}");
    assert!(!stderr.contains("hunter2") && !String::from_utf8_lossy(&output.stdout).contains("hunter2"));
}
