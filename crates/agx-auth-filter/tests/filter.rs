//! The filter over the memory store: what reaches the store, and when.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use agx_auth::{
    ApiKey, KeyHash, KeyHasher, KeyHashes, KeyMode, KeyStore, Lookup, MemoryStore, Revocation, RevocationSink,
    StoreError,
};
use agx_auth_filter::{FilterSettings, FilterStatus, FilteredStore};
use agx_auth_moka::{CacheSettings, CachedStore};
use agx_testkit::AfterFind;
use async_trait::async_trait;
use common::record;
use ring::rand::SystemRandom;
use tokio::sync::Notify;

fn random_hash(rng: &SystemRandom) -> KeyHash {
    KeyHasher::default().hash(&ApiKey::generate(rng, KeyMode::Live).unwrap())
}

/// The memory store, counting the lookups that reach it.
fn counted() -> (Arc<AfterFind<MemoryStore>>, Arc<AtomicUsize>) {
    let finds = Arc::new(AtomicUsize::new(0));
    let counter = finds.clone();
    let store = AfterFind::new(Arc::new(memory()), move || {
        counter.fetch_add(1, Ordering::SeqCst);
        async {}
    });
    (Arc::new(store), finds)
}

/// The memory store behind the moka cache, as the server has PostgreSQL.
fn cached() -> Arc<CachedStore<MemoryStore>> {
    Arc::new(CachedStore::new(Arc::new(memory()), CacheSettings::default()))
}

/// An empty memory store with the org the records name.
fn memory() -> MemoryStore {
    let store = MemoryStore::new();
    store.insert_org("o", "O");
    store
}

/// A sink that only counts, standing for the cache behind the filter.
#[derive(Default)]
struct Heard(AtomicUsize);

impl RevocationSink for Heard {
    fn revoke(&self, _: Revocation) -> Lookup<'_, ()> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Lookup::ready(())
    }
}

#[tokio::test]
async fn once_loaded_unknown_keys_reach_no_store_and_known_ones_do() {
    let rng = SystemRandom::new();
    let (store, finds) = counted();
    let mut known = Vec::new();
    for _ in 0..1000 {
        known.push(store.create(record(&rng)).await.unwrap());
    }
    let filter = FilteredStore::new(store, FilterSettings::default());
    assert_eq!(filter.load().await.unwrap(), 1000);
    for _ in 0..10_000 {
        assert!(filter.find(&random_hash(&rng)).await.unwrap().is_none());
    }
    assert_eq!(finds.load(Ordering::SeqCst), 0, "an unknown key reached the store");
    assert_eq!(filter.stats().refused(), 10_000);
    for k in &known {
        assert_eq!(filter.find(&k.hash).await.unwrap().map(|r| r.id), Some(k.id));
    }
    assert_eq!(finds.load(Ordering::SeqCst), 1000);
    assert!(matches!(filter.status(), FilterStatus::Ready { keys: 1000, learnt: 0, .. }));
}

#[tokio::test]
async fn before_the_first_load_every_lookup_goes_to_the_store() {
    let rng = SystemRandom::new();
    let (store, finds) = counted();
    let filter = FilteredStore::new(store, FilterSettings::default());
    assert_eq!(filter.status(), FilterStatus::Loading);
    for _ in 0..10 {
        assert!(filter.find(&random_hash(&rng)).await.unwrap().is_none());
    }
    assert_eq!(finds.load(Ordering::SeqCst), 10);
}

#[tokio::test]
async fn keys_stored_through_it_or_announced_are_found_at_once() {
    let rng = SystemRandom::new();
    let (store, _) = counted();
    let filter = FilteredStore::new(store.clone(), FilterSettings::default());
    filter.load().await.unwrap();
    // Created and rolled here.
    let created = filter.create(record(&rng)).await.unwrap();
    assert!(filter.find(&created.hash).await.unwrap().is_some());
    let rolled = filter.roll("o", created.id, record(&rng), SystemTime::now()).await.unwrap().unwrap();
    assert!(filter.find(&rolled.hash).await.unwrap().is_some());
}

