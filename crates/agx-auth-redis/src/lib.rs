//! A rate limit that holds across instances: the core's GCRA, kept in Redis.
//!
//! An in-process limiter on N instances behind a load balancer admits N × 60
//! requests a minute. [`RedisLimiter`] keeps each (key, endpoint class) cell
//! in Redis and runs the GCRA step as one Lua script, so that every instance
//! spends from the same budget and no two can admit the same slot: Redis
//! runs a script atomically, which is the whole concurrency story.
//!
//! The same limiter is the [`CreditLedger`](agx_auth::CreditLedger) for
//! keys with usage credits (`credits.rs`): one balance across instances,
//! on the same connection, deadline and breaker, and always failing closed.
//!
//! Choices, and why:
//! - **One script, one round trip.** `EVALSHA` with the digest loaded at
//!   start; a `NOSCRIPT` reply (Redis restarted, or `SCRIPT FLUSH`) is
//!   answered with one `EVAL`, which also caches the script again.
//! - **The core decides.** The script applies the arithmetic of
//!   [`agx_auth::gcra`] to write the new TAT, and returns the TAT it read and
//!   the time it used; the decision and the `RateLimit` fields are computed
//!   from those two numbers by the core's own functions, so they cannot
//!   drift from the in-process limiter. A disagreement is reported as an
//!   error (fail closed), never guessed around.
//! - **Cells expire on their own** when their TAT has passed (plus a slack
//!   for clock skew): a passed TAT means the same as no cell, so Redis holds
//!   only the keys active in the last minute or so.
//! - **The `redis` crate's `ConnectionManager`**: one multiplexed connection
//!   per instance that reconnects by itself. Every verdict in flight shares
//!   it (pipelined), so there is no pool to size and no checkout on the hot
//!   path; `deadpool-redis` would add a pool of such connections for no gain
//!   with a single-command workload, and `fred` is a larger client than one
//!   script call needs.
//! - **A deadline per call** ([`RedisSettings::call_timeout`]), and after a
//!   failure a short breaker: for [`RedisSettings::retry_interval`] calls do
//!   not wait on Redis at all, then one call probes. A Redis outage costs
//!   each request nothing more than the chosen fallback.
//! - **Redis down**: [`OnOutage::FailClosed`] (the default) makes the
//!   authenticator answer 503 `AUTH_UNAVAILABLE` with `Retry-After`;
//!   [`OnOutage::FailOpenLocal`] falls back to an in-process limiter (a
//!   per-instance limit, N × quota in all) and warns once per outage. Both
//!   recover on their own when Redis answers again.
//! - **Whose clock**: by default Redis's own `TIME`, so instances whose
//!   clocks disagree still share one timeline ([`TimeSource`]); tests that
//!   hold a manual clock use the caller's.

mod credits;
pub mod lease;
#[cfg(feature = "testing")]
pub mod testing;

pub use lease::LeaseSettings;
use lease::Leases;

/// docs/deployment.md, so that its wiring example is compiled.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/deployment.md")]
pub struct DeploymentGuide;

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use agx_auth::{
    EndpointClass, GcraLimiter, KeyId, LimitError, Lookup, Quota, RateDecision, RateLimitStatus, RateLimiter,
    Timestamp, gcra, redact_url, status_at,
};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, ErrorKind, FromRedisValue, RedisError, ServerErrorKind};

/// The GCRA step, atomically, in Redis. See the script's header for its
/// arguments.
const SCRIPT: &str = include_str!("gcra.lua");

/// What the limiter does while Redis does not answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnOutage {
    /// Refuse: the authenticator answers 503 `AUTH_UNAVAILABLE` with
    /// `Retry-After`. Nothing is admitted that the global limit would not
    /// admit.
    #[default]
    FailClosed,
    /// Keep serving with an in-process limiter: each instance enforces the
    /// quota on its own, so N instances admit up to N × quota until Redis is
    /// back. Warns once when an outage begins and once when it ends.
    FailOpenLocal,
}

