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
