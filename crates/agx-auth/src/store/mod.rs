//! What the authenticator needs to know, behind object-safe traits: keys by
//! hash ([`KeyStore`]) and the owners and flags of agents and teams
//! ([`Directory`]). Memory, Postgres and caches implement them; the
//! authenticator never knows which one it has.

mod memory;

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

pub use memory::MemoryStore;

use crate::credits::{CreditAccount, Credits};
use crate::key::{KeyHash, KeyId, KeyMode};
use crate::limit::Quota;
use crate::lookup::Lookup;
use crate::network::IpNet;
use crate::route::{EndpointClass, Scope};

/// A stored key: everything but the key itself.
#[derive(Clone, Debug)]
pub struct KeyRecord {
    pub id: KeyId,
    pub org: String,
    pub name: String,
    pub hash: KeyHash,
    /// `agx_live_sk7G…mA`: enough for a person to tell keys apart.
    pub prefix: String,
    /// Empty means every scope (contract §3).
    pub scopes: Vec<Scope>,
    pub mode: KeyMode,
    pub created_at: SystemTime,
    pub expires_at: Option<SystemTime>,
    /// How long the key was set to live when it was issued. A roll passes it
    /// on to the new key; the roll's grace period shortens the old key's
    /// `expires_at`, never this, so rolling a key twice stays right.
    pub lifetime: Option<Duration>,
    /// Deleted keys are kept for audit and never verify again.
    pub deleted_at: Option<SystemTime>,
    /// Per-class overrides of the default quotas, by class name.
    pub rate_limits: Vec<(String, Quota)>,
    /// The client networks the key may be used from; empty means any.
    pub allowed_networks: Vec<IpNet>,
    /// Usage credits; `None` means the key is not counted.
    pub credits: Option<CreditAccount>,
    /// The first key of this key's rolls: a key issued fresh is its own,
    /// and a roll passes it on. A change of credits is made to every live
    /// key of a lineage, so that a key in its grace period and the key it
    /// was rolled into spend one balance, whatever was done to either.
    pub lineage: KeyId,
}

/// What [`KeyStore::update`] did: the key before and after, and the same
/// for the other live keys of its lineage (a roll's other half), which
/// were changed with it, so that a cache forgets them too and an audit log
/// names them.
#[derive(Clone, Debug)]
pub struct KeyUpdate {
    pub before: Arc<KeyRecord>,
    pub after: Arc<KeyRecord>,
    pub lineage: Vec<(Arc<KeyRecord>, Arc<KeyRecord>)>,
}

impl KeyRecord {
    pub fn has_scope(&self, scope: &Scope) -> bool {
        self.scopes.is_empty() || self.scopes.contains(scope)
    }

    /// Expiry is compared with the clock on every request (`expires_at <=
    /// now` is expired), never remembered as a flag that a cache could keep.
    pub fn is_expired(&self, now: SystemTime) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    pub fn quota_override(&self, class: EndpointClass) -> Option<Quota> {
        self.rate_limits.iter().find(|(name, _)| name == class.as_str()).map(|&(_, q)| q)
    }
}

/// What a caller asks for when creating a key; the id, hash, prefix and
/// creation time are filled in by [`crate::Authenticator::issue_key`].
#[derive(Clone, Debug)]
pub struct KeySpec {
    pub org: String,
    pub name: String,
    pub scopes: Vec<Scope>,
    pub mode: KeyMode,
    pub expires_at: Option<SystemTime>,
    pub rate_limits: Vec<(String, Quota)>,
    pub allowed_networks: Vec<IpNet>,
    pub credits: Option<Credits>,
}

impl KeySpec {
    pub fn new(org: impl Into<String>, name: impl Into<String>) -> Self {
        KeySpec {
            org: org.into(),
            name: name.into(),
            scopes: Vec::new(),
            mode: KeyMode::Live,
            expires_at: None,
            rate_limits: Vec::new(),
            allowed_networks: Vec::new(),
            credits: None,
        }
    }

