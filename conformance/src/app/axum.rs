//! The stub app on axum.

use std::sync::Arc;

use agx_auth::Authenticator;
use agx_auth_axum::{AuthLayer, Authenticated};
use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post};

use super::{AGENT, CHAT, CONVERSATION, PING, STATUS, TEAM_CHAT, WIDGET, echo};

async fn echo_handler(Authenticated(principal): Authenticated) -> ([(http::HeaderName, &'static str); 1], String) {
    ([(http::header::CONTENT_TYPE, "application/json")], echo(&principal))
}

/// CORS preflights reach the app without a key; it answers them itself.
async fn preflight() -> StatusCode {
    StatusCode::NO_CONTENT
}

pub fn app(auth: Arc<Authenticator>) -> Router {
    Router::new()
        .route(CHAT, post(echo_handler).options(preflight))
        .route(TEAM_CHAT, post(echo_handler).options(preflight))
        .route(AGENT, get(echo_handler).options(preflight))
        .route(WIDGET, get(echo_handler).options(preflight))
        .route(CONVERSATION, get(echo_handler).patch(echo_handler).options(preflight))
        .route(PING, get(echo_handler))
        .route(STATUS, get(echo_handler))
        .layer(AuthLayer::new(auth))
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
