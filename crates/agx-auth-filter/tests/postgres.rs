//! The filter as the reference server stacks it on PostgreSQL: filter →
//! moka cache → PostgreSQL, fed by the revocation listener. Skips with a
//! notice without PostgreSQL, unless `AGX_REQUIRE_SERVICES=1`.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use agx_auth::{ApiKey, DirectoryAdmin, KeyHasher, KeyMode, KeyStore};
use agx_auth_filter::{FilterSettings, FilterStatus, FilteredStore};
use agx_auth_moka::{CacheSettings, CachedStore};
use agx_auth_postgres::{PgSettings, PgStore, listener};
use agx_testkit::AfterFind;
use common::record;
use ring::rand::SystemRandom;

#[tokio::test]
async fn unknown_keys_cost_no_query_and_a_key_made_elsewhere_is_accepted_within_a_second() {
    let Some(url) = agx_auth_postgres::testing::fresh_database("filter on postgres").await else { return };
    let rng = SystemRandom::new();
    // Another instance, which issues the keys.
    let other = PgStore::connect(&url, PgSettings::default()).await.unwrap();
    other.put_org("o", "O").await.unwrap();
    let mut known = Vec::new();
    for _ in 0..100 {
        known.push(other.create(record(&rng)).await.unwrap());
    }
    // This instance, counting the lookups that reach PostgreSQL.
    let queries = Arc::new(AtomicUsize::new(0));
    let counter = queries.clone();
    let pg =
        Arc::new(AfterFind::new(Arc::new(PgStore::connect(&url, PgSettings::default()).await.unwrap()), move || {
            counter.fetch_add(1, Ordering::SeqCst);
            async {}
        }));
    let cache = Arc::new(CachedStore::new(pg, CacheSettings::default()));
    let filter = Arc::new(FilteredStore::new(cache, FilterSettings::default()));
    let _listener = listener::spawn(url.clone(), filter.clone());
    let _maintainer = filter.spawn_maintainer();
    let started = Instant::now();
    while !matches!(filter.status(), FilterStatus::Ready { keys: 100, .. }) {
        assert!(started.elapsed() < Duration::from_secs(10), "the filter did not load");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    for _ in 0..10_000 {
        let unknown = KeyHasher::default().hash(&ApiKey::generate(&rng, KeyMode::Live).unwrap());
        assert!(filter.find(&unknown).await.unwrap().is_none());
    }
    assert_eq!(queries.load(Ordering::SeqCst), 0, "unknown well-formed keys reached PostgreSQL");
    for k in &known {
        assert!(filter.find(&k.hash).await.unwrap().is_some());
    }
    assert_eq!(queries.load(Ordering::SeqCst), 100, "each known key is one query, then cached");

    // A key created on the other instance, asked for here at once and until found.
    let created = other.create(record(&rng)).await.unwrap();
    let issued = Instant::now();
    while filter.find(&created.hash).await.unwrap().is_none() {
        assert!(issued.elapsed() < Duration::from_secs(1), "a key made elsewhere was refused for over 1 s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    println!("a key created on another instance was accepted here after {:?}", issued.elapsed());
}