    /// Gives the key usage credits: each admitted request spends its
    /// route's cost ([`crate::Routes::costing`]).
    pub fn credits(mut self, credits: Credits) -> Self {
        self.credits = Some(credits);
        self
    }

    pub fn scopes(mut self, scopes: impl IntoIterator<Item = Scope>) -> Self {
        self.scopes = scopes.into_iter().collect();
        self
    }

    pub fn mode(mut self, mode: KeyMode) -> Self {
        self.mode = mode;
        self
    }

    pub fn expires_at(mut self, at: SystemTime) -> Self {
        self.expires_at = Some(at);
        self
    }

    /// Limits the key to clients in `networks` (see [`crate::ClientAddresses`]),
    /// each in canonical form ([`crate::canonical_network`]), without repeats.
    pub fn allowed_networks(mut self, networks: impl IntoIterator<Item = IpNet>) -> Self {
        self.allowed_networks = canonical_networks(networks);
        self
    }

    pub fn rate_limit(mut self, class: impl Into<String>, quota: Quota) -> Self {
        self.rate_limits.push((class.into(), quota));
        self
    }
}

/// Networks in canonical form ([`crate::canonical_network`]), without repeats.
fn canonical_networks(networks: impl IntoIterator<Item = IpNet>) -> Vec<IpNet> {
    let mut out: Vec<IpNet> = Vec::new();
    for net in networks.into_iter().map(crate::network::canonical_network) {
        if !out.contains(&net) {
            out.push(net);
        }
    }
    out
}

/// A change to a key's limits ([`crate::Authenticator::update_key`],
/// [`KeyStore::update`]): each part given replaces that limit, each part
/// left out stays. Only limits change in place; everything else is fixed
/// when the key is issued (other scopes or another mode is another key).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KeyChange {
    pub rate_limits: Option<Vec<(String, Quota)>>,
    pub allowed_networks: Option<Vec<IpNet>>,
    /// `Some(None)` takes the key's credits away (it is no longer
    /// counted); `Some(Some(c))` sets them afresh: what was spent before is
    /// forgotten and refills count from now.
    pub credits: Option<Option<Credits>>,
}

impl KeyChange {
    /// Replaces the networks, each in canonical form, without repeats.
    pub fn allowed_networks(mut self, networks: impl IntoIterator<Item = IpNet>) -> Self {
        self.allowed_networks = Some(canonical_networks(networks));
        self
    }

    pub fn rate_limits(mut self, limits: Vec<(String, Quota)>) -> Self {
        self.rate_limits = Some(limits);
        self
    }

    pub fn credits(mut self, credits: Option<Credits>) -> Self {
        self.credits = Some(credits);
        self
    }

    /// Whether the change changes nothing.
    pub fn is_empty(&self) -> bool {
        self.rate_limits.is_none() && self.allowed_networks.is_none() && self.credits.is_none()
    }

    /// `record` with the change made, and `account` ([`KeyChange::account`]
    /// of the key the change names) as its credits if the change gives
    /// any: what a store writes, holding the record's lock, to the key and
    /// to every live key of its lineage, so that two changes never undo
    /// each other and a roll's halves keep one set of limits and credits.
    pub fn apply(&self, record: &KeyRecord, account: Option<Option<CreditAccount>>) -> KeyRecord {
        let mut after = record.clone();
        if let Some(limits) = &self.rate_limits {
            after.rate_limits = limits.clone();
        }
        if let Some(networks) = &self.allowed_networks {
            after.allowed_networks = networks.clone();
        }
        if let Some(account) = account {
            after.credits = account;
        }
        after
    }

    /// The credit account the change gives `record`'s lineage, if it
    /// changes credits: afresh, from `at` (or a millisecond after the
    /// account it replaces, so that credits set twice in one millisecond
    /// still start a new cell), in the lineage's pool; `Some(None)` stops
    /// counting.
    pub fn account(&self, record: &KeyRecord, at: SystemTime) -> Option<Option<CreditAccount>> {
        let fresh = |credits| {
            let mut account = CreditAccount::starting(credits, record.lineage, at);
            if let Some(old) = record.credits
                && old.since >= account.since
            {
                account.since = old.since + Duration::from_millis(1);
            }
            account
        };
        self.credits.map(|credits| credits.map(fresh))
    }
}

