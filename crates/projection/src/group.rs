//! Catch-up of many small fresh instances together. A store of many small tenants (trials,
//! test instances: a few dozen events each) spent most of its catch-up on what every
//! instance costs whatever its size — its transaction, lock, freshness and claims checks,
//! read, five inserts and cursor. Here a group of fresh instances shares all of that: one
//! transaction, one statement per check, one read, one multi-row statement per table and
//! one for the cursors. Each instance is still folded on its own, in order, with the rules
//! of the schema (the same fold as `bulk.rs`), so the rows are those a bulk catch-up of
//! each would write. Whatever does not fit — taken by another process, no longer fresh or
//! small, waiting for a replaying instance, a conflict at the insert — goes back to the
//! per-instance path, which handles each case.

use std::collections::{BTreeMap, HashSet};
use std::time::Instant;

use rust_decimal::Decimal;
use tenancy_core::Result;
use tenancy_core::event::StoredEvent;
use tenancy_core::ports::UnitOfWork;
use tenancy_core::state::{InMemoryState, RowDiff};
use tenancy_postgres::{PgStore, on_constraint};

use crate::bulk::{Folded, deferred};
use crate::claims;
use crate::engine::Engine;
use crate::outcome::{Outcome, ReplayV3};
use crate::relational;

/// Instances with at most this many events are caught up in groups (larger fresh ones in
/// bulk, each on its own: their per-instance cost is small next to their events).
pub const SMALL_INSTANCE_EVENTS: u32 = 256;
/// Bounds of one group: its events (what the fold holds at once) and its instances.
const GROUP_EVENTS: i64 = 8_192;
const GROUP_INSTANCES: usize = 1_024;
/// Instances classified per statement.
const CLASSIFY_CHUNK: usize = 4_096;

/// What a group's catch-up did: the outcome of each instance it finished (written,
/// waiting or taken by another process), and the instances left to the per-instance path.
#[derive(Debug, Default)]
pub(crate) struct GroupOutcome {
    pub(crate) done: Vec<(String, Outcome)>,
    pub(crate) rest: Vec<String>,
}

impl Engine {
    /// Splits `instances` into groups of small fresh ones and the rest (in their order).
    /// The classification reads without locks; each group checks again under its locks.
    pub(crate) async fn small_fresh_groups(
        &self,
        instances: Vec<String>,
    ) -> Result<(Vec<Vec<String>>, Vec<String>)> {
        let small = self.small_limit();
        if small == 0 {
            return Ok((Vec::new(), instances));
        }
        let (candidates, mut rest): (Vec<String>, Vec<String>) = instances
            .into_iter()
            .partition(|instance| !self.batched().contains(instance));
        let mut groups = Vec::new();
        let mut group = Vec::new();
        let mut events = 0;
        let mut conn = self.pool().acquire().await.map_err(on_constraint)?;
        for chunk in candidates.chunks(CLASSIFY_CHUNK) {
            let small_ones: BTreeMap<String, i64> = self
                .state()
                .untouched_among(&mut conn, chunk, small)
                .await?
                .into_iter()
                .collect();
            for instance in chunk {
                let Some(count) = small_ones.get(instance) else {
                    rest.push(instance.clone());
                    continue;
                };
                if !group.is_empty()
                    && (events + count > GROUP_EVENTS || group.len() >= GROUP_INSTANCES)
                {
                    groups.push(std::mem::take(&mut group));
                    events = 0;
                }
                events += count;
                group.push(instance.clone());
            }
        }
        if !group.is_empty() {
            groups.push(group);
        }
        Ok((groups, rest))
    }

    fn small_limit(&self) -> u32 {
        SMALL_INSTANCE_EVENTS.min(self.config().bulk_limit)
    }

