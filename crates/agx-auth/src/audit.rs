//! The audit log: who changed which key, agent, team or token of an
//! organization, when, and what the change was — never a key.
//!
//! An [`AuditLog`] is a store like [`crate::KeyStore`]: [`MemoryAuditLog`]
//! here, PostgreSQL's in `agx-auth-postgres`. Events are numbered in the
//! order they were written ([`AuditEvent::seq`]), so a page of an org's
//! events is "the `limit` newest before `seq`": a cursor that new events do
//! not shift, unlike an offset.

use std::borrow::Cow;
use std::fmt;
use std::sync::RwLock;
use std::time::SystemTime;

use async_trait::async_trait;

use crate::store::StoreError;

/// Who made a change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Actor {
    /// The holder of the admin token (every organization).
    AdminToken,
    /// An organization's dashboard token, by its id (the token itself is
    /// never recorded), or a dashboard session signed in with it.
    DashboardToken(String),
    /// The command line on the store's host (`agx-server keys …`, `scan --revoke`).
    Cli,
    /// A leak report from GitHub's secret scanning.
    SecretScanning,
}

impl Actor {
    /// The kind, as the admin API names it.
    pub fn kind(&self) -> &'static str {
        match self {
            Actor::AdminToken => "adminToken",
            Actor::DashboardToken(_) => "dashboardToken",
            Actor::Cli => "cli",
            Actor::SecretScanning => "secretScanning",
        }
    }

    /// The dashboard token's id, for that kind.
    pub fn id(&self) -> Option<&str> {
        match self {
            Actor::DashboardToken(id) => Some(id),
            _ => None,
        }
    }

    /// From [`Actor::kind`] and [`Actor::id`], as a store keeps them.
    pub fn from_parts(kind: &str, id: Option<String>) -> Option<Actor> {
        Some(match (kind, id) {
            ("adminToken", None) => Actor::AdminToken,
            ("dashboardToken", Some(id)) => Actor::DashboardToken(id),
            ("cli", None) => Actor::Cli,
            ("secretScanning", None) => Actor::SecretScanning,
            _ => return None,
        })
    }
}

/// What happened. The names (`key.created`, …) are the admin API's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuditAction {
    OrgCreated,
    /// An org written again under its id: renamed.
    OrgUpdated,
    AgentCreated,
    AgentUpdated,
    TeamCreated,
    /// A team written again under its id.
    TeamUpdated,
    KeyCreated,
    /// A key was rolled: the event names the old key, and the new one's id
    /// is among its changes.
    KeyRolled,
    /// A key's limits were changed in place: its rate limits, networks or
    /// usage credits.
    KeyUpdated,
    KeyDeleted,
    /// A key was deleted because it was found in the open (a leak report
    /// or a scan).
    KeyRevokedLeaked,
    DashboardTokenCreated,
    DashboardTokenDeleted,
}

impl AuditAction {
    pub const ALL: [AuditAction; 13] = [
        AuditAction::OrgCreated,
        AuditAction::OrgUpdated,
        AuditAction::AgentCreated,
        AuditAction::AgentUpdated,
        AuditAction::TeamCreated,
        AuditAction::TeamUpdated,
        AuditAction::KeyCreated,
        AuditAction::KeyRolled,
        AuditAction::KeyUpdated,
        AuditAction::KeyDeleted,
        AuditAction::KeyRevokedLeaked,
        AuditAction::DashboardTokenCreated,
        AuditAction::DashboardTokenDeleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::OrgCreated => "org.created",
            AuditAction::OrgUpdated => "org.updated",
            AuditAction::AgentCreated => "agent.created",
            AuditAction::AgentUpdated => "agent.updated",
            AuditAction::TeamCreated => "team.created",
            AuditAction::TeamUpdated => "team.updated",
            AuditAction::KeyCreated => "key.created",
            AuditAction::KeyRolled => "key.rolled",
            AuditAction::KeyUpdated => "key.updated",
            AuditAction::KeyDeleted => "key.deleted",
            AuditAction::KeyRevokedLeaked => "key.revoked_leaked",
            AuditAction::DashboardTokenCreated => "dashboard_token.created",
            AuditAction::DashboardTokenDeleted => "dashboard_token.deleted",
        }
    }

    pub fn parse(name: &str) -> Option<AuditAction> {
        AuditAction::ALL.into_iter().find(|a| a.as_str() == name)
    }
}

impl fmt::Display for AuditAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One change, before it is written: the org it belongs to, the thing
/// changed (a key, agent, team or token id) and its fields as they are now,
/// as text, in the order the writer gives them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    pub org: String,
    pub action: AuditAction,
    pub target: String,
    pub changes: Vec<(Cow<'static, str>, String)>,
}

