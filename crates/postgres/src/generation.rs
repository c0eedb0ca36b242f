//! Generations of the relational tables, for a rebuild side by side with the live tables.
//!
//! A rebuild fills a **next** generation — empty copies of the five tables in the schema
//! [`NEXT_SCHEMA`], with the same columns, constraints and indexes under the same names —
//! while the live tables keep serving every read and keep being projected. A short
//! switch ([`freeze`], then [`Frozen::finish`]) then moves the live tables to [`PREVIOUS_SCHEMA`] and the next ones into the
//! live schema, in one transaction: a reader sees one generation or the other, never a
//! mix. The cursors move with their tables (the projection's name), the host-notification
//! triggers move to the new live tables, and every host cache is told to forget.
//!
//! Statements elsewhere name the tables unqualified, resolved through the `search_path`:
//! a connection whose path starts with [`NEXT_SCHEMA`] ([`next_options`]) reads and writes
//! the next generation with the very same SQL, and PostgreSQL replans every cached
//! statement that touched a moved table.

use rust_decimal::Decimal;
use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, Connection as _, PgConnection, Row as _};
use tenancy_core::state::Table;
use tenancy_core::{Error, Result};

use crate::layout::Layout;
use crate::on_constraint;

/// Where a rebuild fills the next generation.
pub const NEXT_SCHEMA: &str = "tenancy_next";
/// Where the generation a switch replaced is kept (until the next rebuild or
/// [`drop_previous`]).
pub const PREVIOUS_SCHEMA: &str = "tenancy_previous";

/// Connection options whose unqualified table names are the next generation's (the
/// live schema stays on the path behind it for the tables' types).
pub fn next_options(options: PgConnectOptions, layout: &Layout) -> PgConnectOptions {
    options.options([(
        "search_path",
        format!("{NEXT_SCHEMA},{}", layout.search_path()),
    )])
}

/// Whether a next generation exists (a rebuild is under way or was interrupted).
pub async fn next_exists(conn: &mut PgConnection) -> Result<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
        .bind(NEXT_SCHEMA)
        .fetch_one(conn)
        .await
        .map_err(on_constraint)
}

/// The five tables of the live generation, qualified, in registry order (parents first).
fn live_tables(layout: &Layout) -> Vec<String> {
    Table::ALL
        .iter()
        .map(|t| format!("{}.{}", layout.relational_schema, t.name()))
        .collect()
}

/// Creates the next generation: empty tables shaped like the live ones (columns,
/// defaults, identity, checks, keys, foreign keys among themselves, indexes; not the
/// notification triggers, which a bulk fill must not fire). One transaction.
pub async fn create_next(conn: &mut PgConnection, layout: &Layout) -> Result<()> {
    crate::layout::check_schema_name(&layout.relational_schema)?;
    let mut tx = conn.begin().await.map_err(on_constraint)?;
    sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA {NEXT_SCHEMA}")))
        .execute(&mut *tx)
        .await
        .map_err(on_constraint)?;
    let mut constraints = Vec::new();
    let mut indexes = Vec::new();
    for (table, live) in Table::ALL.iter().zip(live_tables(layout)) {
        // Autovacuum off while it is built: a worker vacuuming one of these tables when the
        // switch moves it would hold the switch — and the readers of the frozen live tables —
        // until `deadlock_timeout` cancels it (a switch locked the tables 2.3 s on a
        // 1M-event store). The rebuild analyses them itself; the switch turns it back on.
        sqlx::query(AssertSqlSafe(format!(
            "CREATE TABLE {NEXT_SCHEMA}.{} (LIKE {live} INCLUDING DEFAULTS INCLUDING IDENTITY \
             INCLUDING GENERATED INCLUDING CONSTRAINTS INCLUDING STORAGE) \
             WITH (autovacuum_enabled = false)",
            table.name()
        )))
        .execute(&mut *tx)
        .await
        .map_err(on_constraint)?;
        // Printed with the live search_path: references and tables come out unqualified.
        let rows = sqlx::query(
            "SELECT conname::text, pg_get_constraintdef(oid) FROM pg_constraint
             WHERE conrelid = $1::regclass AND contype IN ('p', 'u', 'f', 'x')
             ORDER BY contype = 'f', conname",
        )
        .bind(&live)
        .fetch_all(&mut *tx)
        .await
        .map_err(on_constraint)?;
        for row in rows {
            let (name, definition): (String, String) = (row.get(0), row.get(1));
            constraints.push(format!(
                "ALTER TABLE {} ADD CONSTRAINT {} {definition}",
                table.name(),
                quote(&name)
            ));
        }
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i
             WHERE i.indrelid = $1::regclass
               AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)",
        )
        .bind(&live)
        .fetch_all(&mut *tx)
        .await
        .map_err(on_constraint)?;
        indexes.extend(rows);
    }
    // Executed with the next generation first on the path: the same names now mean its
    // tables (a foreign key to `instances` references the next `instances`).
    sqlx::query(AssertSqlSafe(format!(
        "SET LOCAL search_path TO {NEXT_SCHEMA}, {}",
        layout.search_path()
    )))
    .execute(&mut *tx)
    .await
    .map_err(on_constraint)?;
    let indexes = indexes
        .iter()
        .map(|d| unqualify(d, &layout.relational_schema));
    for statement in constraints.into_iter().chain(indexes) {
        sqlx::query(AssertSqlSafe(statement))
            .execute(&mut *tx)
            .await
            .map_err(on_constraint)?;
    }
    tx.commit().await.map_err(on_constraint)
}

