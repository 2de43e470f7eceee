//! What every handler shares.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use agx_auth::Authenticator;
use agx_auth_redis::RedisLimiter;
use bytes::Bytes;
use ring::rand::SystemRandom;

use crate::backend::Backend;
use crate::dashboard::DashboardStore;
use crate::metrics::{Gauges, Metrics};

pub struct AppState {
    pub auth: Arc<Authenticator>,
    pub backend: Arc<Backend>,
    /// The Redis limiter, when rate limits are shared across instances.
    pub limiter: Option<Arc<RedisLimiter>>,
    pub admin_token: String,
    pub rng: SystemRandom,
    pub metrics: Arc<Metrics>,
    /// `/openapi.json`, generated once at start.
    pub openapi: Bytes,
    /// Whether the last readiness probe found the store (or Redis) down, so
    /// that a probe every few seconds logs an outage once, not once per probe.
    pub store_down: AtomicBool,
    pub redis_down: AtomicBool,
    /// The dashboard's tokens and sessions.
    pub dashboard: DashboardStore,
    pub dashboard_settings: crate::dashboard::Settings,
}

impl AppState {
    /// A readable id for things created without one: `prefix`, `_` and 16
    /// hex digits.
    pub fn new_id(&self, prefix: &str) -> Result<String, ring::error::Unspecified> {
        let id = agx_auth::KeyId::generate(&self.rng)?;
        Ok(format!("{prefix}_{:016x}", id.0 as u64))
    }
}

/// What `/metrics` reads at scrape time.
pub struct ScrapeSources {
    pub backend: Arc<Backend>,
    pub limiter: Option<Arc<RedisLimiter>>,
}

impl Gauges for ScrapeSources {
    fn cache(&self) -> Option<(u64, u64)> {
        self.backend.cache_stats()
    }

    fn limiter(&self) -> Option<(bool, u64)> {
        self.limiter.as_ref().map(|l| (l.in_outage(), l.outages()))
    }
}
