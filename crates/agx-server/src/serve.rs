//! Serving connections with bounds: at most `max_connections` open at once
//! (past that, new ones wait in the listen backlog), a deadline for a
//! request's head (which also closes a keep-alive connection left idle, and
//! one that never sends a byte), a deadline for the whole request, and a
//! graceful shutdown that gives open connections the drain limit to finish.
//! hyper's HTTP/1 builder does the work; this is the accept loop around it.
//!
//! The request deadline is here, around the router, rather than a layer in
//! it: `tower::timeout` needs axum's `HandleErrorLayer`, which clones the
//! route's whole layer stack and boxes a future on every request, and
//! `tower-http`'s timeout answers with an empty body instead of the JSON
//! envelope. Here it is one `tokio::time::timeout` per request, for every
//! route and the fallback alike.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt;
use futures_util::future::Map;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::Timeout;
use tokio::time::error::Elapsed;
use tower::ServiceExt;
use tower::util::Oneshot;

use crate::errors::ApiError;

/// How connections are bounded.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_connections: usize,
    /// The longest a connection may take to send a request's head, counted
    /// from when the server starts waiting for it: on a new connection, and
    /// after each answer on a kept-alive one.
    pub header_timeout: Duration,
    /// Headers past this many bytes are refused (431).
    pub max_header_bytes: usize,
    /// The longest a request, its body included, may take before it is
    /// answered 408.
    pub request_timeout: Duration,
}

/// Serves `app` on `listener` until `shutdown` resolves, then waits at most
/// `drain` for open connections before returning.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192))
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(s) => s,
                Err(e) => {
                    // Out of file descriptors, say: wait, and keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = Deadline { app: app.clone(), limit: limits.request_timeout, peer };
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            // A closed or timed-out connection is the client's business, not an error of ours.
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended");
            }
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(drain) => {
            tracing::warn!(?drain, "connections still open after the drain limit; closing them");
        }
    }
    Ok(())
}

/// The router as hyper's service, each request with its deadline and the
/// peer's address (`ConnectInfo`, for the dashboard's trusted proxies).
struct Deadline {
    app: Router,
    limit: Duration,
    peer: SocketAddr,
}

type Answer = Result<Response, Infallible>;

impl hyper::service::Service<http::Request<Incoming>> for Deadline {
    type Response = Response;
    type Error = Infallible;
    type Future = Map<Timeout<Oneshot<Router, http::Request<Incoming>>>, fn(Result<Answer, Elapsed>) -> Answer>;

    fn call(&self, mut req: http::Request<Incoming>) -> Self::Future {
        req.extensions_mut().insert(ConnectInfo(self.peer));
        // Cloning a `Router` clones an `Arc`.
        tokio::time::timeout(self.limit, self.app.clone().oneshot(req)).map(in_time)
    }
}

fn in_time(answer: Result<Answer, Elapsed>) -> Answer {
    answer.unwrap_or_else(|_| Ok(ApiError::TIMEOUT.into_response()))
}
