//! Operations: status, failed events, retry, dismiss, rebuild.

use rust_decimal::Decimal;
use tenancy_core::event::StoredEvent;
use tenancy_core::ports::{EventReader, UnitOfWork};
use tenancy_core::state::Table;
use tenancy_core::{Error, Result};
use tenancy_postgres::{PgStore, on_constraint};
use time::OffsetDateTime;

use crate::engine::{Engine, Outcome, ReplayV3, apply_event, record_failure};
use crate::relational;

/// Where a projection stands.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    pub projection: &'static str,
    /// Instances with a cursor.
    pub instances: i64,
    /// Events of the projection's types past the cursors.
    pub events_behind: i64,
    /// Age of the oldest event not yet passed, in seconds (0 when caught up).
    pub lag_seconds: f64,
    /// Rows in `failed_events2`.
    pub failed_events: i64,
}

/// A row of `tenancy.failed_events2`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct FailedEvent {
    pub instance_id: String,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub failed_sequence: i64,
    pub event_creation_date: OffsetDateTime,
    pub failure_count: i16,
    pub error: String,
    pub last_failed: OffsetDateTime,
}

/// What `retry` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryOutcome {
    /// The event was past the cursor (skipped): applied now.
    Applied,
    /// The cursor has not passed it yet: its count is reset and the next run retries it.
    Requeued,
}

impl Engine {
    pub async fn status(&self) -> Result<Status> {
        let (events_behind, oldest): (i64, Option<OffsetDateTime>) = sqlx::query_as(
            "SELECT count(*), min(e.created_at) FROM eventstore.events2 e
             LEFT JOIN tenancy.current_states c ON c.projection_name = $1 AND c.instance_id = e.instance_id
             WHERE e.instance_id <> '' AND e.aggregate_type = ANY($2) AND e.event_type = ANY($3)
               AND (c.instance_id IS NULL
                    OR (e.\"position\", e.in_tx_order, e.instance_id, e.aggregate_type, e.aggregate_id, e.\"sequence\")
                       > (c.\"position\", c.in_tx_order, c.instance_id, c.aggregate_type, c.aggregate_id, c.\"sequence\"))",
        )
        .bind(relational::NAME)
        .bind(relational::aggregate_types())
        .bind(relational::event_types())
        .fetch_one(self.pool())
        .await
        .map_err(on_constraint)?;
        let (instances, failed_events): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM tenancy.current_states WHERE projection_name = $1),
                    (SELECT count(*) FROM tenancy.failed_events2 WHERE projection_name = $1)",
        )
        .bind(relational::NAME)
        .fetch_one(self.pool())
        .await
        .map_err(on_constraint)?;
        let lag_seconds = oldest.map_or(0.0, |t| {
            (OffsetDateTime::now_utc() - t).as_seconds_f64().max(0.0)
        });
        Ok(Status {
            projection: relational::NAME,
            instances,
            events_behind,
            lag_seconds,
            failed_events,
        })
    }

    pub async fn failed(&self) -> Result<Vec<FailedEvent>> {
        sqlx::query_as(
            "SELECT instance_id, aggregate_type, aggregate_id, failed_sequence, event_creation_date, failure_count,
                    error, last_failed
             FROM tenancy.failed_events2 WHERE projection_name = $1
             ORDER BY instance_id, event_creation_date, aggregate_id, failed_sequence",
        )
        .bind(relational::NAME)
        .fetch_all(self.pool())
        .await
        .map_err(on_constraint)
    }

    /// Retries one failed event once its cause is fixed (see [`RetryOutcome`]).
    pub async fn retry(
        &self,
        instance_id: &str,
        aggregate_type: &str,
        aggregate_id: &str,
        sequence: i64,
    ) -> Result<RetryOutcome> {
        let event = self
            .events_reader()
            .read_aggregate(instance_id, aggregate_type, aggregate_id)
            .await?
            .into_iter()
            .find(|e| e.sequence == sequence)
            .ok_or_else(|| {
                Error::not_found(
                    "event",
                    format!("{instance_id}/{aggregate_type}/{aggregate_id}/{sequence}"),
                )
            })?;
        let store = PgStore::new(self.pool().clone());
        let mut session = store.transaction().await?;
        // Wait for (not skip) a worker on this instance: the cursor must not move under us.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1), hashtext($2))")
            .bind(format!("tenancy.projection:{}", relational::NAME))
            .bind(instance_id)
            .execute(session.conn()?)
            .await
            .map_err(on_constraint)?;
        let passed: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM tenancy.current_states WHERE projection_name = $1 AND instance_id = $2
                 AND (\"position\", in_tx_order, instance_id, aggregate_type, aggregate_id, \"sequence\")
                     >= ($3, $4, $2, $5, $6, $7))",
        )
        .bind(relational::NAME)
        .bind(instance_id)
        .bind(event.position)
        .bind(event.in_tx_order)
        .bind(aggregate_type)
        .bind(aggregate_id)
        .bind(sequence)
        .fetch_one(session.conn()?)
        .await
        .map_err(on_constraint)?;
        if passed && let Err(error) = apply_event(&mut session, &event).await {
            session.rollback().await?;
            let mut conn = self.pool().acquire().await.map_err(on_constraint)?;
            record_failure(&mut conn, &event, &error.to_string(), 1).await?;
            return Err(error);
        }
        delete_failure(session.conn()?, &event).await?;
        session.commit().await?;
        Ok(if passed {
            RetryOutcome::Applied
        } else {
            RetryOutcome::Requeued
        })
    }