/// Whose clock the GCRA step reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TimeSource {
    /// Redis's `TIME`: one timeline for every instance, whatever their own
    /// clocks say. Needs Redis 5 or later (scripts replicated by effects).
    #[default]
    Redis,
    /// The authenticator's clock, as the in-process limiter uses it: what a
    /// test with a manual clock needs. Instances' clock skew then shifts
    /// budgets by the skew (a few milliseconds under NTP).
    Caller,
}

#[derive(Clone, Debug)]
pub struct RedisSettings {
    /// Prefix of every cell's name: `<prefix>:<key id>:<class>`.
    pub prefix: String,
    /// The longest a verdict waits for Redis before the outage rule applies.
    pub call_timeout: Duration,
    /// The longest the initial connection, and each reconnection, may take.
    pub connect_timeout: Duration,
    /// After a failure, how long calls skip Redis before one probes it again.
    pub retry_interval: Duration,
    /// Added to each cell's expiry, to cover clock skew between instances
    /// under [`TimeSource::Caller`].
    pub expiry_slack: Duration,
    pub on_outage: OnOutage,
    pub time_source: TimeSource,
    pub spending: Spending,
}

/// How a verdict spends a key's budget in Redis.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Spending {
    /// One script call per verdict, deciding exactly as one in-process
    /// limiter would, `RateLimit` fields included, whatever the number of
    /// instances.
    #[default]
    Exact,
    /// A hot cell's calls take a few slots at once and admit the rest
    /// locally ([`lease`]): never more than the limit across all instances,
    /// at the cost of slots a client stops using within a lease's lifetime.
    Leased(LeaseSettings),
}

impl Default for RedisSettings {
    fn default() -> Self {
        RedisSettings {
            prefix: "agx:rl".to_owned(),
            call_timeout: Duration::from_millis(250),
            connect_timeout: Duration::from_secs(2),
            retry_interval: Duration::from_secs(1),
            expiry_slack: Duration::from_secs(1),
            on_outage: OnOutage::default(),
            time_source: TimeSource::default(),
            spending: Spending::default(),
        }
    }
}

/// Starting the limiter failed. The URL is named without its password.
#[derive(Debug)]
pub enum RedisLimiterError {
    InvalidUrl { url: String, reason: String },
    Unreachable { url: String, reason: String },
}

impl fmt::Display for RedisLimiterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RedisLimiterError::InvalidUrl { url, reason } => write!(f, "invalid Redis URL {url}: {reason}"),
            RedisLimiterError::Unreachable { url, reason } => write!(f, "cannot reach Redis at {url}: {reason}"),
        }
    }
}

impl std::error::Error for RedisLimiterError {}

/// The keyed GCRA limiter, in Redis.
pub struct RedisLimiter {
    deployment: Deployment,
    /// Replaced whole after a call timed out: see [`RedisLimiter::replace_connection`].
    connection: RwLock<Connection>,
    /// A call timed out, so the connection may be dead without knowing it.
    suspect: AtomicBool,
    digest: String,
    /// The credits script's digest ([`credits`]).
    credits_digest: String,
    settings: RedisSettings,
    slack_ms: u64,
    /// Used only under [`OnOutage::FailOpenLocal`] while Redis is out.
    local: GcraLimiter,
    breaker: Breaker,
    /// Under [`Spending::Leased`].
    leases: Option<Leases>,
    /// Script calls sent, for tests and benches.
    calls: AtomicU64,
}

impl fmt::Debug for RedisLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisLimiter")
            .field("settings", &self.settings)
            .field("outage", &self.in_outage())
            .finish_non_exhaustive()
    }
}

