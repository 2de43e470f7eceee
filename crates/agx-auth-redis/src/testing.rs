//! Redis for tests, under the workspace's rule for absent services
//! ([`agx_testkit::service`]).

use std::time::Duration;

use crate::{RedisLimiter, RedisSettings};

/// The server tests use: `AGX_TEST_REDIS_URL`, or the local default.
pub fn url() -> String {
    std::env::var("AGX_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A prefix no other test run shares, so tests need no flush and can run
/// side by side on one Redis.
pub fn unique_prefix(label: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("agx-test:{label}:{}:{nanos}", std::process::id())
}

/// Settings for a test: a unique prefix and the caller's clock (tests hold a
/// manual clock).
pub fn settings(label: &str) -> RedisSettings {
    RedisSettings { prefix: unique_prefix(label), time_source: crate::TimeSource::Caller, ..RedisSettings::default() }
}

/// The test Redis's URL once it answers a `PING`, or `None` (after printing
/// why) when it is absent and not required.
///
/// # Panics
///
/// When Redis is absent and `AGX_REQUIRE_SERVICES=1`.
pub async fn reachable(label: &str) -> Option<String> {
    let url = url();
    let ping = async {
        let client = redis::Client::open(url.as_str())?;
        let mut connection = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<String>(&mut connection).await
    };
    let reached = match tokio::time::timeout(Duration::from_secs(2), ping).await {
        Ok(reply) => reply.map_err(|e| e.to_string()),
        Err(_) => Err("no answer within 2 s".to_owned()),
    };
    agx_testkit::service("Redis", &agx_auth::redact_url(&url), label, reached).map(|_| url)
}

/// A limiter on the test Redis, or `None` (after printing why) when Redis is
/// absent and not required.
///
/// # Panics
///
/// When Redis is absent and `AGX_REQUIRE_SERVICES=1`, or when it answers a
/// `PING` but the limiter cannot start.
pub async fn limiter(label: &str, settings: RedisSettings) -> Option<RedisLimiter> {
    let url = reachable(label).await?;
    match RedisLimiter::connect(&url, settings).await {
        Ok(limiter) => Some(limiter),
        Err(e) => panic!("Redis answers but the limiter cannot start: {e}"),
    }
}

/// A real Redis Cluster on loopback ports ([`agx_testkit::RedisCluster`]),
/// or `None` (after printing why) when `redis-server` cannot run one and
/// none is required.
///
/// # Panics
///
/// When the cluster cannot start and `AGX_REQUIRE_SERVICES=1`.
pub async fn cluster(label: &str, primaries: usize, replicas: usize) -> Option<agx_testkit::RedisCluster> {
    let started = agx_testkit::RedisCluster::start(primaries, replicas).await;
    agx_testkit::service("A local Redis Cluster", "redis-server --cluster-enabled yes", label, started)
}

/// A limiter on `cluster`, with the caller's clock and a unique prefix.
///
/// # Panics
///
/// When the cluster answers but the limiter cannot start on it.
pub async fn cluster_limiter(cluster: &agx_testkit::RedisCluster, settings: RedisSettings) -> RedisLimiter {
    match RedisLimiter::connect_cluster(&cluster.urls(), settings).await {
        Ok(limiter) => limiter,
        Err(e) => panic!("the cluster answers but the limiter cannot start on it: {e}"),
    }
}

/// `n` checks of one cell at one instant, all in flight together and
/// alternating between two instances `a` and `b`: the decisions, in the
/// order the calls were made. The multi-instance tests count what this
/// admits against the burst.
///
/// # Panics
///
/// When a check fails or its task panics.
pub async fn at_once(
    a: &std::sync::Arc<RedisLimiter>,
    b: &std::sync::Arc<RedisLimiter>,
    n: usize,
    cell: (agx_auth::KeyId, agx_auth::EndpointClass),
    quota: agx_auth::Quota,
    now: agx_auth::Timestamp,
) -> Vec<agx_auth::RateDecision> {
    use agx_auth::RateLimiter;
    let calls: Vec<_> = (0..n)
        .map(|i| {
            let limiter = if i % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move { limiter.check(cell.0, cell.1, quota, now).await.expect("a check") })
        })
        .collect();
    let mut decisions = Vec::with_capacity(n);
    for call in calls {
        decisions.push(call.await.expect("a check's task"));
    }
    decisions
}
