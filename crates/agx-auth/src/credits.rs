//! Usage credits: a key may carry a number of uses, optionally refilled
//! every interval, and each admitted request spends its route's cost.
//!
//! Like the limiter's GCRA, the arithmetic is one pure function,
//! [`spend_credits`], over a small cell: the refill period the cell was last
//! touched in and what was spent in it. Period 0 runs from the moment the
//! credits were set to the first refill and holds the initial credits; each
//! later period holds the refill's amount, whatever was left before (unused
//! credits do not pile up). A fresh cell is `(0, 0)`, so a ledger needs to
//! know nothing about a key to start spending it. The in-process
//! [`MemoryLedger`] applies it under a lock; a distributed ledger (the Redis
//! one in `agx-auth-redis`) applies the same arithmetic atomically where the
//! cells live, so that spending is exact across instances.
//!
//! A ledger's cell is named by the [`CreditAccount`]'s pool and the moment
//! its credits were set: setting a key's credits again starts a new cell,
//! and a rolled key, which shares its predecessor's pool and moment, spends
//! from the same cell, so a roll neither refills nor doubles the credits.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use crate::key::KeyId;
use crate::lookup::Lookup;

/// The most credits a key may hold, and the most a refill may give:
/// 2^53 − 1, so that a ledger that counts in floating point (Lua's numbers
/// in Redis) counts exactly, and so does a JSON client (JavaScript's
/// `Number.MAX_SAFE_INTEGER`).
pub const MAX_CREDITS: u64 = (1 << 53) - 1;

/// A key's credits as they are given: how many uses it starts with, and its
/// refill.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Credits {
    pub initial: u64,
    pub refill: Option<Refill>,
}

/// Every `interval` from the moment the credits were set, the key holds
/// `amount` again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refill {
    pub amount: u64,
    pub interval: Duration,
}

/// Credits as a key record holds them: what was given, when, and whose
/// cell they are spent from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CreditAccount {
    pub credits: Credits,
    /// The key the credits were first given to. A roll passes the account
    /// on whole, so the old key (in its grace period) and the new one spend
    /// from one cell.
    pub pool: KeyId,
    /// When the credits were set: refill periods count from here, and
    /// setting them again starts a fresh cell.
    pub since: SystemTime,
}

impl CreditAccount {
    /// An account of `credits` in `pool`, starting at `at` to the
    /// millisecond: what every store keeps of the start, so that a record
    /// read back from any store names the same cell.
    pub fn starting(credits: Credits, pool: KeyId, at: SystemTime) -> Self {
        let since = at.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
        let ms = u64::try_from(since.as_millis()).unwrap_or(u64::MAX);
        CreditAccount { credits, pool, since: SystemTime::UNIX_EPOCH + Duration::from_millis(ms) }
    }

    /// The refill period `now` falls in.
    pub fn period(&self, now: SystemTime) -> u64 {
        self.credits.period(self.since, now)
    }

    /// [`since`](Self::since) in milliseconds since the Unix epoch: with the
    /// pool, the name of the account's cell (stores keep `since` to the
    /// millisecond, so every instance names the cell alike).
    pub fn epoch_ms(&self) -> u64 {
        let since = self.since.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
        u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
    }

    /// When `period` ends and the next refill comes; `None` without a refill.
    pub fn refills_at(&self, period: u64) -> Option<SystemTime> {
        let interval = self.credits.refill.map(|r| r.interval).filter(|i| !i.is_zero())?;
        let periods = u32::try_from(period.saturating_add(1)).ok()?;
        self.since.checked_add(interval.checked_mul(periods)?)
    }
}

/// What a key has spent in one refill period.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CreditCell {
    pub period: u64,
    pub spent: u64,
}

/// The answer to one spend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CreditDecision {
    /// Spent; this many are left in the period.
    Spent { remaining: u64 },
    /// Not enough left: nothing spent. `remaining` may be above zero when
    /// the cost is above one.
    Exhausted { remaining: u64 },
}

impl Credits {
    /// The refill period `now` falls in, counted from `since` (0 before
    /// the first refill, and always 0 without one).
    pub fn period(&self, since: SystemTime, now: SystemTime) -> u64 {
        match self.refill {
            Some(r) if !r.interval.is_zero() => {
                let age = now.duration_since(since).unwrap_or_default();
                u64::try_from(age.as_nanos() / r.interval.as_nanos()).unwrap_or(u64::MAX)
            }
            _ => 0,
        }
    }

