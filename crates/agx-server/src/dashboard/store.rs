//! Where the dashboard's sign-ins live: org dashboard tokens and sessions,
//! in memory or in the server's own PostgreSQL tables (so that every
//! instance sees them), as SHA-256 hashes only: neither a token nor a
//! session cookie can be read back from what is stored.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use agx_auth_postgres::PgStore;
use ring::digest::{SHA256, digest};
use ring::rand::{SecureRandom, SystemRandom};

/// What a caller may see and change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Access {
    /// Every organization: the admin token.
    All,
    /// One organization: its dashboard token.
    Org(String),
}

impl Access {
    pub fn allows(&self, org: &str) -> bool {
        match self {
            Access::All => true,
            Access::Org(own) => own == org,
        }
    }
}

/// An org dashboard token as listed: never the token itself.
#[derive(Clone, Debug)]
pub struct TokenInfo {
    pub id: String,
    pub org: String,
    pub name: String,
    pub created_at: SystemTime,
}

/// A signed-in browser.
#[derive(Clone, Debug)]
pub struct Session {
    pub access: Access,
    /// The token it signed in with, for an org session: deleting the token
    /// ends the session.
    pub token_id: Option<String>,
    /// What every admin API call of this session must carry in `X-CSRF-Token`.
    pub csrf: String,
    pub expires_at: SystemTime,
}

/// Why the dashboard's store did not answer.
#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    #[error("the database refused: {0}")]
    Database(#[from] tokio_postgres::Error),
    #[error("no database connection: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("the system random generator failed")]
    Random,
    #[error("the session lifetime is past what a clock can hold")]
    Lifetime,
}

/// The prefix of an org dashboard token.
pub const TOKEN_PREFIX: &str = "agxd_";

pub enum DashboardStore {
    Memory(Mutex<Memory>),
    Postgres(Arc<PgStore>),
}

#[derive(Default)]
pub struct Memory {
    tokens: HashMap<[u8; 32], TokenInfo>,
    sessions: HashMap<[u8; 32], Session>,
}

fn hash(secret: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, secret.as_bytes()).as_ref());
    out
}

fn lock(m: &Mutex<Memory>) -> std::sync::MutexGuard<'_, Memory> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn random_hex(rng: &SystemRandom, bytes: usize) -> Result<String, DashboardError> {
    let mut buf = vec![0u8; bytes];
    rng.fill(&mut buf).map_err(|_| DashboardError::Random)?;
    Ok(hex::encode(buf))
}

impl DashboardStore {
    pub fn memory() -> Self {
        DashboardStore::Memory(Mutex::default())
    }

    /// A new org dashboard token: its plaintext (shown once) and its listing.
    pub async fn create_token(
        &self,
        org: &str,
        name: &str,
        rng: &SystemRandom,
    ) -> Result<(String, TokenInfo), DashboardError> {
        let token = format!("{TOKEN_PREFIX}{}", random_hex(rng, 24)?);
        let info = TokenInfo {
            id: format!("dt_{}", random_hex(rng, 8)?),
            org: org.to_owned(),
            name: name.to_owned(),
            created_at: SystemTime::now(),
        };
        let pg = match self {
            DashboardStore::Memory(m) => {
                let mut m = lock(m);
                m.tokens.insert(hash(&token), info.clone());
                return Ok((token, info));
            }
            DashboardStore::Postgres(pg) => pg,
        };
        let client = pg.pool().get().await?;
        client
            .execute(
                "INSERT INTO dashboard_tokens (id, org_id, name, hash, created_at) VALUES ($1, $2, $3, $4, $5)",
                &[&info.id, &info.org, &info.name, &hash(&token).as_slice(), &info.created_at],
            )
            .await?;
        Ok((token, info))
    }

