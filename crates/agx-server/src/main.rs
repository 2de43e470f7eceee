//! `agx-server`: the Agentix Public API behind agx-auth, with an admin API
//! for keys, on the embedded memory store or on PostgreSQL.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use agx_auth::{
    AgentRecord, AuditAction, Authenticator, ClientAddresses, Credits, ForwardedHeader, IpNet, KeyHasher, KeyId,
    KeyMode, KeySpec, MAX_CREDITS, Refill, Scope, TeamRecord,
};
use agx_auth_redis::{LeaseSettings, OnOutage, RedisLimiter, RedisSettings, Spending};
use anyhow::{Context as _, anyhow, bail};
use clap::{Args, Parser, Subcommand};
use ring::rand::SystemRandom;

use agx_server::backend::Backend;
use agx_server::state::{AppState, RouteTable};
use agx_server::{app, audit, conversations, dashboard, migrate, serve, time};

/// How long a stopping server waits to flush usage counts to PostgreSQL.
const SHUTDOWN_FLUSH_LIMIT: Duration = Duration::from_secs(10);

#[derive(Parser)]
#[command(name = "agx-server", version, about = "The Agentix Public API behind agx-auth")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the public and admin APIs (the default).
    Serve(ServeArgs),
    /// Manage organizations directly in the database.
    Orgs {
        #[command(subcommand)]
        command: OrgsCommand,
        #[arg(long, env = "AGX_DATABASE_URL", global = true, hide_env_values = true)]
        database_url: Option<String>,
    },
    /// Find leaked keys in files (real ones, by checksum); exits 1 when any is found.
    Scan {
        /// Files, or directories to walk (symbolic links are not followed).
        #[arg(required = true)]
        paths: Vec<std::path::PathBuf>,
        /// Delete every found key that the database holds and that still works.
        #[arg(long)]
        revoke: bool,
        /// Where to look the found keys up; without it, only the checksum is tested.
        #[arg(long, env = "AGX_DATABASE_URL", hide_env_values = true)]
        database_url: Option<String>,
        #[arg(long, env = "AGX_KEY_PEPPER", hide_env_values = true)]
        key_pepper: Option<String>,
    },
    /// Manage keys directly in the database.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
        #[arg(long, env = "AGX_DATABASE_URL", global = true, hide_env_values = true)]
        database_url: Option<String>,
        #[arg(long, env = "AGX_KEY_PEPPER", global = true, hide_env_values = true)]
        key_pepper: Option<String>,
    },
}

