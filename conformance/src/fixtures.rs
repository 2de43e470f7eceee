//! The seam between a case's words and a target's state.
//!
//! In-process targets implement [`Fixtures`] on the store and clock they
//! share with the app under test ([`InProcess`]); a black-box target
//! implements it through the reference server's admin API, without the
//! clock and fault capabilities. The runner is the same for both.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use agx_auth::{
    AgentRecord, Authenticator, Clock, EndpointClass, GcraLimiter, KeyId, KeyMode, KeySpec, LimitError, Lookup,
    ManualClock, MemoryStore, Quota, RateDecision, RateLimitStatus, RateLimiter, Routes, Scope, TeamRecord, Timestamp,
};
use async_trait::async_trait;

use crate::case::Capability;

/// A key a case asks for, in the target's ids.
#[derive(Clone, Debug)]
pub struct KeyRequest {
    pub org: String,
    pub name: String,
    pub scopes: Vec<String>,
    pub test_mode: bool,
    pub expires_in: Option<Duration>,
    pub rate_limits: BTreeMap<String, u32>,
}

/// A key the target issued: its id and the plaintext, shown once.
#[derive(Clone, Debug)]
pub struct IssuedKey {
    pub id: String,
    pub key: String,
}

#[async_trait]
pub trait Fixtures: Send + Sync {
    fn capabilities(&self) -> &[Capability];
    async fn org(&self, id: &str, name: &str) -> Result<(), String>;
    async fn agent(&self, agent: AgentRecord) -> Result<(), String>;
    async fn team(&self, team: TeamRecord) -> Result<(), String>;
    async fn key(&self, request: &KeyRequest) -> Result<IssuedKey, String>;
    async fn delete_key(&self, org: &str, id: &str) -> Result<(), String>;
    async fn roll_key(&self, org: &str, id: &str, grace: Duration) -> Result<IssuedKey, String>;
    async fn advance(&self, by: Duration) -> Result<(), String>;
    async fn set_store_available(&self, available: bool) -> Result<(), String>;
    async fn set_limiter_available(&self, available: bool) -> Result<(), String>;
}

/// The in-process limiter with an off switch, to prove that a limiter
/// backend that cannot answer fails closed.
#[derive(Default)]
pub struct SwitchableLimiter {
    inner: GcraLimiter,
    down: AtomicBool,
}

impl SwitchableLimiter {
    fn answer<T>(&self, f: impl FnOnce() -> T) -> Lookup<'_, Result<T, LimitError>> {
        Lookup::ready(if self.down.load(Ordering::SeqCst) {
            Err(LimitError("the limiter is switched off".into()))
        } else {
            Ok(f())
        })
    }
}

impl RateLimiter for SwitchableLimiter {
    fn check(
        &self,
        key: KeyId,
        class: EndpointClass,
        quota: Quota,
        now: Timestamp,
    ) -> Lookup<'_, Result<RateDecision, LimitError>> {
        self.answer(|| self.inner.check_at(key, class, quota, now))
    }

    fn peek(
        &self,
        key: KeyId,
        class: EndpointClass,
        quota: Quota,
        now: Timestamp,
    ) -> Lookup<'_, Result<RateLimitStatus, LimitError>> {
        self.answer(|| self.inner.peek_at(key, class, quota, now))
    }
}

/// The stub app's route table: the Agentix routes and one host route that
/// names no agent.
pub fn stub_routes() -> Routes {
    Routes::agentix().route(http::Method::GET, crate::app::STATUS, Scope::CONFIG, EndpointClass::CONFIG)
}

/// Fixtures over an in-process memory store, limiter and manual clock.
pub struct InProcess {
    pub store: Arc<MemoryStore>,
    pub clock: Arc<ManualClock>,
    pub limiter: Arc<SwitchableLimiter>,
    pub auth: Arc<Authenticator>,
}

impl InProcess {
    /// A fresh memory store and clock, and the authenticator over them that
    /// the app under test will use.
    pub fn memory() -> Self {
        let store = Arc::new(MemoryStore::new());
        let clock = Arc::new(ManualClock::new(SystemTime::now()));
        let limiter = Arc::new(SwitchableLimiter::default());
        let auth = Arc::new(
            Authenticator::builder(store.clone(), store.clone())
                .clock(clock.clone())
                .limiter(limiter.clone())
                .routes(stub_routes())
                .build(),
        );
        InProcess { store, clock, limiter, auth }
    }
}

fn key_id(id: &str) -> Result<KeyId, String> {
    id.parse().map_err(|e| format!("{e}"))
}

#[async_trait]
impl Fixtures for InProcess {
    fn capabilities(&self) -> &[Capability] {
        &[Capability::Clock, Capability::Faults, Capability::LimiterFaults, Capability::StubApp]
    }

    async fn org(&self, id: &str, name: &str) -> Result<(), String> {
        self.store.insert_org(id, name);
        Ok(())
    }

    async fn agent(&self, agent: AgentRecord) -> Result<(), String> {
        self.store.insert_agent(agent);
        Ok(())
    }

    async fn team(&self, team: TeamRecord) -> Result<(), String> {
        self.store.insert_team(team);
        Ok(())
    }

    async fn key(&self, r: &KeyRequest) -> Result<IssuedKey, String> {
        let mut spec = KeySpec::new(&r.org, &r.name)
            .scopes(r.scopes.iter().map(|s| Scope::new(s.clone())))
            .mode(if r.test_mode { KeyMode::Test } else { KeyMode::Live });
        if let Some(d) = r.expires_in {
            spec = spec.expires_at(self.clock.now() + d);
        }
        for (class, n) in &r.rate_limits {
            let q = Quota::try_per_minute(*n).ok_or("a quota of zero")?;
            spec = spec.rate_limit(class.clone(), q);
        }
        let (key, record) = self.auth.issue_key(spec).await.map_err(|e| e.to_string())?;
        Ok(IssuedKey { id: record.id.to_string(), key: key.expose_secret().to_owned() })
    }

    async fn delete_key(&self, org: &str, id: &str) -> Result<(), String> {
        match self.auth.delete_key(org, key_id(id)?).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(format!("no key {id} in {org}")),
            Err(e) => Err(e.to_string()),
        }
    }

    async fn roll_key(&self, org: &str, id: &str, grace: Duration) -> Result<IssuedKey, String> {
        match self.auth.roll_key(org, key_id(id)?, grace).await {
            Ok(Some((key, record))) => Ok(IssuedKey { id: record.id.to_string(), key: key.expose_secret().to_owned() }),
            Ok(None) => Err(format!("no key {id} in {org}")),
            Err(e) => Err(e.to_string()),
        }
    }

    async fn advance(&self, by: Duration) -> Result<(), String> {
        self.clock.advance(by);
        Ok(())
    }

    async fn set_store_available(&self, available: bool) -> Result<(), String> {
        self.store.set_available(available);
        Ok(())
    }

    async fn set_limiter_available(&self, available: bool) -> Result<(), String> {
        self.limiter.down.store(!available, Ordering::SeqCst);
        Ok(())
    }
}
