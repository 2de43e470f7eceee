//! The audit log in PostgreSQL: one row per event in `audit_events`, read
//! per organization newest first, by the `(org_id, seq)` index.

use std::borrow::Cow;
use std::time::SystemTime;

use agx_auth::{Actor, AuditAction, AuditEntry, AuditEvent, AuditLog, AuditPage, StoreError};
use async_trait::async_trait;
use tokio_postgres::Row;

use crate::{PgStore, corrupt, db};

#[async_trait]
impl AuditLog for PgStore {
    async fn record(&self, at: SystemTime, actor: &Actor, entry: AuditEntry) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let (fields, values): (Vec<&str>, Vec<&str>) = entry.changes.iter().map(|(f, v)| (&**f, v.as_str())).unzip();
        let stmt = client
            .prepare_cached(
                "INSERT INTO audit_events (org_id, at, actor, actor_id, action, target, fields, \"values\") \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING seq",
            )
            .await
            .map_err(db)?;
        let row = client
            .query_one(
                &stmt,
                &[&entry.org, &at, &actor.kind(), &actor.id(), &entry.action.as_str(), &entry.target, &fields, &values],
            )
            .await
            .map_err(db)?;
        let seq: i64 = row.try_get(0).map_err(corrupt)?;
        u64::try_from(seq).map_err(|_| StoreError::Unavailable("negative audit sequence".into()))
    }

    async fn events(&self, org: &str, page: AuditPage) -> Result<Vec<AuditEvent>, StoreError> {
        let client = self.client().await?;
        // A cursor past i64 is past every event.
        let before = page.before.map_or(i64::MAX, |b| i64::try_from(b).unwrap_or(i64::MAX));
        let limit = i64::try_from(page.limit).unwrap_or(i64::MAX);
        let stmt = client
            .prepare_cached(
                "SELECT seq, org_id, at, actor, actor_id, action, target, fields, \"values\" FROM audit_events \
                 WHERE org_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3",
            )
            .await
            .map_err(db)?;
        let rows = client.query(&stmt, &[&org, &before, &limit]).await.map_err(db)?;
        rows.iter().map(event_from_row).collect()
    }
}

fn event_from_row(r: &Row) -> Result<AuditEvent, StoreError> {
    let bad = |what: &str| StoreError::Unavailable(format!("unreadable audit row: {what}").into());
    let seq: i64 = r.try_get("seq").map_err(corrupt)?;
    let actor = Actor::from_parts(r.try_get("actor").map_err(corrupt)?, r.try_get("actor_id").map_err(corrupt)?)
        .ok_or_else(|| bad("actor"))?;
    let action = AuditAction::parse(r.try_get("action").map_err(corrupt)?).ok_or_else(|| bad("action"))?;
    let fields: Vec<String> = r.try_get("fields").map_err(corrupt)?;
    let values: Vec<String> = r.try_get("values").map_err(corrupt)?;
    Ok(AuditEvent {
        seq: u64::try_from(seq).map_err(|_| bad("seq"))?,
        at: r.try_get("at").map_err(corrupt)?,
        actor,
        entry: AuditEntry {
            org: r.try_get("org_id").map_err(corrupt)?,
            action,
            target: r.try_get("target").map_err(corrupt)?,
            changes: fields.into_iter().map(Cow::Owned).zip(values).collect(),
        },
    })
}
