//! A moka cache in front of any [`KeyStore`] and [`Directory`].
//!
//! - Known keys are kept for a positive TTL (default 30 s), unknown hashes
//!   for a negative TTL (default 5 s), so a flood of well-formed but unknown
//!   keys reaches the store once per hash per 5 s.
//! - Concurrent misses for one hash are coalesced (`try_get_with`): a
//!   thousand simultaneous first requests with one key make one store query.
//! - Errors are never cached: a store that is down is asked again next time,
//!   and the authenticator answers 503 meanwhile.
//! - Expiry is not the cache's business: the authenticator compares
//!   `expires_at` with the clock on every request, whatever the cache holds.
//! - Deletions and rolls through this store invalidate the local entry at
//!   once; other instances learn of them from the store's own revocation
//!   channel (Postgres `LISTEN/NOTIFY`) through [`CachedStore::invalidate`]
//!   and [`CachedStore::invalidate_all`]. The TTL is only the fallback bound.
//!
//! Agents and teams are cached the same way (positive TTL only): their
//! owner, flags and domains change rarely, and a change reaches every
//! instance within the TTL.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use agx_auth::{
    AgentRecord, Directory, KeyHash, KeyId, KeyRecord, KeyStore, Lookup, Revocation, RevocationSink, StoreError,
    TeamRecord,
};
use async_trait::async_trait;
use moka::Expiry;
use moka::future::Cache;

/// Cache sizes and lifetimes.
#[derive(Clone, Copy, Debug)]
pub struct CacheSettings {
    pub positive_ttl: Duration,
    pub negative_ttl: Duration,
    pub max_keys: u64,
    pub directory_ttl: Duration,
    pub max_directory_entries: u64,
}

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings {
            positive_ttl: Duration::from_secs(30),
            negative_ttl: Duration::from_secs(5),
            max_keys: 100_000,
            directory_ttl: Duration::from_secs(30),
            max_directory_entries: 100_000,
        }
    }
}

type Found = Option<Arc<KeyRecord>>;

/// Known keys live for the positive TTL, unknown hashes for the negative one.
struct ByOutcome {
    positive: Duration,
    negative: Duration,
}

impl Expiry<KeyHash, Found> for ByOutcome {
    fn expire_after_create(&self, _: &KeyHash, value: &Found, _: Instant) -> Option<Duration> {
        Some(if value.is_some() { self.positive } else { self.negative })
    }
}

/// Hit and miss counts, for metrics.
#[derive(Debug, Default)]
pub struct CacheStats {
    hits: std::sync::atomic::AtomicU64,
    misses: std::sync::atomic::AtomicU64,
}

