//! Forward auth: the verdict on a request that a gateway (nginx
//! `auth_request`, Traefik `ForwardAuth`, Envoy `ext_authz`) is holding, as
//! the response that gateway expects, so that services in any language get
//! the same verdicts as an in-process adapter.
//!
//! The gateway sends the original request's headers (the credential, the
//! `Origin`) and says which request it holds: nginx in `X-Original-Method`
//! and `X-Original-URI` (set by its configuration), Traefik in
//! `X-Forwarded-Method` and `X-Forwarded-Uri`, Envoy by forwarding the
//! original method and path itself. [`original_request`] reads the first two
//! kinds, each only for its own gateway (a client behind Traefik can send
//! `X-Original-URI` too, and Traefik passes it on: read there, it would let
//! the client choose the route it is judged for);
//! [`Authenticator::forward`](crate::Authenticator::forward) judges.
//!
//! An admitted request is answered 200 with the principal in
//! [`PRINCIPAL_HEADERS`] for the upstream (never the key) and the rate-limit
//! fields for the client. A refused one is answered as [`GatewayStyle`] says:
//! Traefik and Envoy pass the auth response to the client as it is, so it is
//! the finished rejection; nginx passes on only 401 and 403 and never the
//! body, so it gets a 403 carrying the real status and body in headers, and
//! its configuration answers with them (docs/guides/nginx.md).

use std::fmt;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode};

use crate::authenticator::{Outcome, Principal};

/// The method of the request nginx holds (its configuration sets it from
/// `$request_method`).
pub const X_ORIGINAL_METHOD: HeaderName = HeaderName::from_static("x-original-method");
/// The raw URI of the request nginx holds (from `$request_uri`: not
/// normalised, so the verdict sees the path the client sent).
pub const X_ORIGINAL_URI: HeaderName = HeaderName::from_static("x-original-uri");
/// Traefik's `ForwardAuth` names for the same two facts.
pub const X_FORWARDED_METHOD: HeaderName = HeaderName::from_static("x-forwarded-method");
pub const X_FORWARDED_URI: HeaderName = HeaderName::from_static("x-forwarded-uri");

/// The verified caller's organization id.
pub const X_AGX_ORG: HeaderName = HeaderName::from_static("x-agx-org");
/// The key's id (`key_` and 32 hex digits), never the key.
pub const X_AGX_KEY_ID: HeaderName = HeaderName::from_static("x-agx-key-id");
/// The key's name, percent-encoded (UTF-8; every byte outside visible ASCII,
/// and `%` itself, as `%XX`).
pub const X_AGX_KEY_NAME: HeaderName = HeaderName::from_static("x-agx-key-name");
/// The key's scopes, comma-separated; `*` for a key with every scope.
pub const X_AGX_SCOPES: HeaderName = HeaderName::from_static("x-agx-scopes");
/// `live` or `test`.
pub const X_AGX_MODE: HeaderName = HeaderName::from_static("x-agx-mode");
/// On an nginx-style refusal: the status the client is to get.
pub const X_AGX_STATUS: HeaderName = HeaderName::from_static("x-agx-status");
/// On an nginx-style refusal: the body the client is to get.
pub const X_AGX_BODY: HeaderName = HeaderName::from_static("x-agx-body");

/// Every header the principal travels in. A gateway must overwrite or
/// remove these on the request it forwards, so that a client cannot send
/// its own (the guides' configurations do).
pub const PRINCIPAL_HEADERS: [HeaderName; 5] = [X_AGX_ORG, X_AGX_KEY_ID, X_AGX_KEY_NAME, X_AGX_SCOPES, X_AGX_MODE];

/// A gateway that names the request it holds in headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gateway {
    /// `X-Original-Method` and `X-Original-URI`, which its configuration
    /// sets with `proxy_set_header` (so a client's own are overwritten).
    Nginx,
    /// `X-Forwarded-Method` and `X-Forwarded-Uri`, which Traefik sets from
    /// the request it holds (with `trustForwardHeader` off, its default).
    Traefik,
}

impl Gateway {
    fn headers(self) -> (HeaderName, HeaderName) {
        match self {
            Gateway::Nginx => (X_ORIGINAL_METHOD, X_ORIGINAL_URI),
            Gateway::Traefik => (X_FORWARDED_METHOD, X_FORWARDED_URI),
        }
    }

    /// How this gateway wants refusals: nginx passes on only 401 and 403.
    pub fn style(self) -> GatewayStyle {
        match self {
            Gateway::Nginx => GatewayStyle::StatusInHeaders,
            Gateway::Traefik => GatewayStyle::Verbatim,
        }
    }
}

