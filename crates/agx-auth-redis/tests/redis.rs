//! The Redis limiter against a real Redis: the same decisions as the
//! in-process limiter, one budget across instances, and both outage modes.
//! Without Redis these tests skip with a notice, unless
//! `AGX_REQUIRE_SERVICES=1`.

use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use agx_auth::{
    AgentRecord, Authenticator, CreditAccount, CreditDecision, CreditLedger, Credits, EndpointClass, GcraLimiter,
    KeyId, KeySpec, ManualClock, MemoryLedger, MemoryStore, Outcome, Quota, RateDecision, RateLimiter, Refill, Scope,
    Timestamp,
};
use agx_auth_redis::testing::{self, settings};
use agx_auth_redis::{OnOutage, RedisLimiter, RedisSettings, TimeSource};
use agx_testkit::Proxy;

const CHAT: EndpointClass = EndpointClass::CHAT;
const SECOND: u64 = 1_000_000_000;

fn quota(n: u32) -> Quota {
    Quota::try_per_minute(n).unwrap()
}

/// A fresh random key id: cells of different tests never meet.
fn fresh_key() -> KeyId {
    let nanos = std::time::SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    KeyId(nanos ^ (u128::from(std::process::id()) << 96) ^ 0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c834)
}

fn now() -> u64 {
    Timestamp::from(std::time::SystemTime::now()).0
}

