//! Fresh databases for tests, and the rule for when PostgreSQL is absent.
//!
//! Tests that need PostgreSQL call [`fresh_database`]; without a reachable
//! server they follow the workspace's rule for absent services
//! ([`agx_testkit::service`]).

use tokio_postgres::NoTls;

/// The server tests use: `AGX_TEST_DATABASE_URL`, or the local default.
pub fn admin_url() -> String {
    std::env::var("AGX_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// Creates an empty database for one test and returns its URL, or `None`
/// (after printing why) when PostgreSQL is absent and not required.
///
/// # Panics
///
/// When PostgreSQL is absent and `AGX_REQUIRE_SERVICES=1`: in tests, a
/// panic is the failure.
pub async fn fresh_database(label: &str) -> Option<String> {
    let admin = admin_url();
    let reached = tokio_postgres::connect(&admin, NoTls).await;
    let (client, connection) = agx_testkit::service("PostgreSQL", &crate::redact(&admin), label, reached)?;
    tokio::spawn(connection);
    if !SWEPT.swap(true, std::sync::atomic::Ordering::Relaxed) {
        sweep(&client).await;
    }
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let name = format!("agx_test_{}_{}", std::process::id(), nanos % 1_000_000_000_000);
    if let Err(e) = client.batch_execute(&format!("CREATE DATABASE {name}")).await {
        panic!("cannot create test database {name}: {e}");
    }
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(base, _)| base);
    Some(format!("{base}/{name}"))
}

static SWEPT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Drops the test databases of processes that have ended, once per process.
/// Each test makes its own database and none is dropped as it ends (a
/// failing test's database is worth reading), so without this they pile up
/// run after run, and a cluster with thousands of them takes seconds longer
/// to checkpoint, which `cargo xtask faults` sees when it stops the cluster.
/// A database is named after the process that made it, so one whose process
/// is gone is no one's.
async fn sweep(client: &tokio_postgres::Client) {
    if !std::path::Path::new("/proc/self").exists() {
        return; // no way to tell a live process here
    }
    let Ok(rows) = client.query("SELECT datname FROM pg_database WHERE datname LIKE 'agx\\_test\\_%'", &[]).await
    else {
        return;
    };
    for row in rows {
        let name: String = row.get(0);
        let pid = name.strip_prefix("agx_test_").and_then(|r| r.split('_').next()).and_then(|p| p.parse::<u32>().ok());
        let Some(pid) = pid else { continue };
        if pid == std::process::id() || std::path::Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        // Only names this module made, so the name needs no quoting beyond
        // this check. Without `FORCE`: a database someone is connected to
        // (a process this one cannot see, in another container) is refused
        // by PostgreSQL, and left alone.
        if name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            let _ = client.batch_execute(&format!("DROP DATABASE IF EXISTS {name}")).await;
        }
    }
}
