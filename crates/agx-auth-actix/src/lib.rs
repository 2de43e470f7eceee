//! agx-auth for actix-web 4.
//!
//! Glue only: the request's method, path and headers go to the core's
//! [`Authenticator`]; its verdict comes back as the core rendered it. actix
//! futures are not `Send` and need not be: the middleware runs the core's
//! (`Send`) future inside actix's local one, and shares the inner service
//! through an `Rc`, as actix middleware does.
//!
//! ```no_run
//! use std::sync::Arc;
//! use actix_web::{App, HttpServer, web};
//! use agx_auth::{Authenticator, MemoryStore};
//! use agx_auth_actix::{AgxAuth, Authenticated};
//!
//! async fn chat(Authenticated(principal): Authenticated) -> String {
//!     format!("hello, {}", principal.org())
//! }
//!
//! #[actix_web::main]
//! async fn main() -> std::io::Result<()> {
//!     let store = Arc::new(MemoryStore::new());
//!     let auth = Arc::new(Authenticator::builder(store.clone(), store).build());
//!     HttpServer::new(move || {
//!         App::new()
//!             .wrap(AgxAuth::new(auth.clone()))
//!             .route("/api/public/agents/{agent_id}/chat", web::post().to(chat))
//!     })
//!     .bind("127.0.0.1:8080")?
//!     .run()
//!     .await
//! }
//! ```

use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;

use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{Payload, Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::{Error, FromRequest, HttpMessage, HttpRequest, HttpResponse};
use agx_auth::{AuthError, Authenticator, FromPeer, Outcome, Principal, Rejection, RequestHeader, RequestHeaders};

pub use agx_auth;

/// The framework guide, compiled so that its examples stay true.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/guides/actix-web.md")]
mod guide {}

/// The middleware: `App::new().wrap(AgxAuth::new(auth))`.
#[derive(Clone, Debug)]
pub struct AgxAuth {
    auth: Arc<Authenticator>,
}

impl AgxAuth {
    pub fn new(auth: Arc<Authenticator>) -> Self {
        AgxAuth { auth }
    }
}

impl<S, B> Transform<S, ServiceRequest> for AgxAuth
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B, BoxBody>>;
    type Error = Error;
    type Transform = AgxAuthService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(AgxAuthService { service: Rc::new(service), auth: self.auth.clone() }))
    }
}

pub struct AgxAuthService<S> {
    service: Rc<S>,
    auth: Arc<Authenticator>,
}

impl<S, B> Service<ServiceRequest> for AgxAuthService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B, BoxBody>>;
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>>>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let service = self.service.clone();
        let auth = self.auth.clone();
        Box::pin(async move {
            // actix's `Method` is `http` 0.2's; every valid token is valid in
            // `http` 1 too, so the fallback is unreachable (and GET is the
            // strictest reading of a route table anyway).
            let method = http::Method::from_bytes(req.method().as_str().as_bytes()).unwrap_or_default();
            let actix_headers = ActixHeaders(req.headers());
            let headers = FromPeer::new(&actix_headers, req.peer_addr().map(|a| a.ip()));
            let outcome = auth.authenticate(&method, req.path(), &headers).await;
            match outcome {
                Outcome::PassThrough => Ok(service.call(req).await?.map_into_left_body()),
                Outcome::Deny(rejection) => {
                    Ok(req.into_response(to_actix(rejection.into_response())).map_into_right_body())
                }
                Outcome::Allow(grant) => {
                    req.extensions_mut().insert(grant.principal().clone());
                    let mut response = service.call(req).await?;
                    let headers = response.headers_mut();
                    for (name, value) in grant.header_fields() {
                        if let Ok(value) = HeaderValue::from_bytes(value.as_bytes()) {
                            headers.insert(HeaderName::from_static(name), value);
                        }
                    }
                    Ok(response.map_into_left_body())
                }
            }
        })
    }
}

/// actix's header map, read in place.
struct ActixHeaders<'a>(&'a HeaderMap);

impl RequestHeaders for ActixHeaders<'_> {
    fn values(&self, header: RequestHeader) -> impl Iterator<Item = &[u8]> {
        self.0.get_all(header.name()).map(|v| v.as_bytes())
    }
}

/// The core's finished response, in actix's types: same status, headers and
/// bytes.
fn to_actix(response: http::Response<agx_auth::bytes::Bytes>) -> HttpResponse {
    let (parts, body) = response.into_parts();
    let status = StatusCode::from_u16(parts.status.as_u16()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut out = HttpResponse::build(status);
    for (name, value) in &parts.headers {
        out.append_header((name.as_str(), value.as_bytes()));
    }
    out.body(body)
}

/// The verified caller, for handlers. Also reachable as
/// `web::ReqData<Principal>`.
///
/// On a route the middleware does not cover there is no principal, and the
/// extractor fails closed with 401 `MISSING_API_KEY`.
#[derive(Clone, Debug)]
pub struct Authenticated(pub Principal);

impl FromRequest for Authenticated {
    type Error = Error;
    type Future = Ready<Result<Self, Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(req.extensions().get::<Principal>().cloned().map(Authenticated).ok_or_else(|| {
            let response = to_actix(Rejection::standalone(AuthError::MissingApiKey).into_response());
            actix_web::error::InternalError::from_response("no principal", response).into()
        }))
    }
}
