//! Where tenancy's objects live in a database, found before anything is changed.
//!
//! A database tenancy meets is one of three kinds:
//! - **empty** of any event store: tenancy creates `eventstore.events2` (it *owns* the store)
//!   and puts the relational tables in `zitadel` (schema.md);
//! - **laid out by ZITADEL** (`eventstore.events2` exists and no tenancy release created it):
//!   tenancy *adopts* the store as found — it never creates, alters or writes ZITADEL's
//!   objects — and puts the relational tables in a schema of its own (default `tenancy`),
//!   since ZITADEL's setup creates `zitadel.instances` and its types itself;
//! - **laid out by an earlier tenancy release** (its ledger `public._sqlx_migrations`,
//!   bookkeeping in `projections.*`): upgraded in place by the runner ([`crate::migrate`]).
//!
//! Everything tenancy keeps for itself (cursors, failed events, functions, the migration
//! ledger, this decision) lives in the schema `tenancy`. The decision is stored once in
//! `tenancy.layout`; every connection then resolves tenancy's unqualified names through
//! its `search_path` (`<relational schema>, tenancy`; [`crate::pool`]).

use sqlx::PgConnection;
use tenancy_core::{Error, Result};

use crate::on_constraint;

/// tenancy's own schema: bookkeeping, functions, ledger.
pub const TENANCY_SCHEMA: &str = "tenancy";

/// The relational tables' schema where no ZITADEL owns `zitadel`.
pub const DEFAULT_RELATIONAL_SCHEMA: &str = "zitadel";

/// The relational tables' schema next to a ZITADEL, unless configured otherwise.
pub const DEFAULT_SHARED_RELATIONAL_SCHEMA: &str = "tenancy";

/// Who created `eventstore.events2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventStore {
    /// tenancy created it (or will): `written_by_v3` is tenancy's own mark.
    Owned,
    /// ZITADEL's, used as found: `written_by_v3` (if present) is ZITADEL's; the events
    /// tenancy's commands wrote are listed in `tenancy.written_events`.
    Adopted,
}

impl EventStore {
    fn as_str(self) -> &'static str {
        match self {
            Self::Owned => "owned",
            Self::Adopted => "adopted",
        }
    }
}

/// The layout of one database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Schema of the five relational tables and their types.
    pub relational_schema: String,
    /// Whether tenancy owns `eventstore.events2` or adopted ZITADEL's.
    pub event_store: EventStore,
    /// A ZITADEL database (its event store, bookkeeping or setup ledger were found).
    pub zitadel_present: bool,
}

impl Layout {
    /// The `search_path` of every tenancy connection.
    pub fn search_path(&self) -> String {
        if self.relational_schema == TENANCY_SCHEMA {
            TENANCY_SCHEMA.to_owned()
        } else {
            format!("{},{TENANCY_SCHEMA}", self.relational_schema)
        }
    }

    /// Whether the event store is ZITADEL's.
    pub fn adopted(&self) -> bool {
        self.event_store == EventStore::Adopted
    }
}

/// What the catalog says, read in one statement before anything is changed.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Facts {
    /// `eventstore.events2` exists.
    pub events2: bool,
    /// tenancy's migration ledger exists (`tenancy.migrations`).
    pub tenancy_ledger: bool,
    /// `tenancy.layout`, the decision of an earlier run, exists.
    pub tenancy_layout: bool,
    /// An earlier tenancy release's ledger (`public._sqlx_migrations` with its migrations).
    pub legacy_migrations: i64,
    /// ZITADEL's own objects: its system schema, its setup ledger of the v3 tables.
    pub zitadel_system: bool,
    /// ZITADEL's ledger of its v3 tables (`zitadel.migrations`).
    pub zitadel_v3_ledger: bool,
    /// ZITADEL's projection bookkeeping table `current_states` in the schema `tenancy`.
    pub zitadel_current_states: bool,
    /// Tables in the schema `zitadel` (whoever made them).
    pub zitadel_schema_tables: i64,
    /// Columns of `eventstore.events2`.
    pub events2_columns: Vec<String>,
    /// NOT NULL columns without a default that tenancy does not know how to fill.
    pub events2_unfillable: Vec<String>,
}

