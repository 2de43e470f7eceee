//! Credential extraction from arbitrary header sets: never a panic, and a
//! credential found is one of the request's own values, within the length
//! bound.
#![no_main]

use agx_auth::{MAX_CREDENTIAL_LEN, extract_credential};
use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|pairs: Vec<(String, Vec<u8>)>| {
    let mut headers = HeaderMap::new();
    for (name, value) in pairs.iter().take(32) {
        // The two names the extractor reads, most of the time; any other too.
        let name = match name.len() % 4 {
            0 => "authorization",
            1 => "x-api-key",
            _ => name.as_str(),
        };
        if let (Ok(n), Ok(v)) = (HeaderName::try_from(name), HeaderValue::from_bytes(value)) {
            headers.append(n, v);
        }
    }
    if let Ok(token) = extract_credential(&headers) {
        assert!(token.len() <= MAX_CREDENTIAL_LEN, "a credential past the bound");
        let from_request = headers.values().any(|v| v.to_str().is_ok_and(|v| v.contains(token)));
        assert!(from_request, "a credential that is in no header");
    }
});