#[tokio::test]
async fn every_change_is_passed_on_to_the_store_behind() {
    let rng = SystemRandom::new();
    let filter = FilteredStore::new(Arc::new(Heard::default()), FilterSettings::default());
    filter.revoke(Revocation::Issued(random_hash(&rng))).await;
    filter.revoke(Revocation::Key(random_hash(&rng))).await;
    filter.revoke(Revocation::All).await;
    assert_eq!(filter.inner().0.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn an_issued_notice_teaches_it_a_key_created_on_another_instance() {
    let rng = SystemRandom::new();
    let store = cached();
    let filter = FilteredStore::new(store.clone(), FilterSettings::default());
    filter.load().await.unwrap();
    let elsewhere = store.inner().create(record(&rng)).await.unwrap();
    assert!(filter.find(&elsewhere.hash).await.unwrap().is_none());
    filter.revoke(Revocation::Issued(elsewhere.hash)).await;
    assert!(filter.find(&elsewhere.hash).await.unwrap().is_some());
}

#[tokio::test]
async fn after_a_lost_channel_lookups_go_to_the_store_until_the_reload() {
    let rng = SystemRandom::new();
    let store = cached();
    let filter = Arc::new(FilteredStore::new(store.clone(), FilterSettings::default()));
    filter.load().await.unwrap();
    // Issued while the channel was down: no notice ever comes.
    let unheard = store.inner().create(record(&rng)).await.unwrap();
    filter.revoke(Revocation::All).await;
    assert_eq!(filter.status(), FilterStatus::Loading);
    assert!(filter.find(&unheard.hash).await.unwrap().is_some(), "found through the store meanwhile");
    let _maintainer = filter.spawn_maintainer();
    wait_for(|| filter.stats().loads() == 2).await;
    assert!(filter.find(&unheard.hash).await.unwrap().is_some(), "in the reloaded filter");
    assert!(filter.find(&random_hash(&rng)).await.unwrap().is_none());
    assert_eq!(filter.stats().refused(), 1);
}

#[tokio::test]
async fn a_load_overtaken_by_a_lost_channel_is_not_installed() {
    let store = Arc::new(Gated { store: MemoryStore::new(), gate: Notify::new() });
    let filter = Arc::new(FilteredStore::new(store.clone(), FilterSettings::default()));
    let loading = tokio::spawn({
        let filter = filter.clone();
        async move { filter.load().await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    filter.revoke(Revocation::All).await;
    store.gate.notify_one();
    assert!(loading.await.unwrap().is_err(), "hashes read before the loss may miss unheard keys");
    assert_eq!(filter.status(), FilterStatus::Loading);
}

#[tokio::test]
async fn enough_learnt_keys_rebuild_the_filter() {
    let rng = SystemRandom::new();
    let (store, _) = counted();
    let settings = FilterSettings { rebuild_after: 10, ..FilterSettings::default() };
    let filter = Arc::new(FilteredStore::new(store, settings));
    let _maintainer = filter.spawn_maintainer();
    wait_for(|| filter.stats().loads() == 1).await;
    for _ in 0..11 {
        filter.create(record(&rng)).await.unwrap();
    }
    wait_for(|| filter.stats().loads() == 2).await;
    assert!(matches!(filter.status(), FilterStatus::Ready { keys: 11, learnt: 0, .. }));
}

async fn wait_for(done: impl Fn() -> bool) {
    for _ in 0..500 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("not within 5 s");
}

/// A store whose hash listing waits for the test's signal.
struct Gated {
    store: MemoryStore,
    gate: Notify,
}

impl RevocationSink for Gated {
    fn revoke(&self, _: Revocation) -> Lookup<'_, ()> {
        Lookup::ready(())
    }
}

#[async_trait]
impl KeyHashes for Gated {
    async fn live_hashes(&self) -> Result<Vec<KeyHash>, StoreError> {
        self.gate.notified().await;
        self.store.live_hashes().await
    }
}
