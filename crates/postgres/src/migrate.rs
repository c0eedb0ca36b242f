//! The schema migrations of `migrations/`, embedded, and the runner `cargo xtask migrate`
//! and the app call.
//!
//! The runner decides the layout first ([`crate::layout`]) and changes nothing when it
//! cannot proceed. Then every pending migration, the ledger (`tenancy.migrations`) and the
//! layout are applied in **one** transaction: all of them or none. Indexes on
//! `eventstore.events2` — a table ZITADEL's writers push to while this runs — are built
//! afterwards, `CONCURRENTLY`, and only where no valid equivalent exists (ZITADEL's
//! `es_projection` serves the projection read): no lock that blocks a push is taken on it.

use sqlx::migrate::Migrator;
use sqlx::{Acquire, AssertSqlSafe, PgConnection, PgPool};
use tenancy_core::{Error, Result};

use crate::layout::{self, EventStore, Layout};
use crate::on_constraint;

/// Every migration of `migrations/` (not `migrations/legacy/`: the layout of releases
/// before the `tenancy` schema, upgraded in place by [`migrate`]).
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Every migration's number, in order: what [`migrate`] applies to a fresh database.
pub fn versions() -> Vec<i64> {
    up_migrations().map(|m| m.version).collect()
}

/// The migrations [`migrate`] applies, in order (down migrations left out).
fn up_migrations() -> impl Iterator<Item = &'static sqlx::migrate::Migration> {
    MIGRATOR
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
}

/// The first line of a migration that only runs where tenancy creates the event store.
const OWNED_STORE_ONLY: &str = "-- owned-event-store-only";

/// Migrations whose objects an earlier release already created (its 0001 and 0003, same
/// tables, same names): recorded, not run, when such a database is upgraded.
const LEGACY_BASELINE: [i64; 2] = [2, 3];

/// An index tenancy needs on `eventstore.events2`.
#[derive(Debug)]
pub struct StoreIndex {
    /// The index's name.
    pub name: &'static str,
    /// Plain leading columns that make any valid index equivalent (empty: only this name).
    pub leading: &'static [&'static str],
    /// The index's columns, as `CREATE INDEX CONCURRENTLY ... ON eventstore.events2` takes them.
    pub definition: &'static str,
}

/// The indexes on `eventstore.events2`, built CONCURRENTLY where missing.
pub const STORE_INDEXES: [StoreIndex; 3] = [
    // Projection reads: one instance, some aggregate and event types, in position order
    // (ZITADEL's es_projection, or events2_projection of earlier releases).
    StoreIndex {
        name: "events2_tenancy_projection",
        leading: &["instance_id", "aggregate_type", "event_type", "position"],
        definition: "(instance_id, aggregate_type, event_type, \"position\")",
    },
    // Global order: the newest position (prefill target, status) and the poll for events
    // pushed without a notification.
    StoreIndex {
        name: "events2_tenancy_position",
        leading: &["position"],
        definition: "(\"position\", in_tx_order)",
    },
    // The adds of one custom domain in order (the claims check of tenancy-projection);
    // only `instance.domain.added` events, so it stays small.
    StoreIndex {
        name: "events2_tenancy_instance_domain_added",
        leading: &[],
        definition: "(lower(payload ->> 'domain'), \"position\", in_tx_order) \
                     WHERE aggregate_type = 'instance' AND event_type = 'instance.domain.added'",
    },
];

/// One migration and whether it is applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationStatus {
    /// The migration's number (`0001_...sql` is 1).
    pub version: i64,
    /// Its file name without number and extension.
    pub description: String,
    /// Whether the ledger records it applied.
    pub applied: bool,
}

/// Applies pending migrations (idempotent) with the default relational schema; returns
/// the versions it applied.
pub async fn migrate(pool: &PgPool) -> Result<Vec<i64>> {
    migrate_with(pool, None).await
}

/// Applies pending migrations; `relational_schema` is the configured schema of the
/// relational tables (used next to a ZITADEL; see [`layout::decide`]).
pub async fn migrate_with(pool: &PgPool, relational_schema: Option<&str>) -> Result<Vec<i64>> {
    let mut conn = pool.acquire().await.map_err(on_constraint)?;
    migrate_on(&mut conn, relational_schema).await
}

