//! Usage counts from memory to PostgreSQL, a batch at a time: one statement
//! per flush, whatever the number of keys, and no write per request.
//!
//! Exactly once: every batch has an id, and the statement that adds it
//! first records the id, so a batch whose flush may have committed (the
//! reply was lost, or the call timed out) is retried with the same id and
//! adds nothing the second time. A batch that certainly was not added (no
//! connection, or PostgreSQL refused the statement) goes back into the
//! counter.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use agx_auth::{StoreError, Tally, UsageBatch, UsageCounter, UsageDay, UsageReport};
use ring::rand::{SecureRandom, SystemRandom};
use tokio::sync::{Mutex, oneshot};
use tokio::task::JoinHandle;

use crate::{PgStore, db};

/// How long a flush statement may take, by default, before its outcome
/// counts as unknown.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// Adds a batch (`$1`…`$8`) unless its id (`$9`) was added before.
const FLUSH: &str = "WITH claimed AS ( \
               INSERT INTO usage_batches (id) VALUES ($9) ON CONFLICT (id) DO NOTHING RETURNING id), \
             pruned AS ( \
               DELETE FROM usage_batches WHERE flushed_at < now() - interval '7 days'), \
             counted AS ( \
               INSERT INTO key_usage (key_id, day, class, requests, rate_limited, refused) \
               SELECT k, DATE '1970-01-01' + d, c, n, l, r \
               FROM UNNEST($1::text[], $2::int4[], $3::text[], $4::int8[], $5::int8[], $6::int8[]) AS u(k, d, c, n, l, r) \
               WHERE EXISTS (SELECT 1 FROM claimed) \
               ON CONFLICT (key_id, day, class) DO UPDATE SET requests = key_usage.requests + EXCLUDED.requests, \
                 rate_limited = key_usage.rate_limited + EXCLUDED.rate_limited, refused = key_usage.refused + EXCLUDED.refused \
               RETURNING 1), \
             touched AS ( \
               UPDATE api_keys SET last_used_at = GREATEST(api_keys.last_used_at, u.at) \
               FROM UNNEST($7::text[], $8::timestamptz[]) AS u(id, at) \
               WHERE api_keys.id = u.id AND EXISTS (SELECT 1 FROM claimed) \
               RETURNING 1) \
             SELECT (SELECT count(*) FROM claimed) > 0";

/// Why a batch was not confirmed.
enum FlushError {
    /// Certainly not added: it may be merged back into the counter.
    NotAdded(StoreError),
    /// Perhaps added: only a retry with the same id is safe.
    Unknown(StoreError),
}

impl PgStore {
    /// Adds a batch's counts to `key_usage` and moves `last_used_at` forward,
    /// in one statement, unless a batch with this `id` was added before.
    /// Returns whether it was added now.
    pub async fn flush_usage_once(&self, id: &str, batch: &UsageBatch) -> Result<bool, StoreError> {
        self.add_batch(id, batch, FLUSH_TIMEOUT).await.map_err(|(FlushError::NotAdded(e) | FlushError::Unknown(e))| e)
    }

    async fn add_batch(&self, id: &str, batch: &UsageBatch, timeout: Duration) -> Result<bool, FlushError> {
        // In key order, so that two instances flushing the same keys lock
        // their rows in the same order and never deadlock each other.
        let mut batch = batch.clone();
        batch.rows.sort_unstable_by(|a, b| (a.key, a.day, a.class).cmp(&(b.key, b.day, b.class)));
        batch.last_used.sort_unstable_by_key(|(key, _)| *key);
        let keys: Vec<String> = batch.rows.iter().map(|r| r.key.to_string()).collect();
        let days: Vec<i32> = batch.rows.iter().map(|r| i32::try_from(r.day).unwrap_or(i32::MAX)).collect();
        let classes: Vec<&str> = batch.rows.iter().map(|r| r.class).collect();
        let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        let admitted: Vec<i64> = batch.rows.iter().map(|r| count(r.tally.admitted)).collect();
        let limited: Vec<i64> = batch.rows.iter().map(|r| count(r.tally.rate_limited)).collect();
        let refused: Vec<i64> = batch.rows.iter().map(|r| count(r.tally.refused)).collect();
        let used_keys: Vec<String> = batch.last_used.iter().map(|(k, _)| k.to_string()).collect();
        let used_at: Vec<SystemTime> = batch.last_used.iter().map(|(_, at)| *at).collect();
        let client = self.client().await.map_err(FlushError::NotAdded)?;
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 9] =
            [&keys, &days, &classes, &admitted, &limited, &refused, &used_keys, &used_at, &id];
        // Data-modifying CTEs all run, once, whether or not the final SELECT
        // reads them; `claimed` is empty when the id was added before.
        let statement = async {
            let statement = client.prepare_cached(FLUSH).await?;
            client.query_one(&statement, &params).await
        };
        match tokio::time::timeout(timeout, statement).await {
            Ok(Ok(row)) => row.try_get(0).map_err(|e| FlushError::Unknown(db(e))),
            // PostgreSQL answered with an ERROR: the statement rolled back.
            // (A FATAL or PANIC could come after a commit: unknown.)
            Ok(Err(e)) if e.as_db_error().is_some_and(|d| d.severity() == "ERROR") => Err(FlushError::NotAdded(db(e))),
            Ok(Err(e)) => Err(FlushError::Unknown(db(e))),
            Err(_) => {
                Err(FlushError::Unknown(StoreError::Unavailable("the usage flush did not answer in time".into())))
            }
        }
    }
}

