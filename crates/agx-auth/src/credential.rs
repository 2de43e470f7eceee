//! Reading the credential from request headers (contract §2). No I/O and no
//! allocation: the token is borrowed from the header map.

use crate::request::{RequestHeader, RequestHeaders};

/// The longest credential we accept, once trimmed. A key is 41 bytes; a raw
/// value past 384 bytes (256 and generous whitespace) is refused before it is
/// scanned, so a megabyte header costs one comparison.
pub const MAX_CREDENTIAL_LEN: usize = 256;

/// Why no usable credential was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CredentialError {
    /// Step 1: nothing that could be a key (no header, another scheme, an
    /// empty token, or a key only in the query string, which we never read).
    Missing,
    /// Step 2: something was offered but it cannot be one key: a repeated
    /// header, two different keys, an over-long or non-visible-ASCII value.
    Invalid,
}

/// Finds the one key a request offers, from `Authorization: Bearer` or
/// `X-API-Key`. Both may be present when they agree; when they disagree we
/// refuse rather than guess which was meant.
pub fn extract_credential<H: RequestHeaders + ?Sized>(headers: &H) -> Result<&str, CredentialError> {
    let bearer = single(headers, RequestHeader::Authorization)?.map(bearer_token).transpose()?.flatten();
    let api_key = single(headers, RequestHeader::XApiKey)?.map(token).transpose()?.flatten();
    match (bearer, api_key) {
        (Some(a), Some(b)) if a == b => Ok(a),
        (Some(_), Some(_)) => Err(CredentialError::Invalid),
        (Some(t), None) | (None, Some(t)) => Ok(t),
        (None, None) => Err(CredentialError::Missing),
    }
}

/// The header's only value, or `Invalid` when the header is repeated.
fn single<H: RequestHeaders + ?Sized>(headers: &H, name: RequestHeader) -> Result<Option<&[u8]>, CredentialError> {
    let mut values = headers.values(name);
    let first = values.next();
    if values.next().is_some() {
        return Err(CredentialError::Invalid);
    }
    Ok(first)
}

/// The token of a `Bearer` credential; `None` for any other scheme, which is
/// not ours to read.
fn bearer_token(value: &[u8]) -> Result<Option<&str>, CredentialError> {
    const SCHEME: &[u8] = b"bearer";
    let v = trim_ows(value);
    match v.split_at_checked(SCHEME.len()) {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case(SCHEME) && rest.first().is_none_or(|&b| is_ows(b)) => {
            token(rest)
        }
        _ => Ok(None),
    }
}

/// A trimmed token: `None` when empty, `Invalid` when too long or not visible
/// ASCII. The length test comes first so oversized values are never scanned.
fn token(raw: &[u8]) -> Result<Option<&str>, CredentialError> {
    if raw.len() > MAX_CREDENTIAL_LEN + 2 * 64 {
        // Far too long even with generous surrounding whitespace.
        return Err(CredentialError::Invalid);
    }
    let t = trim_ows(raw);
    if t.is_empty() {
        return Ok(None);
    }
    // Visible ASCII (0x21..=0x7e) only: one branch-free pass the compiler
    // vectorizes, where `all` would stop and test at every byte.
    let graphic = t.iter().fold(true, |ok, &b| ok & (b.wrapping_sub(0x21) < 0x5e));
    if t.len() > MAX_CREDENTIAL_LEN || !graphic {
        return Err(CredentialError::Invalid);
    }
    // Visible ASCII is UTF-8, so this never fails.
    std::str::from_utf8(t).map(Some).map_err(|_| CredentialError::Invalid)
}

fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn trim_ows(mut v: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = v
        && is_ows(*first)
    {
        v = rest;
    }
    while let [rest @ .., last] = v
        && is_ows(*last)
    {
        v = rest;
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use CredentialError::*;
    use http::{HeaderMap, HeaderValue};

    fn headers(pairs: &[(&str, &[u8])]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(http::HeaderName::from_bytes(name.as_bytes()).unwrap(), HeaderValue::from_bytes(value).unwrap());
        }
        h
    }

    #[test]
    fn bearer_scheme_is_case_insensitive_and_whitespace_tolerant() {
        for v in ["Bearer k", "bearer k", "BEARER  k", "Bearer\tk", " Bearer k ", "Bearer \t k"] {
            assert_eq!(extract_credential(&headers(&[("authorization", v.as_bytes())])), Ok("k"), "{v:?}");
        }
    }

    #[test]
    fn other_schemes_and_empty_tokens_are_missing() {
        for v in ["Basic dXNlcjpwYXNz", "Token abc", "Bearer", "Bearer   ", "Bearerabc"] {
            assert_eq!(extract_credential(&headers(&[("authorization", v.as_bytes())])), Err(Missing), "{v:?}");
        }
        assert_eq!(extract_credential(&headers(&[("x-api-key", b"  ")])), Err(Missing));
        assert_eq!(extract_credential(&HeaderMap::new()), Err(Missing));
    }

    #[test]
    fn both_headers_must_agree() {
        let same = headers(&[("authorization", b"Bearer k"), ("x-api-key", b" k ")]);
        assert_eq!(extract_credential(&same), Ok("k"));
        let differ = headers(&[("authorization", b"Bearer k"), ("x-api-key", b"j")]);
        assert_eq!(extract_credential(&differ), Err(Invalid));
        // Another scheme beside an X-API-Key: the API key is the credential.
        let basic = headers(&[("authorization", b"Basic abc"), ("x-api-key", b"j")]);
        assert_eq!(extract_credential(&basic), Ok("j"));
    }

    #[test]
    fn repeats_oversize_and_non_ascii_are_invalid() {
        assert_eq!(extract_credential(&headers(&[("x-api-key", b"a"), ("x-api-key", b"a")])), Err(Invalid));
        assert_eq!(
            extract_credential(&headers(&[("authorization", b"Bearer a"), ("authorization", b"Bearer a")])),
            Err(Invalid)
        );
        let big = vec![b'a'; 1 << 20];
        assert_eq!(extract_credential(&headers(&[("x-api-key", &big)])), Err(Invalid));
        assert_eq!(extract_credential(&headers(&[("x-api-key", &big[..257])])), Err(Invalid));
        assert_eq!(extract_credential(&headers(&[("x-api-key", &big[..256])])), Ok(&*"a".repeat(256)));
        assert_eq!(extract_credential(&headers(&[("x-api-key", b"k\xffk")])), Err(Invalid));
        assert_eq!(extract_credential(&headers(&[("authorization", b"Bearer a b")])), Err(Invalid));
    }
}