    /// What `period` holds: the initial credits in period 0 (and always,
    /// without a refill), the refill's amount after.
    pub fn allowance(&self, period: u64) -> u64 {
        match (period, self.refill) {
            (0, _) | (_, None) => self.initial,
            (_, Some(r)) => r.amount,
        }
    }
}

/// One spend of `cost` from `cell` in `period`: the decision and, when
/// something was spent, the cell to store.
pub fn spend_credits(
    cell: CreditCell,
    credits: &Credits,
    period: u64,
    cost: u64,
) -> (CreditDecision, Option<CreditCell>) {
    let cell = fresh(cell, credits, period);
    let remaining = credits.allowance(cell.period).saturating_sub(cell.spent);
    if remaining >= cost {
        let left = remaining - cost;
        (CreditDecision::Spent { remaining: left }, Some(CreditCell { spent: cell.spent + cost, ..cell }))
    } else {
        (CreditDecision::Exhausted { remaining }, None)
    }
}

/// The cell as `period` finds it: a later period of a key with a refill
/// starts afresh; anything else (no refill, a clock that went back) is the
/// cell's own period.
fn fresh(cell: CreditCell, credits: &Credits, period: u64) -> CreditCell {
    if period > cell.period && credits.refill.is_some() { CreditCell { period, spent: 0 } } else { cell }
}

/// What is left in `cell` at `period`, spending nothing.
pub fn remaining_credits(cell: CreditCell, credits: &Credits, period: u64) -> u64 {
    let cell = fresh(cell, credits, period);
    credits.allowance(cell.period).saturating_sub(cell.spent)
}

/// The ledger cannot answer; the authenticator fails closed (503), because
/// a key whose credits cannot be counted must not be used for free.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerError(pub Cow<'static, str>);

impl fmt::Display for LedgerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "credit ledger unavailable: {}", self.0)
    }
}

impl std::error::Error for LedgerError {}

/// Where credit cells live. In-process here ([`MemoryLedger`]); a
/// distributed ledger implements the same trait with [`spend_credits`]'s
/// arithmetic so that spending is exact across instances.
pub trait CreditLedger: Send + Sync + 'static {
    /// Spends `cost` of the account's credits at `now`, whole or not at all.
    fn spend(
        &self,
        account: CreditAccount,
        cost: u64,
        now: SystemTime,
    ) -> Lookup<'_, Result<CreditDecision, LedgerError>>;

    /// What is left at `now`, spending nothing.
    fn remaining(&self, account: CreditAccount, now: SystemTime) -> Lookup<'_, Result<u64, LedgerError>>;
}

/// Credit cells in process memory: exact under concurrency (one lock per
/// spend), per instance.
#[derive(Default)]
pub struct MemoryLedger {
    cells: Mutex<HashMap<(KeyId, u64), CreditCell, foldhash::fast::RandomState>>,
}

impl MemoryLedger {
    pub fn new() -> Self {
        Self::default()
    }

    fn cells(&self) -> std::sync::MutexGuard<'_, HashMap<(KeyId, u64), CreditCell, foldhash::fast::RandomState>> {
        // A poisoned lock only means a thread panicked between two plain
        // writes of a map of copies: the map is whole.
        self.cells.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl CreditLedger for MemoryLedger {
    fn spend(
        &self,
        account: CreditAccount,
        cost: u64,
        now: SystemTime,
    ) -> Lookup<'_, Result<CreditDecision, LedgerError>> {
        let mut cells = self.cells();
        // One probe: a fresh cell is (0, 0), the same as none.
        let cell = cells.entry((account.pool, account.epoch_ms())).or_default();
        let (decision, stored) = spend_credits(*cell, &account.credits, account.period(now), cost);
        if let Some(stored) = stored {
            *cell = stored;
        }
        Lookup::ready(Ok(decision))
    }