    /// Forgets a failed event (it stays skipped).
    pub async fn dismiss(
        &self,
        instance_id: &str,
        aggregate_type: &str,
        aggregate_id: &str,
        sequence: i64,
    ) -> Result<bool> {
        let done = sqlx::query(
            "DELETE FROM tenancy.failed_events2 WHERE projection_name = $1 AND instance_id = $2
             AND aggregate_type = $3 AND aggregate_id = $4 AND failed_sequence = $5",
        )
        .bind(relational::NAME)
        .bind(instance_id)
        .bind(aggregate_type)
        .bind(aggregate_id)
        .bind(sequence)
        .execute(self.pool())
        .await
        .map_err(on_constraint)?;
        Ok(done.rows_affected() > 0)
    }

    /// Resets the projection's tables and cursors in one transaction, then replays the
    /// whole stream — v3-written events included, since their rows were reset too — up to
    /// the newest position at start. Interrupted, it must be run again.
    pub async fn rebuild(&self) -> Result<Outcome> {
        let mut tx = self.pool().begin().await.map_err(on_constraint)?;
        // No worker may hold a cursor while the tables are reset.
        sqlx::query("LOCK TABLE tenancy.current_states IN EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await
            .map_err(on_constraint)?;
        // Every table of the registry (names from it, not from input).
        let tables: Vec<&str> = Table::ALL.iter().rev().map(|t| t.name()).collect();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "TRUNCATE {} RESTART IDENTITY",
            tables.join(", ")
        )))
        .execute(&mut *tx)
        .await
        .map_err(on_constraint)?;
        for table in ["tenancy.current_states", "tenancy.failed_events2"] {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE projection_name = $1"
            )))
            .bind(relational::NAME)
            .execute(&mut *tx)
            .await
            .map_err(on_constraint)?;
        }
        let target: Option<Decimal> =
            sqlx::query_scalar("SELECT max(\"position\") FROM eventstore.events2")
                .fetch_one(&mut *tx)
                .await
                .map_err(on_constraint)?;
        tx.commit().await.map_err(on_constraint)?;
        let Some(target) = target else {
            return Ok(Outcome {
                caught_up: true,
                ..Outcome::default()
            });
        };
        self.run_rounds(
            Some(target),
            Some(ReplayV3(target)),
            std::sync::Arc::new(|_, _, _| {}),
        )
        .await
    }

    fn events_reader(&self) -> tenancy_eventstore::PgEventStore {
        tenancy_eventstore::PgEventStore::new(self.pool().clone())
    }
}

pub(crate) async fn delete_failure(
    conn: &mut sqlx::PgConnection,
    event: &StoredEvent,
) -> Result<()> {
    sqlx::query(
        "DELETE FROM tenancy.failed_events2 WHERE projection_name = $1 AND instance_id = $2
         AND aggregate_type = $3 AND aggregate_id = $4 AND failed_sequence = $5",
    )
    .bind(relational::NAME)
    .bind(&event.instance_id)
    .bind(&event.aggregate_type)
    .bind(&event.aggregate_id)
    .bind(event.sequence)
    .execute(conn)
    .await
    .map_err(on_constraint)
    .map(drop)
}
