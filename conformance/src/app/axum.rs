//! The stub app on axum.

use std::sync::Arc;

use agx_auth::Authenticator;
use agx_auth_axum::{AuthLayer, Authenticated};
use axum::Router;
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
    let mut router = Router::new();
    for (pattern, methods) in paths(auth.routes()) {
        let mut route: MethodRouter = MethodRouter::new().options(preflight);
        for method in methods {
            let filter = MethodFilter::try_from(method).expect("the table declares standard methods");
            route = route.merge(on(filter, echo_handler));
        }
        router = router.route(&pattern, route);
    }
    router.route(PING, get(echo_handler)).layer(AuthLayer::new(auth))
}

/// Serves `app` on an ephemeral loopback port; returns its base URL.
pub async fn serve(app: Router) -> Result<String, String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(format!("http://{addr}"))
}
