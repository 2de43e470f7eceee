//! Our keyed GCRA limiter against governor's keyed limiter, measured in
//! alternating rounds so that a noisy machine slows both alike: the figure
//! that matters is the median of the per-round ratios.

use std::hint::black_box;
use std::num::NonZeroU32;
use std::time::{Instant, SystemTime};

use agx_auth::{EndpointClass, GcraLimiter, KeyId, Quota, Timestamp};

const ROUNDS: usize = 41;
const PER_ROUND: usize = 200_000;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn pair(label: &str, keys: &[KeyId]) {
    let quota = Quota::per_minute(NonZeroU32::MAX);
    let ours = GcraLimiter::new();
    let theirs = governor::RateLimiter::dashmap_with_clock(
        governor::Quota::per_minute(NonZeroU32::MAX),
        governor::clock::FakeRelativeClock::default(),
    );
    // Both limiters are handed the time: ours as an argument, governor
    // through a clock that only reads a number. What is measured is the
    // keyed check itself, not a clock.
    let now = black_box(Timestamp::from(SystemTime::now()));
    let (mut ours_ns, mut theirs_ns, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let time = |f: &mut dyn FnMut(usize)| {
            let start = Instant::now();
            for i in 0..PER_ROUND {
                f(i);
            }
            start.elapsed().as_nanos() as f64 / PER_ROUND as f64
        };
        let mut run_ours = |i: usize| {
            black_box(ours.check_at(keys[i % keys.len()], EndpointClass::CHAT, quota, now));
        };
        let mut run_theirs = |i: usize| {
            black_box(theirs.check_key(&keys[i % keys.len()]).is_ok());
        };
        // Alternate which goes first, so neither always runs on a warmer cache.
        let (a, b) = if round % 2 == 0 {
            let a = time(&mut run_ours);
            (a, time(&mut run_theirs))
        } else {
            let b = time(&mut run_theirs);
            (time(&mut run_ours), b)
        };
        if round > 0 {
            ours_ns.push(a);
            theirs_ns.push(b);
            ratios.push(a / b);
        }
    }
    println!(
        "{label}: ours {:.1} ns, governor {:.1} ns, ours/governor {:.3} (median of {} paired rounds)",
        median(ours_ns),
        median(theirs_ns),
        median(ratios),
        ROUNDS - 1
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    pair("one key", &[KeyId(42)]);
    let keys: Vec<KeyId> = (0..10_000u128).map(|i| KeyId(i.wrapping_mul(0x9E37_79B9_7F4A_7C15))).collect();
    pair("10k keys", &keys);
}