/// A deterministic xorshift, so that a failing history can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_script_decides_exactly_as_the_core_over_long_histories() {
    let Some(redis) = testing::limiter("script_and_core", settings("script-core")).await else { return };
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut compared = 0;
    // Odd quotas make the interval round up; a start near the epoch makes
    // the script's times shorter than nine digits.
    for (n, start) in [(60, now()), (7, now()), (1, now()), (120, 5), (1000, SECOND - 3), (3_600_000, now())] {
        let (q, key, local) = (quota(n), fresh_key(), GcraLimiter::new());
        let mut t = start;
        for _ in 0..250 {
            t += match rng.next() % 6 {
                0 => 0,
                1 => rng.next() % 1000,
                2 => q.interval_ns() - 1 + rng.next() % 3,
                3 => rng.next() % q.interval_ns(),
                4 => rng.next() % (5 * SECOND),
                _ => rng.next() % q.limit_ns(),
            };
            let at = Timestamp(t);
            let expected = local.check_at(key, CHAT, q, at);
            let got = redis.check(key, CHAT, q, at).await.unwrap();
            assert_eq!(got, expected, "quota {n}, t = {t}");
            assert_eq!(redis.peek(key, CHAT, q, at).await.unwrap(), local.peek_at(key, CHAT, q, at));
            compared += 1;
        }
    }
    assert_eq!(compared, 1500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_spend_one_budget_exactly_under_concurrency() {
    let shared = settings("two-instances");
    let Some(a) = testing::limiter("two_instances", shared.clone()).await else { return };
    let b = testing::limiter("two_instances", shared).await.unwrap();
    let (a, b) = (Arc::new(a), Arc::new(b));
    let (key, q, t) = (fresh_key(), quota(60), Timestamp(now()));
    let mut admitted = 0;
    for decision in testing::at_once(&a, &b, 500, (key, CHAT), q, t).await {
        match decision {
            RateDecision::Admit(_) => admitted += 1,
            RateDecision::Deny { retry_after, .. } => assert!(retry_after > Duration::ZERO),
        }
    }
    assert_eq!(admitted, 60, "500 calls over two instances at one instant admit the burst, no more");
    let later = Timestamp(t.0 + SECOND);
    assert!(matches!(b.check(key, CHAT, q, later).await.unwrap(), RateDecision::Admit(_)), "one interval refills one");
    assert!(matches!(a.check(key, CHAT, q, later).await.unwrap(), RateDecision::Deny { .. }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_flush_is_answered_with_eval() {
    let Some(redis) = testing::limiter("script_flush", settings("script-flush")).await else { return };
    let (key, q, t) = (fresh_key(), quota(60), Timestamp(now()));
    assert!(matches!(redis.check(key, CHAT, q, t).await.unwrap(), RateDecision::Admit(s) if s.remaining == 59));
    let client = redis::Client::open(testing::url()).unwrap();
    let mut direct = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("SCRIPT").arg("FLUSH").query_async(&mut direct).await.unwrap();
    // The state survived; only the script cache was emptied.
    assert!(matches!(redis.check(key, CHAT, q, t).await.unwrap(), RateDecision::Admit(s) if s.remaining == 58));
    assert!(matches!(redis.check(key, CHAT, q, t).await.unwrap(), RateDecision::Admit(s) if s.remaining == 57));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cells_expire_once_their_time_has_passed() {
    let prefix_settings = settings("expiry");
    let prefix = prefix_settings.prefix.clone();
    let Some(redis) = testing::limiter("expiry", prefix_settings).await else { return };
    let (key, t) = (fresh_key(), Timestamp(now()));
    for _ in 0..3 {
        redis.check(key, CHAT, quota(60), t).await.unwrap();
    }
    let client = redis::Client::open(testing::url()).unwrap();
    let mut direct = client.get_multiplexed_async_connection().await.unwrap();
    let cell = format!("{prefix}:{key}:chat");
    let ttl: i64 = redis::cmd("PTTL").arg(&cell).query_async(&mut direct).await.unwrap();
    // Three of sixty spent: the TAT is 3 s ahead, plus the 1 s slack.
    assert!((3_000..=4_000).contains(&ttl), "PTTL {ttl} ms");
    // A peek never writes, so a peeked key leaves nothing behind.
    let other = fresh_key();
    redis.peek(other, CHAT, quota(60), t).await.unwrap();
    let exists: i64 =
        redis::cmd("EXISTS").arg(format!("{prefix}:{other}:chat")).query_async(&mut direct).await.unwrap();
    assert_eq!(exists, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_time_gives_every_instance_one_clock() {
    let s = RedisSettings { time_source: TimeSource::Redis, ..settings("redis-time") };
    let Some(redis) = testing::limiter("redis_time", s).await else { return };
    let key = fresh_key();
    // The caller's time is ignored: a caller a year off still spends the budget of now.
    let wrong = Timestamp(now() - 365 * 86_400 * SECOND);
    for spent in 1..=60 {
        match redis.check(key, CHAT, quota(60), wrong).await.unwrap() {
            RateDecision::Admit(s) => assert_eq!(s.remaining, 60 - spent),
            deny => panic!("request {spent} denied: {deny:?}"),
        }
    }
    match redis.check(key, CHAT, quota(60), Timestamp(now())).await.unwrap() {
        RateDecision::Deny { retry_after, status } => {
            assert!(retry_after <= Duration::from_secs(1), "{retry_after:?}");
            assert!(status.reset > Duration::from_secs(58) && status.reset <= Duration::from_secs(60));
        }
        admit => panic!("the 61st request was admitted: {admit:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_cell_fails_its_key_only() {
    let s = settings("broken-cell");
    let prefix = s.prefix.clone();
    let Some(redis) = testing::limiter("broken_cell", s).await else { return };
    let client = redis::Client::open(testing::url()).unwrap();
    let mut direct = client.get_multiplexed_async_connection().await.unwrap();
    let (junk, t) = (fresh_key(), Timestamp(now()));
    let (listed, healthy) = (KeyId(junk.0 ^ 1), KeyId(junk.0 ^ 2));
    // One cell holds a string the script cannot read, one holds a list.
    let _: () =
        redis::cmd("SET").arg(format!("{prefix}:{junk}:chat")).arg("junk").query_async(&mut direct).await.unwrap();
    let _: () =
        redis::cmd("RPUSH").arg(format!("{prefix}:{listed}:chat")).arg("x").query_async(&mut direct).await.unwrap();
    for key in [junk, listed] {
        let reply = redis.check(key, CHAT, quota(60), t).await;
        assert!(reply.is_err(), "a cell that cannot be read admits nothing: {reply:?}");
    }
    assert!(!redis.in_outage(), "one key's cell is not an outage");
    assert!(matches!(redis.check(healthy, CHAT, quota(60), t).await.unwrap(), RateDecision::Admit(_)));
    assert_eq!(redis.outages(), 0);
}

/// A limiter that reaches Redis through a proxy the test can cut.
async fn behind_proxy(label: &str, on_outage: OnOutage) -> Option<(RedisLimiter, Proxy)> {
    let url = testing::url();
    let authority = url.trim_start_matches("redis://").split('/').next().unwrap().to_owned();
    let proxy = Proxy::start(authority).await;
    let s = RedisSettings {
        on_outage,
        call_timeout: Duration::from_millis(200),
        connect_timeout: Duration::from_millis(500),
        retry_interval: Duration::from_millis(200),
        ..settings(label)
    };
    let reached = RedisLimiter::connect(&format!("redis://{}", proxy.authority()), s).await;
    agx_testkit::service("Redis", &url, label, reached).map(|limiter| (limiter, proxy))
}

/// Calls until one is admitted through Redis again; returns how long it took.
async fn until_redis_answers(limiter: &RedisLimiter, key: KeyId) -> Duration {
    let started = Instant::now();
    loop {
        let reply = limiter.check(key, CHAT, quota(1000), Timestamp(now())).await;
        if reply.is_ok() && !limiter.in_outage() {
            return started.elapsed();
        }
        assert!(started.elapsed() < Duration::from_secs(10), "Redis did not come back within 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_closed_refuses_while_redis_is_down_and_recovers_on_its_own() {
    let Some((limiter, proxy)) = behind_proxy("fail_closed", OnOutage::FailClosed).await else { return };
    let (key, q) = (fresh_key(), quota(60));
    assert!(limiter.check(key, CHAT, q, Timestamp(now())).await.is_ok());
    proxy.cut().await;
    let started = Instant::now();
    let first = limiter.check(key, CHAT, q, Timestamp(now())).await;
    assert!(first.is_err(), "{first:?}");
    assert!(started.elapsed() < Duration::from_millis(600), "the first failure took {:?}", started.elapsed());
    // While the breaker is open, calls do not wait on Redis at all.
    let started = Instant::now();
    for _ in 0..100 {
        assert!(limiter.check(key, CHAT, q, Timestamp(now())).await.is_err());
    }
    assert!(started.elapsed() < Duration::from_millis(50), "100 refusals took {:?}", started.elapsed());
    assert!(limiter.in_outage());
    proxy.restore();
    let recovered = until_redis_answers(&limiter, key).await;
    println!("fail closed: recovered {recovered:?} after Redis returned");
    assert_eq!(limiter.outages(), 1, "one outage, reported once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_open_local_limits_in_process_while_redis_is_down_and_recovers() {
    let Some((limiter, proxy)) = behind_proxy("fail_open_local", OnOutage::FailOpenLocal).await else { return };
    let (key, q, t) = (fresh_key(), quota(60), Timestamp(now()));
    proxy.cut().await;
    // The in-process limiter takes over with the same arithmetic: a burst of 60, then refusals.
    let mut admitted = 0;
    for _ in 0..100 {
        if let RateDecision::Admit(_) = limiter.check(key, CHAT, q, t).await.unwrap() {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 60);
    assert!(limiter.in_outage());
    assert_eq!(limiter.outages(), 1, "a hundred failed calls are one outage, warned once");
    proxy.restore();
    let recovered = until_redis_answers(&limiter, fresh_key()).await;
    println!("fail open local: recovered {recovered:?} after Redis returned");
    // Back on Redis, whose cell for this key was never written: the global budget applies again.
    assert!(matches!(limiter.check(key, CHAT, q, t).await.unwrap(), RateDecision::Admit(s) if s.remaining == 59));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_never_answers_again_is_replaced() {
    let Some((limiter, proxy)) = behind_proxy("stranded", OnOutage::FailClosed).await else { return };
    let (key, q) = (fresh_key(), quota(60));
    assert!(limiter.check(key, CHAT, q, Timestamp(now())).await.is_ok());
    // The connection goes silent for good (no close, no reset), while new
    // connections reach Redis: a failover to a new address, in effect.
    proxy.strand().await;
    let started = Instant::now();
    assert!(limiter.check(key, CHAT, q, Timestamp(now())).await.is_err(), "a silent connection is a failure");
    assert!(started.elapsed() < Duration::from_millis(600), "the call waited {:?}", started.elapsed());
    assert!(limiter.in_outage());
    let recovered = until_redis_answers(&limiter, key).await;
    println!("stranded connection: replaced, limits global again {recovered:?} after the first failure");
    assert!(recovered < Duration::from_secs(2), "one probe interval (200 ms) should do, took {recovered:?}");
    assert_eq!(limiter.outages(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_authenticator_an_outage_is_a_503_with_retry_after() {
    let Some((limiter, proxy)) = behind_proxy("authenticator_503", OnOutage::FailClosed).await else { return };
    let store = Arc::new(MemoryStore::new());
    store.insert_org("org_1", "Acme");
    store.insert_agent(AgentRecord::new("agent_1", "org_1", "Support"));
    let auth = Authenticator::builder(store.clone(), store)
        .limiter(Arc::new(limiter))
        .clock(Arc::new(ManualClock::starting_now()))
        .build();
    let (key, _) = auth.issue_key(KeySpec::new("org_1", "ci").scopes([Scope::CHAT])).await.unwrap();
    let mut headers = http::HeaderMap::new();
    headers.insert("x-api-key", key.expose_secret().parse().unwrap());
    let chat = "/api/public/agents/agent_1/chat";
    let allowed = auth.authenticate(&http::Method::POST, chat, &headers).await;
    assert!(matches!(allowed, Outcome::Allow(_)));
    proxy.cut().await;
    let Outcome::Deny(rejection) = auth.authenticate(&http::Method::POST, chat, &headers).await else {
        panic!("admitted while the limiter could not answer")
    };
    let response = rejection.into_response();
    assert_eq!(response.status(), http::StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key(http::header::RETRY_AFTER));
    let body = String::from_utf8_lossy(response.body());
    assert!(body.contains("AUTH_UNAVAILABLE"), "{body}");
    assert!(!body.contains(key.expose_secret()));
}

#[tokio::test]
async fn an_unreachable_redis_is_a_clear_error_without_the_password() {
    let s = RedisSettings { connect_timeout: Duration::from_millis(300), ..RedisSettings::default() };
    let err = RedisLimiter::connect("redis://:hunter2@127.0.0.1:1/0", s).await.expect_err("nothing listens on port 1");
    let text = err.to_string();
    assert!(text.contains("cannot reach Redis at redis://:***@127.0.0.1:1/0"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
    let err = RedisLimiter::connect("http://nope", RedisSettings::default()).await.expect_err("not a Redis URL");
    assert!(err.to_string().starts_with("invalid Redis URL"), "{err}");
}

/// A credit account for a fresh pool.
fn account(initial: u64, refill: Option<(u64, Duration)>, since: std::time::SystemTime) -> CreditAccount {
    CreditAccount {
        credits: Credits { initial, refill: refill.map(|(amount, interval)| Refill { amount, interval }) },
        pool: fresh_key(),
        since,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_credits_script_spends_exactly_as_the_core_over_long_histories() {
    let Some(redis) = testing::limiter("credits_script", settings("credits-script")).await else { return };
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let since = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let hour = Duration::from_secs(3600);
    let mut compared = 0;
    for refill in [None, Some((5, hour)), Some((0, hour)), Some((40, Duration::from_secs(1)))] {
        let (account, local) = (account(30, refill, since), MemoryLedger::new());
        let mut t = since;
        for _ in 0..200 {
            t = match rng.next() % 5 {
                // Now and then a clock that went back: it never refills.
                0 => t.checked_sub(Duration::from_millis(rng.next() % 2000)).unwrap(),
                1 => t + Duration::from_millis(rng.next() % 5000),
                2 => t + Duration::from_secs(rng.next() % 7200),
                _ => t,
            };
            let cost = rng.next() % 4;
            let expected = local.spend(account, cost, t).await.unwrap();
            assert_eq!(redis.spend(account, cost, t).await.unwrap(), expected, "{refill:?}, cost {cost}");
            assert_eq!(redis.remaining(account, t).await.unwrap(), local.remaining(account, t).await.unwrap());
            compared += 1;
        }
    }
    assert_eq!(compared, 800);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_spend_one_credit_balance_exactly_under_concurrency() {
    let shared = settings("credits-two-instances");
    let Some(a) = testing::limiter("credits_two_instances", shared.clone()).await else { return };
    let b = testing::limiter("credits_two_instances", shared).await.unwrap();
    let (a, b) = (Arc::new(a), Arc::new(b));
    let account = account(1_000, None, std::time::SystemTime::now());
    let now = std::time::SystemTime::now();
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let ledger = if i % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move {
                let mut spent = 0u64;
                for _ in 0..100 {
                    if let CreditDecision::Spent { .. } = ledger.spend(account, 1, now).await.unwrap() {
                        spent += 1;
                    }
                }
                spent
            })
        })
        .collect();
    let mut spent = 0;
    for task in tasks {
        spent += task.await.unwrap();
    }
    assert_eq!(spent, 1_000, "1,600 tries on two instances, exactly 1,000 spent");
    assert_eq!(a.remaining(account, now).await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credit_cells_with_a_refill_expire_after_their_period_and_others_never() {
    let s = settings("credits-expiry");
    let prefix = s.prefix.clone();
    let Some(redis) = testing::limiter("credits_expiry", s).await else { return };
    let now = std::time::SystemTime::now();
    let refilled = account(3, Some((3, Duration::from_secs(600))), now);
    let kept = account(3, None, now);
    for a in [refilled, kept] {
        assert_eq!(redis.spend(a, 1, now).await.unwrap(), CreditDecision::Spent { remaining: 2 });
    }
    let client = redis::Client::open(testing::url()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let ttl = |a: CreditAccount| {
        let name = format!("{prefix}:credits:{}:{}", a.pool, a.epoch_ms());
        redis::cmd("PTTL").arg(name).clone()
    };
    let refilled_ttl: i64 = ttl(refilled).query_async(&mut c).await.unwrap();
    assert!((600_000..=661_000).contains(&refilled_ttl), "until the refill and a minute: {refilled_ttl} ms");
    let kept_ttl: i64 = ttl(kept).query_async(&mut c).await.unwrap();
    assert_eq!(kept_ttl, -1, "credits that never refill are never forgotten");
    // In the next period, then from a caller whose clock is a second behind
    // (still in the first): the later period's cell keeps its expiry, or
    // its loss would grant that period's refill again.
    let next = now + Duration::from_secs(600);
    assert_eq!(redis.spend(refilled, 1, next).await.unwrap(), CreditDecision::Spent { remaining: 2 });
    let behind = next - Duration::from_secs(1);
    assert_eq!(redis.spend(refilled, 1, behind).await.unwrap(), CreditDecision::Spent { remaining: 1 });
    let after: i64 = ttl(refilled).query_async(&mut c).await.unwrap();
    assert!(after > 600_000, "the lagging spend cut the cell's life to {after} ms (61 s from the lagging caller)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credits_fail_closed_while_redis_is_down_even_when_the_limit_fails_open() {
    let Some((limiter, proxy)) = behind_proxy("credits_outage", OnOutage::FailOpenLocal).await else { return };
    let at = std::time::SystemTime::now();
    let account = account(10, None, at);
    assert!(limiter.spend(account, 1, at).await.is_ok());
    proxy.cut().await;
    assert!(limiter.spend(account, 1, at).await.is_err(), "no in-process count of credits");
    assert!(limiter.check(fresh_key(), CHAT, quota(60), Timestamp(now())).await.is_ok(), "the limit fails open");
    proxy.restore();
    until_redis_answers(&limiter, fresh_key()).await;
    assert_eq!(limiter.remaining(account, at).await.unwrap(), 9, "the balance is Redis's, untouched");
}