impl CacheStats {
    pub fn hits(&self) -> u64 {
        self.hits.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn misses(&self) -> u64 {
        self.misses.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// A store with a cache in front.
pub struct CachedStore<S> {
    inner: Arc<S>,
    keys: Cache<KeyHash, Found>,
    agents: Cache<String, Option<Arc<AgentRecord>>>,
    teams: Cache<String, Option<Arc<TeamRecord>>>,
    stats: CacheStats,
}

impl<S> CachedStore<S> {
    pub fn new(inner: Arc<S>, settings: CacheSettings) -> Self {
        let keys = Cache::builder()
            .max_capacity(settings.max_keys)
            .expire_after(ByOutcome { positive: settings.positive_ttl, negative: settings.negative_ttl })
            .build();
        CachedStore {
            inner,
            keys,
            agents: directory_cache(&settings),
            teams: directory_cache(&settings),
            stats: CacheStats::default(),
        }
    }

    pub fn inner(&self) -> &Arc<S> {
        &self.inner
    }

    pub fn stats(&self) -> &CacheStats {
        &self.stats
    }

    /// Forgets one key: its next request asks the store.
    pub async fn invalidate(&self, hash: &KeyHash) {
        self.keys.invalidate(hash).await;
    }

    /// Forgets every key, agent and team: after a revocation channel was
    /// down, any entry may be stale.
    pub fn invalidate_all(&self) {
        self.keys.invalidate_all();
        self.agents.invalidate_all();
        self.teams.invalidate_all();
    }
}

fn directory_cache<V: Clone + Send + Sync + 'static>(settings: &CacheSettings) -> Cache<String, V> {
    Cache::builder().max_capacity(settings.max_directory_entries).time_to_live(settings.directory_ttl).build()
}

impl<S: KeyStore> CachedStore<S> {
    async fn find_cached(&self, hash: &KeyHash) -> Result<Found, StoreError> {
        if let Some(found) = self.keys.get(hash).await {
            self.stats.hits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Ok(found);
        }
        self.stats.misses.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // Concurrent misses wait for one query; an error is returned to all
        // of them and cached for none.
        // The init is an `async` block so that only the caller whose init
        // moka runs calls the store at all.
        self.keys
            .try_get_with(*hash, async { self.inner.find(hash).await })
            .await
            .map_err(|e: Arc<StoreError>| StoreError::clone(&e))
    }

    /// The key's hash, so that a local write can drop its cache entry.
    async fn hash_of(&self, org: &str, id: KeyId) -> Result<Option<KeyHash>, StoreError> {
        Ok(self.inner.get(org, id).await?.map(|r| r.hash))
    }
}

#[async_trait]
impl<S: KeyStore> KeyStore for CachedStore<S> {
    fn find<'a>(&'a self, hash: &'a KeyHash) -> Lookup<'a, Result<Option<Arc<KeyRecord>>, StoreError>> {
        Lookup::pending(self.find_cached(hash))
    }

    async fn get(&self, org: &str, id: KeyId) -> Result<Option<Arc<KeyRecord>>, StoreError> {
        self.inner.get(org, id).await
    }

    async fn create(&self, record: KeyRecord) -> Result<Arc<KeyRecord>, StoreError> {
        let hash = record.hash;
        let created = self.inner.create(record).await?;
        // A negative entry for this hash (someone tried it before it existed) must go.
        self.keys.invalidate(&hash).await;
        Ok(created)
    }

    async fn list(&self, org: &str) -> Result<Vec<Arc<KeyRecord>>, StoreError> {
        self.inner.list(org).await
    }

    async fn delete(&self, org: &str, id: KeyId, at: SystemTime) -> Result<bool, StoreError> {
        let hash = self.hash_of(org, id).await?;
        let deleted = self.inner.delete(org, id, at).await?;
        if let Some(hash) = hash {
            self.keys.invalidate(&hash).await;
        }
        Ok(deleted)
    }

    async fn roll(
        &self,
        org: &str,
        id: KeyId,
        replacement: KeyRecord,
        old_expires_at: SystemTime,
    ) -> Result<Option<Arc<KeyRecord>>, StoreError> {
        let hash = self.hash_of(org, id).await?;
        let new_hash = replacement.hash;
        let rolled = self.inner.roll(org, id, replacement, old_expires_at).await?;
        // The old key's expiry changed; the new hash may have a negative entry.
        for h in hash.iter().chain([&new_hash]) {
            self.keys.invalidate(h).await;
        }
        Ok(rolled)
    }
}

/// Feed it from a revocation channel (`agx_auth_postgres::listener`).
impl<S: Send + Sync + 'static> RevocationSink for CachedStore<S> {
    fn revoke(&self, revocation: Revocation) -> Lookup<'_, ()> {
        match revocation {
            Revocation::All => {
                self.invalidate_all();
                Lookup::ready(())
            }
            Revocation::Key(hash) => Lookup::pending(async move { self.invalidate(&hash).await }),
        }
    }
}

impl<S: Directory> Directory for CachedStore<S> {
    fn agent<'a>(&'a self, id: &'a str) -> Lookup<'a, Result<Option<Arc<AgentRecord>>, StoreError>> {
        Lookup::pending(async move {
            self.agents
                .try_get_with_by_ref(id, async { self.inner.agent(id).await })
                .await
                .map_err(|e: Arc<StoreError>| StoreError::clone(&e))
        })
    }

    fn team<'a>(&'a self, id: &'a str) -> Lookup<'a, Result<Option<Arc<TeamRecord>>, StoreError>> {
        Lookup::pending(async move {
            self.teams
                .try_get_with_by_ref(id, async { self.inner.team(id).await })
                .await
                .map_err(|e: Arc<StoreError>| StoreError::clone(&e))
        })
    }
}
