//! Where keys and the directory live: the embedded memory store by default,
//! or PostgreSQL with a moka cache, a filter of known keys in front of it
//! (so that a key no one issued costs no query), its revocation listener and
//! its usage flusher.

use std::sync::Arc;
use std::time::Duration;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::SystemTime;

use agx_auth::{
    AuditLog, Directory, DirectoryAdmin, KeyId, KeyRecord, KeyStore, MemoryAuditLog, MemoryStore, StoreError, Tally,
    UsageBatch, UsageCounter, UsageDay, UsageReport,
};
use agx_auth_filter::{FilterSettings, FilterStatus, FilteredStore, MaintainerHandle};
use agx_auth_moka::{CacheSettings, CachedStore};
use agx_auth_postgres::listener::{self, ListenerHandle};
use agx_auth_postgres::{PgError, PgSettings, PgStore, UsageFlusher, UsageWriter};

/// The stores every request reads through, whichever backend it is, and
/// what only that backend has.
pub struct Backend {
    /// What the authenticator and the admin API read keys through.
    pub keys: Arc<dyn KeyStore>,
    pub directory: Arc<dyn Directory>,
    pub admin: Arc<dyn DirectoryAdmin>,
    pub usage: Arc<UsageCounter>,
    /// Who changed what, per org.
    pub audit: Arc<dyn AuditLog>,
    store: Store,
}

enum Store {
    /// The embedded store; usage drained from the counter is kept here for reports.
    Memory { ledger: Mutex<Ledger> },
    /// PostgreSQL behind the moka cache and the filter of known keys, with
    /// the revocation listener (which feeds both) and the usage writer and
    /// flusher.
    Postgres {
        pg: Arc<PgStore>,
        cache: Arc<CachedStore<PgStore>>,
        filter: Arc<FilteredStore<CachedStore<PgStore>>>,
        _maintainer: MaintainerHandle,
        /// Shared by the flusher and usage reports.
        writer: Arc<UsageWriter>,
        /// Taken at shutdown, by whoever holds the backend then.
        flusher: Mutex<Option<UsageFlusher>>,
        _listener: ListenerHandle,
    },
}

impl Backend {
    pub fn memory() -> Self {
        let store = Arc::new(MemoryStore::new());
        Backend {
            keys: store.clone(),
            directory: store.clone(),
            admin: store,
            usage: Arc::new(UsageCounter::new()),
            audit: Arc::new(MemoryAuditLog::new()),
            store: Store::Memory { ledger: Mutex::default() },
        }
    }

    pub async fn postgres(url: &str) -> Result<Self, PgError> {
        let pg = Arc::new(PgStore::connect(url, PgSettings::default()).await?);
        let cached = Arc::new(CachedStore::new(pg.clone(), CacheSettings::default()));
        let filter = Arc::new(FilteredStore::new(cached.clone(), FilterSettings::default()));
        let usage = Arc::new(UsageCounter::new());
        let writer = Arc::new(UsageWriter::new(PgStore::clone(&pg), usage.clone()));
        Ok(Backend {
            keys: filter.clone(),
            directory: cached.clone(),
            // Through the cache, so that this instance sees its own writes at once.
            admin: cached.clone(),
            usage,
            audit: pg.clone(),
            store: Store::Postgres {
                flusher: Mutex::new(Some(UsageFlusher::spawn(writer.clone(), Duration::from_secs(5)))),
                writer,
                _listener: listener::spawn(url.to_owned(), filter.clone()),
                _maintainer: filter.spawn_maintainer(),
                filter,
                pg,
                cache: cached,
            },
        })
    }

