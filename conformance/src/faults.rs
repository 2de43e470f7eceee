//! `agx-conformance faults --server PATH`: a service taken away in the
//! middle of load, and given back. Four scenarios, one server each, on a
//! fresh PostgreSQL database:
//!
//! 1. **PostgreSQL cut**: the server reaches its database through a TCP
//!    proxy, which drops every link and refuses new ones for a while.
//! 2. **PostgreSQL stopped**: the local cluster itself is stopped
//!    (`pg_ctlcluster … stop -m fast`, which ends every connection) and
//!    started again. Run this alone: every other user of the cluster loses
//!    it too.
//! 3. **Redis cut, `--redis-outage closed`** and 4. **Redis cut,
//!    `--redis-outage local`**: the server reaches Redis through the proxy.
//!
//! While each fault lasts, 8 connections keep asking with up to three kinds
//! of key: one verified before the fault (`warm`, cached), one issued before
//! it but never used (`cold`, so never verified: PostgreSQL scenarios only),
//! and fresh well-formed unknown keys. Every answer is counted by the second
//! it arrived in and by phase, kind and status.
//!
//! Asserted, in every scenario: nothing but the contract's statuses; no
//! panic in the server's log; usage stored for the warm key equals the
//! admissions the client counted; and recovery within [`RECOVERY`] of the
//! service's return. For PostgreSQL: the never-verified key is never
//! admitted during the fault (fail closed: 503) while the cached one keeps
//! being served, and a key deleted by another instance (with its `NOTIFY`)
//! while this one could not hear is refused within 1 s of the return. For
//! Redis: unknown keys stay 401 (the limiter is not asked for them);
//! `closed` admits nothing during the cut, `local` keeps admitting with no
//! 503; the outage is warned about once; and the warm key's admissions over
//! the whole run stay within what the global limit (plus, under `local`, one
//! instance's own limit) allows. Where nothing can be judged during the
//! fault, the verify API must answer 503 `AUTH_UNAVAILABLE` too.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use agx_auth::{ApiKey, KeyMode};
use agx_testkit::Proxy;
use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use ring::rand::SystemRandom;
use serde_json::{Value, json};

use crate::blackbox::{AdminApi, Backends, launch_logged, tool_absent};
use crate::client::Client;

/// How long the load runs before the fault, and after the return. How long
/// the fault lasts is the caller's (`--secs`, 8 s by default: long enough
/// that a reconnection backoff of more than a second would show).
const BEFORE: Duration = Duration::from_secs(3);
const AFTER: Duration = Duration::from_secs(6);
/// The documented bound: a service that returns is in use again within this.
const RECOVERY: Duration = Duration::from_secs(2);
/// A key deleted while the server could not hear is refused within this of the return.
const REVOKED_WITHIN: Duration = Duration::from_secs(1);
/// The warm key's quota in the Redis scenarios, per minute: small enough that
/// the load meets it, so that the limit's exactness across the cut is tested.
const REDIS_QUOTA: u64 = 600;
const CONNECTIONS: usize = 8;

/// Answers to requests sent in one phase and answered in the next.
const EDGE: u8 = 3;
const PHASES: [&str; 4] = ["before", "fault", "after", "at a change"];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Scenario {
    PostgresCut,
    PostgresStopped,
    RedisClosed,
    RedisLocal,
}

impl Scenario {
    const ALL: [Scenario; 4] =
        [Scenario::PostgresCut, Scenario::PostgresStopped, Scenario::RedisClosed, Scenario::RedisLocal];

    fn name(self) -> &'static str {
        match self {
            Scenario::PostgresCut => "PostgreSQL cut at a proxy",
            Scenario::PostgresStopped => "PostgreSQL cluster stopped",
            Scenario::RedisClosed => "Redis cut, --redis-outage closed",
            Scenario::RedisLocal => "Redis cut, --redis-outage local",
        }
    }

    fn redis(self) -> bool {
        matches!(self, Scenario::RedisClosed | Scenario::RedisLocal)
    }
}

/// What one scenario takes away, and gives back.
enum Fault {
    /// The TCP proxy in front of the service: every link dropped, new ones refused.
    Proxy(Proxy),
    /// The PostgreSQL cluster itself.
    Cluster(Cluster),
}

