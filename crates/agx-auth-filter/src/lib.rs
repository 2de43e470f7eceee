//! A filter of every known key hash in front of any [`KeyStore`], so that a
//! well-formed key no one issued is refused without I/O.
//!
//! A key's checksum is public: anyone can make millions of keys that pass
//! it, and without this each one costs a store query (and a negative cache
//! entry). [`FilteredStore`] holds a 32-bit binary fuse filter (`xorf`'s
//! `BinaryFuse32`) of every live key's hash, built from
//! [`KeyHashes::live_hashes`], and answers "no such key" for any hash the
//! filter does not hold.
//!
//! Choices, and why:
//! - **A 32-bit binary fuse filter**: about 4.5 bytes per key (4.5 MB per
//!   million, measured in this crate's tests) and a false-positive rate of
//!   2⁻³² per lookup, so that a flood of unknown keys reaches the store about
//!   once per four billion. An 8-bit filter (1.1 bytes a key) would let 1 in
//!   256 through: a flood of 100,000 a second would still cost 390 queries a
//!   second. The filter is immutable, which makes a lookup two reads and no
//!   lock contention; new keys are learnt in a small set beside it
//!   (`issued`), and the filter is rebuilt in the background once that set
//!   grows past [`FilterSettings::rebuild_after`] (or 1/16 of the filter).
//! - **Learning new keys.** A key created or rolled through this store is
//!   learnt at once. One created on another instance is learnt from the
//!   store's change channel ([`Revocation::Issued`]; PostgreSQL sends it in
//!   the statement that inserts the key): feed this store's
//!   [`RevocationSink`] from the channel and it passes every change on to the
//!   store behind it (a cache).
//! - **Fail towards the store, never towards a refusal of a real key.**
//!   Until the first load completes, and from a [`Revocation::All`] (the
//!   channel was down, so an issued key may have gone unheard) until the
//!   reload that follows, every lookup goes to the store. A load that
//!   started before such a `All` is not installed.
//! - **Deleted keys stay in the filter** until the next rebuild: the store
//!   (or the cache) refuses them as before, and no one outside knows their
//!   hashes.
//! - **What a filter cannot know**: a key created on another instance and
//!   used here before its notice arrives (milliseconds) is refused as
//!   unknown. The conformance suite's multi-instance run checks that such a
//!   key is accepted within a second.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, SystemTime};

use agx_auth::{
    KeyChange, KeyHash, KeyHashes, KeyId, KeyRecord, KeyStore, KeyUpdate, Lookup, Revocation, RevocationSink,
    StoreError,
};
use async_trait::async_trait;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use xorf::{BinaryFuse32, Filter};

/// When to rebuild, and how to retry a load that failed.
#[derive(Clone, Copy, Debug)]
pub struct FilterSettings {
    /// Keys learnt since the last build before a rebuild (or 1/16 of the
    /// keys the filter holds, whichever is more).
    pub rebuild_after: usize,
    /// The first wait after a failed load; it doubles, up to `max_retry`.
    pub retry: Duration,
    pub max_retry: Duration,
}

impl Default for FilterSettings {
    fn default() -> Self {
        FilterSettings { rebuild_after: 4096, retry: Duration::from_millis(100), max_retry: Duration::from_secs(5) }
    }
}

/// What the filter is doing, for readiness and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FilterStatus {
    /// Not loaded (yet, or again after the change channel was down): every
    /// lookup goes to the store.
    Loading,
    /// Loaded: `keys` in the filter, `bytes` of it, and `learnt` since.
    Ready { keys: usize, bytes: usize, learnt: usize },
}

/// Counts, for metrics.
#[derive(Debug, Default)]
pub struct FilterStats {
    refused: AtomicU64,
    passed: AtomicU64,
    loads: AtomicU64,
}

impl FilterStats {
    /// Lookups answered "no such key" by the filter alone.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Lookups handed to the store (the filter holds the hash, or is not loaded).
    pub fn passed(&self) -> u64 {
        self.passed.load(Ordering::Relaxed)
    }

    /// Filters built and installed.
    pub fn loads(&self) -> u64 {
        self.loads.load(Ordering::Relaxed)
    }
}

/// A [`KeyStore`] that refuses, without asking `inner`, every hash its
/// filter of known keys does not hold. Run [`FilteredStore::spawn_maintainer`]
/// to load it and keep it rebuilt.
pub struct FilteredStore<S> {
    inner: Arc<S>,
    state: RwLock<State>,
    /// Raised by every [`Revocation::All`]; a load that saw another value at
    /// its start is not installed.
    epoch: AtomicU64,
    wake: Notify,
    settings: FilterSettings,
    stats: FilterStats,
}

#[derive(Default)]
struct State {
    /// `None`: not loaded, every lookup goes to the store.
    built: Option<Built>,
    /// Fingerprints learnt since the filter was built.
    learnt: HashSet<u64, foldhash::fast::RandomState>,
}

