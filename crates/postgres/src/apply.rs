//! State changes applied by `tenancy.apply_change` / `tenancy.apply_changes` (migration
//! 0004): the one implementation of every write, for the repositories (one change) and the
//! projection (a batch per round trip).

use sqlx::PgConnection;
use tenancy_core::state::{StateChange, Table};
use tenancy_core::{Error, Result};
use time::OffsetDateTime;

use crate::error::MapDb;

fn encode(change: &StateChange) -> Result<serde_json::Value> {
    serde_json::to_value(change).map_err(|e| Error::internal_with("encoding a state change", e))
}

/// Applies one change; returns the rows it changed.
pub async fn apply_change(
    conn: &mut PgConnection,
    change: &StateChange,
    at: OffsetDateTime,
) -> Result<u64> {
    let rows: i64 = sqlx::query_scalar("SELECT tenancy.apply_change($1, $2)")
        .bind(encode(change)?)
        .bind(at)
        .fetch_one(conn)
        .await
        .db()?;
    Ok(u64::try_from(rows).unwrap_or(0))
}

/// Applies changes in order in one round trip; all or nothing (the statement fails whole).
pub async fn apply_changes(
    conn: &mut PgConnection,
    changes: &[(StateChange, OffsetDateTime)],
) -> Result<u64> {
    if changes.is_empty() {
        return Ok(0);
    }
    let (mut ops, mut fields, mut ats) = (Vec::new(), Vec::new(), Vec::new());
    for (change, at) in changes {
        // serde writes {"Variant": {fields}}: split it so the server need not look it up.
        let serde_json::Value::Object(map) = encode(change)? else {
            return Err(Error::internal(
                "a state change did not encode as an object",
            ));
        };
        let (op, value) = map
            .into_iter()
            .next()
            .ok_or_else(|| Error::internal("an empty state change"))?;
        ops.push(op);
        fields.push(value);
        ats.push(*at);
    }
    let rows: i64 = sqlx::query_scalar("SELECT tenancy.apply_changes($1, $2, $3)")
        .bind(ops)
        .bind(fields)
        .bind(ats)
        .fetch_one(conn)
        .await
        .db()?;
    Ok(u64::try_from(rows).unwrap_or(0))
}

/// Refreshes the planner's statistics of the five tables (after large bulk writes, so that
/// selectivity estimates follow the data rather than the empty tables of a fresh database).
pub async fn analyze_tables(pool: &sqlx::PgPool) -> Result<()> {
    let tables: Vec<&str> = Table::ALL.iter().map(|t| t.name()).collect();
    // Names from the registry, not from input.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "ANALYZE {}",
        tables.join(", ")
    )))
    .execute(pool)
    .await
    .db()
    .map(drop)
}
