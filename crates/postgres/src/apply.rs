//! State changes applied change by change by the schema's functions, one per table
//! (`tenancy.apply_<table>`, migration 0008): for the repositories (one change) and the
//! projection's exact, event-by-event path.

use sqlx::PgConnection;
use tenancy_core::state::{StateChange, Table};
use tenancy_core::{Error, Result};
use time::OffsetDateTime;

use crate::error::MapDb;

/// The change as the schema's functions take it: its variant's name and its fields (serde
/// writes `{"Variant": {fields}}`).
fn encode(change: &StateChange) -> Result<(String, serde_json::Value)> {
    let encoded = serde_json::to_value(change)
        .map_err(|e| Error::internal_with("encoding a state change", e))?;
    let serde_json::Value::Object(map) = encoded else {
        return Err(Error::internal(
            "a state change did not encode as an object",
        ));
    };
    map.into_iter()
        .next()
        .ok_or_else(|| Error::internal("an empty state change"))
}

/// Applies one change with its table's function; returns the rows it changed.
pub async fn apply_change(
    conn: &mut PgConnection,
    change: &StateChange,
    at: OffsetDateTime,
) -> Result<u64> {
    let (op, fields) = encode(change)?;
    // The function's name comes from the table registry, not from input.
    let sql = format!("SELECT tenancy.apply_{}($1, $2, $3)", change.table().name());
    let rows: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(op)
        .bind(fields)
        .bind(at)
        .fetch_one(conn)
        .await
        .db()?;
    Ok(u64::try_from(rows).unwrap_or(0))
}

/// Applies changes in order in one round trip, change by change (`tenancy.apply_changes`);
/// all or nothing (the statement fails whole). Batches go set-based instead
/// ([`crate::batch`]); this is the exact path a batch falls back to.
pub async fn apply_changes(
    conn: &mut PgConnection,
    changes: &[(StateChange, OffsetDateTime)],
) -> Result<u64> {
    if changes.is_empty() {
        return Ok(0);
    }
    let (mut tables, mut ops, mut fields, mut ats) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (change, at) in changes {
        let (op, value) = encode(change)?;
        tables.push(change.table().name());
        ops.push(op);
        fields.push(value);
        ats.push(*at);
    }
    let rows: i64 = sqlx::query_scalar("SELECT tenancy.apply_changes($1, $2, $3, $4)")
        .bind(tables)
        .bind(ops)
        .bind(fields)
        .bind(ats)
        .fetch_one(conn)
        .await
        .db()?;
    Ok(u64::try_from(rows).unwrap_or(0))
}

/// The rows of the five tables as the planner's statistics last counted them (0 for a table
/// never analysed): what the statistics are current for when a process starts.
pub async fn analysed_rows(pool: &sqlx::PgPool) -> Result<u64> {
    let tables: Vec<&str> = Table::ALL.iter().map(|t| t.name()).collect();
    let rows: i64 = sqlx::query_scalar(
        "SELECT coalesce(sum(greatest(c.reltuples, 0)), 0)::int8
         FROM unnest($1::text[]) AS t(name) JOIN pg_class c ON c.oid = to_regclass(t.name)",
    )
    .bind(tables)
    .fetch_one(pool)
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
