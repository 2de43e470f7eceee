//! The in-process targets: each adapter's app around a fresh memory store and
//! manual clock.

use std::sync::Arc;

use crate::app;
use crate::fixtures::InProcess;
use crate::runner::Target;

/// Every adapter this build knows.
pub const ADAPTERS: [&str; 3] = ["axum", "actix-web", "poem"];

/// The stub app of `adapter` around a fresh world.
pub async fn memory(adapter: &str) -> Result<Target, String> {
    let world = InProcess::memory();
    let auth = world.auth.clone();
    let base_url = match adapter {
        "axum" => app::axum::serve(app::axum::app(auth)).await?,
        "actix-web" => app::actix::serve(auth)?,
        "poem" => app::poem::serve(auth).await?,
        other => return Err(format!("unknown adapter {other}")),
    };
    Ok(Target {
        name: format!("{adapter}/memory"),
        base_url,
        // Each in-process target has a store of its own, so a fixed namespace
        // is safe, and it makes transcripts comparable across adapters.
        namespace: "t".into(),
        fixtures: Arc::new(world),
    })
}

/// Every in-process target this build knows.
pub async fn all() -> Result<Vec<Target>, String> {
    let mut targets = Vec::new();
    for adapter in ADAPTERS {
        targets.push(memory(adapter).await?);
    }
    Ok(targets)
}