impl AuditEntry {
    pub fn new(org: impl Into<String>, action: AuditAction, target: impl Into<String>) -> Self {
        AuditEntry { org: org.into(), action, target: target.into(), changes: Vec::new() }
    }

    /// Adds one field's value.
    pub fn change(mut self, field: &'static str, value: impl Into<String>) -> Self {
        self.changes.push((Cow::Borrowed(field), value.into()));
        self
    }
}

/// One written event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEvent {
    /// Its place in the log: greater than every event written before it.
    pub seq: u64,
    pub at: SystemTime,
    pub actor: Actor,
    pub entry: AuditEntry,
}

/// Where a page of an org's events starts: the newest, or the newest older
/// than an event already seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuditPage {
    pub before: Option<u64>,
    pub limit: usize,
}

impl AuditPage {
    /// The cursor of the page after `events` (this page's answer): the
    /// last one's place when the page is full, since a short page is the
    /// last.
    pub fn next_before(&self, events: &[AuditEvent]) -> Option<u64> {
        if events.len() == self.limit { events.last().map(|e| e.seq) } else { None }
    }
}

/// The log of changes, per organization, newest first.
#[async_trait]
pub trait AuditLog: Send + Sync + 'static {
    /// Writes one event and returns its [`AuditEvent::seq`].
    async fn record(&self, at: SystemTime, actor: &Actor, entry: AuditEntry) -> Result<u64, StoreError>;
    /// At most `page.limit` of the org's events older than `page.before`,
    /// newest first.
    async fn events(&self, org: &str, page: AuditPage) -> Result<Vec<AuditEvent>, StoreError>;
}

/// The embedded audit log, kept for as long as the process runs.
#[derive(Default)]
pub struct MemoryAuditLog {
    events: RwLock<Vec<AuditEvent>>,
}

impl MemoryAuditLog {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl AuditLog for MemoryAuditLog {
    async fn record(&self, at: SystemTime, actor: &Actor, entry: AuditEntry) -> Result<u64, StoreError> {
        let mut events = self.events.write().unwrap_or_else(|e| e.into_inner());
        let seq = events.len() as u64 + 1;
        events.push(AuditEvent { seq, at, actor: actor.clone(), entry });
        Ok(seq)
    }

    async fn events(&self, org: &str, page: AuditPage) -> Result<Vec<AuditEvent>, StoreError> {
        let events = self.events.read().unwrap_or_else(|e| e.into_inner());
        // seq is the index plus one, so a cursor skips straight to its place.
        let end = page
            .before
            .map_or(events.len(), |b| usize::try_from(b.saturating_sub(1)).unwrap_or(usize::MAX).min(events.len()));
        Ok(events[..end].iter().rev().filter(|e| e.entry.org == org).take(page.limit).cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for action in AuditAction::ALL {
            assert_eq!(AuditAction::parse(action.as_str()), Some(action));
        }
        assert_eq!(AuditAction::parse("key.stolen"), None);
        for actor in [Actor::AdminToken, Actor::DashboardToken("dt_1".into()), Actor::Cli, Actor::SecretScanning] {
            assert_eq!(Actor::from_parts(actor.kind(), actor.id().map(str::to_owned)), Some(actor.clone()));
        }
        assert_eq!(Actor::from_parts("dashboardToken", None), None);
        assert_eq!(Actor::from_parts("cli", Some("x".into())), None);
    }

    #[tokio::test]
    async fn pages_are_per_org_newest_first_and_stable() {
        let log = MemoryAuditLog::new();
        let at = SystemTime::UNIX_EPOCH;
        for i in 0..7 {
            let org = if i % 2 == 0 { "a" } else { "b" };
            let entry = AuditEntry::new(org, AuditAction::KeyCreated, format!("k{i}")).change("name", "n");
            log.record(at, &Actor::Cli, entry).await.unwrap();
        }
        let targets = |events: &[AuditEvent]| events.iter().map(|e| e.entry.target.clone()).collect::<Vec<_>>();
        let first = log.events("a", AuditPage { before: None, limit: 2 }).await.unwrap();
        assert_eq!(targets(&first), ["k6", "k4"]);
        // A new event does not shift the next page.
        log.record(at, &Actor::Cli, AuditEntry::new("a", AuditAction::KeyDeleted, "k6")).await.unwrap();
        let next = log.events("a", AuditPage { before: Some(first[1].seq), limit: 2 }).await.unwrap();
        assert_eq!(targets(&next), ["k2", "k0"]);
        let last = log.events("a", AuditPage { before: Some(next[1].seq), limit: 2 }).await.unwrap();
        assert!(last.is_empty());
        assert!(log.events("c", AuditPage { before: None, limit: 10 }).await.unwrap().is_empty());
        assert_eq!(log.events("b", AuditPage { before: Some(u64::MAX), limit: 10 }).await.unwrap().len(), 3);
    }
}
