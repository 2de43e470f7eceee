//! Every way a request is refused, each with its documented status, code and
//! message (the page's error table, and ours where the page is silent). This
//! table is the only place those strings are written.

use std::time::Duration;

use http::StatusCode;

use crate::route::Scope;

/// How one error is documented.
#[derive(Debug)]
pub struct ErrorDoc {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: &'static str,
    /// `{"error":{"code":…,"message":…}}`, built at compile time.
    pub envelope: &'static str,
}

macro_rules! doc {
    ($status:ident, $code:literal, $message:literal) => {
        ErrorDoc {
            status: StatusCode::$status,
            code: $code,
            message: $message,
            envelope: concat!(r#"{"error":{"code":""#, $code, r#"","message":""#, $message, r#""}}"#),
        }
    };
}

static MISSING_API_KEY: ErrorDoc = doc!(UNAUTHORIZED, "MISSING_API_KEY", "No API key provided in the request");
static INVALID_API_KEY: ErrorDoc =
    doc!(UNAUTHORIZED, "INVALID_API_KEY", "The API key is not valid or has been deleted");
static EXPIRED_API_KEY: ErrorDoc = doc!(UNAUTHORIZED, "EXPIRED_API_KEY", "The API key has expired");
static NETWORK_NOT_ALLOWED: ErrorDoc =
    doc!(FORBIDDEN, "NETWORK_NOT_ALLOWED", "The request comes from a network this API key is not allowed to use");
static AGENT_NOT_FOUND: ErrorDoc = doc!(NOT_FOUND, "AGENT_NOT_FOUND", "The agent does not exist");
static TEAM_NOT_FOUND: ErrorDoc = doc!(NOT_FOUND, "TEAM_NOT_FOUND", "The team does not exist");
static ORG_MISMATCH: ErrorDoc = doc!(FORBIDDEN, "ORG_MISMATCH", "The API key belongs to a different organization");
static AGENT_INACTIVE: ErrorDoc = doc!(FORBIDDEN, "AGENT_INACTIVE", "The agent is not active");
static AGENT_NOT_PUBLIC: ErrorDoc =
    doc!(FORBIDDEN, "AGENT_NOT_PUBLIC", "The agent is not available through the public API");
static INSUFFICIENT_SCOPE: ErrorDoc =
    doc!(FORBIDDEN, "INSUFFICIENT_SCOPE", "The API key does not have the required scope");
static DOMAIN_NOT_ALLOWED: ErrorDoc =
    doc!(FORBIDDEN, "DOMAIN_NOT_ALLOWED", "The request origin is not allowed for this agent");
static RATE_LIMITED: ErrorDoc =
    doc!(TOO_MANY_REQUESTS, "RATE_LIMITED", "Too many requests, retry after the specified delay");
static CREDITS_EXHAUSTED: ErrorDoc = doc!(FORBIDDEN, "CREDITS_EXHAUSTED", "The API key has no usage credits left");
static ROUTE_NOT_FOUND: ErrorDoc = doc!(NOT_FOUND, "NOT_FOUND", "No such route");
static AUTH_UNAVAILABLE: ErrorDoc = doc!(
    SERVICE_UNAVAILABLE,
    "AUTH_UNAVAILABLE",
    "Authentication is temporarily unavailable, retry after the specified delay"
);

/// Why a request was refused. The variant names the step of contract §3 that
/// failed; [`AuthError::doc`] gives what the client sees.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthError {
    /// 401 `MISSING_API_KEY`: no credential (step 1).
    MissingApiKey,
    /// 401 `INVALID_API_KEY`: malformed, conflicting, unknown or deleted (steps 2, 3).
    InvalidApiKey,
    /// 401 `EXPIRED_API_KEY` (step 4).
    ExpiredApiKey,
    /// 403 `NETWORK_NOT_ALLOWED`: the key is limited to networks and the
    /// client's address is in none of them, or cannot be told (after step 4).
    NetworkNotAllowed,
    /// 404 `AGENT_NOT_FOUND` (step 5).
    AgentNotFound,
    /// 404 `TEAM_NOT_FOUND` (step 5).
    TeamNotFound,
    /// 403 `ORG_MISMATCH` (step 6).
    OrgMismatch,
    /// 403 `AGENT_INACTIVE` (step 6b).
    AgentInactive,
    /// 403 `AGENT_NOT_PUBLIC` (step 6b).
    AgentNotPublic,
    /// 403 `INSUFFICIENT_SCOPE` (step 7).
    InsufficientScope { required: Scope },
    /// 403 `DOMAIN_NOT_ALLOWED` (step 8).
    DomainNotAllowed,
    /// 429 `RATE_LIMITED` (step 9).
    RateLimited { retry_after: Duration },
    /// 403 `CREDITS_EXHAUSTED`: the key carries usage credits and has too
    /// few left for the route (after step 9, so a rate-limited request
    /// never spends one). A 403 and not a 429: a client retries a 429,
    /// which cannot succeed until a refill, if the key has one at all.
    CreditsExhausted,
    /// 404 `NOT_FOUND`: the route table does not declare the path or the
    /// method, under [`Unmatched::Refuse`](crate::Unmatched::Refuse) (after
    /// steps 1 to 4, so that a caller without a key learns nothing of which
    /// paths exist).
    RouteNotFound,
    /// 503 `AUTH_UNAVAILABLE`: the store or limiter backend cannot answer.
    Unavailable { retry_after: Duration },
}

