//! `agx-conformance faults --server PATH`: PostgreSQL cut in the middle of
//! load. One server reaches its database through a TCP proxy the run cuts
//! for a while and restores, while 8 connections keep asking with three
//! kinds of key: one verified before the cut (cached), one issued before
//! the cut but never used (so never verified), and new well-formed unknown
//! keys. Each second's answers are counted by kind and status.
//!
//! Asserted: a key never verified before the cut is never admitted during
//! it (fail closed: 503); nothing but 200, 401 and 503 is ever answered; the
//! never-verified key is admitted again within 5 s of the database's
//! return; a key deleted (in the database) during the cut is refused within
//! 1 s of the return; and the usage the server stores for the cached key
//! equals the admissions the client counted.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use agx_auth::{ApiKey, KeyMode};
use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use ring::rand::SystemRandom;
use serde_json::{Value, json};

use crate::blackbox::{Backends, launch, tool_absent};
use crate::client::Client;

const PHASES: [(&str, u64); 3] = [("before", 3), ("cut", 6), ("after", 6)];
/// Answers to requests sent in one phase and answered in the next.
const EDGE: u8 = 3;

async fn status(client: &Client, url: &str, key: &str) -> u16 {
    let Ok(value) = HeaderValue::try_from(key) else { return 0 };
    let headers = [(HeaderName::from_static("x-api-key"), value)];
    client.send("GET", url, &headers, Bytes::new()).await.map_or(0, |r| r.status.as_u16())
}

