//! `POST /api/verify`: the verdict on a key for a service that calls us
//! itself instead of sitting behind a gateway. Wiring only: the core's
//! `Authenticator::verify_key` judges; this reads the body and writes the
//! verdict as JSON.
//!
//! A judged request is answered 200 whether it is allowed or refused (the
//! call succeeded; `allowed` says what was decided). A verdict that cannot
//! be reached (the store or the limiter is down) is the public API's own
//! 503 `AUTH_UNAVAILABLE`, so that a client that admits only on a 200 with
//! `allowed: true` fails closed without reading further.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use agx_auth::{Outcome, Resource, VerifyRequest, VerifyTarget};
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Router};
use http::{HeaderValue, Method, header};

use crate::errors::{ApiError, JsonBody};
use crate::schema::{Budget, Verdict, VerifiedPrincipal, VerifyCall};
use crate::state::AppState;

/// The route of this module.
pub const ROUTE: &str = "/api/verify";

const BAD_TARGET: ApiError =
    ApiError::invalid("Give either method and path, or scope and class (with at most one of agent and team)");
const BAD_METHOD: ApiError = ApiError::invalid("method must be an HTTP method token");
const BAD_CLIENT: ApiError = ApiError::invalid("clientAddress must be an IPv4 or IPv6 address");

pub fn routes(state: Arc<AppState>) -> Router {
    Router::new()
        .route(ROUTE, post(verify))
        .method_not_allowed_fallback(|| async { ApiError::METHOD_NOT_ALLOWED })
        .with_state(state)
}

async fn verify(
    State(state): State<Arc<AppState>>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    JsonBody(call): JsonBody<VerifyCall>,
) -> Response {
    let target = match target(&call) {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let client = match call.client_address.as_deref().map(str::parse) {
        None => None,
        Some(Ok(ip)) => Some(ip),
        Some(Err(_)) => return BAD_CLIENT.into_response(),
    };
    let caller = peer.map(|Extension(ConnectInfo(addr))| addr.ip());
    let request = VerifyRequest { key: call.key.as_deref(), target, origin: call.origin.as_deref(), client, caller };
    let verdict = match state.auth.verify_key(&request).await {
        Ok(outcome) => outcome,
        Err(e) => return ApiError::invalid(e.message()).into_response(),
    };
    let verdict = match verdict {
        Outcome::Allow(grant) => {
            let p = grant.principal();
            Verdict {
                allowed: true,
                status: 200,
                code: None,
                message: None,
                retry_after: None,
                principal: Some(VerifiedPrincipal {
                    org: p.org().to_owned(),
                    key_id: p.key_id().to_string(),
                    key_name: p.key_name().to_owned(),
                    scopes: p.scopes().iter().map(|s| s.as_str().to_owned()).collect(),
                    mode: p.mode().as_str(),
                }),
                rate_limit: grant.rate_limit().map(budget),
                credits_remaining: grant.credits_remaining(),
                headers: grant.header_fields().map(|(n, v)| (n.to_owned(), text(&v))).collect(),
            }
        }
        // Only under `unmatched = "pass-through"`: the table says this
        // request is not the key service's to judge.
        Outcome::PassThrough => Verdict {
            allowed: true,
            status: 200,
            code: None,
            message: None,
            retry_after: None,
            principal: None,
            rate_limit: None,
            credits_remaining: None,
            headers: BTreeMap::new(),
        },
        Outcome::Deny(rejection) if rejection.error().status() == http::StatusCode::SERVICE_UNAVAILABLE => {
            return rejection.into_response().map(Body::from);
        }
        Outcome::Deny(rejection) => {
            let error = rejection.error();
            let headers = rejection
                .response()
                .headers()
                .iter()
                .filter(|(name, _)| *name != header::CONTENT_TYPE)
                .map(|(name, value)| (name.as_str().to_owned(), text(value)))
                .collect();
            Verdict {
                allowed: false,
                status: error.status().as_u16(),
                code: Some(error.code()),
                message: Some(error.message()),
                retry_after: match error {
                    agx_auth::AuthError::RateLimited { .. } => error.retry_after_secs(),
                    _ => None,
                },
                principal: None,
                rate_limit: rejection.rate_limit().map(budget),
                credits_remaining: None,
                headers,
            }
        }
    };
    axum::Json(verdict).into_response()
}

/// The call's target, or why it names none (or two).
fn target(call: &VerifyCall) -> Result<VerifyTarget<'_>, ApiError> {
    let request = (&call.method, &call.path);
    let permission = (&call.scope, &call.class);
    let resource = match (&call.agent, &call.team) {
        (None, None) => Resource::None,
        (Some(agent), None) => Resource::Agent(agent),
        (None, Some(team)) => Resource::Team(team),
        (Some(_), Some(_)) => return Err(BAD_TARGET),
    };
    match (request, permission) {
        ((Some(method), Some(path)), (None, None)) if resource == Resource::None => {
            let method = Method::from_bytes(method.as_bytes()).map_err(|_| BAD_METHOD)?;
            Ok(VerifyTarget::Request { method, path })
        }
        ((None, None), (Some(scope), Some(class))) => Ok(VerifyTarget::Permission { scope, class, resource }),
        _ => Err(BAD_TARGET),
    }
}

fn budget(status: &agx_auth::RateLimitStatus) -> Budget {
    Budget {
        class: status.class.as_str(),
        limit: status.quota.get(),
        remaining: status.remaining,
        reset: status.reset_secs(),
    }
}

/// A header value as JSON text. The core's fields are ASCII; a custom
/// renderer's value that is not is passed on lossily rather than dropped.
fn text(value: &HeaderValue) -> String {
    String::from_utf8_lossy(value.as_bytes()).into_owned()
}
