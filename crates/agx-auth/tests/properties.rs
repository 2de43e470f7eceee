//! Properties of the key format, the credential reader and the limiter, over
//! generated inputs.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use agx_auth::{
    ApiKey, AuthError, Authenticator, EndpointClass, GcraLimiter, KeyHasher, KeyId, KeyMode, MemoryStore, Outcome,
    Quota, RANDOM_LEN, RateDecision,
};
use http::{HeaderMap, HeaderValue, Method};
use proptest::prelude::*;

fn random_part() -> impl Strategy<Value = [u8; RANDOM_LEN]> {
    proptest::collection::vec(
        proptest::sample::select(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz".to_vec()),
        RANDOM_LEN,
    )
    .prop_map(|v| v.try_into().expect("RANDOM_LEN bytes"))
}

fn mode() -> impl Strategy<Value = KeyMode> {
    prop_oneof![Just(KeyMode::Live), Just(KeyMode::Test)]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn generated_keys_parse_and_hash_stably(mode in mode(), random in random_part()) {
        let key = ApiKey::from_random_part(mode, &random).unwrap();
        let parsed = ApiKey::parse(key.expose_secret()).unwrap();
        prop_assert_eq!(&parsed, &key);
        prop_assert_eq!(parsed.mode(), mode);
        let h = KeyHasher::Sha256;
        prop_assert_eq!(h.hash(&key), h.hash(&parsed));
        let p = KeyHasher::with_pepper(b"pepper");
        prop_assert_eq!(p.hash(&key), p.hash(&parsed));
        prop_assert_ne!(h.hash(&key), p.hash(&key));
    }

    #[test]
    fn any_single_character_change_is_rejected(
        mode in mode(),
        random in random_part(),
        at in 0usize..41,
        replacement in any::<char>(),
    ) {
        let key = ApiKey::from_random_part(mode, &random).unwrap();
        let original: Vec<char> = key.expose_secret().chars().collect();
        prop_assume!(original[at] != replacement);
        let mut changed = original.clone();
        changed[at] = replacement;
        let changed: String = changed.into_iter().collect();
        prop_assert!(ApiKey::parse(&changed).is_err(), "{} accepted", changed);
    }

    #[test]
    fn random_strings_are_rejected(s in ".{0,80}") {
        prop_assert!(ApiKey::parse(&s).is_err());
    }

    #[test]
    fn random_key_shaped_strings_fail_the_checksum(s in "agx_(live|test)_[A-Za-z0-9]{32}") {
        // One in 2^32 would pass by chance; proptest's seeds never find it.
        prop_assert!(ApiKey::parse(&s).is_err());
    }

    /// Over any window [t_i, t_j] of any schedule, admissions never exceed
    /// burst + floor((t_j - t_i) / interval).
    #[test]
    fn limiter_never_admits_more_than_burst_plus_refill(
        per_minute in 1u32..=200,
        gaps_ms in proptest::collection::vec(0u64..3000, 1..250),
    ) {
        let limiter = GcraLimiter::new();
        let quota = Quota::try_per_minute(per_minute).unwrap();
        let interval_ns = 60_000_000_000u64 / u64::from(per_minute);
        let start = UNIX_EPOCH + Duration::from_secs(1_900_000_000);
        let mut t = 0u64;
        let mut admitted_at = Vec::new();
        for gap in gaps_ms {
            t += gap * 1_000_000;
            let now = start + Duration::from_nanos(t);
            if let RateDecision::Admit(_) = limiter.check_at(KeyId(1), EndpointClass::CHAT, quota, now.into()) {
                admitted_at.push(t);
            }
        }
        for i in 0..admitted_at.len() {
            for j in i..admitted_at.len() {
                let count = (j - i + 1) as u64;
                let bound = u64::from(per_minute) + (admitted_at[j] - admitted_at[i]) / interval_ns;
                prop_assert!(count <= bound, "{} admitted in {} ns, bound {}", count, admitted_at[j] - admitted_at[i], bound);
            }
        }
    }

    /// Whatever bytes arrive in the credential headers, the answer is a
    /// 401 with a JSON body: never a panic, a 500, or an echo of the value.
    #[test]
    fn arbitrary_credential_headers_get_a_401(
        authorization in proptest::collection::vec(any::<u8>(), 0..600),
        api_key in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..600)),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let store = Arc::new(MemoryStore::new());
        let auth = Authenticator::builder(store.clone(), store).build();
        let mut headers = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_bytes(&authorization) {
            headers.append("authorization", v);
        }
        if let Some(Ok(v)) = api_key.as_deref().map(HeaderValue::from_bytes) {
            headers.append("x-api-key", v);
        }
        let outcome = rt.block_on(auth.authenticate(&Method::POST, "/api/public/agents/a/chat", &headers));
        let Outcome::Deny(rejection) = outcome else { panic!("no key was issued, yet {outcome:?}") };
        let response = rejection.into_response();
        prop_assert_eq!(response.status().as_u16(), 401);
        prop_assert_eq!(response.headers()["content-type"].as_bytes(), b"application/json");
        // The body is one of two constant envelopes: nothing of the request is echoed.
        let body = response.body().as_ref();
        prop_assert!(
            body == AuthError::MissingApiKey.doc().envelope.as_bytes()
                || body == AuthError::InvalidApiKey.doc().envelope.as_bytes(),
            "{:?}", String::from_utf8_lossy(body)
        );
    }
}
