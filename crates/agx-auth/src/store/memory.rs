//! The embedded store: keys, orgs, agents and teams in process memory. It is
//! the reference server's default and the conformance suite's baseline, so it
//! also offers fault injection ([`MemoryStore::set_available`]) to prove that
//! an unreachable store fails closed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::SystemTime;

use async_trait::async_trait;

use super::{
    AgentRecord, Directory, DirectoryAdmin, KeyChange, KeyHashes, KeyRecord, KeyStore, KeyUpdate, StoreError,
    TeamRecord, Written,
};
use crate::key::{KeyHash, KeyId};
use crate::lookup::Lookup;

/// foldhash rather than SipHash: the maps are read on every request, and
/// their keys are hashes and ids we issued, not attacker-chosen strings
/// (agent ids in paths are looked up, never inserted, so probing them can't
/// build a collision chain).
type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

#[derive(Default)]
struct Inner {
    keys: Map<KeyHash, Arc<KeyRecord>>,
    ids: Map<KeyId, KeyHash>,
    orgs: Map<String, String>,
    agents: Map<String, Arc<AgentRecord>>,
    teams: Map<String, Arc<TeamRecord>>,
}

#[async_trait]
impl KeyHashes for MemoryStore {
    async fn live_hashes(&self) -> Result<Vec<KeyHash>, StoreError> {
        self.check()?;
        Ok(self.read().keys.values().filter(|r| r.deleted_at.is_none()).map(|r| r.hash).collect())
    }
}

#[derive(Default)]
pub struct MemoryStore {
    inner: RwLock<Inner>,
    down: AtomicBool,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Simulates an outage: while unavailable, every call fails with
    /// [`StoreError::Unavailable`].
    pub fn set_available(&self, available: bool) {
        self.down.store(!available, Ordering::SeqCst);
    }

    pub fn insert_org(&self, id: impl Into<String>, name: impl Into<String>) {
        self.write().orgs.insert(id.into(), name.into());
    }

    pub fn org_name(&self, id: &str) -> Option<String> {
        self.read().orgs.get(id).cloned()
    }

    pub fn insert_agent(&self, agent: AgentRecord) {
        self.write().agents.insert(agent.id.clone(), Arc::new(agent));
    }

    pub fn insert_team(&self, team: TeamRecord) {
        self.write().teams.insert(team.id.clone(), Arc::new(team));
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::Relaxed) {
            Err(StoreError::Unavailable("the in-memory store is switched off".into()))
        } else {
            Ok(())
        }
    }

    // A poisoned lock only means another thread panicked mid-write; the maps
    // themselves are always left consistent, so keep serving.
    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    fn live_key<'a>(inner: &'a Inner, org: &str, id: KeyId) -> Option<&'a Arc<KeyRecord>> {
        let hash = inner.ids.get(&id)?;
        inner.keys.get(hash).filter(|r| r.org == org && r.deleted_at.is_none())
    }
}

#[async_trait]
impl KeyStore for MemoryStore {
    fn find<'a>(&'a self, hash: &'a KeyHash) -> Lookup<'a, Result<Option<Arc<KeyRecord>>, StoreError>> {
        Lookup::ready(self.check().map(|()| self.read().keys.get(hash).cloned()))
    }

    async fn get(&self, org: &str, id: KeyId) -> Result<Option<Arc<KeyRecord>>, StoreError> {
        self.check()?;
        Ok(Self::live_key(&self.read(), org, id).cloned())
    }

    async fn create(&self, record: KeyRecord) -> Result<Arc<KeyRecord>, StoreError> {
        self.check()?;
        let mut inner = self.write();
        if !inner.orgs.contains_key(&record.org) {
            return Err(StoreError::NotFound("organization".into()));
        }
        if inner.keys.contains_key(&record.hash) || inner.ids.contains_key(&record.id) {
            return Err(StoreError::Conflict("key already exists".into()));
        }
        let record = Arc::new(record);
        inner.ids.insert(record.id, record.hash);
        inner.keys.insert(record.hash, record.clone());
        Ok(record)
    }

    async fn list(&self, org: &str) -> Result<Vec<Arc<KeyRecord>>, StoreError> {
        self.check()?;
        let inner = self.read();
        let mut keys: Vec<_> =
            inner.keys.values().filter(|r| r.org == org && r.deleted_at.is_none()).cloned().collect();
        keys.sort_by_key(|r| (r.created_at, r.id));
        Ok(keys)
    }

