//! Catch-up of an instance the tables know nothing of yet (the migration of an existing
//! store): its events are folded in memory, with the rules of the schema, and the final
//! rows are written set-based, one statement per table, together with the cursor. Each
//! event is still applied in order and checked exactly (the same model `verify` folds); only
//! the writes of intermediate states are saved. All of it to the target, or nothing: an
//! event the model rejects is recorded and skipped in the fold; a custom domain another
//! instance still holds, or a claim it has yet to reach (crate::claims), leaves the
//! instance untouched until a later attempt. Only an unexpected conflict falls back to the
//! batch path, which records, retries and defers event by event.

use std::time::Instant;

use rust_decimal::Decimal;
use sqlx::PgConnection;
use tenancy_core::event::{EventQuery, StoredEvent};
use tenancy_core::model::InstanceDomainKind;
use tenancy_core::ports::{EventReader, UnitOfWork};
use tenancy_core::state::InMemoryState;
use tenancy_core::{Error, Result};
use tenancy_eventstore::projection_state::ProjectionState;
use tenancy_postgres::{PgStore, on_constraint};

use crate::claims;
use crate::engine::Engine;
use crate::outcome::{Outcome, ReplayV3};
use crate::relational;

/// What a bulk catch-up attempt came to.
enum Attempt {
    /// Not for bulk (not fresh, or its insert failed for a reason the batches record
    /// event by event): the instance continues in batches.
    NotForBulk,
    /// Nothing written and the instance stays fresh: its lock was busy, it waits for an
    /// earlier add of another instance, or it has nothing to fold yet.
    StaysFresh(Outcome),
    /// Folded and written: the instance continues in batches.
    Done(Outcome),
}

/// What the fold of an instance's events ended with.
pub(crate) struct Folded {
    pub(crate) state: InMemoryState,
    pub(crate) applied: u64,
    pub(crate) skipped: u64,
    pub(crate) last: Option<StoredEvent>,
    /// Events the model rejected (or could not decode), with why.
    pub(crate) rejected: Vec<(StoredEvent, String)>,
}

impl Engine {
    /// Bulk catch-up of `instance_id` if it qualifies: no cursor, no recorded failures, no
    /// rows in any of the five tables. `None` = use batches.
    ///
    /// `replay` (a rebuild): v3-written events up to its position are folded too, since
    /// the reset removed their rows; the same classification and waits as a prefill, so a
    /// rebuild leaves what a prefill leaves.
    pub(crate) async fn bulk_catch_up(
        &self,
        instance_id: &str,
        target: Option<Decimal>,
        replay: Option<ReplayV3>,
    ) -> Result<Option<Outcome>> {
        let limit = self.config().bulk_limit;
        if limit == 0 || self.batched().contains(instance_id) {
            return Ok(None);
        }
        match self.try_bulk(instance_id, target, limit, replay).await? {
            // Others may count on an instance that is still fresh (crate::claims).
            Attempt::StaysFresh(outcome) => Ok(Some(outcome)),
            Attempt::Done(outcome) => {
                self.batched().insert(instance_id);
                Ok(Some(outcome))
            }
            Attempt::NotForBulk => {
                self.batched().insert(instance_id);
                Ok(None)
            }
        }
    }

