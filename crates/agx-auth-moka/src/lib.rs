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
//! - A revocation also beats a load that is in flight when it arrives: the
//!   row that load read may predate the delete, so its entry is refused
//!   (see `fenced.rs`). Without that, a key deleted on another instance
//!   could verify here for a whole TTL.
//!
//! Agents and teams are cached the same way (positive TTL only). Writes
//! through this store's [`DirectoryAdmin`] forget the entry they change, so
//! the instance that wrote sees its write at once; other instances learn of
//! it from the revocation channel ([`Revocation::Agent`], [`Revocation::Team`]),
//! and the TTL bounds what a lost notification could cost.

mod fenced;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use agx_auth::{
    AgentRecord, Directory, DirectoryAdmin, KeyChange, KeyHash, KeyHashes, KeyId, KeyRecord, KeyStore, KeyUpdate,
    Lookup, Revocation, RevocationSink, StoreError, TeamRecord, Written,
};
use async_trait::async_trait;
use moka::Expiry;
use moka::future::Cache;

use crate::fenced::{Entry, FencedCache};

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

impl Expiry<KeyHash, Entry<Found>> for ByOutcome {
    fn expire_after_create(&self, _: &KeyHash, entry: &Entry<Found>, _: Instant) -> Option<Duration> {
        Some(if entry.value.is_some() { self.positive } else { self.negative })
    }
}

/// Hit and miss counts, for metrics.
#[derive(Debug, Default)]
pub struct CacheStats {
    hits: AtomicU64,
    misses: AtomicU64,
}

impl CacheStats {
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }

    fn hit(&self) {
        self.hits.fetch_add(1, Ordering::Relaxed);
    }

    fn miss(&self) {
        self.misses.fetch_add(1, Ordering::Relaxed);
    }
}

/// A store with a cache in front.
pub struct CachedStore<S> {
    inner: Arc<S>,
    keys: FencedCache<KeyHash, Found>,
    agents: FencedCache<String, Option<Arc<AgentRecord>>>,
    teams: FencedCache<String, Option<Arc<TeamRecord>>>,
}

impl<S> CachedStore<S> {
    pub fn new(inner: Arc<S>, settings: CacheSettings) -> Self {
        let keys = Cache::builder()
            .max_capacity(settings.max_keys)
            .expire_after(ByOutcome { positive: settings.positive_ttl, negative: settings.negative_ttl })
            .build();
        CachedStore {
            inner,
            keys: FencedCache::new(keys),
            agents: directory_cache(&settings),
            teams: directory_cache(&settings),
        }
    }

    pub fn inner(&self) -> &Arc<S> {
        &self.inner
    }

    /// The key cache's hits and misses.
    pub fn stats(&self) -> &CacheStats {
        &self.keys.stats
    }

    /// Forgets one key: its next request asks the store, even if a load of
    /// it is in flight now.
    pub async fn invalidate(&self, hash: &KeyHash) {
        self.keys.revoke(hash).await;
    }

    /// Forgets every key, agent and team: after a revocation channel was
    /// down, any entry may be stale.
    pub fn invalidate_all(&self) {
        self.keys.revoke_all();
        self.agents.revoke_all();
        self.teams.revoke_all();
    }
}

fn directory_cache<V: Clone + Send + Sync + 'static>(settings: &CacheSettings) -> FencedCache<String, V> {
    FencedCache::new(
        Cache::builder().max_capacity(settings.max_directory_entries).time_to_live(settings.directory_ttl).build(),
    )
}

/// Hashes come from the store itself: a cache holds only some keys.
#[async_trait]
impl<S: KeyHashes> KeyHashes for CachedStore<S> {
    async fn live_hashes(&self) -> Result<Vec<KeyHash>, StoreError> {
        self.inner.live_hashes().await
    }
}

impl<S: KeyStore> CachedStore<S> {
    /// The key's hash, so that a local write can drop its cache entry.
    async fn hash_of(&self, org: &str, id: KeyId) -> Result<Option<KeyHash>, StoreError> {
        Ok(self.inner.get(org, id).await?.map(|r| r.hash))
    }
}

#[async_trait]
impl<S: KeyStore> KeyStore for CachedStore<S> {
    fn find<'a>(&'a self, hash: &'a KeyHash) -> Lookup<'a, Result<Option<Arc<KeyRecord>>, StoreError>> {
        Lookup::pending(self.keys.get_or_load(hash, || self.inner.find(hash)))
    }

    async fn get(&self, org: &str, id: KeyId) -> Result<Option<Arc<KeyRecord>>, StoreError> {
        self.inner.get(org, id).await
    }

