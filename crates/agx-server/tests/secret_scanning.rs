//! GitHub's secret scanning partner endpoint against the binary, with
//! signing keys made here: a signed report revokes the live keys it names
//! and labels every token; a tampered body, another key, an unknown
//! identifier or a missing header changes nothing.

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::{call, exchange, free_port, start_with};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};

const ROUTE: &str = "/api/secret-scanning/github";

fn signer() -> EcdsaKeyPair {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng).unwrap()
}

/// GitHub's keys document for `pair` under the identifier `gh1`.
fn keys_document(pair: &EcdsaKeyPair) -> String {
    // SubjectPublicKeyInfo for P-256, then the point.
    let mut der = hex::decode("3059301306072a8648ce3d020106082a8648ce3d030107034200").unwrap();
    der.extend_from_slice(pair.public_key().as_ref());
    let pem = format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----", STANDARD.encode(der));
    serde_json::json!({"public_keys": [{"key_identifier": "gh1", "key": pem, "is_current": true}]}).to_string()
}

fn report(tokens: &[&str]) -> String {
    let items: Vec<_> = tokens
        .iter()
        .map(|t| serde_json::json!({"token": t, "type": "agx_api_key", "url": "https://github.com/x/y/blob/main/.env", "source": "content"}))
        .collect();
    serde_json::Value::from(items).to_string()
}

fn signature(pair: &EcdsaKeyPair, body: &str) -> String {
    STANDARD.encode(pair.sign(&SystemRandom::new(), body.as_bytes()).unwrap())
}

#[tokio::test]
async fn signed_reports_revoke_and_unsigned_ones_change_nothing() {
    let github = signer();
    let dir = std::env::temp_dir().join(format!("agx-github-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let keys_path = dir.join("keys.json");
    std::fs::write(&keys_path, keys_document(&github)).unwrap();
    let port = free_port();
    let (_server, demo) = start_with(port, None, &[("AGX_GITHUB_SCANNING_KEYS", keys_path.to_str().unwrap())]);
    let demo = demo.unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let url = format!("{base}{ROUTE}");
    let agent = format!("{base}/api/public/agents/demo-agent");
    let works = |key: String| {
        let agent = agent.clone();
        async move { call("GET", &agent, &[("x-api-key", &key)], "").await.0 == 200 }
    };
    assert!(works(demo.clone()).await);

    // Refused, and nothing revoked: a body other than the one signed, a
    // signature by another key, an unknown identifier, no headers.
    let body = report(&[&demo]);
    let other = signer();
    let attempts = [
        (report(&[&demo, "agx_live_other"]), "gh1".to_owned(), signature(&github, &body)),
        (body.clone(), "gh1".to_owned(), signature(&other, &body)),
        (body.clone(), "gh2".to_owned(), signature(&github, &body)),
    ];
    for (sent, id, sig) in &attempts {
        let headers = [("github-public-key-identifier", id.as_str()), ("github-public-key-signature", sig.as_str())];
        let (status, text) = call("POST", &url, &headers, sent).await;
        assert_eq!(status, 401, "{text}");
        assert!(text.contains("INVALID_SIGNATURE") && !text.contains(&demo), "{text}");
    }
    let (status, _) = call("POST", &url, &[], &body).await;
    assert_eq!(status, 401, "an unsigned report");
    assert!(works(demo.clone()).await, "no forged report revoked the key");

    // Signed: the live key is revoked, a look-alike is a false positive.
    let fake = "agx_live_XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX";
    let body = report(&[&demo, fake]);
    let sig = signature(&github, &body);
    let headers = [("github-public-key-identifier", "gh1"), ("github-public-key-signature", sig.as_str())];
    let (status, h, text) = exchange("POST", &url, &headers, &body).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(h["content-type"], "application/json");
    assert!(!text.contains(&demo), "the answer names tokens by hash, never by value");
    let labels: serde_json::Value = serde_json::from_str(&text).unwrap();
    let hash = |t: &str| hex::encode(ring::digest::digest(&ring::digest::SHA256, t.as_bytes()));
    assert_eq!(
        labels,
        serde_json::json!([
            {"token_hash": hash(&demo), "token_type": "agx_api_key", "label": "true_positive"},
            {"token_hash": hash(fake), "token_type": "agx_api_key", "label": "false_positive"},
        ])
    );
    assert!(!works(demo.clone()).await, "the reported key is refused at once");
    // The org is told through its audit log: which key, where GitHub saw it.
    let log = format!("{base}/api/admin/orgs/demo-org/audit-log");
    let (status, text) = call("GET", &log, &[("authorization", "Bearer test-admin-token")], "").await;
    assert_eq!(status, 200, "{text}");
    let page: serde_json::Value = serde_json::from_str(&text).unwrap();
    let event = &page["events"][0];
    assert_eq!(event["action"], "key.revoked_leaked", "{page}");
    assert_eq!(event["actor"], "secretScanning");
    assert_eq!(event["changes"]["foundIn"], "https://github.com/x/y/blob/main/.env");
    assert!(!text.contains(&demo), "never the key itself");
    assert_eq!(page["events"].as_array().unwrap().len(), 1, "forged reports logged nothing: {page}");
    // Reported again: still ours, already harmless.
    let (_, again) = call("POST", &url, &headers, &body).await;
    assert!(again.contains("true_positive"), "{again}");
    let _ = std::fs::remove_dir_all(&dir);
}
