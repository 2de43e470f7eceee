//! Real gateways as conformance columns: nginx with `auth_request` in front
//! of a tiny upstream, asking the reference server (`/forward-auth/nginx`).
//!
//! The nginx configuration is read from `docs/guides/nginx.md`, so the guide
//! is what is tested. The upstream answers as the in-process stub app does
//! (the same routing, from the same table), building its echo from the
//! principal's headers instead of an extractor, so the column can be
//! compared byte for byte with the in-process ones.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agx_auth::{Routes, X_AGX_KEY_NAME, X_AGX_MODE, X_AGX_ORG, X_AGX_SCOPES};
use http::HeaderMap;

use crate::blackbox::{Backends, ServerProcess, launch, tool_absent};
use crate::nginx_conf;
use crate::runner::{CaseResult, Target, Verdict};

/// The columns' names start with this; the store follows.
pub const NGINX_COLUMN: &str = "nginx/forward-auth/";

/// Cases nginx refuses itself, with its own 400, before it asks
/// agx-server: two `Authorization` lines. The request is refused either
/// way; the column shows these as answered by the gateway.
pub const NGINX_ANSWERS_ITSELF: [&str; 1] = ["credential/repeated-authorization"];

/// The processes behind the column, stopped when dropped.
pub struct Gateway {
    _nginx: NginxProcess,
    _server: ServerProcess,
    _dir: TempDir,
}

/// The nginx columns: on the memory store and, when PostgreSQL is there, on
/// a fresh database; none (after the notice, or an error under
/// `AGX_REQUIRE_SERVICES=1`) when nginx is not installed.
pub async fn nginx_columns(server: &str) -> Result<Vec<(Gateway, Target)>, String> {
    if Command::new("nginx").arg("-v").stderr(Stdio::null()).status().is_err() {
        tool_absent("conformance nginx column", "nginx is not installed (apt-get install nginx)")?;
        return Ok(Vec::new());
    }
    let mut out = vec![nginx(server, "memory", &Backends::default()).await?];
    if let Some(url) = agx_auth_postgres::testing::fresh_database("conformance nginx/forward-auth/postgres").await {
        let backends = Backends { database_url: Some(url), ..Backends::default() };
        out.push(nginx(server, "postgres", &backends).await?);
    }
    Ok(out)
}

/// nginx, agx-server on `backends`, and the upstream, as one column.
async fn nginx(server: &str, store: &str, backends: &Backends) -> Result<(Gateway, Target), String> {
    let name = format!("{NGINX_COLUMN}{store}");
    let (process, admin) = launch(server, &name, backends).await?;
    let upstream = crate::app::axum::serve(crate::app::axum::routed(&Routes::agentix(), upstream_echo)).await?;
    let dir = TempDir::new("agx-nginx")?;
    let port = free_port()?;
    let agx = admin.base_url.trim_start_matches("http://").to_owned();
    let config = nginx_conf::for_run(&nginx_conf::guide()?, &dir.0, port, &agx, upstream.trim_start_matches("http://"));
    let conf = dir.0.join("nginx.conf");
    std::fs::write(&conf, config).map_err(|e| format!("{}: {e}", conf.display()))?;
    let mut nginx = NginxProcess(nginx_conf::spawn(Command::new("nginx"), &dir.0, &conf)?);
    let started = Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        if let Ok(Some(status)) = nginx.0.try_wait() {
            let log = std::fs::read_to_string(dir.0.join("error.log")).unwrap_or_default();
            return Err(format!("nginx exited ({status}) before listening:\n{log}"));
        }
        if started.elapsed() > Duration::from_secs(10) {
            return Err(format!("nginx did not listen on port {port}"));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let target = Target {
        name,
        base_url: format!("http://127.0.0.1:{port}"),
        // A fresh server (memory, or a new database): the in-process
        // targets' namespace is safe, and the echoed org ids are the same bytes.
        namespace: "t".into(),
        fixtures: Arc::new(admin),
    };
    Ok((Gateway { _nginx: nginx, _server: process, _dir: dir }, target))
}

/// Marks the cases nginx answers itself ([`NGINX_ANSWERS_ITSELF`]) as such
/// where nginx did answer them, with its 400; anything else stays a
/// failure.
pub fn mark_gateway_answers(results: &mut [CaseResult]) {
    for r in results {
        let name = format!("{}/{}", r.group, r.name);
        let by_nginx = r.transcript.last().is_some_and(|e| e.status == 400);
        if NGINX_ANSWERS_ITSELF.contains(&name.as_str()) && matches!(r.verdict, Verdict::Failed(_)) && by_nginx {
            r.verdict = Verdict::Skipped("answered by nginx itself (400) before agx-server is asked".into());
        }
    }
}

/// The stub's echo, from the principal's headers as nginx forwards them.
async fn upstream_echo(headers: HeaderMap) -> ([(http::HeaderName, &'static str); 1], String) {
    let text = |name: http::HeaderName| headers.get(&name).map(|v| decode(v.as_bytes())).unwrap_or_default();
    let scopes = text(X_AGX_SCOPES);
    let scopes: Vec<&str> = if scopes == "*" { Vec::new() } else { scopes.split(',').collect() };
    let echo = crate::app::echo_fields(&text(X_AGX_ORG), &text(X_AGX_KEY_NAME), &text(X_AGX_MODE), &scopes);
    ([(http::header::CONTENT_TYPE, "application/json")], echo)
}

/// The inverse of `agx_auth::text_value`: `%XX` back to its byte.
fn decode(bytes: &[u8]) -> String {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).map_err(|e| e.to_string())
}

struct NginxProcess(Child);

impl Drop for NginxProcess {
    fn drop(&mut self) {
        nginx_conf::stop(&mut self.0);
    }
}

/// A directory of its own for one nginx, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(label: &str) -> Result<Self, String> {
        let dir =
            std::env::temp_dir().join(format!("{label}-{}-{}", std::process::id(), crate::runner::run_namespace()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guide_answers_an_unreachable_server_with_the_documented_503() {
        let guide = nginx_conf::guide().unwrap();
        let envelope = agx_auth::AuthError::Unavailable { retry_after: Duration::from_secs(1) }.doc().envelope;
        assert!(
            guide.contains(&format!("return 503 '{envelope}';")),
            "the guide's AUTH_UNAVAILABLE body is the table's"
        );
    }

    #[test]
    fn names_decode_back_exactly() {
        for name in ["demo key", "100%", "clé ✓", "%zz"] {
            assert_eq!(decode(agx_auth::text_value(name).as_bytes()), name);
        }
    }
}
