//! The Redis limiter on a real Redis Cluster: three `redis-server
//! --cluster-enabled yes` processes on loopback (six with replicas), joined
//! by `redis-cli --cluster create`. The same decisions as the in-process
//! limiter on every shard, one budget across instances, and a primary's
//! death: failed over to its replica, or failed closed without one.
//! Without `redis-server` these tests skip with a notice, unless
//! `AGX_REQUIRE_SERVICES=1`.

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, UNIX_EPOCH};

use agx_auth::{EndpointClass, GcraLimiter, KeyId, Quota, RateDecision, RateLimiter, Timestamp};
use agx_auth_redis::testing::{self, settings};
use agx_auth_redis::{RedisLimiter, RedisSettings};

const CHAT: EndpointClass = EndpointClass::CHAT;
const SECOND: u64 = 1_000_000_000;

fn quota(n: u32) -> Quota {
    Quota::try_per_minute(n).unwrap()
}

fn now() -> u64 {
    Timestamp::from(std::time::SystemTime::now()).0
}

/// The `i`-th key id of this run: the same for the same `i`, fresh in every
/// run, and spread over the slots by their hash.
fn key(i: u64) -> KeyId {
    static BASE: OnceLock<u128> = OnceLock::new();
    let base = *BASE.get_or_init(|| std::time::SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos());
    KeyId(base ^ (u128::from(i) << 64) ^ 0x5851_f42d_4c95_7f2d_1405_7b7e_f767_814f)
}

/// Test settings with a breaker short enough that a failover is seen as it
/// ends, not a second later.
fn quick(label: &str) -> RedisSettings {
    RedisSettings { retry_interval: Duration::from_millis(100), ..settings(label) }
}

fn cell(settings: &RedisSettings, key: KeyId) -> String {
    format!("{}:{key}:{}", settings.prefix, CHAT.as_str())
}

/// A key (`from`, `from + 1`, …) whose cell the primary on `port` serves.
async fn key_on(cluster: &agx_testkit::RedisCluster, settings: &RedisSettings, port: u16, from: u64) -> KeyId {
    for i in from..from + 1000 {
        if cluster.primary_of(&cell(settings, key(i))).await.unwrap() == port {
            return key(i);
        }
    }
    panic!("no key of 1000 falls on the primary on port {port}");
}