#[derive(Args, Clone)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "AGX_BIND", default_value = "127.0.0.1:8080")]
    bind: String,
    /// PostgreSQL URL; without it, the embedded in-memory store (seeded with a demo key).
    #[arg(long, env = "AGX_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Redis URL for one rate limit across every instance; without it, the in-process limiter.
    /// With --redis-cluster, the URLs of one or more cluster nodes, separated by commas.
    #[arg(long, env = "AGX_REDIS_URL", hide_env_values = true)]
    redis_url: Option<String>,
    /// The Redis URL names nodes of a Redis Cluster: each cell goes to its slot's primary.
    #[arg(long, env = "AGX_REDIS_CLUSTER")]
    redis_cluster: bool,
    /// While Redis is unreachable: `closed` answers 503 AUTH_UNAVAILABLE; `local` limits each
    /// instance on its own (N × the quota in all) and warns once per outage.
    #[arg(long, env = "AGX_REDIS_OUTAGE", value_enum, default_value = "closed")]
    redis_outage: RedisOutage,
    /// Prefix of the Redis cells' names: environments that share one Redis need their own.
    #[arg(long, env = "AGX_REDIS_PREFIX", default_value = "agx:rl")]
    redis_prefix: String,
    /// Hot keys lease up to this many slots per Redis call and admit the rest in process
    /// (never more than the limit across instances; slots unused after the lease's lifetime
    /// are handed back). 0 or 1: every verdict is one exact Redis call.
    #[arg(long, env = "AGX_REDIS_LEASE_SLOTS", default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=10_000))]
    redis_lease_slots: u32,
    /// How long leased slots may be used (`50ms`).
    #[arg(long, env = "AGX_REDIS_LEASE_LIFETIME", default_value = "50ms", value_parser = humantime::parse_duration)]
    redis_lease_lifetime: Duration,
    /// A host's own route table (TOML, docs/guides/forward-auth-routes.md) for forward auth
    /// in front of services that are not the Agentix API; the public API is then not served.
    #[arg(long, env = "AGX_ROUTES")]
    routes: Option<String>,
    /// The longest a verdict waits for Redis, in milliseconds, before the outage rule applies.
    #[arg(long, env = "AGX_REDIS_TIMEOUT_MS", default_value_t = 250, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    redis_timeout_ms: u64,
    /// GitHub's secret scanning public keys (the JSON GitHub serves for partners), read at
    /// start: reports signed by them revoke the leaked keys they name.
    #[arg(long, env = "AGX_GITHUB_SCANNING_KEYS")]
    github_scanning_keys: Option<std::path::PathBuf>,
    /// Bearer token of the admin API; without it, a random one, printed at start.
    #[arg(long, env = "AGX_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Server-side pepper: keys are then hashed with HMAC-SHA256.
    #[arg(long, env = "AGX_KEY_PEPPER", hide_env_values = true)]
    key_pepper: Option<String>,
    /// Log as JSON lines instead of human-readable text.
    #[arg(long, env = "AGX_LOG_JSON")]
    log_json: bool,
    /// After SIGTERM, how long open connections may finish before they are closed (`10s`, `1m`).
    #[arg(long, env = "AGX_DRAIN_LIMIT", default_value = "10s", value_parser = humantime::parse_duration)]
    drain_limit: Duration,
    /// The most connections open at once; more wait in the listen backlog.
    #[arg(long, env = "AGX_MAX_CONNECTIONS", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_connections: u32,
    /// How long a connection may take to send a request's head; an idle
    /// keep-alive connection is closed after this too.
    #[arg(long, env = "AGX_HEADER_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    header_timeout: Duration,
    /// How long a request (its body included) may take before it is answered 408.
    #[arg(long, env = "AGX_REQUEST_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    request_timeout: Duration,
    /// How long a dashboard sign-in lasts (`8h`, `30m`).
    #[arg(long, env = "AGX_SESSION_TTL", default_value = "8h", value_parser = humantime::parse_duration)]
    session_ttl: Duration,
    /// Mark the dashboard's cookies `Secure`: the server is reached over TLS.
    #[arg(long, env = "AGX_SECURE_COOKIES")]
    secure_cookies: bool,
    /// A proxy (an IP address, or a network in CIDR) trusted to say who its
    /// client is: its `X-Forwarded-For` (or `Forwarded`, see
    /// `--forwarded-header`) gives the client's address for keys limited to
    /// networks, read from the right; its `X-Forwarded-Proto: https` marks
    /// the dashboard's cookies `Secure`. Repeatable.
    #[arg(long = "trusted-proxy", env = "AGX_TRUSTED_PROXIES", value_delimiter = ',', value_parser = network)]
    trusted_proxies: Vec<IpNet>,
    /// The header the trusted proxies append the client's address to.
    #[arg(long, env = "AGX_FORWARDED_HEADER", value_enum, default_value = "x-forwarded-for")]
    forwarded_header: ForwardedHeaderArg,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ForwardedHeaderArg {
    XForwardedFor,
    Forwarded,
}

/// An address (one host) or a CIDR network, read as the admin API reads one.
fn refill(text: &str) -> Result<Refill, String> {
    let bad = || "AMOUNT/INTERVAL, e.g. 1000/30d (an interval of whole seconds, 1 s to ten years)".to_owned();
    let (amount, interval) = text.split_once('/').ok_or_else(bad)?;
    let amount = amount.trim().parse::<u64>().ok().filter(|&n| n <= MAX_CREDITS).ok_or_else(bad)?;
    let interval = humantime::parse_duration(interval.trim()).map_err(|_| bad())?;
    // Whole seconds, as the admin API takes and shows them.
    if interval.subsec_nanos() != 0 || !(1..=10 * 365 * 86_400).contains(&interval.as_secs()) {
        return Err(bad());
    }
    Ok(Refill { amount, interval })
}

