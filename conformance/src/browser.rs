//! `agx-conformance browser --server PATH`: the dashboard in a real browser
//! (Debian's Chromium, driven by Playwright for Python), walking the product
//! page's steps on the memory store and on a fresh PostgreSQL database. The
//! walk itself is `dashboard-tests/test_dashboard.py`; this starts a server
//! for each store and runs it, with a wall-clock bound. The memory run's
//! screenshots go to `target/dashboard-screenshots/`, or with `--docs` to
//! `docs/dashboard/` (the README's).
//!
//! Afterwards every plaintext key and token the walk saw is looked for where
//! the browser cannot look: the server's log (at debug level, so request
//! logs included) and, on PostgreSQL, every row of every table.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::blackbox::{Backends, launch_logged, tool_absent, wait_bounded};

const TIME_LIMIT: Duration = Duration::from_secs(300);

fn browser_ready() -> bool {
    let chromium = Path::new("/usr/bin/chromium").exists();
    let playwright =
        Command::new("python3").args(["-c", "import playwright.sync_api"]).output().is_ok_and(|o| o.status.success());
    chromium && playwright
}

pub async fn run(server: &str, root: &Path, docs: bool) -> Result<(), String> {
    if !browser_ready() {
        return tool_absent("browser", "chromium or Playwright is missing (dashboard-tests/install.sh installs both)");
    }
    let mut targets = vec![("memory", Backends::default())];
    if let Some(url) = agx_auth_postgres::testing::fresh_database("browser server/postgres").await {
        targets.push(("postgres", Backends { database_url: Some(url), ..Backends::default() }));
    }
    let script = root.join("dashboard-tests/test_dashboard.py");
    let mut failed = Vec::new();
    for (name, backends) in targets {
        let scratch = std::env::temp_dir().join(format!("agx-dashboard-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
        let log_path = scratch.join("server.log");
        let log = std::fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
        let secrets_path = scratch.join("secrets.txt");
        let (server_process, admin) = launch_logged(server, &format!("server/{name}"), &backends, Some(log)).await?;
        let shots = match (name, docs) {
            ("memory", true) => root.join("docs/dashboard"),
            ("memory", false) => root.join("target/dashboard-screenshots"),
            _ => scratch.join("shots"),
        };
        std::fs::create_dir_all(&shots).map_err(|e| format!("{}: {e}", shots.display()))?;
        let started = Instant::now();
        eprintln!("browser: the dashboard on {name}");
        let mut child = Command::new("python3")
            .arg(&script)
            .args(["--base-url", &admin.base_url, "--admin-token", admin.token(), "--store", name])
            .arg("--screenshots")
            .arg(&shots)
            .arg("--secrets-out")
            .arg(&secrets_path)
            .spawn()
            .map_err(|e| format!("python3: {e}"))?;
        let status = wait_bounded(&mut child, TIME_LIMIT).await?;
        match status {
            Some(s) if s.success() => eprintln!("browser: {name}: every step passed in {:?}", started.elapsed()),
            Some(s) => failed.push(format!("{name} ({s})")),
            None => failed.push(format!("{name} (over {TIME_LIMIT:?})")),
        }
        drop(server_process);
        match no_secret_kept(&secrets_path, &log_path, backends.database_url.as_deref()).await {
            Ok(n) => eprintln!("browser: {name}: none of {n} keys and tokens in the server's log or database"),
            Err(why) => failed.push(format!("{name}: {why}")),
        }
        let _ = std::fs::remove_dir_all(&scratch);
    }
    if failed.is_empty() { Ok(()) } else { Err(format!("the browser test failed: {}", failed.join(", "))) }
}

/// Looks for each secret the walk wrote in the server's log and, given a
/// database, in the text of every row of every table.
async fn no_secret_kept(secrets: &Path, log: &Path, database_url: Option<&str>) -> Result<usize, String> {
    let secrets = std::fs::read_to_string(secrets).map_err(|e| format!("the walk's secrets: {e}"))?;
    let secrets: Vec<&str> = secrets.lines().filter(|l| !l.is_empty()).collect();
    if secrets.is_empty() {
        return Err("the walk reported no keys to look for".into());
    }
    let log = std::fs::read_to_string(log).map_err(|e| format!("the server's log: {e}"))?;
    if log.is_empty() {
        return Err("the server's log is empty: nothing was looked at".into());
    }
    if let Some(s) = secrets.iter().find(|s| log.contains(*s)) {
        return Err(format!("a plaintext secret ({}…) is in the server's log", &s[..s.len().min(12)]));
    }
    let Some(url) = database_url else { return Ok(secrets.len()) };
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let tables = client
        .query("SELECT quote_ident(table_name) FROM information_schema.tables WHERE table_schema = 'public'", &[])
        .await
        .map_err(|e| e.to_string())?;
    for table in tables {
        let table: String = table.get(0);
        let rows = client.query(&format!("SELECT t::text FROM {table} t"), &[]).await.map_err(|e| e.to_string())?;
        for row in rows {
            let text: String = row.get(0);
            if let Some(s) = secrets.iter().find(|s| text.contains(*s)) {
                return Err(format!("a plaintext secret ({}…) is in table {table}", &s[..s.len().min(12)]));
            }
        }
    }
    Ok(secrets.len())
}