/// Moves a [`UsageCounter`]'s counts into PostgreSQL, exactly once. The
/// periodic [`UsageFlusher`] and any caller that needs the counts stored now
/// (a usage report) share one writer, so flushes never overlap.
pub struct UsageWriter {
    store: PgStore,
    counter: Arc<UsageCounter>,
    rng: SystemRandom,
    /// The batch whose flush may have committed: retried with its id, and
    /// never merged back into the counter.
    unsure: Mutex<Option<(String, UsageBatch)>>,
    timeout: Duration,
}

impl UsageWriter {
    pub fn new(store: PgStore, counter: Arc<UsageCounter>) -> Self {
        Self::with_timeout(store, counter, FLUSH_TIMEOUT)
    }

    /// With `timeout` as the longest a flush statement may take before its
    /// outcome counts as unknown (10 s by default).
    pub fn with_timeout(store: PgStore, counter: Arc<UsageCounter>, timeout: Duration) -> Self {
        UsageWriter { store, counter, rng: SystemRandom::new(), unsure: Mutex::default(), timeout }
    }

    /// Stores every count taken so far. On an error some counts are still
    /// waiting (in the counter, or as the unsure batch); none is lost, and
    /// none will be added twice.
    ///
    /// While a batch is unsure, it is retried first and nothing new is
    /// drained: the counter aggregates in bounded memory meanwhile, and a
    /// flush waits on at most one statement's timeout.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let mut unsure = self.unsure.lock().await;
        if let Some((id, batch)) = unsure.as_ref() {
            match self.store.add_batch(id, batch, self.timeout).await {
                Ok(_) => *unsure = None,
                Err(FlushError::NotAdded(e) | FlushError::Unknown(e)) => return Err(e),
            }
        }
        let batch = self.counter.drain();
        if batch.is_empty() {
            return Ok(());
        }
        let mut bytes = [0u8; 16];
        if self.rng.fill(&mut bytes).is_err() {
            self.counter.restore(batch);
            return Err(StoreError::Unavailable("the system random generator failed".into()));
        }
        let id = hex::encode(bytes);
        match self.store.add_batch(&id, &batch, self.timeout).await {
            Ok(_) => Ok(()),
            Err(FlushError::NotAdded(e)) => {
                self.counter.restore(batch);
                Err(e)
            }
            Err(FlushError::Unknown(e)) => {
                *unsure = Some((id, batch));
                Err(e)
            }
        }
    }
}

impl PgStore {
    /// One key's usage as stored, oldest day first, and its last use.
    pub async fn usage_of(&self, key: agx_auth::KeyId) -> Result<UsageReport, StoreError> {
        let client = self.client().await?;
        let id = key.to_string();
        let rows = client
            .query(
                "SELECT (day - DATE '1970-01-01')::int4, class, requests, rate_limited, refused \
                 FROM key_usage WHERE key_id = $1 ORDER BY day, class",
                &[&id],
            )
            .await
            .map_err(db)?;
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        let days = rows
            .iter()
            .map(|r| UsageDay {
                day: u32::try_from(r.get::<_, i32>(0)).unwrap_or(0),
                class: r.get(1),
                tally: Tally { admitted: count(r.get(2)), rate_limited: count(r.get(3)), refused: count(r.get(4)) },
            })
            .collect();
        let last = client.query_opt("SELECT last_used_at FROM api_keys WHERE id = $1", &[&id]).await.map_err(db)?;
        Ok(UsageReport { days, last_used: last.and_then(|r| r.get(0)) })
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

/// Runs a [`UsageWriter`] every `every`, and once more at
/// [`UsageFlusher::shutdown`]. Counts a flush could not store wait for the
/// next one.
pub struct UsageFlusher {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl UsageFlusher {
    pub fn spawn(writer: Arc<UsageWriter>, every: Duration) -> Self {
        let (stop, mut stopped) = oneshot::channel();
        let task = tokio::spawn(async move {
            loop {
                let last = tokio::select! {
                    _ = tokio::time::sleep(every) => false,
                    _ = &mut stopped => true,
                };
                let flushed = writer.flush().await;
                if last {
                    if let Err(e) = flushed {
                        // Nothing is left to retry it: say what is lost.
                        tracing::warn!(error = %e, "usage counts not stored at shutdown");
                    }
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
