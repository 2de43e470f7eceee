//! The app every adapter serves under test: the Agentix routes and one host
//! route, each answering with the principal it was given. The echo is
//! framework-free so every adapter's body is the same bytes.

use std::sync::Arc;

use agx_auth::{Authenticator, Principal};
use agx_auth_axum::{AuthLayer, Authenticated};
use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post};

/// Paths the stub app serves, in the framework-neutral `{param}` syntax.
pub const CHAT: &str = "/api/public/agents/{agent_id}/chat";
pub const TEAM_CHAT: &str = "/api/public/teams/{team_id}/chat";
pub const AGENT: &str = "/api/public/agents/{agent_id}";
pub const WIDGET: &str = "/api/public/agents/{agent_id}/widget";
pub const CONVERSATION: &str = "/api/public/agents/{agent_id}/conversations/{session_id}";
/// A route of the host application's that the route table does not declare.
pub const PING: &str = "/api/public/ping";

/// `{"org":…,"keyName":…,"mode":…,"scopes":[…]}`
pub fn echo(principal: &Principal) -> String {
    serde_json::json!({
        "org": principal.org(),
        "keyName": principal.key_name(),
        "mode": principal.mode().as_str(),
        "scopes": principal.scopes().iter().map(|s| s.as_str()).collect::<Vec<_>>(),
    })
    .to_string()
}

async fn echo_handler(Authenticated(principal): Authenticated) -> ([(http::HeaderName, &'static str); 1], String) {
    ([(http::header::CONTENT_TYPE, "application/json")], echo(&principal))
}

/// CORS preflights reach the app without a key; it answers them itself.
async fn preflight() -> StatusCode {
    StatusCode::NO_CONTENT
}

pub fn axum_app(auth: Arc<Authenticator>) -> Router {
    Router::new()
        .route(CHAT, post(echo_handler).options(preflight))
        .route(TEAM_CHAT, post(echo_handler).options(preflight))
        .route(AGENT, get(echo_handler).options(preflight))
        .route(WIDGET, get(echo_handler).options(preflight))
        .route(CONVERSATION, get(echo_handler).patch(echo_handler).options(preflight))
        .route(PING, get(echo_handler))
        .layer(AuthLayer::new(auth))
}

/// Serves `app` on an ephemeral loopback port; returns its base URL.
pub async fn serve_axum(app: Router) -> Result<String, String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(format!("http://{addr}"))
}
