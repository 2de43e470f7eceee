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
    AgentRecord, Authenticator, Clock, CreditLedger, Credits, Directory, DirectoryAdmin, EndpointClass, GcraLimiter,
    KeyChange, KeyHash, KeyId, KeyMode, KeyRecord, KeySpec, KeyStore, KeyUpdate, LimitError, Lookup, ManualClock,
    MemoryLedger, MemoryStore, Quota, RateDecision, RateLimitStatus, RateLimiter, Refill, Routes, Scope, StoreError,
    TeamRecord, Timestamp,
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
    pub allowed_networks: Vec<String>,
    pub credits: Option<crate::case::CreditsFixture>,
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
    /// Reports a text where keys were found as `org`'s leak: what became of
    /// each distinct key, in order.
    async fn report_leak(&self, org: &str, text: &str) -> Result<Vec<String>, String>;
    async fn advance(&self, by: Duration) -> Result<(), String>;
    /// The org's newest `limit` audit events, as the admin API lists them
    /// (for targets with [`Capability::AuditLog`]).
    async fn audit_events(&self, _org: &str, _limit: usize) -> Result<Vec<serde_json::Value>, String> {
        Err("this target keeps no audit log".to_owned())
    }
    async fn set_store_available(&self, available: bool) -> Result<(), String>;
    async fn set_limiter_available(&self, available: bool) -> Result<(), String>;
}

/// A limiter with an off switch, to prove that a limiter backend that cannot
/// answer fails closed, whatever the backend.
pub struct SwitchableLimiter {
    inner: Arc<dyn RateLimiter>,
    down: AtomicBool,
}

impl SwitchableLimiter {
    pub fn new(inner: Arc<dyn RateLimiter>) -> Self {
        SwitchableLimiter { inner, down: AtomicBool::new(false) }
    }

    fn down<T>(&self) -> Option<Lookup<'_, Result<T, LimitError>>> {
        self.down.load(Ordering::SeqCst).then(|| Lookup::ready(Err(LimitError("the limiter is switched off".into()))))
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
        self.down().unwrap_or_else(|| self.inner.check(key, class, quota, now))
    }

    fn peek(
        &self,
        key: KeyId,
        class: EndpointClass,
        quota: Quota,
        now: Timestamp,
    ) -> Lookup<'_, Result<RateLimitStatus, LimitError>> {
        self.down().unwrap_or_else(|| self.inner.peek(key, class, quota, now))
    }
}

/// The suite's proxies: every target trusts loopback to append the client's
/// address to `X-Forwarded-For`, so cases can name a client address.
pub fn loopback_proxies() -> agx_auth::ClientAddresses {
    let nets = ["127.0.0.0/8", "::1/128"].map(|n| n.parse().expect("a network"));
    agx_auth::ClientAddresses::through(nets, agx_auth::ForwardedHeader::XForwardedFor)
}

/// The stub app's route table: the Agentix routes and one host route that
/// names no agent.
pub fn stub_routes() -> Routes {
    Routes::agentix().route(http::Method::GET, crate::app::STATUS, Scope::CONFIG, EndpointClass::CONFIG)
}

/// A store with an off switch, to prove that a store that cannot answer
/// fails closed, whatever the store.
pub struct SwitchableStore<S> {
    inner: Arc<S>,
    down: AtomicBool,
}

impl<S> SwitchableStore<S> {
    fn down<T>(&self) -> Option<Result<T, StoreError>> {
        self.down.load(Ordering::SeqCst).then(|| Err(StoreError::Unavailable("the store is switched off".into())))
    }
}

#[async_trait]
impl<S: KeyStore> KeyStore for SwitchableStore<S> {
    fn find<'a>(&'a self, hash: &'a KeyHash) -> Lookup<'a, Result<Option<Arc<KeyRecord>>, StoreError>> {
        match self.down() {
            Some(err) => Lookup::ready(err),
            None => self.inner.find(hash),
        }
    }
    async fn get(&self, org: &str, id: KeyId) -> Result<Option<Arc<KeyRecord>>, StoreError> {
        self.down().unwrap_or(self.inner.get(org, id).await)
    }
    async fn create(&self, record: KeyRecord) -> Result<Arc<KeyRecord>, StoreError> {
        self.inner.create(record).await
    }
    async fn list(&self, org: &str) -> Result<Vec<Arc<KeyRecord>>, StoreError> {
        self.inner.list(org).await
    }
    async fn update(
        &self,
        org: &str,
        id: KeyId,
        change: &KeyChange,
        at: SystemTime,
    ) -> Result<Option<KeyUpdate>, StoreError> {
        self.inner.update(org, id, change, at).await
    }
    async fn delete(&self, org: &str, id: KeyId, at: SystemTime) -> Result<bool, StoreError> {
        self.inner.delete(org, id, at).await
    }
    async fn roll(
        &self,
        org: &str,
        id: KeyId,
        replacement: KeyRecord,
        old_expires_at: SystemTime,
    ) -> Result<Option<Arc<KeyRecord>>, StoreError> {
        self.inner.roll(org, id, replacement, old_expires_at).await
    }
}

