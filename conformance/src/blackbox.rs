//! The black-box target: a running server, set up only through its admin API
//! (the reference server's `/api/admin`). It cannot move its clock or switch
//! its store off, so cases that need that are skipped, visibly.

use std::time::{Duration, SystemTime};

use agx_auth::{AgentRecord, TeamRecord};
use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use serde_json::{Value, json};

use crate::case::Capability;
use crate::client::Client;
use crate::fixtures::{Fixtures, IssuedKey, KeyRequest};
use crate::runner::{Target, run_namespace};

pub struct AdminApi {
    pub base_url: String,
    token: String,
    client: Client,
    capabilities: &'static [Capability],
}

impl AdminApi {
    pub fn new(base_url: &str, token: &str) -> Self {
        AdminApi {
            base_url: base_url.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            client: Client::new(),
            capabilities: &[],
        }
    }

    /// The same, for the reference server reached directly (not through a
    /// gateway): its verify API is there to be called.
    pub fn reference_server(self) -> Self {
        AdminApi { capabilities: &[Capability::VerifyApi, Capability::AuditLog], ..self }
    }

    /// The server as a conformance target.
    pub fn target(self, name: &str) -> Target {
        Target {
            name: name.to_owned(),
            base_url: self.base_url.clone(),
            namespace: run_namespace(),
            fixtures: std::sync::Arc::new(self),
        }
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    /// Creates an org of its own and, in it, a key from `body` (the admin
    /// API's key body); returns the plaintext key.
    pub async fn create_key_with(&self, body: Value) -> Result<String, String> {
        let org = format!("o-{}", run_namespace());
        self.call("POST", "/orgs", Some(json!({"id": org, "name": "tools"}))).await?;
        let (_, created) = self.call("POST", &format!("/orgs/{org}/keys"), Some(body)).await?;
        created["key"].as_str().map(str::to_owned).ok_or_else(|| format!("no key in {created}"))
    }

    /// One admin API call (`path` under `/api/admin`) with the admin token;
    /// the status and JSON of a success, else an error naming the call.
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<(u16, Value), String> {
        let auth = HeaderValue::try_from(format!("Bearer {}", self.token)).map_err(|e| e.to_string())?;
        let mut headers = vec![(http::header::AUTHORIZATION, auth)];
        let body = match body {
            Some(b) => {
                headers.push((HeaderName::from_static("content-type"), HeaderValue::from_static("application/json")));
                Bytes::from(b.to_string())
            }
            None => Bytes::new(),
        };
        let url = format!("{}/api/admin{path}", self.base_url);
        let reply = self.client.send(method, &url, &headers, body).await?;
        let json = if reply.body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&reply.body).unwrap_or(Value::Null)
        };
        if reply.status.is_success() {
            Ok((reply.status.as_u16(), json))
        } else {
            Err(format!("{method} {path}: {} {json}", reply.status))
        }
    }

    fn issued(v: &Value) -> Result<IssuedKey, String> {
        match (v["id"].as_str(), v["key"].as_str()) {
            (Some(id), Some(key)) => Ok(IssuedKey { id: id.to_owned(), key: key.to_owned() }),
            _ => Err(format!("the admin API returned no id and key: {v}")),
        }
    }
}

#[async_trait]
impl Fixtures for AdminApi {
    fn capabilities(&self) -> &[Capability] {
        self.capabilities
    }

    async fn org(&self, id: &str, name: &str) -> Result<(), String> {
        self.call("POST", "/orgs", Some(json!({"id": id, "name": name}))).await.map(drop)
    }

    async fn agent(&self, a: AgentRecord) -> Result<(), String> {
        let body = json!({"id": a.id, "name": a.name, "allowedDomains": a.allowed_domains, "active": a.active, "public": a.public});
        self.call("POST", &format!("/orgs/{}/agents", a.org), Some(body)).await.map(drop)
    }

    async fn team(&self, t: TeamRecord) -> Result<(), String> {
        let body = json!({"id": t.id, "name": t.name, "agentIds": t.agent_ids});
        self.call("POST", &format!("/orgs/{}/teams", t.org), Some(body)).await.map(drop)
    }

    async fn key(&self, r: &KeyRequest) -> Result<IssuedKey, String> {
        let mut body = json!({
            "name": r.name,
            "scopes": r.scopes,
            "mode": if r.test_mode { "test" } else { "live" },
            "rateLimits": r.rate_limits,
            "allowedNetworks": r.allowed_networks,
            "credits": r.credits,
        });
        if let Some(d) = r.expires_in {
            body["expiresAt"] = Value::String(humantime::format_rfc3339_millis(SystemTime::now() + d).to_string());
        }
        let (_, v) = self.call("POST", &format!("/orgs/{}/keys", r.org), Some(body)).await?;
        Self::issued(&v)
    }

    async fn delete_key(&self, org: &str, id: &str) -> Result<(), String> {
        self.call("DELETE", &format!("/orgs/{org}/keys/{id}"), None).await.map(drop)
    }

    async fn audit_events(&self, org: &str, limit: usize) -> Result<Vec<Value>, String> {
        let (_, page) = self.call("GET", &format!("/orgs/{org}/audit-log?limit={limit}"), None).await?;
        page["events"].as_array().cloned().ok_or_else(|| format!("no events in {page}"))
    }