/// How a refusal is answered to the gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GatewayStyle {
    /// The finished rejection, as an in-process adapter sends it: for
    /// gateways that hand the auth response to the client (Traefik, Envoy).
    Verbatim,
    /// 403 with the real status in `X-Agx-Status`, the body in `X-Agx-Body`
    /// and the contract's fields as they are: for nginx, which passes on only
    /// 401 and 403, drops the body, and on a 401 copies `WWW-Authenticate`
    /// itself.
    StatusInHeaders,
}

/// The gateway did not say, or said unreadably, which request it holds: a
/// configuration error, answered 400 so that the gateway refuses the
/// request (fail closed) and its log says why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForwardError {
    /// No method header for the gateway, or it repeats.
    NoMethod,
    /// The method is not a valid HTTP method token.
    BadMethod,
    /// No URI header for the gateway, or it repeats.
    NoUri,
    /// The URI is not visible ASCII, or does not start with `/`.
    BadUri,
}

impl ForwardError {
    /// A fixed text for the gateway's log: never the header's value.
    pub fn message(self) -> &'static str {
        match self {
            ForwardError::NoMethod => {
                "the gateway sent no original method (X-Original-Method for nginx, X-Forwarded-Method for Traefik)"
            }
            ForwardError::BadMethod => "the gateway's original method is not an HTTP method",
            ForwardError::NoUri => {
                "the gateway sent no original URI (X-Original-URI for nginx, X-Forwarded-Uri for Traefik)"
            }
            ForwardError::BadUri => "the gateway's original URI is not an origin-form path",
        }
    }
}

impl fmt::Display for ForwardError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for ForwardError {}

/// The method and path (the query dropped: keys in URLs are never read) of
/// the request `gateway` holds, from that gateway's headers only.
pub fn original_request(headers: &HeaderMap, gateway: Gateway) -> Result<(Method, &str), ForwardError> {
    let (method_header, uri_header) = gateway.headers();
    let method = single(headers, &method_header).ok_or(ForwardError::NoMethod)?;
    let method = Method::from_bytes(method.as_bytes()).map_err(|_| ForwardError::BadMethod)?;
    let uri = single(headers, &uri_header).ok_or(ForwardError::NoUri)?;
    let uri = uri.to_str().map_err(|_| ForwardError::BadUri)?;
    Ok((method, origin_form_path(uri).ok_or(ForwardError::BadUri)?))
}

/// The path of an origin-form request target (`/path?query#fragment`), the
/// query and fragment dropped (keys in URLs are never read); `None` unless
/// it starts with `/` and is visible ASCII, as a path on the wire is.
pub(crate) fn origin_form_path(uri: &str) -> Option<&str> {
    let path = uri.split(['?', '#']).next().unwrap_or("");
    (path.starts_with('/') && uri.bytes().all(|b| (0x21..0x7f).contains(&b))).then_some(path)
}

/// One value of `name`, or none when it is absent or repeated.
fn single<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Option<&'h HeaderValue> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    values.next().is_none().then_some(first)
}

impl Principal {
    /// The principal as [`PRINCIPAL_HEADERS`], for the upstream behind a
    /// gateway.
    pub fn forward_headers(&self) -> [(HeaderName, HeaderValue); 5] {
        let scopes = if self.scopes().is_empty() {
            HeaderValue::from_static("*")
        } else {
            let joined = self.scopes().iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",");
            // Scopes are route-table names; one that is not a header value
            // cannot be granted to anyone through a gateway.
            HeaderValue::try_from(joined).unwrap_or_else(|_| HeaderValue::from_static(""))
        };
        [
            (X_AGX_ORG, text_value(self.org())),
            (X_AGX_KEY_ID, HeaderValue::try_from(self.key_id().to_string()).expect("a key id is ASCII")),
            (X_AGX_KEY_NAME, text_value(self.key_name())),
            (X_AGX_SCOPES, scopes),
            (X_AGX_MODE, HeaderValue::from_static(self.mode().as_str())),
        ]
    }
}

/// `text` percent-encoded where it is not visible ASCII (and `%` itself), so
/// that any name or id fits in a header and decodes back exactly.
pub fn text_value(text: &str) -> HeaderValue {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if (0x21..0x7f).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    HeaderValue::try_from(out).expect("visible ASCII is a header value")
}