    async fn try_bulk(
        &self,
        instance_id: &str,
        target: Option<Decimal>,
        limit: u32,
        replay: Option<ReplayV3>,
    ) -> Result<Attempt> {
        let started = Instant::now();
        let store = PgStore::new(self.pool().clone());
        let mut session = store.transaction().await?;
        if !self.state().try_lock(session.conn()?, instance_id).await? {
            session.rollback().await?;
            return Ok(Attempt::StaysFresh(Outcome {
                busy: true,
                ..Outcome::default()
            }));
        }
        if !claims::is_fresh(
            session.conn()?,
            self.state(),
            self.fresh(),
            instance_id,
            limit,
        )
        .await?
        {
            session.rollback().await?;
            return Ok(Attempt::NotForBulk);
        }
        let folded = self.fold(instance_id, target, replay).await?;
        let Some(last) = folded.last.as_ref() else {
            // No event of the projection up to the target: caught up, and still fresh.
            session.rollback().await?;
            return Ok(Attempt::StaysFresh(Outcome {
                caught_up: true,
                ..Outcome::default()
            }));
        };
        // A domain a replaying instance has yet to reach an earlier add of: nothing is
        // written now, the instance stays fresh and is tried again (crate::claims). Checked
        // up to the last event folded, after the fold: adds pushed since an earlier check
        // would be folded unchecked.
        let waits = claims::first_waiting_add(
            session.conn()?,
            self.state(),
            self.fresh(),
            instance_id,
            None,
            Some(last.position),
            replay,
            limit,
        )
        .await?
        .is_some();
        if waits {
            session.rollback().await?;
            return Ok(Attempt::StaysFresh(deferred()));
        }
        let rows = match insert_rows(session.conn()?, &folded.state).await {
            Ok(rows) => rows,
            Err(Error::Internal { message, source }) => {
                let _ = session.rollback().await;
                return Err(Error::Internal { message, source });
            }
            Err(error) => {
                session.rollback().await?;
                // A deadlock, or a custom domain still held by an instance that has not
                // replayed its release yet (or released since the insert failed): wait and
                // try again. Anything else is not for bulk: the batch path records it event
                // by event. (A fresh instance sent to batches would replay domain adds that
                // other instances, counting on its bulk catch-up, did not wait for.)
                let mut conn = self.pool().acquire().await.map_err(on_constraint)?;
                if matches!(error, Error::Conflict(_))
                    || holder_is_behind(self.state(), &mut conn, &error, &folded.state, last)
                        .await?
                    || self.folded_too_little(instance_id, target, last).await?
                {
                    return Ok(Attempt::StaysFresh(deferred()));
                }
                tracing::debug!(instance_id, %error, "bulk catch-up falls back to batches");
                return Ok(Attempt::NotForBulk);
            }
        };
        // Events the model rejects in the fold fail the same way on every attempt: they
        // are recorded as failed and skipped at once, as the batch path ends up doing.
        let attempts = self.config().max_failure_count.max(1);
        for (event, error) in &folded.rejected {
            self.state()
                .record_failure(session.conn()?, event, error, attempts)
                .await?;
            tracing::warn!(instance_id, aggregate_id = %event.aggregate_id, sequence = event.sequence, event_type = %event.event_type, %error, "event failed");
        }
        self.state().set_cursor(session.conn()?, last).await?;
        session.commit().await?;
        if self.wrote(rows).await? {
            self.analyze().await?;
        }
        let outcome = folded.outcome();
        self.observe_batch(started, &outcome, Some(last.created_at));
        Ok(Attempt::Done(outcome))
    }

    /// True when the instance has events after `last` (up to `target`): the fold read
    /// before they were pushed, and its final rows may hold a custom domain that the
    /// instance has since released and another instance taken — another instance that
    /// counted on this one's bulk catch-up (`crate::claims`) and did not wait for its
    /// earlier add. A fold that reads them too is tried again, rather than a replay in
    /// batches that would fail on that add.
    async fn folded_too_little(
        &self,
        instance_id: &str,
        target: Option<Decimal>,
        last: &StoredEvent,
    ) -> Result<bool> {
        let next = self
            .events()
            .read(&EventQuery {
                instance_id: instance_id.to_owned(),
                aggregate_types: relational::aggregate_types(),
                event_types: relational::event_types(),
                after: Some(last.sort_key()),
                max_position: target,
                limit: Some(1),
                ..EventQuery::default()
            })
            .await?;
        Ok(!next.is_empty())
    }

    /// Counts `rows` written (`crate::memo::Statistics`); true when the caller should
    /// refresh the statistics now. The first call reads how many rows they counted.
    pub(crate) async fn wrote(&self, rows: u64) -> Result<bool> {
        if self.statistics().needs_seed() {
            let present = tenancy_postgres::apply::analysed_rows(self.pool()).await?;
            self.statistics().seed(present);
        }
        Ok(self.statistics().wrote(rows))
    }