    /// An org's tokens, oldest first.
    pub async fn tokens(&self, org: &str) -> Result<Vec<TokenInfo>, DashboardError> {
        let pg = match self {
            DashboardStore::Memory(m) => {
                let m = lock(m);
                let mut all: Vec<TokenInfo> = m.tokens.values().filter(|t| t.org == org).cloned().collect();
                all.sort_by_key(|t| t.created_at);
                return Ok(all);
            }
            DashboardStore::Postgres(pg) => pg,
        };
        let client = pg.pool().get().await?;
        let rows = client
            .query(
                "SELECT id, org_id, name, created_at FROM dashboard_tokens WHERE org_id = $1 ORDER BY created_at",
                &[&org],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| TokenInfo { id: r.get(0), org: r.get(1), name: r.get(2), created_at: r.get(3) })
            .collect())
    }

    /// Deletes a token of `org`, and with it every session it opened.
    pub async fn delete_token(&self, org: &str, id: &str) -> Result<bool, DashboardError> {
        let pg = match self {
            DashboardStore::Memory(m) => {
                let mut m = lock(m);
                let before = m.tokens.len();
                m.tokens.retain(|_, t| !(t.org == org && t.id == id));
                let deleted = m.tokens.len() < before;
                // Only a token that was this org's, and is now gone, ends sessions.
                if deleted {
                    m.sessions.retain(|_, s| s.token_id.as_deref() != Some(id));
                }
                return Ok(deleted);
            }
            DashboardStore::Postgres(pg) => pg,
        };
        let client = pg.pool().get().await?;
        let n = client.execute("DELETE FROM dashboard_tokens WHERE org_id = $1 AND id = $2", &[&org, &id]).await?;
        Ok(n > 0)
    }

    /// The token with this plaintext, if there is one.
    pub async fn token(&self, plaintext: &str) -> Result<Option<TokenInfo>, DashboardError> {
        let h = hash(plaintext);
        let pg = match self {
            DashboardStore::Memory(m) => {
                let m = lock(m);
                return Ok(m.tokens.get(&h).cloned());
            }
            DashboardStore::Postgres(pg) => pg,
        };
        let client = pg.pool().get().await?;
        let row = client
            .query_opt("SELECT id, org_id, name, created_at FROM dashboard_tokens WHERE hash = $1", &[&h.as_slice()])
            .await?;
        Ok(row.map(|r| TokenInfo { id: r.get(0), org: r.get(1), name: r.get(2), created_at: r.get(3) }))
    }

    /// Opens a session; returns the cookie's value, which is not stored.
    pub async fn open_session(
        &self,
        access: Access,
        token_id: Option<String>,
        ttl: Duration,
        rng: &SystemRandom,
    ) -> Result<(String, Session), DashboardError> {
        let cookie = random_hex(rng, 32)?;
        let expires_at = SystemTime::now().checked_add(ttl).ok_or(DashboardError::Lifetime)?;
        let session = Session { access, token_id, csrf: random_hex(rng, 16)?, expires_at };
        let pg = match self {
            DashboardStore::Memory(m) => {
                let mut m = lock(m);
                let now = SystemTime::now();
                m.sessions.retain(|_, s| s.expires_at > now);
                m.sessions.insert(hash(&cookie), session.clone());
                return Ok((cookie, session));
            }
            DashboardStore::Postgres(pg) => pg,
        };
        let org = match &session.access {
            Access::All => None,
            Access::Org(org) => Some(org.as_str()),
        };
        let client = pg.pool().get().await?;
        client.execute("DELETE FROM dashboard_sessions WHERE expires_at < now()", &[]).await?;
        client
            .execute(
                "INSERT INTO dashboard_sessions (hash, org_id, token_id, csrf, expires_at) VALUES ($1, $2, $3, $4, $5)",
                &[&hash(&cookie).as_slice(), &org, &session.token_id, &session.csrf, &session.expires_at],
            )
            .await?;
        Ok((cookie, session))
    }

    /// The live session this cookie opened, if any.
    pub async fn session(&self, cookie: &str) -> Result<Option<Session>, DashboardError> {
        let h = hash(cookie);
        let now = SystemTime::now();
        let pg = match self {
            DashboardStore::Memory(m) => {
                let m = lock(m);
                return Ok(m.sessions.get(&h).filter(|s| s.expires_at > now).cloned());
            }
            DashboardStore::Postgres(pg) => pg,
        };
        let client = pg.pool().get().await?;
        let row = client
            .query_opt(
                "SELECT org_id, token_id, csrf, expires_at FROM dashboard_sessions WHERE hash = $1 AND expires_at > now()",
                &[&h.as_slice()],
            )
            .await?;
        Ok(row.map(|r| Session {
            access: r.get::<_, Option<String>>(0).map_or(Access::All, Access::Org),
            token_id: r.get(1),
            csrf: r.get(2),
            expires_at: r.get(3),
        }))
    }

    /// Ends the session this cookie opened (signing out).
    pub async fn close_session(&self, cookie: &str) -> Result<(), DashboardError> {
        let h = hash(cookie);
        let pg = match self {
            DashboardStore::Memory(m) => {
                let mut m = lock(m);
                m.sessions.remove(&h);
                return Ok(());
            }
            DashboardStore::Postgres(pg) => pg,
        };
        let client = pg.pool().get().await?;
        client.execute("DELETE FROM dashboard_sessions WHERE hash = $1", &[&h.as_slice()]).await?;
        Ok(())
    }
}
