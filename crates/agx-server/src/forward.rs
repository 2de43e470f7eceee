//! Forward auth for gateways: nginx `auth_request`, Traefik `ForwardAuth`
//! and Envoy `ext_authz` (HTTP service) ask these routes about the request
//! they hold and pass the answer on (docs/guides/). Wiring only: the core's
//! `original_request` reads which request it is, `Authenticator::forward`
//! judges it and builds the answer.

use std::sync::Arc;

use agx_auth::{GatewayStyle, original_request};
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use http::StatusCode;

use crate::state::AppState;

/// The routes of this module: the method and URI in headers (nginx's
/// `X-Original-*`, Traefik's `X-Forwarded-*`), refusals verbatim; the same
/// with refusals in headers, for nginx; and Envoy's, where the original
/// path follows the prefix and the method is the request's own.
pub const ROUTES: [&str; 3] = ["/forward-auth", "/forward-auth/nginx", "/forward-auth/envoy/{*path}"];

/// Envoy's `path_prefix`: the original path is what follows it.
const ENVOY_PREFIX: &str = "/forward-auth/envoy";

pub fn routes(state: Arc<AppState>) -> Router {
    let [headers_path, nginx_path, envoy_path] = ROUTES;
    Router::new()
        .route(headers_path, any(|s, r| from_headers(s, r, GatewayStyle::Verbatim)))
        .route(nginx_path, any(|s, r| from_headers(s, r, GatewayStyle::StatusInHeaders)))
        .route(envoy_path, any(envoy))
        .with_state(state)
}

async fn from_headers(State(state): State<Arc<AppState>>, req: Request, style: GatewayStyle) -> Response {
    match original_request(req.headers()) {
        Ok((method, path)) => state.auth.forward(&method, path, req.headers(), style).await.map(Body::from),
        Err(why) => {
            tracing::warn!(%why, "forward auth: the gateway's request does not say which request it holds");
            (StatusCode::BAD_REQUEST, why.message()).into_response()
        }
    }
}

async fn envoy(State(state): State<Arc<AppState>>, req: Request) -> Response {
    // The raw path, not the router's decoded capture: the verdict must see
    // what the client sent, empty segments and escapes included.
    let path = req.uri().path().strip_prefix(ENVOY_PREFIX).unwrap_or("/");
    state.auth.forward(req.method(), path, req.headers(), GatewayStyle::Verbatim).await.map(Body::from)
}
