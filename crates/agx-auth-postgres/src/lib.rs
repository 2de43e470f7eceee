//! PostgreSQL behind agx-auth's store traits.
//!
//! - Schema by versioned migrations (refinery), applied at start-up under an
//!   advisory lock so that instances starting together do not race.
//! - A key is found by its hash in one query on a unique index. Only hashes
//!   are stored; deleted keys are kept, marked, and never verify again.
//! - Deleting or rolling a key sends `NOTIFY agx_key_revoked` with the hash in
//!   the same transaction, and writing an agent or team sends it with
//!   `agent:<id>` or `team:<id>`; storing a key (created or rolled) sends
//!   `issued:<hash>`, in the same statement. [`listener::spawn`] turns those
//!   into cache invalidations, and new keys for a filter of known keys, on
//!   every instance.
//! - Every failure to reach the database is [`StoreError::Unavailable`], which
//!   the authenticator answers with 503: fail closed.
//!
//! Put [`agx_auth_moka`](https://docs.rs/agx-auth-moka)'s `CachedStore` in
//! front of it: without a cache every request costs two queries.

mod audit;
pub mod listener;
#[cfg(feature = "testing")]
pub mod testing;
mod usage;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use agx_auth::{
    AgentRecord, CreditAccount, Credits, Directory, DirectoryAdmin, KeyChange, KeyHash, KeyHashes, KeyId, KeyMode,
    KeyRecord, KeyStore, KeyUpdate, Lookup, MAX_CREDITS, Quota, Refill, Scope, StoreError, TeamRecord, Written,
};
use async_trait::async_trait;
use deadpool_postgres::{ManagerConfig, Pool, PoolConfig, RecyclingMethod, Runtime, Timeouts};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

pub use usage::{UsageFlusher, UsageWriter};

/// The `NOTIFY` channel of revocations. The payload is a key's hash in hex,
/// `agent:<id>` or `team:<id>` (ids never hold `:`). The name predates the
/// directory payloads; it stays, so that instances of both versions hear
/// each other during a rolling deploy.
pub const REVOCATION_CHANNEL: &str = "agx_key_revoked";

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// Pool sizes and timeouts.
#[derive(Clone, Copy, Debug)]
pub struct PgSettings {
    pub max_size: usize,
    /// How long a request waits for a free connection.
    pub wait_timeout: Duration,
    /// How long opening a new connection may take.
    pub create_timeout: Duration,
    /// How long checking a returned connection may take.
    pub recycle_timeout: Duration,
}

impl Default for PgSettings {
    fn default() -> Self {
        PgSettings {
            max_size: 16,
            wait_timeout: Duration::from_secs(2),
            create_timeout: Duration::from_secs(2),
            recycle_timeout: Duration::from_secs(1),
        }
    }
}

/// Why the store could not start.
#[derive(Debug)]
pub enum PgError {
    /// The URL or settings are not usable.
    Config(String),
    /// The database did not answer; the URL is shown without its password.
    Unreachable {
        url: String,
        reason: String,
    },
    Migration(String),
}

impl fmt::Display for PgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PgError::Config(why) => write!(f, "invalid PostgreSQL settings: {why}"),
            PgError::Unreachable { url, reason } => write!(f, "cannot reach PostgreSQL at {url}: {reason}"),
            PgError::Migration(why) => write!(f, "PostgreSQL migrations failed: {why}"),
        }
    }
}

impl std::error::Error for PgError {}

pub use agx_auth::redact_url as redact;

/// Keys, orgs, agents and teams in PostgreSQL.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStore").field("pool", &self.pool.status()).finish()
    }
}

