//! Failed sign-ins per client address: the dashboard's form and the admin
//! API's bearer tokens alike, 100 a minute (a burst of 100, then one every
//! 0.6 s), through the core's GCRA (`agx_auth::gcra`), one cell per address.
//! Only failures spend budget; an address out of budget is refused before
//! its token is even looked at, so a guesser gets no answer past 100 a
//! minute (dashboard tokens are 192 random bits; the admin token at least
//! 16 characters). Tools that probe authentication on purpose, like
//! schemathesis, stay well under the burst.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use agx_auth::{EndpointClass, Quota, RateDecision, gcra, status_at};

const CLASS: EndpointClass = EndpointClass::new("sign-in");
/// Past this many addresses, cells whose budget is full again are dropped.
const MAX_CELLS: usize = 100_000;

pub struct SignInThrottle {
    quota: Quota,
    cells: Mutex<HashMap<IpAddr, u64>>,
}

impl Default for SignInThrottle {
    fn default() -> Self {
        SignInThrottle {
            quota: Quota::per_minute(std::num::NonZeroU32::new(100).unwrap_or(std::num::NonZeroU32::MIN)),
            cells: Mutex::default(),
        }
    }
}

fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

impl SignInThrottle {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, u64>> {
        self.cells.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `ip` may try a token now.
    pub fn allows(&self, ip: IpAddr) -> bool {
        let tat = self.lock().get(&ip).copied().unwrap_or(0);
        status_at(tat, now_ns(), CLASS, self.quota).remaining > 0
    }

    /// Spends one try of `ip`'s: its token was wrong.
    pub fn failed(&self, ip: IpAddr) {
        let now = now_ns();
        let mut cells = self.lock();
        if cells.len() >= MAX_CELLS {
            cells.retain(|_, tat| *tat > now);
        }
        let tat = cells.get(&ip).copied().unwrap_or(0);
        if let (RateDecision::Admit(_), Some(next)) = gcra(tat, now, CLASS, self.quota) {
            cells.insert(ip, next);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hundred_failures_then_refused() {
        let t = SignInThrottle::default();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        for _ in 0..100 {
            assert!(t.allows(ip));
            t.failed(ip);
        }
        assert!(!t.allows(ip), "the eleventh try within the minute");
        assert!(t.allows("192.0.2.8".parse().unwrap()), "another address has its own budget");
    }
}
