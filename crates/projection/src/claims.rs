//! The order of custom instance domains across instances.
//!
//! A custom domain is unique across instances, but each instance is projected on its own,
//! at its own pace. When a domain moves (released by one instance, taken by another, maybe
//! back again), an instance that runs ahead could take the domain before another instance
//! has replayed its own, earlier, add of it; that earlier add would then fail against a
//! row that, in the store's order, did not exist yet.
//!
//! Two kinds of instances:
//! - **fresh** ones (no cursor, no row, no recorded failure, at most `bulk_limit` events)
//!   are caught up in bulk: folded in memory to the target and written at once, or not at
//!   all. They never replay their history in the tables, so nobody waits for them: the
//!   final states of all instances at one position never share a domain, and a fresh
//!   instance whose final rows meet a domain still held waits for its holder instead.
//! - every other instance **replays** in batches. Before a replaying or a fresh instance
//!   takes a domain at some position, every replaying instance must have projected its
//!   adds of that domain before that position; until then the add waits (the event is
//!   deferred, never recorded as a failure).
//!
//! Each check covers exactly the events the catch-up then applies: it runs after their
//! read, up to the last of them. Events pushed while a catch-up reads are applied only if
//! they were checked too. A bulk catch-up whose fold another instance overtook (its
//! transaction read before its own release of a domain was pushed, and the domain was
//! taken meanwhile) folds again instead of replaying (`bulk::folded_too_little`).
//!
//! Waits of replaying instances point at strictly earlier events of replaying instances,
//! so they cannot form a cycle (the earliest waiting add never waits), and fresh instances
//! wait only for replaying ones. The other half — a domain still held by an instance that
//! has not yet reached its release — is checked when the insert conflicts
//! (`engine::waits_for_other_instance`).

use std::collections::{HashMap, HashSet};

use rust_decimal::Decimal;
use sqlx::PgConnection;
use tenancy_core::Result;
use tenancy_core::event::{INSTANCE_DOMAIN_ADDED, SortKey, StoredEvent};
use tenancy_eventstore::projection_state::{ProjectionState, WaitingAdd};

use crate::outcome::ReplayV3;

/// The instances this engine found fresh. Once another instance relied on one being fresh
/// (took a domain ahead of it), it must be caught up in bulk whatever it grew to since.
pub(crate) type Fresh = crate::memo::InstanceSet;

/// True when the instance is fresh (see the module): no cursor, failure or row, and at
/// most `bulk_limit` events of its aggregate types (never fewer than the bulk fold reads),
/// or found fresh before. Remembered in `fresh`.
pub(crate) async fn is_fresh(
    conn: &mut PgConnection,
    state: &ProjectionState,
    fresh: &Fresh,
    instance_id: &str,
    bulk_limit: u32,
) -> Result<bool> {
    if bulk_limit == 0 {
        return Ok(false);
    }
    let known = fresh.contains(instance_id);
    // No cursor, failure or row (which replay whatever the size), and few enough events.
    let is_fresh = state
        .is_untouched(conn, instance_id, bulk_limit, known)
        .await?;
    if is_fresh {
        fresh.insert(instance_id);
    }
    Ok(is_fresh)
}

/// True when `events` hold an add of an instance domain, the only events that can wait.
pub(crate) fn has_domain_adds(events: &[StoredEvent]) -> bool {
    events.iter().any(|e| e.event_type == INSTANCE_DOMAIN_ADDED)
}

/// The first of the instance's domain adds after `after` (exclusive) and up to `until`
/// (inclusive) that must wait for a replaying instance. One statement lists, in order,
/// the instance's adds with the other instances that have an earlier add of the same
/// domain not yet projected (index `events2_tenancy_instance_domain_added`); an add waits
/// if one of them replays: it has a cursor, or it is not fresh (`is_fresh`, remembered).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn first_waiting_add(
    conn: &mut PgConnection,
    state: &ProjectionState,
    fresh: &Fresh,
    instance_id: &str,
    after: Option<&SortKey>,
    until: Option<Decimal>,
    replay: Option<ReplayV3>,
    bulk_limit: u32,
) -> Result<Option<SortKey>> {
    let adds = state
        .waiting_adds(
            conn,
            &[instance_id.to_owned()],
            after,
            until,
            replay.map(|ReplayV3(until)| until),
        )
        .await?;
    let mut blockers = Blockers::new(state, fresh, bulk_limit);
    for WaitingAdd {
        add,
        blocker,
        blocker_has_cursor,
    } in adds
    {
        if blockers.replays(conn, blocker, blocker_has_cursor).await? {
            return Ok(Some(add));
        }
    }
    Ok(None)
}

/// Among `instance_ids` (fresh, without cursors), those with a domain add up to `until`
/// that must wait for a replaying instance: one statement for the set, then the same
/// classification of the blockers as [`first_waiting_add`].
pub(crate) async fn waiting_instances(
    conn: &mut PgConnection,
    state: &ProjectionState,
    fresh: &Fresh,
    instance_ids: &[String],
    until: Option<Decimal>,
    replay: Option<ReplayV3>,
    bulk_limit: u32,
) -> Result<HashSet<String>> {
    let adds = state
        .waiting_adds(
            conn,
            instance_ids,
            None,
            until,
            replay.map(|ReplayV3(until)| until),
        )
        .await?;
    let mut blockers = Blockers::new(state, fresh, bulk_limit);
    let mut waiting = HashSet::new();
    for WaitingAdd {
        add,
        blocker,
        blocker_has_cursor,
    } in adds
    {
        if !waiting.contains(&add.instance_id)
            && blockers.replays(conn, blocker, blocker_has_cursor).await?
        {
            waiting.insert(add.instance_id);
        }
    }
    Ok(waiting)
}

/// Whether the instances that have an earlier add of a domain replay (so the add waits),
/// each classified once per call.
pub(crate) struct Blockers<'a> {
    state: &'a ProjectionState,
    fresh: &'a Fresh,
    bulk_limit: u32,
    checked: HashMap<String, bool>,
}

impl<'a> Blockers<'a> {
    pub(crate) fn new(state: &'a ProjectionState, fresh: &'a Fresh, bulk_limit: u32) -> Self {
        Self {
            state,
            fresh,
            bulk_limit,
            checked: HashMap::new(),
        }
    }

    /// With a cursor it replays; without one it is fresh if found so before (another
    /// instance may already have relied on it), else classified now.
    pub(crate) async fn replays(
        &mut self,
        conn: &mut PgConnection,
        blocker: String,
        has_cursor: bool,
    ) -> Result<bool> {
        if has_cursor {
            return Ok(true);
        }
        if let Some(replays) = self.checked.get(&blocker) {
            return Ok(*replays);
        }
        let replays = !(self.fresh.contains(&blocker)
            || is_fresh(conn, self.state, self.fresh, &blocker, self.bulk_limit).await?);
        self.checked.insert(blocker, replays);
        Ok(replays)
    }
}

/// True when `event` is the one `key` names.
pub(crate) fn is_event(event: &StoredEvent, key: &SortKey) -> bool {
    event.sequence == key.sequence
        && event.aggregate_id == key.aggregate_id
        && event.aggregate_type == key.aggregate_type
}
