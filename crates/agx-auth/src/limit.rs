//! Rate limiting (contract §5): GCRA per key and endpoint class, a burst of
//! the whole per-minute quota and a continuous refill at quota/60 s.
//!
//! GCRA keeps one number per (key, class), the theoretical arrival time
//! (TAT), so state is O(1) and "exact under concurrency" is one
//! compare-and-swap. [`gcra`] is the whole algorithm; the in-process
//! [`GcraLimiter`] and any distributed backend apply the same arithmetic.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use crate::clock::Timestamp;
use crate::key::KeyId;
use crate::lookup::Lookup;
use crate::route::EndpointClass;

const WINDOW_NS: u64 = 60_000_000_000;

/// Requests per minute. Never zero: a class that must not be called is a
/// scope question, not a rate-limit one. The emission interval is computed
/// once here, so a check costs no division for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Quota {
    per_minute: NonZeroU32,
    interval_ns: u64,
    /// `1 / interval_ns` as `f64` bits, so that counting whole intervals is a
    /// multiplication: a 64-bit division is the slowest instruction on the
    /// admit path, and removing it was measured to matter (docs/benchmarks.md).
    per_ns_bits: u64,
}

impl Quota {
    pub const fn per_minute(n: NonZeroU32) -> Self {
        // Rounded up, so the refill is never faster than quota / 60 s.
        let interval_ns = WINDOW_NS.div_ceil(n.get() as u64);
        Quota { per_minute: n, interval_ns, per_ns_bits: (1.0 / interval_ns as f64).to_bits() }
    }

    /// `None` for zero.
    pub fn try_per_minute(n: u32) -> Option<Self> {
        NonZeroU32::new(n).map(Quota::per_minute)
    }

    pub const fn get(self) -> u32 {
        self.per_minute.get()
    }

    /// The window the quota is spread over, always 60 s (`w=60`).
    pub const fn window_secs(self) -> u32 {
        60
    }

    /// The emission interval T = 60 s / q, rounded up, in nanoseconds.
    pub const fn interval_ns(self) -> u64 {
        self.interval_ns
    }

    /// The whole burst, in time: q emission intervals (τ + T in GCRA's terms).
    pub const fn limit_ns(self) -> u64 {
        self.interval_ns * self.per_minute.get() as u64
    }
}

const fn quota(n: u32) -> Quota {
    match NonZeroU32::new(n) {
        Some(n) => Quota::per_minute(n),
        None => panic!("quota must not be zero"),
    }
}

/// Default quotas per endpoint class: `chat` 60, `config` 120,
/// `conversations` 120 per minute (the page lists only the first two), and a
/// fallback for classes a host application adds without a quota.
#[derive(Clone, Debug)]
pub struct RateLimits {
    classes: Vec<(EndpointClass, Quota)>,
    fallback: Quota,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            classes: vec![
                (EndpointClass::CHAT, quota(60)),
                (EndpointClass::CONFIG, quota(120)),
                (EndpointClass::CONVERSATIONS, quota(120)),
            ],
            fallback: quota(60),
        }
    }
}

impl RateLimits {
    /// Sets the default quota of a class.
    pub fn with(mut self, class: EndpointClass, q: Quota) -> Self {
        match self.classes.iter_mut().find(|(c, _)| *c == class) {
            Some(slot) => slot.1 = q,
            None => self.classes.push((class, q)),
        }
        self
    }

    pub fn with_fallback(mut self, q: Quota) -> Self {
        self.fallback = q;
        self
    }

    pub fn quota(&self, class: EndpointClass) -> Quota {
        self.classes.iter().find(|(c, _)| *c == class).map_or(self.fallback, |&(_, q)| q)
    }
}

/// A key's budget for one class, as the `RateLimit` field reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimitStatus {
    pub class: EndpointClass,
    pub quota: Quota,
    /// Requests that would be admitted right now, back to back.
    pub remaining: u32,
    /// Time until the budget is full again.
    pub reset: Duration,
}

