//! State changes applied by `zitadel.apply_change` / `zitadel.apply_changes` (migration
//! 0004): the one implementation of every write, for the repositories (one change) and the
//! projection (a batch per round trip).

use sqlx::PgConnection;
use tenancy_core::state::StateChange;
use tenancy_core::{Error, Result};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

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
    let rows: i64 = sqlx::query_scalar("SELECT zitadel.apply_change($1, $2)")
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
    let mut batch = Vec::with_capacity(changes.len());
    for (change, at) in changes {
        let at = at
            .format(&Rfc3339)
            .map_err(|e| Error::internal_with("formatting an event time", e))?;
        batch.push(serde_json::json!({ "change": encode(change)?, "at": at }));
    }
    let rows: i64 = sqlx::query_scalar("SELECT zitadel.apply_changes($1)")
        .bind(serde_json::Value::Array(batch))
        .fetch_one(conn)
        .await
        .db()?;
    Ok(u64::try_from(rows).unwrap_or(0))
}