fn network(text: &str) -> Result<IpNet, String> {
    agx_server::input::network(text).ok_or_else(|| "an IP address or a CIDR network (e.g. 10.0.0.0/8)".to_owned())
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum RedisOutage {
    Closed,
    Local,
}

impl From<RedisOutage> for OnOutage {
    fn from(mode: RedisOutage) -> Self {
        match mode {
            RedisOutage::Closed => OnOutage::FailClosed,
            RedisOutage::Local => OnOutage::FailOpenLocal,
        }
    }
}

#[derive(Subcommand)]
enum OrgsCommand {
    /// A dashboard token for one organization; printed once, stored hashed.
    Token {
        #[arg(long)]
        org: String,
        /// What the token is for, as the admin API lists it.
        #[arg(long, default_value = "dashboard")]
        name: String,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a key; its plaintext is printed once.
    Create {
        #[arg(long)]
        org: String,
        #[arg(long)]
        name: String,
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// e.g. 30d, 24h.
        #[arg(long)]
        expires_in: Option<String>,
        /// A test-mode key (agx_test_…).
        #[arg(long)]
        test: bool,
        /// A client network the key may be used from (CIDR or an address);
        /// repeatable. None: any network.
        #[arg(long = "allowed-network", value_parser = network)]
        allowed_networks: Vec<IpNet>,
        /// Usage credits: the uses the key starts with. None: not counted.
        #[arg(long)]
        credits: Option<u64>,
        /// With --credits: the refill, as AMOUNT/INTERVAL (e.g. 1000/30d):
        /// every INTERVAL from now, the key holds AMOUNT again.
        #[arg(long, value_parser = refill, requires = "credits")]
        refill: Option<Refill>,
    },
    /// List an organization's keys (never the keys themselves).
    List {
        #[arg(long)]
        org: String,
    },
    /// Delete a key.
    Delete {
        #[arg(long)]
        org: String,
        id: String,
    },
    /// A new key now; the old one expires after the grace period.
    Roll {
        #[arg(long)]
        org: String,
        id: String,
        #[arg(long, default_value = "24h")]
        grace: String,
    },
}

fn hasher(pepper: Option<&str>) -> KeyHasher {
    pepper.map_or(KeyHasher::Sha256, |p| KeyHasher::with_pepper(p.as_bytes()))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let done = |r: anyhow::Result<()>| r.map(|()| std::process::ExitCode::SUCCESS);
    let result = match cli.command {
        Some(Command::Serve(args)) => done(serve(args).await),
        None => done(serve(cli.serve).await),
        Some(Command::Keys { command, database_url, key_pepper }) => {
            done(keys(command, database_url, key_pepper).await)
        }
        Some(Command::Orgs { command, database_url }) => done(orgs(command, database_url).await),
        // Like a linter: found keys fail the run that found them.
        Some(Command::Scan { paths, revoke, database_url, key_pepper }) => {
            scan(&paths, revoke, database_url, key_pepper)
                .await
                .map(|found| std::process::ExitCode::from(u8::from(found)))
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("agx-server: {e:#}");
            // 2, not 1: `scan` answers 1 for "keys found".
            std::process::ExitCode::from(2)
        }
    }
}

fn init_logs(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Logs go to stderr; stdout carries only what a person runs the server
    // for (the demo key, the admin token, the curl line).
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    init_logs(args.log_json);
    if args.header_timeout.is_zero() || args.request_timeout.is_zero() {
        bail!("--header-timeout and --request-timeout must be more than zero");
    }
    // A year at most: a sign-in that outlives that is no sign-in, and far
    // longer ones overflow the clock.
    if args.session_ttl.is_zero() || args.session_ttl > Duration::from_secs(366 * 86_400) {
        bail!("--session-ttl must be more than zero and at most a year");
    }
    let backend = Arc::new(match &args.database_url {
        Some(url) => Backend::postgres(url).await.context("PostgreSQL")?,
        None => Backend::memory(),
    });
    let limiter = match &args.redis_url {
        Some(url) => {
            let settings = RedisSettings {
                on_outage: args.redis_outage.into(),
                prefix: args.redis_prefix.clone(),
                call_timeout: Duration::from_millis(args.redis_timeout_ms),
                spending: match args.redis_lease_slots {
                    0 | 1 => Spending::Exact,
                    max_slots => Spending::Leased(LeaseSettings { max_slots, lifetime: args.redis_lease_lifetime }),
                },
                ..RedisSettings::default()
            };
            let limiter = if args.redis_cluster {
                let seeds: Vec<&str> = url.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
                RedisLimiter::connect_cluster(&seeds, settings).await.context("Redis Cluster")?
            } else {
                RedisLimiter::connect(url, settings).await.context("Redis")?
            };
            Some(Arc::new(limiter))
        }
        None => {
            if args.database_url.is_some() {
                // Keys outlive the process; in-process counts do not.
                tracing::warn!(
                    "usage credits are counted in this process only (no --redis-url): a restart gives every \
                     key with credits its balance again, and each instance counts on its own"
                );
            }
            None
        }
    };
    let table = match &args.routes {
        Some(path) => agx_server::host_routes::load(path).map(RouteTable::Host)?,
        None => RouteTable::Agentix,
    };
    let (auth, metrics) =
        AppState::authenticator(&backend, limiter.as_ref(), hasher(args.key_pepper.as_deref()), table, {
            let header = match args.forwarded_header {
                ForwardedHeaderArg::XForwardedFor => ForwardedHeader::XForwardedFor,
                ForwardedHeaderArg::Forwarded => ForwardedHeader::Forwarded,
            };
            ClientAddresses::through(args.trusted_proxies.iter().copied(), header)
        });
    let rng = SystemRandom::new();
    let admin_token = match args.admin_token {
        // An empty or short token would open the admin API to anyone.
        Some(t) if t.len() < 16 => bail!("--admin-token must be at least 16 characters"),
        Some(t) => t,
        None => {
            let id = KeyId::generate(&rng).map_err(|_| anyhow!("the system random generator failed"))?;
            let token = format!("adm_{}", id.to_string().trim_start_matches("key_"));
            println!("admin token (random, for this run): {token}");
            token
        }
    };
    let listener = tokio::net::TcpListener::bind(&args.bind).await.with_context(|| format!("bind {}", args.bind))?;
    let addr = listener.local_addr()?;
    println!("dashboard: http://{addr}/dashboard  (sign in with the admin token)");
    if backend.pg().is_none() {
        let key = seed(&backend, &auth).await?;
        println!("demo org `demo-org`, agent `demo-agent`, team `demo-team`");
        println!("demo key (every scope): {key}");
        println!(
            "try:\n  curl -i -X POST -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' \\\n    -d '{{\"message\":\"Hello\",\"sessionId\":\"demo-session\"}}' http://{addr}/api/public/agents/demo-agent/chat"
        );
    }
    let limits = if limiter.is_some() { "redis (one limit for every instance)" } else { "in-process" };
    tracing::info!(%addr, store = backend.kind(), rate_limits = limits, "agx-server listening");
    let (conversations, dashboard) = match backend.pg() {
        Some(pg) => {
            (conversations::Conversations::postgres(pg.clone()).await?, dashboard::DashboardStore::Postgres(pg.clone()))
        }
        None => {
            (conversations::Conversations::Memory(std::sync::Mutex::default()), dashboard::DashboardStore::memory())
        }
    };
    let settings = dashboard::Settings {
        session_ttl: args.session_ttl,
        secure_cookies: args.secure_cookies,
        trusted_proxies: args.trusted_proxies.clone(),
    };
    let state = AppState::new(backend.clone(), limiter, (auth.clone(), metrics), admin_token, dashboard, settings)?;
    if let Some(path) = &args.github_scanning_keys {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("--github-scanning-keys {}", path.display()))?;
        let keys = agx_server::secret_scanning::GithubKeys::from_json(&text).context("--github-scanning-keys")?;
        let _ = state.github_keys.set(keys);
    }
    let app = app::build(state.clone(), conversations)?;
    let limits = serve::Limits {
        max_connections: usize::try_from(args.max_connections).unwrap_or(usize::MAX),
        header_timeout: args.header_timeout,
        max_header_bytes: 32 * 1024,
        request_timeout: args.request_timeout,
    };
    serve::serve(listener, app, limits, shutdown_signal(), args.drain_limit).await?;
    tracing::info!("shutting down: flushing usage");
    state.backend.shutdown(SHUTDOWN_FLUSH_LIMIT).await;
    Ok(())
}

/// The in-memory default's demo world, so that the printed `curl` works.
async fn seed(backend: &Backend, auth: &Authenticator) -> anyhow::Result<String> {
    backend.admin.put_org("demo-org", "Demo Org").await?;
    backend.admin.put_agent(AgentRecord::new("demo-agent", "demo-org", "Demo Agent")).await?;
    backend
        .admin
        .put_team(TeamRecord {
            id: "demo-team".into(),
            org: "demo-org".into(),
            name: "Demo Team".into(),
            agent_ids: vec!["demo-agent".into()],
        })
        .await?;
    let (key, _) = auth.issue_key(KeySpec::new("demo-org", "demo key")).await?;
    Ok(key.expose_secret().to_owned())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { () = ctrl_c => {}, () = term => {} }
}

async fn orgs(command: OrgsCommand, database_url: Option<String>) -> anyhow::Result<()> {
    let url = database_url.context("orgs commands need --database-url (or AGX_DATABASE_URL)")?;
    let backend = Backend::postgres(&url).await.context("PostgreSQL")?;
    let pg = backend.pg().context("a PostgreSQL backend")?.clone();
    migrate::run(&pg).await?;
    match command {
        OrgsCommand::Token { org, name } => {
            if backend.admin.org(&org).await?.is_none() {
                bail!("no organization {org}");
            }
            let store = dashboard::DashboardStore::Postgres(pg);
            let (token, info) = store.create_token(&org, &name, &SystemRandom::new()).await?;
            let entry = audit::dashboard_token(AuditAction::DashboardTokenCreated, &org, &info.id, Some(&info.name));
            cli_audit(&backend, entry).await;
            println!("id:    {}\ntoken: {token}  (shown once; only its hash is stored)", info.id);
        }
    }
    backend.shutdown(SHUTDOWN_FLUSH_LIMIT).await;
    Ok(())
}

/// Reports every key found in `paths`, with what the database says of it
/// when there is one; with `revoke`, deletes the live ones. `Ok(true)`
/// when any key was found.
async fn scan(
    paths: &[std::path::PathBuf],
    revoke: bool,
    database_url: Option<String>,
    pepper: Option<String>,
) -> anyhow::Result<bool> {
    use agx_auth::KeyStanding;
    if revoke && database_url.is_none() {
        bail!("--revoke needs --database-url (or AGX_DATABASE_URL): the keys are deleted there");
    }
    let (leaks, notices) = agx_server::scan::scan(paths);
    for notice in &notices {
        eprintln!("agx-server scan: {notice}");
    }
    let backend = match &database_url {
        Some(url) => Some(Backend::postgres(url).await.context("PostgreSQL")?),
        None => None,
    };
    let auth = backend
        .as_ref()
        .map(|b| Authenticator::builder(b.keys.clone(), b.directory.clone()).hasher(hasher(pepper.as_deref())).build());
    let (mut live, mut revoked) = (0, 0);
    for leak in &leaks {
        let Some(auth) = &auth else {
            println!("{}  (not looked up: no --database-url)", leak.describe());
            continue;
        };
        let standing = if revoke {
            auth.revoke_leaked(&leak.found.key).await?
        } else {
            auth.key_standing(&leak.found.key).await?
        };
        match standing {
            KeyStanding::Unknown => println!("{}  unknown to this database", leak.describe()),
            KeyStanding::Deleted(r) => println!("{}  {} in {}: already deleted", leak.describe(), r.id, r.org),
            KeyStanding::Expired(r) => println!("{}  {} in {}: expired", leak.describe(), r.id, r.org),
            KeyStanding::Live(r) if revoke => {
                revoked += 1;
                if let Some(b) = &backend {
                    let at = format!("{}:{}", leak.path.display(), leak.found.line);
                    cli_audit(b, audit::key_revoked_leaked(&r, Some(&at))).await;
                }
                println!("{}  {} in {} ({:?}): LIVE, revoked", leak.describe(), r.id, r.org, r.name);
            }
            KeyStanding::Live(r) => {
                live += 1;
                println!("{}  {} in {} ({:?}): LIVE (revoke with --revoke)", leak.describe(), r.id, r.org, r.name);
            }
        }
    }
    eprintln!(
        "agx-server scan: {} key(s) found{}{}",
        leaks.len(),
        if live > 0 { format!(", {live} live") } else { String::new() },
        if revoked > 0 { format!(", {revoked} revoked") } else { String::new() }
    );
    if let Some(b) = backend {
        b.shutdown(SHUTDOWN_FLUSH_LIMIT).await;
    }
    Ok(!leaks.is_empty())
}

async fn keys(command: KeysCommand, database_url: Option<String>, pepper: Option<String>) -> anyhow::Result<()> {
    let url = database_url.context("keys commands need --database-url (or AGX_DATABASE_URL)")?;
    let backend = Backend::postgres(&url).await.context("PostgreSQL")?;
    let auth = Authenticator::builder(backend.keys.clone(), backend.directory.clone())
        .hasher(hasher(pepper.as_deref()))
        .build();
    let parse_id = |id: &str| id.parse::<KeyId>().context("not a key id (key_ and 32 hex digits)");
    match command {
        KeysCommand::Create { org, name, scopes, expires_in, test, allowed_networks, credits, refill } => {
            let mode = if test { KeyMode::Test } else { KeyMode::Live };
            let mut spec = KeySpec::new(org, name)
                .scopes(scopes.into_iter().map(Scope::new))
                .mode(mode)
                .allowed_networks(allowed_networks);
            if let Some(initial) = credits {
                anyhow::ensure!(initial <= MAX_CREDITS, "--credits is at most 9007199254740991");
                spec = spec.credits(Credits { initial, refill });
            }
            if let Some(d) = expires_in {
                spec = spec.expires_at(SystemTime::now() + humantime::parse_duration(&d).context("--expires-in")?);
            }
            let (key, record) = auth.issue_key(spec).await?;
            cli_audit(&backend, audit::key_created(&record)).await;
            println!("id:  {}\nkey: {}  (shown once; only its hash is stored)", record.id, key.expose_secret());
        }
        KeysCommand::List { org } => {
            for r in backend.keys.list(&org).await? {
                let scopes: Vec<&str> = r.scopes.iter().map(Scope::as_str).collect();
                let expires = r.expires_at.map_or_else(|| "never".to_owned(), time::format);
                println!(
                    "{}  {}  {}  {}  scopes=[{}]  expires={expires}",
                    r.id,
                    r.prefix,
                    r.mode.as_str(),
                    r.name,
                    scopes.join(",")
                );
            }
        }
        KeysCommand::Delete { org, id } => {
            let key = parse_id(&id)?;
            if !auth.delete_key(&org, key).await? {
                bail!("no key {id} in {org}");
            }
            cli_audit(&backend, audit::key_deleted(&org, key)).await;
            println!("deleted {id}");
        }
        KeysCommand::Roll { org, id, grace } => {
            let grace = humantime::parse_duration(&grace).context("--grace")?;
            let old = parse_id(&id)?;
            let Some((key, record)) = auth.roll_key(&org, old, grace).await? else {
                bail!("no key {id} in {org}");
            };
            let old_expires_at = backend.keys.get(&org, old).await.ok().flatten().and_then(|r| r.expires_at);
            cli_audit(&backend, audit::key_rolled(old, old_expires_at, &record, grace)).await;
            println!(
                "new id:  {}\nnew key: {}  (shown once)\nold key expires in {}",
                record.id,
                key.expose_secret(),
                humantime::format_duration(grace)
            );
        }
    }
    backend.shutdown(SHUTDOWN_FLUSH_LIMIT).await;
    Ok(())
}

/// Writes a command's change to the audit log as the command line's; the
/// change is made either way, so a failure is a warning.
async fn cli_audit(backend: &Backend, entry: agx_auth::AuditEntry) {
    if agx_server::audit::write(&*backend.audit, SystemTime::now(), &agx_auth::Actor::Cli, entry).await.is_err() {
        eprintln!("warning: the change was made, but its audit event could not be written");
    }
}
