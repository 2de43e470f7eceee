//! `agx-conformance soak --server PATH [--secs N] [--valid N]`: a flood of
//! distinct keys against one server on PostgreSQL (where the key cache and
//! its negative side live), sampling the server's resident memory.
//!
//! Every tenth request carries one of the valid keys (in turn), half of the
//! rest a new well-formed key no one issued (a valid checksum, so it reaches
//! the store), the other half a new junk string (refused by its checksum).
//! Each second the table gets a row: requests so far by kind and status,
//! and RSS. The key cache's misses during the flood, less one per unknown
//! key (each is new, so each misses once), are the valid keys' misses: they
//! are compared with what the positive TTL alone explains (each valid key
//! reloaded once per TTL), so that unknown keys pushing valid ones out of
//! the cache would show.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use agx_auth::{ApiKey, KeyMode};
use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use ring::rand::{SecureRandom, SystemRandom};
use serde_json::json;

use crate::blackbox::{Backends, launch};
use crate::client::Client;

const CONCURRENCY: usize = 32;
const AGENT: &str = "soak-agent";

struct Counts {
    /// (kind, status) → requests.
    by: std::sync::Mutex<BTreeMap<(&'static str, u16), u64>>,
    sent: AtomicU64,
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix("VmRSS:").map(|v| v.trim().trim_end_matches(" kB").to_owned()))
        })
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// The key cache's (hits, misses) and the lookups the filter of known keys
/// refused before the cache (0 without a filter).
async fn cache_stats(client: &Client, base: &str) -> Result<(f64, f64, f64), String> {
    let reply = client.send("GET", &format!("{base}/metrics"), &[], Bytes::new()).await?;
    let text = String::from_utf8_lossy(&reply.body);
    let read = |name: &str| {
        text.lines().find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse::<f64>().ok())).unwrap_or(f64::NAN)
    };
    let refused = read("agx_key_filter_refused_total ");
    Ok((
        read("agx_key_cache_hits_total "),
        read("agx_key_cache_misses_total "),
        if refused.is_nan() { 0.0 } else { refused },
    ))
}

