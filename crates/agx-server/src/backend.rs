//! Where keys and the directory live: the embedded memory store by default,
//! or PostgreSQL with a moka cache, its revocation listener and its usage
//! flusher.

use std::sync::Arc;
use std::time::Duration;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::SystemTime;

use agx_auth::{Directory, DirectoryAdmin, KeyId, KeyStore, MemoryStore, StoreError, UsageBatch, UsageCounter};
use agx_auth_moka::{CacheSettings, CachedStore};
use agx_auth_postgres::listener::{self, ListenerHandle};
use agx_auth_postgres::{PgError, PgSettings, PgStore, UsageFlusher, UsageWriter};

pub struct Backend {
    /// What the authenticator and the admin API read keys through.
    pub keys: Arc<dyn KeyStore>,
    pub directory: Arc<dyn Directory>,
    pub admin: Arc<dyn DirectoryAdmin>,
    pub usage: Arc<UsageCounter>,
    pub kind: &'static str,
    pub pg: Option<Arc<PgStore>>,
    /// The memory store's usage: what the counter drained, kept for reports.
    ledger: Mutex<Ledger>,
    cache: Option<Arc<CachedStore<PgStore>>>,
    /// PostgreSQL's usage writer, shared by the flusher and usage reports.
    writer: Option<Arc<UsageWriter>>,
    /// Taken at shutdown, by whoever holds the backend then.
    flusher: Mutex<Option<UsageFlusher>>,
    _listener: Option<ListenerHandle>,
}

impl Backend {
    pub fn memory() -> Self {
        let store = Arc::new(MemoryStore::new());
        Backend {
            keys: store.clone(),
            directory: store.clone(),
            admin: store,
            usage: Arc::new(UsageCounter::new()),
            kind: "memory",
            ledger: Mutex::default(),
            pg: None,
            cache: None,
            flusher: Mutex::default(),
            writer: None,
            _listener: None,
        }
    }

    pub async fn postgres(url: &str) -> Result<Self, PgError> {
        let pg = Arc::new(PgStore::connect(url, PgSettings::default()).await?);
        let cached = Arc::new(CachedStore::new(pg.clone(), CacheSettings::default()));
        let usage = Arc::new(UsageCounter::new());
        let writer = Arc::new(UsageWriter::new(PgStore::clone(&pg), usage.clone()));
        Ok(Backend {
            keys: cached.clone(),
            directory: cached.clone(),
            // Through the cache, so that this instance sees its own writes at once.
            admin: cached.clone(),
            flusher: Mutex::new(Some(UsageFlusher::spawn(writer.clone(), Duration::from_secs(5)))),
            writer: Some(writer),
            _listener: Some(listener::spawn(url.to_owned(), cached.clone())),
            usage,
            kind: "postgres",
            ledger: Mutex::default(),
            pg: Some(pg),
            cache: Some(cached),
        })
    }

    /// Whether the store answers.
    pub async fn ready(&self) -> Result<(), String> {
        match &self.pg {
            Some(pg) => pg.ping().await.map_err(|e| e.to_string()),
            None => Ok(()),
        }
    }

    /// Key cache (hits, misses), when there is a cache.
    pub fn cache_stats(&self) -> Option<(u64, u64)> {
        self.cache.as_ref().map(|c| (c.stats().hits(), c.stats().misses()))
    }

    /// One key's usage: per day and class, and its last use. Counts still in
    /// memory are flushed first, so the report is exact.
    pub async fn usage_of(&self, key: KeyId) -> Result<agx_auth_postgres::UsageReport, StoreError> {
        match (&self.pg, &self.writer) {
            (Some(pg), Some(writer)) => {
                writer.flush().await?;
                pg.usage_of(key).await
            }
            _ => {
                let mut ledger = self.ledger.lock().unwrap_or_else(|e| e.into_inner());
                ledger.absorb(self.usage.drain());
                Ok(ledger.report(key))
            }
        }
    }

    /// When each used key of `org` was last used.
    pub async fn last_used(&self, org: &str, keys: &[KeyId]) -> Result<HashMap<KeyId, SystemTime>, StoreError> {
        match &self.pg {
            Some(pg) => {
                Ok(pg.last_used(org).await?.into_iter().filter_map(|(id, at)| Some((id.parse().ok()?, at))).collect())
            }
            None => {
                let mut ledger = self.ledger.lock().unwrap_or_else(|e| e.into_inner());
                ledger.absorb(self.usage.drain());
                Ok(keys.iter().filter_map(|k| Some((*k, *ledger.last_used.get(k)?))).collect())
            }
        }
    }

    /// Flushes the usage counts that are still in memory, waiting at most
    /// `limit` for the database: a shutdown must end even when PostgreSQL
    /// does not answer. `&self`, so that no other holder of the state (a
    /// connection that outlived the graceful shutdown) can prevent it.
    pub async fn shutdown(&self, limit: Duration) {
        let flusher = self.flusher.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(flusher) = flusher
            && tokio::time::timeout(limit, flusher.shutdown()).await.is_err()
        {
            tracing::warn!(?limit, "usage not flushed: the database did not answer in time");
        }
    }
}

#[derive(Default)]
struct Ledger {
    counts: HashMap<(KeyId, u32, String), u64>,
    last_used: HashMap<KeyId, SystemTime>,
}

impl Ledger {
    fn absorb(&mut self, batch: UsageBatch) {
        for row in batch.rows {
            *self.counts.entry((row.key, row.day, row.class.to_owned())).or_default() += row.requests;
        }
        for (key, at) in batch.last_used {
            let slot = self.last_used.entry(key).or_insert(at);
            *slot = (*slot).max(at);
        }
    }

    fn report(&self, key: KeyId) -> agx_auth_postgres::UsageReport {
        let mut days: Vec<(u32, String, u64)> =
            self.counts.iter().filter(|((k, _, _), _)| *k == key).map(|((_, d, c), n)| (*d, c.clone(), *n)).collect();
        days.sort();
        (days, self.last_used.get(&key).copied())
    }
}