impl PgStore {
    /// Builds the pool, checks that the database answers, and applies the
    /// migrations.
    pub async fn connect(url: &str, settings: PgSettings) -> Result<Self, PgError> {
        let mut cfg = deadpool_postgres::Config::new();
        cfg.url = Some(url.to_owned());
        cfg.manager = Some(ManagerConfig { recycling_method: RecyclingMethod::Fast });
        cfg.pool = Some(PoolConfig {
            max_size: settings.max_size,
            timeouts: Timeouts {
                wait: Some(settings.wait_timeout),
                create: Some(settings.create_timeout),
                recycle: Some(settings.recycle_timeout),
            },
            ..PoolConfig::default()
        });
        let pool = cfg.create_pool(Some(Runtime::Tokio1), NoTls).map_err(|e| PgError::Config(e.to_string()))?;
        let unreachable = |reason: String| PgError::Unreachable { url: redact(url), reason };
        let mut client = pool.get().await.map_err(|e| unreachable(e.to_string()))?;
        // One instance migrates at a time; the others wait, then find nothing to do.
        client
            .batch_execute("SELECT pg_advisory_lock(hashtext('agx-auth-migrations'))")
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let migrated = embedded::migrations::runner().run_async(&mut **client).await;
        let unlocked = client.batch_execute("SELECT pg_advisory_unlock(hashtext('agx-auth-migrations'))").await;
        migrated.map_err(|e| PgError::Migration(e.to_string()))?;
        unlocked.map_err(|e| unreachable(e.to_string()))?;
        Ok(PgStore { pool })
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// One round trip: for readiness probes.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.client().await?.batch_execute("SELECT 1").await.map_err(db)
    }

    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(|e| StoreError::Unavailable(format!("no database connection: {e}").into()))
    }

    async fn find_by_hash(&self, hash: &KeyHash) -> Result<Option<Arc<KeyRecord>>, StoreError> {
        let client = self.client().await?;
        let stmt =
            client.prepare_cached(&format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE hash = $1")).await.map_err(db)?;
        let row = client.query_opt(&stmt, &[&hash.0.as_slice()]).await.map_err(db)?;
        row.map(|r| key_from_row(&r).map(Arc::new)).transpose()
    }

    async fn agent_by_id(&self, id: &str) -> Result<Option<Arc<AgentRecord>>, StoreError> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(&format!("{AGENTS} WHERE id = $1")).await.map_err(db)?;
        let row = client.query_opt(&stmt, &[&id]).await.map_err(db)?;
        row.map(|r| agent_from_row(&r).map(Arc::new)).transpose()
    }

    async fn team_by_id(&self, id: &str) -> Result<Option<Arc<TeamRecord>>, StoreError> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(&format!("{TEAMS} WHERE t.id = $1 GROUP BY t.id")).await.map_err(db)?;
        let row = client.query_opt(&stmt, &[&id]).await.map_err(db)?;
        row.map(|r| team_from_row(&r).map(Arc::new)).transpose()
    }
}

const AGENTS: &str = "SELECT id, org_id, name, allowed_domains, active, public FROM agents";

const TEAMS: &str = "SELECT t.id, t.org_id, t.name, \
     COALESCE(array_agg(ta.agent_id ORDER BY ta.position) FILTER (WHERE ta.agent_id IS NOT NULL), '{}') AS agents \
     FROM teams t LEFT JOIN team_agents ta ON ta.team_id = t.id";

fn agent_from_row(r: &tokio_postgres::Row) -> Result<AgentRecord, StoreError> {
    Ok(AgentRecord {
        id: r.try_get("id").map_err(corrupt)?,
        org: r.try_get("org_id").map_err(corrupt)?,
        name: r.try_get("name").map_err(corrupt)?,
        allowed_domains: r.try_get("allowed_domains").map_err(corrupt)?,
        active: r.try_get("active").map_err(corrupt)?,
        public: r.try_get("public").map_err(corrupt)?,
    })
}

fn team_from_row(r: &tokio_postgres::Row) -> Result<TeamRecord, StoreError> {
    Ok(TeamRecord {
        id: r.try_get("id").map_err(corrupt)?,
        org: r.try_get("org_id").map_err(corrupt)?,
        name: r.try_get("name").map_err(corrupt)?,
        agent_ids: r.try_get("agents").map_err(corrupt)?,
    })
}

const KEY_COLUMNS: &str = "id, org_id, name, hash, prefix, scopes, mode, created_at, expires_at, deleted_at, \
                           rate_limit_classes, rate_limit_quotas, lifetime_ms, allowed_networks, \
                           credits_initial, credits_refill_amount, credits_refill_ms, credits_pool, credits_since_ms, \
                           lineage";