impl RedisLimiter {
    /// Connects to one Redis (or the primary of a replicated pair behind one
    /// address), and loads the script (which also checks that it compiles).
    /// An unreachable Redis is an error here, in either outage mode, so that
    /// a wrong URL stops the service at start rather than degrading it
    /// silently; outages after start follow [`RedisSettings::on_outage`].
    pub async fn connect(url: &str, settings: RedisSettings) -> Result<Self, RedisLimiterError> {
        let client = redis::Client::open(url)
            .map_err(|e| RedisLimiterError::InvalidUrl { url: redact_url(url), reason: e.to_string() })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(settings.connect_timeout))
            .set_response_timeout(Some(settings.call_timeout))
            // Reconnection is driven by calls (and the breaker's probes), so
            // a failed attempt is reported rather than retried at length.
            .set_number_of_retries(1)
            .set_max_delay(settings.retry_interval);
        Self::start(Deployment::Single { client, config }, redact_url(url), settings).await
    }

    /// Connects to a Redis Cluster through any of its nodes (`seeds`: one
    /// is enough, more survive one being down at start), and loads the
    /// script on every primary.
    ///
    /// A cell is one key, so each verdict is one `EVALSHA` sent straight to
    /// the primary of the cell's slot: the cluster's capacity grows with its
    /// shards, and nothing is ever sent to two of them. The client follows
    /// `MOVED` and `ASK` redirections and refreshes its slot map when a
    /// primary fails over; a promoted replica that does not hold the script
    /// yet answers `NOSCRIPT`, which is answered with one `EVAL` as on a
    /// single Redis. One breaker covers the whole cluster: with the
    /// cluster's default `cluster-require-full-coverage yes`, a cluster
    /// missing a shard refuses every key anyway.
    pub async fn connect_cluster<S: AsRef<str>>(
        seeds: &[S],
        settings: RedisSettings,
    ) -> Result<Self, RedisLimiterError> {
        let named = seeds.iter().map(|s| redact_url(s.as_ref())).collect::<Vec<_>>().join(",");
        if seeds.is_empty() {
            return Err(RedisLimiterError::InvalidUrl { url: named, reason: "no cluster node given".into() });
        }
        let client = ClusterClientBuilder::new(seeds.iter().map(AsRef::as_ref))
            .connection_timeout(settings.connect_timeout)
            .response_timeout(settings.call_timeout)
            // Redirections and a slot-map refresh after a failover are
            // retried by the client, within the call's deadline.
            .retries(4)
            .min_retry_wait(5)
            .max_retry_wait(u64::try_from(settings.retry_interval.as_millis()).unwrap_or(u64::MAX))
            .build()
            .map_err(|e| RedisLimiterError::InvalidUrl { url: named.clone(), reason: e.to_string() })?;
        Self::start(Deployment::Cluster { client }, named, settings).await
    }

    async fn start(deployment: Deployment, named: String, settings: RedisSettings) -> Result<Self, RedisLimiterError> {
        let unreachable = |reason: String| RedisLimiterError::Unreachable { url: named.clone(), reason };
        let start = async {
            let mut connection = deployment.connect().await?;
            // On a cluster the client sends this to every primary.
            let digest: String = connection.query(redis::cmd("SCRIPT").arg("LOAD").arg(SCRIPT)).await?;
            let credits: String = connection.query(redis::cmd("SCRIPT").arg("LOAD").arg(credits::SCRIPT)).await?;
            Ok::<_, RedisError>((connection, (digest, credits)))
        };
        let (connection, (digest, credits_digest)) = tokio::time::timeout(settings.connect_timeout, start)
            .await
            .map_err(|_| unreachable(format!("no answer within {:?}", settings.connect_timeout)))?
            .map_err(|e| unreachable(e.to_string()))?;
        let slack_ms = u64::try_from(settings.expiry_slack.as_millis()).unwrap_or(u64::MAX);
        let breaker = Breaker::new(settings.retry_interval);
        let leases = match settings.spending {
            Spending::Exact => None,
            Spending::Leased(lease) => Some(Leases::new(lease)),
        };
        Ok(RedisLimiter {
            leases,
            calls: AtomicU64::new(0),
            deployment,
            connection: RwLock::new(connection),
            suspect: AtomicBool::new(false),
            digest,
            credits_digest,
            settings,
            slack_ms,
            local: GcraLimiter::new(),
            breaker,
        })
    }

    /// Whether this limiter talks to a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self.deployment, Deployment::Cluster { .. })
    }

    /// Whether Redis answered the last call (readiness probes use this,
    /// with [`RedisLimiter::ping`]).
    pub fn in_outage(&self) -> bool {
        self.breaker.is_open()
    }

    /// Script calls sent to Redis since start (each verdict that reached
    /// Redis is one; verdicts answered from a lease are none).
    pub fn redis_calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Outages seen since start: each one was logged once.
    pub fn outages(&self) -> u64 {
        self.breaker.outages.load(Ordering::Relaxed)
    }

    pub fn settings(&self) -> &RedisSettings {
        &self.settings
    }

    /// The shared connection (a handle: cloning it is cheap).
    fn connection(&self) -> Connection {
        self.connection.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// A connection whose call timed out may be dead without knowing it: a
    /// Redis host that vanished (failover to a new address, a partition)
    /// never closes the socket, and the connection manager reconnects only
    /// after errors that say the connection dropped, which a timeout does
    /// not. So the probe after a timeout opens a new connection first.
    async fn replace_connection(&self) -> Result<(), Failure> {
        let fresh = self.deployment.connect();
        match tokio::time::timeout(self.settings.call_timeout, fresh).await {
            Ok(Ok(connection)) => {
                *self.connection.write().unwrap_or_else(|e| e.into_inner()) = connection;
                self.suspect.store(false, Ordering::Release);
                Ok(())
            }
            Ok(Err(e)) => Err(Failure::transport(format!("Redis: {e}"))),
            Err(_) => Err(Failure::transport("Redis did not accept a new connection in time".into())),
        }
    }

    /// One `PING` within the call timeout, on a new connection if the
    /// current one timed out (so that a readiness probe heals too).
    pub async fn ping(&self) -> Result<(), LimitError> {
        if self.suspect.load(Ordering::Acquire) {
            self.replace_connection().await.map_err(|f| f.error)?;
        }
        let mut connection = self.connection();
        let ping = redis::cmd("PING");
        self.within_deadline(connection.query::<String>(&ping)).await.map(drop).map_err(|f| f.error)
    }

    /// Awaits one Redis call for at most the call timeout. A timeout, this
    /// deadline's or the connection manager's own (an I/O error), marks the
    /// connection suspect, so that the next probe replaces it.
    async fn within_deadline<T>(&self, call: impl Future<Output = Result<T, RedisError>>) -> Result<T, Failure> {
        match tokio::time::timeout(self.settings.call_timeout, call).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(e)) => {
                if e.is_timeout() {
                    self.suspect.store(true, Ordering::Release);
                }
                Err(Failure::from_redis(&e))
            }
            Err(_) => {
                self.suspect.store(true, Ordering::Release);
                Err(Failure::transport("Redis did not answer in time".into()))
            }
        }
    }

    /// The cell's name. Key ids and class names are not secret.
    fn cell(&self, key: KeyId, class: EndpointClass) -> String {
        format!("{}:{key}:{}", self.settings.prefix, class.as_str())
    }

    /// Runs the script once, asking for `want` slots (0 only reads) after
    /// handing `back` slots back: returns (slots granted, TAT before, now
    /// used).
    async fn run(&self, (key, class, quota, now): Cell, (want, back): (u32, u32)) -> Reply {
        let cell = self.cell(key, class);
        let now = match self.settings.time_source {
            TimeSource::Redis => String::new(),
            TimeSource::Caller => now.0.to_string(),
        };
        let invoke = |verb: &str, script: &str| {
            let mut cmd = redis::cmd(verb);
            cmd.arg(script)
                .arg(1)
                .arg(&cell)
                .arg(&now)
                .arg(quota.interval_ns())
                .arg(quota.limit_ns())
                .arg(want)
                .arg(self.slack_ms)
                .arg(back);
            cmd
        };
        let mut connection = self.connection();
        self.calls.fetch_add(1, Ordering::Relaxed);
        let call = async {
            match connection.query::<(i64, String, String)>(&invoke("EVALSHA", &self.digest)).await {
                Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                    connection.query(&invoke("EVAL", SCRIPT)).await
                }
                reply => reply,
            }
        };
        let (granted, tat, now) = self.within_deadline(call).await?;
        let number = |s: &str| s.parse::<u64>().map_err(|_| Failure::cell("Redis returned a malformed time".into()));
        let granted = u32::try_from(granted).ok().filter(|&g| g <= want.max(1));
        let granted = granted.ok_or_else(|| Failure::cell("Redis granted more slots than were asked for".into()))?;
        Ok((granted, number(&tat)?, number(&now)?))
    }

    /// The outage rule, for a call that did not reach Redis: an error under
    /// [`OnOutage::FailClosed`], the in-process answer otherwise.
    fn fallback<T>(&self, error: LimitError, local: impl FnOnce(&GcraLimiter) -> T) -> Result<T, LimitError> {
        match self.settings.on_outage {
            OnOutage::FailClosed => Err(error),
            OnOutage::FailOpenLocal => Ok(local(&self.local)),
        }
    }

    fn record_failure(&self, failure: &Failure, pass: Pass) {
        if !failure.transport {
            // A reply about one cell (say a cell someone overwrote with
            // junk): this call fails, the others go on. Warned at most once
            // per retry interval, however busy the key.
            if self.breaker.may_warn_about_a_cell() {
                tracing::warn!(error = %failure.error, "the Redis rate limiter could not use a cell");
            }
            return;
        }
        if self.breaker.trip(pass) {
            let then = match self.settings.on_outage {
                OnOutage::FailClosed => "refusing rate-limited requests (503) until it answers",
                OnOutage::FailOpenLocal => "limiting each instance on its own until it answers",
            };
            tracing::warn!(error = %failure.error, "the Redis rate limiter cannot reach Redis; {then}");
        }
    }

    fn record_success(&self, pass: Pass) {
        if let Some(outage) = self.breaker.close(pass) {
            tracing::info!(after = ?outage, "the Redis rate limiter reaches Redis again; one global limit applies");
        }
    }

    /// A call through Redis, or the fallback while the breaker is open.
    fn call<'a, T: Send + 'a>(
        &'a self,
        (key, class, quota, now): Cell,
        want: (u32, u32),
        from_reply: impl FnOnce(u32, u64, u64) -> Result<T, Failure> + Send + 'a,
        local: impl FnOnce(&GcraLimiter) -> T + Send + 'a,
    ) -> Lookup<'a, Result<T, LimitError>> {
        let Some(pass) = self.breaker.pass() else {
            return Lookup::ready(self.fallback(LimitError("Redis is unreachable".into()), local));
        };
        Lookup::pending(async move {
            let outcome = async {
                if pass == Pass::Probe && self.suspect.load(Ordering::Acquire) {
                    self.replace_connection().await?;
                }
                let (granted, tat, now) = self.run((key, class, quota, now), want).await?;
                from_reply(granted, tat, now)
            };
            match outcome.await {
                Ok(answer) => {
                    self.record_success(pass);
                    Ok(answer)
                }
                Err(failure) => {
                    self.record_failure(&failure, pass);
                    self.fallback(failure.error, local)
                }
            }
        })
    }
}

