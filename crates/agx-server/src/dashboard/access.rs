//! Who is calling the admin API, and what they may reach. Three ways in:
//!
//! - `Authorization: Bearer <admin token>`: every organization;
//! - `Authorization: Bearer agxd_…` (an org dashboard token): its org only;
//! - the dashboard's session cookie, with the session's CSRF token in
//!   `X-CSRF-Token` on every call (the page's script reads it from the
//!   page; a page of another site can neither read it nor send the cookie,
//!   which is `SameSite=Strict`).
//!
//! The guard resolves the caller once and hands handlers a [`Caller`];
//! each handler asks [`Caller::org`] for the org of its path, and another
//! org's is answered as if it did not exist (404).

use std::sync::Arc;

use std::net::SocketAddr;

use agx_auth::Actor;

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;
use subtle::ConstantTimeEq;

use super::store::{Access, Session, TOKEN_PREFIX};
use crate::errors::ApiError;
use crate::state::AppState;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "agx_session";
/// The header that carries a session's CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";

pub const UNAUTHORIZED: ApiError = ApiError::new(
    StatusCode::UNAUTHORIZED,
    "UNAUTHORIZED",
    "A valid admin token, dashboard token or session is required",
);
pub const BAD_CSRF: ApiError =
    ApiError::new(StatusCode::FORBIDDEN, "CSRF_TOKEN_INVALID", "The request lacks this session's X-CSRF-Token");
pub const ADMIN_ONLY: ApiError = ApiError::new(StatusCode::FORBIDDEN, "FORBIDDEN", "Only the admin token may do this");
pub const TOO_MANY_TRIES: ApiError = ApiError::new(
    StatusCode::TOO_MANY_REQUESTS,
    "TOO_MANY_ATTEMPTS",
    "Too many wrong tokens from this address; wait a minute",
);
pub const NO_ORG: ApiError = ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", "No such organization");

/// The admin API's caller, as the guard found it: what it may reach, and
/// who it is for the audit log.
#[derive(Clone, Debug)]
pub struct Caller(pub Access, pub Actor);

impl Caller {
    /// `org`, if the caller may reach it; otherwise 404, as for an org that
    /// does not exist.
    pub fn org<'a>(&self, org: &'a str) -> Result<&'a str, ApiError> {
        if self.0.allows(org) { Ok(org) } else { Err(NO_ORG) }
    }

    /// Only for the admin token.
    pub fn admin(&self) -> Result<(), ApiError> {
        if self.0 == Access::All { Ok(()) } else { Err(ADMIN_ONLY) }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        // Without the guard there is nobody: fail closed.
        parts.extensions.get::<Caller>().cloned().ok_or(UNAUTHORIZED)
    }
}

/// The value of cookie `name` in the request's `Cookie` headers, if it is
/// there once. Twice is none: a cookie planted for a narrower path (or by a
/// sibling subdomain) is sent first, and taking it would sign the browser
/// into the planter's session.
pub fn cookie<'h>(headers: &'h http::HeaderMap, name: &str) -> Option<&'h str> {
    let mut found = headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| cookie::Cookie::split_parse(v).filter_map(Result::ok))
        .filter(|c| c.name() == name)
        .map(|c| c.value_raw().unwrap_or_default());
    let first = found.next()?;
    if found.next().is_some() { None } else { Some(first) }
}

/// The live session of this request's cookie, if any.
pub async fn session_of(state: &AppState, headers: &http::HeaderMap) -> Result<Option<Session>, ApiError> {
    let Some(value) = cookie(headers, SESSION_COOKIE) else { return Ok(None) };
    state.dashboard.session(value).await.map_err(|e| {
        tracing::warn!(error = %e, "dashboard sessions unavailable");
        ApiError::UNAVAILABLE
    })
}

/// Whether `given` is the session's CSRF token, in constant time.
pub fn csrf_ok(session: &Session, given: Option<&[u8]>) -> bool {
    given.is_some_and(|g| bool::from(g.ct_eq(session.csrf.as_bytes())))
}

/// What a bearer token signs in as, if anything.
pub async fn bearer_access(state: &AppState, token: &[u8]) -> Result<Option<(Access, Option<String>)>, ApiError> {
    if bool::from(token.ct_eq(state.admin_token.as_bytes())) {
        return Ok(Some((Access::All, None)));
    }
    let Some(token) = std::str::from_utf8(token).ok().filter(|t| t.starts_with(TOKEN_PREFIX)) else {
        return Ok(None);
    };
    let found = state.dashboard.token(token).await.map_err(|e| {
        tracing::warn!(error = %e, "dashboard tokens unavailable");
        ApiError::UNAVAILABLE
    })?;
    Ok(found.map(|t| (Access::Org(t.org), Some(t.id))))
}

/// The audit log's name for a caller: its dashboard token, or the admin token.
fn actor(token: Option<String>) -> Actor {
    token.map_or(Actor::AdminToken, Actor::DashboardToken)
}

/// The admin API's guard: resolves the [`Caller`] or answers 401 (403 for a
/// session call without its CSRF token).
pub async fn guard(State(state): State<Arc<AppState>>, mut req: Request, next: Next) -> Response {
    let headers = req.headers();
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let access = if let Some(value) = headers.get(http::header::AUTHORIZATION) {
        if peer.is_some_and(|ip| !state.sign_ins.allows(ip)) {
            return TOO_MANY_TRIES.into_response();
        }
        let found = match value.as_bytes().strip_prefix(b"Bearer ") {
            Some(token) => match bearer_access(&state, token).await {
                Ok(found) => found.map(|(access, token)| (access, actor(token))),
                Err(e) => return e.into_response(),
            },
            None => None,
        };
        if found.is_none()
            && let Some(ip) = peer
        {
            state.sign_ins.failed(ip);
        }
        found
    } else {
        match session_of(&state, headers).await {
            Ok(Some(session)) => {
                if !csrf_ok(&session, headers.get(CSRF_HEADER).map(|v| v.as_bytes())) {
                    return BAD_CSRF.into_response();
                }
                Some((session.access, actor(session.token_id)))
            }
            Ok(None) => None,
            Err(e) => return e.into_response(),
        }
    };
    match access {
        Some((access, actor)) => {
            req.extensions_mut().insert(Caller(access, actor));
            next.run(req).await
        }
        None => UNAUTHORIZED.into_response(),
    }
}
