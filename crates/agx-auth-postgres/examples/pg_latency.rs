//! Measures, in one run on this machine: the verdict for a cached key with
//! PostgreSQL behind a moka cache (against the memory store as baseline), the
//! verdict for a cold key (cache miss, one query), and the revocation latency
//! between two instances. `cargo xtask bench-pg` runs it in release mode.

use std::sync::Arc;
use std::time::{Duration, Instant};

use agx_auth::{
    AgentRecord, Authenticator, Directory, DirectoryAdmin, EndpointClass, KeySpec, KeyStore, MemoryStore, Outcome,
    Quota, RateLimits,
};
use agx_auth_moka::{CacheSettings, CachedStore};
use agx_auth_postgres::listener;
use agx_auth_postgres::testing::fresh_database;
use agx_auth_postgres::{PgSettings, PgStore};
use http::{HeaderMap, HeaderValue, Method};

const PATH: &str = "/api/public/agents/agent_1";

fn headers(key: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("authorization", HeaderValue::try_from(format!("Bearer {key}")).unwrap());
    h
}

fn auth_over<S: KeyStore + Directory>(s: Arc<S>) -> Authenticator {
    let unlimited = RateLimits::default().with(EndpointClass::CONFIG, Quota::try_per_minute(u32::MAX).unwrap());
    Authenticator::builder(s.clone(), s).rate_limits(unlimited).build()
}

async fn ok(auth: &Authenticator, h: &HeaderMap) -> bool {
    matches!(auth.authenticate(&Method::GET, PATH, h).await, Outcome::Allow(_))
}

fn summary(mut ns: Vec<u128>) -> (f64, f64) {
    ns.sort_unstable();
    let at = |q: f64| ns[((ns.len() - 1) as f64 * q) as usize] as f64 / 1000.0;
    (at(0.5), at(0.99))
}

async fn cached_verdicts(auth: &Authenticator, h: &HeaderMap, n: usize) -> (f64, f64) {
    assert!(ok(auth, h).await);
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        assert!(ok(auth, h).await);
        times.push(t.elapsed().as_nanos());
    }
    summary(times)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let Some(url) = fresh_database("pg_latency").await else { return };
    let pg = Arc::new(PgStore::connect(&url, PgSettings::default()).await.unwrap());
    pg.put_org("org_1", "Bench").await.unwrap();
    pg.put_agent(AgentRecord::new("agent_1", "org_1", "Bench")).await.unwrap();
    let cached = Arc::new(CachedStore::new(pg.clone(), CacheSettings::default()));
    let auth = auth_over(cached.clone());

    let memory = Arc::new(MemoryStore::new());
    memory.insert_org("org_1", "Bench");
    memory.insert_agent(AgentRecord::new("agent_1", "org_1", "Bench"));
    let mem_auth = auth_over(memory);
    let (mem_key, _) = mem_auth.issue_key(KeySpec::new("org_1", "bench")).await.unwrap();
    let (key, _) = auth.issue_key(KeySpec::new("org_1", "bench")).await.unwrap();

    // Alternate, so that noise hits both alike.
    let (mut mem, mut pgc) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        mem.push(cached_verdicts(&mem_auth, &headers(mem_key.expose_secret()), 20_000).await);
        pgc.push(cached_verdicts(&auth, &headers(key.expose_secret()), 20_000).await);
    }
    let med = |v: &[(f64, f64)], f: fn(&(f64, f64)) -> f64| {
        let mut x: Vec<f64> = v.iter().map(f).collect();
        x.sort_by(f64::total_cmp);
        x[x.len() / 2]
    };
    println!(
        "cached verdict, memory store:           p50 {:.2} µs, p99 {:.2} µs",
        med(&mem, |x| x.0),
        med(&mem, |x| x.1)
    );
    println!(
        "cached verdict, moka over PostgreSQL:   p50 {:.2} µs, p99 {:.2} µs (p50 ratio {:.2})",
        med(&pgc, |x| x.0),
        med(&pgc, |x| x.1),
        med(&pgc, |x| x.0) / med(&mem, |x| x.0)
    );

    // Cold keys: issued through the store directly, so the cache has never seen them.
    let issuer = auth_over(pg.clone());
    let mut cold = Vec::new();
    for i in 0..300 {
        let (k, _) = issuer.issue_key(KeySpec::new("org_1", format!("cold{i}"))).await.unwrap();
        let h = headers(k.expose_secret());
        let t = Instant::now();
        assert!(ok(&auth, &h).await);
        cold.push(t.elapsed().as_nanos());
    }
    let (p50, p99) = summary(cold);
    println!("cold verdict (cache miss, one query):   p50 {p50:.1} µs, p99 {p99:.1} µs (300 keys)");

    // Revocation across instances: B caches a key, A deletes it, B is timed
    // until it refuses.
    let b_pg = Arc::new(PgStore::connect(&url, PgSettings::default()).await.unwrap());
    let b_cache = Arc::new(CachedStore::new(b_pg, CacheSettings::default()));
    let _listening = listener::spawn(url.clone(), b_cache.clone());
    // Give the listener its connection before the first deletion.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let b = auth_over(b_cache);
    let mut revocations = Vec::new();
    for i in 0..50 {
        let (k, r) = auth.issue_key(KeySpec::new("org_1", format!("revoked{i}"))).await.unwrap();
        let h = headers(k.expose_secret());
        assert!(ok(&b, &h).await);
        let committed = {
            assert!(auth.delete_key("org_1", r.id).await.unwrap());
            Instant::now()
        };
        while ok(&b, &h).await {
            tokio::task::yield_now().await;
        }
        revocations.push(committed.elapsed().as_nanos());
    }
    let (p50, p99) = summary(revocations);
    println!("revocation A -> B after commit:          p50 {p50:.0} µs, p99 {p99:.0} µs (50 deletions)");
}
