//! The stub app on axum.

use std::sync::Arc;

use agx_auth::{Authenticator, Routes};
use agx_auth_axum::{AuthLayer, Authenticated};
use axum::Router;
use axum::handler::Handler;
use axum::http::StatusCode;
use axum::routing::{MethodFilter, MethodRouter, get, on};

use super::{PING, echo, paths};

async fn echo_handler(Authenticated(principal): Authenticated) -> ([(http::HeaderName, &'static str); 1], String) {
    ([(http::header::CONTENT_TYPE, "application/json")], echo(&principal))
}

/// CORS preflights reach the app without a key; it answers them itself.
async fn preflight() -> StatusCode {
    StatusCode::OK
}

/// Every route of the authenticator's table (axum 0.8 routes the table's
/// `{name}` patterns as they are), plus the undeclared [`PING`].
pub fn app(auth: Arc<Authenticator>) -> Router {
    routed(auth.routes(), echo_handler).layer(AuthLayer::new(auth))
}

/// The stub's routing with `handler` on every route of `routes` and on
/// [`PING`]: the in-process app's, and the upstream behind a gateway's,
/// which answer from the same table.
pub fn routed<H, T>(routes: &Routes, handler: H) -> Router
where
    H: Handler<T, ()> + Clone + Send + Sync + 'static,
    T: 'static,
{
    let mut router = Router::new();
    for (pattern, methods) in paths(routes) {
        let mut route: MethodRouter = MethodRouter::new().options(preflight);
        for method in methods {
            let filter = MethodFilter::try_from(method).expect("the table declares standard methods");
            route = route.merge(on(filter, handler.clone()));
        }
        router = router.route(&pattern, route);
    }
    router.route(PING, get(handler))
}

/// Serves `app` on an ephemeral loopback port; returns its base URL.
pub async fn serve(app: Router) -> Result<String, String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>()).await;
    });
    Ok(format!("http://{addr}"))
}
