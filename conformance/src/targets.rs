//! The in-process targets: each adapter's app around a fresh store (memory,
//! or a cache over a fresh PostgreSQL database) and a manual clock.

use std::sync::Arc;

use agx_auth::MemoryStore;
use agx_auth_moka::{CacheSettings, CachedStore};
use agx_auth_postgres::testing::fresh_database;
use agx_auth_postgres::{PgSettings, PgStore};

use crate::app;
use crate::fixtures::InProcess;
use crate::runner::Target;

/// Every adapter this build knows.
pub const ADAPTERS: [&str; 3] = ["axum", "actix-web", "poem"];

/// The stub app of `adapter` around `world`.
pub async fn serve(adapter: &str, store: &str, world: InProcess) -> Result<Target, String> {
    let auth = world.auth.clone();
    let base_url = match adapter {
        "axum" => app::axum::serve(app::axum::app(auth)).await?,
        "actix-web" => app::actix::serve(auth)?,
        "poem" => app::poem::serve(auth).await?,
        other => return Err(format!("unknown adapter {other}")),
    };
    Ok(Target {
        name: format!("{adapter}/{store}"),
        base_url,
        // Each in-process target has a store of its own, so a fixed namespace
        // is safe, and it makes transcripts comparable across targets.
        namespace: "t".into(),
        fixtures: Arc::new(world),
    })
}

/// A cache over a fresh PostgreSQL database; `None` when PostgreSQL is absent
/// and not required (the notice is printed).
pub async fn postgres_world(label: &str) -> Result<Option<InProcess>, String> {
    let Some(url) = fresh_database(label).await else { return Ok(None) };
    let pg = Arc::new(PgStore::connect(&url, PgSettings::default()).await.map_err(|e| e.to_string())?);
    let cached = Arc::new(CachedStore::new(pg.clone(), CacheSettings::default()));
    Ok(Some(InProcess::over(cached, pg)))
}

/// The memory store with the Redis limiter (on the caller's clock, which the
/// cases move); `None` when Redis is absent and not required.
pub async fn redis_world(label: &str) -> Result<Option<InProcess>, String> {
    let Some(limiter) = agx_auth_redis::testing::limiter(label, agx_auth_redis::testing::settings("conformance")).await
    else {
        return Ok(None);
    };
    let store = Arc::new(MemoryStore::new());
    let limiter = Arc::new(limiter);
    Ok(Some(InProcess::limited_by(store.clone(), store, limiter.clone(), limiter)))
}

/// Every in-process target this build can run: each adapter × {memory,
/// postgres}, and the axum app with the Redis limiter.
pub async fn all() -> Result<Vec<Target>, String> {
    let mut targets = Vec::new();
    for adapter in ADAPTERS {
        targets.push(serve(adapter, "memory", InProcess::memory()).await?);
    }
    for adapter in ADAPTERS {
        if let Some(world) = postgres_world(&format!("conformance {adapter}/postgres")).await? {
            targets.push(serve(adapter, "postgres", world).await?);
        }
    }
    if let Some(world) = redis_world("conformance axum/memory+redis").await? {
        targets.push(serve("axum", "memory+redis", world).await?);
    }
    Ok(targets)
}
