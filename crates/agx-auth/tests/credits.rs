//! Usage credits in the verdict: spent after the limiter admits, refused
//! with 403 `CREDITS_EXHAUSTED`, per-route costs, refills on the clock, a
//! roll that shares the account and an update that starts it afresh.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use agx_auth::{
    ApiKey, AuthError, Authenticator, CreditAccount, CreditDecision, CreditLedger, Credits, EndpointClass, KeyChange,
    KeySpec, LedgerError, Lookup, ManualClock, MemoryStore, Outcome, Quota, RateLimits, Refill, Routes, Scope,
};
use http::{HeaderMap, HeaderValue, Method};

const CHAT: &str = "/api/public/agents/a1/chat";
const CONFIG: &str = "/api/public/agents/a1";
const HOUR: Duration = Duration::from_secs(3600);

fn store() -> Arc<MemoryStore> {
    let store = Arc::new(MemoryStore::new());
    store.insert_org("o1", "One");
    store.insert_agent(agx_auth::AgentRecord::new("a1", "o1", "Agent"));
    store
}

fn headers(key: &ApiKey) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("x-api-key", HeaderValue::from_str(key.expose_secret()).unwrap());
    h
}

/// The error code of a refusal, or `None` for a grant; with the credits the
/// grant reports.
async fn call(auth: &Authenticator, method: Method, path: &str, key: &ApiKey) -> Result<Option<u64>, &'static str> {
    match auth.authenticate(&method, path, &headers(key)).await {
        Outcome::Allow(grant) => Ok(grant.credits_remaining()),
        Outcome::Deny(r) => Err(r.error().code()),
        Outcome::PassThrough => panic!("declared routes are judged"),
    }
}

fn with_clock(store: &Arc<MemoryStore>, clock: &Arc<ManualClock>) -> Authenticator {
    Authenticator::builder(store.clone(), store.clone()).clock(clock.clone()).build()
}

#[tokio::test]
async fn credits_run_out_with_their_own_refusal_and_refill_on_the_clock() {
    let store = store();
    let clock = Arc::new(ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000)));
    let auth = with_clock(&store, &clock);
    let credits = Credits { initial: 2, refill: Some(Refill { amount: 3, interval: HOUR }) };
    let (key, _) = auth.issue_key(KeySpec::new("o1", "metered").credits(credits)).await.unwrap();
    assert_eq!(call(&auth, Method::POST, CHAT, &key).await, Ok(Some(1)));
    assert_eq!(call(&auth, Method::POST, CHAT, &key).await, Ok(Some(0)));
    let Outcome::Deny(refusal) = auth.authenticate(&Method::POST, CHAT, &headers(&key)).await else {
        panic!("no credits left")
    };
    assert_eq!(refusal.error(), &AuthError::CreditsExhausted);
    assert_eq!(refusal.response().status(), 403);
    assert!(refusal.response().headers().get("retry-after").is_none(), "no retry can succeed before the refill");
    assert!(refusal.response().headers().get("ratelimit").is_some(), "the key is known: its budget is reported");
    assert_eq!(refusal.rate_limit().map(|s| s.remaining), Some(57), "three admitted by the limiter");
    // The refill holds its amount, counted from the key's creation.
    clock.advance(HOUR - Duration::from_millis(1));
    assert_eq!(call(&auth, Method::POST, CHAT, &key).await, Err("CREDITS_EXHAUSTED"));
    clock.advance(Duration::from_millis(1));
    for left in [2, 1, 0] {
        assert_eq!(call(&auth, Method::POST, CHAT, &key).await, Ok(Some(left)));
    }
    assert_eq!(call(&auth, Method::POST, CHAT, &key).await, Err("CREDITS_EXHAUSTED"));
    // A key without credits is not counted.
    let (free, _) = auth.issue_key(KeySpec::new("o1", "plain")).await.unwrap();
    assert_eq!(call(&auth, Method::POST, CHAT, &free).await, Ok(None));
}

#[tokio::test]
async fn a_rate_limited_request_spends_no_credit() {
    let store = store();
    let limits = RateLimits::default().with(EndpointClass::CHAT, Quota::try_per_minute(2).unwrap());
    let auth = Authenticator::builder(store.clone(), store.clone()).rate_limits(limits).build();
    let (key, record) =
        auth.issue_key(KeySpec::new("o1", "k").credits(Credits { initial: 10, refill: None })).await.unwrap();
    for _ in 0..2 {
        assert!(call(&auth, Method::POST, CHAT, &key).await.is_ok());
    }
    for _ in 0..5 {
        assert_eq!(call(&auth, Method::POST, CHAT, &key).await, Err("RATE_LIMITED"));
    }
    assert_eq!(auth.credits_remaining(&record).await, Ok(Some(8)));
}

#[tokio::test]
async fn each_route_costs_what_the_table_says() {
    let store = store();
    let routes = Routes::new()
        .route(Method::POST, "/api/public/agents/{agentId}/chat", Scope::CHAT, EndpointClass::CHAT)
        .costing(5)
        .route(Method::GET, "/api/public/agents/{agentId}", Scope::CONFIG, EndpointClass::CONFIG)
        .costing(0);
    assert_eq!(routes.iter().map(|r| r.cost()).collect::<Vec<_>>(), [5, 0]);
    // A permission names no route: it costs the most of the routes it could be.
    let either = Routes::new()
        .route(Method::GET, "/a", Scope::CHAT, EndpointClass::CHAT)
        .costing(0)
        .route(Method::POST, "/b", Scope::CHAT, EndpointClass::CHAT)
        .costing(4);
    assert_eq!(either.permission("chat", "chat").map(|(_, _, cost)| cost), Some(4));
    let auth = Authenticator::builder(store.clone(), store.clone()).routes(routes).build();
    let (key, record) =
        auth.issue_key(KeySpec::new("o1", "k").credits(Credits { initial: 7, refill: None })).await.unwrap();
    assert_eq!(call(&auth, Method::POST, CHAT, &key).await, Ok(Some(2)));
    // Two left, five asked: refused whole, nothing spent.
    assert_eq!(call(&auth, Method::POST, CHAT, &key).await, Err("CREDITS_EXHAUSTED"));
    assert_eq!(auth.credits_remaining(&record).await, Ok(Some(2)));
    // A free route admits a key whatever it has left, and asks the ledger nothing.
    assert_eq!(call(&auth, Method::GET, CONFIG, &key).await, Ok(None));
    assert_eq!(auth.credits_remaining(&record).await, Ok(Some(2)));
}

