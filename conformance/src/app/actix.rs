//! The stub app on actix-web, served by its own actix system on a thread.

use std::sync::Arc;

use actix_web::http::Method;
use actix_web::{App, HttpResponse, HttpServer, web};
use agx_auth::Authenticator;
use agx_auth_actix::{AgxAuth, Authenticated};

use super::{AGENT, CHAT, CONVERSATION, PING, STATUS, TEAM_CHAT, WIDGET, echo};

async fn echo_handler(Authenticated(principal): Authenticated) -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(echo(&principal))
}

async fn preflight() -> HttpResponse {
    HttpResponse::NoContent().finish()
}

/// Serves the app on an ephemeral loopback port; returns its base URL.
pub fn serve(auth: Arc<Authenticator>) -> Result<String, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server = HttpServer::new(move || {
                let options = || web::method(Method::OPTIONS).to(preflight);
                App::new()
                    .wrap(AgxAuth::new(auth.clone()))
                    .route(CHAT, web::post().to(echo_handler))
                    .route(CHAT, options())
                    .route(TEAM_CHAT, web::post().to(echo_handler))
                    .route(TEAM_CHAT, options())
                    .route(AGENT, web::get().to(echo_handler))
                    .route(AGENT, web::head().to(echo_handler))
                    .route(AGENT, options())
                    .route(WIDGET, web::get().to(echo_handler))
                    .route(WIDGET, web::head().to(echo_handler))
                    .route(WIDGET, options())
                    .route(CONVERSATION, web::get().to(echo_handler))
                    .route(CONVERSATION, web::head().to(echo_handler))
                    .route(CONVERSATION, web::patch().to(echo_handler))
                    .route(CONVERSATION, options())
                    .route(PING, web::get().to(echo_handler))
                    .route(STATUS, web::get().to(echo_handler))
            })
            .workers(2)
            .disable_signals()
            .listen(listener);
            match server {
                Ok(server) => {
                    let _ = ready_tx.send(Ok(()));
                    let _ = server.run().await;
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e.to_string()));
                }
            }
        });
    });
    ready_rx.recv().map_err(|e| e.to_string())??;
    Ok(format!("http://{addr}"))
}
