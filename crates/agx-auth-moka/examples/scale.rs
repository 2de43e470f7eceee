//! How a verdict's cost grows with the number of keys, and the limiter's
//! with the number of active cells: `cargo xtask bench-scale` runs this in
//! release and prints the tables in docs/benchmarks.md.
//!
//! For each size N it issues N keys into one in-memory store, then times
//! verdicts for keys drawn uniformly at random from all N (the worst case for
//! the CPU's caches: no key is hotter than another), each verdict timed on
//! its own, on two paths:
//!
//! - `memory`: the authenticator straight over the in-memory store, as
//!   `agx-server` runs by default;
//! - `memory + moka`: the same store behind the moka key cache sized for all
//!   N keys and warmed with one verdict per key first, which is the hot path of
//!   a PostgreSQL deployment (every verdict a cache hit).
//!
//! Every verdict also touches its key's limiter cell, so N keys are N cells.
//! The limiter alone is then timed over N cells, in batches of
//! [`LIMITER_BATCH`] checks (one check is close to the timer's own cost).
//! Each row's ratio is against the smallest size in the same run.
//!
//! `scale [--max N] [--samples S]`: sizes are 10³, 10⁴, … up to `--max`
//! (default 10⁶); `S` timed verdicts per size (default 200,000).

use std::alloc::{GlobalAlloc, Layout, System};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use agx_auth::{
    AgentRecord, Authenticator, EndpointClass, GcraLimiter, KeyId, KeySpec, MemoryStore, Outcome, Quota, RateDecision,
    RateLimits, Timestamp,
};
use agx_auth_moka::{CacheSettings, CachedStore};
use http::{HeaderMap, HeaderValue, Method, header::AUTHORIZATION};

/// Checks per timed batch when the limiter is timed alone.
const LIMITER_BATCH: usize = 64;
/// A quota no verdict here runs out of: the bench measures admission.
const HUGE: Quota = Quota::per_minute(NonZeroU32::MAX);
const PATH: &str = "/api/public/agents/agent_1";

fn main() {
    let mut max = 1_000_000usize;
    let mut samples = 200_000usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().and_then(|v| v.replace('_', "").parse().ok());
        match (arg.as_str(), value) {
            ("--max", Some(v)) => max = v,
            ("--samples", Some(v)) => samples = v,
            _ => {
                eprintln!("usage: scale [--max N] [--samples S]");
                std::process::exit(2);
            }
        }
    }
    let sizes: Vec<usize> =
        std::iter::successors(Some(1_000usize), |n| n.checked_mul(10)).take_while(|n| *n <= max).collect();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    println!("timer: {:.0} ns per reading (included in every verdict's figure)", timer_cost_ns());

    let mut verdicts = Vec::new();
    for &n in &sizes {
        verdicts.extend(runtime.block_on(verdict_rows(n, samples)));
    }
    println!("\n| keys | path | median | p99 | median vs 10³ | heap per key |\n|---:|---|---:|---:|---:|---:|");
    for path in ["memory", "memory + moka"] {
        let base = verdicts.iter().find(|r| r.path == path).map(|r| r.median_ns).unwrap_or(f64::NAN);
        for r in verdicts.iter().filter(|r| r.path == path) {
            println!(
                "| {} | {} | {:.0} ns | {:.0} ns | {:.2}× | {} |",
                grouped(r.keys),
                r.path,
                r.median_ns,
                r.p99_ns,
                r.median_ns / base,
                r.bytes_per_key.map_or_else(|| "–".to_string(), |b| format!("{b:.0} B")),
            );
        }
    }

    println!(
        "\nheap per key: `memory`, the store's record and index entry; `memory + moka`, the cache's entry and the key's limiter cell."
    );
    println!(
        "\n| active cells | per check, median | p99 (batch of {LIMITER_BATCH}) | median vs 10³ | heap per cell |\n|---:|---:|---:|---:|---:|"
    );
    let mut base = None;
    for &n in &sizes {
        let r = limiter_row(n, samples);
        let base = *base.get_or_insert(r.median_ns);
        println!(
            "| {} | {:.1} ns | {:.1} ns | {:.2}× | {:.0} B |",
            grouped(n),
            r.median_ns,
            r.p99_ns,
            r.median_ns / base,
            r.bytes_per_key.unwrap_or(f64::NAN)
        );
    }
}

struct Row {
    keys: usize,
    path: &'static str,
    median_ns: f64,
    p99_ns: f64,
    bytes_per_key: Option<f64>,
}

