//! Operations: liveness, readiness, Prometheus metrics, the OpenAPI document.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agx_auth::VerdictObserver;
use agx_auth_redis::OnOutage;
use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::state::AppState;

/// Upper bounds of the verdict latency histogram, in seconds.
const BUCKETS: [f64; 10] = [0.000_002, 0.000_005, 0.000_01, 0.000_05, 0.000_1, 0.000_5, 0.001, 0.005, 0.01, 0.1];

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    verdicts: Mutex<BTreeMap<&'static str, u64>>,
    buckets: [AtomicU64; BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_ns: AtomicU64,
    /// Whether the last readiness probe found the store (or Redis) down, so
    /// that a probe every few seconds logs an outage once, not once per probe.
    store_down: AtomicBool,
    redis_down: AtomicBool,
}

impl VerdictObserver for Metrics {
    fn observe(&self, code: Option<&'static str>, elapsed: Duration) {
        *self.verdicts.lock().unwrap_or_else(|e| e.into_inner()).entry(code.unwrap_or("ALLOWED")).or_default() += 1;
        let secs = elapsed.as_secs_f64();
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            if secs <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_ns.fetch_add(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }
}

impl Metrics {
    fn render(&self, cache: Option<(u64, u64)>) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# HELP agx_http_requests_total Requests by route and status.");
        let _ = writeln!(out, "# TYPE agx_http_requests_total counter");
        for ((route, status), n) in self.requests.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = writeln!(out, "agx_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}");
        }
        let _ =
            writeln!(out, "# HELP agx_auth_verdicts_total Authentication verdicts by outcome (error code or ALLOWED).");
        let _ = writeln!(out, "# TYPE agx_auth_verdicts_total counter");
        let verdicts = self.verdicts.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for (code, n) in &verdicts {
            let _ = writeln!(out, "agx_auth_verdicts_total{{outcome=\"{code}\"}} {n}");
        }
        let _ = writeln!(out, "# HELP agx_rate_limit_rejections_total Requests refused with 429.");
        let _ = writeln!(out, "# TYPE agx_rate_limit_rejections_total counter");
        let _ = writeln!(out, "agx_rate_limit_rejections_total {}", verdicts.get("RATE_LIMITED").copied().unwrap_or(0));
        let _ = writeln!(out, "# HELP agx_auth_verdict_seconds Time to reach a verdict.");
        let _ = writeln!(out, "# TYPE agx_auth_verdict_seconds histogram");
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            let _ =
                writeln!(out, "agx_auth_verdict_seconds_bucket{{le=\"{bound}\"}} {}", bucket.load(Ordering::Relaxed));
        }
        let count = self.latency_count.load(Ordering::Relaxed);
        let _ = writeln!(out, "agx_auth_verdict_seconds_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.latency_sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "agx_auth_verdict_seconds_sum {sum}\nagx_auth_verdict_seconds_count {count}");
        if let Some((hits, misses)) = cache {
            let _ = writeln!(out, "# HELP agx_key_cache_lookups_total Key cache lookups by result.");
            let _ = writeln!(out, "# TYPE agx_key_cache_lookups_total counter");
            let _ = writeln!(out, "agx_key_cache_lookups_total{{result=\"hit\"}} {hits}");
            let _ = writeln!(out, "agx_key_cache_lookups_total{{result=\"miss\"}} {misses}");
        }
        out
    }
}

/// Counts and logs every response by its route template and status.
pub async fn count_requests(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str).to_owned();
    let method = req.method().clone();
    let started = Instant::now();
    let response = next.run(req).await;
    // Method, route template and status only: never a header, so never a key.
    tracing::info!(%method, route = %route, status = response.status().as_u16(), elapsed = ?started.elapsed(), "request");
    *state
        .metrics
        .requests
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry((route, response.status().as_u16()))
        .or_default() += 1;
    response
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
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
            let was_down = state.metrics.redis_down.swap(ping.is_err(), Ordering::Relaxed);
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
    let was_down = state.metrics.store_down.swap(!matches!(probe, Ok(Ok(()))), Ordering::Relaxed);
    match probe {
        Ok(Ok(())) => {
            if was_down {
                tracing::info!("ready: the store answers again");
            }
            let kind = state.backend.kind;
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
    let mut text = state.metrics.render(state.backend.cache_stats());
    if let Some(limiter) = &state.limiter {
        let _ = writeln!(text, "# HELP agx_rate_limiter_outage 1 while the Redis limiter cannot reach Redis.");
        let _ = writeln!(text, "# TYPE agx_rate_limiter_outage gauge");
        let _ = writeln!(text, "agx_rate_limiter_outage {}", u8::from(limiter.in_outage()));
        let _ = writeln!(text, "# HELP agx_rate_limiter_outages_total Redis outages seen since start.");
        let _ = writeln!(text, "# TYPE agx_rate_limiter_outages_total counter");
        let _ = writeln!(text, "agx_rate_limiter_outages_total {}", limiter.outages());
    }
    let mut response = text.into_response();
    response
        .headers_mut()
        .insert(http::header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    response
}

async fn openapi() -> Response {
    axum::Json(crate::openapi::document()).into_response()
}