impl RateLimitStatus {
    /// [`reset`](Self::reset) in whole seconds, rounded up: the `t` of the
    /// `RateLimit` field, for anything that reports the budget elsewhere.
    pub fn reset_secs(&self) -> u64 {
        crate::error::ceil_secs(self.reset)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateDecision {
    Admit(RateLimitStatus),
    Deny { status: RateLimitStatus, retry_after: Duration },
}

/// The limiter's backend cannot answer; the authenticator fails closed (503).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitError(pub Cow<'static, str>);

impl fmt::Display for LimitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rate limiter unavailable: {}", self.0)
    }
}

impl std::error::Error for LimitError {}

/// A keyed GCRA limiter. In-process here; a distributed backend implements
/// the same trait with the same arithmetic so that the contract holds across
/// instances.
pub trait RateLimiter: Send + Sync + 'static {
    /// Spends one request of `key`'s budget for `class`, or says when to retry.
    fn check(
        &self,
        key: KeyId,
        class: EndpointClass,
        quota: Quota,
        now: Timestamp,
    ) -> Lookup<'_, Result<RateDecision, LimitError>>;

    /// Reports the budget without spending it (for responses that are refused
    /// before step 9: a 403 never uses up a client's quota).
    fn peek(
        &self,
        key: KeyId,
        class: EndpointClass,
        quota: Quota,
        now: Timestamp,
    ) -> Lookup<'_, Result<RateLimitStatus, LimitError>>;
}

/// One GCRA step for a cell whose TAT is `tat` (0 for a fresh cell), at
/// `now`, both in nanoseconds since the Unix epoch. Returns the decision and,
/// on admission, the TAT to store.
pub fn gcra(tat: u64, now: u64, class: EndpointClass, quota: Quota) -> (RateDecision, Option<u64>) {
    let base = tat.max(now);
    let new_tat = base.saturating_add(quota.interval_ns);
    let after = new_tat - now;
    if after > quota.limit_ns() {
        let retry_after = Duration::from_nanos(after - quota.limit_ns());
        (RateDecision::Deny { status: status_at(tat, now, class, quota), retry_after }, None)
    } else {
        (RateDecision::Admit(status_at(new_tat, now, class, quota)), Some(new_tat))
    }
}

/// The budget of a cell whose TAT is `tat`, at `now`: the time until it is
/// full again, and how many whole intervals of the burst are left. Public for
/// the same reason as [`gcra`]: a distributed backend reports from the same
/// arithmetic.
pub fn status_at(tat: u64, now: u64, class: EndpointClass, quota: Quota) -> RateLimitStatus {
    let used = tat.max(now) - now;
    let remaining = whole_intervals(quota.limit_ns().saturating_sub(used), quota);
    RateLimitStatus {
        class,
        quota,
        remaining: u32::try_from(remaining).unwrap_or(u32::MAX),
        reset: Duration::from_nanos(used),
    }
}

/// `n / T` for `n` ≤ 60 s in nanoseconds (< 2^36, exact in `f64`): a
/// multiplication by the precomputed reciprocal, then one correcting step in
/// each direction for the rounding of the estimate.
fn whole_intervals(n: u64, quota: Quota) -> u64 {
    let t = quota.interval_ns;
    let q = (n as f64 * f64::from_bits(quota.per_ns_bits)) as u64;
    if q.saturating_mul(t) > n {
        q - 1
    } else if (q + 1).saturating_mul(t) <= n {
        q + 1
    } else {
        q
    }
}

const SHARDS: usize = 64;
const MIN_SWEEP_AT: usize = 1024;

/// A cell's identity: the key id and the class fingerprint, 24 bytes with
/// 8-byte alignment, so a cell with its TAT is 32 bytes. Classes are told
/// apart by their 64-bit fingerprint alone; two class names of one
/// application colliding in FNV-1a is not a practical concern.
#[derive(Clone, Copy, PartialEq, Eq)]
struct CellKey {
    id: [u64; 2],
    class: u64,
}

/// One word into the hasher: key ids are 128 random bits, so their low half
/// mixed with the class is already a good hash input, and `[u64]` would be
/// hashed as a byte string.
impl std::hash::Hash for CellKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.id[0] ^ self.id[1].rotate_left(17) ^ self.class);
    }
}

