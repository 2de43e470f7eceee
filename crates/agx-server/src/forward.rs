//! Forward auth for gateways: nginx `auth_request`, Traefik `ForwardAuth`
//! and Envoy `ext_authz` (HTTP service) ask these routes about the request
//! they hold and pass the answer on (docs/guides/). Wiring only: the core's
//! `original_request` reads which request it is, `Authenticator::forward`
//! judges it and builds the answer.

use std::sync::Arc;

use std::net::SocketAddr;

use agx_auth::{FromPeer, Gateway, GatewayStyle, original_request};
use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use http::StatusCode;

use crate::state::AppState;

/// The routes of this module, one per gateway: nginx's and Traefik's name
/// the held request in headers of their own; Envoy's follows the prefix,
/// with the held request's own method.
pub const ROUTES: [&str; 3] = ["/forward-auth/nginx", "/forward-auth/traefik", "/forward-auth/envoy/{*path}"];

/// Envoy's `path_prefix`: the original path is what follows it.
const ENVOY_PREFIX: &str = "/forward-auth/envoy";

pub fn routes(state: Arc<AppState>) -> Router {
    let [nginx_path, traefik_path, envoy_path] = ROUTES;
    Router::new()
        .route(nginx_path, any(|s, r| from_headers(s, r, Gateway::Nginx)))
        .route(traefik_path, any(|s, r| from_headers(s, r, Gateway::Traefik)))
        .route(envoy_path, any(envoy))
        .with_state(state)
}

async fn from_headers(State(state): State<Arc<AppState>>, req: Request, gateway: Gateway) -> Response {
    match original_request(req.headers(), gateway) {
        Ok((method, path)) => {
            state.auth.forward(&method, path, &with_peer(&req), gateway.style()).await.map(Body::from)
        }
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
    state.auth.forward(req.method(), path, &with_peer(&req), GatewayStyle::Verbatim).await.map(Body::from)
}

/// The gateway's request headers with the address it connected from: the
/// client's own address is found through the trusted proxies, the gateway
/// being one of them.
fn with_peer(req: &Request) -> FromPeer<'_, http::HeaderMap> {
    FromPeer::new(req.headers(), req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip()))
}
