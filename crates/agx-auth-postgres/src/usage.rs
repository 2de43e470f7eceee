//! Usage counts from memory to PostgreSQL, a batch at a time: one statement
//! per flush, whatever the number of keys, and no write per request.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use agx_auth::{StoreError, UsageBatch, UsageCounter};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::{PgStore, db};

impl PgStore {
    /// Adds a batch's counts to `key_usage` and moves `last_used_at` forward,
    /// in one statement (a data-modifying CTE and the update it feeds).
    pub async fn flush_usage(&self, batch: &UsageBatch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let keys: Vec<String> = batch.rows.iter().map(|r| r.key.to_string()).collect();
        let days: Vec<i32> = batch.rows.iter().map(|r| i32::try_from(r.day).unwrap_or(i32::MAX)).collect();
        let classes: Vec<&str> = batch.rows.iter().map(|r| r.class).collect();
        let counts: Vec<i64> = batch.rows.iter().map(|r| i64::try_from(r.requests).unwrap_or(i64::MAX)).collect();
        let used_keys: Vec<String> = batch.last_used.iter().map(|(k, _)| k.to_string()).collect();
        let used_at: Vec<SystemTime> = batch.last_used.iter().map(|(_, at)| *at).collect();
        let client = self.client().await?;
        client
            .execute(
                "WITH counted AS ( \
                   INSERT INTO key_usage (key_id, day, class, requests) \
                   SELECT k, DATE '1970-01-01' + d, c, n FROM UNNEST($1::text[], $2::int4[], $3::text[], $4::int8[]) AS u(k, d, c, n) \
                   ON CONFLICT (key_id, day, class) DO UPDATE SET requests = key_usage.requests + EXCLUDED.requests \
                   RETURNING 1) \
                 UPDATE api_keys SET last_used_at = GREATEST(api_keys.last_used_at, u.at) \
                 FROM UNNEST($5::text[], $6::timestamptz[]) AS u(id, at) WHERE api_keys.id = u.id",
                &[&keys, &days, &classes, &counts, &used_keys, &used_at],
            )
            .await
            .map_err(db)?;
        Ok(())
    }
}

/// One key's usage as stored: (day since the epoch, class, requests), oldest
/// first, and its last use.
pub type UsageReport = (Vec<(u32, String, u64)>, Option<SystemTime>);

impl PgStore {
    pub async fn usage_of(&self, key: agx_auth::KeyId) -> Result<UsageReport, StoreError> {
        let client = self.client().await?;
        let id = key.to_string();
        let rows = client
            .query(
                "SELECT (day - DATE '1970-01-01')::int4, class, requests FROM key_usage WHERE key_id = $1 ORDER BY day, class",
                &[&id],
            )
            .await
            .map_err(db)?;
        let days = rows
            .iter()
            .map(|r| {
                let day: i32 = r.get(0);
                let requests: i64 = r.get(2);
                (u32::try_from(day).unwrap_or(0), r.get::<_, String>(1), u64::try_from(requests).unwrap_or(0))
            })
            .collect();
        let last = client.query_opt("SELECT last_used_at FROM api_keys WHERE id = $1", &[&id]).await.map_err(db)?;
        Ok((days, last.and_then(|r| r.get(0))))
    }

    /// Last use of every key of an org that has been used.
    pub async fn last_used(&self, org: &str) -> Result<Vec<(String, SystemTime)>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query("SELECT id, last_used_at FROM api_keys WHERE org_id = $1 AND last_used_at IS NOT NULL", &[&org])
            .await
            .map_err(db)?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }
}

/// Drains a [`UsageCounter`] into PostgreSQL every `every`, and once more at
/// [`UsageFlusher::shutdown`]. A failed flush puts its batch back.
pub struct UsageFlusher {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl UsageFlusher {
    pub fn spawn(store: PgStore, counter: Arc<UsageCounter>, every: Duration) -> Self {
        let (stop, mut stopped) = oneshot::channel();
        let task = tokio::spawn(async move {
            loop {
                let last = tokio::select! {
                    _ = tokio::time::sleep(every) => false,
                    _ = &mut stopped => true,
                };
                let batch = counter.drain();
                if let Err(_e) = store.flush_usage(&batch).await {
                    counter.restore(batch);
                }
                if last {
                    break;
                }
            }
        });
        UsageFlusher { stop: Some(stop), task }
    }

    /// Flushes what is left and stops.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}
