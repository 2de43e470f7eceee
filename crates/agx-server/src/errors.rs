//! The API's own errors, in the same envelope as the authentication errors:
//! `{"error":{"code":…,"message":…}}`, and the extractors that turn axum's
//! rejections into them.
//!
//! Every message is a `&'static str`: no request value (a field, a name, a
//! key pasted into the wrong place) can reach an error body, by type. What
//! went wrong in detail is logged at debug level, by category and position,
//! never by value.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::de::DeserializeOwned;

/// One of the API's documented errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: &'static str,
}

impl ApiError {
    pub const fn new(status: StatusCode, code: &'static str, message: &'static str) -> Self {
        ApiError { status, code, message }
    }

    /// 404 `NOT_FOUND` for a path no router declares: the core's refusal of
    /// an undeclared route, so that a path under the public API and one
    /// outside it are answered alike.
    pub fn no_route() -> Self {
        let doc = agx_auth::AuthError::RouteNotFound.doc();
        ApiError::new(doc.status, doc.code, doc.message)
    }

    /// 400 `INVALID_REQUEST_DATA` with a constant explanation.
    pub const fn invalid(message: &'static str) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "INVALID_REQUEST_DATA", message)
    }

    pub const INVALID_JSON: ApiError =
        ApiError::new(StatusCode::BAD_REQUEST, "INVALID_JSON", "The body is not valid JSON");
    pub const NOT_JSON: ApiError = ApiError::new(
        StatusCode::BAD_REQUEST,
        "INVALID_JSON",
        "The body must be JSON (Content-Type: application/json)",
    );
    pub const WRONG_SHAPE: ApiError =
        ApiError::invalid("The body does not have the documented fields and types (see /openapi.json)");
    pub const BAD_QUERY: ApiError = ApiError::invalid("The query parameters are not valid (see /openapi.json)");
    pub const BAD_PATH: ApiError = ApiError::invalid("A path segment is not valid");
    pub const TOO_LARGE: ApiError =
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE", "The body is too large");
    pub const METHOD_NOT_ALLOWED: ApiError =
        ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED", "The route does not take this method");
    pub const UNAVAILABLE: ApiError =
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "SERVICE_UNAVAILABLE", "The service is temporarily unavailable");
    pub const TIMEOUT: ApiError =
        ApiError::new(StatusCode::REQUEST_TIMEOUT, "REQUEST_TIMEOUT", "The request took too long");
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        (self.status, axum::Json(body)).into_response()
    }
}

/// A JSON body whose every refusal is the API's: 400 `INVALID_JSON` for a
/// body that is not JSON (or not declared as JSON), 400
/// `INVALID_REQUEST_DATA` for JSON of the wrong shape, 413 past the body
/// limit. serde's own message is not sent back: it quotes the input.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(ApiError::NOT_JSON);
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE { ApiError::TOO_LARGE } else { ApiError::INVALID_JSON }
        })?;
        // Every body this server takes is an object. serde would also read
        // a struct from an array of its fields in order (`[null, null]`), a
        // form no document describes, so anything but an object is refused
        // before it is parsed.
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            let well_formed = serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).is_ok();
            return Err(if well_formed { ApiError::WRONG_SHAPE } else { ApiError::INVALID_JSON });
        }
        serde_json::from_slice(&bytes).map(JsonBody).map_err(|e| {
            // Where, and of which kind: never what.
            tracing::debug!(category = ?e.classify(), line = e.line(), column = e.column(), "refused a JSON body");
            match e.classify() {
                serde_json::error::Category::Data => ApiError::WRONG_SHAPE,
                _ => ApiError::INVALID_JSON,
            }
        })
    }
}

/// `application/json`, or any `+json` type, with or without parameters.
fn is_json(headers: &http::HeaderMap) -> bool {
    let Some(value) = headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else { return false };
    let essence = value.split(';').next().unwrap_or("").trim();
    let Some((kind, subtype)) = essence.split_once('/') else { return false };
    kind.eq_ignore_ascii_case("application")
        && (subtype.eq_ignore_ascii_case("json")
            || subtype.len() > 5 && subtype[subtype.len() - 5..].eq_ignore_ascii_case("+json"))
}

/// `Query<T>` whose refusal is 400 `INVALID_REQUEST_DATA` in the envelope.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(QueryParams(value)),
            Err(_) => Err(ApiError::BAD_QUERY),
        }
    }
}

/// `Path<T>` whose refusal (a segment that does not decode to UTF-8, say)
/// is 400 `INVALID_REQUEST_DATA` in the envelope, not axum's plain text.
pub struct PathParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for PathParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(PathParams(value)),
            Err(_) => Err(ApiError::BAD_PATH),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_content_types() {
        let with = |v: &'static str| {
            let mut h = http::HeaderMap::new();
            h.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static(v));
            is_json(&h)
        };
        assert!(with("application/json"));
        assert!(with("Application/JSON; charset=utf-8"));
        assert!(with("application/merge-patch+json"));
        assert!(!with("text/plain"));
        assert!(!with("application/jsonx"));
        assert!(!with("application/+json"));
        assert!(!is_json(&http::HeaderMap::new()));
    }
}
