//! CORS for the public API: `tower-http`'s `CorsLayer`, whose origin
//! decision is the core's (`Authenticator::cors_allows`), so that the
//! preflight and the verdict apply one domain rule.
//!
//! The layer sits outside the auth layer, so that refusals (a 429 a widget
//! must back off from) are readable by the page too.
//!
//! Only preflights and requests with an `Origin` go through `CorsLayer`. For
//! the rest its headers mean nothing to a browser, and building them (a
//! header map and a `Vary` value per request) was a measured part of what a
//! refused request costs. A preflight is the core's: an `OPTIONS` with
//! `Access-Control-Request-Method`. `CorsLayer` would treat every `OPTIONS`
//! as one; a plain `OPTIONS` goes around it to the auth layer, which judges
//! it like any request. Every answer carries the same static `Vary`, since
//! each of these headers can change it.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use agx_auth::Authenticator;
use axum::extract::Request;
use axum::response::Response;
use futures_util::TryFutureExt;
use futures_util::future::{Either, MapOk};
use http::header::{ACCESS_CONTROL_REQUEST_METHOD, AUTHORIZATION, CONTENT_TYPE, ORIGIN, VARY};
use http::{HeaderName, HeaderValue, Method};
use tower::{Layer, Service};
use tower_http::cors::{AllowOrigin, Cors, CorsLayer, ResponseFuture};

/// Response headers a page may read: the chat's ids and the rate-limit fields.
const EXPOSED: [HeaderName; 5] = [
    HeaderName::from_static("x-conversation-id"),
    HeaderName::from_static("x-message-id"),
    HeaderName::from_static("ratelimit"),
    HeaderName::from_static("ratelimit-policy"),
    HeaderName::from_static("retry-after"),
];

/// What every answer varies on: `CorsLayer`'s default list, written once.
const VARY_VALUE: HeaderValue =
    HeaderValue::from_static("origin, access-control-request-method, access-control-request-headers");

/// How long a browser may keep a preflight's answer.
const MAX_AGE: Duration = Duration::from_secs(600);

/// The layer for the public router.
pub fn layer(auth: Arc<Authenticator>) -> CrossOriginLayer {
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
        .max_age(MAX_AGE)
        // Written by `CrossOrigin` on every answer instead.
        .vary([]);
    CrossOriginLayer(cors)
}

#[derive(Clone)]
pub struct CrossOriginLayer(CorsLayer);

impl<S> Layer<S> for CrossOriginLayer {
    type Service = CrossOrigin<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CrossOrigin { cors: self.0.layer(inner) }
    }
}

/// `Cors` for CORS requests and preflights; anything else goes straight to
/// the inner service.
#[derive(Clone)]
pub struct CrossOrigin<S> {
    cors: Cors<S>,
}

type Answer<F> = MapOk<Either<ResponseFuture<F>, F>, fn(Response) -> Response>;

impl<S> Service<Request> for CrossOrigin<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Answer<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // `Cors` is as ready as the service it wraps.
        self.cors.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        // A preflight by the core's rule (`OPTIONS` with a requested method),
        // or any other request with an `Origin`.
        let cors = if req.method() == Method::OPTIONS {
            req.headers().contains_key(ACCESS_CONTROL_REQUEST_METHOD)
        } else {
            req.headers().contains_key(ORIGIN)
        };
        let answer =
            if cors { Either::Left(self.cors.call(req)) } else { Either::Right(self.cors.get_mut().call(req)) };
        answer.map_ok(vary as fn(Response) -> Response)
    }
}

fn vary(mut response: Response) -> Response {
    response.headers_mut().append(VARY, VARY_VALUE);
    response
}
