//! `ApiKey::parse` on arbitrary text: never a panic, and a key that parses
//! is the text it was parsed from (its checksum holds, so it round-trips).
#![no_main]

use agx_auth::ApiKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(key) = ApiKey::parse(text) {
        assert_eq!(key.expose_secret(), text, "a parsed key is its own text");
        assert!(ApiKey::parse(key.expose_secret()).is_ok());
    }
});