    async fn update(
        &self,
        org: &str,
        id: KeyId,
        change: &KeyChange,
        at: SystemTime,
    ) -> Result<Option<KeyUpdate>, StoreError> {
        self.check()?;
        let mut inner = self.write();
        let Some(before) = Self::live_key(&inner, org, id).cloned() else { return Ok(None) };
        let account = change.account(&before, at);
        let after = Arc::new(change.apply(&before, account));
        inner.keys.insert(after.hash, after.clone());
        let siblings: Vec<Arc<KeyRecord>> = inner
            .keys
            .values()
            .filter(|r| r.org == org && r.id != id && r.deleted_at.is_none() && r.lineage == before.lineage)
            .cloned()
            .collect();
        let mut lineage = Vec::with_capacity(siblings.len());
        for sibling in siblings {
            let moved = Arc::new(change.apply(&sibling, account));
            inner.keys.insert(moved.hash, moved.clone());
            lineage.push((sibling, moved));
        }
        Ok(Some(KeyUpdate { before, after, lineage }))
    }

    async fn delete(&self, org: &str, id: KeyId, at: SystemTime) -> Result<bool, StoreError> {
        self.check()?;
        let mut inner = self.write();
        let Some(old) = Self::live_key(&inner, org, id) else { return Ok(false) };
        let deleted = Arc::new(KeyRecord { deleted_at: Some(at), ..KeyRecord::clone(old) });
        inner.keys.insert(deleted.hash, deleted);
        Ok(true)
    }

    async fn roll(
        &self,
        org: &str,
        id: KeyId,
        replacement: KeyRecord,
        old_expires_at: SystemTime,
    ) -> Result<Option<Arc<KeyRecord>>, StoreError> {
        self.check()?;
        let mut inner = self.write();
        let Some(old) = Self::live_key(&inner, org, id) else { return Ok(None) };
        if replacement.org != org {
            return Err(StoreError::Conflict("a rolled key stays in its organization".into()));
        }
        if inner.keys.contains_key(&replacement.hash) || inner.ids.contains_key(&replacement.id) {
            return Err(StoreError::Conflict("key already exists".into()));
        }
        let expires_at = Some(old.expires_at.map_or(old_expires_at, |at| at.min(old_expires_at)));
        let old = Arc::new(KeyRecord { expires_at, ..KeyRecord::clone(old) });
        let new = Arc::new(KeyRecord {
            lineage: old.lineage,
            rate_limits: old.rate_limits.clone(),
            allowed_networks: old.allowed_networks.clone(),
            credits: old.credits,
            ..replacement
        });
        inner.keys.insert(old.hash, old);
        inner.ids.insert(new.id, new.hash);
        inner.keys.insert(new.hash, new.clone());
        Ok(Some(new))
    }
}

impl Directory for MemoryStore {
    fn agent<'a>(&'a self, id: &'a str) -> Lookup<'a, Result<Option<Arc<AgentRecord>>, StoreError>> {
        Lookup::ready(self.check().map(|()| self.read().agents.get(id).cloned()))
    }

    fn team<'a>(&'a self, id: &'a str) -> Lookup<'a, Result<Option<Arc<TeamRecord>>, StoreError>> {
        Lookup::ready(self.check().map(|()| self.read().teams.get(id).cloned()))
    }
}

#[async_trait]
impl DirectoryAdmin for MemoryStore {
    async fn put_org(&self, id: &str, name: &str) -> Result<Written, StoreError> {
        self.check()?;
        Ok(written(self.write().orgs.insert(id.to_owned(), name.to_owned())))
    }

    async fn org(&self, id: &str) -> Result<Option<String>, StoreError> {
        self.check()?;
        Ok(self.org_name(id))
    }

    async fn orgs(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.check()?;
        let mut orgs: Vec<_> = self.read().orgs.iter().map(|(id, name)| (id.clone(), name.clone())).collect();
        orgs.sort();
        Ok(orgs)
    }

    async fn agents_of(&self, org: &str) -> Result<Vec<AgentRecord>, StoreError> {
        self.check()?;
        let mut agents: Vec<_> = self.read().agents.values().filter(|a| a.org == org).map(|a| (**a).clone()).collect();
        agents.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(agents)
    }

    async fn teams_of(&self, org: &str) -> Result<Vec<TeamRecord>, StoreError> {
        self.check()?;
        let mut teams: Vec<_> = self.read().teams.values().filter(|t| t.org == org).map(|t| (**t).clone()).collect();
        teams.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(teams)
    }

