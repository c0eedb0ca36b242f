//! How tenancy connects. A plan PostgreSQL caches for a connection — a prepared statement's
//! generic plan, a statement inside a PL/pgSQL function, the foreign-key check an INSERT
//! fires — is costed with the statistics of the moment it is made. Made while the tables
//! were empty (a fresh database, or one an operator ran `VACUUM ANALYZE` on before the
//! prefill), it is a sequential scan, and it stays one for as long as the connection lives
//! while the tables grow. Every statement tenancy runs on a hot path finds its rows by key,
//! so every connection it opens has `enable_seqscan = off`: wherever an index can serve, it
//! is chosen, whatever the statistics say; a statement no index can serve (a full dump)
//! still scans. Measured against `plan_cache_mode = force_custom_plan` (planning every
//! execution), which doubled the cost of a host lookup. JIT compilation is off as well
//! (see [`SESSION_SETTINGS`]). The event read, whose best plan
//! depends on the cursor, additionally plans each call (`tenancy-eventstore`).
//!
//! Every connection also carries the database's `search_path` (`<relational schema>,
//! tenancy`, [`crate::layout`]): tenancy's SQL names its own tables unqualified, so the
//! same statements serve the relational tables in `zitadel` (no ZITADEL present) and in a
//! schema of tenancy's own next to a ZITADEL. The layout is read (or, before the first
//! migration, decided as the runner will) on one connection before the pool opens.

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};
use tenancy_core::{Error, Result};

use crate::layout::{self, Layout};

/// The session settings of every tenancy connection, sent in the startup packet.
/// `jit = off`: tenancy's statements are short keyed lookups, but their estimated cost
/// can pass `jit_above_cost` (the claims check of a projection batch did on a 1M-event
/// store); compiling then took 160 ms of a statement that runs in 5 ms.
pub const SESSION_SETTINGS: [(&str, &str); 2] = [("enable_seqscan", "off"), ("jit", "off")];

/// `options` with tenancy's session settings and the layout's search path.
pub fn connect_options(options: PgConnectOptions, layout: &Layout) -> PgConnectOptions {
    options
        .options(SESSION_SETTINGS)
        .options([("search_path", layout.search_path())])
}

/// The layout of the database behind `options` (stored, or as the runner would decide it
/// with `relational_schema` configured).
pub async fn layout_of(
    options: &PgConnectOptions,
    relational_schema: Option<&str>,
) -> Result<Layout> {
    let mut conn = options
        .connect()
        .await
        .map_err(|e| Error::internal_with(format!("cannot connect to the database: {e}"), e))?;
    let layout = layout::resolve(&mut conn, relational_schema).await;
    let _ = conn.close().await;
    layout
}

/// A pool of at most `max_connections`, each with tenancy's session settings.
pub async fn connect_with(options: PgConnectOptions, max_connections: u32) -> Result<PgPool> {
    connect_with_schema(options, max_connections, None).await
}

/// As [`connect_with`], with the configured schema of the relational tables.
pub async fn connect_with_schema(
    options: PgConnectOptions,
    max_connections: u32,
    relational_schema: Option<&str>,
) -> Result<PgPool> {
    let layout = match layout_of(&options, relational_schema).await {
        Ok(layout) => layout,
        // A database tenancy cannot adopt as it is: connect anyway (with the layout it
        // would have without ZITADEL), so that `migrate` can say why, changing nothing.
        Err(Error::PreconditionFailed(why)) => {
            tracing::warn!(%why, "tenancy cannot adopt this database as it is");
            Layout {
                relational_schema: layout::DEFAULT_SHARED_RELATIONAL_SCHEMA.to_owned(),
                event_store: layout::EventStore::Adopted,
                zitadel_present: true,
            }
        }
        Err(other) => return Err(other),
    };
    PgPoolOptions::new()
        .max_connections(max_connections)
        .connect_with(connect_options(options, &layout))
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