    fn remaining(&self, account: CreditAccount, now: SystemTime) -> Lookup<'_, Result<u64, LedgerError>> {
        let cell = self.cells().get(&(account.pool, account.epoch_ms())).copied().unwrap_or_default();
        Lookup::ready(Ok(remaining_credits(cell, &account.credits, account.period(now))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn credits_run_out_and_refill_to_the_amount() {
        let credits = Credits { initial: 3, refill: Some(Refill { amount: 2, interval: HOUR }) };
        let mut cell = CreditCell::default();
        for left in [2, 1, 0] {
            let (d, next) = spend_credits(cell, &credits, 0, 1);
            assert_eq!(d, CreditDecision::Spent { remaining: left });
            cell = next.unwrap();
        }
        assert_eq!(spend_credits(cell, &credits, 0, 1), (CreditDecision::Exhausted { remaining: 0 }, None));
        // The next period holds the amount, not the amount plus what was left.
        assert_eq!(remaining_credits(cell, &credits, 1), 2);
        let (d, next) = spend_credits(cell, &credits, 5, 2);
        assert_eq!(d, CreditDecision::Spent { remaining: 0 });
        assert_eq!(next, Some(CreditCell { period: 5, spent: 2 }));
        // A clock that went back is no refill.
        assert_eq!(spend_credits(next.unwrap(), &credits, 4, 1).0, CreditDecision::Exhausted { remaining: 0 });
    }

    #[test]
    fn a_cost_is_spent_whole_or_not_at_all() {
        let credits = Credits { initial: 5, refill: None };
        let (_, cell) = spend_credits(CreditCell::default(), &credits, 0, 4);
        assert_eq!(spend_credits(cell.unwrap(), &credits, 0, 2), (CreditDecision::Exhausted { remaining: 1 }, None));
        assert_eq!(spend_credits(cell.unwrap(), &credits, 9, 1).0, CreditDecision::Spent { remaining: 0 }, "no refill");
    }

    #[test]
    fn periods_count_from_creation() {
        let created = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let credits = Credits { initial: 1, refill: Some(Refill { amount: 1, interval: HOUR }) };
        assert_eq!(credits.period(created, created), 0);
        assert_eq!(credits.period(created, created + HOUR - Duration::from_nanos(1)), 0);
        assert_eq!(credits.period(created, created + HOUR), 1);
        assert_eq!(credits.period(created, created - HOUR), 0, "before creation");
        assert_eq!(Credits { initial: 1, refill: None }.period(created, created + 9 * HOUR), 0);
    }

    #[test]
    fn the_memory_ledger_is_exact_under_concurrency() {
        let ledger = std::sync::Arc::new(MemoryLedger::new());
        let account = CreditAccount {
            credits: Credits { initial: 1_000, refill: None },
            pool: KeyId(7),
            since: SystemTime::UNIX_EPOCH,
        };
        let now = SystemTime::now();
        let spent: u64 = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    let ledger = ledger.clone();
                    s.spawn(move || {
                        (0..200)
                            .filter(|_| {
                                let decision = futures_now(ledger.spend(account, 1, now));
                                matches!(decision, Ok(CreditDecision::Spent { .. }))
                            })
                            .count() as u64
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(spent, 1_000, "1,600 tries, exactly 1,000 spent");
        assert_eq!(futures_now(ledger.remaining(account, now)), Ok(0));
        // Credits set again are a new cell; the old one is not consulted.
        let reset = CreditAccount { since: SystemTime::UNIX_EPOCH + Duration::from_secs(1), ..account };
        assert_eq!(futures_now(ledger.remaining(reset, now)), Ok(1_000));
    }

    #[test]
    fn refills_come_at_the_end_of_each_period() {
        let since = SystemTime::UNIX_EPOCH + Duration::from_secs(10);
        let account = CreditAccount {
            credits: Credits { initial: 1, refill: Some(Refill { amount: 1, interval: HOUR }) },
            pool: KeyId(1),
            since,
        };
        assert_eq!(account.refills_at(0), Some(since + HOUR));
        assert_eq!(account.refills_at(2), Some(since + 3 * HOUR));
        assert_eq!(CreditAccount { credits: Credits { initial: 1, refill: None }, ..account }.refills_at(0), None);
        assert_eq!(account.refills_at(u64::MAX), None, "beyond what time can hold");
    }

    /// A memory ledger's lookups are ready at once.
    fn futures_now<T>(lookup: Lookup<'_, T>) -> T {
        match lookup {
            Lookup::Ready(Some(value)) => value,
            _ => panic!("the memory ledger never waits"),
        }
    }
}
