//! Usage credits: a key may carry a number of uses, optionally refilled
//! every interval, and each admitted request spends its route's cost.
//!
//! Like the limiter's GCRA, the arithmetic is one pure function,
//! [`spend_credits`], over a small cell: the refill period the cell was last
//! touched in and what was spent in it. Period 0 runs from the key's
//! creation to its first refill and holds the key's initial credits; each
//! later period holds the refill's amount, whatever was left before (unused
//! credits do not pile up). A fresh cell is `(0, 0)`, so a store of cells
//! needs to know nothing about a key to start spending it. The in-process
//! [`MemoryLedger`] applies it under a lock; a distributed ledger applies
//! the same arithmetic atomically where the cells live.
//!
//! Not wired into the verdict yet: keys do not carry credits until the
//! store, the Redis ledger and the admin API hold them (issue 16, part 2).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use crate::key::KeyId;

/// A key's credits: how many uses it starts with, and its refill.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Credits {
    pub initial: u64,
    pub refill: Option<Refill>,
}

/// Every `interval` from the key's creation, the key holds `amount` again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refill {
    pub amount: u64,
    pub interval: Duration,
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
    /// The refill period `now` falls in, counted from `created` (0 before
    /// the first refill, and always 0 without one).
    pub fn period(&self, created: SystemTime, now: SystemTime) -> u64 {
        match self.refill {
            Some(r) if !r.interval.is_zero() => {
                let age = now.duration_since(created).unwrap_or_default();
                u64::try_from(age.as_nanos() / r.interval.as_nanos()).unwrap_or(u64::MAX)
            }
            _ => 0,
        }
    }

    fn allowance(&self, period: u64) -> u64 {
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

/// Credit cells in process memory: exact under concurrency (one lock per
/// spend), per instance.
#[derive(Default)]
pub struct MemoryLedger {
    cells: Mutex<HashMap<KeyId, CreditCell, foldhash::fast::RandomState>>,
}

impl MemoryLedger {
    pub fn new() -> Self {
        Self::default()
    }

    /// Spends `cost` of `key`'s credits in `period`.
    pub fn spend(&self, key: KeyId, credits: &Credits, period: u64, cost: u64) -> CreditDecision {
        let mut cells = self.cells.lock().unwrap_or_else(|e| e.into_inner());
        let cell = cells.get(&key).copied().unwrap_or_default();
        let (decision, stored) = spend_credits(cell, credits, period, cost);
        if let Some(stored) = stored {
            cells.insert(key, stored);
        }
        decision
    }

    pub fn remaining(&self, key: KeyId, credits: &Credits, period: u64) -> u64 {
        let cells = self.cells.lock().unwrap_or_else(|e| e.into_inner());
        remaining_credits(cells.get(&key).copied().unwrap_or_default(), credits, period)
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
        let credits = Credits { initial: 1_000, refill: None };
        let key = KeyId(7);
        let spent: u64 = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    let ledger = ledger.clone();
                    s.spawn(move || {
                        (0..200)
                            .filter(|_| matches!(ledger.spend(key, &credits, 0, 1), CreditDecision::Spent { .. }))
                            .count() as u64
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(spent, 1_000, "1,600 tries, exactly 1,000 spent");
        assert_eq!(ledger.remaining(key, &credits, 0), 0);
    }
}
