//! The in-process targets: each adapter's app around a fresh store and clock.

use std::sync::Arc;

use crate::app::{axum_app, serve_axum};
use crate::fixtures::InProcess;
use crate::runner::Target;

pub async fn axum_memory() -> Result<Target, String> {
    let world = InProcess::memory();
    let base_url = serve_axum(axum_app(world.auth.clone())).await?;
    Ok(Target { name: "axum/memory".into(), base_url, fixtures: Arc::new(world) })
}

/// Every in-process target this build knows.
pub async fn all() -> Result<Vec<Target>, String> {
    Ok(vec![axum_memory().await?])
}
