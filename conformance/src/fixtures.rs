//! The seam between a case's words and a target's state.
//!
//! In-process targets implement [`Fixtures`] on the store and clock they
//! share with the app under test ([`InProcess`]); a black-box target
//! implements it through the reference server's admin API, without the
//! clock and fault capabilities. The runner is the same for both.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use agx_auth::{
    AgentRecord, Authenticator, Clock, KeyId, KeyMode, KeySpec, ManualClock, MemoryStore, Quota, Scope, TeamRecord,
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
}

/// Fixtures over an in-process memory store and a manual clock.
pub struct InProcess {
    pub store: Arc<MemoryStore>,
    pub clock: Arc<ManualClock>,
    pub auth: Arc<Authenticator>,
}

impl InProcess {
    /// A fresh memory store and clock, and the authenticator over them that
    /// the app under test will use.
    pub fn memory() -> Self {
        let store = Arc::new(MemoryStore::new());
        let clock = Arc::new(ManualClock::starting_now());
        let auth = Arc::new(Authenticator::builder(store.clone(), store.clone()).clock(clock.clone()).build());
        InProcess { store, clock, auth }
    }
}

fn key_id(id: &str) -> Result<KeyId, String> {
    id.parse().map_err(|e| format!("{e}"))
}

#[async_trait]
impl Fixtures for InProcess {
    fn capabilities(&self) -> &[Capability] {
        &[Capability::Clock, Capability::Faults, Capability::Principal]
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
}
