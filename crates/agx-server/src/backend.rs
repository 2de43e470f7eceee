//! Where keys and the directory live: the embedded memory store by default,
//! or PostgreSQL with a moka cache, its revocation listener and its usage
//! flusher.

use std::sync::Arc;
use std::time::Duration;

use agx_auth::{Directory, DirectoryAdmin, KeyStore, MemoryStore, UsageCounter};
use agx_auth_moka::{CacheSettings, CachedStore};
use agx_auth_postgres::listener::{self, ListenerHandle};
use agx_auth_postgres::{PgError, PgSettings, PgStore, UsageFlusher};

pub struct Backend {
    /// What the authenticator and the admin API read keys through.
    pub keys: Arc<dyn KeyStore>,
    pub directory: Arc<dyn Directory>,
    pub admin: Arc<dyn DirectoryAdmin>,
    pub usage: Arc<UsageCounter>,
    pub kind: &'static str,
    pg: Option<Arc<PgStore>>,
    cache: Option<Arc<CachedStore<PgStore>>>,
    flusher: Option<UsageFlusher>,
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
            pg: None,
            cache: None,
            flusher: None,
            _listener: None,
        }
    }

    pub async fn postgres(url: &str) -> Result<Self, PgError> {
        let pg = Arc::new(PgStore::connect(url, PgSettings::default()).await?);
        let cached = Arc::new(CachedStore::new(pg.clone(), CacheSettings::default()));
        let usage = Arc::new(UsageCounter::new());
        Ok(Backend {
            keys: cached.clone(),
            directory: cached.clone(),
            admin: pg.clone(),
            flusher: Some(UsageFlusher::spawn(PgStore::clone(&pg), usage.clone(), Duration::from_secs(5))),
            _listener: Some(listener::spawn(url.to_owned(), cached.clone())),
            usage,
            kind: "postgres",
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

    /// Flushes the usage counts that are still in memory.
    pub async fn shutdown(mut self) {
        if let Some(flusher) = self.flusher.take() {
            flusher.shutdown().await;
        }
    }
}