/// Why a call got no decision from Redis, and whether that says Redis is
/// out of reach (the breaker opens) or only that one cell is unusable.
struct Failure {
    error: LimitError,
    transport: bool,
}

impl Failure {
    fn transport(why: String) -> Self {
        Failure { error: LimitError(why.into()), transport: true }
    }

    fn cell(why: Cow<'static, str>) -> Self {
        Failure { error: LimitError(why), transport: false }
    }

    /// Only two replies concern one cell: `WRONGTYPE` (the cell's name holds
    /// another type) and a runtime error of our script (`… user_script:…`,
    /// a cell holding junk). Everything else (I/O, timeouts, and a server
    /// that is loading, read-only, out of memory, busy or refusing our
    /// credentials) means Redis cannot serve anyone.
    fn from_redis(e: &RedisError) -> Self {
        let script_error = e.kind() == ErrorKind::Server(ServerErrorKind::ResponseError)
            && e.detail().is_some_and(|d| d.contains("user_script"));
        let error = format!("Redis: {e}");
        if script_error || e.code() == Some("WRONGTYPE") {
            Failure::cell(error.into())
        } else {
            Failure::transport(error)
        }
    }
}

type Reply = Result<(u32, u64, u64), Failure>;

/// A verdict's cell, its quota, and the caller's time.
type Cell = (KeyId, EndpointClass, Quota, Timestamp);