/// The runner on one connection (held for the whole run; the indexes need it outside a
/// transaction).
pub async fn migrate_on(
    conn: &mut PgConnection,
    relational_schema: Option<&str>,
) -> Result<Vec<i64>> {
    // One runner at a time per database (session lock: released below or on disconnect).
    // Polled with short statements, not waited for in one: a statement waiting for the
    // lock holds a snapshot, which the holder's CREATE INDEX CONCURRENTLY waits for in
    // turn (a deadlock PostgreSQL breaks by failing one of them).
    let mut waited = std::time::Duration::ZERO;
    loop {
        let locked: bool =
            sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext('tenancy.migrate'))")
                .fetch_one(&mut *conn)
                .await
                .map_err(on_constraint)?;
        if locked {
            break;
        }
        if waited.is_zero() {
            tracing::info!("another process is migrating this database: waiting for it");
        }
        let pause = std::time::Duration::from_millis(200);
        tokio::time::sleep(pause).await;
        waited += pause;
    }
    let result = run(conn, relational_schema).await;
    let unlocked = sqlx::query("SELECT pg_advisory_unlock(hashtext('tenancy.migrate'))")
        .execute(&mut *conn)
        .await
        .map_err(on_constraint);
    let applied = result?;
    unlocked?;
    Ok(applied)
}

async fn run(conn: &mut PgConnection, relational_schema: Option<&str>) -> Result<Vec<i64>> {
    // A stored layout means tenancy's ledger exists: nothing to detect, no legacy upgrade.
    let (layout, legacy) = match layout::stored(conn).await? {
        Some(stored) => (stored, false),
        None => {
            let facts = layout::facts(conn).await?;
            let legacy = facts.legacy_migrations > 0 && !facts.tenancy_ledger;
            (layout::decide(&facts, relational_schema)?, legacy)
        }
    };
    let applied = apply_pending(conn, &layout, legacy).await?;
    build_store_indexes(conn).await?;
    Ok(applied)
}

/// Pending migrations, the ledger, the layout and a legacy upgrade: one transaction.
async fn apply_pending(conn: &mut PgConnection, layout: &Layout, legacy: bool) -> Result<Vec<i64>> {
    let mut tx = conn.begin().await.map_err(on_constraint)?;
    let schema = &layout.relational_schema;
    layout::check_schema_name(schema)?;
    // Identifiers cannot be bound; the schema name was checked above (lower-case letters,
    // digits and _ only), and the search path is set for this transaction only.
    sqlx::raw_sql(AssertSqlSafe(format!(
        "CREATE SCHEMA IF NOT EXISTS tenancy;
         CREATE SCHEMA IF NOT EXISTS {schema};
         SET LOCAL search_path TO {};
         CREATE TABLE IF NOT EXISTS tenancy.migrations (
             version     BIGINT      PRIMARY KEY,
             description TEXT        NOT NULL,
             checksum    BYTEA       NOT NULL,
             skipped     BOOLEAN     NOT NULL DEFAULT false,
             applied_at  TIMESTAMPTZ NOT NULL DEFAULT now());",
        layout.search_path()
    )))
    .execute(&mut *tx)
    .await
    .map_err(on_constraint)?;
    let done: Vec<i64> = sqlx::query_scalar("SELECT version FROM tenancy.migrations")
        .fetch_all(&mut *tx)
        .await
        .map_err(on_constraint)?;
    let mut applied = Vec::new();
    for migration in up_migrations() {
        if done.contains(&migration.version) {
            continue;
        }
        let store_only = migration
            .sql
            .as_str()
            .trim_start()
            .starts_with(OWNED_STORE_ONLY);
        let skipped = (store_only && layout.event_store == EventStore::Adopted)
            || (legacy && LEGACY_BASELINE.contains(&migration.version));
        if !skipped {
            sqlx::raw_sql(migration.sql.clone())
                .execute(&mut *tx)
                .await
                .map_err(|e| {
                    Error::internal_with(
                        format!(
                            "migration {} ({}) failed, nothing was applied: {e}",
                            migration.version, migration.description
                        ),
                        e,
                    )
                })?;
        }
        sqlx::query(
            "INSERT INTO tenancy.migrations (version, description, checksum, skipped) VALUES ($1, $2, $3, $4)",
        )
        .bind(migration.version)
        .bind(migration.description.to_string())
        .bind(migration.checksum.to_vec())
        .bind(skipped)
        .execute(&mut *tx)
        .await
        .map_err(on_constraint)?;
        applied.push(migration.version);
    }
    if legacy {
        upgrade_legacy(&mut tx).await?;
    }
    layout::store(&mut tx, layout).await?;
    tx.commit().await.map_err(on_constraint)?;
    Ok(applied)
}

