//! The hot path, piece by piece and whole, and our keyed limiter beside
//! governor's in the same run. `cargo xtask bench` runs this and turns
//! criterion's medians into the table in docs/benchmarks.md.
//!
//! A counting allocator reports how many heap allocations one verdict makes.

use std::alloc::{GlobalAlloc, Layout, System};
use std::future::Future;
use std::hint::black_box;
use std::num::NonZeroU32;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime};

use agx_auth::{
    AgentRecord, ApiKey, Authenticator, EndpointClass, GcraLimiter, KeyHasher, KeyId, KeyMode, KeySpec, ManualClock,
    MemoryStore, Outcome, Quota, RateLimits, Timestamp,
};
use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue, Method};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Polls a future that the memory store completes at once.
fn ready<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("the in-memory path never waits"),
    }
}

const HUGE: Quota = Quota::per_minute(NonZeroU32::MAX);

fn setup() -> (Authenticator, HeaderMap) {
    // A default quota that never runs out: the bench measures admission, not
    // refusal, and default quotas are the common case (their
    // `RateLimit-Policy` value is built once).
    setup_with(RateLimits::default().with(EndpointClass::CONFIG, HUGE), None)
}

fn setup_with(limits: RateLimits, clock: Option<Arc<ManualClock>>) -> (Authenticator, HeaderMap) {
    let store = Arc::new(MemoryStore::new());
    store.insert_org("org_1", "Acme");
    store.insert_agent(AgentRecord::new("agent_1", "org_1", "Support"));
    // 100k other keys, so the lookup is not in a toy table.
    let mut builder = Authenticator::builder(store.clone(), store).rate_limits(limits);
    if let Some(clock) = clock {
        builder = builder.clock(clock);
    }
    let auth = builder.build();
    for i in 0..100_000 {
        ready(auth.issue_key(KeySpec::new("org_1", format!("k{i}")))).unwrap();
    }
    let (key, _) = ready(auth.issue_key(KeySpec::new("org_1", "bench"))).unwrap();
    let mut headers = HeaderMap::new();
    headers.insert("authorization", HeaderValue::try_from(format!("Bearer {}", key.expose_secret())).unwrap());
    headers.insert("user-agent", HeaderValue::from_static("bench/1.0"));
    headers.insert("accept", HeaderValue::from_static("application/json"));
    (auth, headers)
}

const TABLED_PER_MINUTE: u32 = 600;
const TABLED_INTERVAL: Duration = Duration::from_millis(100);

/// An authenticator whose default quota is 600 a minute, on a manual
/// clock, with the same 100,001 keys as [`setup`] (a fresh set).
fn setup_tabled() -> (Authenticator, HeaderMap, Arc<ManualClock>) {
    let quota = Quota::try_per_minute(TABLED_PER_MINUTE).unwrap();
    assert_eq!(Duration::from_nanos(quota.interval_ns()), TABLED_INTERVAL);
    let clock = Arc::new(ManualClock::new(SystemTime::now()));
    let (auth, headers) = setup_with(RateLimits::default().with(EndpointClass::CONFIG, quota), Some(clock.clone()));
    (auth, headers, clock)
}

fn verdict(auth: &Authenticator, headers: &HeaderMap) -> bool {
    matches!(ready(auth.authenticate(&Method::GET, "/api/public/agents/agent_1", headers)), Outcome::Allow(_))
}

/// The verdict and the two rate-limit fields written into a response's
/// header map, as an adapter does (the map is reused: a real response has one).
fn verdict_with_headers(auth: &Authenticator, headers: &HeaderMap, out: &mut HeaderMap) -> bool {
    let Outcome::Allow(grant) = ready(auth.authenticate(&Method::GET, "/api/public/agents/agent_1", headers)) else {
        return false;
    };
    out.clear();
    grant.apply_headers(out);
    true
}

fn allocations_per_call(mut f: impl FnMut() -> bool) -> f64 {
    const N: u64 = 10_000;
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for _ in 0..N {
        assert!(f());
    }
    (ALLOCATIONS.load(Ordering::Relaxed) - before) as f64 / N as f64
}