/// The descriptions sqlx gave the migrations of releases before the `tenancy` schema
/// (files now in `migrations/legacy/`).
pub const LEGACY_MIGRATIONS: [&str; 7] = [
    "eventstore",
    "projections",
    "relational tables",
    "apply changes",
    "apply changes plans",
    "push",
    "instance domain claims",
];

/// schema.md's columns of `eventstore.events2`, in its order.
pub const EVENTS2_COLUMNS: [&str; 13] = [
    "instance_id",
    "aggregate_type",
    "aggregate_id",
    "event_type",
    "sequence",
    "revision",
    "created_at",
    "payload",
    "creator",
    "owner",
    "position",
    "in_tx_order",
    "written_by_v3",
];

/// The columns tenancy cannot do without: all but `written_by_v3`, which stores older
/// than it lack (read as its default).
pub const REQUIRED_EVENTS2_COLUMNS: &[&str] = EVENTS2_COLUMNS.split_at(12).0;

/// Reads the catalog facts the decision rests on.
pub async fn facts(conn: &mut PgConnection) -> Result<Facts> {
    let mut facts: Facts = sqlx::query_as(
        "SELECT to_regclass('eventstore.events2') IS NOT NULL AS events2,
                to_regclass('tenancy.migrations') IS NOT NULL AS tenancy_ledger,
                to_regclass('tenancy.layout') IS NOT NULL AS tenancy_layout,
                0::int8 AS legacy_migrations,
                to_regclass('system.encryption_keys') IS NOT NULL AS zitadel_system,
                to_regclass('zitadel.migrations') IS NOT NULL AS zitadel_v3_ledger,
                to_regclass('tenancy.current_states') IS NOT NULL AS zitadel_current_states,
                (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE n.nspname = 'zitadel' AND c.relkind IN ('r', 'p')) AS zitadel_schema_tables,
                coalesce((SELECT array_agg(a.attname::text ORDER BY a.attnum) FROM pg_attribute a
                  WHERE a.attrelid = to_regclass('eventstore.events2') AND a.attnum > 0 AND NOT a.attisdropped),
                  '{}') AS events2_columns,
                coalesce((SELECT array_agg(a.attname::text ORDER BY a.attnum) FROM pg_attribute a
                  WHERE a.attrelid = to_regclass('eventstore.events2') AND a.attnum > 0 AND NOT a.attisdropped
                    AND a.attnotnull AND NOT a.atthasdef AND a.attidentity = '' AND a.attgenerated = ''
                    AND a.attname <> ALL($1::text[])), '{}') AS events2_unfillable",
    )
    .bind(EVENTS2_COLUMNS)
    .fetch_one(&mut *conn)
    .await
    .map_err(on_constraint)?;
    let legacy_ledger: bool =
        sqlx::query_scalar("SELECT to_regclass('public._sqlx_migrations') IS NOT NULL")
            .fetch_one(&mut *conn)
            .await
            .map_err(on_constraint)?;
    if legacy_ledger {
        facts.legacy_migrations = sqlx::query_scalar(
            "SELECT count(*) FROM public._sqlx_migrations WHERE success AND description = ANY($1)",
        )
        .bind(LEGACY_MIGRATIONS)
        .fetch_one(&mut *conn)
        .await
        .map_err(on_constraint)?;
    }
    Ok(facts)
}

/// A schema name tenancy may use: lower-case letters, digits, `_`; not a system schema.
pub fn check_schema_name(name: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !name.starts_with("pg_")
        && !matches!(
            name,
            "public" | "information_schema" | "eventstore" | "projections" | "system"
        );
    if valid {
        Ok(())
    } else {
        Err(Error::invalid(
            "relational_schema",
            format!(
                "{name:?} is not a schema tenancy may use: lower-case letters, digits and _, \
                 not public, eventstore, projections, system or a pg_ schema"
            ),
        ))
    }
}

