//! The `RateLimit-Policy` and `RateLimit` field values, built once where
//! they can be.
//!
//! A `HeaderValue` owns its bytes, so a value built per response is a heap
//! allocation per response. The policy of a class's default quota never
//! changes, and the `RateLimit` value of a quota can take only so many
//! forms: `remaining` is at most the burst, and for each remaining count the
//! seconds until full (`t`) span only the few whole seconds of one interval.
//! So for every default quota of up to [`MAX_TABLED_PER_MINUTE`] requests a
//! minute, every value it can produce is built at start, and a verdict hands
//! out a clone (a reference count, not an allocation). A key's own override,
//! or a larger quota, gets its value built when the response needs it.

use http::HeaderValue;

use crate::error::ceil_secs;
use crate::limit::{Quota, RateLimitStatus};
use crate::route::EndpointClass;

/// The largest default quota whose `RateLimit` values are built at start:
/// about two values per remaining count, so some 2,400 values (~150 KB) at
/// most per class.
pub const MAX_TABLED_PER_MINUTE: u32 = 1200;

/// The values of every class's default quota.
#[derive(Debug, Default)]
pub(crate) struct FieldValues {
    defaults: Vec<DefaultQuota>,
}

#[derive(Debug)]
struct DefaultQuota {
    class: EndpointClass,
    quota: Quota,
    policy: HeaderValue,
    ratelimit: Option<Table>,
}

impl FieldValues {
    pub(crate) fn new(defaults: impl IntoIterator<Item = (EndpointClass, Quota)>) -> Self {
        let mut out: Vec<DefaultQuota> = Vec::new();
        for (class, quota) in defaults {
            if !out.iter().any(|d| d.class == class) {
                let ratelimit = (quota.get() <= MAX_TABLED_PER_MINUTE).then(|| Table::new(class, quota));
                out.push(DefaultQuota { class, quota, policy: policy_value(class, quota), ratelimit });
            }
        }
        FieldValues { defaults: out }
    }

    fn default_of(&self, class: EndpointClass, quota: Quota) -> Option<&DefaultQuota> {
        self.defaults.iter().find(|d| d.class == class && d.quota == quota)
    }

    /// The `RateLimit-Policy` value: built once for default quotas.
    pub(crate) fn policy(&self, class: EndpointClass, quota: Quota) -> HeaderValue {
        self.default_of(class, quota).map_or_else(|| policy_value(class, quota), |d| d.policy.clone())
    }

    /// The `RateLimit` value, if it was built at start.
    pub(crate) fn tabled(&self, status: &RateLimitStatus) -> Option<HeaderValue> {
        self.default_of(status.class, status.quota)?.ratelimit.as_ref()?.get(status)
    }
}

/// Every `RateLimit` value of one (class, quota): row `r` holds the values
/// for `r` remaining, from `t = first[r]` on.
#[derive(Debug)]
struct Table {
    rows: Vec<(u64, Vec<HeaderValue>)>,
}

impl Table {
    fn new(class: EndpointClass, quota: Quota) -> Self {
        let (interval, limit) = (quota.interval_ns(), quota.limit_ns());
        let burst = u64::from(quota.get());
        let rows = (0..=burst)
            .map(|r| {
                // `r` remain while the time used is in
                // (limit - (r + 1) T, limit - r T], and never below 0.
                let most = limit.saturating_sub(r * interval);
                let least = match limit.checked_sub((r + 1) * interval) {
                    Some(below) => below + 1,
                    None => 0,
                };
                let (first, last) = (ceil_ns(least), ceil_ns(most));
                let values = (first..=last)
                    .map(|t| ratelimit_value_of(class, u32::try_from(r).unwrap_or(u32::MAX), t))
                    .collect();
                (first, values)
            })
            .collect();
        Table { rows }
    }

    fn get(&self, status: &RateLimitStatus) -> Option<HeaderValue> {
        let (first, values) = self.rows.get(usize::try_from(status.remaining).ok()?)?;
        let t = ceil_secs(status.reset);
        values.get(usize::try_from(t.checked_sub(*first)?).ok()?).cloned()
    }
}