    /// Refreshes the statistics of the tables if the bulk catch-up wrote rows since the
    /// last refresh (at the end of a prefill, so the running system starts with them).
    pub(crate) async fn analyze_if_stale(&self) -> Result<()> {
        if self.statistics().stale() {
            self.analyze().await?;
        }
        Ok(())
    }

    pub(crate) async fn analyze(&self) -> Result<()> {
        let started = Instant::now();
        tenancy_postgres::apply::analyze_tables(self.pool()).await?;
        tracing::debug!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "tables analysed"
        );
        Ok(())
    }

    /// Folds every event of the instance up to `target`, in order, into a fresh model.
    async fn fold(
        &self,
        instance_id: &str,
        target: Option<Decimal>,
        replay: Option<ReplayV3>,
    ) -> Result<Folded> {
        let mut folded = Folded::new();
        let query = EventQuery {
            instance_id: instance_id.to_owned(),
            aggregate_types: relational::aggregate_types(),
            event_types: relational::event_types(),
            max_position: target,
            ..EventQuery::default()
        };
        self.events()
            .read_in_batches(&query, self.config().batch_size.max(1), |events| {
                for event in events {
                    folded.push(event, replay);
                }
                Ok(())
            })
            .await?;
        Ok(folded)
    }
}

impl Folded {
    pub(crate) fn new() -> Self {
        Self {
            state: InMemoryState::new(),
            applied: 0,
            skipped: 0,
            last: None,
            rejected: Vec::new(),
        }
    }

    /// What writing this fold did: the events the model rejected are recorded as failed
    /// and skipped.
    pub(crate) fn outcome(&self) -> Outcome {
        let rejected = self.rejected.len() as u64;
        Outcome {
            applied: self.applied,
            skipped: self.skipped + rejected,
            failed: rejected,
            caught_up: true,
            ..Outcome::default()
        }
    }

    /// Folds the instance's next event (in sort-key order).
    pub(crate) fn push(&mut self, event: StoredEvent, replay: Option<ReplayV3>) {
        if event.written_by_v3 && replay.is_none_or(|ReplayV3(until)| event.position > until) {
            // Its rows were written by the v3 command itself (and, in a rebuild, after the
            // reset).
            self.skipped += 1;
        } else {
            let applied = relational::changes(&event)
                .and_then(|changes| self.state.apply_all(&changes, event.created_at));
            match applied {
                Ok(_) => self.applied += 1,
                Err(error) => self.rejected.push((event.clone(), error.to_string())),
            }
        }
        self.last = Some(event);
    }
}

pub(crate) fn deferred() -> Outcome {
    Outcome {
        deferred: 1,
        ..Outcome::default()
    }
}

/// True when the bulk insert failed on a custom domain that an instance holds which has
/// not yet projected all its events before `last` (it may release the domain), or that no
/// other instance holds any more (released between the insert and this check).
async fn holder_is_behind(
    projection: &ProjectionState,
    conn: &mut PgConnection,
    error: &Error,
    state: &InMemoryState,
    last: &StoredEvent,
) -> Result<bool> {
    if !matches!(
        error,
        Error::AlreadyExists {
            rule: tenancy_core::Rule::CustomInstanceDomain,
            ..
        }
    ) {
        return Ok(false);
    }
    let domains: Vec<String> = state
        .all_instance_domains()
        .filter(|d| matches!(d.kind, InstanceDomainKind::Custom { .. }))
        .map(|d| d.domain.to_ascii_lowercase())
        .collect();
    projection
        .holder_is_behind(conn, &last.instance_id, &domains, last.position)
        .await
}

/// Inserts every row of `state` set-based (`tenancy_postgres::batch::write_rows`: one
/// multi-row statement per table, parents first; the unified domains numbered by the
/// identity column in the model's order). Returns the number of rows written.
pub async fn insert_rows(conn: &mut PgConnection, state: &InMemoryState) -> Result<u64> {
    tenancy_postgres::batch::write_rows(conn, &state.diff(&InMemoryState::new())).await
}
