//! What every handler shares.

use std::sync::Arc;

use agx_auth::Authenticator;
use ring::rand::SystemRandom;

use crate::backend::Backend;
use crate::ops::Metrics;

pub struct AppState {
    pub auth: Arc<Authenticator>,
    pub backend: Backend,
    pub admin_token: String,
    pub rng: SystemRandom,
    pub metrics: Arc<Metrics>,
}