impl RateLimiter for RedisLimiter {
    fn check(
        &self,
        key: KeyId,
        class: EndpointClass,
        quota: Quota,
        now: Timestamp,
    ) -> Lookup<'_, Result<RateDecision, LimitError>> {
        let (leases, mut want) = (self.leases.as_ref(), (1, 0));
        if let Some(leases) = leases {
            if let Some(decision) = leases.take(key, class, quota, now.0) {
                return Lookup::ready(Ok(decision));
            }
            want = leases.next_call(key, class, now.0);
        }
        let from_reply = move |granted: u32, tat: u64, at: u64| {
            let (decision, _) = gcra(tat, at, class, quota);
            if matches!(decision, RateDecision::Admit(_)) != (granted > 0) {
                return Err(Failure::cell(Cow::Borrowed("the Redis script and the core disagree on a decision")));
            }
            match leases {
                Some(leases) if granted > 0 => leases.grant((key, class, quota), now.0, want.0, granted, tat, at),
                // Refused, but a call that went out at the same time may
                // have leased slots meanwhile: they are this instance's to
                // use, and unused at the end of a burst they are lost.
                Some(leases) => {
                    if let Some(leased) = leases.take(key, class, quota, now.0) {
                        return Ok(leased);
                    }
                }
                None => {}
            }
            Ok(decision)
        };
        self.call((key, class, quota, now), want, from_reply, move |local| local.check_at(key, class, quota, now))
    }

    fn peek(
        &self,
        key: KeyId,
        class: EndpointClass,
        quota: Quota,
        now: Timestamp,
    ) -> Lookup<'_, Result<RateLimitStatus, LimitError>> {
        let from_reply = move |_, tat, at| Ok(status_at(tat, at, class, quota));
        self.call((key, class, quota, now), (0, 0), from_reply, move |local| local.peek_at(key, class, quota, now))
    }
}