pub async fn run(server: &str, secs: u64, valid: usize) -> Result<(), String> {
    let Some(url) = agx_auth_postgres::testing::fresh_database("soak server/postgres").await else {
        return crate::blackbox::tool_absent("soak", "PostgreSQL is not reachable");
    };
    let backends = Backends { database_url: Some(url), ..Backends::default() };
    let (process, api) = launch(server, "soak", &backends).await?;
    let pid = process.pid();
    let base = api.base_url.clone();
    let client = Arc::new(Client::new());
    api.call("POST", "/orgs", Some(json!({"id": "soak", "name": "Soak"}))).await?;
    api.call("POST", "/orgs/soak/agents", Some(json!({"id": AGENT, "name": "Soak"}))).await?;
    let mut keys = Vec::with_capacity(valid);
    for i in 0..valid {
        let body = json!({"name": format!("v{i}"), "rateLimits": {"config": 1_000_000_000}});
        let (_, created) = api.call("POST", "/orgs/soak/keys", Some(body)).await?;
        keys.push(created["key"].as_str().ok_or("no key")?.to_owned());
    }
    let keys = Arc::new(keys);
    eprintln!("soak: {valid} valid keys made; the flood runs {secs} s, {CONCURRENCY} connections");

    let (hits_before, misses_before, refused_before) = cache_stats(&client, &base).await?;
    let counts = Arc::new(Counts { by: std::sync::Mutex::default(), sent: AtomicU64::new(0) });
    let deadline = Instant::now() + Duration::from_secs(secs);
    let url = format!("{base}/api/public/agents/{AGENT}");
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let (client, counts, keys, url) = (client.clone(), counts.clone(), keys.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let rng = SystemRandom::new();
            while Instant::now() < deadline {
                let n = counts.sent.fetch_add(1, Ordering::Relaxed);
                let (kind, key) = match n % 10 {
                    0 => ("valid", keys[(n / 10) as usize % keys.len()].clone()),
                    1..=5 => (
                        "unknown",
                        ApiKey::generate(&rng, KeyMode::Live).map_err(|_| "rng")?.expose_secret().to_owned(),
                    ),
                    _ => {
                        let mut raw = [0u8; 16];
                        rng.fill(&mut raw).map_err(|_| "rng")?;
                        ("junk", format!("agx_live_{}", hex::encode(raw)))
                    }
                };
                let headers = [(HeaderName::from_static("x-api-key"), HeaderValue::try_from(key).map_err(|_| "key")?)];
                let status = match client.send("GET", &url, &headers, Bytes::new()).await {
                    Ok(reply) => reply.status.as_u16(),
                    Err(_) => 0,
                };
                *counts.by.lock().unwrap_or_else(|e| e.into_inner()).entry((kind, status)).or_default() += 1;
            }
            Ok::<(), &'static str>(())
        }));
    }
    println!(
        "\n| second | requests | valid 200 | unknown 401 | junk 401 | other | server RSS |\n|---|---|---|---|---|---|---|"
    );
    let started = Instant::now();
    let mut samples = Vec::new();
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let by = counts.by.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let get = |k: &str, s: u16| by.get(&(k, s)).copied().unwrap_or(0);
        let total: u64 = by.values().sum();
        let other = total - get("valid", 200) - get("unknown", 401) - get("junk", 401);
        let rss = rss_kib(pid);
        samples.push((total, rss));
        let second = started.elapsed().as_secs();
        if second.is_multiple_of(10) || second == secs {
            println!(
                "| {second} | {total} | {} | {} | {} | {other} | {} MiB |",
                get("valid", 200),
                get("unknown", 401),
                get("junk", 401),
                rss / 1024
            );
        }
    }
    for task in tasks {
        task.await.map_err(|e| e.to_string())??;
    }
    let by = counts.by.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let wrong: Vec<String> = by
        .iter()
        .filter(|((kind, status), _)| !matches!((*kind, *status), ("valid", 200) | ("unknown", 401) | ("junk", 401)))
        .map(|((kind, status), n)| format!("{n} × {kind} → {status}"))
        .collect();

    let (hits_after, misses_after, refused_after) = cache_stats(&client, &base).await?;
    drop(process);

    let total: u64 = by.values().sum();
    let unknown: u64 = by.iter().filter(|((k, _), _)| *k == "unknown").map(|(_, n)| n).sum();
    let junk: u64 = by.iter().filter(|((k, _), _)| *k == "junk").map(|(_, n)| n).sum();
    let peak = samples.iter().map(|s| s.1).max().unwrap_or(0);
    let valid_requests: u64 = by.iter().filter(|((k, _), _)| *k == "valid").map(|(_, n)| n).sum();
    // Unknown keys the filter refused never reach the cache; the rest miss once each.
    let filtered = refused_after - refused_before;
    let valid_misses = (misses_after - misses_before - (unknown as f64 - filtered)).max(0.0);
    let hits = hits_after - hits_before;
    // Each valid key is reloaded once when first used and once per positive TTL (30 s) after.
    let by_ttl = keys.len() as f64 * (1.0 + secs as f64 / 30.0);
    let half = samples.get(samples.len() / 2).map_or(0, |s| s.1);
    println!(
        "\nsoak: {total} requests in {secs} s ({unknown} distinct unknown well-formed keys, {filtered:.0} of them \
         refused by the filter of known keys, {junk} junk), RSS {} MiB at half-time, {} MiB peak; \
         valid keys: {valid_requests} requests, {valid_misses:.0} cache misses ({by_ttl:.0} explained by the TTL), hit rate {:.2} % \
         (cache hits {hits:.0}); {}",
        half / 1024,
        peak / 1024,
        100.0 * (1.0 - valid_misses / valid_requests.max(1) as f64),
        if wrong.is_empty() {
            "every answer as expected".to_owned()
        } else {
            format!("unexpected: {}", wrong.join(", "))
        }
    );
    if wrong.is_empty() { Ok(()) } else { Err("the soak got answers other than the contract's".into()) }
}
