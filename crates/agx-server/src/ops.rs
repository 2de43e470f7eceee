//! Operations: liveness, readiness, Prometheus metrics, the OpenAPI document.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use agx_auth_redis::OnOutage;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::state::AppState;

/// The routes of this module.
pub const ROUTES: [&str; 4] = ["/healthz", "/readyz", "/metrics", "/openapi.json"];

pub fn routes(state: Arc<AppState>) -> Router {
    let [healthz, readyz_path, metrics_path, openapi_path] = ROUTES;
    Router::new()
        .route(healthz, get(|| async { "ok" }))
        .route(readyz_path, get(readyz))
        .route(metrics_path, get(metrics))
        .route(openapi_path, get(openapi))
        .with_state(state)
}

/// 200 when the store answers (within 2 s) and so does Redis, if rate limits
/// fail closed without it; 503 otherwise. Under `--redis-outage local` an
/// unreachable Redis leaves the instance ready: it still serves, with a
/// per-instance limit, and says so.
async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let started = Instant::now();
    let probe = tokio::time::timeout(Duration::from_secs(2), state.backend.ready()).await;
    let limits = match &state.limiter {
        None => "in-process rate limits",
        Some(limiter) => {
            let ping = limiter.ping().await;
            let was_down = state.redis_down.swap(ping.is_err(), Ordering::Relaxed);
            match (ping, limiter.settings().on_outage) {
                (Ok(()), _) => {
                    if was_down {
                        tracing::info!("ready: Redis answers again");
                    }
                    "redis rate limits"
                }
                (Err(why), OnOutage::FailOpenLocal) => {
                    if !was_down {
                        tracing::warn!(%why, "Redis does not answer; rate limits are per instance");
                    }
                    "per-instance rate limits: Redis does not answer"
                }
                (Err(why), OnOutage::FailClosed) => {
                    if !was_down {
                        tracing::warn!(%why, "not ready: Redis does not answer");
                    }
                    return (StatusCode::SERVICE_UNAVAILABLE, "not ready: the rate limiter does not answer\n")
                        .into_response();
                }
            }
        }
    };
    let was_down = state.store_down.swap(!matches!(probe, Ok(Ok(()))), Ordering::Relaxed);
    match probe {
        Ok(Ok(())) => {
            if was_down {
                tracing::info!("ready: the store answers again");
            }
            let kind = state.backend.kind();
            (StatusCode::OK, format!("ready ({kind} store, {limits}, {:?})\n", started.elapsed())).into_response()
        }
        Ok(Err(why)) => {
            // The detail (which may name the database) goes to the log, not to the caller.
            if !was_down {
                tracing::warn!(%why, "not ready: the store does not answer");
            }
            (StatusCode::SERVICE_UNAVAILABLE, "not ready: the store does not answer\n").into_response()
        }
        Err(_) => {
            if !was_down {
                tracing::warn!("not ready: the store did not answer within 2 s");
            }
            (StatusCode::SERVICE_UNAVAILABLE, "not ready: the store did not answer within 2 s\n").into_response()
        }
    }
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let mut response = state.metrics.render().into_response();
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}

async fn openapi(State(state): State<Arc<AppState>>) -> Response {
    let mut response = state.openapi.clone().into_response();
    response.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
