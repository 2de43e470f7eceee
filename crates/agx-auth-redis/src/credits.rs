//! Usage credits that hold across instances: [`RedisLimiter`] is also a
//! [`CreditLedger`], on the same connection, deadline and breaker.
//!
//! Each credit account is one cell, a hash spent by one Lua script
//! (`credits.lua`) that runs the arithmetic of [`agx_auth::spend_credits`]
//! atomically: N instances spend one balance, and no two can spend its last
//! credit. The refill period comes from the caller's clock: periods are
//! long (a second at the least), and a caller whose clock is behind only
//! sees the cell's own period, never an extra refill.
//!
//! Unlike the rate limit, credits always fail closed while Redis is out,
//! whatever [`OnOutage`](crate::OnOutage) says: an in-process fallback would
//! start every instance's count afresh, and credits are often what a
//! customer pays for.
//!
//! A cell of an account with a refill expires when its period ends (plus a
//! minute), because a missing cell then means the same as a fresh one; a
//! cell of an account without one is kept as long as Redis keeps it.

use std::time::SystemTime;

use agx_auth::{CreditAccount, CreditDecision, CreditLedger, LedgerError, Lookup};
use redis::{ErrorKind, ServerErrorKind};

use crate::{Failure, RedisLimiter};

/// The credits step, atomically, in Redis. See the script's header.
pub(crate) const SCRIPT: &str = include_str!("credits.lua");

/// Slack after a period's end before its cell may expire.
const EXPIRY_SLACK_MS: u128 = 60_000;

impl RedisLimiter {
    /// The account's cell: `<prefix>:credits:<pool>:<epoch ms>`. A class
    /// name cannot be `credits:…`, so no rate-limit cell shares the name.
    fn credit_cell(&self, account: &CreditAccount) -> String {
        format!("{}:credits:{}:{}", self.settings.prefix, account.pool, account.epoch_ms())
    }

    /// One run of the script: whether `cost` was spent, and what is left.
    async fn run_credits(&self, account: CreditAccount, cost: u64, now: SystemTime) -> Result<(bool, u64), Failure> {
        let period = account.period(now);
        let amount = account.credits.refill.map_or_else(String::new, |r| r.amount.to_string());
        let ttl_ms = account
            .refills_at(period)
            .map(|at| at.duration_since(now).unwrap_or_default().as_millis() + EXPIRY_SLACK_MS)
            .map_or_else(String::new, |ms| ms.to_string());
        let cell = self.credit_cell(&account);
        let invoke = |verb: &str, script: &str| {
            let mut cmd = redis::cmd(verb);
            cmd.arg(script)
                .arg(1)
                .arg(&cell)
                .arg(period)
                .arg(account.credits.initial)
                .arg(&amount)
                .arg(cost)
                .arg(&ttl_ms);
            cmd
        };
        let mut connection = self.connection();
        let call = async {
            match connection.query::<(i64, i64)>(&invoke("EVALSHA", &self.credits_digest)).await {
                Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                    connection.query(&invoke("EVAL", SCRIPT)).await
                }
                reply => reply,
            }
        };
        let (spent, left) = self.within_deadline(call).await?;
        let left = u64::try_from(left).map_err(|_| Failure::cell("Redis returned a negative balance".into()))?;
        Ok((spent == 1, left))
    }

    /// A credits call through Redis, answered by `answer` from (spent, left),
    /// or a refusal while the breaker is open.
    fn credits_call<T: Send + 'static>(
        &self,
        (account, cost, now): (CreditAccount, u64, SystemTime),
        answer: fn(bool, u64) -> T,
    ) -> Lookup<'_, Result<T, LedgerError>> {
        let Some(pass) = self.breaker.pass() else {
            return Lookup::ready(Err(LedgerError("Redis is unreachable".into())));
        };
        Lookup::pending(async move {
            let outcome = async {
                if pass == crate::Pass::Probe && self.suspect.load(std::sync::atomic::Ordering::Acquire) {
                    self.replace_connection().await?;
                }
                self.run_credits(account, cost, now).await
            };
            match outcome.await {
                Ok((spent, left)) => {
                    self.record_success(pass);
                    Ok(answer(spent, left))
                }
                Err(failure) => {
                    self.record_failure(&failure, pass);
                    Err(LedgerError(failure.error.0))
                }
            }
        })
    }
}

impl CreditLedger for RedisLimiter {
    fn spend(
        &self,
        account: CreditAccount,
        cost: u64,
        now: SystemTime,
    ) -> Lookup<'_, Result<CreditDecision, LedgerError>> {
        // The script reads on a cost of 0; a spend of nothing always succeeds.
        let answer = if cost == 0 { |_, remaining| CreditDecision::Spent { remaining } } else { decision };
        self.credits_call((account, cost, now), answer)
    }

    fn remaining(&self, account: CreditAccount, now: SystemTime) -> Lookup<'_, Result<u64, LedgerError>> {
        self.credits_call((account, 0, now), |_, remaining| remaining)
    }
}

fn decision(spent: bool, remaining: u64) -> CreditDecision {
    if spent { CreditDecision::Spent { remaining } } else { CreditDecision::Exhausted { remaining } }
}