/// Where the cells live, and how to open a connection there.
enum Deployment {
    /// One Redis: one multiplexed connection that reconnects by itself.
    Single { client: redis::Client, config: ConnectionManagerConfig },
    /// A Redis Cluster: the client keeps a connection to each primary and
    /// routes each cell's script by its slot.
    Cluster { client: ClusterClient },
}

impl Deployment {
    async fn connect(&self) -> Result<Connection, RedisError> {
        match self {
            Deployment::Single { client, config } => {
                ConnectionManager::new_with_config(client.clone(), config.clone()).await.map(Connection::Single)
            }
            Deployment::Cluster { client } => client.get_async_connection().await.map(Connection::Cluster),
        }
    }
}

/// A handle on the shared connection(s): cloning it is cheap.
#[derive(Clone)]
enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Connection {
    async fn query<T: FromRedisValue>(&mut self, cmd: &Cmd) -> Result<T, RedisError> {
        match self {
            Connection::Single(connection) => cmd.query_async(connection).await,
            Connection::Cluster(connection) => cmd.query_async(connection).await,
        }
    }
}

/// How a call may reach Redis: as a plain call while the breaker is closed
/// (remembering which outage count it saw), or as the one probe of an open
/// breaker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pass {
    Closed { outages: u64 },
    Probe,
}