    async fn put_agent(&self, agent: AgentRecord) -> Result<Written, StoreError> {
        self.check()?;
        let mut inner = self.write();
        if !inner.orgs.contains_key(&agent.org) {
            return Err(StoreError::NotFound("organization".into()));
        }
        if inner.agents.get(&agent.id).is_some_and(|a| a.org != agent.org) {
            return Err(StoreError::of_another_org("agent"));
        }
        Ok(written(inner.agents.insert(agent.id.clone(), Arc::new(agent))))
    }

    async fn put_team(&self, team: TeamRecord) -> Result<Written, StoreError> {
        self.check()?;
        let mut inner = self.write();
        if !inner.orgs.contains_key(&team.org) {
            return Err(StoreError::NotFound("organization".into()));
        }
        if let Some(agent) = team.repeated_agent() {
            return Err(StoreError::repeated_agent(agent));
        }
        let outside = |a: &&String| inner.agents.get(a.as_str()).is_none_or(|agent| agent.org != team.org);
        if let Some(missing) = team.agent_ids.iter().find(outside) {
            return Err(StoreError::NotFound(format!("agent {missing} in this organization").into()));
        }
        if inner.teams.get(&team.id).is_some_and(|t| t.org != team.org) {
            return Err(StoreError::of_another_org("team"));
        }
        Ok(written(inner.teams.insert(team.id.clone(), Arc::new(team))))
    }
}

/// What a map insert that returned `old` did.
fn written<T>(old: Option<T>) -> Written {
    if old.is_some() { Written::Updated } else { Written::Created }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn team(id: &str, org: &str, agents: &[&str]) -> TeamRecord {
        TeamRecord {
            id: id.into(),
            org: org.into(),
            name: "T".into(),
            agent_ids: agents.iter().map(|&a| a.into()).collect(),
        }
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        // The memory store never waits: one poll completes every call.
        let mut f = std::pin::pin!(f);
        match f.as_mut().poll(&mut std::task::Context::from_waker(std::task::Waker::noop())) {
            std::task::Poll::Ready(v) => v,
            std::task::Poll::Pending => unreachable!("the memory store never waits"),
        }
    }

    #[test]
    fn directory_writes_keep_ids_in_their_org() {
        let store = MemoryStore::new();
        store.insert_org("acme", "Acme");
        store.insert_org("rival", "Rival");
        let first = block_on(store.put_agent(AgentRecord::new("support", "acme", "Support")));
        assert_eq!(first, Ok(Written::Created));
        block_on(store.put_agent(AgentRecord::new("sales", "rival", "Sales"))).unwrap();
        let taken = block_on(store.put_agent(AgentRecord::new("support", "rival", "Mine")));
        assert!(matches!(taken, Err(StoreError::Conflict(_))), "{taken:?}");
        assert_eq!(store.read().agents["support"].org, "acme");
        let again = block_on(store.put_agent(AgentRecord::new("support", "acme", "Help desk")));
        assert_eq!(again, Ok(Written::Updated));
        assert_eq!(block_on(store.put_org("acme", "Acme Inc")), Ok(Written::Updated));
        assert_eq!(block_on(store.put_org("new", "New")), Ok(Written::Created));

        let missing_org = block_on(store.put_team(team("t", "nobody", &[])));
        assert!(matches!(missing_org, Err(StoreError::NotFound(_))), "{missing_org:?}");
        let twice = block_on(store.put_team(team("t", "acme", &["support", "support"])));
        assert!(matches!(twice, Err(StoreError::Conflict(ref why)) if why.contains("twice")), "{twice:?}");
        let foreign = block_on(store.put_team(team("t", "acme", &["sales"])));
        assert!(matches!(foreign, Err(StoreError::NotFound(_))), "{foreign:?}");
        assert_eq!(block_on(store.put_team(team("desk", "acme", &["support"]))), Ok(Written::Created));
        assert_eq!(block_on(store.put_team(team("desk", "acme", &[]))), Ok(Written::Updated));
        let taken = block_on(store.put_team(team("desk", "rival", &["sales"])));
        assert!(matches!(taken, Err(StoreError::Conflict(_))), "{taken:?}");
        assert_eq!(TeamRecord::repeated_agent(&team("t", "acme", &["a", "b", "a"])), Some("a"));
        assert_eq!(TeamRecord::repeated_agent(&team("t", "acme", &["a", "b"])), None);
    }
}