struct Built {
    /// `None` for an empty key set, which holds nothing.
    filter: Option<BinaryFuse32>,
    keys: usize,
}

impl Built {
    fn holds(&self, fingerprint: u64) -> bool {
        self.filter.as_ref().is_some_and(|f| f.contains(&fingerprint))
    }
}

/// The filter's 64-bit input: the hash's first 8 bytes. The hash is SHA-256
/// (or HMAC-SHA256) of a key with 26 random base62 characters (about 154
/// bits), so these are uniform.
fn fingerprint(hash: &KeyHash) -> u64 {
    let [a, b, c, d, e, f, g, h, ..] = hash.0;
    u64::from_le_bytes([a, b, c, d, e, f, g, h])
}

impl<S> FilteredStore<S> {
    pub fn new(inner: Arc<S>, settings: FilterSettings) -> Self {
        FilteredStore {
            inner,
            state: RwLock::default(),
            epoch: AtomicU64::new(0),
            wake: Notify::new(),
            settings,
            stats: FilterStats::default(),
        }
    }

    pub fn inner(&self) -> &Arc<S> {
        &self.inner
    }

    pub fn stats(&self) -> &FilterStats {
        &self.stats
    }

    pub fn status(&self) -> FilterStatus {
        let state = self.read();
        match &state.built {
            None => FilterStatus::Loading,
            Some(built) => FilterStatus::Ready {
                keys: built.keys,
                bytes: built.filter.as_ref().map_or(0, |f| f.fingerprints.len() * 4),
                learnt: state.learnt.len(),
            },
        }
    }

    /// Whether `hash` may be a key: `false` only when the filter is loaded
    /// and holds neither it nor a key learnt since.
    fn may_hold(&self, hash: &KeyHash) -> bool {
        let fp = fingerprint(hash);
        let state = self.read();
        match &state.built {
            None => true,
            Some(built) => built.holds(fp) || state.learnt.contains(&fp),
        }
    }

    /// Learns a key stored here or announced by another instance.
    fn learn(&self, hash: &KeyHash) {
        let fp = fingerprint(hash);
        let mut state = self.write();
        if state.built.as_ref().is_some_and(|b| b.holds(fp)) {
            return;
        }
        state.learnt.insert(fp);
        if self.too_many_learnt(&state) {
            self.wake.notify_one();
        }
    }

    fn too_many_learnt(&self, state: &State) -> bool {
        let keys = state.built.as_ref().map_or(0, |b| b.keys);
        state.built.is_some() && state.learnt.len() > self.settings.rebuild_after.max(keys / 16)
    }

    /// The channel was down: any key may have been issued unheard.
    fn forget_all(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.write().built = None;
        self.wake.notify_one();
    }

    // A poisoned lock only means a thread panicked while holding it; the
    // state is replaced whole or a set grows by one, so it stays usable.
    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }
}

impl<S: KeyHashes> FilteredStore<S> {
    /// Builds the filter from the store's live hashes and installs it;
    /// answers how many keys it holds. Not installed (an error) when a
    /// [`Revocation::All`] arrived meanwhile: the hashes read may predate it.
    pub async fn load(&self) -> Result<usize, StoreError> {
        let epoch = self.epoch.load(Ordering::Acquire);
        let hashes = self.inner.live_hashes().await?;
        // Building a million-key filter takes tens of milliseconds of CPU:
        // off the runtime's worker threads.
        let built = tokio::task::spawn_blocking(move || build(&hashes))
            .await
            .map_err(|_| StoreError::Unavailable("the key filter's build did not finish".into()))??;
        let mut state = self.write();
        if self.epoch.load(Ordering::Acquire) != epoch {
            return Err(StoreError::Unavailable("the change channel was lost while the key filter loaded".into()));
        }
        let keys = built.keys;
        state.learnt.retain(|fp| !built.holds(*fp));
        state.built = Some(built);
        drop(state);
        self.stats.loads.fetch_add(1, Ordering::Relaxed);
        Ok(keys)
    }

    fn needs_load(&self) -> bool {
        let state = self.read();
        state.built.is_none() || self.too_many_learnt(&state)
    }

    /// Loads the filter now, and again whenever it must be rebuilt, until
    /// the handle is dropped. A failed load is retried with backoff; lookups
    /// go to the store meanwhile.
    pub fn spawn_maintainer(self: &Arc<Self>) -> MaintainerHandle {
        let this = self.clone();
        MaintainerHandle(tokio::spawn(async move {
            let mut retry = this.settings.retry;
            loop {
                if this.needs_load() {
                    match this.load().await {
                        Ok(keys) => {
                            tracing::debug!(keys, "the key filter is loaded");
                            retry = this.settings.retry;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "the key filter could not load; lookups go to the store");
                            tokio::time::sleep(retry).await;
                            retry = (retry * 2).min(this.settings.max_retry);
                            continue;
                        }
                    }
                }
                this.wake.notified().await;
            }
        }))
    }
}

