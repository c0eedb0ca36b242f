//! Operations: status, failed events, retry, dismiss, rebuild.

use tenancy_core::ports::{EventReader, UnitOfWork};
use tenancy_core::{Error, Result};
use tenancy_postgres::{PgStore, on_constraint};
use time::OffsetDateTime;

use crate::engine::{Engine, Outcome, ReplayV3, apply_event};
use crate::relational;

/// Where a projection stands.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    /// The projection's name.
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
pub use tenancy_eventstore::projection_state::FailedEvent;

/// What `retry` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryOutcome {
    /// The event was past the cursor (skipped): applied now.
    Applied,
    /// The cursor has not passed it yet: its count is reset and the next run retries it.
    Requeued,
}

impl Engine {
    /// Instances, events behind, lag and failures (`tenancy projections status`).
    pub async fn status(&self) -> Result<Status> {
        let since = self.sweep_window().await?;
        let progress = self.state().progress(self.pool(), since).await?;
        let lag_seconds = progress.oldest_behind.map_or(0.0, |t| {
            (OffsetDateTime::now_utc() - t).as_seconds_f64().max(0.0)
        });
        Ok(Status {
            projection: relational::NAME,
            instances: progress.instances,
            events_behind: progress.events_behind,
            lag_seconds,
            failed_events: progress.failed_events,
        })
    }

    /// Every failed event of the projection (`tenancy projections failed`).
    pub async fn failed(&self) -> Result<Vec<FailedEvent>> {
        self.state().failed(self.pool()).await
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
        self.state().lock(session.conn()?, instance_id).await?;
        let passed = self.state().has_passed(session.conn()?, &event).await?;
        if passed && let Err(error) = apply_event(&mut session, &event).await {
            session.rollback().await?;
            let mut conn = self.pool().acquire().await.map_err(on_constraint)?;
            self.state()
                .record_failure(&mut conn, &event, &error.to_string(), 1)
                .await?;
            return Err(error);
        }
        self.state()
            .delete_failure(
                session.conn()?,
                instance_id,
                (aggregate_type, aggregate_id, sequence),
            )
            .await?;
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
        let mut conn = self.pool().acquire().await.map_err(on_constraint)?;
        self.state()
            .delete_failure(
                &mut conn,
                instance_id,
                (aggregate_type, aggregate_id, sequence),
            )
            .await
    }

    /// Resets the projection's tables and cursors in one transaction, then replays the
    /// whole stream — v3-written events included, since their rows were reset too — up to
    /// the newest position at start. Interrupted, it must be run again.
    pub async fn rebuild(&self) -> Result<Outcome> {
        // No worker may hold a cursor while the tables are reset (the registry lists them).
        let reset = self.state().reset(self.pool()).await?;
        // What this engine learned of instances (fresh, in batches) was about the tables
        // just reset: every instance is classified again, as a prefill does.
        self.fresh().clear();
        self.batched().clear();
        let Some(target) = reset else {
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
