//! The stub app on actix-web, served by its own actix system on a thread.

use std::sync::Arc;

use actix_web::http::Method;
use actix_web::{App, HttpResponse, HttpServer, web};
use agx_auth::Authenticator;
use agx_auth_actix::{AgxAuth, Authenticated};

use super::{PING, echo, paths};

async fn echo_handler(Authenticated(principal): Authenticated) -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(echo(&principal))
}

async fn preflight() -> HttpResponse {
    HttpResponse::Ok().finish()
}

/// Serves the app on an ephemeral loopback port; returns its base URL.
pub fn serve(auth: Arc<Authenticator>) -> Result<String, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let table = paths(auth.routes());
            let server = HttpServer::new(move || {
                let mut app = App::new().wrap(AgxAuth::new(auth.clone()));
                // The table's routes (actix reads `{name}` patterns as they
                // are); actix does not answer HEAD with GET on its own.
                for (pattern, methods) in &table {
                    for method in methods {
                        let method = Method::from_bytes(method.as_str().as_bytes()).expect("a standard method");
                        if method == Method::GET {
                            app = app.route(pattern, web::head().to(echo_handler));
                        }
                        app = app.route(pattern, web::method(method).to(echo_handler));
                    }
                    app = app.route(pattern, web::method(Method::OPTIONS).to(preflight));
                }
                app.route(PING, web::get().to(echo_handler))
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
