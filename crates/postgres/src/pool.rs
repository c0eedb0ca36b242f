//! How tenancy connects. Every connection it opens asks PostgreSQL to plan each execution
//! of a prepared statement for its own parameter values and for the tables as they are now
//! (`plan_cache_mode = force_custom_plan`), instead of reusing a generic plan cached on first
//! use. A generic plan made while the tables were empty — a fresh database, or one an
//! operator ran `VACUUM ANALYZE` on before the prefill — is a sequential scan, and it stays
//! one for as long as the connection lives while the tables grow. The setting reaches every
//! plan PostgreSQL caches for the session: sqlx's prepared statements, the statements inside
//! PL/pgSQL functions, and the foreign-key checks an INSERT fires. Statements without
//! parameters are always planned generically; those that read growing tables run unprepared
//! (`persistent(false)`), so they are planned afresh too.

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tenancy_core::{Error, Result};

/// The session settings of every tenancy connection, sent in the startup packet.
pub const SESSION_SETTINGS: [(&str, &str); 1] = [("plan_cache_mode", "force_custom_plan")];

/// `options` with tenancy's session settings.
pub fn connect_options(options: PgConnectOptions) -> PgConnectOptions {
    options.options(SESSION_SETTINGS)
}

/// A pool of at most `max_connections`, each with tenancy's session settings.
pub async fn connect_with(options: PgConnectOptions, max_connections: u32) -> Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .connect_with(connect_options(options))
        .await
        .map_err(|e| Error::internal_with(format!("cannot connect to the database: {e}"), e))
}

/// A pool for `url` with tenancy's session settings and defaults.
pub async fn connect(url: &str) -> Result<PgPool> {
    let options: PgConnectOptions = url
        .parse()
        .map_err(|e| Error::internal_with(format!("invalid database URL: {e}"), e))?;
    connect_with(options, 16).await
}