    /// `memory` or `postgres`, for logs and readiness.
    pub fn kind(&self) -> &'static str {
        match self.store {
            Store::Memory { .. } => "memory",
            Store::Postgres { .. } => "postgres",
        }
    }

    pub fn pg(&self) -> Option<&Arc<PgStore>> {
        match &self.store {
            Store::Memory { .. } => None,
            Store::Postgres { pg, .. } => Some(pg),
        }
    }

    /// Whether the store answers.
    pub async fn ready(&self) -> Result<(), StoreError> {
        match &self.store {
            Store::Postgres { pg, .. } => pg.ping().await,
            Store::Memory { .. } => Ok(()),
        }
    }

    /// The filter of known keys and its counts (refused, passed on), when
    /// there is one.
    pub fn filter(&self) -> Option<(FilterStatus, u64, u64)> {
        match &self.store {
            Store::Postgres { filter, .. } => {
                Some((filter.status(), filter.stats().refused(), filter.stats().passed()))
            }
            Store::Memory { .. } => None,
        }
    }

    /// Key cache (hits, misses), when there is a cache.
    pub fn cache_stats(&self) -> Option<(u64, u64)> {
        match &self.store {
            Store::Postgres { cache, .. } => Some((cache.stats().hits(), cache.stats().misses())),
            Store::Memory { .. } => None,
        }
    }

    /// One key's usage: per day and class, and its last use. Counts still in
    /// memory are flushed first, so the report is exact.
    pub async fn usage_of(&self, key: KeyId) -> Result<UsageReport, StoreError> {
        match &self.store {
            Store::Postgres { pg, writer, .. } => {
                writer.flush().await?;
                pg.usage_of(key).await
            }
            Store::Memory { ledger } => {
                let mut ledger = ledger.lock().unwrap_or_else(|e| e.into_inner());
                ledger.absorb(self.usage.drain());
                Ok(ledger.report(key))
            }
        }
    }

    /// The keys of `org`, each with its last use (`None`: never used).
    pub async fn keys_of(&self, org: &str) -> Result<Vec<(Arc<KeyRecord>, Option<SystemTime>)>, StoreError> {
        let keys = self.keys.list(org).await?;
        let last_used: HashMap<KeyId, SystemTime> = match &self.store {
            Store::Postgres { pg, .. } => {
                pg.last_used(org).await?.into_iter().filter_map(|(id, at)| Some((id.parse().ok()?, at))).collect()
            }
            Store::Memory { ledger } => {
                let mut ledger = ledger.lock().unwrap_or_else(|e| e.into_inner());
                ledger.absorb(self.usage.drain());
                keys.iter().filter_map(|k| Some((k.id, *ledger.last_used.get(&k.id)?))).collect()
            }
        };
        Ok(keys
            .into_iter()
            .map(|k| {
                let at = last_used.get(&k.id).copied();
                (k, at)
            })
            .collect())
    }

    /// Flushes the usage counts that are still in memory, waiting at most
    /// `limit` for the database: a shutdown must end even when PostgreSQL
    /// does not answer. `&self`, so that no other holder of the state (a
    /// connection that outlived the graceful shutdown) can prevent it.
    pub async fn shutdown(&self, limit: Duration) {
        let Store::Postgres { flusher, .. } = &self.store else { return };
        let flusher = flusher.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(flusher) = flusher
            && tokio::time::timeout(limit, flusher.shutdown()).await.is_err()
        {
            tracing::warn!(?limit, "usage not flushed: the database did not answer in time");
        }
    }
}

#[derive(Default)]
struct Ledger {
    counts: HashMap<(KeyId, u32, &'static str), Tally>,
    last_used: HashMap<KeyId, SystemTime>,
}

impl Ledger {
    fn absorb(&mut self, batch: UsageBatch) {
        for row in batch.rows {
            self.counts.entry((row.key, row.day, row.class)).or_default().add(row.tally);
        }
        for (key, at) in batch.last_used {
            let slot = self.last_used.entry(key).or_insert(at);
            *slot = (*slot).max(at);
        }
    }

    fn report(&self, key: KeyId) -> UsageReport {
        let mut days: Vec<UsageDay> = self
            .counts
            .iter()
            .filter(|((k, _, _), _)| *k == key)
            .map(|((_, day, class), tally)| UsageDay { day: *day, class: (*class).to_owned(), tally: *tally })
            .collect();
        days.sort_by(|a, b| (a.day, &a.class).cmp(&(b.day, &b.class)));
        UsageReport { days, last_used: self.last_used.get(&key).copied() }
    }
}
