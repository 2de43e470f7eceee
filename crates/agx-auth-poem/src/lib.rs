//! agx-auth for poem 3.
//!
//! Glue only: the request's method, path and headers go to the core's
//! [`Authenticator`]; its verdict comes back as the core rendered it. poem
//! speaks `http` 1, so the header map is read in place.
//!
//! ```no_run
//! use std::sync::Arc;
//! use agx_auth::{Authenticator, MemoryStore};
//! use agx_auth_poem::{AgxAuth, Authenticated};
//! use poem::{EndpointExt, Route, Server, handler, listener::TcpListener, post};
//!
//! #[handler]
//! fn chat(Authenticated(principal): Authenticated) -> String {
//!     format!("hello, {}", principal.org())
//! }
//!
//! # async fn run() -> std::io::Result<()> {
//! let store = Arc::new(MemoryStore::new());
//! let auth = Arc::new(Authenticator::builder(store.clone(), store).build());
//! let app = Route::new().at("/api/public/agents/:agent_id/chat", post(chat)).with(AgxAuth::new(auth));
//! Server::new(TcpListener::bind("127.0.0.1:8080")).run(app).await
//! # }
//! ```

use std::sync::Arc;

use agx_auth::{AuthError, Authenticator, FromPeer, Outcome, Principal, Rejection};
use poem::{Endpoint, FromRequest, IntoResponse, Middleware, Request, RequestBody, Response, Result};

pub use agx_auth;

/// The framework guide, compiled so that its examples stay true.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/guides/poem.md")]
mod guide {}

/// The middleware: `route.with(AgxAuth::new(auth))`.
#[derive(Clone, Debug)]
pub struct AgxAuth {
    auth: Arc<Authenticator>,
}

impl AgxAuth {
    pub fn new(auth: Arc<Authenticator>) -> Self {
        AgxAuth { auth }
    }
}

impl<E: Endpoint> Middleware<E> for AgxAuth {
    type Output = AgxAuthEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        AgxAuthEndpoint { inner, auth: self.auth.clone() }
    }
}

pub struct AgxAuthEndpoint<E> {
    inner: E,
    auth: Arc<Authenticator>,
}

impl<E: Endpoint> Endpoint for AgxAuthEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> Result<Self::Output> {
        let peer = req.remote_addr().as_socket_addr().map(|a| a.ip());
        let outcome = self.auth.authenticate(req.method(), req.uri().path(), &FromPeer::new(req.headers(), peer)).await;
        match outcome {
            Outcome::PassThrough => Ok(self.inner.call(req).await?.into_response()),
            Outcome::Deny(rejection) => Ok(to_poem(rejection.into_response())),
            Outcome::Allow(grant) => {
                req.extensions_mut().insert(grant.principal().clone());
                let mut response = self.inner.call(req).await?.into_response();
                grant.apply_headers(response.headers_mut());
                Ok(response)
            }
        }
    }
}

/// The core's finished response as poem's: same status, headers and bytes.
fn to_poem(response: poem::http::Response<agx_auth::bytes::Bytes>) -> Response {
    let (parts, body) = response.into_parts();
    let mut out = Response::builder().status(parts.status).body(body);
    *out.headers_mut() = parts.headers;
    out
}

/// The verified caller, for handlers. Also reachable as `Data<&Principal>`.
///
/// On a route the middleware does not cover there is no principal, and the
/// extractor fails closed with 401 `MISSING_API_KEY`.
#[derive(Clone, Debug)]
pub struct Authenticated(pub Principal);

impl<'a> FromRequest<'a> for Authenticated {
    async fn from_request(req: &'a Request, _body: &mut RequestBody) -> Result<Self> {
        req.extensions().get::<Principal>().cloned().map(Authenticated).ok_or_else(|| {
            let response = to_poem(Rejection::standalone(AuthError::MissingApiKey).into_response());
            poem::Error::from_response(response)
        })
    }
}