/// An index definition printed as `ON <schema>.<table>` made to name the table alone.
fn unqualify(definition: &str, schema: &str) -> String {
    definition.replace(&format!(" ON {schema}."), " ON ")
}

fn quote(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

/// The projection's names for the cursors of each generation.
#[derive(Debug, Clone, Copy)]
pub struct Names<'a> {
    /// The live tables' cursors.
    pub live: &'a str,
    /// The next generation's (a rebuild's).
    pub next: &'a str,
    /// The replaced generation's.
    pub previous: &'a str,
}

/// The outcome of a switch ([`Frozen::finish`]) attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Switch {
    /// The next generation is live; the former live one is in [`PREVIOUS_SCHEMA`].
    Done,
    /// The next generation has not yet reached what the live one holds: nothing changed.
    Behind(i64),
}

/// The live tables locked for a switch (see [`freeze`]); [`Frozen::finish`] switches or
/// leaves everything as it was.
#[derive(Debug)]
pub struct Frozen<'c> {
    tx: sqlx::Transaction<'c, sqlx::Postgres>,
    layout: Layout,
}

/// Locks the five live tables (`ACCESS EXCLUSIVE`, waiting at most 50 ms for the
/// transactions in flight on them, else `Err`: try again): from here readers and writers of the live
/// tables wait, the live projection cannot move its cursors (it writes rows before its
/// cursor) and no v3 command can commit. The next generation's own catch-up goes on (other
/// tables, other cursors), so the last events can be brought over before [`Frozen::finish`].
pub async fn freeze<'c>(conn: &'c mut PgConnection, layout: &Layout) -> Result<Frozen<'c>> {
    crate::layout::check_schema_name(&layout.relational_schema)?;
    let mut tx = conn.begin().await.map_err(on_constraint)?;
    // A reader holding one table and waiting for another would deadlock with this lock
    // (readers take the tables in the order of their queries). Giving up after 50 ms —
    // well before PostgreSQL's deadlock detection at `deadlock_timeout` (1 s) — makes
    // this transaction, never a reader, the one that fails; it is tried again.
    sqlx::query("SET LOCAL lock_timeout = '50ms'")
        .execute(&mut *tx)
        .await
        .map_err(on_constraint)?;
    sqlx::query(AssertSqlSafe(format!(
        "LOCK TABLE {} IN ACCESS EXCLUSIVE MODE",
        live_tables(layout).join(", ")
    )))
    .execute(&mut *tx)
    .await
    .map_err(on_constraint)?;
    sqlx::query("SET LOCAL lock_timeout = '2s'")
        .execute(&mut *tx)
        .await
        .map_err(on_constraint)?;
    Ok(Frozen {
        tx,
        layout: layout.clone(),
    })
}