/// When a fault began, was surely in place, was last seen in place, and
/// was first seen gone, measured from the start of the load. An answer is
/// counted in a phase only when the whole exchange lies inside it:
/// `before` (answered before the fault began), `fault` (sent once it was in
/// place and answered while it was still seen in place), `after` (sent once
/// the service was seen back); anything else is `at a change`.
#[derive(Clone, Copy, Default)]
struct Timeline {
    began: Duration,
    down: Duration,
    last_down: Duration,
    back: Duration,
}

impl Timeline {
    fn phase(&self, sent: Duration, answered: Duration) -> u8 {
        if answered < self.began {
            0
        } else if sent >= self.down && answered <= self.last_down {
            1
        } else if sent >= self.back {
            2
        } else {
            EDGE
        }
    }
}

impl Fault {
    /// Takes the service away; sets `began` and `down`.
    async fn take(&mut self, load: &Load, timeline: &mut Timeline) -> Result<(), String> {
        timeline.began = load.now();
        match self {
            Fault::Proxy(proxy) => proxy.cut().await,
            Fault::Cluster(cluster) => cluster.stop().await?,
        }
        timeline.down = load.now();
        load.faulted.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// Gives the service back; sets `last_down` and `back`. A proxy is back
    /// the moment it is restored; a cluster when a new connection to `url`
    /// is first answered, found by trying every 2 ms while it starts (its
    /// `pg_ctlcluster start` returns later than that).
    async fn give_back(&mut self, load: &Load, timeline: &mut Timeline, url: &str) -> Result<(), String> {
        match self {
            Fault::Proxy(proxy) => {
                timeline.last_down = load.now();
                proxy.restore();
                timeline.back = load.now();
                Ok(())
            }
            Fault::Cluster(cluster) => {
                cluster.begin_start();
                let deadline = Instant::now() + Duration::from_secs(30);
                loop {
                    let tried = load.now();
                    if answers(url).await {
                        timeline.back = load.now();
                        return Ok(());
                    }
                    timeline.last_down = tried;
                    if Instant::now() > deadline {
                        return Err("PostgreSQL did not come back within 30 s".to_owned());
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
        }
    }
}

/// A local PostgreSQL cluster that `pg_ctlcluster` controls. Started again
/// when dropped, should a scenario end early while it is stopped.
struct Cluster {
    version: String,
    name: String,
    stopped: bool,
    /// `pg_ctlcluster start`, which returns a while after the cluster first
    /// answers: awaited at the end of the scenario, not at the return.
    starting: Option<tokio::task::JoinHandle<std::io::Result<std::process::Output>>>,
}

impl Cluster {
    /// The cluster `pg_lsclusters` lists online on `port`.
    fn find(port: &str) -> Option<Cluster> {
        let out = std::process::Command::new("pg_lsclusters").arg("--no-header").output().ok()?;
        String::from_utf8_lossy(&out.stdout).lines().find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            match fields.as_slice() {
                [version, name, p, "online", ..] if *p == port => Some(Cluster {
                    version: (*version).to_owned(),
                    name: (*name).to_owned(),
                    stopped: false,
                    starting: None,
                }),
                _ => None,
            }
        })
    }

    fn command(&self, action: &str) -> std::process::Command {
        let mut command = std::process::Command::new("pg_ctlcluster");
        command.args(["--skip-systemctl-redirect", &self.version, &self.name, action]);
        if action == "stop" {
            // Fast: every session is ended at once, as in a crash or a failover.
            command.args(["-m", "fast"]);
        }
        command
    }

    /// Stops the cluster; returns once it has shut down.
    async fn stop(&mut self) -> Result<(), String> {
        let mut command = self.command("stop");
        let out = tokio::task::spawn_blocking(move || command.output()).await.map_err(|e| e.to_string())?;
        self.stopped = true;
        checked("stop", out)
    }

    /// Begins starting the cluster; [`Cluster::started`] waits for it.
    fn begin_start(&mut self) {
        let mut command = self.command("start");
        self.starting = Some(tokio::task::spawn_blocking(move || command.output()));
        self.stopped = false;
    }

    async fn started(&mut self) -> Result<(), String> {
        match self.starting.take() {
            Some(task) => checked("start", task.await.map_err(|e| e.to_string())?),
            None => Ok(()),
        }
    }
}

fn checked(action: &str, out: std::io::Result<std::process::Output>) -> Result<(), String> {
    match out {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(format!("pg_ctlcluster {action}: {}", String::from_utf8_lossy(&out.stderr).trim())),
        Err(e) => Err(format!("pg_ctlcluster {action}: {e}")),
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.stopped {
            let _ = self.command("start").output();
        }
    }
}

/// `host:port` of a service URL (`scheme://[user@]host:port[/…]`).
fn authority(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    Some(rest.split('/').next().unwrap_or(rest))
}

async fn status(client: &Client, url: &str, key: &str) -> u16 {
    let Ok(value) = HeaderValue::try_from(key) else { return 0 };
    let headers = [(HeaderName::from_static("x-api-key"), value)];
    client.send("GET", url, &headers, Bytes::new()).await.map_or(0, |r| r.status.as_u16())
}

/// Asks the verify API about `key` for the load's route, expecting the
/// public API's 503 `AUTH_UNAVAILABLE` with `Retry-After`.
async fn verify_unavailable(client: &Client, base: &str, key: &str) -> Result<(), String> {
    let body = json!({"key": key, "method": "GET", "path": "/api/public/agents/fa"}).to_string();
    let headers = [(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"))];
    let reply = client.send("POST", &format!("{base}/api/verify"), &headers, Bytes::from(body)).await?;
    let json: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
    let retry_after = reply.headers.get(http::header::RETRY_AFTER).is_some();
    if reply.status == 503 && json["error"]["code"] == "AUTH_UNAVAILABLE" && retry_after {
        Ok(())
    } else {
        Err(format!("{} {json} (Retry-After present: {retry_after})", reply.status))
    }
}

/// One exchange of the load, timed from the start of the load.
struct Answer {
    sent: Duration,
    answered: Duration,
    kind: &'static str,
    status: u16,
}

/// What the load saw: by (phase, kind, status), and by (second, status).
#[derive(Default)]
struct Tally {
    by_phase: BTreeMap<(u8, &'static str, u16), u64>,
    by_second: BTreeMap<(u64, u16), u64>,
}

impl Tally {
    fn new(answers: &[Answer], timeline: &Timeline) -> Tally {
        let mut tally = Tally::default();
        for a in answers {
            *tally.by_phase.entry((timeline.phase(a.sent, a.answered), a.kind, a.status)).or_default() += 1;
            *tally.by_second.entry((a.answered.as_secs(), a.status)).or_default() += 1;
        }
        tally
    }

    fn get(&self, phase: u8, kind: &str, status: u16) -> u64 {
        self.by_phase.get(&(phase, kind, status)).copied().unwrap_or(0)
    }

    fn sum(&self, kind: &str, status: u16) -> u64 {
        self.by_phase.iter().filter(|((_, k, s), _)| *k == kind && *s == status).map(|(_, n)| n).sum()
    }
}

/// The load: `CONNECTIONS` tasks asking until told to stop, each keeping
/// its own answers.
struct Load {
    faulted: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    started: Instant,
    tasks: Vec<tokio::task::JoinHandle<Vec<Answer>>>,
}

impl Load {
    fn start(client: &Arc<Client>, target: &str, warm: &str, cold: Option<&str>) -> Load {
        let faulted = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let tasks = (0..CONNECTIONS)
            .map(|i| {
                let (client, faulted, stop) = (client.clone(), faulted.clone(), stop.clone());
                let (target, warm, cold) = (target.to_owned(), warm.to_owned(), cold.map(str::to_owned));
                tokio::spawn(async move {
                    let rng = SystemRandom::new();
                    let mut answers = Vec::new();
                    let mut n = i;
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        let (kind, key) = match (n % 3, &cold) {
                            (0, _) => ("warm", warm.clone()),
                            // First sent once the fault has begun: never verified before it.
                            (1, Some(cold)) if faulted.load(Ordering::Relaxed) => ("cold", cold.clone()),
                            (1, _) => continue,
                            _ => (
                                "unknown",
                                ApiKey::generate(&rng, KeyMode::Live)
                                    .map_or_else(|_| String::new(), |k| k.expose_secret().to_owned()),
                            ),
                        };
                        let sent = started.elapsed();
                        let status = status(&client, &target, &key).await;
                        answers.push(Answer { sent, answered: started.elapsed(), kind, status });
                    }
                    answers
                })
            })
            .collect();
        Load { faulted, stop, started, tasks }
    }

    fn now(&self) -> Duration {
        self.started.elapsed()
    }

    async fn finish(self) -> Result<Vec<Answer>, String> {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Vec::new();
        for t in self.tasks {
            all.extend(t.await.map_err(|e| e.to_string())?);
        }
        Ok(all)
    }
}

/// Deletes a key as another instance would: the row, and the `NOTIFY` that
/// tells every listening instance. The server under test cannot hear it
/// while its own connections are cut.
async fn delete_elsewhere(url: &str, id: &str) -> Result<(), String> {
    let (mut direct, connection) =
        tokio_postgres::connect(url, tokio_postgres::NoTls).await.map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let tx = direct.transaction().await.map_err(|e| e.to_string())?;
    let hash: Vec<u8> = tx
        .query_one("UPDATE api_keys SET deleted_at = now() WHERE id = $1 RETURNING hash", &[&id])
        .await
        .map_err(|e| e.to_string())?
        .get(0);
    let payload: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    tx.execute("SELECT pg_notify($1, $2)", &[&agx_auth_postgres::REVOCATION_CHANNEL, &payload])
        .await
        .map_err(|e| e.to_string())?;
    tx.commit().await.map_err(|e| e.to_string())
}

/// Whether a new connection to `url` is answered.
async fn answers(url: &str) -> bool {
    let connect = tokio::time::timeout(Duration::from_secs(1), tokio_postgres::connect(url, tokio_postgres::NoTls));
    let Ok(Ok((client, connection))) = connect.await else { return false };
    let driver = tokio::spawn(connection);
    let ok = client.simple_query("SELECT 1").await.is_ok();
    driver.abort();
    ok
}

/// Whether the server's Prometheus metrics say the rate limiter is in an outage.
async fn limiter_in_outage(client: &Client, base: &str) -> Option<bool> {
    let reply = client.send("GET", &format!("{base}/metrics"), &[], Bytes::new()).await.ok()?;
    let text = String::from_utf8_lossy(&reply.body).into_owned();
    text.lines().find_map(|l| l.strip_prefix("agx_rate_limiter_outage ")).map(|v| v.trim() != "0")
}

/// One scenario's figures, for the closing lines.
struct Outcome {
    summary: String,
    failures: Vec<String>,
}

/// Runs every scenario, each fault lasting `during`.
pub async fn run(server: &str, during: Duration) -> Result<(), String> {
    // The cached keys were verified just before the load; past their 30 s
    // lifetime a deleted key would be refused by its expiry alone, and the
    // deletion check would prove nothing about the listener.
    if BEFORE + during + REVOKED_WITHIN + Duration::from_secs(5) > Duration::from_secs(30) {
        return Err("faults: --secs must be at most 21, within the key cache's 30 s lifetime".into());
    }
    let mut outcomes = Vec::new();
    for scenario in Scenario::ALL {
        match one(server, scenario, during).await? {
            Some(outcome) => outcomes.push((scenario, outcome)),
            None => continue,
        }
    }
    println!();
    let mut failed = false;
    for (scenario, outcome) in &outcomes {
        let verdict =
            if outcome.failures.is_empty() { "every check held".to_owned() } else { outcome.failures.join("; ") };
        failed |= !outcome.failures.is_empty();
        println!("faults: {}: {}; {verdict}", scenario.name(), outcome.summary);
    }
    println!("faults: {} scenarios, {}", outcomes.len(), if failed { "FAILED" } else { "every check held" });
    if failed { Err("the fault run failed".into()) } else { Ok(()) }
}

/// Runs one scenario; `None` when what it needs is absent (and may be).
async fn one(server: &str, scenario: Scenario, during: Duration) -> Result<Option<Outcome>, String> {
    let label = format!("faults: {}", scenario.name());
    let Some(url) = agx_auth_postgres::testing::fresh_database(&label).await else {
        tool_absent(&label, "PostgreSQL is not reachable")?;
        return Ok(None);
    };
    let pg = authority(&url).ok_or("an unexpected database URL")?.to_owned();
    let mut backends = Backends { database_url: Some(url.clone()), ..Backends::default() };
    let mut fault = match scenario {
        Scenario::PostgresCut => {
            let proxy = Proxy::start(pg.clone()).await;
            backends.database_url = Some(url.replacen(&pg, &proxy.authority(), 1));
            Fault::Proxy(proxy)
        }
        Scenario::PostgresStopped => {
            let port = pg.rsplit_once(':').map_or("5432", |(_, p)| p);
            let Some(cluster) = Cluster::find(port) else {
                tool_absent(&label, "no local cluster that pg_ctlcluster controls is online on the database's port")?;
                return Ok(None);
            };
            Fault::Cluster(cluster)
        }
        Scenario::RedisClosed | Scenario::RedisLocal => {
            let Some(redis) = agx_auth_redis::testing::reachable(&label).await else { return Ok(None) };
            let at = authority(&redis).ok_or("an unexpected Redis URL")?.to_owned();
            let proxy = Proxy::start(at.clone()).await;
            backends.redis_url = Some(redis.replacen(&at, &proxy.authority(), 1));
            let mode = if scenario == Scenario::RedisClosed { "closed" } else { "local" };
            backends.settings.push(("AGX_REDIS_OUTAGE", mode.to_owned()));
            backends.settings.push(("AGX_REDIS_PREFIX", agx_auth_redis::testing::unique_prefix("faults")));
            Fault::Proxy(proxy)
        }
    };
    // The server's warnings and errors, and any panic's message, go to a file
    // read once the server has stopped.
    let log_path = std::env::temp_dir().join(format!("agx-faults-{}-{}.log", std::process::id(), scenario as u8));
    let log = std::fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
    backends.settings.push(("RUST_LOG", "warn".to_owned()));
    let (process, api) = launch_logged(server, &label, &backends, Some(log)).await?;
    let outcome = drive(scenario, during, &mut fault, &api, &url).await;
    drop(process);
    let outcome = outcome.map(|mut outcome| {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        let panics = log.matches("panicked at").count();
        if panics > 0 {
            outcome.failures.push(format!("{panics} panics (see {})", log_path.display()));
        }
        if scenario.redis() {
            // The limiter warns once when an outage begins, however many requests meet it.
            let warnings = log.matches("cannot reach Redis").count();
            if warnings != 1 {
                outcome.failures.push(format!("{warnings} outage warnings for one outage"));
            }
        }
        if outcome.failures.is_empty() {
            let _ = std::fs::remove_file(&log_path);
        }
        outcome
    });
    // Whatever happened, the cluster is running again before the next scenario.
    if let Fault::Cluster(cluster) = &mut fault {
        if cluster.stopped {
            cluster.begin_start();
        }
        cluster.started().await?;
        if !answers(&url).await {
            return Err("PostgreSQL did not come back after the scenario".into());
        }
    }
    outcome.map(Some)
}

async fn drive(
    scenario: Scenario,
    during: Duration,
    fault: &mut Fault,
    api: &AdminApi,
    url: &str,
) -> Result<Outcome, String> {
    let base = api.base_url.clone();
    let client = Arc::new(Client::new());
    api.call("POST", "/orgs", Some(json!({"id": "f", "name": "F"}))).await?;
    api.call("POST", "/orgs/f/agents", Some(json!({"id": "fa", "name": "FA"}))).await?;
    let quota = if scenario.redis() { REDIS_QUOTA } else { 1_000_000_000 };
    let body = json!({"name": "k", "rateLimits": {"config": quota}});
    let (_, warm) = api.call("POST", "/orgs/f/keys", Some(body.clone())).await?;
    let (_, cold) = api.call("POST", "/orgs/f/keys", Some(body.clone())).await?;
    let (_, doomed) = api.call("POST", "/orgs/f/keys", Some(body)).await?;
    let key = |v: &Value| v["key"].as_str().map(str::to_owned).ok_or("no key");
    let (warm_key, cold_key, doomed_key) = (key(&warm)?, key(&cold)?, key(&doomed)?);
    let target = format!("{base}/api/public/agents/fa");
    // Verified, so cached, before the fault; the warm key's one admission
    // here is counted in its usage below.
    for k in [&warm_key, &doomed_key] {
        if status(&client, &target, k).await != 200 {
            return Err("a key was refused before the fault".into());
        }
    }
    let admitted_before = 1;

    let load = Load::start(&client, &target, &warm_key, (!scenario.redis()).then_some(cold_key.as_str()));
    tokio::time::sleep(BEFORE).await;
    let mut timeline = Timeline::default();
    fault.take(&load, &mut timeline).await?;
    // The verify API fails closed as the public API does: the public API's
    // 503, never a 200 verdict, for a key it cannot judge now.
    let unjudgeable = match scenario {
        Scenario::PostgresCut | Scenario::PostgresStopped => Some(&cold_key),
        Scenario::RedisClosed => Some(&warm_key),
        // Admits (and would be counted in the warm key's usage).
        Scenario::RedisLocal => None,
    };
    let verify_during = match unjudgeable {
        Some(k) => Some(verify_unavailable(&client, &base, k).await),
        None => None,
    };
    let doomed_id = doomed["id"].as_str().ok_or("no id")?.to_owned();
    if scenario == Scenario::PostgresCut {
        // The database is up; only this server's links to it are cut.
        delete_elsewhere(url, &doomed_id).await?;
    }
    tokio::time::sleep(during.saturating_sub(load.now() - timeline.began)).await;
    fault.give_back(&load, &mut timeline, url).await?;
    let back = load.started + timeline.back;
    if scenario == Scenario::PostgresStopped {
        // The first thing done on the returned database, before this server
        // has reconnected to hear it.
        delete_elsewhere(url, &doomed_id).await?;
    }
    let (mut doomed_refused, mut recovered) = (None, None);
    while back.elapsed() < AFTER {
        match scenario {
            Scenario::PostgresCut | Scenario::PostgresStopped => {
                if doomed_refused.is_none() && status(&client, &target, &doomed_key).await == 401 {
                    doomed_refused = Some(back.elapsed());
                }
                if recovered.is_none() && status(&client, &target, &cold_key).await == 200 {
                    recovered = Some(back.elapsed());
                }
            }
            Scenario::RedisClosed | Scenario::RedisLocal => {
                if recovered.is_none() && limiter_in_outage(&client, &base).await == Some(false) {
                    recovered = Some(back.elapsed());
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let run_time = load.now();
    let tally = Tally::new(&load.finish().await?, &timeline);
    print_tables(scenario, &tally, &timeline);

    let mut failures = Vec::new();
    if let Some(Err(why)) = &verify_during {
        failures.push(format!("verify API during the fault: {why}"));
    }
    let allowed: &[u16] = if scenario.redis() { &[200, 401, 429, 503] } else { &[200, 401, 503] };
    for ((_, kind, s), n) in &tally.by_phase {
        if !allowed.contains(s) {
            failures.push(format!("{n} × {s} for the {kind} key"));
        }
    }
    match recovered {
        Some(t) if t <= RECOVERY => {}
        other => failures.push(format!("back in use after {other:?}, not within {RECOVERY:?}")),
    }
    for kind in ["warm", "unknown"] {
        let n = tally.get(0, kind, 503);
        if n > 0 {
            failures.push(format!("{n} × 503 for the {kind} key before the fault"));
        }
    }
    match scenario {
        Scenario::PostgresCut | Scenario::PostgresStopped => {
            let n = tally.get(1, "cold", 200);
            if n > 0 {
                failures.push(format!("{n} admissions of a never-verified key during the fault"));
            }
            if tally.get(1, "cold", 503) == 0 {
                failures.push("the never-verified key was not tried during the fault".into());
            }
            if tally.get(1, "warm", 200) == 0 || tally.get(1, "warm", 503) > 0 {
                failures.push("the cached key was not served throughout the fault".into());
            }
            match doomed_refused {
                Some(t) if t <= REVOKED_WITHIN => {}
                other => failures.push(format!("the deleted key was refused after {other:?}, not within 1 s")),
            }
        }
        Scenario::RedisClosed | Scenario::RedisLocal => {
            let n = tally.sum("unknown", 503);
            if n > 0 {
                failures.push(format!("{n} × 503 for unknown keys: the limiter was asked before the key"));
            }
            if scenario == Scenario::RedisClosed {
                let n = tally.get(1, "warm", 200);
                if n > 0 {
                    failures.push(format!("{n} admissions during the cut under `closed`"));
                }
                if tally.get(1, "warm", 503) == 0 {
                    failures.push("no 503 during the cut under `closed`".into());
                }
            } else {
                let n = tally.sum("warm", 503);
                if n > 0 {
                    failures.push(format!("{n} × 503 under `local`"));
                }
                if tally.get(1, "warm", 200) == 0 {
                    failures.push("nothing admitted during the cut under `local`".into());
                }
            }
        }
    }
    // Usage: what the server stored for the warm key against what the client saw admitted.
    let admitted = tally.sum("warm", 200) + admitted_before;
    let usage_path = format!("/orgs/f/keys/{}/usage", warm["id"].as_str().unwrap_or_default());
    let (_, usage) = api.call("GET", &usage_path, None).await?;
    let stored: u64 =
        usage["usage"].as_array().map_or(0, |days| days.iter().filter_map(|d| d["requests"].as_u64()).sum());
    if stored != admitted {
        failures.push(format!("usage stored {stored} for the warm key, the client saw {admitted} admitted"));
    }
    let mut summary = format!("back in use after {}", ms(recovered));
    if let Some(t) = doomed_refused.filter(|_| !scenario.redis()) {
        summary.push_str(&format!(", the deleted key refused {} after the return", ms(Some(t))));
    }
    if scenario.redis() {
        // The global limit: a burst of the quota and a refill of quota / 60 s
        // over the run; under `local`, the instance's own limit on top,
        // during the cut.
        let secs = run_time.as_secs_f64();
        let mut bound = REDIS_QUOTA as f64 * (1.0 + secs / 60.0) + 1.0;
        if scenario == Scenario::RedisLocal {
            // The instance's own limit serves from the cut until the limiter
            // sees Redis again (`recovered`, within its retry interval).
            let local = timeline.back - timeline.began + recovered.unwrap_or(AFTER);
            bound += REDIS_QUOTA as f64 * (1.0 + local.as_secs_f64() / 60.0) + 1.0;
        }
        if admitted as f64 > bound {
            failures.push(format!("{admitted} admitted, over the limit's {bound:.0}"));
        }
        summary.push_str(&format!(", {admitted} admitted of at most {bound:.0} in {secs:.1} s"));
    }
    summary.push_str(&format!(", usage {stored} stored = {admitted} admitted"));
    if matches!(verify_during, Some(Ok(()))) {
        summary.push_str(", the verify API answered 503 AUTH_UNAVAILABLE during the fault");
    }
    Ok(Outcome { summary, failures })
}

fn ms(d: Option<Duration>) -> String {
    d.map_or_else(|| "never".to_owned(), |d| format!("{} ms", d.as_millis()))
}

fn print_tables(scenario: Scenario, tally: &Tally, timeline: &Timeline) {
    let (fault_at, back_at) = (timeline.began, timeline.back);
    println!(
        "\n### {}\n\nThe fault began at {:.3} s and was in place at {:.3} s; the service was last seen \
         away at {:.3} s and back at {:.3} s.\n",
        scenario.name(),
        fault_at.as_secs_f64(),
        timeline.down.as_secs_f64(),
        timeline.last_down.as_secs_f64(),
        back_at.as_secs_f64(),
    );
    println!("| second | phase | 200 | 401 | 429 | 503 | other |\n|---|---|---|---|---|---|---|");
    let last = tally.by_second.keys().map(|(s, _)| *s).max().unwrap_or(0);
    for second in 0..=last {
        let at = |status: u16| tally.by_second.get(&(second, status)).copied().unwrap_or(0);
        let other: u64 = tally
            .by_second
            .iter()
            .filter(|((s, st), _)| *s == second && ![200, 401, 429, 503].contains(st))
            .map(|(_, n)| n)
            .sum();
        let (start, end) = (Duration::from_secs(second), Duration::from_secs(second + 1));
        let phase = if end <= fault_at {
            "before"
        } else if start < fault_at {
            "fault begins"
        } else if end <= back_at {
            "fault"
        } else if start < back_at {
            "service returns"
        } else {
            "after"
        };
        println!("| {second} | {phase} | {} | {} | {} | {} | {other} |", at(200), at(401), at(429), at(503));
    }
    println!("\n| phase | kind | status | answers |\n|---|---|---|---|");
    for ((p, kind, s), n) in &tally.by_phase {
        println!("| {} | {kind} | {s} | {n} |", PHASES[usize::from(*p)]);
    }
}