fn report_allocations(auth: &Authenticator, headers: &HeaderMap) {
    let verdict_only = allocations_per_call(|| verdict(auth, headers));
    let mut out = HeaderMap::with_capacity(8);
    let with_headers = allocations_per_call(|| verdict_with_headers(auth, headers, &mut out));
    println!("allocations per verdict: {verdict_only:.2}; with the rate-limit headers written: {with_headers:.2}");
}

fn benches(c: &mut Criterion) {
    let rng = ring::rand::SystemRandom::new();
    let key = ApiKey::generate(&rng, KeyMode::Live).unwrap();
    let text = key.expose_secret().to_owned();
    let peppered = KeyHasher::with_pepper(b"server-side pepper");

    c.bench_function("key_parse_checksum", |b| b.iter(|| ApiKey::parse(black_box(&text)).unwrap()));
    c.bench_function("key_hash_sha256", |b| b.iter(|| KeyHasher::Sha256.hash(black_box(&key))));
    c.bench_function("key_hash_hmac", |b| b.iter(|| peppered.hash(black_box(&key))));

    let (auth, headers) = setup();
    report_allocations(&auth, &headers);
    c.bench_function("verdict_valid_key", |b| b.iter(|| verdict(black_box(&auth), black_box(&headers))));
    let mut out = HeaderMap::with_capacity(8);
    c.bench_function("verdict_valid_key_with_headers", |b| {
        b.iter(|| verdict_with_headers(black_box(&auth), black_box(&headers), &mut out))
    });
    // The common case: a default quota (600 a minute, whose `RateLimit`
    // values are built at start), with a manual clock moved one interval per
    // verdict so that every verdict is admitted and spends a slot.
    let (tabled, tabled_headers, clock) = setup_tabled();
    let headers = tabled_headers;
    let mut out = HeaderMap::with_capacity(8);
    let tabled_allocations = allocations_per_call(|| {
        clock.advance(TABLED_INTERVAL);
        verdict_with_headers(&tabled, &headers, &mut out)
    });
    println!("allocations per verdict on a default quota, rate-limit headers written: {tabled_allocations:.2}");
    c.bench_function("verdict_default_quota_with_headers", |b| {
        b.iter(|| {
            clock.advance(TABLED_INTERVAL);
            verdict_with_headers(black_box(&tabled), black_box(&headers), &mut out)
        })
    });
    let mut junk = HeaderMap::new();
    junk.insert("authorization", HeaderValue::from_static("Bearer agx_live_sk7Gm2xPqR4tN8vW1yBz3dF6hJ9kL0mA"));
    c.bench_function("verdict_bad_checksum", |b| b.iter(|| verdict(black_box(&auth), black_box(&junk))));

    let ours = GcraLimiter::new();
    let now = Timestamp::from(SystemTime::now());
    c.bench_function("limiter_ours_one_key", |b| {
        b.iter(|| ours.check_at(black_box(KeyId(42)), EndpointClass::CHAT, HUGE, now))
    });
    // governor reads its own clock; a fake one makes it a number read, as
    // ours is handed a Timestamp, so both measure the keyed check alone.
    let theirs = governor::RateLimiter::dashmap_with_clock(
        governor::Quota::per_minute(NonZeroU32::MAX),
        governor::clock::FakeRelativeClock::default(),
    );
    c.bench_function("limiter_governor_one_key", |b| b.iter(|| theirs.check_key(black_box(&KeyId(42)))));

    // Many keys: a probe into a populated table, as in a busy service.
    let keys: Vec<KeyId> = (0..10_000u128).map(|i| KeyId(i.wrapping_mul(0x9E37_79B9_7F4A_7C15))).collect();
    let mut i = 0usize;
    c.bench_function("limiter_ours_10k_keys", |b| {
        b.iter(|| {
            i = (i + 1) % keys.len();
            ours.check_at(keys[i], EndpointClass::CHAT, HUGE, now)
        })
    });
    let mut j = 0usize;
    c.bench_function("limiter_governor_10k_keys", |b| {
        b.iter(|| {
            j = (j + 1) % keys.len();
            theirs.check_key(&keys[j])
        })
    });
}

criterion_group!(hot_path, benches);
criterion_main!(hot_path);
