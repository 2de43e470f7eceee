//! What every handler shares.

use std::sync::Arc;

use agx_auth::Authenticator;
use agx_auth_redis::RedisLimiter;
use ring::rand::SystemRandom;

use crate::backend::Backend;
use crate::ops::Metrics;

pub struct AppState {
    pub auth: Arc<Authenticator>,
    pub backend: Backend,
    /// The Redis limiter, when rate limits are shared across instances.
    pub limiter: Option<Arc<RedisLimiter>>,
    pub admin_token: String,
    pub rng: SystemRandom,
    pub metrics: Arc<Metrics>,
}
