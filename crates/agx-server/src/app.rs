//! The whole HTTP application: the public, admin and operations routers,
//! each wrapped in its layer stack by one `Router::layer` call.
//!
//! axum boxes a route's service once per `Router::layer` call and clones the
//! box, with every layer in it, on each request, so layers added one call at
//! a time cost an allocation and a clone per layer per request
//! (`cargo xtask bench-server` measured it). Here every route has one stack:
//! the shared layers (tracing, body limit, counting), then the
//! router's own: CORS and agx-auth for the public API, the caller's access
//! (a token, or a dashboard session and its CSRF token) for the admin API,
//! security headers for the dashboard's pages. (The request deadline is `serve`'s, around all of it.)

use std::sync::Arc;

use agx_auth_axum::AuthLayer;
use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use http::{HeaderValue, header};
use tower::ServiceBuilder;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};

use crate::conversations::Conversations;
use crate::count::CountLayer;
use crate::errors::ApiError;
use crate::routing::RouterError;
use crate::state::AppState;
use crate::{admin, cors, dashboard, forward, input, metrics, ops, public, secret_scanning, verify};

/// The dashboard's pages load their own script and style sheet only, make
/// requests only to this origin, and are never framed.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The application, ready to serve.
pub fn build(state: Arc<AppState>, conversations: Conversations) -> Result<Router, RouterError> {
    let shared = ServiceBuilder::new()
        // Method and route template only: never a header or a query, so never a key.
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request| {
                    let route = req.extensions().get::<MatchedPath>().map(MatchedPath::as_str);
                    tracing::debug_span!("request", method = %req.method(), route = route.unwrap_or(metrics::UNMATCHED))
                })
                .on_response(DefaultOnResponse::new().level(tracing::Level::DEBUG)),
        )
        .layer(DefaultBodyLimit::max(input::BODY_LIMIT))
        .layer(CountLayer::new(state.metrics.clone()));
    let auth = state.auth.clone();
    let public = if state.public_api {
        public::routes(state.clone(), conversations)?
            .layer(shared.clone().layer(cors::layer(auth.clone())).layer(AuthLayer::new(auth)))
    } else {
        Router::new()
    };
    // Admin answers hold keys (on creation) and lists of them: never cached.
    let admin = admin::routes(state.clone())?.layer(
        shared
            .clone()
            .layer(SetResponseHeaderLayer::overriding(header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
            .layer(axum::middleware::from_fn_with_state(state.clone(), dashboard::access::guard)),
    );
    let pages = dashboard::pages::routes().with_state(state.clone()).layer(
        shared
            .clone()
            .layer(SetResponseHeaderLayer::overriding(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP)))
            .layer(SetResponseHeaderLayer::overriding(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
            .layer(SetResponseHeaderLayer::overriding(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ))
            .layer(SetResponseHeaderLayer::overriding(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")))
            .layer(SetResponseHeaderLayer::if_not_present(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))),
    );
    let forward = forward::routes(state.clone()).layer(shared.clone());
    // Verdicts name the caller's org and key: never cached.
    let verify = verify::routes(state.clone()).layer(
        shared
            .clone()
            .layer(SetResponseHeaderLayer::overriding(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))),
    );
    let scanning = secret_scanning::routes(state.clone()).layer(shared.clone());
    let ops = ops::routes(state).fallback(|| async { ApiError::no_route() }).layer(shared);
    Ok(ops.merge(admin).merge(public).merge(pages).merge(forward).merge(verify).merge(scanning))
}
