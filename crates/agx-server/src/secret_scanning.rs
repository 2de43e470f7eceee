//! `POST /api/secret-scanning/github`: GitHub's secret scanning partner
//! endpoint. GitHub finds strings of our key format in public code and
//! posts them here, signed; each one that is a live key of this deployment
//! is revoked at once (deleted through the store, so every instance
//! refuses it), and the answer labels each token.
//!
//! The report is trusted only if its signature verifies: ECDSA P-256 with
//! SHA-256 over the raw body, the DER signature base64-encoded in
//! `GITHUB-PUBLIC-KEY-SIGNATURE`, made with the key named by
//! `GITHUB-PUBLIC-KEY-IDENTIFIER`. The keys are read at start from a file
//! in the shape GitHub serves them (`{"public_keys": [{"key_identifier",
//! "key" (PEM), "is_current"}]}`), never fetched at run time: a server that
//! fetched on demand could be made to trust whatever answered.

use std::sync::Arc;

use agx_auth::{Actor, ApiKey, KeyStanding};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::{HeaderMap, StatusCode};
use ring::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
use serde::{Deserialize, Serialize};

use crate::audit;
use crate::errors::ApiError;
use crate::state::AppState;

pub const ROUTE: &str = "/api/secret-scanning/github";
const KEY_ID_HEADER: &str = "github-public-key-identifier";
const SIGNATURE_HEADER: &str = "github-public-key-signature";

/// The DER prefix of a P-256 public key (SubjectPublicKeyInfo, id-ecPublicKey
/// with prime256v1), before its 65-byte uncompressed point.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
    0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

const BAD_SIGNATURE: ApiError =
    ApiError::new(StatusCode::UNAUTHORIZED, "INVALID_SIGNATURE", "The report is not signed by a configured key");

/// GitHub's signing keys, by identifier: uncompressed P-256 points.
pub struct GithubKeys(Vec<(String, Vec<u8>)>);

/// Why the keys file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error("the keys file is not JSON of the shape {{\"public_keys\": [{{\"key_identifier\", \"key\"}}]}}")]
    Shape(#[source] serde_json::Error),
    #[error("key {0}: not a PEM P-256 public key")]
    NotP256(String),
    #[error("the keys file holds no key")]
    Empty,
}

#[derive(Deserialize)]
struct KeysFile {
    public_keys: Vec<KeyEntry>,
}

#[derive(Deserialize)]
struct KeyEntry {
    key_identifier: String,
    key: String,
}

impl GithubKeys {
    /// Parses a keys file (as GitHub serves it at its partner keys URL).
    pub fn from_json(text: &str) -> Result<Self, KeysError> {
        let file: KeysFile = serde_json::from_str(text).map_err(KeysError::Shape)?;
        let mut keys = Vec::new();
        for entry in file.public_keys {
            let point = p256_point(&entry.key).ok_or_else(|| KeysError::NotP256(entry.key_identifier.clone()))?;
            keys.push((entry.key_identifier, point));
        }
        if keys.is_empty() {
            return Err(KeysError::Empty);
        }
        Ok(GithubKeys(keys))
    }

    /// Whether `signature` (base64 of a DER ECDSA signature) over `body` is
    /// the key `id`'s.
    pub fn verify(&self, id: &str, body: &[u8], signature: &str) -> bool {
        let Some((_, point)) = self.0.iter().find(|(k, _)| k == id) else { return false };
        let Ok(signature) = STANDARD.decode(signature.trim()) else { return false };
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, point).verify(body, &signature).is_ok()
    }
}

/// The uncompressed point of a PEM `PUBLIC KEY` for P-256.
fn p256_point(pem: &str) -> Option<Vec<u8>> {
    let body: String = pem.lines().map(str::trim).filter(|l| !l.starts_with("-----")).collect();
    let der = STANDARD.decode(body).ok()?;
    let point = der.strip_prefix(&P256_SPKI_PREFIX[..])?;
    (point.len() == 65 && point[0] == 0x04).then(|| point.to_vec())
}

/// One reported token. `url` (where it was found) goes into the audit log;
/// `source` (`content`, `commit`, …) is not read.
#[derive(Deserialize)]
struct Reported {
    token: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    url: Option<String>,
}

