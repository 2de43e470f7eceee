//! `agx-conformance schemathesis --server PATH`: schemathesis, a tool no one
//! here wrote, against the reference server's own `/openapi.json`, with every
//! check, on the memory store and on a fresh PostgreSQL database.
//!
//! The public operations run with an API key (`X-API-Key`), the admin ones
//! with the admin token: one `Authorization` header for both would be a
//! credential conflict on the public API. The verify API takes its key in
//! the body and no header; schemathesis' keys are whatever it generates, so
//! its verdicts are mostly refusals, each of which must match the schema. The key has high quotas so that
//! rate limits do not answer in place of the operation. Each run is bounded
//! by `--max-examples` and a wall-clock limit.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::blackbox::{Backends, launch, tool_absent, wait_bounded};

/// Examples per operation, and the wall-clock bound of one run.
const MAX_EXAMPLES: &str = "60";
const TIME_LIMIT: Duration = Duration::from_secs(600);

pub async fn run(server: &str) -> Result<(), String> {
    if Command::new("schemathesis").arg("--version").output().is_err() {
        return tool_absent("schemathesis", "not installed (pip install schemathesis)");
    }
    let mut targets = vec![("memory", Backends::default())];
    if let Some(url) = agx_auth_postgres::testing::fresh_database("schemathesis server/postgres").await {
        targets.push(("postgres", Backends { database_url: Some(url), ..Backends::default() }));
    }
    let mut failed = Vec::new();
    for (name, backends) in targets {
        let (_server, admin) = launch(server, &format!("server/{name}"), &backends).await?;
        let key = admin
            .create_key_with(json!({"name": "schemathesis", "rateLimits": {"chat": 1_000_000, "config": 1_000_000, "conversations": 1_000_000}}))
            .await?;
        for (tag, header) in [
            ("public", Some(format!("X-API-Key: {key}"))),
            ("admin", Some(format!("Authorization: Bearer {}", admin.token()))),
            ("verify", None),
        ] {
            let started = Instant::now();
            let url = format!("{}/openapi.json", admin.base_url);
            eprintln!("schemathesis: {name}, {tag} operations");
            let mut child = Command::new("schemathesis")
                .args(["run", &url, "--checks", "all", "--max-examples", MAX_EXAMPLES, "--include-tag", tag])
                .args(header.iter().flat_map(|h| ["-H", h.as_str()]))
                .args(["--request-timeout", "10", "--no-color"])
                .spawn()
                .map_err(|e| format!("schemathesis: {e}"))?;
            let status = wait_bounded(&mut child, TIME_LIMIT).await?;
            match status {
                Some(s) if s.success() => {
                    eprintln!("schemathesis: {name}/{tag}: 0 failures, 0 errors in {:?}", started.elapsed())
                }
                Some(s) => failed.push(format!("{name}/{tag} ({s})")),
                None => failed.push(format!("{name}/{tag} (over {TIME_LIMIT:?})")),
            }
        }
    }
    if failed.is_empty() { Ok(()) } else { Err(format!("schemathesis failed: {}", failed.join(", "))) }
}
