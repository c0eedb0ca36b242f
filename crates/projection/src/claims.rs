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
//! Waits of replaying instances point at strictly earlier events of replaying instances,
//! so they cannot form a cycle (the earliest waiting add never waits), and fresh instances
//! wait only for replaying ones. The other half — a domain still held by an instance that
//! has not yet reached its release — is checked when the insert conflicts
//! (`engine::waits_for_other_instance`).

use std::collections::HashMap;

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
            instance_id,
            after,
            until,
            replay.map(|ReplayV3(until)| until),
        )
        .await?;
    let mut checked: HashMap<String, bool> = HashMap::new();
    for WaitingAdd {
        add,
        blocker,
        blocker_has_cursor,
    } in adds
    {
        // Without a cursor: fresh if found so before (another instance may already have
        // relied on it), else classified now.
        let replays = blocker_has_cursor
            || match checked.get(&blocker) {
                Some(replays) => *replays,
                None => {
                    let replays = !(fresh.contains(&blocker)
                        || is_fresh(conn, state, fresh, &blocker, bulk_limit).await?);
                    checked.insert(blocker, replays);
                    replays
                }
            };
        if replays {
            return Ok(Some(add));
        }
    }
    Ok(None)
}

/// True when `event` is the one `key` names.
pub(crate) fn is_event(event: &StoredEvent, key: &SortKey) -> bool {
    event.sequence == key.sequence
        && event.aggregate_id == key.aggregate_id
        && event.aggregate_type == key.aggregate_type
}
