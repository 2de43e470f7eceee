//! Read access to a request's headers, without copying them.
//!
//! The core reads four headers. Frameworks with header types of their own
//! (actix-web's are built on `http` 0.2) implement [`RequestHeaders`] on a
//! thin wrapper instead of copying every header into an `http::HeaderMap`
//! on every request.

use http::HeaderMap;
use http::header::{ACCESS_CONTROL_REQUEST_METHOD, AUTHORIZATION, HeaderName, ORIGIN};

/// Built at compile time: `from_static` in a plain function would check the
/// name again on every request.
const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");

/// The headers the core reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestHeader {
    Authorization,
    XApiKey,
    Origin,
    AccessControlRequestMethod,
}

impl RequestHeader {
    /// The lowercase header name.
    pub const fn name(self) -> &'static str {
        match self {
            RequestHeader::Authorization => "authorization",
            RequestHeader::XApiKey => "x-api-key",
            RequestHeader::Origin => "origin",
            RequestHeader::AccessControlRequestMethod => "access-control-request-method",
        }
    }

    fn header_name(self) -> HeaderName {
        match self {
            RequestHeader::Authorization => AUTHORIZATION,
            RequestHeader::XApiKey => X_API_KEY,
            RequestHeader::Origin => ORIGIN,
            RequestHeader::AccessControlRequestMethod => ACCESS_CONTROL_REQUEST_METHOD,
        }
    }
}

/// Every value of one header, in the order received, as raw bytes.
pub trait RequestHeaders {
    fn values(&self, header: RequestHeader) -> impl Iterator<Item = &[u8]>;
}

impl RequestHeaders for HeaderMap {
    fn values(&self, header: RequestHeader) -> impl Iterator<Item = &[u8]> {
        self.get_all(header.header_name()).into_iter().map(|v| v.as_bytes())
    }
}