/// The outage state: closed while Redis answers; open (calls skip Redis)
/// after a failure, until `retry_interval` has passed and one call probes.
///
/// Only the probe closes an open breaker, and only a call that began in the
/// current state opens a closed one: a call that was in flight when an
/// outage began, and is answered late, neither ends that outage nor, failing
/// late, begins a second one.
struct Breaker {
    origin: Instant,
    retry_interval_ns: u64,
    /// 0 while closed; otherwise the time (ns since `origin`) from which the
    /// next call may probe Redis.
    probe_at: AtomicU64,
    /// When the current outage began (ns since `origin`), for the log.
    since: AtomicU64,
    outages: AtomicU64,
    /// When a cell's failure may next be logged (ns since `origin`).
    cell_warning_at: AtomicU64,
}

impl Breaker {
    fn new(retry_interval: Duration) -> Self {
        Breaker {
            origin: Instant::now(),
            retry_interval_ns: u64::try_from(retry_interval.as_nanos()).unwrap_or(u64::MAX).max(1),
            probe_at: AtomicU64::new(0),
            since: AtomicU64::new(0),
            outages: AtomicU64::new(0),
            cell_warning_at: AtomicU64::new(0),
        }
    }

    /// True at most once per retry interval.
    fn may_warn_about_a_cell(&self) -> bool {
        let now = self.elapsed();
        let at = self.cell_warning_at.load(Ordering::Acquire);
        now >= at
            && self
                .cell_warning_at
                .compare_exchange(at, now.saturating_add(self.retry_interval_ns), Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
    }

    fn elapsed(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX).max(1)
    }

    fn is_open(&self) -> bool {
        self.probe_at.load(Ordering::Acquire) != 0
    }

