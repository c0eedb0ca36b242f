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
use tenancy_core::event::{SortKey, StoredEvent};
use tenancy_postgres::on_constraint;

use crate::engine::{ReplayV3, sort_key};
use crate::relational;

const DOMAIN_ADDED: &str = "instance.domain.added";

/// The instances this engine found fresh. Once another instance relied on one being fresh
/// (took a domain ahead of it), it must be caught up in bulk whatever it grew to since.
pub(crate) type Fresh = crate::bulk::InstanceSet;

/// True when the instance is fresh (see the module): no cursor, failure or row, and at
/// most `bulk_limit` events of its aggregate types (never fewer than the bulk fold reads),
/// or found fresh before. Remembered in `fresh`.
pub(crate) async fn is_fresh(
    conn: &mut PgConnection,
    fresh: &Fresh,
    instance_id: &str,
    bulk_limit: u32,
) -> Result<bool> {
    if bulk_limit == 0 {
        return Ok(false);
    }
    let known = fresh.contains(instance_id);
    // No cursor, failure or row (which replay whatever the size), and few enough events.
    let is_fresh: bool = sqlx::query_scalar(
        "SELECT NOT (EXISTS (SELECT 1 FROM tenancy.current_states WHERE projection_name = $1 AND instance_id = $2)
                  OR EXISTS (SELECT 1 FROM tenancy.failed_events2 WHERE projection_name = $1 AND instance_id = $2)
                  OR EXISTS (SELECT 1 FROM instances WHERE id = $2)
                  OR EXISTS (SELECT 1 FROM organizations WHERE instance_id = $2)
                  OR EXISTS (SELECT 1 FROM instance_domains WHERE instance_id = $2)
                  OR EXISTS (SELECT 1 FROM org_domains WHERE instance_id = $2)
                  OR EXISTS (SELECT 1 FROM domains WHERE instance_id = $2))
            AND ($5 OR (SELECT count(*) FROM (SELECT 1 FROM eventstore.events2 n
                                              WHERE n.instance_id = $2 AND n.aggregate_type = ANY($3)
                                              LIMIT $4 + 1) t) <= $4)",
    )
    .bind(relational::NAME)
    .bind(instance_id)
    .bind(relational::aggregate_types())
    .bind(i64::from(bulk_limit))
    .bind(known)
    .fetch_one(conn)
    .await
    .map_err(on_constraint)?;
    if is_fresh {
        fresh.insert(instance_id);
    }
    Ok(is_fresh)
}

/// True when `events` hold an add of an instance domain, the only events that can wait.
pub(crate) fn has_domain_adds(events: &[StoredEvent]) -> bool {
    events.iter().any(|e| e.event_type == DOMAIN_ADDED)
}

/// The first of the instance's domain adds after `after` (exclusive) and up to `until`
/// (inclusive) that must wait for a replaying instance. One statement lists, in order,
/// the instance's adds with the other instances that have an earlier add of the same
/// domain not yet projected (index `events2_tenancy_instance_domain_added`); an add waits
/// if one of them replays: it has a cursor, or it is not fresh (`is_fresh`, remembered).
pub(crate) async fn first_waiting_add(
    conn: &mut PgConnection,
    fresh: &Fresh,
    instance_id: &str,
    after: Option<&SortKey>,
    until: Option<Decimal>,
    replay: Option<ReplayV3>,
    bulk_limit: u32,
) -> Result<Option<SortKey>> {
    type Row = (Decimal, i32, String, String, i64, String, bool);
    let sql = format!(
        "SELECT a.\"position\", a.in_tx_order, a.aggregate_type, a.aggregate_id, a.\"sequence\",
                b.instance_id, c.instance_id IS NOT NULL
         FROM eventstore.events2 a
         CROSS JOIN LATERAL (
             -- OFFSET 0 keeps the probe per add, the domain as the index condition: as a
             -- join, the planner hashed every add of the store for each call.
             SELECT b.instance_id, b.\"position\", b.in_tx_order, b.aggregate_type, b.aggregate_id, b.\"sequence\"
             FROM eventstore.events2 b
             WHERE b.aggregate_type = 'instance' AND b.event_type = 'instance.domain.added'
               AND lower(b.payload ->> 'domain') = lower(a.payload ->> 'domain')
               AND (b.\"position\", b.in_tx_order) < (a.\"position\", a.in_tx_order)
               AND b.instance_id <> $2
               AND (NOT {written_b} OR b.\"position\" <= $9)
             OFFSET 0) b
         LEFT JOIN tenancy.current_states c
             ON c.projection_name = $1 AND c.instance_id = b.instance_id
         WHERE a.instance_id = $2 AND a.aggregate_type = 'instance' AND a.event_type = 'instance.domain.added'
           AND (NOT {written_a} OR a.\"position\" <= $9)
           AND ($3::numeric IS NULL
                OR (a.\"position\", a.in_tx_order, a.aggregate_type, a.aggregate_id, a.\"sequence\")
                   > ($3, $4, $5, $6, $7))
           AND ($8::numeric IS NULL OR a.\"position\" <= $8)
           AND (c.instance_id IS NULL
                OR (b.\"position\", b.in_tx_order, b.aggregate_type, b.aggregate_id, b.\"sequence\")
                   > (c.\"position\", c.in_tx_order, c.aggregate_type, c.aggregate_id, c.\"sequence\"))
         ORDER BY a.\"position\", a.in_tx_order, a.aggregate_type, a.aggregate_id, a.\"sequence\"",
        written_a = tenancy_eventstore::written_by_tenancy("a"),
        written_b = tenancy_eventstore::written_by_tenancy("b"),
    );
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(relational::NAME)
        .bind(instance_id)
        .bind(after.map(|k| k.position))
        .bind(after.map(|k| k.in_tx_order))
        .bind(after.map(|k| k.aggregate_type.as_str()))
        .bind(after.map(|k| k.aggregate_id.as_str()))
        .bind(after.map(|k| k.sequence))
        .bind(until)
        .bind(replay.map(|ReplayV3(until)| until))
        .fetch_all(&mut *conn)
        .await
        .map_err(on_constraint)?;
    let mut checked: HashMap<String, bool> = HashMap::new();
    for (position, in_tx_order, aggregate_type, aggregate_id, sequence, blocker, has_cursor) in rows
    {
        // Without a cursor: fresh if found so before (another instance may already have
        // relied on it), else classified now.
        let replays = has_cursor
            || match checked.get(&blocker) {
                Some(replays) => *replays,
                None => {
                    let replays = !(fresh.contains(&blocker)
                        || is_fresh(conn, fresh, &blocker, bulk_limit).await?);
                    checked.insert(blocker, replays);
                    replays
                }
            };
        if replays {
            return Ok(Some(sort_key(
                instance_id,
                (
                    position,
                    in_tx_order,
                    aggregate_type,
                    aggregate_id,
                    sequence,
                ),
            )));
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
