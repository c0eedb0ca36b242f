//! How tenancy connects. A plan PostgreSQL caches for a connection — a prepared statement's
//! generic plan, a statement inside a PL/pgSQL function, the foreign-key check an INSERT
//! fires — is costed with the statistics of the moment it is made. Made while the tables
//! were empty (a fresh database, or one an operator ran `VACUUM ANALYZE` on before the
//! prefill), it is a sequential scan, and it stays one for as long as the connection lives
//! while the tables grow. Every statement tenancy runs on a hot path finds its rows by key,
//! so every connection it opens has `enable_seqscan = off`: wherever an index can serve, it
//! is chosen, whatever the statistics say; a statement no index can serve (a full dump)
//! still scans. Measured against `plan_cache_mode = force_custom_plan` (planning every
//! execution), which doubled the cost of a host lookup. The event read, whose best plan
//! depends on the cursor, additionally plans each call (`tenancy-eventstore`).

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tenancy_core::{Error, Result};

/// The session settings of every tenancy connection, sent in the startup packet.
pub const SESSION_SETTINGS: [(&str, &str); 1] = [("enable_seqscan", "off")];

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