/// A database error as the store's: constraint violations are the caller's
/// mistake, anything else means the database cannot answer.
pub(crate) fn db(e: tokio_postgres::Error) -> StoreError {
    match e.code() {
        Some(c) if *c == SqlState::UNIQUE_VIOLATION => StoreError::Conflict("already exists".into()),
        Some(c) if *c == SqlState::FOREIGN_KEY_VIOLATION => StoreError::NotFound("organization or agent".into()),
        _ => StoreError::Unavailable(format!("database error: {e}").into()),
    }
}

pub(crate) fn corrupt(e: tokio_postgres::Error) -> StoreError {
    StoreError::Unavailable(format!("unreadable row: {e}").into())
}

fn key_from_row(r: &Row) -> Result<KeyRecord, StoreError> {
    let bad = |what: &str| StoreError::Unavailable(format!("unreadable key row: {what}").into());
    let id: &str = r.try_get("id").map_err(corrupt)?;
    let hash: &[u8] = r.try_get("hash").map_err(corrupt)?;
    let mode: &str = r.try_get("mode").map_err(corrupt)?;
    let scopes: Vec<String> = r.try_get("scopes").map_err(corrupt)?;
    let classes: Vec<String> = r.try_get("rate_limit_classes").map_err(corrupt)?;
    let quotas: Vec<i32> = r.try_get("rate_limit_quotas").map_err(corrupt)?;
    let lifetime_ms: Option<i64> = r.try_get("lifetime_ms").map_err(corrupt)?;
    let networks: Vec<String> = r.try_get("allowed_networks").map_err(corrupt)?;
    let allowed_networks =
        networks.iter().map(|n| n.parse().map_err(|_| bad("network"))).collect::<Result<_, StoreError>>()?;
    let lifetime = lifetime_ms.map(|ms| u64::try_from(ms).map(Duration::from_millis).map_err(|_| bad("lifetime")));
    let rate_limits = classes
        .into_iter()
        .zip(quotas)
        .map(|(c, q)| Ok((c, u32::try_from(q).ok().and_then(Quota::try_per_minute).ok_or_else(|| bad("quota"))?)))
        .collect::<Result<_, StoreError>>()?;
    Ok(KeyRecord {
        id: id.parse().map_err(|_| bad("id"))?,
        org: r.try_get("org_id").map_err(corrupt)?,
        name: r.try_get("name").map_err(corrupt)?,
        hash: KeyHash(hash.try_into().map_err(|_| bad("hash"))?),
        prefix: r.try_get("prefix").map_err(corrupt)?,
        scopes: scopes.into_iter().map(Scope::new).collect(),
        mode: KeyMode::parse(mode).ok_or_else(|| bad("mode"))?,
        created_at: r.try_get("created_at").map_err(corrupt)?,
        expires_at: r.try_get("expires_at").map_err(corrupt)?,
        deleted_at: r.try_get("deleted_at").map_err(corrupt)?,
        lifetime: lifetime.transpose()?,
        rate_limits,
        allowed_networks,
        credits: credits_from_row(r)?,
        lineage: r.try_get::<_, &str>("lineage").map_err(corrupt)?.parse().map_err(|_| bad("lineage"))?,
    })
}

fn credits_from_row(r: &Row) -> Result<Option<CreditAccount>, StoreError> {
    let bad = || StoreError::Unavailable("unreadable key row: credits".into());
    let count = |n: i64| u64::try_from(n).ok().filter(|&n| n <= MAX_CREDITS).ok_or_else(bad);
    let Some(initial) = r.try_get::<_, Option<i64>>("credits_initial").map_err(corrupt)? else { return Ok(None) };
    let amount: Option<i64> = r.try_get("credits_refill_amount").map_err(corrupt)?;
    let interval_ms: Option<i64> = r.try_get("credits_refill_ms").map_err(corrupt)?;
    let pool: Option<&str> = r.try_get("credits_pool").map_err(corrupt)?;
    let since_ms: Option<i64> = r.try_get("credits_since_ms").map_err(corrupt)?;
    let refill = match (amount, interval_ms) {
        (Some(amount), Some(ms)) => Some(Refill {
            amount: count(amount)?,
            interval: Duration::from_millis(u64::try_from(ms).ok().filter(|&ms| ms > 0).ok_or_else(bad)?),
        }),
        (None, None) => None,
        _ => return Err(bad()),
    };
    let since = since_ms.and_then(|ms| u64::try_from(ms).ok()).ok_or_else(bad)?;
    Ok(Some(CreditAccount {
        credits: Credits { initial: count(initial)?, refill },
        pool: pool.ok_or_else(bad)?.parse().map_err(|_| bad())?,
        since: SystemTime::UNIX_EPOCH + Duration::from_millis(since),
    }))
}

