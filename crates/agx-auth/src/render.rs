//! Error bodies. The renderer is the one thing a host application most often
//! wants to change, so it is a trait; status and headers stay the core's.

use bytes::Bytes;
use http::HeaderValue;

use crate::error::AuthError;

/// A rendered error body and its media type.
#[derive(Clone, Debug)]
pub struct RenderedError {
    pub content_type: HeaderValue,
    pub body: Bytes,
}

pub trait ErrorRenderer: Send + Sync + 'static {
    fn render(&self, error: &AuthError) -> RenderedError;
}

/// The Agentix envelope, `{"error":{"code":"…","message":"…"}}`. Bodies are
/// compile-time constants, so a flood of bad keys costs no allocation.
#[derive(Clone, Copy, Debug, Default)]
pub struct JsonEnvelope;

impl ErrorRenderer for JsonEnvelope {
    fn render(&self, error: &AuthError) -> RenderedError {
        RenderedError {
            content_type: HeaderValue::from_static("application/json"),
            body: Bytes::from_static(error.doc().envelope.as_bytes()),
        }
    }
}

/// RFC 9457 problem details: `type` is `about:blank`, so `title` is the
/// status's reason phrase; `detail` is the documented message and `code` the
/// documented code, as an extension member.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProblemJson;

impl ErrorRenderer for ProblemJson {
    fn render(&self, error: &AuthError) -> RenderedError {
        let doc = error.doc();
        let body = format!(
            r#"{{"type":"about:blank","title":"{}","status":{},"detail":"{}","code":"{}"}}"#,
            doc.status.canonical_reason().unwrap_or(""),
            doc.status.as_u16(),
            doc.message,
            doc.code,
        );
        RenderedError { content_type: HeaderValue::from_static("application/problem+json"), body: body.into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn envelope_is_the_documented_json() {
        let r = JsonEnvelope.render(&AuthError::ExpiredApiKey);
        assert_eq!(r.content_type, "application/json");
        assert_eq!(&r.body[..], br#"{"error":{"code":"EXPIRED_API_KEY","message":"The API key has expired"}}"#);
    }

    #[test]
    fn problem_json_carries_status_detail_and_code() {
        let r = ProblemJson.render(&AuthError::RateLimited { retry_after: Duration::from_secs(1) });
        assert_eq!(r.content_type, "application/problem+json");
        assert_eq!(
            &r.body[..],
            br#"{"type":"about:blank","title":"Too Many Requests","status":429,"detail":"Too many requests, retry after the specified delay","code":"RATE_LIMITED"}"#
        );
    }
}