/// The answer for a gateway: 200 with the principal and the rate-limit
/// fields, 200 with nothing for a request that is not ours to judge, or
/// the refusal in `style`.
pub(crate) fn response(outcome: Outcome, style: GatewayStyle) -> Response<Bytes> {
    match outcome {
        Outcome::Allow(grant) => {
            let mut response = Response::new(Bytes::new());
            let headers = response.headers_mut();
            for (name, value) in grant.principal().forward_headers() {
                headers.insert(name, value);
            }
            grant.apply_headers(headers);
            response
        }
        Outcome::PassThrough => Response::new(Bytes::new()),
        Outcome::Deny(rejection) => match style {
            GatewayStyle::Verbatim => rejection.into_response(),
            GatewayStyle::StatusInHeaders => in_headers(rejection.into_response()),
        },
    }
}

fn in_headers(rejection: Response<Bytes>) -> Response<Bytes> {
    let (mut parts, body) = rejection.into_parts();
    parts.headers.insert(X_AGX_STATUS, HeaderValue::from(parts.status.as_u16()));
    // The envelope is ASCII; a custom renderer's body that is not cannot
    // travel in a header, and the gateway answers its own 403 instead.
    if let Ok(body) = HeaderValue::from_maybe_shared(body) {
        parts.headers.insert(X_AGX_BODY, body);
    }
    parts.headers.remove(CONTENT_TYPE);
    parts.status = StatusCode::FORBIDDEN;
    Response::from_parts(parts, Bytes::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Rejection;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn each_gateway_names_the_request_in_its_own_headers_and_the_query_is_dropped() {
        let nginx =
            headers(&[("x-original-method", "POST"), ("x-original-uri", "/api/public/agents/a/chat?api_key=x")]);
        assert_eq!(original_request(&nginx, Gateway::Nginx), Ok((Method::POST, "/api/public/agents/a/chat")));
        let traefik = headers(&[("x-forwarded-method", "GET"), ("x-forwarded-uri", "/api/public/agents//config#f")]);
        assert_eq!(original_request(&traefik, Gateway::Traefik), Ok((Method::GET, "/api/public/agents//config")));
        // A client behind Traefik sending nginx's headers chooses nothing.
        let both = headers(&[
            ("x-original-method", "GET"),
            ("x-forwarded-method", "POST"),
            ("x-original-uri", "/a"),
            ("x-forwarded-uri", "/b"),
        ]);
        assert_eq!(original_request(&both, Gateway::Traefik), Ok((Method::POST, "/b")));
        assert_eq!(original_request(&both, Gateway::Nginx), Ok((Method::GET, "/a")));
        assert_eq!(original_request(&traefik, Gateway::Nginx), Err(ForwardError::NoMethod));
    }

    #[test]
    fn a_gateway_that_does_not_say_is_refused_without_echoing() {
        assert_eq!(
            original_request(&headers(&[("x-original-uri", "/a")]), Gateway::Nginx),
            Err(ForwardError::NoMethod)
        );
        assert_eq!(
            original_request(&headers(&[("x-original-method", "GET")]), Gateway::Nginx),
            Err(ForwardError::NoUri)
        );
        let twice = headers(&[("x-original-method", "GET"), ("x-original-uri", "/a"), ("x-original-uri", "/b")]);
        assert_eq!(original_request(&twice, Gateway::Nginx), Err(ForwardError::NoUri));
        let bad = headers(&[("x-original-method", "G E T"), ("x-original-uri", "/a")]);
        assert_eq!(original_request(&bad, Gateway::Nginx), Err(ForwardError::BadMethod));
        let absolute = headers(&[("x-original-method", "GET"), ("x-original-uri", "http://evil/a")]);
        assert_eq!(original_request(&absolute, Gateway::Nginx), Err(ForwardError::BadUri));
        assert!(!ForwardError::BadUri.message().contains("evil"));
    }

    #[test]
    fn text_values_round_trip_any_name() {
        assert_eq!(text_value("Production Widget"), "Production%20Widget");
        assert_eq!(text_value("100%"), "100%25");
        assert_eq!(text_value("clé"), "cl%C3%A9");
    }

    #[test]
    fn an_nginx_refusal_is_a_403_carrying_the_real_status_and_body() {
        let rejection = Rejection::standalone(crate::AuthError::AgentNotFound);
        let r = in_headers(rejection.into_response());
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert_eq!(r.headers()[X_AGX_STATUS], "404");
        assert_eq!(r.headers()[X_AGX_BODY].as_bytes(), crate::AuthError::AgentNotFound.doc().envelope.as_bytes());
        assert!(r.headers().get(CONTENT_TYPE).is_none());
        assert!(r.body().is_empty());
    }
}