/// The five credit columns of a key, in `KEY_COLUMNS` order.
struct CreditColumns {
    initial: Option<i64>,
    refill_amount: Option<i64>,
    refill_ms: Option<i64>,
    pool: Option<String>,
    since_ms: Option<i64>,
}

impl CreditColumns {
    /// The five as statement parameters, in column order.
    fn params(&self) -> [&(dyn ToSql + Sync); 5] {
        [&self.initial, &self.refill_amount, &self.refill_ms, &self.pool, &self.since_ms]
    }

    fn of(account: Option<&CreditAccount>) -> Self {
        let int = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        let refill = account.and_then(|a| a.credits.refill);
        CreditColumns {
            initial: account.map(|a| int(a.credits.initial)),
            refill_amount: refill.map(|r| int(r.amount)),
            refill_ms: refill.map(|r| i64::try_from(r.interval.as_millis()).unwrap_or(i64::MAX)),
            pool: account.map(|a| a.pool.to_string()),
            since_ms: account.map(|a| int(a.epoch_ms())),
        }
    }
}

fn hex(hash: &KeyHash) -> String {
    hash.to_hex()
}

#[async_trait]
impl KeyStore for PgStore {
    fn find<'a>(&'a self, hash: &'a KeyHash) -> Lookup<'a, Result<Option<Arc<KeyRecord>>, StoreError>> {
        Lookup::pending(self.find_by_hash(hash))
    }

    async fn get(&self, org: &str, id: KeyId) -> Result<Option<Arc<KeyRecord>>, StoreError> {
        let client = self.client().await?;
        let sql = format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE org_id = $1 AND id = $2 AND deleted_at IS NULL");
        let row = client.query_opt(&sql, &[&org, &id.to_string()]).await.map_err(db)?;
        row.map(|r| key_from_row(&r).map(Arc::new)).transpose()
    }

    async fn create(&self, record: KeyRecord) -> Result<Arc<KeyRecord>, StoreError> {
        let client = self.client().await?;
        insert_key(&**client, &record).await?;
        Ok(Arc::new(record))
    }

    async fn list(&self, org: &str) -> Result<Vec<Arc<KeyRecord>>, StoreError> {
        let client = self.client().await?;
        let sql = format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE org_id = $1 AND deleted_at IS NULL ORDER BY created_at, id"
        );
        let rows = client.query(&sql, &[&org]).await.map_err(db)?;
        rows.iter().map(|r| key_from_row(r).map(Arc::new)).collect()
    }

    async fn update(
        &self,
        org: &str,
        id: KeyId,
        change: &KeyChange,
        at: SystemTime,
    ) -> Result<Option<KeyUpdate>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        lock_org_keys(&tx, org).await?;
        // The key and every live key of its lineage, as stored now (the
        // org's lock is held, so no roll adds one meanwhile): the change is
        // made to what is stored, not to what a caller read before, so two
        // changes of different limits never undo each other.
        let sql = format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE org_id = $1 AND deleted_at IS NULL AND \
             lineage = (SELECT lineage FROM api_keys WHERE org_id = $1 AND id = $2) ORDER BY id FOR UPDATE"
        );
        let own = id.to_string();
        let rows = tx.query(&sql, &[&org, &own]).await.map_err(db)?;
        let family = rows.iter().map(key_from_row).collect::<Result<Vec<_>, _>>()?;
        let Some(before) = family.iter().find(|r| r.id == id).cloned() else { return Ok(None) };
        let account = change.account(&before, at);
        let after = change.apply(&before, account);
        write_limits(&tx, &after).await?;
        let mut lineage = Vec::new();
        for sibling in family.into_iter().filter(|r| r.id != id) {
            let moved = change.apply(&sibling, account);
            write_limits(&tx, &moved).await?;
            lineage.push((Arc::new(sibling), Arc::new(moved)));
        }
        tx.commit().await.map_err(db)?;
        Ok(Some(KeyUpdate { before: Arc::new(before), after: Arc::new(after), lineage }))
    }

    async fn delete(&self, org: &str, id: KeyId, at: SystemTime) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        let row = tx
            .query_opt(
                "UPDATE api_keys SET deleted_at = $3 WHERE org_id = $1 AND id = $2 AND deleted_at IS NULL RETURNING hash",
                &[&org, &id.to_string(), &at],
            )
            .await
            .map_err(db)?;
        let Some(row) = row else { return Ok(false) };
        notify(&tx, &row).await?;
        tx.commit().await.map_err(db)?;
        Ok(true)
    }

    async fn roll(
        &self,
        org: &str,
        id: KeyId,
        replacement: KeyRecord,
        old_expires_at: SystemTime,
    ) -> Result<Option<Arc<KeyRecord>>, StoreError> {
        if replacement.org != org {
            return Err(StoreError::Conflict("a rolled key stays in its organization".into()));
        }
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        lock_org_keys(&tx, org).await?;
        // LEAST ignores NULL: a key with no expiry gets the grace deadline, one
        // that would expire sooner keeps its own.
        let sql = format!(
            "UPDATE api_keys SET expires_at = LEAST(expires_at, $3) \
             WHERE org_id = $1 AND id = $2 AND deleted_at IS NULL RETURNING {KEY_COLUMNS}"
        );
        let row = tx.query_opt(&sql, &[&org, &id.to_string(), &old_expires_at]).await.map_err(db)?;
        let Some(row) = row else { return Ok(None) };
        let old = key_from_row(&row)?;
        // The old key's lineage and limits as stored now, under the lock.
        let replacement = KeyRecord {
            lineage: old.lineage,
            rate_limits: old.rate_limits,
            allowed_networks: old.allowed_networks,
            credits: old.credits,
            ..replacement
        };
        insert_key(&*tx, &replacement).await?;
        notify(&tx, &row).await?;
        tx.commit().await.map_err(db)?;
        Ok(Some(Arc::new(replacement)))
    }
}

