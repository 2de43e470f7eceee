//! The stub app on poem.

use std::sync::Arc;

use agx_auth::Authenticator;
use agx_auth_poem::{AgxAuth, Authenticated};
use poem::http::StatusCode;
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::{EndpointExt, Response, Route, Server, get, handler, post};

use super::{AGENT, CHAT, CONVERSATION, PING, STATUS, TEAM_CHAT, WIDGET, echo};

#[handler]
fn echo_handler(Authenticated(principal): Authenticated) -> Response {
    Response::builder().content_type("application/json").body(echo(&principal))
}

#[handler]
fn preflight() -> StatusCode {
    StatusCode::NO_CONTENT
}

/// `{name}` segments in poem's `:name` syntax.
fn poem_path(path: &str) -> String {
    path.replace('{', ":").replace('}', "")
}

/// Serves the app on an ephemeral loopback port; returns its base URL.
pub async fn serve(auth: Arc<Authenticator>) -> Result<String, String> {
    let app = Route::new()
        .at(poem_path(CHAT), post(echo_handler).options(preflight))
        .at(poem_path(TEAM_CHAT), post(echo_handler).options(preflight))
        .at(poem_path(AGENT), get(echo_handler).head(echo_handler).options(preflight))
        .at(poem_path(WIDGET), get(echo_handler).head(echo_handler).options(preflight))
        .at(poem_path(CONVERSATION), get(echo_handler).head(echo_handler).patch(echo_handler).options(preflight))
        .at(PING, get(echo_handler))
        .at(STATUS, get(echo_handler))
        .with(AgxAuth::new(auth));
    let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await.map_err(|e| e.to_string())?;
    let addr = acceptor
        .local_addr()
        .into_iter()
        .find_map(|a| a.as_socket_addr().copied())
        .ok_or("poem listener has no socket address")?;
    tokio::spawn(async move {
        let _ = Server::new_with_acceptor(acceptor).run(app).await;
    });
    Ok(format!("http://{addr}"))
}