/// One token's verdict, for GitHub: the token named by its SHA-256, never
/// sent back.
#[derive(Serialize)]
struct Labelled {
    token_hash: String,
    token_type: String,
    label: &'static str,
}

pub fn routes(state: Arc<AppState>) -> Router {
    Router::new()
        .route(ROUTE, post(report))
        .method_not_allowed_fallback(|| async { ApiError::METHOD_NOT_ALLOWED })
        .with_state(state)
}

async fn report(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    // Not configured: there is no such route.
    let Some(keys) = state.github_keys.get() else { return ApiError::no_route().into_response() };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let signed = match (header(KEY_ID_HEADER), header(SIGNATURE_HEADER)) {
        (Some(id), Some(signature)) => keys.verify(id, &body, signature),
        _ => false,
    };
    if !signed {
        tracing::warn!("secret scanning: a report without a valid signature was refused");
        return BAD_SIGNATURE.into_response();
    }
    let Ok(reported) = serde_json::from_slice::<Vec<Reported>>(&body) else {
        return ApiError::WRONG_SHAPE.into_response();
    };
    let mut answer = Vec::with_capacity(reported.len());
    for r in reported {
        let label = match ApiKey::parse(r.token.trim()) {
            Err(_) => "false_positive",
            Ok(key) => match state.auth.revoke_leaked(&key).await {
                Err(_) => return ApiError::UNAVAILABLE.into_response(),
                Ok(KeyStanding::Unknown) => "false_positive",
                Ok(KeyStanding::Deleted(_) | KeyStanding::Expired(_)) => "true_positive",
                Ok(KeyStanding::Live(record)) => {
                    tracing::warn!(org = %record.org, key = %record.id, "secret scanning: a leaked key was revoked");
                    let entry = audit::key_revoked_leaked(&record, r.url.as_deref());
                    audit::record(&state, &Actor::SecretScanning, entry).await;
                    "true_positive"
                }
            },
        };
        let token_hash = hex::encode(ring::digest::digest(&ring::digest::SHA256, r.token.as_bytes()));
        answer.push(Labelled { token_hash, token_type: r.kind, label });
    }
    axum::Json(answer).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};

    fn pair() -> EcdsaKeyPair {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng).unwrap()
    }

    /// The keys file GitHub would serve for `pair` under `id`.
    fn keys_file(id: &str, pair: &EcdsaKeyPair) -> String {
        let mut der = P256_SPKI_PREFIX.to_vec();
        der.extend_from_slice(pair.public_key().as_ref());
        let pem = format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", STANDARD.encode(der));
        serde_json::json!({"public_keys": [{"key_identifier": id, "key": pem, "is_current": true}]}).to_string()
    }

    fn sign(pair: &EcdsaKeyPair, body: &[u8]) -> String {
        STANDARD.encode(pair.sign(&SystemRandom::new(), body).unwrap())
    }

    #[test]
    fn a_signature_verifies_only_for_its_key_and_body() {
        let (ours, theirs) = (pair(), pair());
        let keys = GithubKeys::from_json(&keys_file("k1", &ours)).unwrap();
        let body = br#"[{"token":"x","type":"agx","url":"u","source":"content"}]"#;
        assert!(keys.verify("k1", body, &sign(&ours, body)));
        assert!(!keys.verify("k1", b"[]", &sign(&ours, body)), "a tampered body");
        assert!(!keys.verify("k1", body, &sign(&theirs, body)), "another key");
        assert!(!keys.verify("k2", body, &sign(&ours, body)), "an unknown identifier");
        assert!(!keys.verify("k1", body, "not base64!"), "a signature that is not base64");
    }

    #[test]
    fn a_keys_file_must_hold_p256_keys() {
        assert!(matches!(GithubKeys::from_json("{}"), Err(KeysError::Shape(_))));
        assert!(matches!(GithubKeys::from_json(r#"{"public_keys":[]}"#), Err(KeysError::Empty)));
        let bad = r#"{"public_keys":[{"key_identifier":"k","key":"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"}]}"#;
        assert!(matches!(GithubKeys::from_json(bad), Err(KeysError::NotP256(_))));
    }
}
