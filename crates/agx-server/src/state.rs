//! What every handler shares.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use agx_auth::{Authenticator, ClientAddresses, KeyHasher, RateLimits, Routes};
use agx_auth_redis::RedisLimiter;
use bytes::Bytes;
use ring::rand::SystemRandom;

use crate::backend::Backend;
use crate::dashboard::DashboardStore;
use crate::metrics::{Gauges, Metrics};

/// Which routes the server judges.
pub enum RouteTable {
    /// The Agentix public API's, served by this server's own handlers.
    Agentix,
    /// A host's own (`--routes`), for forward auth only: this server has no
    /// handlers for them, so the public API is not served.
    Host((Routes, RateLimits)),
}

pub struct AppState {
    pub auth: Arc<Authenticator>,
    /// Whether the Agentix public API is served (not with a host's table).
    pub public_api: bool,
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
    /// Wrong tokens per client address, for the sign-in form and the admin API.
    pub sign_ins: crate::dashboard::SignInThrottle,
    /// GitHub's secret scanning keys, when configured (set once at start):
    /// without them the partner endpoint is answered as no route.
    pub github_keys: std::sync::OnceLock<crate::secret_scanning::GithubKeys>,
}

impl AppState {
    /// The authenticator over the backend's stores and usage, with the
    /// Redis limiter when there is one, and the metrics it reports to.
    pub fn authenticator(
        backend: &Arc<Backend>,
        limiter: Option<&Arc<RedisLimiter>>,
        hasher: KeyHasher,
        table: RouteTable,
        clients: ClientAddresses,
    ) -> (Arc<Authenticator>, Arc<Metrics>) {
        let sources = Arc::new(ScrapeSources { backend: backend.clone(), limiter: limiter.cloned() });
        let (routes, limits) = match table {
            RouteTable::Agentix => (Routes::agentix(), RateLimits::default()),
            RouteTable::Host(table) => table,
        };
        // The metrics' route labels are the routers' patterns, all known now.
        let patterns: Vec<&str> = routes
            .iter()
            .map(|r| r.pattern())
            .chain(crate::admin::ROUTES.iter().map(|r| r.path))
            .chain(crate::ops::ROUTES)
            .chain(crate::forward::ROUTES)
            .chain([crate::verify::ROUTE, crate::secret_scanning::ROUTE])
            .collect();
        let metrics = Arc::new(Metrics::new(patterns, sources));
        let mut builder = Authenticator::builder(backend.keys.clone(), backend.directory.clone())
            .hasher(hasher)
            .client_addresses(clients)
            .usage(backend.usage.clone())
            .routes(routes)
            .rate_limits(limits)
            .observer(metrics.clone());
        if let Some(limiter) = limiter {
            // One Redis for both: the rate limit and the credits hold across instances.
            builder = builder.limiter(limiter.clone()).ledger(limiter.clone());
        }
        (Arc::new(builder.build()), metrics)
    }

    /// Everything the handlers share, around an authenticator from
    /// [`AppState::authenticator`].
    pub fn new(
        backend: Arc<Backend>,
        limiter: Option<Arc<RedisLimiter>>,
        (auth, metrics): (Arc<Authenticator>, Arc<Metrics>),
        admin_token: String,
        dashboard: DashboardStore,
        dashboard_settings: crate::dashboard::Settings,
    ) -> Result<Arc<AppState>, serde_json::Error> {
        // A host's table has no handlers here: only the Agentix one is documented.
        let public_api = auth.routes().iter().all(|r| r.operation().is_some());
        let openapi = serde_json::to_vec(&crate::openapi::document(auth.routes(), public_api))?.into();
        Ok(Arc::new(AppState {
            auth,
            public_api,
            backend,
            limiter,
            admin_token,
            rng: SystemRandom::new(),
            metrics,
            openapi,
            store_down: AtomicBool::new(false),
            redis_down: AtomicBool::new(false),
            dashboard,
            dashboard_settings,
            sign_ins: crate::dashboard::SignInThrottle::default(),
            github_keys: std::sync::OnceLock::new(),
        }))
    }

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

    fn filter(&self) -> Option<(Option<u64>, u64, u64)> {
        let (status, refused, passed) = self.backend.filter()?;
        let keys = match status {
            agx_auth_filter::FilterStatus::Loading => None,
            agx_auth_filter::FilterStatus::Ready { keys, learnt, .. } => u64::try_from(keys + learnt).ok(),
        };
        Some((keys, refused, passed))
    }
}