fn cell_key(key: KeyId, class: EndpointClass) -> CellKey {
    CellKey { id: [(key.0 >> 64) as u64, key.0 as u64], class: class.fingerprint() }
}

struct Shard {
    cells: HashMap<CellKey, AtomicU64, foldhash::fast::RandomState>,
    /// Size at which the next insert first drops idle cells.
    sweep_at: usize,
}

/// The in-process keyed GCRA limiter.
///
/// Cells live in 64 shards chosen by the key id's low bits (key ids are
/// random, so this spreads for free). A known cell is updated under a shared
/// read lock with one compare-and-swap; only a key's first request in a while
/// takes the write lock. A cell whose TAT has passed holds no information (a
/// fresh cell behaves the same), so inserts drop such idle cells once a shard
/// doubles: memory follows the keys active in the last minute, not every key
/// ever seen.
pub struct GcraLimiter {
    shards: Box<[RwLock<Shard>]>,
}

impl Default for GcraLimiter {
    fn default() -> Self {
        Self::new()
    }
}

impl GcraLimiter {
    pub fn new() -> Self {
        let shards =
            (0..SHARDS).map(|_| RwLock::new(Shard { cells: HashMap::default(), sweep_at: MIN_SWEEP_AT })).collect();
        GcraLimiter { shards }
    }

    fn shard(&self, key: KeyId) -> &RwLock<Shard> {
        &self.shards[(key.0 as usize) % SHARDS]
    }

    fn read(lock: &RwLock<Shard>) -> RwLockReadGuard<'_, Shard> {
        lock.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(lock: &RwLock<Shard>) -> RwLockWriteGuard<'_, Shard> {
        lock.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The synchronous check behind [`RateLimiter::check`].
    pub fn check_at(&self, key: KeyId, class: EndpointClass, quota: Quota, now: Timestamp) -> RateDecision {
        let now = now.0;
        let lock = self.shard(key);
        let k = cell_key(key, class);
        if let Some(cell) = Self::read(lock).cells.get(&k) {
            return update(cell, now, class, quota);
        }
        let mut shard = Self::write(lock);
        if shard.cells.len() >= shard.sweep_at {
            shard.cells.retain(|_, tat| is_recent(*tat.get_mut(), now));
            shard.sweep_at = (shard.cells.len() * 2).max(MIN_SWEEP_AT);
        }
        let cell = shard.cells.entry(k).or_insert_with(|| AtomicU64::new(0));
        update(cell, now, class, quota)
    }

    pub fn peek_at(&self, key: KeyId, class: EndpointClass, quota: Quota, now: Timestamp) -> RateLimitStatus {
        let tat = Self::read(self.shard(key)).cells.get(&cell_key(key, class)).map_or(0, |c| c.load(Ordering::Acquire));
        status_at(tat, now.0, class, quota)
    }

    /// Drops every idle cell now (inserts also do this on their own).
    pub fn sweep(&self, now: Timestamp) {
        for lock in self.shards.iter() {
            Self::write(lock).cells.retain(|_, tat| is_recent(*tat.get_mut(), now.0));
        }
    }

    /// Cells held, idle or not.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| Self::read(s).cells.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A cell whose TAT passed at least a window ago is idle: a fresh cell would
/// behave the same. The margin matters: a request that read the clock
/// before an await must not find its cell swept by a later request and
/// start from a full budget.
fn is_recent(tat: u64, now: u64) -> bool {
    tat.saturating_add(WINDOW_NS) > now
}

fn update(cell: &AtomicU64, now: u64, class: EndpointClass, quota: Quota) -> RateDecision {
    let mut tat = cell.load(Ordering::Acquire);
    loop {
        let (decision, new_tat) = gcra(tat, now, class, quota);
        let Some(new_tat) = new_tat else { return decision };
        match cell.compare_exchange_weak(tat, new_tat, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return decision,
            Err(actual) => tat = actual,
        }
    }
}

impl RateLimiter for GcraLimiter {
    fn check(
        &self,
        key: KeyId,
        class: EndpointClass,
        quota: Quota,
        now: Timestamp,
    ) -> Lookup<'_, Result<RateDecision, LimitError>> {
        Lookup::ready(Ok(self.check_at(key, class, quota, now)))
    }

