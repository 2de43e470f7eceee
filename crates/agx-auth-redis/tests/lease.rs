//! Leases on a real Redis: a hot cell's instance takes a few slots per
//! call, and across instances nothing is ever admitted beyond the limit.
//! Without Redis these tests skip with a notice, unless
//! `AGX_REQUIRE_SERVICES=1`.

use std::sync::Arc;
use std::time::UNIX_EPOCH;

use agx_auth::{EndpointClass, GcraLimiter, KeyId, Quota, RateDecision, RateLimiter, Timestamp};
use agx_auth_redis::testing::{self, settings};
use agx_auth_redis::{LeaseSettings, RedisSettings, Spending};

const CHAT: EndpointClass = EndpointClass::CHAT;
const MS: u64 = 1_000_000;

fn leased(label: &str) -> RedisSettings {
    RedisSettings { spending: Spending::Leased(LeaseSettings::default()), ..settings(label) }
}

fn fresh_key(salt: u128) -> KeyId {
    let nanos = std::time::SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    KeyId(nanos ^ (salt << 100) ^ (u128::from(std::process::id()) << 64))
}

fn now() -> u64 {
    Timestamp::from(std::time::SystemTime::now()).0
}

fn admitted(decision: &RateDecision) -> bool {
    matches!(decision, RateDecision::Admit(_))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_leasing_instances_never_admit_more_than_the_burst_at_once() {
    let shared = leased("lease-burst");
    let Some(a) = testing::limiter("lease burst", shared.clone()).await else { return };
    let b = testing::limiter("lease burst", shared).await.unwrap();
    let (a, b) = (Arc::new(a), Arc::new(b));
    let (q, t) = (Quota::try_per_minute(60).unwrap(), Timestamp(now()));
    for round in 0..5 {
        let key = fresh_key(round);
        let count = testing::at_once(&a, &b, 500, (key, CHAT), q, t).await.iter().filter(|d| admitted(d)).count();
        assert!(count <= 60, "round {round}: {count} admitted, more than the burst of 60");
        // Slots granted but not used by the end of the burst are the price:
        // at most a quarter of the free slots per grant, so few.
        eprintln!("round {round}: {count} of 60 admitted");
        assert!(count >= 50, "round {round}: only {count} of 60 admitted");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_any_history_two_leasing_instances_stay_within_burst_plus_refill() {
    let shared = leased("lease-history");
    let Some(a) = testing::limiter("lease history", shared.clone()).await else { return };
    let b = testing::limiter("lease history", shared).await.unwrap();
    let q = Quota::try_per_minute(600).unwrap();
    let (key, start) = (fresh_key(7), now());
    let (mut t, mut count, mut rng) = (start, 0u64, 0x9e37_79b9_7f4a_7c15u64);
    // The same history through one exact in-process limiter, for the price.
    let (exact, mut exact_count) = (GcraLimiter::new(), 0u64);
    for i in 0..4000 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        // Bursts of calls at one instant, short gaps, and gaps past a lease's lifetime.
        t += match rng % 8 {
            0..=3 => 0,
            4 | 5 => rng % (2 * MS),
            6 => rng % (30 * MS),
            _ => rng % (300 * MS),
        };
        let limiter = if (rng >> 32) % 2 == 0 { &a } else { &b };
        count += u64::from(admitted(&limiter.check(key, CHAT, q, Timestamp(t)).await.unwrap()));
        exact_count += u64::from(admitted(&exact.check_at(key, CHAT, q, Timestamp(t))));
        let bound = 600 + (t - start) / q.interval_ns();
        assert!(count <= bound, "call {i}: {count} admitted by t + {} ms, bound {bound}", (t - start) / MS);
    }
    let calls = a.redis_calls() + b.redis_calls();
    eprintln!("4000 verdicts: {count} admitted (one exact limiter: {exact_count}), {calls} Redis calls");
    assert!(count * 100 >= exact_count * 95, "leases cost more than 5 % of the admissions");
    assert!(calls < 4000, "leases saved no Redis call");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hot_key_reaches_redis_once_per_lease_and_a_cold_key_is_exact() {
    let Some(redis) = testing::limiter("lease hot and cold", leased("lease-hot-cold")).await else { return };
    let big = Quota::try_per_minute(1_000_000).unwrap();
    let (hot, mut t) = (fresh_key(1), now());
    for _ in 0..10_000 {
        assert!(admitted(&redis.check(hot, CHAT, big, Timestamp(t)).await.unwrap()));
        t += 10_000; // 100,000 a second
    }
    let calls = redis.redis_calls();
    eprintln!("a hot key: 10,000 verdicts, {calls} Redis calls");
    assert!(calls <= 10_000 / 32, "{calls} Redis calls for 10,000 verdicts");

    // Calls further apart than a lease's lifetime: one exact step each,
    // decided as the in-process limiter decides.
    let (cold, local, q) = (fresh_key(2), GcraLimiter::new(), Quota::try_per_minute(7).unwrap());
    let before = redis.redis_calls();
    for i in 0..40u64 {
        let at = Timestamp(t + i * (LeaseSettings::default().lifetime.as_nanos() as u64 + MS) * (1 + i % 3));
        assert_eq!(redis.check(cold, CHAT, q, at).await.unwrap(), local.check_at(cold, CHAT, q, at), "call {i}");
    }
    assert_eq!(redis.redis_calls() - before, 40);
}