pub async fn run(server: &str) -> Result<(), String> {
    let Some(url) = agx_auth_postgres::testing::fresh_database("faults server/postgres").await else {
        return tool_absent("faults", "PostgreSQL is not reachable");
    };
    let (host, _) = url.split_once('@').and_then(|(_, r)| r.split_once('/')).ok_or("an unexpected database URL")?;
    let proxy = agx_testkit::Proxy::start(host.to_owned()).await;
    let proxied = url.replacen(host, &proxy.authority(), 1);
    let (process, api) = launch(server, "faults", &Backends { database_url: Some(proxied), redis_url: None }).await?;
    let base = api.base_url.clone();
    let client = Arc::new(Client::new());
    api.call("POST", "/orgs", Some(json!({"id": "f", "name": "F"}))).await?;
    api.call("POST", "/orgs/f/agents", Some(json!({"id": "fa", "name": "FA"}))).await?;
    let body = json!({"name": "k", "rateLimits": {"config": 1_000_000_000}});
    let (_, warm) = api.call("POST", "/orgs/f/keys", Some(body.clone())).await?;
    let (_, cold) = api.call("POST", "/orgs/f/keys", Some(body.clone())).await?;
    let (_, doomed) = api.call("POST", "/orgs/f/keys", Some(body)).await?;
    let key = |v: &Value| v["key"].as_str().map(str::to_owned).ok_or("no key");
    let (warm_key, cold_key, doomed_key) = (key(&warm)?, key(&cold)?, key(&doomed)?);
    let target = format!("{base}/api/public/agents/fa");
    for k in [&warm_key, &doomed_key] {
        if status(&client, &target, k).await != 200 {
            return Err("a key was refused before the cut".into());
        }
    }

    // Load: the phase is shared; each answer is counted under (phase, kind, status).
    let phase = Arc::new(AtomicU8::new(0));
    let counts = Arc::new(std::sync::Mutex::new(BTreeMap::<(u8, &'static str, u16), u64>::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for i in 0..8usize {
        let (client, phase, counts, stop, target) =
            (client.clone(), phase.clone(), counts.clone(), stop.clone(), target.clone());
        let (warm_key, cold_key) = (warm_key.clone(), cold_key.clone());
        tasks.push(tokio::spawn(async move {
            let rng = SystemRandom::new();
            let mut n = i;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let p = phase.load(Ordering::Relaxed);
                let (kind, key) = match n % 3 {
                    0 => ("warm", warm_key.clone()),
                    // The cold key is first sent once the database is cut: never verified before.
                    1 if p > 0 => ("cold", cold_key.clone()),
                    1 => continue,
                    _ => (
                        "unknown",
                        ApiKey::generate(&rng, KeyMode::Live)
                            .map_or_else(|_| String::new(), |k| k.expose_secret().to_owned()),
                    ),
                };
                let s = status(&client, &target, &key).await;
                let p = if phase.load(Ordering::Relaxed) == p { p } else { EDGE };
                *counts.lock().unwrap_or_else(|e| e.into_inner()).entry((p, kind, s)).or_default() += 1;
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(PHASES[0].1)).await;
    proxy.cut().await;
    phase.store(1, Ordering::Relaxed);
    // Deleted in the database itself while this server cannot see it.
    let (direct, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let doomed_id = doomed["id"].as_str().ok_or("no id")?.to_owned();
    direct
        .execute("UPDATE api_keys SET deleted_at = now() WHERE id = $1", &[&doomed_id])
        .await
        .map_err(|e| e.to_string())?;
    tokio::time::sleep(Duration::from_secs(PHASES[1].1)).await;
    proxy.restore();
    let restored = Instant::now();
    phase.store(2, Ordering::Relaxed);
    let mut doomed_refused = None;
    let mut cold_back = None;
    while restored.elapsed() < Duration::from_secs(PHASES[2].1) {
        if doomed_refused.is_none() && status(&client, &target, &doomed_key).await == 401 {
            doomed_refused = Some(restored.elapsed());
        }
        if cold_back.is_none() && status(&client, &target, &cold_key).await == 200 {
            cold_back = Some(restored.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.map_err(|e| e.to_string())?;
    }
    let counts = counts.lock().unwrap_or_else(|e| e.into_inner()).clone();
    println!("\n| phase | kind | status | answers |\n|---|---|---|---|");
    for ((p, kind, s), n) in &counts {
        let name = PHASES.get(usize::from(*p)).map_or("at a change of phase", |ph| ph.0);
        println!("| {name} | {kind} | {s} | {n} |");
    }
    let mut failures = Vec::new();
    if let Some(n) = counts.get(&(1, "cold", 200)) {
        failures.push(format!("{n} admissions of a never-verified key during the cut"));
    }
    if !counts.contains_key(&(1, "cold", 503)) {
        failures.push("the never-verified key was not tried during the cut".into());
    }
    for kind in ["warm", "unknown"] {
        if let Some(n) = counts.get(&(0, kind, 503)).or(counts.get(&(2, kind, 503))) {
            // Once the database is back, its first answers may still be on their way.
            if *n > 8 {
                failures.push(format!("{n} × 503 for the {kind} key while the database was up"));
            }
        }
    }
    for ((_, kind, s), n) in &counts {
        if ![200, 401, 503].contains(s) {
            failures.push(format!("{n} × {s} for the {kind} key"));
        }
    }
    match doomed_refused {
        Some(t) if t <= Duration::from_secs(1) => {}
        other => failures.push(format!("the key deleted during the cut was refused after {other:?}, not within 1 s")),
    }
    match cold_back {
        Some(t) if t <= Duration::from_secs(5) => {}
        other => failures.push(format!("the never-verified key came back after {other:?}, not within 5 s")),
    }
    // Usage: what the server stored for the cached key against what the client saw admitted.
    let admitted: u64 =
        counts.iter().filter(|((_, k, s), _)| *k == "warm" && *s == 200).map(|(_, n)| n).sum::<u64>() + 1;
    let usage_path = format!("/orgs/f/keys/{}/usage", warm["id"].as_str().unwrap_or_default());
    let (_, usage) = api.call("GET", &usage_path, None).await?;
    let stored: u64 =
        usage["usage"].as_array().map_or(0, |days| days.iter().filter_map(|d| d["requests"].as_u64()).sum());
    if stored != admitted {
        failures.push(format!("usage stored {stored} for the cached key, the client saw {admitted} admitted"));
    }
    drop(process);
    println!(
        "\nfaults: PostgreSQL cut for {} s under load: the deleted key refused {doomed_refused:?} after the return, \
         the never-verified key back after {cold_back:?}, usage {stored} stored = {admitted} admitted; {}",
        PHASES[1].1,
        if failures.is_empty() { "every check held".to_owned() } else { failures.join("; ") }
    );
    if failures.is_empty() { Ok(()) } else { Err("the fault run failed".into()) }
}
