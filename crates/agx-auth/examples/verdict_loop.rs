//! One valid-key verdict with its rate-limit headers written, in a loop, on
//! a default quota of 600 a minute with a manual clock that moves one
//! interval per verdict (so every verdict is admitted and spends a slot):
//! for instruction counts under `valgrind --tool=callgrind`, which are
//! repeatable where timings on a shared VM are not.
//!
//! `cargo build --release -p agx-auth --example verdict_loop` then
//! `valgrind --tool=callgrind target/release/examples/verdict_loop 20000`.
//! With `credits` after the count, the key carries exactly that many usage
//! credits, so every verdict also spends one from the in-process ledger
//! (and the last leaves none).

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime};

use agx_auth::{
    AgentRecord, Authenticator, EndpointClass, KeySpec, ManualClock, MemoryStore, Outcome, Quota, RateLimits,
};
use http::{HeaderMap, HeaderValue, Method};

fn ready<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("the in-memory path never waits"),
    }
}

fn main() {
    let n: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let counted = std::env::args().nth(2).as_deref() == Some("credits");
    let store = Arc::new(MemoryStore::new());
    store.insert_org("org_1", "Acme");
    store.insert_agent(AgentRecord::new("agent_1", "org_1", "Support"));
    let quota = Quota::try_per_minute(600).expect("a quota");
    let limits = RateLimits::default().with(EndpointClass::CONFIG, quota);
    let clock = Arc::new(ManualClock::new(SystemTime::now()));
    let auth = Authenticator::builder(store.clone(), store).rate_limits(limits).clock(clock.clone()).build();
    let mut spec = KeySpec::new("org_1", "bench");
    if counted {
        spec = spec.credits(agx_auth::Credits { initial: n, refill: None });
    }
    let (key, _) = ready(auth.issue_key(spec)).expect("a key");
    let mut headers = HeaderMap::new();
    let bearer = HeaderValue::try_from(format!("Bearer {}", key.expose_secret())).expect("an ASCII key");
    headers.insert("authorization", bearer);
    headers.insert("user-agent", HeaderValue::from_static("bench/1.0"));
    let mut out = HeaderMap::with_capacity(8);
    let mut admitted = 0u64;
    for _ in 0..n {
        clock.advance(Duration::from_nanos(quota.interval_ns()));
        if let Outcome::Allow(grant) = ready(auth.authenticate(&Method::GET, "/api/public/agents/agent_1", &headers)) {
            assert_eq!(grant.credits_remaining(), counted.then(|| n - admitted - 1));
            out.clear();
            grant.apply_headers(&mut out);
            admitted += 1;
        }
    }
    assert_eq!(admitted, n, "every verdict admits");
    println!("{admitted} verdicts admitted");
}
