//! What each `Unmatched` policy answers for a path the table does not
//! declare, with and without a key.

use std::sync::Arc;

use agx_auth::{AuthError, Authenticator, KeySpec, MemoryStore, Outcome, Routes, Unmatched};
use http::{HeaderMap, HeaderValue, Method};

async fn verdicts(policy: Unmatched) -> (Outcome, Outcome) {
    let store = Arc::new(MemoryStore::new());
    store.insert_org("org_1", "Acme");
    let auth = Authenticator::builder(store.clone(), store).routes(Routes::agentix().unmatched(policy)).build();
    let (key, _) = auth.issue_key(KeySpec::new("org_1", "k")).await.unwrap();
    let mut with_key = HeaderMap::new();
    with_key.insert("x-api-key", HeaderValue::from_str(key.expose_secret()).unwrap());
    // A spelling of the chat route a loose router would accept.
    let path = "/api/public/agents/a1/CHAT";
    let keyless = auth.authenticate(&Method::POST, path, &HeaderMap::new()).await;
    let keyed = auth.authenticate(&Method::POST, path, &with_key).await;
    (keyless, keyed)
}

fn refusal(outcome: &Outcome) -> Option<&AuthError> {
    match outcome {
        Outcome::Deny(rejection) => Some(rejection.error()),
        _ => None,
    }
}

#[tokio::test]
async fn the_default_refuses_after_the_key() {
    assert_eq!(Routes::agentix().unmatched_policy(), Unmatched::Refuse);
    let (keyless, keyed) = verdicts(Unmatched::default()).await;
    assert_eq!(refusal(&keyless), Some(&AuthError::MissingApiKey));
    let Outcome::Deny(rejection) = keyed else { panic!("admitted: {keyed:?}") };
    let response = rejection.response();
    assert_eq!(response.status(), 404);
    assert_eq!(response.body().as_ref(), br#"{"error":{"code":"NOT_FOUND","message":"No such route"}}"#);
    assert!(response.headers().get("ratelimit").is_none(), "no budget is spent or shown");
}

#[tokio::test]
async fn authenticate_admits_any_valid_key_without_a_limit() {
    let (keyless, keyed) = verdicts(Unmatched::Authenticate).await;
    assert_eq!(refusal(&keyless), Some(&AuthError::MissingApiKey));
    let Outcome::Allow(grant) = keyed else { panic!("refused: {keyed:?}") };
    assert_eq!(grant.principal().org(), "org_1");
    let mut headers = HeaderMap::new();
    grant.apply_headers(&mut headers);
    assert!(headers.get("ratelimit").is_none());
}

#[tokio::test]
async fn pass_through_does_not_judge() {
    let (keyless, keyed) = verdicts(Unmatched::PassThrough).await;
    assert!(matches!(keyless, Outcome::PassThrough), "{keyless:?}");
    assert!(matches!(keyed, Outcome::PassThrough), "{keyed:?}");
}