impl<S: Directory> Directory for SwitchableStore<S> {
    fn agent<'a>(&'a self, id: &'a str) -> Lookup<'a, Result<Option<Arc<AgentRecord>>, StoreError>> {
        match self.down() {
            Some(err) => Lookup::ready(err),
            None => self.inner.agent(id),
        }
    }
    fn team<'a>(&'a self, id: &'a str) -> Lookup<'a, Result<Option<Arc<TeamRecord>>, StoreError>> {
        match self.down() {
            Some(err) => Lookup::ready(err),
            None => self.inner.team(id),
        }
    }
}

/// Fixtures over an in-process store (any), limiter and manual clock.
pub struct InProcess {
    admin: Arc<dyn DirectoryAdmin>,
    store_switch: Box<dyn Fn(bool) + Send + Sync>,
    pub clock: Arc<ManualClock>,
    pub limiter: Arc<SwitchableLimiter>,
    pub auth: Arc<Authenticator>,
}

impl InProcess {
    /// A fresh memory store and clock, and the authenticator over them that
    /// the app under test will use.
    pub fn memory() -> Self {
        let store = Arc::new(MemoryStore::new());
        Self::over(store.clone(), store)
    }

    /// The authenticator reads through `reads` (a store, or a cache in front
    /// of one); fixtures write to the directory through `admin`.
    pub fn over<S: KeyStore + Directory>(reads: Arc<S>, admin: Arc<dyn DirectoryAdmin>) -> Self {
        Self::limited_by(reads, admin, Arc::new(GcraLimiter::new()), Arc::new(MemoryLedger::new()))
    }

    /// As [`InProcess::over`], with another rate limiter and credit ledger
    /// than the in-process ones (the Redis limiter's column).
    pub fn limited_by<S: KeyStore + Directory>(
        reads: Arc<S>,
        admin: Arc<dyn DirectoryAdmin>,
        limiter: Arc<dyn RateLimiter>,
        ledger: Arc<dyn CreditLedger>,
    ) -> Self {
        let store = Arc::new(SwitchableStore { inner: reads, down: AtomicBool::new(false) });
        let clock = Arc::new(ManualClock::new(SystemTime::now()));
        let limiter = Arc::new(SwitchableLimiter::new(limiter));
        let auth = Arc::new(
            Authenticator::builder(store.clone(), store.clone())
                .clock(clock.clone())
                .limiter(limiter.clone())
                .ledger(ledger)
                .routes(stub_routes())
                .client_addresses(loopback_proxies())
                .build(),
        );
        let store_switch = Box::new(move |up: bool| store.down.store(!up, Ordering::SeqCst));
        InProcess { admin, store_switch, clock, limiter, auth }
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
        self.admin.put_org(id, name).await.map(drop).map_err(|e| e.to_string())
    }

    async fn agent(&self, agent: AgentRecord) -> Result<(), String> {
        self.admin.put_agent(agent).await.map(drop).map_err(|e| e.to_string())
    }

    async fn team(&self, team: TeamRecord) -> Result<(), String> {
        self.admin.put_team(team).await.map(drop).map_err(|e| e.to_string())
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
        let networks: Result<Vec<agx_auth::IpNet>, _> = r.allowed_networks.iter().map(|n| n.parse()).collect();
        spec = spec.allowed_networks(networks.map_err(|e| format!("a network: {e}"))?);
        if let Some(c) = &r.credits {
            let refill =
                c.refill.map(|r| Refill { amount: r.amount, interval: Duration::from_secs(r.interval_seconds) });
            spec = spec.credits(Credits { initial: c.remaining, refill });
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

    async fn report_leak(&self, org: &str, text: &str) -> Result<Vec<String>, String> {
        let judged = self.auth.report_leaks(org, text.as_bytes()).await.map_err(|e| e.to_string())?;
        Ok(judged.iter().map(|(_, standing)| standing.reported().to_owned()).collect())
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
        (self.store_switch)(available);
        Ok(())
    }

    async fn set_limiter_available(&self, available: bool) -> Result<(), String> {
        self.limiter.down.store(!available, Ordering::SeqCst);
        Ok(())
    }
}