/// Calls until the limiter answers; how long that took and how many calls
/// were refused with an error on the way.
async fn until_answered(limiter: &RedisLimiter, key: KeyId, q: Quota, at: Timestamp) -> (Duration, u32, RateDecision) {
    let began = Instant::now();
    let mut refused = 0;
    loop {
        match limiter.check(key, CHAT, q, at).await {
            Ok(decision) => return (began.elapsed(), refused, decision),
            Err(_) => refused += 1,
        }
        assert!(began.elapsed() < Duration::from_secs(15), "the limiter did not answer again within 15 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_every_shard_the_script_decides_exactly_as_the_core() {
    let Some(cluster) = testing::cluster("cluster script and core", 3, 0).await else { return };
    let s = settings("cluster-script-core");
    let redis = testing::cluster_limiter(&cluster, s.clone()).await;
    let primaries: BTreeSet<u16> = cluster.primaries().await.unwrap().into_iter().collect();
    assert_eq!(primaries.len(), 3);
    let mut shards_used = BTreeSet::new();
    let mut compared = 0;
    for i in 0..24 {
        let (k, q, local) = (key(i), quota([60, 7, 1, 1000][i as usize % 4]), GcraLimiter::new());
        shards_used.insert(cluster.primary_of(&cell(&s, k)).await.unwrap());
        let mut t = now();
        for step in 0..40u64 {
            t += (step * 7919 + i * 104_729) % (q.interval_ns() * 2);
            let at = Timestamp(t);
            assert_eq!(redis.check(k, CHAT, q, at).await.unwrap(), local.check_at(k, CHAT, q, at), "key {i}, t = {t}");
            assert_eq!(redis.peek(k, CHAT, q, at).await.unwrap(), local.peek_at(k, CHAT, q, at));
            compared += 1;
        }
        if i == 11 {
            // Every primary forgets the script: each answers NOSCRIPT once,
            // which is answered with EVAL.
            for url in cluster.urls() {
                let mut direct = redis::Client::open(url).unwrap().get_multiplexed_async_connection().await.unwrap();
                let _: () = redis::cmd("SCRIPT").arg("FLUSH").query_async(&mut direct).await.unwrap();
            }
        }
    }
    assert_eq!(compared, 24 * 40);
    assert_eq!(shards_used, primaries, "the keys' cells fell on every shard");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_a_cluster_spend_one_budget_exactly() {
    let Some(cluster) = testing::cluster("cluster two instances", 3, 0).await else { return };
    let shared = settings("cluster-two-instances");
    let a = Arc::new(testing::cluster_limiter(&cluster, shared.clone()).await);
    let b = Arc::new(testing::cluster_limiter(&cluster, shared).await);
    let t = Timestamp(now());
    let q = quota(60);
    for k in [key(1), key(2), key(3)] {
        let decisions = testing::at_once(&a, &b, 300, (k, CHAT), q, t).await;
        let admitted = decisions.iter().filter(|d| matches!(d, RateDecision::Admit(_))).count();
        assert_eq!(admitted, 60, "300 calls over two instances at one instant admit the burst, no more");
        let later = Timestamp(t.0 + SECOND);
        assert!(matches!(a.check(k, CHAT, q, later).await.unwrap(), RateDecision::Admit(_)));
        assert!(matches!(b.check(k, CHAT, q, later).await.unwrap(), RateDecision::Deny { .. }));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_primary_fails_over_to_its_replica_and_the_spent_budget_survives() {
    let Some(mut cluster) = testing::cluster("cluster failover", 3, 1).await else { return };
    let s = quick("cluster-failover");
    let redis = testing::cluster_limiter(&cluster, s.clone()).await;
    let victim = cluster.primaries().await.unwrap()[1];
    let (spent, q, t) = (key_on(&cluster, &s, victim, 0).await, quota(10), Timestamp(now()));
    for n in 0..12 {
        let admitted = matches!(redis.check(spent, CHAT, q, t).await.unwrap(), RateDecision::Admit(_));
        assert_eq!(admitted, n < 10);
    }
    // Replication is asynchronous: the replica must hold the writes before
    // the kill (a fixed wait lost them on a loaded machine).
    cluster.until_replicated(victim, Duration::from_secs(5)).await.unwrap();
    cluster.kill(victim).await.unwrap();

    let (took, refused, decision) = until_answered(&redis, spent, q, t).await;
    eprintln!(
        "failover: the key's shard answered again after {took:?} ({refused} calls refused with an error meanwhile)"
    );
    assert!(matches!(decision, RateDecision::Deny { .. }), "the budget spent before the kill is still spent");
    let promoted = cluster.settled_primary_of(&cell(&s, spent), Duration::from_secs(5)).await.unwrap();
    assert_ne!(promoted, victim, "a replica was promoted");
    assert!(took < Duration::from_secs(10), "failover took {took:?}");
    let fresh = key_on(&cluster, &s, promoted, 1000).await;
    assert!(matches!(redis.check(fresh, CHAT, q, t).await.unwrap(), RateDecision::Admit(_)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_replica_a_killed_primary_fails_closed_until_it_returns() {
    let Some(mut cluster) = testing::cluster("cluster fail closed", 3, 0).await else { return };
    let s = quick("cluster-fail-closed");
    let redis = testing::cluster_limiter(&cluster, s.clone()).await;
    let victim = cluster.primaries().await.unwrap()[0];
    let (k, q, t) = (key_on(&cluster, &s, victim, 0).await, quota(10), Timestamp(now()));
    assert!(matches!(redis.check(k, CHAT, q, t).await.unwrap(), RateDecision::Admit(_)));
    cluster.kill(victim).await.unwrap();
    // Well past the node timeout: the other nodes have marked it failed.
    let down_until = Instant::now() + agx_testkit::NODE_TIMEOUT * 3;
    let mut calls = 0;
    while Instant::now() < down_until {
        let answer = redis.check(k, CHAT, q, t).await;
        assert!(answer.is_err(), "a key whose shard is gone is refused with an error, never decided: {answer:?}");
        calls += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(calls > 10);
    cluster.restart(victim).await.unwrap();
    cluster.until_healthy(Duration::from_secs(20)).await.unwrap();
    let (took, _, decision) = until_answered(&redis, k, q, t).await;
    eprintln!("fail closed: the restarted shard answered {took:?} after the cluster was healthy again");
    assert!(matches!(decision, RateDecision::Admit(_)));
    assert!(took < Duration::from_secs(5));
}
