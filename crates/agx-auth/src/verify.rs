//! The verify API's question: "would this key be let through here?", asked
//! by a service that holds the key itself (a body field, a queue message, a
//! WebSocket handshake) instead of a gateway holding a request.
//!
//! The answer is the verdict of [`Authenticator::authenticate`], spending
//! the same budget, because the key is presented to the same checks as an
//! `X-API-Key` header would be: an empty key is missing (401
//! `MISSING_API_KEY`), one with spaces or control characters is invalid,
//! exactly as on the wire. What is asked about is either a request (method
//! and path, classified by the route table) or a permission (a scope and a
//! class the table declares, and optionally the agent or team acted on).

use std::fmt;

use http::Method;

use crate::authenticator::{Authenticator, Outcome};
use crate::forward::origin_form_path;
use crate::request::{RequestHeader, RequestHeaders};
use crate::route::{Resource, RouteMatch};

/// One verify call.
#[derive(Clone, Debug)]
pub struct VerifyRequest<'a> {
    /// The key as the client sent it; `None` when it sent none.
    pub key: Option<&'a str>,
    pub target: VerifyTarget<'a>,
    /// The client's `Origin`, for agents with allowed domains.
    pub origin: Option<&'a str>,
    /// The client's address as the calling service saw it, for keys
    /// limited to networks. Believed only when the service calls from a
    /// trusted proxy's address ([`crate::ClientAddresses::vouched`]).
    pub client: Option<std::net::IpAddr>,
    /// The address the verify call itself came from.
    pub caller: Option<std::net::IpAddr>,
}

/// What the key is to be judged for.
#[derive(Clone, Debug)]
pub enum VerifyTarget<'a> {
    /// A request the service received: classified by the route table like
    /// any other, so an undeclared one gets the table's
    /// [`Unmatched`](crate::Unmatched) policy. The path may carry a query,
    /// which is dropped.
    Request { method: Method, path: &'a str },
    /// A permission, for a service whose routes are not in the table: a
    /// scope and an endpoint class that some declared route requires
    /// together.
    Permission { scope: &'a str, class: &'a str, resource: Resource<'a> },
}

/// The question cannot be asked: nothing was judged and no budget spent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerifyError {
    /// The path does not start with `/` or is not visible ASCII.
    BadPath,
    /// No declared route requires a scope of this name.
    UnknownScope,
    /// No declared route uses an endpoint class of this name.
    UnknownClass,
    /// Both names are declared, but no route requires this scope in this
    /// class.
    UnpairedPermission,
}

impl VerifyError {
    /// A fixed text: never the value that was refused.
    pub fn message(self) -> &'static str {
        match self {
            VerifyError::BadPath => "path must be an origin-form path: `/`, then visible ASCII",
            VerifyError::UnknownScope => "scope must be a scope the route table declares",
            VerifyError::UnknownClass => "class must be an endpoint class the route table declares",
            VerifyError::UnpairedPermission => "scope and class must be paired on some route the table declares",
        }
    }
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for VerifyError {}

/// The key and origin of a verify call, read by the checks as the
/// `X-API-Key` and `Origin` headers: one credential path for both.
struct Presented<'a> {
    key: Option<&'a [u8]>,
    origin: Option<&'a [u8]>,
    client: Option<std::net::IpAddr>,
}

impl RequestHeaders for Presented<'_> {
    fn values(&self, header: RequestHeader) -> impl Iterator<Item = &[u8]> {
        match header {
            RequestHeader::XApiKey => self.key,
            RequestHeader::Origin => self.origin,
            // Never a preflight, and one credential only; the client's
            // address is given, not forwarded.
            RequestHeader::Authorization
            | RequestHeader::AccessControlRequestMethod
            | RequestHeader::XForwardedFor
            | RequestHeader::Forwarded => None,
        }
        .into_iter()
    }

    fn peer(&self) -> Option<std::net::IpAddr> {
        self.client
    }
}

impl Authenticator {
    /// Judges a key for a request or a permission, as
    /// [`Authenticator::authenticate`] would judge a request carrying it in
    /// `X-API-Key`: the same order of checks, the same refusals (rendered),
    /// the same budget spent.
    pub async fn verify_key(&self, request: &VerifyRequest<'_>) -> Result<Outcome, VerifyError> {
        // An HTTP parser strips the whitespace around a header's value; so
        // does this, for the origin (the key's is trimmed by the checks).
        let origin = request.origin.map(|o| o.trim_matches([' ', '\t']).as_bytes());
        let client = self.client_addresses().vouched(request.caller, request.client);
        let presented = Presented { key: request.key.map(str::as_bytes), origin, client };
        match &request.target {
            VerifyTarget::Request { method, path } => {
                let path = origin_form_path(path).ok_or(VerifyError::BadPath)?;
                Ok(self.authenticate(method, path, &presented).await)
            }
            VerifyTarget::Permission { scope, class, resource } => {
                let routes = self.routes();
                routes.scope_named(scope).ok_or(VerifyError::UnknownScope)?;
                routes.class_named(class).ok_or(VerifyError::UnknownClass)?;
                let (scope, class, cost) = routes.permission(scope, class).ok_or(VerifyError::UnpairedPermission)?;
                Ok(self.judge(Some(RouteMatch { resource: *resource, scope, class, cost }), &presented).await)
            }
        }
    }
}