impl Frozen<'_> {
    /// Unlocks the live tables, changing nothing.
    pub async fn release(self) -> Result<()> {
        self.tx.rollback().await.map_err(on_constraint)
    }

    /// Makes the next generation live if it holds everything the live one holds: every
    /// live cursor reached and every event a v3 command wrote (rows written into the live
    /// tables only) replayed; else rolls back and says how much is missing.
    /// `caught_up_to`: a position the next generation reached for every instance.
    pub async fn finish(self, names: Names<'_>, caught_up_to: Decimal) -> Result<Switch> {
        let Frozen { mut tx, layout } = self;
        let Names {
            live,
            next,
            previous,
        } = names;
        let schema = &layout.relational_schema;
        let tables = live_tables(&layout);
        // Only what is newer than `caught_up_to` can be missing: live cursors past it,
        // v3 events past it.
        let behind: i64 = sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM tenancy.current_states l
                     LEFT JOIN tenancy.current_states n ON n.projection_name = $2 AND n.instance_id = l.instance_id
                     WHERE l.projection_name = $1 AND l.\"position\" >= $3
                       AND (n.instance_id IS NULL
                            OR (n.\"position\", n.in_tx_order, n.instance_id, n.aggregate_type, n.aggregate_id, n.\"sequence\")
                               < (l.\"position\", l.in_tx_order, l.instance_id, l.aggregate_type, l.aggregate_id, l.\"sequence\")))
                  + (SELECT count(*) FROM eventstore.events2 e
                     JOIN tenancy.written_events w USING (instance_id, aggregate_type, aggregate_id, \"sequence\")
                     LEFT JOIN tenancy.current_states n ON n.projection_name = $2 AND n.instance_id = e.instance_id
                     WHERE e.\"position\" >= $3
                       AND (n.instance_id IS NULL
                            OR (n.\"position\", n.in_tx_order, n.instance_id, n.aggregate_type, n.aggregate_id, n.\"sequence\")
                               < (e.\"position\", e.in_tx_order, e.instance_id, e.aggregate_type, e.aggregate_id, e.\"sequence\")))",
        )
        .bind(live)
        .bind(next)
        .bind(caught_up_to)
        .fetch_one(&mut *tx)
        .await
        .map_err(on_constraint)?;
        if behind > 0 {
            tx.rollback().await.map_err(on_constraint)?;
            return Ok(Switch::Behind(behind));
        }
        // The live tables' own triggers (host notifications), to re-create on the new ones.
        let triggers: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT c.relname::text, t.tgname::text, pg_get_triggerdef(t.oid)
         FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
         WHERE t.tgrelid = ANY($1::regclass[]) AND NOT t.tgisinternal",
        )
        .bind(&tables)
        .fetch_all(&mut *tx)
        .await
        .map_err(on_constraint)?;
        let mut statements = vec![
            format!("DROP SCHEMA IF EXISTS {PREVIOUS_SCHEMA} CASCADE"),
            format!("CREATE SCHEMA {PREVIOUS_SCHEMA}"),
        ];
        // Autovacuum: off on the replaced tables (written no more), so that dropping them
        // or switching back never waits for a worker; on again on the new live ones (see
        // `create_next`).
        for table in Table::ALL.iter().rev() {
            statements.push(format!(
                "ALTER TABLE {schema}.{} SET SCHEMA {PREVIOUS_SCHEMA}",
                table.name()
            ));
            statements.push(format!(
                "ALTER TABLE {PREVIOUS_SCHEMA}.{} SET (autovacuum_enabled = false)",
                table.name()
            ));
        }
        for table in Table::ALL {
            statements.push(format!(
                "ALTER TABLE {NEXT_SCHEMA}.{} SET SCHEMA {schema}",
                table.name()
            ));
            statements.push(format!(
                "ALTER TABLE {schema}.{} RESET (autovacuum_enabled)",
                table.name()
            ));
        }
        statements.push(format!("DROP SCHEMA {NEXT_SCHEMA}"));
        for (table, name, _) in &triggers {
            statements.push(format!(
                "DROP TRIGGER {} ON {PREVIOUS_SCHEMA}.{}",
                quote(name),
                quote(table)
            ));
        }
        for (_, _, definition) in &triggers {
            // Printed unqualified (the live schema is on the path): the new live table.
            statements.push(definition.replace(&format!(" ON {schema}."), " ON "));
        }
        // One round trip for all of them: the readers wait for this part.
        sqlx::raw_sql(AssertSqlSafe(statements.join(";\n")))
            .execute(&mut *tx)
            .await
            .map_err(on_constraint)?;
        // The cursors (and failures) go with their tables: live -> previous, next -> live.
        forget_projection(&mut tx, previous).await?;
        for table in BOOKKEEPING {
            for (from, to) in [(live, previous), (next, live)] {
                sqlx::query(AssertSqlSafe(format!(
                    "UPDATE {table} SET projection_name = $1 WHERE projection_name = $2"
                )))
                .bind(to)
                .bind(from)
                .execute(&mut *tx)
                .await
                .map_err(on_constraint)?;
            }
        }
        // Where the replaced generation stopped: every v3 command committed so far wrote
        // its rows into it (they wait for the lock held here), none later will. A switch
        // back replays v3 events only after this position (`switched_out_at`).
        sqlx::query(
            "INSERT INTO tenancy.sweeps (projection_name, swept_from)
             SELECT $1, COALESCE(max(\"position\"), 0) FROM eventstore.events2
             ON CONFLICT (projection_name) DO UPDATE SET swept_from = EXCLUDED.swept_from, last_swept = now()",
        )
        .bind(previous)
        .execute(&mut *tx)
        .await
        .map_err(on_constraint)?;
        // Every host cache forgets (delivered at commit).
        sqlx::query("SELECT pg_notify('tenancy_hosts', '*')")
            .execute(&mut *tx)
            .await
            .map_err(on_constraint)?;
        tx.commit().await.map_err(on_constraint)?;
        Ok(Switch::Done)
    }
}

/// Makes the previous generation the next one again (its tables and its cursors,
/// failures and sweep position), for a switch back; returns the position it was replaced
/// at (v3 commands up to it wrote their rows into it, later ones did not). Refused when there is no previous
/// generation or a next one exists (an unfinished rebuild: finish or abandon it first).
pub async fn previous_to_next(conn: &mut PgConnection, names: Names<'_>) -> Result<Decimal> {
    let mut tx = conn.begin().await.map_err(on_constraint)?;
    let (previous, next): (bool, bool) = sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1),
                EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $2)",
    )
    .bind(PREVIOUS_SCHEMA)
    .bind(NEXT_SCHEMA)
    .fetch_one(&mut *tx)
    .await
    .map_err(on_constraint)?;
    if !previous {
        return Err(Error::precondition(
            "there is no previous generation to switch back to (none was kept, or it was dropped)",
        ));
    }
    if next {
        return Err(Error::precondition(
            "a rebuild is unfinished: run `projections rebuild` to finish it, or `--abandon` it, first",
        ));
    }
    let switched_out_at: Option<Decimal> =
        sqlx::query_scalar("SELECT swept_from FROM tenancy.sweeps WHERE projection_name = $1")
            .bind(names.previous)
            .fetch_optional(&mut *tx)
            .await
            .map_err(on_constraint)?;
    let Some(switched_out_at) = switched_out_at else {
        return Err(Error::precondition(
            "the previous generation does not record where it was replaced (it was replaced \
             by a release before migration 0011): it cannot be switched back to safely",
        ));
    };
    sqlx::query(AssertSqlSafe(format!(
        "ALTER SCHEMA {PREVIOUS_SCHEMA} RENAME TO {NEXT_SCHEMA}"
    )))
    .execute(&mut *tx)
    .await
    .map_err(on_constraint)?;
    forget_projection(&mut tx, names.next).await?;
    for table in BOOKKEEPING {
        sqlx::query(AssertSqlSafe(format!(
            "UPDATE {table} SET projection_name = $1 WHERE projection_name = $2"
        )))
        .bind(names.next)
        .bind(names.previous)
        .execute(&mut *tx)
        .await
        .map_err(on_constraint)?;
    }
    tx.commit().await.map_err(on_constraint)?;
    Ok(switched_out_at)
}

/// Drops the previous generation and its cursors (`previous`: the projection's name for
/// them). True when there was one.
pub async fn drop_previous(conn: &mut PgConnection, previous: &str) -> Result<bool> {
    drop_generation(conn, PREVIOUS_SCHEMA, previous).await
}

/// Drops an unfinished next generation and its cursors (a rebuild abandoned). True when
/// there was one.
pub async fn drop_next(conn: &mut PgConnection, next: &str) -> Result<bool> {
    drop_generation(conn, NEXT_SCHEMA, next).await
}

/// Drops `schema` (a generation's tables) and the cursors and failures kept under
/// `projection`, in one transaction.
async fn drop_generation(conn: &mut PgConnection, schema: &str, projection: &str) -> Result<bool> {
    let mut tx = conn.begin().await.map_err(on_constraint)?;
    let existed: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
            .bind(schema)
            .fetch_one(&mut *tx)
            .await
            .map_err(on_constraint)?;
    // `schema` is one of this module's constants.
    sqlx::query(AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE"
    )))
    .execute(&mut *tx)
    .await
    .map_err(on_constraint)?;
    forget_projection(&mut tx, projection).await?;
    tx.commit().await.map_err(on_constraint)?;
    Ok(existed)
}

/// The tables that keep a projection's cursors, failures and sweep position by its name.
pub const BOOKKEEPING: [&str; 3] = [
    "tenancy.current_states",
    "tenancy.failed_events2",
    "tenancy.sweeps",
];

/// Deletes the cursors and failures kept under `projection`.
async fn forget_projection(conn: &mut PgConnection, projection: &str) -> Result<()> {
    for table in BOOKKEEPING {
        sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE projection_name = $1"
        )))
        .bind(projection)
        .execute(&mut *conn)
        .await
        .map_err(on_constraint)?;
    }
    Ok(())
}