fn ceil_ns(ns: u64) -> u64 {
    ceil_secs(std::time::Duration::from_nanos(ns))
}

/// `"chat";q=60;w=60`.
pub(crate) fn policy_value(class: EndpointClass, quota: Quota) -> HeaderValue {
    let mut v = HeaderBuf::new();
    v.quoted(class.as_str()).text(";q=").number(quota.get().into()).text(";w=").number(quota.window_secs().into());
    v.finish()
}

/// `"chat";r=59;t=1`: `t` is the time until the budget is full again, in
/// whole seconds rounded up.
pub(crate) fn ratelimit_value(status: &RateLimitStatus) -> HeaderValue {
    ratelimit_value_of(status.class, status.remaining, status.reset_secs())
}

fn ratelimit_value_of(class: EndpointClass, remaining: u32, t: u64) -> HeaderValue {
    let mut v = HeaderBuf::new();
    v.quoted(class.as_str()).text(";r=").number(remaining.into()).text(";t=").number(t);
    v.finish()
}

/// A header value built on the stack, without `format!`: the only
/// allocation is the `HeaderValue`'s own. Text past the capacity is dropped,
/// which only a class name of some 60 characters could reach.
struct HeaderBuf {
    bytes: [u8; 96],
    len: usize,
}

impl HeaderBuf {
    fn new() -> Self {
        HeaderBuf { bytes: [0; 96], len: 0 }
    }

    fn text(&mut self, s: &str) -> &mut Self {
        self.bytes_of(s.as_bytes())
    }

    fn bytes_of(&mut self, s: &[u8]) -> &mut Self {
        let n = s.len().min(self.bytes.len() - self.len);
        self.bytes[self.len..self.len + n].copy_from_slice(&s[..n]);
        self.len += n;
        self
    }

    fn quoted(&mut self, s: &str) -> &mut Self {
        self.text("\"").text(s).text("\"")
    }

    fn number(&mut self, mut n: u64) -> &mut Self {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.bytes_of(&digits[i..])
    }

    fn finish(&self) -> HeaderValue {
        HeaderValue::from_bytes(&self.bytes[..self.len]).unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limit::status_at;

    /// Every status the core's arithmetic can report for a quota finds its
    /// value in the table, and it is the value built on demand.
    #[test]
    fn the_table_holds_every_value_a_quota_can_produce() {
        for per_minute in [1, 2, 7, 60, 61, 600, 1000, MAX_TABLED_PER_MINUTE] {
            let quota = Quota::try_per_minute(per_minute).unwrap();
            let table = Table::new(EndpointClass::CHAT, quota);
            let now = 1_000_000_000_000u64;
            // TATs from "full" to "empty", in steps that hit every
            // boundary's neighbours.
            let step = (quota.interval_ns() / 7).max(1);
            let mut used = 0;
            let mut checked = 0;
            while used <= quota.limit_ns() {
                for u in [used.saturating_sub(1), used, used + 1] {
                    if u > quota.limit_ns() {
                        continue;
                    }
                    let status = status_at(now + u, now, EndpointClass::CHAT, quota);
                    let value = table.get(&status).unwrap_or_else(|| panic!("{per_minute}/min, used {u}: not tabled"));
                    assert_eq!(value, ratelimit_value(&status));
                    checked += 1;
                }
                used += step.min(1_000_000_000);
            }
            assert!(checked > 3 * u64::from(per_minute));
        }
    }

    #[test]
    fn values_outside_a_table_are_not_guessed() {
        let quota = Quota::try_per_minute(60).unwrap();
        let table = Table::new(EndpointClass::CHAT, quota);
        let impossible = RateLimitStatus {
            class: EndpointClass::CHAT,
            quota,
            remaining: 61,
            reset: std::time::Duration::from_secs(3),
        };
        assert!(table.get(&impossible).is_none());
        let big = FieldValues::new([(EndpointClass::CHAT, Quota::try_per_minute(MAX_TABLED_PER_MINUTE + 1).unwrap())]);
        assert!(big.defaults[0].ratelimit.is_none());
    }
}
