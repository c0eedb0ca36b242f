//! Databases laid out by ZITADEL itself, for tests and benchmarks of the adoption: the
//! fixtures of `fixtures/zitadel/` (written for tenancy from the facts of ZITADEL's source;
//! see the README there) and a push as ZITADEL's writers do it.

use sqlx::{AssertSqlSafe, PgPool};
use tenancy_core::event::NewEvent;

use crate::db::{ProvisionError, TestDatabase};

/// ZITADEL's init and events2 layout before `written_by_v3`, with its push and step 15's
/// bookkeeping (an "older store").
pub const INIT: &str = include_str!("../fixtures/zitadel/01_init.sql");
/// On top of [`INIT`]: `written_by_v3` and step 82's cursor trigger (the v4 layout).
pub const V4: &str = include_str!("../fixtures/zitadel/02_v4.sql");
/// On top of [`V4`]: ZITADEL's own `zitadel.*` tables, types and ledger, and its
/// `relational_tables` cursor.
pub const TRANSACTIONAL_TABLES: &str =
    include_str!("../fixtures/zitadel/03_transactional_tables.sql");
/// A later `zitadel setup` on the objects ZITADEL owns.
pub const SETUP_NEXT: &str = include_str!("../fixtures/zitadel/04_setup_next.sql");

/// An empty database laid out with `fixtures`, in order.
pub async fn database(fixtures: &[&str]) -> Result<TestDatabase, ProvisionError> {
    let db = TestDatabase::empty().await?;
    for sql in fixtures {
        sqlx::raw_sql(AssertSqlSafe(*sql))
            .execute(&db.pool)
            .await
            .map_err(|e| ProvisionError(format!("applying a ZITADEL fixture: {e}")))?;
    }
    Ok(db)
}

/// Pushes `events` as ZITADEL does — in one transaction, `eventstore.push(commands)` with
/// the per-instance shared locks; no notification. `v3` marks them as written by ZITADEL's
/// own v3 code (only where the store has `written_by_v3`: `with_v3_column`).
pub async fn push(
    pool: &PgPool,
    events: &[NewEvent],
    with_v3_column: bool,
    v3: bool,
) -> Result<(), sqlx::Error> {
    let row = if with_v3_column {
        "ROW(i, t, id, et, 1, p, c, o, $8)::eventstore.command"
    } else {
        "ROW(i, t, id, et, 1, p, c, o)::eventstore.command"
    };
    let sql = format!(
        "SELECT count(*) FROM eventstore.push(ARRAY(
             SELECT {row} FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::jsonb[], $6::text[], $7::text[])
                 WITH ORDINALITY AS x(i, t, id, et, p, c, o, n)
             ORDER BY n))"
    );
    let mut tx = pool.begin().await?;
    let query = sqlx::query(AssertSqlSafe(sql))
        .bind(
            events
                .iter()
                .map(|e| e.instance_id.clone())
                .collect::<Vec<_>>(),
        )
        .bind(
            events
                .iter()
                .map(|e| e.aggregate_type.clone())
                .collect::<Vec<_>>(),
        )
        .bind(
            events
                .iter()
                .map(|e| e.aggregate_id.clone())
                .collect::<Vec<_>>(),
        )
        .bind(
            events
                .iter()
                .map(|e| e.event_type.clone())
                .collect::<Vec<_>>(),
        )
        .bind(events.iter().map(|e| e.payload.clone()).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.creator.clone()).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.owner.clone()).collect::<Vec<_>>());
    let query = if with_v3_column {
        query.bind(v3)
    } else {
        query
    };
    query.execute(&mut *tx).await?;
    tx.commit().await
}