    async fn report_leak(&self, org: &str, text: &str) -> Result<Vec<String>, String> {
        let (_, v) = self.call("POST", &format!("/orgs/{org}/leaks"), Some(json!({"text": text}))).await?;
        let keys = v["keys"].as_array().ok_or_else(|| format!("no keys in {v}"))?;
        keys.iter()
            .map(|k| k["standing"].as_str().map(str::to_owned).ok_or_else(|| format!("no standing in {k}")))
            .collect()
    }

    async fn roll_key(&self, org: &str, id: &str, grace: Duration) -> Result<IssuedKey, String> {
        let body = json!({"gracePeriodSeconds": grace.as_secs()});
        let (_, v) = self.call("POST", &format!("/orgs/{org}/keys/{id}/roll"), Some(body)).await?;
        Self::issued(&v)
    }

    async fn advance(&self, _: Duration) -> Result<(), String> {
        Err("a black-box server's clock cannot be moved".into())
    }

    async fn set_store_available(&self, _: bool) -> Result<(), String> {
        Err("a black-box server's store cannot be switched off".into())
    }

    async fn set_limiter_available(&self, _: bool) -> Result<(), String> {
        Err("a black-box server's limiter cannot be switched off".into())
    }
}

/// A server process, stopped when dropped.
pub struct ServerProcess(std::process::Child);

impl ServerProcess {
    /// The server's process id, for reading its memory from `/proc`.
    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the reference server binary at `path` on the memory store and, when
/// PostgreSQL is there, on a fresh database, and on one with the Redis
/// limiter when Redis is there too; returns each with its target.
pub async fn spawn_servers(path: &str) -> Result<Vec<(ServerProcess, Target)>, String> {
    let mut out = Vec::new();
    out.push(spawn_server(path, "server/memory", &Backends::default()).await?);
    if let Some(url) = agx_auth_postgres::testing::fresh_database("conformance server/postgres").await {
        let backends = Backends { database_url: Some(url), ..Backends::default() };
        out.push(spawn_server(path, "server/postgres", &backends).await?);
        if let Some(redis_url) = agx_auth_redis::testing::reachable("conformance server/postgres+redis").await {
            let backends = Backends { redis_url: Some(redis_url), ..backends };
            out.push(spawn_server(path, "server/postgres+redis", &backends).await?);
        }
    }
    Ok(out)
}

/// Where a spawned server keeps its state: memory when both are `None`.
#[derive(Clone, Debug, Default)]
pub struct Backends {
    pub database_url: Option<String>,
    pub redis_url: Option<String>,
    /// More of the server's settings, as the environment variables its
    /// flags read (`AGX_REDIS_OUTAGE`, say).
    pub settings: Vec<(&'static str, String)>,
}

/// Starts the server at `path` as a conformance target.
async fn spawn_server(path: &str, name: &str, backends: &Backends) -> Result<(ServerProcess, Target), String> {
    let (server, admin) = launch(path, name, backends).await?;
    Ok((server, admin.reference_server().target(name)))
}

/// Starts the server at `path` on a free port with a known admin token, waits
/// until it listens, and returns it with its admin API.
pub async fn launch(path: &str, name: &str, backends: &Backends) -> Result<(ServerProcess, AdminApi), String> {
    launch_logged(path, name, backends, None).await
}

/// [`launch`], with the server's log (debug level, request logs included)
/// written to `log` when one is given.
pub async fn launch_logged(
    path: &str,
    name: &str,
    backends: &Backends,
    log: Option<std::fs::File>,
) -> Result<(ServerProcess, AdminApi), String> {
    let port =
        std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(|e| e.to_string())?.port();
    let token = format!("conformance-{}", run_namespace());
    let mut command = std::process::Command::new(path);
    command
        .env("AGX_BIND", format!("127.0.0.1:{port}"))
        .env("AGX_ADMIN_TOKEN", &token)
        // As the in-process targets do: loopback is a trusted proxy.
        .env("AGX_TRUSTED_PROXIES", "127.0.0.0/8,::1")
        .env_remove("AGX_DATABASE_URL")
        .env_remove("AGX_REDIS_URL")
        .stdout(std::process::Stdio::null());
    match log {
        Some(file) => command.env("RUST_LOG", "debug").stderr(file),
        None => command.stderr(std::process::Stdio::null()),
    };
    if let Some(url) = &backends.database_url {
        command.env("AGX_DATABASE_URL", url);
    }
    if let Some(url) = &backends.redis_url {
        command.env("AGX_REDIS_URL", url);
    }
    command.envs(backends.settings.iter().map(|(k, v)| (k, v)));
    let server = ServerProcess(command.spawn().map_err(|e| format!("start {path}: {e}"))?);
    let started = std::time::Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        if started.elapsed() > Duration::from_secs(20) {
            return Err(format!("{name}: the server did not listen on port {port}"));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let base = format!("http://127.0.0.1:{port}");
    Ok((server, AdminApi::new(&base, &token)))
}

/// Waits for `child` at most `limit`, polling; kills it past the limit and
/// answers `None`. For the external tools the black-box runs start.
pub async fn wait_bounded(
    child: &mut std::process::Child,
    limit: Duration,
) -> Result<Option<std::process::ExitStatus>, String> {
    let started = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            return Ok(Some(status));
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What to do when a tool a black-box run needs is not installed: fail
/// under `AGX_REQUIRE_SERVICES=1` (CI), else print why and skip.
pub fn tool_absent(run: &str, why: &str) -> Result<(), String> {
    if std::env::var("AGX_REQUIRE_SERVICES").is_ok_and(|v| v == "1") {
        return Err(format!("{run}: {why}"));
    }
    eprintln!("{run}: {why}; skipped");
    Ok(())
}