fn build(hashes: &[KeyHash]) -> Result<Built, StoreError> {
    let mut fps: Vec<u64> = hashes.iter().map(fingerprint).collect();
    fps.sort_unstable();
    fps.dedup();
    if fps.is_empty() {
        return Ok(Built { filter: None, keys: 0 });
    }
    let filter = BinaryFuse32::try_from(&fps)
        .map_err(|e| StoreError::Unavailable(format!("the key filter could not be built: {e}").into()))?;
    Ok(Built { filter: Some(filter), keys: fps.len() })
}

/// Keeps the filter maintained until dropped.
pub struct MaintainerHandle(JoinHandle<()>);

impl Drop for MaintainerHandle {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[async_trait]
impl<S: KeyStore> KeyStore for FilteredStore<S> {
    fn find<'a>(&'a self, hash: &'a KeyHash) -> Lookup<'a, Result<Option<Arc<KeyRecord>>, StoreError>> {
        if !self.may_hold(hash) {
            self.stats.refused.fetch_add(1, Ordering::Relaxed);
            return Lookup::ready(Ok(None));
        }
        self.stats.passed.fetch_add(1, Ordering::Relaxed);
        self.inner.find(hash)
    }

    async fn get(&self, org: &str, id: KeyId) -> Result<Option<Arc<KeyRecord>>, StoreError> {
        self.inner.get(org, id).await
    }

    async fn create(&self, record: KeyRecord) -> Result<Arc<KeyRecord>, StoreError> {
        let hash = record.hash;
        // Learnt before the write, so that no request can see the key stored
        // and the filter not yet knowing it; a failed write leaves one
        // harmless extra member.
        self.learn(&hash);
        self.inner.create(record).await
    }

    async fn list(&self, org: &str) -> Result<Vec<Arc<KeyRecord>>, StoreError> {
        self.inner.list(org).await
    }

    async fn update(
        &self,
        org: &str,
        id: KeyId,
        change: &KeyChange,
        at: SystemTime,
    ) -> Result<Option<KeyUpdate>, StoreError> {
        self.inner.update(org, id, change, at).await
    }

    async fn delete(&self, org: &str, id: KeyId, at: SystemTime) -> Result<bool, StoreError> {
        self.inner.delete(org, id, at).await
    }

    async fn roll(
        &self,
        org: &str,
        id: KeyId,
        replacement: KeyRecord,
        old_expires_at: SystemTime,
    ) -> Result<Option<Arc<KeyRecord>>, StoreError> {
        self.learn(&replacement.hash);
        self.inner.roll(org, id, replacement, old_expires_at).await
    }
}

/// Feed it from the store's change channel; every change is passed on to
/// the store behind it.
impl<S: RevocationSink> RevocationSink for FilteredStore<S> {
    fn revoke(&self, revocation: Revocation) -> Lookup<'_, ()> {
        match &revocation {
            Revocation::Issued(hash) => self.learn(hash),
            Revocation::All => self.forget_all(),
            Revocation::Key(_) | Revocation::Agent(_) | Revocation::Team(_) => {}
        }
        self.inner.revoke(revocation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` hashes from one seeded generator (splitmix64): uniform, as key
    /// hashes are, and the same every run.
    fn hashes(n: usize, mut seed: u64) -> Vec<KeyHash> {
        let mut next = || {
            seed = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = seed;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        (0..n)
            .map(|_| {
                let mut h = [0u8; 32];
                for chunk in h.chunks_mut(8) {
                    chunk.copy_from_slice(&next().to_le_bytes());
                }
                KeyHash(h)
            })
            .collect()
    }

    #[test]
    fn a_million_keys_take_under_five_bytes_each_and_no_false_positive_in_a_million_probes() {
        let known = hashes(1_000_000, 1);
        let built = build(&known).unwrap();
        assert_eq!(built.keys, 1_000_000);
        assert!(known.iter().all(|h| built.holds(fingerprint(h))), "a filter never forgets a member");
        let bytes = built.filter.as_ref().map_or(0, |f| f.fingerprints.len() * 4);
        let false_positives = hashes(1_000_000, 2).iter().filter(|h| built.holds(fingerprint(h))).count();
        println!(
            "1,000,000 keys: {bytes} bytes ({:.2} bytes a key); {false_positives} false positives in 1,000,000 unknown",
            bytes as f64 / 1e6
        );
        assert!(bytes < 5_000_000);
        // 2⁻³² a probe: 0.0002 expected in a million.
        assert!(false_positives <= 1);
    }

    #[test]
    fn an_empty_key_set_holds_nothing() {
        let built = build(&[]).unwrap();
        assert!(!built.holds(fingerprint(&hashes(1, 3)[0])));
    }
}
