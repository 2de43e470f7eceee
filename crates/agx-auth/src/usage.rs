//! Usage counting: last use, and per key, day and endpoint class the
//! requests admitted and the refusals that reached the key (429 rate
//! limited; 403 for its scope, org, an agent's domains or state), aggregated
//! in memory so that a verdict costs a map update, never a database write.
//! A store-specific flusher drains the counts in batches.
//!
//! Refusals are counted per known key only: a request without a valid key
//! names no key to count against, and counting guesses would let anyone
//! write into a key's history.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::clock::Timestamp;
use crate::key::KeyId;
use crate::route::EndpointClass;

/// Where the verdicts of known keys are counted. Called on the hot path: it
/// must not block or do I/O.
pub trait UsageRecorder: Send + Sync + 'static {
    fn record(&self, key: KeyId, class: EndpointClass, outcome: UsageOutcome, at: Timestamp);
}

/// What became of a known key's request on a declared route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UsageOutcome {
    /// Admitted: the handler ran. Only these move the key's last use.
    Admitted,
    /// Refused with 429.
    RateLimited,
    /// Refused with 403: the key's scope or org, or the agent's domains or state.
    Refused,
}

/// One key's requests on one day in one class, by outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub admitted: u64,
    pub rate_limited: u64,
    pub refused: u64,
}

impl Tally {
    pub fn add(&mut self, other: Tally) {
        self.admitted += other.admitted;
        self.rate_limited += other.rate_limited;
        self.refused += other.refused;
    }

    fn one(outcome: UsageOutcome) -> Tally {
        match outcome {
            UsageOutcome::Admitted => Tally { admitted: 1, ..Tally::default() },
            UsageOutcome::RateLimited => Tally { rate_limited: 1, ..Tally::default() },
            UsageOutcome::Refused => Tally { refused: 1, ..Tally::default() },
        }
    }
}

/// One key's tally on one day (days since the Unix epoch, UTC) in one class.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageRow {
    pub key: KeyId,
    pub day: u32,
    pub class: &'static str,
    pub tally: Tally,
}

/// One key's tally on one day in one class, as a store reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageDay {
    /// Days since the Unix epoch, UTC.
    pub day: u32,
    pub class: String,
    pub tally: Tally,
}

/// One key's usage as a store reports it: its days, oldest first, and its
/// last admitted request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UsageReport {
    pub days: Vec<UsageDay>,
    pub last_used: Option<SystemTime>,
}

/// What a drain takes out: counts, and each key's latest use.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UsageBatch {
    pub rows: Vec<UsageRow>,
    pub last_used: Vec<(KeyId, SystemTime)>,
}

impl UsageBatch {
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty() && self.last_used.is_empty()
    }
}

#[derive(Default)]
struct Shard {
    counts: HashMap<(KeyId, u32, EndpointClass), Tally, foldhash::fast::RandomState>,
    last_used: HashMap<KeyId, u64, foldhash::fast::RandomState>,
}

const SHARDS: usize = 16;

/// The in-memory aggregate, sharded by key so that concurrent requests of
/// different keys rarely meet on a lock.
pub struct UsageCounter {
    shards: Box<[Mutex<Shard>]>,
}

impl Default for UsageCounter {
    fn default() -> Self {
        UsageCounter { shards: (0..SHARDS).map(|_| Mutex::default()).collect() }
    }
}

impl UsageCounter {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self, key: KeyId) -> MutexGuard<'_, Shard> {
        self.shards[(key.0 as usize) % SHARDS].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes every count out, leaving the counter empty.
    pub fn drain(&self) -> UsageBatch {
        let mut batch = UsageBatch::default();
        for shard in self.shards.iter() {
            let mut shard = shard.lock().unwrap_or_else(|e| e.into_inner());
            let shard = std::mem::take(&mut *shard);
            batch.rows.extend(shard.counts.into_iter().map(|((key, day, class), tally)| UsageRow {
                key,
                day,
                class: class.as_str(),
                tally,
            }));
            batch
                .last_used
                .extend(shard.last_used.into_iter().map(|(k, ns)| (k, UNIX_EPOCH + Duration::from_nanos(ns))));
        }
        batch
    }

    /// Puts a batch back (a flush failed): nothing counted is lost.
    pub fn restore(&self, batch: UsageBatch) {
        for row in batch.rows {
            let mut shard = self.lock(row.key);
            shard.counts.entry((row.key, row.day, EndpointClass::new(row.class))).or_default().add(row.tally);
        }
        for (key, at) in batch.last_used {
            let ns = Timestamp::from(at).0;
            let mut shard = self.lock(key);
            let slot = shard.last_used.entry(key).or_default();
            *slot = (*slot).max(ns);
        }
    }
}

impl UsageRecorder for UsageCounter {
    fn record(&self, key: KeyId, class: EndpointClass, outcome: UsageOutcome, at: Timestamp) {
        let day = u32::try_from(at.0 / 86_400_000_000_000).unwrap_or(u32::MAX);
        let mut shard = self.lock(key);
        shard.counts.entry((key, day, class)).or_default().add(Tally::one(outcome));
        if outcome == UsageOutcome::Admitted {
            let slot = shard.last_used.entry(key).or_default();
            *slot = (*slot).max(at.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_aggregate_drain_and_restore() {
        let c = UsageCounter::new();
        let day0 = Timestamp(86_400_000_000_000 * 20_000 + 5);
        for _ in 0..3 {
            c.record(KeyId(1), EndpointClass::CHAT, UsageOutcome::Admitted, day0);
        }
        c.record(KeyId(1), EndpointClass::CHAT, UsageOutcome::RateLimited, day0);
        c.record(KeyId(1), EndpointClass::CONFIG, UsageOutcome::Admitted, Timestamp(day0.0 + 10));
        // A refusal is counted but is no use: the last use stays.
        c.record(KeyId(1), EndpointClass::CONFIG, UsageOutcome::Refused, Timestamp(day0.0 + 20));
        let batch = c.drain();
        assert!(c.drain().is_empty());
        let mut rows = batch.rows.clone();
        rows.sort_by_key(|r| r.class);
        assert_eq!(
            rows,
            vec![
                UsageRow {
                    key: KeyId(1),
                    day: 20_000,
                    class: "chat",
                    tally: Tally { admitted: 3, rate_limited: 1, refused: 0 }
                },
                UsageRow {
                    key: KeyId(1),
                    day: 20_000,
                    class: "config",
                    tally: Tally { admitted: 1, rate_limited: 0, refused: 1 }
                },
            ]
        );
        assert_eq!(batch.last_used, vec![(KeyId(1), UNIX_EPOCH + Duration::from_nanos(day0.0 + 10))]);
        c.restore(batch.clone());
        c.record(KeyId(1), EndpointClass::CHAT, UsageOutcome::Admitted, day0);
        let again = c.drain();
        assert_eq!(again.rows.iter().map(|r| r.tally.admitted).sum::<u64>(), 5);
        assert_eq!(again.rows.iter().map(|r| r.tally.rate_limited + r.tally.refused).sum::<u64>(), 2);
    }
}
