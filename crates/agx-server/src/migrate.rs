//! The server's own tables (conversations, the dashboard's tokens and
//! sessions), migrated beside agx-auth-postgres's with their own history
//! table, `agx_server_schema_history`.

use agx_auth_postgres::PgStore;

mod embedded {
    refinery::embed_migrations!("migrations");
}

#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    #[error("the server's migrations: {0}")]
    Refinery(#[from] refinery::Error),
    #[error("the server's migrations: {0}")]
    Database(#[from] tokio_postgres::Error),
    #[error("the server's migrations: no database connection: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
}

/// Brings the server's tables up to date; instances starting together take
/// turns, as agx-auth-postgres's migrations do.
pub async fn run(pg: &PgStore) -> Result<(), MigrationError> {
    let mut client = pg.pool().get().await?;
    let mut runner = embedded::migrations::runner();
    runner.set_migration_table_name("agx_server_schema_history");
    client.batch_execute("SELECT pg_advisory_lock(hashtext('agx-server-migrations'))").await?;
    let migrated = runner.run_async(&mut **client).await;
    client.batch_execute("SELECT pg_advisory_unlock(hashtext('agx-server-migrations'))").await?;
    migrated?;
    Ok(())
}