#[async_trait]
impl KeyHashes for PgStore {
    async fn live_hashes(&self) -> Result<Vec<KeyHash>, StoreError> {
        let client = self.client().await?;
        let rows = client.query("SELECT hash FROM api_keys WHERE deleted_at IS NULL", &[]).await.map_err(db)?;
        rows.iter()
            .map(|r| {
                let hash: &[u8] = r.try_get(0).map_err(corrupt)?;
                hash.try_into().map(KeyHash).map_err(|_| StoreError::Unavailable("unreadable hash".into()))
            })
            .collect()
    }
}

/// Serializes the org's rolls and limit changes (`FOR NO KEY UPDATE` of the
/// org's row: it does not block key creation, whose foreign key takes a
/// weaker lock). A change of a lineage's credits then sees every key a roll
/// added, and a roll copies every change made before it.
async fn lock_org_keys(tx: &tokio_postgres::Transaction<'_>, org: &str) -> Result<(), StoreError> {
    tx.execute("SELECT 1 FROM organizations WHERE id = $1 FOR NO KEY UPDATE", &[&org]).await.map_err(db)?;
    Ok(())
}

/// Writes a key's limits as `r` has them, and tells every instance (the
/// same notice as a deletion: every cache forgets the record and reads it
/// again on the next request).
async fn write_limits(tx: &tokio_postgres::Transaction<'_>, r: &KeyRecord) -> Result<(), StoreError> {
    let classes: Vec<&str> = r.rate_limits.iter().map(|(c, _)| c.as_str()).collect();
    let quotas: Vec<i32> = r.rate_limits.iter().map(|(_, q)| quota_column(*q)).collect();
    let networks: Vec<String> = r.allowed_networks.iter().map(ToString::to_string).collect();
    let c = CreditColumns::of(r.credits.as_ref());
    let (org, id) = (&r.org, r.id.to_string());
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![org, &id, &classes, &quotas, &networks];
    params.extend(c.params());
    let row = tx
        .query_one(
            "UPDATE api_keys SET rate_limit_classes = $3, rate_limit_quotas = $4, allowed_networks = $5, \
             credits_initial = $6, credits_refill_amount = $7, credits_refill_ms = $8, credits_pool = $9, \
             credits_since_ms = $10 WHERE org_id = $1 AND id = $2 RETURNING hash",
            &params,
        )
        .await
        .map_err(db)?;
    notify(tx, &row).await
}