    async fn create(&self, record: KeyRecord) -> Result<Arc<KeyRecord>, StoreError> {
        let hash = record.hash;
        let created = self.inner.create(record).await?;
        // A negative entry for this hash (someone tried it before it existed) must go.
        self.keys.revoke(&hash).await;
        Ok(created)
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
        let updated = self.inner.update(org, id, change, at).await?;
        if let Some(u) = &updated {
            for record in [&u.after].into_iter().chain(u.lineage.iter().map(|(_, after)| after)) {
                self.keys.revoke(&record.hash).await;
            }
        }
        Ok(updated)
    }

    async fn delete(&self, org: &str, id: KeyId, at: SystemTime) -> Result<bool, StoreError> {
        let hash = self.hash_of(org, id).await?;
        let deleted = self.inner.delete(org, id, at).await?;
        if let Some(hash) = hash {
            self.keys.revoke(&hash).await;
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
            self.keys.revoke(h).await;
        }
        Ok(rolled)
    }
}

/// Writes go to the store, then forget what they changed, so this instance
/// sees its own writes at once, before the revocation channel reports them.
#[async_trait]
impl<S: DirectoryAdmin> DirectoryAdmin for CachedStore<S> {
    async fn put_org(&self, id: &str, name: &str) -> Result<Written, StoreError> {
        // Orgs are not cached: the policy reads an agent's or team's owner.
        self.inner.put_org(id, name).await
    }

    async fn org(&self, id: &str) -> Result<Option<String>, StoreError> {
        self.inner.org(id).await
    }

    // Listings are for admin tools: always the store's, never the cache's.
    async fn orgs(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.inner.orgs().await
    }

    async fn agents_of(&self, org: &str) -> Result<Vec<AgentRecord>, StoreError> {
        self.inner.agents_of(org).await
    }

    async fn teams_of(&self, org: &str) -> Result<Vec<TeamRecord>, StoreError> {
        self.inner.teams_of(org).await
    }

    async fn put_agent(&self, agent: AgentRecord) -> Result<Written, StoreError> {
        let id = agent.id.clone();
        let written = self.inner.put_agent(agent).await?;
        self.agents.revoke(id.as_str()).await;
        Ok(written)
    }

    async fn put_team(&self, team: TeamRecord) -> Result<Written, StoreError> {
        let id = team.id.clone();
        let written = self.inner.put_team(team).await?;
        self.teams.revoke(id.as_str()).await;
        Ok(written)
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
            // An issued key may have been asked for (and found missing) before
            // it existed: its hash must not stay cached as unknown.
            Revocation::Key(hash) | Revocation::Issued(hash) => {
                Lookup::pending(async move { self.invalidate(&hash).await })
            }
            Revocation::Agent(id) => Lookup::pending(async move { self.agents.revoke(&*id).await }),
            Revocation::Team(id) => Lookup::pending(async move { self.teams.revoke(&*id).await }),
        }
    }
}

impl<S: Directory> Directory for CachedStore<S> {
    fn agent<'a>(&'a self, id: &'a str) -> Lookup<'a, Result<Option<Arc<AgentRecord>>, StoreError>> {
        Lookup::pending(self.agents.get_or_load(id, || self.inner.agent(id)))
    }

