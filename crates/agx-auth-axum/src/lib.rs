//! agx-auth for axum and any tower `Service` over `http::Request`.
//!
//! Glue only: the request's method, path and headers go to the core's
//! [`Authenticator`]; its verdict comes back as the core rendered it.
//!
//! ```no_run
//! use std::sync::Arc;
//! use axum::{Router, routing::post};
//! use agx_auth::{Authenticator, MemoryStore};
//! use agx_auth_axum::{AuthLayer, Authenticated};
//!
//! async fn chat(Authenticated(principal): Authenticated) -> String {
//!     format!("hello, {}", principal.org())
//! }
//!
//! # async fn run() -> std::io::Result<()> {
//! let store = Arc::new(MemoryStore::new());
//! let auth = Arc::new(Authenticator::builder(store.clone(), store).build());
//! let app = Router::new()
//!     .route("/api/public/agents/{agent_id}/chat", post(chat))
//!     .layer(AuthLayer::new(auth));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app).await
//! # }
//! ```

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use agx_auth::{AuthError, Authenticator, FromPeer, Outcome, Principal, Rejection};
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::response::Response;
use bytes::Bytes;
use http::request::Parts;
use http::{Request, Response as HttpResponse};
use tower_layer::Layer;
use tower_service::Service;

pub use agx_auth;

/// The framework guide, compiled so that its examples stay true.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/guides/axum.md")]
mod guide {}

/// The README's example, compiled for the same reason.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
mod readme {}

/// Protects every request of the wrapped service.
#[derive(Clone, Debug)]
pub struct AuthLayer {
    auth: Arc<Authenticator>,
}

impl AuthLayer {
    pub fn new(auth: Arc<Authenticator>) -> Self {
        AuthLayer { auth }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService { inner, auth: self.auth.clone() }
    }
}

#[derive(Clone, Debug)]
pub struct AuthService<S> {
    inner: S,
    auth: Arc<Authenticator>,
}

impl<S, B, ResBody> Service<Request<B>> for AuthService<S>
where
    S: Service<Request<B>, Response = HttpResponse<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
    ResBody: From<Bytes>,
{
    type Response = HttpResponse<ResBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        // The clone is the one to keep; the instance that was polled ready serves this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let auth = self.auth.clone();
        Box::pin(async move {
            // The connection's address, when the server was built with
            // `into_make_service_with_connect_info::<SocketAddr>()`.
            let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
            let headers = FromPeer::new(req.headers(), peer);
            match auth.authenticate(req.method(), req.uri().path(), &headers).await {
                Outcome::PassThrough => inner.call(req).await,
                Outcome::Deny(rejection) => Ok(rejection.into_response().map(ResBody::from)),
                Outcome::Allow(grant) => {
                    req.extensions_mut().insert(grant.principal().clone());
                    let mut response = inner.call(req).await?;
                    grant.apply_headers(response.headers_mut());
                    Ok(response)
                }
            }
        })
    }
}

/// The verified caller, for handlers. Also in the request extensions as a
/// plain [`Principal`] (`Extension<Principal>`).
///
/// On a route the layer does not cover there is no principal, and the
/// extractor fails closed with 401 `MISSING_API_KEY` rather than run the
/// handler for nobody.
#[derive(Clone, Debug)]
pub struct Authenticated(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for Authenticated {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .map(Authenticated)
            .ok_or_else(|| Rejection::standalone(AuthError::MissingApiKey).into_response().map(axum::body::Body::from))
    }
}
