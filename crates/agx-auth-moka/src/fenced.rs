//! A moka cache that a revocation cannot race.
//!
//! A miss loads from the store. If the entry is revoked while that load is
//! in flight (a delete commits on another instance after the load read the
//! row, and its `NOTIFY` arrives before the load returns), moka's
//! `invalidate` finds nothing to remove, and the load then inserts the row it
//! read: the deleted key would verify on this instance until the TTL. So
//! every entry remembers when its load began, on a counter that every
//! revocation advances, and an entry whose load began before the latest
//! revocation of its stripe is refused as if it were absent.
//!
//! Stripes (256, by a byte of the key) keep a revocation from refusing the
//! whole cache: it costs a reload of the entries of one stripe that were
//! loaded before it, which is the price of two atomics on every hit instead
//! of a map of per-key generations.

use std::borrow::Borrow;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};

use agx_auth::{KeyHash, StoreError};
use moka::future::Cache;
use moka::ops::compute::Op;

use crate::CacheStats;

const STRIPES: usize = 256;

/// Which stripe's revocations an entry must be newer than.
pub(crate) trait Striped {
    fn stripe(&self) -> usize;
}

impl Striped for KeyHash {
    /// A SHA-256 (or HMAC) output: any byte is uniform.
    fn stripe(&self) -> usize {
        usize::from(self.0[0])
    }
}

impl Striped for str {
    fn stripe(&self) -> usize {
        usize::from(self.bytes().fold(0u8, |acc, b| acc.rotate_left(3) ^ b))
    }
}

/// A value and the revocation count when its load began.
#[derive(Clone)]
pub(crate) struct Entry<V> {
    pub(crate) value: V,
    loaded_at: u64,
}

pub(crate) struct FencedCache<K, V> {
    cache: Cache<K, Entry<V>>,
    /// Advanced by every revocation.
    revocations: AtomicU64,
    /// Per stripe, the count of its latest revocation.
    stripes: Box<[AtomicU64]>,
    /// The count of the latest revocation of everything.
    all: AtomicU64,
    pub(crate) stats: CacheStats,
}

impl<K, V> FencedCache<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    pub(crate) fn new(cache: Cache<K, Entry<V>>) -> Self {
        FencedCache {
            cache,
            revocations: AtomicU64::new(0),
            stripes: (0..STRIPES).map(|_| AtomicU64::new(0)).collect(),
            all: AtomicU64::new(0),
            stats: CacheStats::default(),
        }
    }

    fn is_current<Q: Striped + ?Sized>(&self, key: &Q, entry: &Entry<V>) -> bool {
        entry.loaded_at >= self.stripes[key.stripe()].load(SeqCst) && entry.loaded_at >= self.all.load(SeqCst)
    }

    /// The cached value, or `load`'s. Concurrent misses wait for one load;
    /// an error is returned to all of them and cached for none.
    pub(crate) async fn get_or_load<Q, F, Fut>(&self, key: &Q, load: F) -> Result<V, StoreError>
    where
        K: Borrow<Q>,
        Q: ToOwned<Owned = K> + Hash + Eq + Striped + Sync + ?Sized,
        F: Fn() -> Fut + Sync,
        Fut: Future<Output = Result<V, StoreError>> + Send,
    {
        if let Some(entry) = self.cache.get(key).await {
            if self.is_current(key, &entry) {
                self.stats.hit();
                return Ok(entry.value);
            }
            self.forget_stale(key).await;
        }
        self.stats.miss();
        // A load this call joined may have begun before a revocation of its
        // stripe: then its entry goes, and one more load (shared by every
        // caller in the same position, and cached) begins after it. Only if
        // revocations keep landing during loads does the store answer this
        // call directly, uncached.
        for _ in 0..2 {
            let entry = self.load_shared(key, &load).await?;
            if self.is_current(key, &entry) {
                return Ok(entry.value);
            }
            self.forget_stale(key).await;
        }
        load().await
    }

    async fn load_shared<Q, F, Fut>(&self, key: &Q, load: &F) -> Result<Entry<V>, StoreError>
    where
        K: Borrow<Q>,
        Q: ToOwned<Owned = K> + Hash + Eq + Sync + ?Sized,
        F: Fn() -> Fut + Sync,
        Fut: Future<Output = Result<V, StoreError>> + Send,
    {
        self.cache
            .try_get_with_by_ref(key, async {
                let loaded_at = self.revocations.load(SeqCst);
                load().await.map(|value| Entry { value, loaded_at })
            })
            .await
            .map_err(|e: Arc<StoreError>| StoreError::clone(&e))
    }

    /// Removes the entry if it is still one that a revocation outdated: a
    /// fresh one that another caller loaded meanwhile stays.
    async fn forget_stale<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: ToOwned<Owned = K> + Hash + Eq + Striped + ?Sized,
    {
        self.cache
            .entry_by_ref(key)
            .and_compute_with(|current| {
                let stale = current.is_some_and(|e| !self.is_current(key, e.value()));
                std::future::ready(if stale { Op::Remove } else { Op::Nop })
            })
            .await;
    }

    /// Forgets one entry, including one whose load is in flight.
    pub(crate) async fn revoke<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + Striped + ?Sized,
    {
        let at = self.revocations.fetch_add(1, SeqCst) + 1;
        self.stripes[key.stripe()].fetch_max(at, SeqCst);
        self.cache.invalidate(key).await;
    }

    /// Forgets every entry, including those whose loads are in flight.
    pub(crate) fn revoke_all(&self) {
        let at = self.revocations.fetch_add(1, SeqCst) + 1;
        self.all.fetch_max(at, SeqCst);
        self.cache.invalidate_all();
    }
}
