//! Leases: slots a hot cell's instance has already spent in Redis, to admit
//! locally without a round trip.
//!
//! The upper bound (never more than burst + refill across every instance)
//! holds because a lease is spent *before* it is used: the script advances
//! the cell's TAT in Redis by every slot it grants, atomically, exactly as
//! if that many requests had arrived at once. An instance then admits at
//! most the slots it was granted, each once. Nothing is ever admitted that
//! Redis did not count first.
//!
//! What leasing gives up is the other direction: a slot granted to an
//! instance that its clients then stop using is spent for nothing, so the
//! key may be refused a little early elsewhere. Three rules keep that small:
//!
//! - **Only hot cells lease.** A cell asks for one slot (an exact step)
//!   unless its previous Redis call on this instance was less than a lease
//!   lifetime ago; each such call doubles the ask, up to the maximum, and a
//!   cold call starts over at one.
//! - **Only a quarter of what is left.** The script grants, beyond the
//!   caller's own slot, at most a quarter of the slots still free, so that
//!   leases shrink geometrically as a key nears its limit and the last few
//!   slots are spent one exact step at a time.
//! - **Short lives, and handed back.** A slot is usable for the lease
//!   lifetime (by default 50 ms). Slots left when it ends are handed back by
//!   the cell's next call from this instance, in the same script call: the
//!   script moves the TAT back by that many intervals. That keeps the bound:
//!   every admission still moved the TAT forward by one interval that was
//!   never moved back, and the TAT never passes now + burst, so the
//!   admissions since any moment never exceed the burst plus the intervals
//!   elapsed. Slots are lost only when the instance never calls for the cell
//!   again (or that call fails), and then only to the cell's other
//!   instances, until the TAT passes.
//!
//! The `RateLimit` fields of a locally admitted request are computed by the
//! core's [`agx_auth::status_at`] from the lease's own TAT, on Redis's
//! timeline (the time Redis reported, plus the time since on this instance's
//! clock): they count this instance's unused slots as remaining and do not
//! see what other instances spent since the grant.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use agx_auth::{EndpointClass, KeyId, Quota, RateDecision, status_at};

/// How many slots a hot cell may lease, and for how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseSettings {
    /// The most slots one Redis call may grant (the caller's own included).
    pub max_slots: u32,
    /// How long granted slots may be used; unused ones are then dropped.
    pub lifetime: Duration,
}

impl Default for LeaseSettings {
    fn default() -> Self {
        LeaseSettings { max_slots: 64, lifetime: Duration::from_millis(50) }
    }
}

const SHARDS: usize = 32;

/// The leases of one limiter, by cell.
pub(crate) struct Leases {
    settings: LeaseSettings,
    lifetime_ns: u64,
    shards: Box<[Mutex<Shard>]>,
}

#[derive(Default)]
struct Shard {
    cells: HashMap<(KeyId, u64), Lease, foldhash::fast::RandomState>,
    /// Size at which the next grant first drops stale leases.
    sweep_at: usize,
}

/// One cell's lease. Times are nanoseconds since the epoch: `granted_at` on
/// the caller's clock, `redis_at` and `tat` on the clock the script used.
struct Lease {
    granted_at: u64,
    redis_at: u64,
    /// The lease's TAT after the slots used so far.
    tat: u64,
    left: u32,
    /// Slots of an ended lease, for the next Redis call to hand back.
    unused: u32,
    /// Slots the previous Redis call for this cell asked for.
    ask: u32,
}

impl Leases {
    pub(crate) fn new(settings: LeaseSettings) -> Self {
        let lifetime_ns = u64::try_from(settings.lifetime.as_nanos()).unwrap_or(u64::MAX);
        let shards = (0..SHARDS).map(|_| Mutex::new(Shard { sweep_at: 1024, ..Shard::default() })).collect();
        Leases { settings, lifetime_ns, shards }
    }

    fn shard(&self, key: KeyId) -> std::sync::MutexGuard<'_, Shard> {
        self.shards[(key.0 as usize) % SHARDS].lock().unwrap_or_else(|e| e.into_inner())
    }

    fn live(&self, lease: &Lease, now: u64) -> bool {
        now >= lease.granted_at && now - lease.granted_at < self.lifetime_ns
    }

    /// Admits from the cell's lease, if it holds a live slot.
    pub(crate) fn take(&self, key: KeyId, class: EndpointClass, quota: Quota, now: u64) -> Option<RateDecision> {
        let mut shard = self.shard(key);
        let lease = shard.cells.get_mut(&(key, class.fingerprint()))?;
        if lease.left == 0 {
            return None;
        }
        if !self.live(lease, now) {
            lease.unused = lease.unused.saturating_add(std::mem::take(&mut lease.left));
            return None;
        }
        lease.left -= 1;
        let at = lease.redis_at + (now - lease.granted_at);
        lease.tat = lease.tat.max(at) + quota.interval_ns();
        Some(RateDecision::Admit(status_at(lease.tat, at, class, quota)))
    }

    /// What the next Redis call for this cell asks for, and the slots it
    /// hands back. The ask doubles while the cell's calls come within a
    /// lifetime of each other, and is one otherwise.
    pub(crate) fn next_call(&self, key: KeyId, class: EndpointClass, now: u64) -> (u32, u32) {
        let mut shard = self.shard(key);
        let Some(lease) = shard.cells.get_mut(&(key, class.fingerprint())) else { return (1, 0) };
        if !self.live(lease, now) {
            lease.unused = lease.unused.saturating_add(std::mem::take(&mut lease.left));
        }
        let refund = std::mem::take(&mut lease.unused);
        let ask = if self.live(lease, now) { lease.ask.saturating_mul(2).min(self.settings.max_slots) } else { 1 };
        (ask.max(1), refund)
    }

    /// Records a grant of `granted` slots (the caller's own first) at
    /// `redis_at` on the script's clock, whose cell TAT was `tat` before.
    pub(crate) fn grant(
        &self,
        (key, class, quota): (KeyId, EndpointClass, Quota),
        now: u64,
        asked: u32,
        granted: u32,
        tat: u64,
        redis_at: u64,
    ) {
        let mut shard = self.shard(key);
        if shard.cells.len() >= shard.sweep_at {
            shard.cells.retain(|_, l| self.live(l, now));
            shard.sweep_at = (shard.cells.len() * 2).max(1024);
        }
        let mine = tat.max(redis_at) + quota.interval_ns();
        let extra = granted.saturating_sub(1);
        let fresh = Lease { granted_at: now, redis_at, tat: mine, left: extra, unused: 0, ask: asked };
        match shard.cells.get_mut(&(key, class.fingerprint())) {
            // Another call's grant is still live: the slots join it, so
            // that concurrent calls for a hot cell waste nothing.
            Some(lease) if self.live(lease, now) && lease.left > 0 => {
                lease.left = lease.left.saturating_add(extra);
                lease.ask = asked;
            }
            // An ended lease's slots are still to be handed back.
            Some(lease) => {
                let unused = lease.unused.saturating_add(if self.live(lease, now) { 0 } else { lease.left });
                *lease = Lease { unused, ..fresh };
            }
            None => {
                shard.cells.insert((key, class.fingerprint()), fresh);
            }
        }
    }
}
