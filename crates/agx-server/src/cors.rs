//! CORS for the public API: `tower-http`'s `CorsLayer`, whose origin
//! decision is the core's (`Authenticator::cors_allows`), so that the
//! preflight and the verdict apply one domain rule.
//!
//! The layer sits outside the auth layer, so that refusals (a 429 a widget
//! must back off from) are readable by the page too. `CorsLayer` treats every
//! `OPTIONS` as a preflight; one without `Access-Control-Request-Method` is
//! not, and is steered around it to the auth layer, which judges it like any
//! request.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use agx_auth::Authenticator;
use axum::extract::Request;
use axum::response::Response;
use axum::routing::Route;
use futures_util::future::Either;
use http::header::{ACCESS_CONTROL_REQUEST_METHOD, AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderName, HeaderValue, Method};
use tower::{Layer, Service};
use tower_http::cors::{AllowOrigin, Cors, CorsLayer};

/// Response headers a page may read: the chat's ids and the rate-limit fields.
const EXPOSED: [HeaderName; 5] = [
    HeaderName::from_static("x-conversation-id"),
    HeaderName::from_static("x-message-id"),
    HeaderName::from_static("ratelimit"),
    HeaderName::from_static("ratelimit-policy"),
    HeaderName::from_static("retry-after"),
];

/// How long a browser may keep a preflight's answer.
const MAX_AGE: Duration = Duration::from_secs(600);

/// The layer for the public router.
pub fn layer(auth: Arc<Authenticator>) -> CorsUnlessPlainOptionsLayer {
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::async_predicate(move |origin: HeaderValue, parts: &http::request::Parts| {
            let auth = auth.clone();
            let method = parts.method.clone();
            let path = parts.uri.path().to_owned();
            let requested = parts.headers.get(ACCESS_CONTROL_REQUEST_METHOD).cloned();
            async move {
                auth.cors_allows(&method, &path, origin.as_bytes(), requested.as_ref().map(HeaderValue::as_bytes)).await
            }
        }))
        .allow_methods([Method::GET, Method::POST, Method::PATCH])
        .allow_headers([AUTHORIZATION, HeaderName::from_static("x-api-key"), CONTENT_TYPE])
        .expose_headers(EXPOSED)
        .max_age(MAX_AGE);
    CorsUnlessPlainOptionsLayer(cors)
}

#[derive(Clone)]
pub struct CorsUnlessPlainOptionsLayer(CorsLayer);

impl Layer<Route> for CorsUnlessPlainOptionsLayer {
    type Service = CorsUnlessPlainOptions;

    fn layer(&self, inner: Route) -> Self::Service {
        CorsUnlessPlainOptions { cors: self.0.layer(inner.clone()), plain: inner }
    }
}

/// `Cors` for every request but an `OPTIONS` that is not a preflight.
#[derive(Clone)]
pub struct CorsUnlessPlainOptions {
    cors: Cors<Route>,
    plain: Route,
}

impl Service<Request> for CorsUnlessPlainOptions {
    type Response = Response;
    type Error = Infallible;
    type Future = Either<<Cors<Route> as Service<Request>>::Future, <Route as Service<Request>>::Future>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // An axum `Route` is always ready, and `Cors` is as ready as its route.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        if req.method() == Method::OPTIONS && !req.headers().contains_key(ACCESS_CONTROL_REQUEST_METHOD) {
            Either::Right(self.plain.call(req))
        } else {
            Either::Left(self.cors.call(req))
        }
    }
}
