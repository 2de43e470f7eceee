//! What the server writes to the audit log, and how.
//!
//! Every entry is built here from a stored record (a [`KeyRecord`] has no
//! key in it, so no entry can hold one), with the same field names and
//! value formats as the admin API's bodies. An entry is written after its
//! change has been made: a log that cannot be reached then does not undo
//! the change or fail the request that made it, it is logged at error
//! level and counted (`agx_audit_write_failures_total`).

use std::time::{Duration, SystemTime};

use agx_auth::{
    Actor, AgentRecord, AuditAction, AuditEntry, AuditLog, KeyId, KeyRecord, StoreError, TeamRecord, Written,
};

use crate::state::AppState;
use crate::time;

/// Writes `entry`, now, as `actor`'s.
pub async fn record(state: &AppState, actor: &Actor, entry: AuditEntry) {
    if write(&*state.backend.audit, state.auth.clock().now(), actor, entry).await.is_err() {
        state.metrics.audit_write_failed();
    }
}

/// Writes `entry`; a failure is logged here and returned for the caller
/// to count or report.
pub async fn write(log: &dyn AuditLog, at: SystemTime, actor: &Actor, entry: AuditEntry) -> Result<(), StoreError> {
    let action = entry.action;
    log.record(at, actor, entry).await.map(drop).inspect_err(|e| {
        tracing::error!(error = %e, %action, "an audit event could not be written");
    })
}

/// A list field's value: its items, space-separated.
fn list<T: std::fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    items.into_iter().map(|i| i.to_string()).collect::<Vec<_>>().join(" ")
}

/// A key's settings, as the admin API shows them (never the key).
fn key_fields(entry: AuditEntry, r: &KeyRecord) -> AuditEntry {
    entry
        .change("name", r.name.clone())
        .change("prefix", r.prefix.clone())
        .change("scopes", list(r.scopes.iter().map(|s| s.as_str())))
        .change("mode", r.mode.as_str())
        .change("expiresAt", r.expires_at.map(time::format).unwrap_or_default())
        .change("rateLimits", list(r.rate_limits.iter().map(|(c, q)| format!("{c}={}", q.get()))))
        .change("allowedNetworks", list(&r.allowed_networks))
        .change("credits", credits(r))
}

/// A key's credits as given (not what is left: that changes with every
/// request): `100`, `100 refill 10/3600s`, or empty when not counted.
fn credits(r: &KeyRecord) -> String {
    match r.credits {
        None => String::new(),
        Some(a) => match a.credits.refill {
            None => a.credits.initial.to_string(),
            Some(refill) => format!("{} refill {}/{}s", a.credits.initial, refill.amount, refill.interval.as_secs()),
        },
    }
}

/// A change of a key's limits: each limit that changed, as it is now.
/// Credits set again to the same numbers count as changed: they start
/// afresh.
pub fn key_updated(before: &KeyRecord, after: &KeyRecord, credits_set: bool) -> AuditEntry {
    let old = key_fields(AuditEntry::new(&before.org, AuditAction::KeyUpdated, ""), before).changes;
    let mut entry = key_fields(AuditEntry::new(&after.org, AuditAction::KeyUpdated, after.id.to_string()), after);
    entry.changes.retain(|change| !old.contains(change) || (credits_set && change.0 == "credits"));
    entry
}

pub fn key_created(r: &KeyRecord) -> AuditEntry {
    key_fields(AuditEntry::new(&r.org, AuditAction::KeyCreated, r.id.to_string()), r)
}

/// The old key's event: the new key's id and prefix, the grace period
/// asked for, and when the old key now expires (sooner than the grace
/// period when it was to expire sooner anyway).
pub fn key_rolled(old: KeyId, old_expires_at: Option<SystemTime>, new: &KeyRecord, grace: Duration) -> AuditEntry {
    AuditEntry::new(&new.org, AuditAction::KeyRolled, old.to_string())
        .change("replacedBy", new.id.to_string())
        .change("replacedByPrefix", new.prefix.clone())
        .change("gracePeriodSeconds", grace.as_secs().to_string())
        .change("expiresAt", old_expires_at.map(time::format).unwrap_or_default())
}

pub fn key_deleted(org: &str, id: KeyId) -> AuditEntry {
    AuditEntry::new(org, AuditAction::KeyDeleted, id.to_string())
}

/// A leaked key deleted: where it was found, when the finder says (a
/// GitHub URL, a file and line), if that text is fit to keep.
pub fn key_revoked_leaked(r: &KeyRecord, found_in: Option<&str>) -> AuditEntry {
    let entry = AuditEntry::new(&r.org, AuditAction::KeyRevokedLeaked, r.id.to_string())
        .change("name", r.name.clone())
        .change("prefix", r.prefix.clone());
    match found_in.filter(|f| f.len() <= 2048 && !f.chars().any(char::is_control)) {
        Some(at) => entry.change("foundIn", at),
        None => entry,
    }
}

/// `written`: what the store says the write did (an update is a rename).
pub fn org_written(id: &str, name: &str, written: Written) -> AuditEntry {
    let action = if written == Written::Updated { AuditAction::OrgUpdated } else { AuditAction::OrgCreated };
    AuditEntry::new(id, action, id).change("name", name)
}

pub fn agent_written(a: &AgentRecord, written: Written) -> AuditEntry {
    let action = if written == Written::Updated { AuditAction::AgentUpdated } else { AuditAction::AgentCreated };
    AuditEntry::new(&a.org, action, &a.id)
        .change("name", a.name.clone())
        .change("allowedDomains", list(&a.allowed_domains))
        .change("active", a.active.to_string())
        .change("public", a.public.to_string())
}

pub fn team_written(t: &TeamRecord, written: Written) -> AuditEntry {
    let action = if written == Written::Updated { AuditAction::TeamUpdated } else { AuditAction::TeamCreated };
    AuditEntry::new(&t.org, action, &t.id).change("name", t.name.clone()).change("agentIds", list(&t.agent_ids))
}

pub fn dashboard_token(action: AuditAction, org: &str, id: &str, name: Option<&str>) -> AuditEntry {
    let entry = AuditEntry::new(org, action, id);
    match name {
        Some(name) => entry.change("name", name),
        None => entry,
    }
}