/// A database of a release before the `tenancy` schema: its cursors and failures move
/// into tenancy's tables, its v3 marks into `tenancy.written_events`, its functions (now in
/// `tenancy`) and its ledger go. The tables it created in `zitadel` and `eventstore` are the
/// same and stay.
async fn upgrade_legacy(conn: &mut PgConnection) -> Result<()> {
    sqlx::raw_sql(
        "INSERT INTO tenancy.current_states SELECT * FROM projections.current_states;
         INSERT INTO tenancy.failed_events2 SELECT * FROM projections.failed_events2;
         DROP TABLE projections.current_states, projections.failed_events2;
         -- Those releases owned the store: written_by_v3 was their own mark.
         INSERT INTO tenancy.written_events (instance_id, aggregate_type, aggregate_id, \"sequence\")
         SELECT instance_id, aggregate_type, aggregate_id, \"sequence\" FROM eventstore.events2 WHERE written_by_v3;
         DROP FUNCTION zitadel.apply_changes(text[], jsonb[], timestamptz[]);
         DROP FUNCTION zitadel.apply_change(jsonb, timestamptz);
         DROP FUNCTION zitadel.apply_op(text, jsonb, timestamptz);
         DROP FUNCTION eventstore.push(text[], text[], text[], text[], int2[], timestamptz[], jsonb[],
                                       text[], text[], int4[], bool[], int8[], int8[], text[], text);
         DROP TABLE public._sqlx_migrations;
         DO $$ BEGIN
             IF NOT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                            WHERE n.nspname = 'projections') THEN
                 DROP SCHEMA projections;
             END IF;
         END $$;",
    )
    .execute(conn)
    .await
    .map_err(|e| {
        Error::internal_with(
            format!("upgrading the layout of an earlier tenancy release failed, nothing was changed: {e}"),
            e,
        )
    })?;
    Ok(())
}

/// Builds the missing indexes on events2 CONCURRENTLY (no lock that blocks writers). An
/// INVALID index left by an interrupted build is dropped and built again.
async fn build_store_indexes(conn: &mut PgConnection) -> Result<()> {
    for index in &STORE_INDEXES {
        let (equivalent, ours_invalid): (bool, bool) = sqlx::query_as(
            "SELECT
                 EXISTS (SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                         WHERE i.indrelid = 'eventstore.events2'::regclass AND i.indisvalid
                           AND (c.relname = $1
                                OR (cardinality($2::text[]) > 0 AND i.indpred IS NULL
                                    AND (SELECT array_agg(a.attname::text ORDER BY k.n)
                                           FROM unnest(i.indkey[0:cardinality($2::text[]) - 1]) WITH ORDINALITY AS k(attnum, n)
                                           JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum)
                                        = $2::text[]))),
                 EXISTS (SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                         JOIN pg_namespace n ON n.oid = c.relnamespace
                         WHERE n.nspname = 'eventstore' AND c.relname = $1 AND NOT i.indisvalid)",
        )
        .bind(index.name)
        .bind(index.leading)
        .fetch_one(&mut *conn)
        .await
        .map_err(on_constraint)?;
        if equivalent {
            continue;
        }
        if ours_invalid {
            tracing::warn!(
                index = index.name,
                "dropping an index an interrupted build left INVALID"
            );
            sqlx::query(AssertSqlSafe(format!(
                "DROP INDEX CONCURRENTLY IF EXISTS eventstore.{}",
                index.name
            )))
            .execute(&mut *conn)
            .await
            .map_err(on_constraint)?;
        }
        tracing::info!(
            index = index.name,
            "building an index on eventstore.events2 concurrently"
        );
        sqlx::query(AssertSqlSafe(format!(
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS {} ON eventstore.events2 {}",
            index.name, index.definition
        )))
        .execute(&mut *conn)
        .await
        .map_err(on_constraint)?;
    }
    Ok(())
}

/// Applied and pending migrations, in order.
pub async fn status(pool: &PgPool) -> Result<Vec<MigrationStatus>> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('tenancy.migrations') IS NOT NULL")
        .fetch_one(pool)
        .await
        .map_err(on_constraint)?;
    let applied: Vec<i64> = if exists {
        sqlx::query_scalar("SELECT version FROM tenancy.migrations ORDER BY version")
            .fetch_all(pool)
            .await
            .map_err(on_constraint)?
    } else {
        Vec::new()
    };
    Ok(up_migrations()
        .map(|m| MigrationStatus {
            version: m.version,
            description: m.description.to_string(),
            applied: applied.contains(&m.version),
        })
        .collect())
}