    fn peek(
        &self,
        key: KeyId,
        class: EndpointClass,
        quota: Quota,
        now: Timestamp,
    ) -> Lookup<'_, Result<RateLimitStatus, LimitError>> {
        Lookup::ready(Ok(self.peek_at(key, class, quota, now)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    const CHAT: EndpointClass = EndpointClass::CHAT;

    fn at(ms: u64) -> Timestamp {
        (UNIX_EPOCH + Duration::from_secs(1_800_000_000) + Duration::from_millis(ms)).into()
    }

    #[test]
    fn burst_then_refill() {
        let l = GcraLimiter::new();
        let q = quota(60);
        let key = KeyId(7);
        for i in 0..60 {
            match l.check_at(key, CHAT, q, at(0)) {
                RateDecision::Admit(s) => {
                    assert_eq!(s.remaining, 59 - i);
                    assert_eq!(s.reset, Duration::from_secs(u64::from(i) + 1));
                }
                d => panic!("request {i} refused: {d:?}"),
            }
        }
        let RateDecision::Deny { retry_after, status } = l.check_at(key, CHAT, q, at(0)) else {
            panic!("61st admitted")
        };
        assert_eq!(retry_after, Duration::from_secs(1));
        assert_eq!(status.remaining, 0);
        assert!(matches!(l.check_at(key, CHAT, q, at(999)), RateDecision::Deny { .. }));
        assert!(matches!(l.check_at(key, CHAT, q, at(1000)), RateDecision::Admit(s) if s.remaining == 0));
        assert_eq!(l.peek_at(key, CHAT, q, at(1000)).remaining, 0);
        assert_eq!(l.peek_at(key, CHAT, q, at(61_000)).remaining, 60);
    }

    #[test]
    fn classes_and_keys_are_independent() {
        let l = GcraLimiter::new();
        let q = quota(1);
        assert!(matches!(l.check_at(KeyId(1), CHAT, q, at(0)), RateDecision::Admit(_)));
        assert!(matches!(l.check_at(KeyId(1), CHAT, q, at(0)), RateDecision::Deny { .. }));
        assert!(matches!(l.check_at(KeyId(1), EndpointClass::CONFIG, q, at(0)), RateDecision::Admit(_)));
        assert!(matches!(l.check_at(KeyId(2), CHAT, q, at(0)), RateDecision::Admit(_)));
    }

    #[test]
    fn exact_under_threads() {
        let l = GcraLimiter::new();
        let admitted = std::sync::atomic::AtomicU32::new(0);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..100 {
                        if let RateDecision::Admit(_) = l.check_at(KeyId(9), CHAT, quota(60), at(0)) {
                            admitted.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        assert_eq!(admitted.into_inner(), 60);
    }

    #[test]
    fn whole_intervals_is_integer_division() {
        for per_minute in [1u32, 2, 7, 60, 120, 1000, 4_000_000_000, u32::MAX] {
            let q = Quota::try_per_minute(per_minute).unwrap();
            let t = q.interval_ns;
            for n in [0u64, 1, t - 1, t, t + 1, 3 * t - 1, 3 * t, 59_999_999_999, 60_000_000_000] {
                assert_eq!(whole_intervals(n, q), n / t, "{n} / {t}");
            }
        }
    }

    #[test]
    fn idle_cells_are_evicted() {
        let l = GcraLimiter::new();
        for i in 0..100_000u128 {
            // Each key is seen once, a second apart: at most the last minute's keys stay idle-free.
            l.check_at(KeyId(i), CHAT, quota(60), at(i as u64 * 1000));
        }
        assert!(l.len() <= SHARDS * MIN_SWEEP_AT, "{} cells held for 100k keys", l.len());
        l.sweep(at(200_000_000 + 60_000));
        assert!(l.is_empty());
    }
}
