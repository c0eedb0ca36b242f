//! The schema migrations of `migrations/`, embedded, and the runner `cargo xtask migrate`
//! and the app call.

use sqlx::PgPool;
use sqlx::migrate::Migrator;
use tenancy_core::Error;

/// Every migration of `migrations/`.
pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations");

/// One migration and whether it is applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationStatus {
    pub version: i64,
    pub description: String,
    pub applied: bool,
}

/// Applies pending migrations (idempotent); returns the versions it applied.
pub async fn migrate(pool: &PgPool) -> Result<Vec<i64>, Error> {
    let before: Vec<i64> = status(pool)
        .await?
        .into_iter()
        .filter(|m| m.applied)
        .map(|m| m.version)
        .collect();
    MIGRATOR
        .run(pool)
        .await
        .map_err(|e| Error::internal_with("running migrations failed", e))?;
    Ok(MIGRATOR
        .iter()
        .map(|m| m.version)
        .filter(|v| !before.contains(v))
        .collect())
}

/// Applied and pending migrations, in order.
pub async fn status(pool: &PgPool) -> Result<Vec<MigrationStatus>, Error> {
    let exists: bool =
        sqlx::query_scalar("SELECT to_regclass('public._sqlx_migrations') IS NOT NULL")
            .fetch_one(pool)
            .await
            .map_err(crate::error::on_constraint)?;
    let applied: Vec<i64> = if exists {
        sqlx::query_scalar(
            "SELECT version FROM public._sqlx_migrations WHERE success ORDER BY version",
        )
        .fetch_all(pool)
        .await
        .map_err(crate::error::on_constraint)?
    } else {
        Vec::new()
    };
    Ok(MIGRATOR
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .map(|m| MigrationStatus {
            version: m.version,
            description: m.description.to_string(),
            applied: applied.contains(&m.version),
        })
        .collect())
}
