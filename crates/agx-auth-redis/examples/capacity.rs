//! `cargo xtask bench-cluster` (`cargo run --release -p agx-auth-redis
//! --example capacity [SECONDS]`): how many verdicts a second one Redis
//! shard serves, and how a cluster spreads them.
//!
//! Drives the limiter directly (no HTTP) with 256 verdicts in flight over
//! 100,000 keys, every verdict one exact script call, for SECONDS (default
//! 5) against: the local Redis, then a three-primary cluster started on
//! loopback. For each Redis process it reads its own CPU time (`INFO cpu`)
//! and script calls (`INFO commandstats`) before and after, so the
//! capacity of a shard is stated as what it is on any machine: Redis CPU
//! per verdict, and the verdicts one core can serve at that cost. On this
//! machine the client and every Redis process share two cores, so the
//! throughput column is a floor, not a shard's capacity.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use agx_auth::{EndpointClass, KeyId, Quota, RateLimiter, Timestamp};
use agx_auth_redis::{RedisLimiter, RedisSettings};

const IN_FLIGHT: usize = 256;
const KEYS: u64 = 100_000;

/// One Redis process's CPU seconds and script calls so far.
async fn node_stats(url: &str) -> Result<(f64, f64), String> {
    let client = redis::Client::open(url).map_err(|e| e.to_string())?;
    let mut c = client.get_multiplexed_async_connection().await.map_err(|e| e.to_string())?;
    let info: String = redis::cmd("INFO").arg("everything").query_async(&mut c).await.map_err(|e| e.to_string())?;
    let mut cpu = 0.0;
    let mut calls = 0.0;
    for line in info.lines().map(str::trim) {
        if let Some(v) = line.strip_prefix("used_cpu_sys:").or_else(|| line.strip_prefix("used_cpu_user:")) {
            cpu += v.parse::<f64>().unwrap_or(0.0);
        }
        if let Some(v) = line.strip_prefix("cmdstat_evalsha:").or_else(|| line.strip_prefix("cmdstat_eval:")) {
            calls += v.split(',').find_map(|f| f.strip_prefix("calls=")).and_then(|n| n.parse().ok()).unwrap_or(0.0);
        }
    }
    Ok((cpu, calls))
}

struct Run {
    verdicts: u64,
    elapsed: Duration,
    /// Per node: (CPU seconds, script calls) spent during the run.
    nodes: Vec<(f64, f64)>,
}

async fn drive(limiter: Arc<RedisLimiter>, nodes: &[String], seconds: u64) -> Result<Run, String> {
    let before = futures_join(nodes).await?;
    let (stop, count) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
    let quota = Quota::try_per_minute(1_000_000).ok_or("quota")?;
    let began = Instant::now();
    let workers: Vec<_> = (0..IN_FLIGHT as u64)
        .map(|w| {
            let (limiter, stop, count) = (limiter.clone(), stop.clone(), count.clone());
            tokio::spawn(async move {
                let mut i = w;
                while !stop.load(Ordering::Relaxed) {
                    let key = KeyId(u128::from(i % KEYS).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835));
                    let now = Timestamp::from(std::time::SystemTime::now());
                    if limiter.check(key, EndpointClass::CHAT, quota, now).await.is_ok() {
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                    i += IN_FLIGHT as u64;
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.map_err(|e| e.to_string())?;
    }
    let elapsed = began.elapsed();
    let after = futures_join(nodes).await?;
    let nodes = before.iter().zip(&after).map(|(b, a)| (a.0 - b.0, a.1 - b.1)).collect();
    Ok(Run { verdicts: count.load(Ordering::Relaxed), elapsed, nodes })
}

async fn futures_join(nodes: &[String]) -> Result<Vec<(f64, f64)>, String> {
    let mut out = Vec::with_capacity(nodes.len());
    for node in nodes {
        out.push(node_stats(node).await?);
    }
    Ok(out)
}

fn report(name: &str, run: &Run) {
    let rate = run.verdicts as f64 / run.elapsed.as_secs_f64();
    let calls: f64 = run.nodes.iter().map(|n| n.1).sum();
    let cpu: f64 = run.nodes.iter().map(|n| n.0).sum();
    let per_verdict_us = cpu / calls * 1e6;
    let shares: Vec<String> = run.nodes.iter().map(|n| format!("{:.0} %", n.1 / calls * 100.0)).collect();
    println!(
        "| {name} | {} | {rate:.0} | {per_verdict_us:.1} µs | {:.0} | {} |",
        run.nodes.len(),
        1e6 / per_verdict_us,
        shares.join(" / ")
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() -> Result<(), String> {
    let seconds: u64 = std::env::args().nth(1).map_or(Ok(5), |a| a.parse()).map_err(|e| format!("seconds: {e}"))?;
    let prefix = format!("agx-capacity:{}", std::process::id());
    let settings = RedisSettings { prefix, ..RedisSettings::default() };
    println!(
        "| target | shards | verdicts/s here | Redis CPU / verdict | verdicts/s per shard core | script calls per shard |"
    );
    println!("|---|---|---|---|---|---|");

    let url = agx_auth_redis::testing::url();
    let single = Arc::new(RedisLimiter::connect(&url, settings.clone()).await.map_err(|e| e.to_string())?);
    let run = drive(single, std::slice::from_ref(&url), seconds).await?;
    report("one Redis", &run);

    let cluster = agx_testkit::RedisCluster::start(3, 0).await?;
    let seeds = cluster.urls();
    let limiter = Arc::new(RedisLimiter::connect_cluster(&seeds, settings).await.map_err(|e| e.to_string())?);
    let run = drive(limiter, &seeds, seconds).await?;
    report("Redis Cluster", &run);
    println!(
        "\n({IN_FLIGHT} verdicts in flight over {KEYS} keys for {seconds} s each, one exact script call per verdict; \
         the client and every Redis share this machine's cores)"
    );
    Ok(())
}