impl AuthError {
    pub fn doc(&self) -> &'static ErrorDoc {
        match self {
            AuthError::MissingApiKey => &MISSING_API_KEY,
            AuthError::InvalidApiKey => &INVALID_API_KEY,
            AuthError::ExpiredApiKey => &EXPIRED_API_KEY,
            AuthError::NetworkNotAllowed => &NETWORK_NOT_ALLOWED,
            AuthError::AgentNotFound => &AGENT_NOT_FOUND,
            AuthError::TeamNotFound => &TEAM_NOT_FOUND,
            AuthError::OrgMismatch => &ORG_MISMATCH,
            AuthError::AgentInactive => &AGENT_INACTIVE,
            AuthError::AgentNotPublic => &AGENT_NOT_PUBLIC,
            AuthError::InsufficientScope { .. } => &INSUFFICIENT_SCOPE,
            AuthError::DomainNotAllowed => &DOMAIN_NOT_ALLOWED,
            AuthError::RateLimited { .. } => &RATE_LIMITED,
            AuthError::CreditsExhausted => &CREDITS_EXHAUSTED,
            AuthError::RouteNotFound => &ROUTE_NOT_FOUND,
            AuthError::Unavailable { .. } => &AUTH_UNAVAILABLE,
        }
    }

    pub fn status(&self) -> StatusCode {
        self.doc().status
    }

    pub fn code(&self) -> &'static str {
        self.doc().code
    }

    pub fn message(&self) -> &'static str {
        self.doc().message
    }

    /// `Retry-After` in whole seconds, rounded up and at least 1, so that a
    /// client that waits exactly that long is admitted.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            AuthError::RateLimited { retry_after } | AuthError::Unavailable { retry_after } => {
                Some(ceil_secs(*retry_after).max(1))
            }
            _ => None,
        }
    }

    /// Every documented error, for reference tables and tests.
    pub fn all_docs() -> [&'static ErrorDoc; 15] {
        [
            &MISSING_API_KEY,
            &INVALID_API_KEY,
            &EXPIRED_API_KEY,
            &NETWORK_NOT_ALLOWED,
            &AGENT_NOT_FOUND,
            &TEAM_NOT_FOUND,
            &ORG_MISMATCH,
            &AGENT_INACTIVE,
            &AGENT_NOT_PUBLIC,
            &INSUFFICIENT_SCOPE,
            &DOMAIN_NOT_ALLOWED,
            &RATE_LIMITED,
            &CREDITS_EXHAUSTED,
            &ROUTE_NOT_FOUND,
            &AUTH_UNAVAILABLE,
        ]
    }
}

impl std::fmt::Display for AuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code(), self.message())
    }
}

impl std::error::Error for AuthError {}

pub(crate) fn ceil_secs(d: Duration) -> u64 {
    d.as_secs().saturating_add(u64::from(d.subsec_nanos() > 0))
}