async fn verdict_rows(n: usize, samples: usize) -> Vec<Row> {
    let store = Arc::new(MemoryStore::new());
    store.insert_org("org_1", "Acme");
    store.insert_agent(AgentRecord::new("agent_1", "org_1", "Support"));
    let limits = RateLimits::default().with(EndpointClass::CONFIG, HUGE);
    let direct = Authenticator::builder(store.clone(), store.clone()).rate_limits(limits.clone()).build();

    let before = live_bytes();
    let mut bearers = Vec::with_capacity(n);
    let mut own = 0;
    for i in 0..n {
        let (key, _) =
            direct.issue_key(KeySpec::new("org_1", format!("k{i}"))).await.expect("the memory store takes a key");
        let mark = live_bytes();
        bearers.push(HeaderValue::try_from(format!("Bearer {}", key.expose_secret())).expect("an ASCII key"));
        own += live_bytes() - mark;
    }
    // The store's records, less the bench's own copy of each header value.
    let issued = per_key(before + own, n);

    let mut headers = HeaderMap::new();
    headers.insert(AUTHORIZATION, bearers[0].clone());
    headers.insert("user-agent", HeaderValue::from_static("bench/1.0"));
    let mut rows = vec![Row {
        keys: n,
        path: "memory",
        bytes_per_key: issued,
        ..timed(&direct, &bearers, &mut headers, samples).await
    }];

    let settings =
        CacheSettings { positive_ttl: Duration::from_secs(3600), max_keys: n as u64, ..CacheSettings::default() };
    let cached = Arc::new(CachedStore::new(store, settings));
    let through_cache = Authenticator::builder(cached.clone(), cached).rate_limits(limits).build();
    let before = live_bytes();
    for bearer in &bearers {
        headers.insert(AUTHORIZATION, bearer.clone());
        assert!(allowed(&through_cache, &headers).await, "a warming verdict is admitted");
    }
    // The cache entries and the second authenticator's limiter cells.
    let warmed = per_key(before, n);
    rows.push(Row {
        keys: n,
        path: "memory + moka",
        bytes_per_key: warmed,
        ..timed(&through_cache, &bearers, &mut headers, samples).await
    });
    rows
}

/// `samples` verdicts for keys drawn at random, each timed alone.
async fn timed(auth: &Authenticator, bearers: &[HeaderValue], headers: &mut HeaderMap, samples: usize) -> Row {
    let mut rng = XorShift(0x2545_F491_4F6C_DD1D);
    let mut ns = Vec::with_capacity(samples);
    for _ in 0..samples {
        headers.insert(AUTHORIZATION, bearers[rng.below(bearers.len())].clone());
        let start = Instant::now();
        let ok = allowed(auth, headers).await;
        ns.push(start.elapsed().as_nanos() as u64);
        assert!(ok, "every timed verdict is admitted");
    }
    let (median_ns, p99_ns) = median_p99(&mut ns);
    Row { keys: bearers.len(), path: "", median_ns, p99_ns, bytes_per_key: None }
}

async fn allowed(auth: &Authenticator, headers: &HeaderMap) -> bool {
    matches!(auth.authenticate(&Method::GET, PATH, headers).await, Outcome::Allow(_))
}

fn limiter_row(n: usize, samples: usize) -> Row {
    let limiter = GcraLimiter::new();
    let now = Timestamp::from(SystemTime::now());
    let cells: Vec<KeyId> = (0..n as u128).map(|i| KeyId(i.wrapping_mul(0x9E37_79B9_7F4A_7C15))).collect();
    let before = live_bytes();
    for &cell in &cells {
        limiter.check_at(cell, EndpointClass::CHAT, HUGE, now);
    }
    let bytes = per_key(before, n);
    assert_eq!(limiter.len(), n, "one cell per key");
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let batches = (samples / LIMITER_BATCH).max(100);
    let mut ns = Vec::with_capacity(batches);
    let mut admitted = 0usize;
    for _ in 0..batches {
        let picks: [KeyId; LIMITER_BATCH] = std::array::from_fn(|_| cells[rng.below(n)]);
        let start = Instant::now();
        for cell in picks {
            admitted +=
                matches!(limiter.check_at(cell, EndpointClass::CHAT, HUGE, now), RateDecision::Admit(_)) as usize;
        }
        ns.push(start.elapsed().as_nanos() as u64);
    }
    assert_eq!(admitted, batches * LIMITER_BATCH, "every check is admitted");
    let (median, p99) = median_p99(&mut ns);
    Row {
        keys: n,
        path: "",
        median_ns: median / LIMITER_BATCH as f64,
        p99_ns: p99 / LIMITER_BATCH as f64,
        bytes_per_key: bytes,
    }
}

fn median_p99(ns: &mut [u64]) -> (f64, f64) {
    ns.sort_unstable();
    let at = |q: f64| ns[((ns.len() - 1) as f64 * q).round() as usize] as f64;
    (at(0.5), at(0.99))
}

/// The median cost of one `Instant::now()` pair, which every timed verdict
/// carries.
fn timer_cost_ns() -> f64 {
    let mut ns: Vec<u64> = (0..100_000)
        .map(|_| {
            let start = Instant::now();
            start.elapsed().as_nanos() as u64
        })
        .collect();
    median_p99(&mut ns).0
}

/// Heap bytes allocated and not yet freed, counted by [`Counting`]: exact,
/// where the resident set would hide memory freed by an earlier size and
/// reused.
static LIVE: AtomicUsize = AtomicUsize::new(0);

struct Counting;

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Heap growth since `before`, per key.
fn per_key(before: usize, n: usize) -> Option<f64> {
    Some(LIVE.load(Ordering::Relaxed).saturating_sub(before) as f64 / n as f64)
}

fn live_bytes() -> usize {
    LIVE.load(Ordering::Relaxed)
}

fn grouped(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A small, fast, deterministic generator for picking keys: the picks need
/// spread, not secrecy.
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 as u128 * n as u128) >> 64) as usize
    }
}