/// Tells every instance that the key of this row changed (same transaction:
/// the notification is delivered only if the change commits).
async fn notify(tx: &tokio_postgres::Transaction<'_>, row: &Row) -> Result<(), StoreError> {
    let hash: &[u8] = row.try_get("hash").map_err(corrupt)?;
    let hash = KeyHash(hash.try_into().map_err(|_| StoreError::Unavailable("unreadable hash".into()))?);
    tx.execute("SELECT pg_notify($1, $2)", &[&REVOCATION_CHANNEL, &hex(&hash)]).await.map_err(db)?;
    Ok(())
}

fn quota_column(q: Quota) -> i32 {
    i32::try_from(q.get()).unwrap_or(i32::MAX)
}

async fn insert_key<C: tokio_postgres::GenericClient>(client: &C, r: &KeyRecord) -> Result<(), StoreError> {
    let scopes: Vec<&str> = r.scopes.iter().map(Scope::as_str).collect();
    let classes: Vec<&str> = r.rate_limits.iter().map(|(c, _)| c.as_str()).collect();
    let quotas: Vec<i32> = r.rate_limits.iter().map(|(_, q)| quota_column(*q)).collect();
    let lifetime_ms: Option<i64> = r.lifetime.map(|l| i64::try_from(l.as_millis()).unwrap_or(i64::MAX));
    let networks: Vec<String> = r.allowed_networks.iter().map(ToString::to_string).collect();
    let c = CreditColumns::of(r.credits.as_ref());
    let hash = r.hash.0.as_slice();
    // One statement, so the row and the `issued:` notice (which filters of
    // known keys on every instance learn new keys from) commit together.
    let (id, mode, lineage) = (r.id.to_string(), r.mode.as_str(), r.lineage.to_string());
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![
        &id,
        &r.org,
        &r.name,
        &hash,
        &r.prefix,
        &scopes,
        &mode,
        &r.created_at,
        &r.expires_at,
        &r.deleted_at,
        &classes,
        &quotas,
        &lifetime_ms,
        &REVOCATION_CHANNEL,
        &networks,
    ];
    params.extend(c.params());
    params.push(&lineage);
    client
        .execute(
            "WITH inserted AS (INSERT INTO api_keys (id, org_id, name, hash, prefix, scopes, mode, created_at, \
             expires_at, deleted_at, rate_limit_classes, rate_limit_quotas, lifetime_ms, allowed_networks, \
             credits_initial, credits_refill_amount, credits_refill_ms, credits_pool, credits_since_ms, lineage) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $15, $16, $17, $18, $19, $20, $21) \
             RETURNING hash) \
             SELECT pg_notify($14, 'issued:' || encode(hash, 'hex')) FROM inserted",
            &params,
        )
        .await
        .map_err(db)?;
    Ok(())
}

impl Directory for PgStore {
    fn agent<'a>(&'a self, id: &'a str) -> Lookup<'a, Result<Option<Arc<AgentRecord>>, StoreError>> {
        Lookup::pending(self.agent_by_id(id))
    }

    fn team<'a>(&'a self, id: &'a str) -> Lookup<'a, Result<Option<Arc<TeamRecord>>, StoreError>> {
        Lookup::pending(self.team_by_id(id))
    }
}