    /// How this call may reach Redis, or `None` when it must not wait on
    /// Redis. Once the retry interval has passed, exactly one caller wins
    /// the probe; the others keep skipping until the probe reports (or, if
    /// it never does, until the next interval's probe).
    fn pass(&self) -> Option<Pass> {
        let outages = self.outages.load(Ordering::Acquire);
        let probe_at = self.probe_at.load(Ordering::Acquire);
        if probe_at == 0 {
            return Some(Pass::Closed { outages });
        }
        let now = self.elapsed();
        if now < probe_at {
            return None;
        }
        let next = now.saturating_add(self.retry_interval_ns);
        self.probe_at
            .compare_exchange(probe_at, next, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
            .then_some(Pass::Probe)
    }

    /// Opens the breaker after a failure; true when this begins an outage.
    fn trip(&self, pass: Pass) -> bool {
        let now = self.elapsed();
        match pass {
            // The probe failed: wait another interval, unless another probe
            // (let through while this one was slow) has closed the breaker
            // since: its success is newer news.
            Pass::Probe => {
                let next = now.saturating_add(self.retry_interval_ns);
                let _ = self.probe_at.fetch_update(Ordering::AcqRel, Ordering::Acquire, |p| (p != 0).then_some(next));
                false
            }
            Pass::Closed { outages } => {
                if self.outages.load(Ordering::Acquire) != outages {
                    // An outage began (and perhaps ended) since this call
                    // started: its failure is old news.
                    return false;
                }
                let began = self
                    .probe_at
                    .compare_exchange(
                        0,
                        now.saturating_add(self.retry_interval_ns),
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    )
                    .is_ok();
                if began {
                    self.since.store(now, Ordering::Release);
                    self.outages.fetch_add(1, Ordering::AcqRel);
                }
                began
            }
        }
    }

    /// Closes the breaker when the probe succeeded; the outage's length.
    fn close(&self, pass: Pass) -> Option<Duration> {
        if pass != Pass::Probe {
            return None;
        }
        (self.probe_at.swap(0, Ordering::AcqRel) != 0)
            .then(|| Duration::from_nanos(self.elapsed().saturating_sub(self.since.load(Ordering::Acquire))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_breaker_lets_one_probe_through_per_interval() {
        let breaker = Breaker::new(Duration::from_millis(30));
        let first = breaker.pass().expect("closed: every call goes to Redis");
        let second = breaker.pass().unwrap();
        assert!(breaker.trip(first), "the first failure begins an outage");
        assert!(!breaker.trip(second), "a second failure does not begin another");
        assert!(breaker.pass().is_none() && breaker.pass().is_none(), "open: calls skip Redis");
        std::thread::sleep(Duration::from_millis(40));
        let passes: Vec<_> = (0..10).filter_map(|_| breaker.pass()).collect();
        assert_eq!(passes, [Pass::Probe], "after the interval exactly one call probes");
        assert!(breaker.close(Pass::Probe).is_some(), "a successful probe ends the outage");
        assert!(breaker.close(Pass::Probe).is_none());
        assert!(matches!(breaker.pass(), Some(Pass::Closed { .. })));
        assert_eq!(breaker.outages.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn late_answers_neither_end_nor_begin_an_outage() {
        let breaker = Breaker::new(Duration::from_millis(30));
        let (early, late) = (breaker.pass().unwrap(), breaker.pass().unwrap());
        assert!(breaker.trip(early));
        // A call that started before the outage is answered now: Redis was
        // reachable once, which says nothing about now.
        assert!(breaker.close(late).is_none());
        assert!(breaker.is_open());
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(breaker.pass(), Some(Pass::Probe));
        assert!(breaker.close(Pass::Probe).is_some());
        // Another call from before the outage fails only now: not a second outage.
        assert!(!breaker.trip(late));
        assert!(!breaker.is_open());
        assert_eq!(breaker.outages.load(Ordering::Relaxed), 1);
        // A call made after the recovery that fails begins the next one.
        let fresh = breaker.pass().unwrap();
        assert!(breaker.trip(fresh));
        assert_eq!(breaker.outages.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_slow_probe_that_fails_after_another_succeeded_does_not_reopen() {
        let breaker = Breaker::new(Duration::from_millis(20));
        assert!(breaker.trip(breaker.pass().unwrap()));
        std::thread::sleep(Duration::from_millis(25));
        let slow = breaker.pass().expect("the first probe");
        std::thread::sleep(Duration::from_millis(25));
        let quick = breaker.pass().expect("the slow probe outlived the interval: another probe");
        assert!(breaker.close(quick).is_some());
        assert!(!breaker.trip(slow));
        assert!(!breaker.is_open(), "the newer success stands");
        assert_eq!(breaker.outages.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_bad_cell_is_warned_about_once_per_interval() {
        let breaker = Breaker::new(Duration::from_millis(30));
        assert!(breaker.may_warn_about_a_cell());
        assert!(!breaker.may_warn_about_a_cell());
        std::thread::sleep(Duration::from_millis(35));
        assert!(breaker.may_warn_about_a_cell());
    }

    #[test]
    fn a_failed_probe_waits_another_interval() {
        let breaker = Breaker::new(Duration::from_millis(30));
        assert!(breaker.trip(breaker.pass().unwrap()));
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(breaker.pass(), Some(Pass::Probe));
        assert!(!breaker.trip(Pass::Probe), "still the same outage");
        assert!(breaker.pass().is_none(), "the next probe waits for the interval");
        assert_eq!(breaker.outages.load(Ordering::Relaxed), 1);
    }
}
