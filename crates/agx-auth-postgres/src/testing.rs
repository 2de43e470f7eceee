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
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let name = format!("agx_test_{}_{}", std::process::id(), nanos % 1_000_000_000_000);
    if let Err(e) = client.batch_execute(&format!("CREATE DATABASE {name}")).await {
        panic!("cannot create test database {name}: {e}");
    }
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(base, _)| base);
    Some(format!("{base}/{name}"))
}