/// An agent as the policy sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentRecord {
    pub id: String,
    pub org: String,
    pub name: String,
    /// Empty means any origin.
    pub allowed_domains: Vec<String>,
    pub active: bool,
    pub public: bool,
}

impl AgentRecord {
    pub fn new(id: impl Into<String>, org: impl Into<String>, name: impl Into<String>) -> Self {
        AgentRecord {
            id: id.into(),
            org: org.into(),
            name: name.into(),
            allowed_domains: Vec::new(),
            active: true,
            public: true,
        }
    }
}

/// A team: its org owns the route; a team has no domain list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TeamRecord {
    pub id: String,
    pub org: String,
    pub name: String,
    pub agent_ids: Vec<String>,
}

impl TeamRecord {
    /// An agent listed more than once, which every store refuses.
    pub fn repeated_agent(&self) -> Option<&str> {
        let ids = &self.agent_ids;
        ids.iter().enumerate().find(|(i, a)| ids[..*i].contains(a)).map(|(_, a)| a.as_str())
    }
}

/// A store that cannot answer. The authenticator turns `Unavailable` into
/// 503 `AUTH_UNAVAILABLE`: fail closed, never a 200 for an unverified key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreError {
    Unavailable(Cow<'static, str>),
    /// A uniqueness rule was broken (an id or hash already present).
    Conflict(Cow<'static, str>),
    /// The org, agent or key named by a write does not exist.
    NotFound(Cow<'static, str>),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Unavailable(why) => write!(f, "store unavailable: {why}"),
            StoreError::Conflict(why) => write!(f, "conflict: {why}"),
            StoreError::NotFound(what) => write!(f, "not found: {what}"),
        }
    }
}

impl std::error::Error for StoreError {}

impl StoreError {
    /// A write named an agent or team id that another organization owns
    /// (the [`DirectoryAdmin`] rule), in the same words from every store.
    pub fn of_another_org(kind: &'static str) -> Self {
        StoreError::Conflict(format!("the {kind} id belongs to another organization").into())
    }

    /// A team listed `agent` twice.
    pub fn repeated_agent(agent: &str) -> Self {
        StoreError::Conflict(format!("agent {agent} is listed twice").into())
    }
}

/// Keys by hash, and their lifecycle.
#[async_trait]
pub trait KeyStore: Send + Sync + 'static {
    /// The hot path: one lookup by hash. Deleted keys may be returned (with
    /// `deleted_at` set) or not; the authenticator refuses both the same way.
    fn find<'a>(&'a self, hash: &'a KeyHash) -> Lookup<'a, Result<Option<Arc<KeyRecord>>, StoreError>>;
    /// The org's key by id, if it is not deleted.
    async fn get(&self, org: &str, id: KeyId) -> Result<Option<Arc<KeyRecord>>, StoreError>;
    async fn create(&self, record: KeyRecord) -> Result<Arc<KeyRecord>, StoreError>;
    /// The org's keys that are not deleted, oldest first.
    async fn list(&self, org: &str) -> Result<Vec<Arc<KeyRecord>>, StoreError>;
    /// Makes `change` to the org's live key at `at` ([`KeyChange::apply`]),
    /// under the key's lock, and to every live key of its lineage; tells
    /// every cache. Serialized with [`KeyStore::roll`]
    /// in the org, so that a key rolled meanwhile is changed too. `None`
    /// when the org has no such live key.
    async fn update(
        &self,
        org: &str,
        id: KeyId,
        change: &KeyChange,
        at: SystemTime,
    ) -> Result<Option<KeyUpdate>, StoreError>;
    /// Marks the key deleted; `false` when the org has no such live key.
    async fn delete(&self, org: &str, id: KeyId, at: SystemTime) -> Result<bool, StoreError>;
    /// In one step, sets the old key to expire at `old_expires_at` (or sooner
    /// if it already would) and stores `replacement`, with the old key's
    /// lineage and limits (rate limits, networks, credits) as they are
    /// stored at that moment, not as the caller read them: a change made
    /// meanwhile is the new key's too. `None` when the org has no such live
    /// key.
    async fn roll(
        &self,
        org: &str,
        id: KeyId,
        replacement: KeyRecord,
        old_expires_at: SystemTime,
    ) -> Result<Option<Arc<KeyRecord>>, StoreError>;
}

