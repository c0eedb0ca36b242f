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

use rust_decimal::Decimal;
use sqlx::PgConnection;
use tenancy_core::Result;
use tenancy_core::event::{SortKey, StoredEvent};
use tenancy_postgres::on_constraint;

use crate::engine::ReplayV3;
use crate::relational;

const DOMAIN_ADDED: &str = "instance.domain.added";

/// SQL: true when the instance `$id` replays in batches (is not fresh). Parameters: `$1`
/// projection name, `$2` `bulk_limit`, `$3` aggregate types. One definition for the bulk
/// path's own check and for the waits.
macro_rules! replays_in_batches {
    ($id:literal) => {
        concat!(
            "($2 = 0
              OR EXISTS (SELECT 1 FROM projections.current_states WHERE projection_name = $1 AND instance_id = ", $id, ")
              OR EXISTS (SELECT 1 FROM projections.failed_events2 WHERE projection_name = $1 AND instance_id = ", $id, ")
              OR EXISTS (SELECT 1 FROM zitadel.instances WHERE id = ", $id, ")
              OR EXISTS (SELECT 1 FROM zitadel.organizations WHERE instance_id = ", $id, ")
              OR EXISTS (SELECT 1 FROM zitadel.instance_domains WHERE instance_id = ", $id, ")
              OR EXISTS (SELECT 1 FROM zitadel.org_domains WHERE instance_id = ", $id, ")
              OR EXISTS (SELECT 1 FROM zitadel.domains WHERE instance_id = ", $id, ")
              OR (SELECT count(*) FROM (SELECT 1 FROM eventstore.events2 n
                                        WHERE n.instance_id = ", $id, " AND n.aggregate_type = ANY($3)
                                        LIMIT $2 + 1) t) > $2)"
        )
    };
}

/// True when the instance is fresh: caught up in bulk, never replayed (see the module).
/// Its events are counted up to `bulk_limit` + 1 (all events of its aggregate types: never
/// fewer than the bulk fold reads).
pub(crate) async fn is_fresh(
    conn: &mut PgConnection,
    instance_id: &str,
    bulk_limit: u32,
) -> Result<bool> {
    sqlx::query_scalar(concat!("SELECT NOT ", replays_in_batches!("$4")))
        .bind(relational::NAME)
        .bind(i64::from(bulk_limit))
        .bind(relational::aggregate_types())
        .bind(instance_id)
        .fetch_one(conn)
        .await
        .map_err(on_constraint)
}

/// True when `events` hold an add of an instance domain, the only events that can wait.
pub(crate) fn has_domain_adds(events: &[StoredEvent]) -> bool {
    events.iter().any(|e| e.event_type == DOMAIN_ADDED)
}

/// The first of the instance's domain adds after `after` (exclusive) and up to `until`
/// (inclusive) that must wait for a replaying instance. One statement: the instance's adds
/// in order, each probed in the adds of its domain (index
/// `events2_tenancy_instance_domain_added`) for an earlier one of a replaying instance that
/// that instance's cursor has not passed.
pub(crate) async fn first_waiting_add(
    conn: &mut PgConnection,
    instance_id: &str,
    after: Option<&SortKey>,
    until: Option<Decimal>,
    replay: Option<ReplayV3>,
    bulk_limit: u32,
) -> Result<Option<SortKey>> {
    let row: Option<(Decimal, i32, String, String, i64)> = sqlx::query_as(concat!(
        // LATERAL ... LIMIT 1 keeps the probe per add (the domain as the index condition);
        // as a semi-join, the planner scanned every add of every domain for each add.
        "SELECT a.\"position\", a.in_tx_order, a.aggregate_type, a.aggregate_id, a.\"sequence\"
         FROM eventstore.events2 a
         CROSS JOIN LATERAL (
             SELECT 1 FROM eventstore.events2 b
             LEFT JOIN projections.current_states c
                 ON c.projection_name = $1 AND c.instance_id = b.instance_id
             WHERE b.aggregate_type = 'instance' AND b.event_type = 'instance.domain.added'
               AND lower(b.payload ->> 'domain') = lower(a.payload ->> 'domain')
               AND (b.\"position\", b.in_tx_order) < (a.\"position\", a.in_tx_order)
               AND b.instance_id <> $4
               AND (NOT b.written_by_v3 OR b.\"position\" <= $11)
               AND (c.instance_id IS NULL
                    OR (b.\"position\", b.in_tx_order, b.aggregate_type, b.aggregate_id, b.\"sequence\")
                       > (c.\"position\", c.in_tx_order, c.aggregate_type, c.aggregate_id, c.\"sequence\"))
               AND ",
        replays_in_batches!("b.instance_id"),
        "
             LIMIT 1) waiting
         WHERE a.instance_id = $4 AND a.aggregate_type = 'instance' AND a.event_type = 'instance.domain.added'
           AND (NOT a.written_by_v3 OR a.\"position\" <= $11)
           AND ($5::numeric IS NULL
                OR (a.\"position\", a.in_tx_order, a.aggregate_type, a.aggregate_id, a.\"sequence\")
                   > ($5, $6, $7, $8, $9))
           AND ($10::numeric IS NULL OR a.\"position\" <= $10)
         ORDER BY a.\"position\", a.in_tx_order, a.aggregate_type, a.aggregate_id, a.\"sequence\"
         LIMIT 1"
    ))
    .bind(relational::NAME)
    .bind(i64::from(bulk_limit))
    .bind(relational::aggregate_types())
    .bind(instance_id)
    .bind(after.map(|k| k.position))
    .bind(after.map(|k| k.in_tx_order))
    .bind(after.map(|k| k.aggregate_type.as_str()))
    .bind(after.map(|k| k.aggregate_id.as_str()))
    .bind(after.map(|k| k.sequence))
    .bind(until)
    .bind(replay.map(|ReplayV3(until)| until))
    .fetch_optional(conn)
    .await
    .map_err(on_constraint)?;
    Ok(row.map(
        |(position, in_tx_order, aggregate_type, aggregate_id, sequence)| SortKey {
            position,
            in_tx_order,
            instance_id: instance_id.to_owned(),
            aggregate_type,
            aggregate_id,
            sequence,
        },
    ))
}

/// True when `event` is the one `key` names.
pub(crate) fn is_event(event: &StoredEvent, key: &SortKey) -> bool {
    event.sequence == key.sequence
        && event.aggregate_id == key.aggregate_id
        && event.aggregate_type == key.aggregate_type
}