    /// Catches a group of small fresh instances up to `target` in one transaction.
    pub(crate) async fn catch_up_group(
        &self,
        group: Vec<String>,
        target: Option<Decimal>,
        replay: Option<ReplayV3>,
    ) -> Result<GroupOutcome> {
        let started = Instant::now();
        let mut outcome = GroupOutcome::default();
        let store = PgStore::new(self.pool().clone());
        let mut session = store.transaction().await?;
        let locked: HashSet<String> = self
            .state()
            .try_lock_all(session.conn()?, &group)
            .await?
            .into_iter()
            .collect();
        // Checked again under the locks: another process may have moved on since.
        let fresh: HashSet<String> = self
            .state()
            .untouched_among(session.conn()?, &group, self.small_limit())
            .await?
            .into_iter()
            .map(|(instance, _)| instance)
            .filter(|instance| locked.contains(instance))
            .collect();
        for instance in &fresh {
            self.fresh().insert(instance);
        }
        let fresh_ids: Vec<String> = group
            .iter()
            .filter(|i| fresh.contains(*i))
            .cloned()
            .collect();
        // Read first, then checked up to the newest event read: adds pushed after a check
        // would be folded unchecked (crate::claims).
        let events = self
            .events()
            .read_instances(
                &fresh_ids,
                &relational::aggregate_types(),
                &relational::event_types(),
                target,
            )
            .await?;
        let waiting = match events.iter().map(|e| e.position).max() {
            Some(until) => {
                claims::waiting_instances(
                    session.conn()?,
                    self.state(),
                    self.fresh(),
                    &fresh_ids,
                    Some(until),
                    replay,
                    self.config().bulk_limit,
                )
                .await?
            }
            None => HashSet::new(),
        };
        let ready: Vec<String> = fresh_ids
            .iter()
            .filter(|i| !waiting.contains(*i))
            .cloned()
            .collect();
        for instance in &group {
            if !locked.contains(instance) {
                outcome.done.push((instance.clone(), busy()));
            } else if waiting.contains(instance) {
                outcome.done.push((instance.clone(), deferred()));
            } else if !fresh.contains(instance) {
                outcome.rest.push(instance.clone());
            }
        }
        let events: Vec<StoredEvent> = events
            .into_iter()
            .filter(|e| !waiting.contains(&e.instance_id))
            .collect();
        let folds = fold_by_instance(events, replay);
        let mut diff = RowDiff::default();
        let mut written = Vec::new();
        for instance in &ready {
            match folds.get(instance) {
                Some(folded) if folded.last.is_some() => {
                    diff.inserted
                        .append(folded.state.diff(&InMemoryState::new()).inserted);
                    written.push(folded);
                }
                // Events of its aggregates, none of them projected: not for bulk.
                _ => outcome.rest.push(instance.clone()),
            }
        }
        if written.is_empty() {
            session.rollback().await?;
            return Ok(outcome);
        }
        if let Err(error) = tenancy_postgres::batch::write_rows(session.conn()?, &diff).await {
            session.rollback().await?;
            if let tenancy_core::Error::Internal { message, source } = error {
                return Err(tenancy_core::Error::Internal { message, source });
            }
            // A conflict (a custom domain still held elsewhere, a deadlock): each instance
            // of the group is tried on its own, which waits or records as it should.
            tracing::debug!(%error, instances = ready.len(), "group catch-up falls back to single instances");
            outcome.rest.extend(
                written
                    .iter()
                    .filter_map(|f| f.last.as_ref())
                    .map(|e| e.instance_id.clone()),
            );
            return Ok(outcome);
        }
        let attempts = self.config().max_failure_count.max(1);
        for folded in &written {
            for (event, error) in &folded.rejected {
                self.state()
                    .record_failure(session.conn()?, event, error, attempts)
                    .await?;
                tracing::warn!(instance_id = %event.instance_id, aggregate_id = %event.aggregate_id, sequence = event.sequence, event_type = %event.event_type, %error, "event failed");
            }
        }
        let lasts: Vec<&StoredEvent> = written.iter().filter_map(|f| f.last.as_ref()).collect();
        self.state().set_cursors(session.conn()?, &lasts).await?;
        session.commit().await?;
        if self.wrote(diff.len() as u64).await? {
            self.analyze().await?;
        }
        let mut total = Outcome::default();
        for folded in &written {
            let done = folded.outcome();
            total.add(done);
            if let Some(last) = &folded.last {
                self.batched().insert(&last.instance_id);
                outcome.done.push((last.instance_id.clone(), done));
            }
        }
        let newest = lasts.iter().map(|e| e.created_at).max();
        self.observe_batch(started, &total, newest);
        Ok(outcome)
    }
}

/// Each instance's events folded on their own, in order (`events` come by instance).
fn fold_by_instance(
    events: Vec<StoredEvent>,
    replay: Option<ReplayV3>,
) -> BTreeMap<String, Folded> {
    let mut folds: BTreeMap<String, Folded> = BTreeMap::new();
    for event in events {
        folds
            .entry(event.instance_id.clone())
            .or_insert_with(Folded::new)
            .push(event, replay);
    }
    folds
}

fn busy() -> Outcome {
    Outcome {
        busy: true,
        ..Outcome::default()
    }
}
