//! The stub app on poem.

use std::sync::Arc;

use agx_auth::Authenticator;
use agx_auth_poem::{AgxAuth, Authenticated};
use poem::http::StatusCode;
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::{EndpointExt, Response, Route, RouteMethod, Server, get, handler};

use super::{PING, echo, paths};

#[handler]
fn echo_handler(Authenticated(principal): Authenticated) -> Response {
    Response::builder().content_type("application/json").body(echo(&principal))
}

#[handler]
fn preflight() -> StatusCode {
    StatusCode::OK
}

/// `{name}` segments in poem's `:name` syntax.
fn poem_path(path: &str) -> String {
    path.replace('{', ":").replace('}', "")
}

/// Serves the app on an ephemeral loopback port; returns its base URL.
pub async fn serve(auth: Arc<Authenticator>) -> Result<String, String> {
    let mut app = Route::new();
    for (pattern, methods) in paths(auth.routes()) {
        let mut route = RouteMethod::new().options(preflight);
        for method in methods {
            let method = poem::http::Method::from_bytes(method.as_str().as_bytes()).map_err(|e| e.to_string())?;
            if method == poem::http::Method::GET {
                route = route.head(echo_handler);
            }
            route = route.method(method, echo_handler);
        }
        app = app.at(poem_path(&pattern), route);
    }
    // An unrouted path answers an empty 404, as the other frameworks do, so
    // that transcripts compare.
    let app = app
        .at(PING, get(echo_handler))
        .with(AgxAuth::new(auth))
        .catch_error(|_: poem::error::NotFoundError| async { StatusCode::NOT_FOUND });
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