#[async_trait]
impl DirectoryAdmin for PgStore {
    async fn put_org(&self, id: &str, name: &str) -> Result<Written, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "INSERT INTO organizations (id, name) VALUES ($1, $2) \
                 ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name RETURNING (xmax = 0) AS inserted",
                &[&id, &name],
            )
            .await
            .map_err(db)?;
        inserted(&row)
    }

    async fn org(&self, id: &str) -> Result<Option<String>, StoreError> {
        let client = self.client().await?;
        let row = client.query_opt("SELECT name FROM organizations WHERE id = $1", &[&id]).await.map_err(db)?;
        row.map(|r| r.try_get(0).map_err(corrupt)).transpose()
    }

    async fn orgs(&self) -> Result<Vec<(String, String)>, StoreError> {
        let client = self.client().await?;
        let rows = client.query("SELECT id, name FROM organizations ORDER BY id", &[]).await.map_err(db)?;
        rows.iter().map(|r| Ok((r.try_get(0).map_err(corrupt)?, r.try_get(1).map_err(corrupt)?))).collect()
    }

    async fn agents_of(&self, org: &str) -> Result<Vec<AgentRecord>, StoreError> {
        let client = self.client().await?;
        let rows = client.query(&format!("{AGENTS} WHERE org_id = $1 ORDER BY id"), &[&org]).await.map_err(db)?;
        rows.iter().map(agent_from_row).collect()
    }

    async fn teams_of(&self, org: &str) -> Result<Vec<TeamRecord>, StoreError> {
        let client = self.client().await?;
        let query = format!("{TEAMS} WHERE t.org_id = $1 GROUP BY t.id ORDER BY t.id");
        let rows = client.query(&query, &[&org]).await.map_err(db)?;
        rows.iter().map(team_from_row).collect()
    }

    async fn put_agent(&self, a: AgentRecord) -> Result<Written, StoreError> {
        let client = self.client().await?;
        // The update applies only within the agent's own org; no row means
        // the id is another org's. A written row is announced to every
        // instance, in the same statement, so only if it commits.
        let written = client
            .query(
                "WITH written AS ( \
                 INSERT INTO agents (id, org_id, name, allowed_domains, active, public) VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, \
                 allowed_domains = EXCLUDED.allowed_domains, active = EXCLUDED.active, public = EXCLUDED.public \
                 WHERE agents.org_id = EXCLUDED.org_id RETURNING id, (xmax = 0) AS inserted) \
                 SELECT pg_notify($7, 'agent:' || id), inserted FROM written",
                &[&a.id, &a.org, &a.name, &a.allowed_domains, &a.active, &a.public, &REVOCATION_CHANNEL],
            )
            .await
            .map_err(db)?;
        match written.first() {
            Some(row) => inserted(row),
            None => Err(StoreError::of_another_org("agent")),
        }
    }

    async fn put_team(&self, t: TeamRecord) -> Result<Written, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        if tx.query_opt("SELECT 1 FROM organizations WHERE id = $1", &[&t.org]).await.map_err(db)?.is_none() {
            return Err(StoreError::NotFound("organization".into()));
        }
        if let Some(agent) = t.repeated_agent() {
            return Err(StoreError::repeated_agent(agent));
        }
        let outside = tx
            .query_opt(
                "SELECT a FROM UNNEST($1::text[]) AS a \
                 WHERE NOT EXISTS (SELECT 1 FROM agents WHERE id = a AND org_id = $2) LIMIT 1",
                &[&t.agent_ids, &t.org],
            )
            .await
            .map_err(db)?;
        if let Some(row) = outside {
            let missing: String = row.try_get(0).map_err(corrupt)?;
            return Err(StoreError::NotFound(format!("agent {missing} in this organization").into()));
        }
        let row = tx
            .query_opt(
                "INSERT INTO teams (id, org_id, name) VALUES ($1, $2, $3) \
                 ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name WHERE teams.org_id = EXCLUDED.org_id \
                 RETURNING (xmax = 0) AS inserted",
                &[&t.id, &t.org, &t.name],
            )
            .await
            .map_err(db)?;
        let written = inserted(&row.ok_or_else(|| StoreError::of_another_org("team"))?)?;
        let payload = format!("team:{}", t.id);
        tx.execute("SELECT pg_notify($1, $2)", &[&REVOCATION_CHANNEL, &payload]).await.map_err(db)?;
        tx.execute("DELETE FROM team_agents WHERE team_id = $1", &[&t.id]).await.map_err(db)?;
        tx.execute(
            "INSERT INTO team_agents (team_id, agent_id, position) \
             SELECT $1, agent_id, position::int FROM UNNEST($2::text[]) WITH ORDINALITY AS a(agent_id, position)",
            &[&t.id, &t.agent_ids],
        )
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(written)
    }
}

/// An upsert's `RETURNING (xmax = 0) AS inserted`: true for a row the
/// statement inserted, false for one it updated (PostgreSQL sets `xmax` on
/// the new version of an updated row; an inserted row has none).
fn inserted(row: &Row) -> Result<Written, StoreError> {
    let inserted: bool = row.try_get("inserted").map_err(corrupt)?;
    Ok(if inserted { Written::Created } else { Written::Updated })
}