/// What [`remove`] dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Removed {
    /// The schema of the relational tables, when tenancy's (not dropped when it holds
    /// other objects).
    pub relational_schema: Option<String>,
    /// Indexes tenancy built on `eventstore.events2`.
    pub store_indexes: Vec<String>,
}

/// Removes everything tenancy added to the database — its schema (bookkeeping, functions,
/// ledger, and the relational tables when they live there), the relational tables, types
/// and trigger function elsewhere, and its indexes on `eventstore.events2` (dropped
/// CONCURRENTLY) — and nothing else: the events, including those tenancy pushed, stay;
/// so does an event store tenancy created (drop `eventstore` yourself if it is not
/// ZITADEL's and you want the events gone). The relational tables go first, in one
/// transaction; then the indexes.
pub async fn remove(conn: &mut PgConnection) -> Result<Removed> {
    let Some(layout) = layout::stored(conn).await? else {
        return Err(Error::PreconditionFailed(
            "tenancy's migrations have not run on this database: nothing to remove".into(),
        ));
    };
    let schema = layout.relational_schema.clone();
    layout::check_schema_name(&schema)?;
    let mut removed = Removed::default();
    let mut tx = conn.begin().await.map_err(on_constraint)?;
    // The generations of a rebuild use the relational schema's types: they go first.
    for generation in [
        crate::generation::NEXT_SCHEMA,
        crate::generation::PREVIOUS_SCHEMA,
    ] {
        sqlx::query(AssertSqlSafe(format!(
            "DROP SCHEMA IF EXISTS {generation} CASCADE"
        )))
        .execute(&mut *tx)
        .await
        .map_err(on_constraint)?;
    }
    if schema != layout::TENANCY_SCHEMA {
        // Identifiers cannot be bound; the stored name is checked above.
        sqlx::raw_sql(AssertSqlSafe(format!(
            "DROP TABLE {schema}.domains, {schema}.org_domains, {schema}.instance_domains,
                        {schema}.organizations, {schema}.instances;
             DROP TYPE {schema}.organization_state, {schema}.domain_type, {schema}.domain_validation_type;
             DROP FUNCTION {schema}.stamp_updated_at();"
        )))
        .execute(&mut *tx)
        .await
        .map_err(on_constraint)?;
        let empty: bool = sqlx::query_scalar(
            "SELECT NOT EXISTS (SELECT 1 FROM pg_class WHERE relnamespace = to_regnamespace($1)::oid)
                AND NOT EXISTS (SELECT 1 FROM pg_type WHERE typnamespace = to_regnamespace($1)::oid)
                AND NOT EXISTS (SELECT 1 FROM pg_proc WHERE pronamespace = to_regnamespace($1)::oid)",
        )
        .bind(&schema)
        .fetch_one(&mut *tx)
        .await
        .map_err(on_constraint)?;
        if empty {
            sqlx::query(AssertSqlSafe(format!("DROP SCHEMA {schema}")))
                .execute(&mut *tx)
                .await
                .map_err(on_constraint)?;
        }
    }
    removed.relational_schema = Some(schema);
    sqlx::query("DROP SCHEMA tenancy CASCADE")
        .execute(&mut *tx)
        .await
        .map_err(on_constraint)?;
    tx.commit().await.map_err(on_constraint)?;
    let mut names: Vec<&str> = STORE_INDEXES.iter().map(|i| i.name).collect();
    if layout.event_store == EventStore::Owned {
        // The names of releases before the `tenancy` schema, on a store they created.
        names.extend(["events2_projection", "events2_position"]);
    }
    let ours: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
         WHERE i.indrelid = to_regclass('eventstore.events2') AND c.relname = ANY($1)",
    )
    .bind(names)
    .fetch_all(&mut *conn)
    .await
    .map_err(on_constraint)?;
    for name in ours {
        sqlx::query(AssertSqlSafe(format!(
            "DROP INDEX CONCURRENTLY IF EXISTS eventstore.{name}"
        )))
        .execute(&mut *conn)
        .await
        .map_err(on_constraint)?;
        removed.store_indexes.push(name);
    }
    Ok(removed)
}