#[tokio::test]
async fn a_roll_shares_the_credits_and_an_update_sets_them_afresh() {
    let store = store();
    let clock = Arc::new(ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(50_000)));
    let auth = with_clock(&store, &clock);
    let (old_key, old) =
        auth.issue_key(KeySpec::new("o1", "k").credits(Credits { initial: 3, refill: None })).await.unwrap();
    assert_eq!(call(&auth, Method::POST, CHAT, &old_key).await, Ok(Some(2)));
    let (new_key, new) = auth.roll_key("o1", old.id, HOUR).await.unwrap().unwrap();
    assert_eq!(new.credits.map(|a| a.pool), Some(old.id), "the new key spends from the old key's account");
    // Old and new spend one account: two in all, not two each.
    assert_eq!(call(&auth, Method::POST, CHAT, &new_key).await, Ok(Some(1)));
    assert_eq!(call(&auth, Method::POST, CHAT, &old_key).await, Ok(Some(0)));
    assert_eq!(call(&auth, Method::POST, CHAT, &new_key).await, Err("CREDITS_EXHAUSTED"));
    // Topping up starts a fresh account for the key, from now.
    clock.advance(Duration::from_secs(5));
    let change = KeyChange::default().credits(Some(Credits { initial: 4, refill: None }));
    let update = auth.update_key("o1", new.id, change).await.unwrap().unwrap();
    assert_eq!(update.before.credits.unwrap().credits.initial, 3);
    let account = update.after.credits.unwrap();
    assert_eq!((account.pool, account.since), (old.id, agx_auth::Clock::now(&*clock)));
    // The old half, in its grace period, has the same fresh account.
    let lineage: Vec<_> = update.lineage.iter().map(|(_, r)| (r.id, r.credits)).collect();
    assert_eq!(lineage, [(old.id, Some(account))]);
    assert_eq!(call(&auth, Method::POST, CHAT, &new_key).await, Ok(Some(3)));
    assert_eq!(call(&auth, Method::POST, CHAT, &old_key).await, Ok(Some(2)));
    // Taking credits away leaves the key uncounted; nothing else changes.
    let update = auth.update_key("o1", new.id, KeyChange::default().credits(None)).await.unwrap().unwrap();
    let after = update.after;
    assert!(after.credits.is_none());
    assert!(update.lineage[0].1.credits.is_none(), "both halves stop counting");
    assert_eq!(call(&auth, Method::POST, CHAT, &old_key).await, Ok(None));
    // Given again to one half, they are the other's again: one lineage.
    clock.advance(Duration::from_millis(1));
    let change = KeyChange::default().credits(Some(Credits { initial: 1, refill: None }));
    let update = auth.update_key("o1", old.id, change).await.unwrap().unwrap();
    assert_eq!(update.lineage.iter().map(|(_, r)| r.id).collect::<Vec<_>>(), [new.id]);
    assert_eq!(call(&auth, Method::POST, CHAT, &new_key).await, Ok(Some(0)));
    assert_eq!(call(&auth, Method::POST, CHAT, &old_key).await, Err("CREDITS_EXHAUSTED"));
    let change = KeyChange::default().credits(None);
    auth.update_key("o1", new.id, change).await.unwrap().unwrap();
    assert_eq!((after.name.as_str(), after.hash), (new.name.as_str(), new.hash));
    assert_eq!(call(&auth, Method::POST, CHAT, &new_key).await, Ok(None));
    // Another org's key is not found.
    assert!(auth.update_key("o2", new.id, KeyChange::default()).await.unwrap().is_none());
}

/// A ledger that cannot answer.
struct DownLedger;

impl CreditLedger for DownLedger {
    fn spend(&self, _: CreditAccount, _: u64, _: SystemTime) -> Lookup<'_, Result<CreditDecision, LedgerError>> {
        Lookup::ready(Err(LedgerError("down".into())))
    }

    fn remaining(&self, _: CreditAccount, _: SystemTime) -> Lookup<'_, Result<u64, LedgerError>> {
        Lookup::ready(Err(LedgerError("down".into())))
    }
}

#[tokio::test]
async fn a_ledger_that_cannot_answer_fails_closed_for_counted_keys_only() {
    let store = store();
    let auth = Authenticator::builder(store.clone(), store.clone()).ledger(Arc::new(DownLedger)).build();
    let (counted, _) =
        auth.issue_key(KeySpec::new("o1", "k").credits(Credits { initial: 9, refill: None })).await.unwrap();
    let (plain, _) = auth.issue_key(KeySpec::new("o1", "p")).await.unwrap();
    assert_eq!(call(&auth, Method::POST, CHAT, &counted).await, Err("AUTH_UNAVAILABLE"));
    assert_eq!(call(&auth, Method::POST, CHAT, &plain).await, Ok(None));
}
