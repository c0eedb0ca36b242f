//! The order of custom instance domains across instances.
//!
//! A custom domain is unique across instances, but each instance is projected on its own,
//! at its own pace. When a domain moves (released by one instance, taken by another, maybe
//! back again), an instance that runs ahead could take the domain before another instance
//! has reached its own, earlier, add of it; that earlier add would then fail against a row
//! that, in the store's order, did not exist yet. So an instance takes a domain only once
//! every other instance has projected its earlier adds of that domain; until then it waits
//! (the event is deferred, never recorded as a failure).
//!
//! Waits always point at strictly earlier events of other instances, so they cannot form a
//! cycle: the earliest waiting add overall never waits. The other half — a domain still
//! held by an instance that has not yet reached its release — is checked when the insert
//! conflicts (`engine::waits_for_other_instance`).

use rust_decimal::Decimal;
use sqlx::PgConnection;
use tenancy_core::Result;
use tenancy_core::event::{SortKey, StoredEvent};
use tenancy_postgres::on_constraint;

use crate::engine::ReplayV3;
use crate::relational;

const DOMAIN_ADDED: &str = "instance.domain.added";

/// True when `events` hold an add of an instance domain, the only events that can wait.
pub(crate) fn has_domain_adds(events: &[StoredEvent]) -> bool {
    events.iter().any(|e| e.event_type == DOMAIN_ADDED)
}

/// The first of the instance's domain adds after `after` (exclusive) and up to `until`
/// (inclusive) that must wait for another instance. One statement: the instance's adds in
/// order, each probed in the adds of its domain (index `events2_tenancy_instance_domain_added`)
/// for an earlier one of another instance that that instance's cursor has not passed.
///
/// The bulk catch-up applies the same rule, although instances folded to the same target
/// never share a domain: an instance whose own bulk stops early (at a rejected event, at
/// `bulk_limit`, at a wait) replays the rest in batches, and must not meet a domain that
/// another instance took, in bulk, after its own add of it.
pub(crate) async fn first_waiting_add(
    conn: &mut PgConnection,
    instance_id: &str,
    after: Option<&SortKey>,
    until: Option<Decimal>,
    replay: Option<ReplayV3>,
) -> Result<Option<SortKey>> {
    let row: Option<(Decimal, i32, String, String, i64)> = sqlx::query_as(
        "SELECT a.\"position\", a.in_tx_order, a.aggregate_type, a.aggregate_id, a.\"sequence\"
         FROM eventstore.events2 a
         WHERE a.instance_id = $1 AND a.aggregate_type = 'instance' AND a.event_type = 'instance.domain.added'
           AND (NOT a.written_by_v3 OR a.\"position\" <= $9)
           AND ($2::numeric IS NULL
                OR (a.\"position\", a.in_tx_order, a.aggregate_type, a.aggregate_id, a.\"sequence\")
                   > ($2, $3, $4, $5, $6))
           AND ($7::numeric IS NULL OR a.\"position\" <= $7)
           AND EXISTS (
               SELECT 1 FROM eventstore.events2 b
               LEFT JOIN projections.current_states c
                   ON c.projection_name = $8 AND c.instance_id = b.instance_id
               WHERE b.aggregate_type = 'instance' AND b.event_type = 'instance.domain.added'
                 AND lower(b.payload ->> 'domain') = lower(a.payload ->> 'domain')
                 AND (b.\"position\", b.in_tx_order) < (a.\"position\", a.in_tx_order)
                 AND b.instance_id <> $1
                 AND (NOT b.written_by_v3 OR b.\"position\" <= $9)
                 AND (c.instance_id IS NULL
                      OR (b.\"position\", b.in_tx_order, b.aggregate_type, b.aggregate_id, b.\"sequence\")
                         > (c.\"position\", c.in_tx_order, c.aggregate_type, c.aggregate_id, c.\"sequence\")))
         ORDER BY a.\"position\", a.in_tx_order, a.aggregate_type, a.aggregate_id, a.\"sequence\"
         LIMIT 1",
    )
    .bind(instance_id)
    .bind(after.map(|k| k.position))
    .bind(after.map(|k| k.in_tx_order))
    .bind(after.map(|k| k.aggregate_type.as_str()))
    .bind(after.map(|k| k.aggregate_id.as_str()))
    .bind(after.map(|k| k.sequence))
    .bind(until)
    .bind(relational::NAME)
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
