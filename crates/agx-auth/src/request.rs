//! Read access to a request's headers, without copying them.
//!
//! The core reads a few headers. Frameworks with header types of their own
//! (actix-web's are built on `http` 0.2) implement [`RequestHeaders`] on a
//! thin wrapper instead of copying every header into an `http::HeaderMap`
//! on every request.

use http::HeaderMap;
use std::net::IpAddr;

use http::header::{ACCESS_CONTROL_REQUEST_METHOD, AUTHORIZATION, FORWARDED, HeaderName, ORIGIN};

/// Built at compile time: `from_static` in a plain function would check the
/// name again on every request.
const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The headers the core reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestHeader {
    Authorization,
    XApiKey,
    Origin,
    AccessControlRequestMethod,
    /// Read only from trusted proxies, for keys limited to networks.
    XForwardedFor,
    /// The same, when the proxies write RFC 7239's header.
    Forwarded,
}

impl RequestHeader {
    /// The lowercase header name.
    pub const fn name(self) -> &'static str {
        match self {
            RequestHeader::Authorization => "authorization",
            RequestHeader::XApiKey => "x-api-key",
            RequestHeader::Origin => "origin",
            RequestHeader::AccessControlRequestMethod => "access-control-request-method",
            RequestHeader::XForwardedFor => "x-forwarded-for",
            RequestHeader::Forwarded => "forwarded",
        }
    }

    fn header_name(self) -> HeaderName {
        match self {
            RequestHeader::Authorization => AUTHORIZATION,
            RequestHeader::XApiKey => X_API_KEY,
            RequestHeader::Origin => ORIGIN,
            RequestHeader::AccessControlRequestMethod => ACCESS_CONTROL_REQUEST_METHOD,
            RequestHeader::XForwardedFor => X_FORWARDED_FOR,
            RequestHeader::Forwarded => FORWARDED,
        }
    }
}

/// Every value of one header, in the order received, as raw bytes; and the
/// address the request's connection came from, when the adapter knows it.
pub trait RequestHeaders {
    fn values(&self, header: RequestHeader) -> impl Iterator<Item = &[u8]>;

    /// The connection's remote address. `None` (the default) means
    /// unknown, and a key limited to networks is then refused.
    fn peer(&self) -> Option<IpAddr> {
        None
    }
}

/// Headers and the connection's address together: what an adapter passes
/// when it knows where the request came from.
#[derive(Clone, Copy, Debug)]
pub struct FromPeer<'h, H: ?Sized> {
    pub headers: &'h H,
    pub peer: Option<IpAddr>,
}

impl<'h, H: RequestHeaders + ?Sized> FromPeer<'h, H> {
    pub fn new(headers: &'h H, peer: Option<IpAddr>) -> Self {
        FromPeer { headers, peer }
    }
}

impl<H: RequestHeaders + ?Sized> RequestHeaders for FromPeer<'_, H> {
    fn values(&self, header: RequestHeader) -> impl Iterator<Item = &[u8]> {
        self.headers.values(header)
    }

    fn peer(&self) -> Option<IpAddr> {
        self.peer
    }
}

impl RequestHeaders for HeaderMap {
    fn values(&self, header: RequestHeader) -> impl Iterator<Item = &[u8]> {
        self.get_all(header.header_name()).into_iter().map(|v| v.as_bytes())
    }
}