/// Every key a store holds, by hash: what a filter of known keys (the
/// `agx-auth-filter` crate) is built from, so that a key no one issued is
/// refused without asking the store.
#[async_trait]
pub trait KeyHashes: Send + Sync + 'static {
    /// The hash of every key that is not deleted. Expired keys are included:
    /// the authenticator answers them `EXPIRED_API_KEY`, not as unknown.
    async fn live_hashes(&self) -> Result<Vec<KeyHash>, StoreError>;
}

/// What a directory write did: whether the record was new. An audit log
/// says `created` or `updated` from this, decided by the store in the
/// write itself, so two writers racing on a new id cannot both be told
/// they created it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Written {
    Created,
    Updated,
}

/// Writes to the directory: for admin tools, the reference server's admin
/// API and test fixtures. The hot path never calls it.
#[async_trait]
pub trait DirectoryAdmin: Send + Sync + 'static {
    /// Creates or renames an organization.
    async fn put_org(&self, id: &str, name: &str) -> Result<Written, StoreError>;
    /// The organization's name, if it exists.
    async fn org(&self, id: &str) -> Result<Option<String>, StoreError>;
    /// Every organization, `(id, name)`, by id.
    async fn orgs(&self) -> Result<Vec<(String, String)>, StoreError>;
    /// The organization's agents, by id.
    async fn agents_of(&self, org: &str) -> Result<Vec<AgentRecord>, StoreError>;
    /// The organization's teams, by id.
    async fn teams_of(&self, org: &str) -> Result<Vec<TeamRecord>, StoreError>;
    /// Creates or replaces an agent. Its org must exist (else `NotFound`),
    /// and an agent id of another org is not taken over (`Conflict`): a
    /// write to one org must never move another org's agent, and with it
    /// the right to use that agent's keys, into the writer's.
    async fn put_agent(&self, agent: AgentRecord) -> Result<Written, StoreError>;
    /// Creates or replaces a team. Checked in this order: its org must
    /// exist; no agent may be listed twice (`Conflict`); every agent must
    /// exist in that org (`NotFound` otherwise: another org's agent is not
    /// even acknowledged); a team id of another org is not taken over
    /// (`Conflict`).
    async fn put_team(&self, team: TeamRecord) -> Result<Written, StoreError>;
}

/// Who owns an agent or team, and whether the agent can be reached.
pub trait Directory: Send + Sync + 'static {
    fn agent<'a>(&'a self, id: &'a str) -> Lookup<'a, Result<Option<Arc<AgentRecord>>, StoreError>>;
    fn team<'a>(&'a self, id: &'a str) -> Lookup<'a, Result<Option<Arc<TeamRecord>>, StoreError>>;
}

/// A change every cache must learn of: one key deleted or rolled, one
/// agent's or team's record written, one key issued, or anything at all
/// (after a revocation channel was down).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Revocation {
    Key(KeyHash),
    /// A key was stored (created, or issued by a roll). Nothing to forget
    /// but a cached "no such key" for its hash; a filter of known keys must
    /// learn it, or it would refuse the new key.
    Issued(KeyHash),
    /// The agent's owner, flags or domains may have changed.
    Agent(Arc<str>),
    /// The team's owner or agents may have changed.
    Team(Arc<str>),
    All,
}

/// Something that forgets what a revocation names: a cache. A revocation
/// channel (Postgres `LISTEN`, say) feeds one; neither knows the other's type.
pub trait RevocationSink: Send + Sync + 'static {
    fn revoke(&self, revocation: Revocation) -> Lookup<'_, ()>;
}