/// Decides the layout from the catalog (nothing is changed): `preferred` is the configured
/// relational schema, used next to a ZITADEL (and honoured elsewhere when given).
pub fn decide(facts: &Facts, preferred: Option<&str>) -> Result<Layout> {
    let legacy = facts.legacy_migrations > 0;
    if legacy && facts.legacy_migrations < LEGACY_MIGRATIONS.len() as i64 && !facts.tenancy_ledger {
        return Err(Error::PreconditionFailed(format!(
            "this database was laid out by an earlier tenancy release whose migrations are only partly applied \
             ({} of {} in public._sqlx_migrations): run that release's `tenancy migrate` to the end first",
            facts.legacy_migrations,
            LEGACY_MIGRATIONS.len()
        )));
    }
    let zitadel_present = !legacy
        && (facts.zitadel_system
            || facts.zitadel_v3_ledger
            || facts.zitadel_current_states
            || facts.events2);
    let event_store = if facts.events2 && !legacy {
        EventStore::Adopted
    } else {
        EventStore::Owned
    };
    if facts.events2 {
        let missing: Vec<&str> = REQUIRED_EVENTS2_COLUMNS
            .iter()
            .copied()
            .filter(|c| !facts.events2_columns.iter().any(|have| have == c))
            .collect();
        if !missing.is_empty() {
            return Err(Error::PreconditionFailed(format!(
                "eventstore.events2 lacks the column(s) {} that tenancy reads: this event store predates \
                 ZITADEL's events2 layout (v2.39); upgrade ZITADEL first (its setup migrates eventstore.events)",
                missing.join(", ")
            )));
        }
        if !facts.events2_unfillable.is_empty() {
            return Err(Error::PreconditionFailed(format!(
                "eventstore.events2 has NOT NULL column(s) without a default that tenancy cannot fill: {}; \
                 this ZITADEL version's event store is not supported",
                facts.events2_unfillable.join(", ")
            )));
        }
    }
    let relational_schema = match preferred {
        Some(name) => {
            check_schema_name(name)?;
            if name == DEFAULT_RELATIONAL_SCHEMA
                && (zitadel_present || (facts.zitadel_schema_tables > 0 && !legacy))
            {
                return Err(Error::PreconditionFailed(
                    "relational_schema = \"zitadel\" is configured, but ZITADEL is present in this database and \
                     creates instances and its types itself: configure another schema (default \"tenancy\")"
                        .into(),
                ));
            }
            name.to_owned()
        }
        None if legacy => DEFAULT_RELATIONAL_SCHEMA.to_owned(),
        None if zitadel_present || facts.zitadel_schema_tables > 0 => {
            DEFAULT_SHARED_RELATIONAL_SCHEMA.to_owned()
        }
        None => DEFAULT_RELATIONAL_SCHEMA.to_owned(),
    };
    Ok(Layout {
        relational_schema,
        event_store,
        zitadel_present,
    })
}

/// The stored layout, if tenancy's migrations have run.
pub async fn stored(conn: &mut PgConnection) -> Result<Option<Layout>> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('tenancy.layout') IS NOT NULL")
        .fetch_one(&mut *conn)
        .await
        .map_err(on_constraint)?;
    if !exists {
        return Ok(None);
    }
    let row: Option<(String, String, bool)> = sqlx::query_as(
        "SELECT relational_schema, event_store, zitadel_present FROM tenancy.layout",
    )
    .fetch_optional(&mut *conn)
    .await
    .map_err(on_constraint)?;
    Ok(
        row.map(|(relational_schema, store, zitadel_present)| Layout {
            relational_schema,
            event_store: if store == EventStore::Adopted.as_str() {
                EventStore::Adopted
            } else {
                EventStore::Owned
            },
            zitadel_present,
        }),
    )
}

/// The stored layout, or the one the runner would decide now.
pub async fn resolve(conn: &mut PgConnection, preferred: Option<&str>) -> Result<Layout> {
    if let Some(layout) = stored(conn).await? {
        if let Some(wanted) = preferred
            && wanted != layout.relational_schema
        {
            tracing::warn!(
                configured = wanted,
                stored = %layout.relational_schema,
                "the relational tables already live in another schema than configured; using the stored one"
            );
        }
        return Ok(layout);
    }
    decide(&facts(conn).await?, preferred)
}

/// Records the decision (inside the runner's transaction).
pub(crate) async fn store(conn: &mut PgConnection, layout: &Layout) -> Result<()> {
    sqlx::query(
        "INSERT INTO tenancy.layout (relational_schema, event_store, zitadel_present) VALUES ($1, $2, $3)
         ON CONFLICT (singleton) DO NOTHING",
    )
    .bind(&layout.relational_schema)
    .bind(layout.event_store.as_str())
    .bind(layout.zitadel_present)
    .execute(conn)
    .await
    .map_err(on_constraint)?;
    Ok(())
}