    fn team<'a>(&'a self, id: &'a str) -> Lookup<'a, Result<Option<Arc<TeamRecord>>, StoreError>> {
        Lookup::pending(self.teams.get_or_load(id, || self.inner.team(id)))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use agx_auth::{Authenticator, KeySpec, MemoryStore};
    use agx_testkit::AfterFind;
    use tokio::sync::Semaphore;
    use tokio::task::JoinHandle;

    use super::*;

    /// A cache over a store whose `find` reads the row at once and answers
    /// only when the test opens the gate: a query whose snapshot predates a
    /// concurrent delete.
    struct Race {
        memory: Arc<MemoryStore>,
        record: KeyRecord,
        gate: Arc<Semaphore>,
        reads: Arc<AtomicUsize>,
        cache: Arc<CachedStore<AfterFind<MemoryStore>>>,
    }

    impl Race {
        async fn new() -> Self {
            let memory = Arc::new(MemoryStore::new());
            memory.insert_org("org_1", "Acme");
            let auth = Authenticator::builder(memory.clone(), memory.clone()).build();
            let (_, record) = auth.issue_key(KeySpec::new("org_1", "raced")).await.unwrap();
            let (gate, reads) = (Arc::new(Semaphore::new(0)), Arc::new(AtomicUsize::new(0)));
            let (g, r) = (gate.clone(), reads.clone());
            let slow = AfterFind::new(memory.clone(), move || {
                r.fetch_add(1, Ordering::SeqCst);
                let g = g.clone();
                async move { g.acquire().await.expect("the gate stays open").forget() }
            });
            let cache = Arc::new(CachedStore::new(Arc::new(slow), CacheSettings::default()));
            Race { memory, record: KeyRecord::clone(&record), gate, reads, cache }
        }

        fn find(&self) -> JoinHandle<Result<Found, StoreError>> {
            let (cache, hash) = (self.cache.clone(), self.record.hash);
            tokio::spawn(async move { cache.find(&hash).await })
        }

        async fn until_reads(&self, n: usize) {
            while self.reads.load(Ordering::SeqCst) < n {
                tokio::task::yield_now().await;
            }
        }

        /// Another instance deletes the key, and its NOTIFY arrives.
        async fn delete_elsewhere(&self, revocation: Revocation) {
            self.memory.delete("org_1", self.record.id, SystemTime::now()).await.unwrap();
            self.cache.revoke(revocation).await;
        }
    }

    fn is_live(found: &Found) -> bool {
        found.as_ref().is_some_and(|r| r.deleted_at.is_none())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_revocation_during_a_load_is_not_undone_by_the_load() {
        let race = Race::new().await;
        // A first request misses and reads the live row...
        let first = race.find();
        race.until_reads(1).await;
        // ...and a second joins that load.
        let joined = race.find();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(race.reads.load(Ordering::SeqCst), 1, "the second request waits on the first one's load");
        race.delete_elsewhere(Revocation::Key(race.record.hash)).await;
        race.gate.add_permits(100);

        // Both requests were still waiting when the revocation arrived: the
        // row their load read is refused, and the store, asked again, has
        // the delete.
        assert!(!is_live(&first.await.unwrap().unwrap()), "the load returned the row from before the delete");
        assert!(!is_live(&joined.await.unwrap().unwrap()), "a joined load returned the row from before the delete");
        assert_eq!(race.reads.load(Ordering::SeqCst), 2, "one load before the delete, one shared reload after it");
        // The cache does not keep the row from before the delete.
        let hash = race.record.hash;
        assert!(!is_live(&race.cache.find(&hash).await.unwrap()), "the deleted key verifies from the cache");
        assert!(!is_live(&race.cache.find(&hash).await.unwrap()));
        let reads = race.reads.load(Ordering::SeqCst);
        assert!(!is_live(&race.cache.find(&hash).await.unwrap()));
        assert_eq!(race.reads.load(Ordering::SeqCst), reads, "the fresh entry is served from the cache");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn revoking_everything_also_beats_a_load_in_flight() {
        let race = Race::new().await;
        let first = race.find();
        race.until_reads(1).await;
        race.delete_elsewhere(Revocation::All).await;
        race.gate.add_permits(100);
        assert!(!is_live(&first.await.unwrap().unwrap()));
        assert!(!is_live(&race.cache.find(&race.record.hash).await.unwrap()));
    }

    #[tokio::test]
    async fn hits_of_other_keys_survive_a_revocation() {
        let memory = Arc::new(MemoryStore::new());
        memory.insert_org("org_1", "Acme");
        let auth = Authenticator::builder(memory.clone(), memory.clone()).build();
        let mut hashes = Vec::new();
        for i in 0..64 {
            hashes.push(auth.issue_key(KeySpec::new("org_1", format!("k{i}"))).await.unwrap().1.hash);
        }
        let cache = CachedStore::new(memory, CacheSettings::default());
        for h in &hashes {
            assert!(cache.find(h).await.unwrap().is_some());
        }
        let revoked = hashes[0];
        cache.revoke(Revocation::Key(revoked)).await;
        let before = cache.stats().misses();
        for h in &hashes {
            assert!(cache.find(h).await.unwrap().is_some());
        }
        let reloaded = cache.stats().misses() - before;
        let same_stripe = hashes.iter().filter(|h| h.0[0] == revoked.0[0]).count() as u64;
        assert_eq!(reloaded, same_stripe, "only the revoked key's stripe reloads");
    }

    #[tokio::test]
    async fn directory_writes_through_the_cache_are_seen_at_once() {
        let memory = Arc::new(MemoryStore::new());
        memory.insert_org("org_1", "Acme");
        memory.insert_org("org_2", "Other");
        memory.insert_agent(AgentRecord::new("agent_1", "org_1", "Support"));
        memory.insert_team(TeamRecord {
            id: "team_1".into(),
            org: "org_1".into(),
            name: "Team".into(),
            agent_ids: vec!["agent_1".into()],
        });
        let cache = CachedStore::new(memory, CacheSettings::default());
        assert!(cache.agent("agent_1").await.unwrap().unwrap().active);
        assert_eq!(cache.team("team_1").await.unwrap().unwrap().name, "Team");

        let mut inactive = AgentRecord::new("agent_1", "org_1", "Support");
        inactive.active = false;
        cache.put_agent(inactive).await.unwrap();
        assert!(!cache.agent("agent_1").await.unwrap().unwrap().active);
        let renamed = TeamRecord {
            id: "team_1".into(),
            org: "org_1".into(),
            name: "Renamed".into(),
            agent_ids: vec!["agent_1".into()],
        };
        cache.put_team(renamed).await.unwrap();
        assert_eq!(cache.team("team_1").await.unwrap().unwrap().name, "Renamed");
    }
}
