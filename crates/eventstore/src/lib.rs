//! # tenancy-eventstore
//!
//! An event store on `eventstore.events2`, compatible with ZITADEL's:
//! - **push**: a batch of events for one or more aggregates in one transaction (its own, or
//!   the caller's unit of work via [`tenancy_postgres::EventPusher`]); gap-free sequences
//!   per aggregate with optional expected sequences (Conflict); `position` stamped with
//!   `clock_timestamp()` at insert while a per-instance *shared* advisory lock is held for
//!   the whole transaction (the same two-int key ZITADEL's pushers use); unique constraints
//!   in the same transaction; `pg_notify` on commit.
//! - **read**: gap-safe: wait out in-flight pushes of the instance (take and release the
//!   exclusive lock on the same key), then read only up to the reader's transaction start,
//!   resuming after a sort-key cursor (never by offset).
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use serde_json::json;
//! use tenancy_core::event::{EventQuery, NewEvent};
//! use tenancy_core::ports::EventReader;
//! use tenancy_eventstore::PgEventStore;
//!
//! let db = tenancy_testkit::db::TestDatabase::fresh().await?;
//! let store = PgEventStore::new(db.pool.clone());
//! // As ZITADEL's writers push: revision 1, owned by the aggregate, stamped by the store.
//! let added = NewEvent::legacy("acme", "instance", "acme", "instance.added", json!({"name": "ACME"}), "setup");
//! store.push(vec![added]).await?;
//!
//! let query = EventQuery { instance_id: "acme".into(), ..EventQuery::default() };
//! let events = store.read(&query).await?;
//! assert_eq!(events.len(), 1);
//! assert_eq!((events[0].event_type.as_str(), events[0].sequence), ("instance.added", 1));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
#![deny(missing_docs)]

pub mod import;
pub mod projection_state;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use rust_decimal::Decimal;
use sqlx::{AssertSqlSafe, Connection, PgConnection, PgPool};
use tenancy_core::event::{
    EVENT_TYPES, EventQuery, INSTANCE_AGGREGATE, NewEvent, ORG_AGGREGATE, SortKey, StoredEvent,
    UniqueAction,
};
use tenancy_core::ports::EventReader;
use tenancy_core::{Error, Result};
use tenancy_postgres::{EventPusher, on_constraint};
use time::OffsetDateTime;

/// The channel `pg_notify` wakes projections on; the payload is the instance id.
pub const NOTIFY_CHANNEL: &str = "tenancy_events";

/// The event store over a pool.
#[derive(Debug, Clone)]
pub struct PgEventStore {
    pool: PgPool,
    /// Whether the store is ZITADEL's (`tenancy.layout`), read once.
    adopted: Arc<OnceLock<bool>>,
}

impl PgEventStore {
    /// A store on the database of `pool` (migrated by `tenancy_postgres::migrate`).
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            adopted: Arc::default(),
        }
    }

    async fn adopted(&self, conn: &mut PgConnection) -> Result<bool> {
        if let Some(adopted) = self.adopted.get() {
            return Ok(*adopted);
        }
        let adopted = adopted_store(conn).await?;
        Ok(*self.adopted.get_or_init(|| adopted))
    }

    /// Pushes in a transaction of its own. Without expected sequences, a sequence
    /// collision with a concurrent push is retried. An aggregate whose first event expects
    /// sequence 0 (a new one) is numbered from 1 without looking up its latest sequence:
    /// the push fails with `Conflict` if it has events already. So is one whose first
    /// event creates it (`instance.added`, `org.added`), without an expectation: if it has
    /// events already, the push is tried again with the lookup (and appends, as before).
    pub async fn push(&self, events: Vec<NewEvent>) -> Result<Vec<StoredEvent>> {
        let retry = events.iter().all(|e| e.expected_sequence.is_none());
        // Without unique constraints a push is one statement: atomic on its own, so it
        // needs no transaction (no BEGIN and COMMIT round trips).
        let one_statement = events.iter().all(|e| e.unique_constraints.is_empty());
        let mut infer_creations = true;
        let mut attempt = 0;
        loop {
            let pushed = if one_statement {
                let mut conn = self.pool.acquire().await.map_err(on_constraint)?;
                let adopted = self.adopted(&mut conn).await?;
                push_in(&mut conn, &events, adopted, infer_creations).await
            } else {
                let mut tx = self.pool.begin().await.map_err(on_constraint)?;
                let adopted = self.adopted(&mut tx).await?;
                match push_in(&mut tx, &events, adopted, infer_creations).await {
                    Ok(Pushed::Stamped(stamps)) => tx
                        .commit()
                        .await
                        .map_err(on_constraint)
                        .map(|()| Pushed::Stamped(stamps)),
                    other => {
                        tx.rollback().await.map_err(on_constraint)?;
                        other
                    }
                }
            };
            match pushed {
                Ok(Pushed::Stamped(stamps)) => return Ok(stored(events, stamps)),
                Ok(Pushed::TakenForNewWrongly) => infer_creations = false,
                Err(Error::Conflict(why)) if retry && attempt < 10 => {
                    attempt += 1;
                    tracing::debug!(%why, attempt, "retrying push after a sequence collision");
                }
                Err(error) => return Err(error),
            }
        }
    }
}

impl PgEventStore {
    /// Streams a large read in batches of `batch` events (each a gap-safe read resumed
    /// after the previous batch's last sort key), so nothing holds the whole result.
    /// Returns the number of events passed to `on_batch`.
    pub async fn read_in_batches<F>(
        &self,
        query: &EventQuery,
        batch: u32,
        mut on_batch: F,
    ) -> Result<u64>
    where
        F: FnMut(Vec<StoredEvent>) -> Result<()> + Send,
    {
        let mut query = query.clone();
        let limit = query.limit;
        let mut seen: u64 = 0;
        loop {
            let remaining = limit.map(|l| u64::from(l).saturating_sub(seen));
            if remaining == Some(0) {
                return Ok(seen);
            }
            query.limit =
                Some(remaining.map_or(batch, |r| batch.min(u32::try_from(r).unwrap_or(u32::MAX))));
            let events = self.read(&query).await?;
            let Some(last) = events.last() else {
                return Ok(seen);
            };
            query.after = Some(last.sort_key());
            seen += events.len() as u64;
            let full = events.len() as u32 == query.limit.unwrap_or(batch);
            on_batch(events)?;
            if !full {
                return Ok(seen);
            }
        }
    }
}

impl PgEventStore {
    /// Gap-safe read of the events of several instances up to `max_position` (or up to
    /// the reader's transaction start), ordered by instance and then by sort key: one
    /// statement for the set, for catching up many small instances together. The caller
    /// bounds the result (it is read whole).
    pub async fn read_instances(
        &self,
        instance_ids: &[String],
        aggregate_types: &[String],
        event_types: &[String],
        max_position: Option<Decimal>,
    ) -> Result<Vec<StoredEvent>> {
        let mut ids = instance_ids.to_vec();
        // One order for every reader of a set: two of them never wait for each other.
        ids.sort();
        ids.dedup();
        let mut conn = self.pool.begin().await.map_err(on_constraint)?;
        wait_out_pushes(&mut conn, &ids).await?;
        let sql = format!(
            "SELECT {} FROM eventstore.events2 e
             WHERE instance_id = ANY($1) AND aggregate_type = ANY($2) AND event_type = ANY($3)
               AND \"position\" <= EXTRACT(EPOCH FROM now())
               AND ($4::numeric IS NULL OR \"position\" <= $4)
             ORDER BY instance_id, \"position\", in_tx_order, aggregate_type, aggregate_id, \"sequence\"",
            event_columns("e")
        );
        let rows: Vec<EventRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(&ids)
            .bind(aggregate_types)
            .bind(event_types)
            .bind(max_position)
            .fetch_all(&mut *conn)
            .await
            .map_err(on_constraint)?;
        conn.commit().await.map_err(on_constraint)?;
        Ok(rows.into_iter().map(StoredEvent::from).collect())
    }

    /// Gap-safe read of the next events of several instances, each after its own sort key
    /// (`None`: from its first event) and at most `limit` of each, in sort-key order per
    /// instance: the pieces of a merge in the store's global order. One statement.
    pub async fn read_each_after(
        &self,
        after: &[(String, Option<SortKey>)],
        aggregate_types: &[String],
        event_types: &[String],
        max_position: Option<Decimal>,
        limit: u32,
    ) -> Result<Vec<StoredEvent>> {
        let mut ids: Vec<String> = after.iter().map(|(id, _)| id.clone()).collect();
        ids.sort();
        ids.dedup();
        let mut conn = self.pool.begin().await.map_err(on_constraint)?;
        wait_out_pushes(&mut conn, &ids).await?;
        let key = |f: fn(&SortKey) -> String| {
            after
                .iter()
                .map(|(_, k)| k.as_ref().map(f))
                .collect::<Vec<Option<String>>>()
        };
        // In two steps, so that only the rows returned are fetched from the heap. The
        // projection index gives no position order across several aggregate and event
        // types: one step read every remaining event of each instance and sorted them
        // (646 rows fetched per instance for 76 returned, most of an outage catch-up's
        // read time). First, from the index alone, the `limit`-th position after the
        // cursor's own (`upto`; none where fewer follow); then the events up to it (or all
        // that are left, at most `limit`), with those of the cursor's position after it.
        // Every event after the cursor up to `upto` is read, and there are at least
        // `limit` of them when there are more, so fewer than `limit` still means none are
        // left. The position bounds as in `read`: index bounds, not only filters (`upto`
        // among them, so that the rows past it are not fetched).
        //
        // The first step is one branch per (aggregate type, event type), each in the
        // index's position order, merged (a Merge Append that stops at `limit`): with
        // `= ANY` over both types it had read every remaining index entry of the instance
        // and sorted them, half of an outage catch-up's read time (benchmarks.md). Only
        // the pairs whose event type is named after its aggregate type get a branch (every
        // event of ZITADEL's catalogue is; the cross product is twice as many index
        // probes per instance, each finding nothing). An event of another pair still
        // wanted (`= ANY` over both, as every read of the projection) is read by the
        // second step: it is bounded by `upto` only where the branches found `limit`
        // events, so where they found fewer it reads what is left, up to `limit`.
        let all_pairs: Vec<(&String, &String)> = aggregate_types
            .iter()
            .flat_map(|a| event_types.iter().map(move |e| (a, e)))
            .collect();
        let named: Vec<(&String, &String)> = all_pairs
            .iter()
            .copied()
            .filter(|(a, e)| {
                e.strip_prefix(a.as_str())
                    .is_some_and(|rest| rest.starts_with('.'))
            })
            .collect();
        let pairs = if named.is_empty() { all_pairs } else { named };
        if pairs.is_empty() || after.is_empty() {
            conn.commit().await.map_err(on_constraint)?;
            return Ok(Vec::new());
        }
        // Only the branches' numbers are formatted into the statement; the types are bound.
        let branches = (1..=pairs.len())
            .map(|k| {
                format!(
                    "(SELECT i.\"position\" FROM eventstore.events2 i
                      WHERE i.instance_id = c.instance_id AND i.aggregate_type = $11[{k}] AND i.event_type = $12[{k}]
                        AND i.\"position\" <= EXTRACT(EPOCH FROM now())
                        AND ($9::numeric IS NULL OR i.\"position\" <= $9)
                        AND i.\"position\" > coalesce(c.\"position\", -1)
                      ORDER BY i.\"position\")"
                )
            })
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        let sql = format!(
            "SELECT {} FROM unnest($1::text[], $2::numeric[], $3::int[], $4::text[], $5::text[], $6::bigint[])
                 AS c(instance_id, \"position\", in_tx_order, aggregate_type, aggregate_id, \"sequence\")
             CROSS JOIN LATERAL (
                 SELECT CASE WHEN count(*) >= $10 THEN max(n.\"position\") END AS upto FROM (
                     SELECT u.\"position\" FROM ({branches}) u
                     ORDER BY u.\"position\"
                     LIMIT $10) n
             ) b
             CROSS JOIN LATERAL (
                 SELECT * FROM eventstore.events2 e
                 WHERE e.instance_id = c.instance_id AND e.aggregate_type = ANY($7) AND e.event_type = ANY($8)
                   AND e.\"position\" <= EXTRACT(EPOCH FROM now())
                   AND ($9::numeric IS NULL OR e.\"position\" <= $9)
                   AND e.\"position\" >= coalesce(c.\"position\", 0)
                   AND e.\"position\" <= coalesce(b.upto, $9::numeric, EXTRACT(EPOCH FROM now()))
                   AND (c.\"position\" IS NULL
                        OR (e.\"position\", e.in_tx_order, e.aggregate_type, e.aggregate_id, e.\"sequence\")
                           > (c.\"position\", c.in_tx_order, c.aggregate_type, c.aggregate_id, c.\"sequence\"))
                 ORDER BY e.\"position\", e.in_tx_order, e.aggregate_type, e.aggregate_id, e.\"sequence\"
                 LIMIT $10) e",
            event_columns("e")
        );
        let rows: Vec<EventRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(after.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>())
            .bind(
                after
                    .iter()
                    .map(|(_, k)| k.as_ref().map(|k| k.position))
                    .collect::<Vec<_>>(),
            )
            .bind(
                after
                    .iter()
                    .map(|(_, k)| k.as_ref().map(|k| k.in_tx_order))
                    .collect::<Vec<_>>(),
            )
            .bind(key(|k| k.aggregate_type.clone()))
            .bind(key(|k| k.aggregate_id.clone()))
            .bind(
                after
                    .iter()
                    .map(|(_, k)| k.as_ref().map(|k| k.sequence))
                    .collect::<Vec<_>>(),
            )
            .bind(aggregate_types)
            .bind(event_types)
            .bind(max_position)
            .bind(i64::from(limit))
            .bind(pairs.iter().map(|(a, _)| *a).collect::<Vec<_>>())
            .bind(pairs.iter().map(|(_, e)| *e).collect::<Vec<_>>())
            .fetch_all(&mut *conn)
            .await
            .map_err(on_constraint)?;
        conn.commit().await.map_err(on_constraint)?;
        Ok(rows.into_iter().map(StoredEvent::from).collect())
    }
}

/// In-flight pushes hold the shared lock of their instance until they commit: taking and
/// releasing each exclusive lock waits them out (as `read` does for one instance). `ids`
/// sorted, so that two readers of a set never wait for each other.
async fn wait_out_pushes(conn: &mut PgConnection, ids: &[String]) -> Result<()> {
    for statement in [
        "SELECT count(pg_advisory_lock('eventstore.events2'::regclass::oid::int4, hashtext(id))) FROM unnest($1::text[]) AS i(id)",
        "SELECT count(pg_advisory_unlock('eventstore.events2'::regclass::oid::int4, hashtext(id))) FROM unnest($1::text[]) AS i(id)",
    ] {
        sqlx::query(statement)
            .bind(ids)
            .execute(&mut *conn)
            .await
            .map_err(on_constraint)?;
    }
    Ok(())
}

#[async_trait]
impl EventPusher for PgEventStore {
    async fn push_on(
        &self,
        conn: &mut PgConnection,
        events: Vec<NewEvent>,
    ) -> Result<Vec<StoredEvent>> {
        let adopted = self.adopted(conn).await?;
        push_savepoint(conn, events, adopted).await
    }
}

/// Whether the event store is ZITADEL's, adopted as found (`tenancy.layout`).
async fn adopted_store(conn: &mut PgConnection) -> Result<bool> {
    let layout = tenancy_postgres::layout::stored(conn)
        .await?
        .ok_or_else(|| {
            Error::PreconditionFailed(
                "tenancy's migrations have not run on this database: run `tenancy migrate`".into(),
            )
        })?;
    Ok(layout.adopted())
}

/// Pushes `events` on `conn`, which must be inside a transaction; a failed push leaves
/// the caller's transaction usable (it runs in a savepoint) and writes nothing.
pub async fn push_on(conn: &mut PgConnection, events: Vec<NewEvent>) -> Result<Vec<StoredEvent>> {
    let adopted = adopted_store(conn).await?;
    push_savepoint(conn, events, adopted).await
}

async fn push_savepoint(
    conn: &mut PgConnection,
    events: Vec<NewEvent>,
    adopted: bool,
) -> Result<Vec<StoredEvent>> {
    for infer_creations in [true, false] {
        let mut savepoint = conn.begin().await.map_err(on_constraint)?;
        match push_in(&mut savepoint, &events, adopted, infer_creations).await? {
            Pushed::Stamped(stamps) => {
                savepoint.commit().await.map_err(on_constraint)?;
                return Ok(stored(events, stamps));
            }
            Pushed::TakenForNewWrongly => savepoint.rollback().await.map_err(on_constraint)?,
        }
    }
    Err(Error::internal(
        "a push without inferred aggregates reported one taken for new",
    ))
}

/// The push itself: one statement per unique constraint, in event order; with expected
/// sequences, one to read and check the aggregates' latest; then one statement for the
/// locks, the rows (`position` stamped per row with `clock_timestamp()`) and the
/// notifications. Returns what the store stamped on each event, in order. The events are
/// borrowed: binding them copies nothing, and a retried push reuses them.
/// `infer_creations`: number an aggregate whose first event creates it from 1, without
/// the lookup of its latest sequence (`numbering`).
#[tracing::instrument(name = "push", skip_all, fields(events = events.len()))]
async fn push_in(
    conn: &mut PgConnection,
    events: &[NewEvent],
    adopted: bool,
    infer_creations: bool,
) -> Result<Pushed> {
    if events.is_empty() {
        return Ok(Pushed::Stamped(Vec::new()));
    }
    for unique in events.iter().flat_map(|e| &e.unique_constraints) {
        let statement = match unique.action {
            UniqueAction::Add => {
                "INSERT INTO eventstore.unique_constraints (instance_id, unique_type, unique_field) VALUES ($1, $2, lower($3))"
            }
            UniqueAction::Remove => {
                "DELETE FROM eventstore.unique_constraints WHERE instance_id = $1 AND unique_type = $2 AND unique_field = lower($3)"
            }
        };
        let done = sqlx::query(statement)
            .bind(&unique.instance_id)
            .bind(&unique.unique_type)
            .bind(&unique.unique_field)
            .execute(&mut *conn)
            .await;
        if let Err(sqlx::Error::Database(db)) = &done
            && db.is_unique_violation()
        {
            return Err(Error::AlreadyExists {
                rule: tenancy_core::Rule::of_unique_type(&unique.unique_type),
                value: unique.unique_field.clone(),
            });
        }
        done.map_err(on_constraint)?;
    }

    let instances: Vec<&str> = events
        .iter()
        .map(|e| e.instance_id.as_str())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let known = numbering(events, infer_creations)?;
    // Whether some aggregate was numbered as new here (declared, or inferred).
    let (numbered, inferred) = (known.is_some(), known.as_ref().is_some_and(|k| k.inferred));
    let sequences = match known {
        Some(known) => Some(known.sequences),
        None if events.iter().any(|e| e.expected_sequence.is_some()) => {
            Some(expected_sequences(conn, events, &instances).await?)
        }
        None => None,
    };
    let n = i32::try_from(events.len())
        .map_err(|_| Error::invalid("events", "too many events in one push"))?;
    // One call (migration 0005, `tenancy.push`): the locks, the rows with their sequences (given, or the
    // aggregate's latest plus the event's rank in the batch) and the notifications.
    let inserted: std::result::Result<Vec<(i32, i64, Decimal, OffsetDateTime)>, sqlx::Error> = sqlx::query_as(
        "SELECT * FROM tenancy.push($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
    )
    .bind(events.iter().map(|e| e.instance_id.as_str()).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.aggregate_type.as_str()).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.aggregate_id.as_str()).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.event_type.as_str()).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.revision).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.created_at).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.payload.as_ref()).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.creator.as_str()).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.owner.as_str()).collect::<Vec<_>>())
    .bind((1..=n).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.written_by_v3).collect::<Vec<_>>())
    .bind(sequences.unwrap_or_else(|| vec![None; events.len()]))
    .bind(ranks(events))
    .bind(&instances)
    .bind(NOTIFY_CHANNEL)
    .bind(adopted)
    .fetch_all(&mut *conn)
    .await;
    let mut stamps: Vec<(i32, Stamp)> = match inserted {
        Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
            if inferred {
                return Ok(Pushed::TakenForNewWrongly);
            }
            return Err(Error::Conflict(if numbered {
                "an aggregate expected to be new (expected sequence 0) already has events, or \
                 a concurrent push took one of these sequences"
                    .into()
            } else {
                "a concurrent push took one of these sequences".into()
            }));
        }
        other => other
            .map_err(on_constraint)?
            .into_iter()
            .map(|(ord, sequence, position, created_at)| {
                (
                    ord,
                    Stamp {
                        sequence,
                        position,
                        created_at,
                    },
                )
            })
            .collect(),
    };
    // The rows come back in the order they were inserted; sorted anyway, as a set's
    // order is not a contract.
    stamps.sort_unstable_by_key(|(ord, _)| *ord);
    let in_order = stamps.len() == events.len()
        && stamps
            .iter()
            .enumerate()
            .all(|(index, (ord, _))| *ord == index as i32 + 1);
    if !in_order {
        return Err(Error::internal(
            "the insert did not return one row per event",
        ));
    }
    Ok(Pushed::Stamped(
        stamps.into_iter().map(|(_, stamp)| stamp).collect(),
    ))
}

/// How a push attempt ended, short of an error.
enum Pushed {
    /// Written: what the store stamped on each event, in order.
    Stamped(Vec<Stamp>),
    /// Nothing written: an aggregate taken for new by its creating event has events
    /// already (or a concurrent push created it). Try again without that inference.
    TakenForNewWrongly,
}

/// What the store stamps on a pushed event.
struct Stamp {
    sequence: i64,
    position: Decimal,
    created_at: OffsetDateTime,
}

/// The stored events of `events`, pushed with `stamps` (one per event, in order).
fn stored(events: Vec<NewEvent>, stamps: Vec<Stamp>) -> Vec<StoredEvent> {
    events
        .into_iter()
        .zip(stamps)
        .zip(1..)
        .map(|((event, stamp), in_tx_order)| StoredEvent {
            instance_id: event.instance_id,
            aggregate_type: event.aggregate_type,
            aggregate_id: event.aggregate_id,
            event_type: event.event_type,
            sequence: stamp.sequence,
            revision: event.revision,
            created_at: stamp.created_at,
            payload: event.payload,
            creator: event.creator,
            owner: event.owner,
            position: stamp.position,
            in_tx_order,
            written_by_v3: event.written_by_v3,
        })
        .collect()
}

/// Each event's rank among the batch's events of its aggregate (1 for the first).
fn ranks(events: &[NewEvent]) -> Vec<i64> {
    let mut seen: HashMap<Aggregate, i64> = HashMap::new();
    events
        .iter()
        .map(|e| {
            let rank = seen.entry(aggregate_of(e)).or_insert(0);
            *rank += 1;
            *rank
        })
        .collect()
}

/// An aggregate: instance id, aggregate type and aggregate id.
type Aggregate<'a> = (&'a str, &'a str, &'a str);

fn aggregate_of(event: &NewEvent) -> Aggregate<'_> {
    (
        &event.instance_id,
        &event.aggregate_type,
        &event.aggregate_id,
    )
}

/// Sequences of a batch known without reading the store.
struct Numbering {
    /// Per event: its sequence, or `None` for the insert to append after the latest.
    sequences: Vec<Option<i64>>,
    /// Some aggregate was taken for new because its first event creates it, not because
    /// the writer declared it: if the primary key refuses, the push is tried again with
    /// the lookup.
    inferred: bool,
}

/// Whether `event` is the event that creates its aggregate (its first, in every store).
fn creates_aggregate(event: &NewEvent) -> bool {
    matches!(
        (event.aggregate_type.as_str(), event.event_type.as_str()),
        (INSTANCE_AGGREGATE, "instance.added") | (ORG_AGGREGATE, "org.added")
    )
}

/// The sequences of a batch in which every aggregate is new or appends without an
/// expectation; `None` when some expectation needs the store's latest sequence (then
/// `expected_sequences` reads it) or when nothing is known (the insert looks each up).
///
/// An aggregate is new when its first event in the batch expects 0, or, with
/// `infer_creations`, when that event creates it (`instance.added`, `org.added`) and
/// expects nothing. A new aggregate's events take 1, 2, ...; a later expectation must match
/// its count so far (else `Conflict`; for an aggregate only taken for new, the batch goes
/// to the read instead). As sequences start at 1, the primary key refuses the insert if
/// the aggregate has events already. Other aggregates keep `None`.
fn numbering(events: &[NewEvent], infer_creations: bool) -> Result<Option<Numbering>> {
    let infers = |event: &NewEvent| infer_creations && creates_aggregate(event);
    if events
        .iter()
        .all(|e| e.expected_sequence.is_none() && !infers(e))
    {
        return Ok(None);
    }
    // Per aggregate of the batch: its count so far if it is new (and whether that was
    // inferred), `None` if it appends.
    let mut counts: HashMap<Aggregate, Option<(i64, bool)>> = HashMap::new();
    let mut sequences = Vec::with_capacity(events.len());
    let mut inferred = false;
    for event in events {
        let key = aggregate_of(event);
        let count = match (counts.get(&key), event.expected_sequence) {
            (None, Some(0)) => Some((0, false)),
            (None, None) if infers(event) => Some((0, true)),
            (None, None) => None,
            (Some(count), _) => *count,
            (None, Some(_)) => return Ok(None),
        };
        let Some((count, guessed)) = count else {
            if event.expected_sequence.is_some() {
                return Ok(None);
            }
            counts.insert(key, None);
            sequences.push(None);
            continue;
        };
        if let Some(expected) = event.expected_sequence
            && expected != count
        {
            if guessed {
                // The writer expects a sequence of an aggregate only taken for new.
                return Ok(None);
            }
            return Err(Error::Conflict(format!(
                "{} {} is at sequence {count} in this push, expected {expected}",
                event.aggregate_type, event.aggregate_id
            )));
        }
        inferred |= guessed;
        counts.insert(key, Some((count + 1, guessed)));
        sequences.push(Some(count + 1));
    }
    if sequences.iter().all(Option::is_none) {
        // Every aggregate appends (a creating event that came after others among them).
        return Ok(None);
    }
    Ok(Some(Numbering {
        sequences,
        inferred,
    }))
}

/// With expectations, the sequences are fixed before the insert: the latest sequence of
/// every aggregate of the batch (under the shared locks), checked against each expectation.
/// The insert then uses them as given, so a concurrent push that took one fails it.
async fn expected_sequences(
    conn: &mut PgConnection,
    events: &[NewEvent],
    instances: &[&str],
) -> Result<Vec<Option<i64>>> {
    let aggregates: Vec<Aggregate> = events
        .iter()
        .map(aggregate_of)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let latest: Vec<i64> = sqlx::query_scalar(
        "WITH locks AS (
             SELECT pg_advisory_xact_lock_shared('eventstore.events2'::regclass::oid::int4, hashtext(i))
             FROM unnest($4::text[]) AS i ORDER BY i)
         SELECT coalesce((SELECT max(e.\"sequence\") FROM eventstore.events2 e
                 WHERE e.instance_id = a.i AND e.aggregate_type = a.t AND e.aggregate_id = a.id), 0)
         FROM (SELECT count(*) FROM locks) AS held,
              unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS a(i, t, id, n)
         ORDER BY a.n",
    )
    .bind(aggregates.iter().map(|a| a.0).collect::<Vec<_>>())
    .bind(aggregates.iter().map(|a| a.1).collect::<Vec<_>>())
    .bind(aggregates.iter().map(|a| a.2).collect::<Vec<_>>())
    .bind(instances)
    .fetch_all(&mut *conn)
    .await
    .map_err(on_constraint)?;
    if latest.len() != aggregates.len() {
        return Err(Error::internal(
            "the latest sequences came back for another number of aggregates than asked",
        ));
    }
    let mut current: HashMap<Aggregate, i64> = aggregates.into_iter().zip(latest).collect();
    let mut sequences = Vec::with_capacity(events.len());
    for event in events {
        let key = aggregate_of(event);
        let seq = current.entry(key).or_insert(0);
        if let Some(expected) = event.expected_sequence
            && expected != *seq
        {
            return Err(Error::Conflict(format!(
                "{} {} is at sequence {seq}, expected {expected}",
                event.aggregate_type, event.aggregate_id
            )));
        }
        *seq += 1;
        sequences.push(Some(*seq));
    }
    Ok(sequences)
}

#[derive(Clone, sqlx::FromRow)]
struct EventRow {
    instance_id: String,
    aggregate_type: String,
    aggregate_id: String,
    event_type: String,
    sequence: i64,
    revision: i16,
    created_at: OffsetDateTime,
    payload: Option<serde_json::Value>,
    creator: String,
    owner: String,
    position: Decimal,
    in_tx_order: i32,
    written_by_v3: bool,
}

impl From<EventRow> for StoredEvent {
    fn from(r: EventRow) -> Self {
        StoredEvent {
            instance_id: r.instance_id,
            aggregate_type: r.aggregate_type,
            aggregate_id: r.aggregate_id,
            event_type: r.event_type,
            sequence: r.sequence,
            revision: r.revision,
            created_at: r.created_at,
            payload: r.payload,
            creator: r.creator,
            owner: r.owner,
            position: r.position,
            in_tx_order: r.in_tx_order,
            written_by_v3: r.written_by_v3,
        }
    }
}

/// [`EventReader::read`] in the transaction of `conn` (whose start bounds the positions
/// read: pushes that begin after it stamp later ones, and those in flight are waited out).
pub async fn read_in(conn: &mut PgConnection, query: &EventQuery) -> Result<Vec<StoredEvent>> {
    // sqlx prepares this statement; a generic plan for it was measured 25x slower than
    // a custom one (the cursor's selectivity varies wildly), so always plan per call.
    sqlx::query("SET LOCAL plan_cache_mode = force_custom_plan")
        .execute(&mut *conn)
        .await
        .map_err(on_constraint)?;
    // Wait out in-flight pushes of this instance: they hold the shared lock until commit.
    sqlx::query("SELECT pg_advisory_lock('eventstore.events2'::regclass::oid::int4, hashtext($1))")
        .bind(&query.instance_id)
        .execute(&mut *conn)
        .await
        .map_err(on_constraint)?;
    sqlx::query(
        "SELECT pg_advisory_unlock('eventstore.events2'::regclass::oid::int4, hashtext($1))",
    )
    .bind(&query.instance_id)
    .execute(&mut *conn)
    .await
    .map_err(on_constraint)?;
    let cursor = query.after.clone();
    // `position >= cursor` besides the row comparison: the index on (instance, types,
    // position) takes it as a bound, so a read scans what follows the cursor, not the
    // instance's whole history (the row comparison alone is only a filter).
    let sql = format!(
        "SELECT {} FROM eventstore.events2 e
         WHERE instance_id = $1
           AND (cardinality($2::text[]) = 0 OR aggregate_type = ANY($2))
           AND (cardinality($3::text[]) = 0 OR aggregate_id = ANY($3))
           AND (cardinality($4::text[]) = 0 OR event_type = ANY($4))
           AND \"position\" <= EXTRACT(EPOCH FROM now())
           AND \"position\" >= CASE WHEN $5 THEN $6::numeric ELSE 0 END
           AND (NOT $5 OR (\"position\", in_tx_order, instance_id, aggregate_type, aggregate_id, \"sequence\")
                           > ($6::numeric, $7::int, $8::text, $9::text, $10::text, $11::bigint))
           AND ($13::numeric IS NULL OR \"position\" <= $13)
         ORDER BY \"position\", in_tx_order, instance_id, aggregate_type, aggregate_id, \"sequence\"
         LIMIT $12",
        event_columns("e")
    );
    let rows: Vec<EventRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(&query.instance_id)
        .bind(&query.aggregate_types)
        .bind(&query.aggregate_ids)
        .bind(&query.event_types)
        .bind(cursor.is_some())
        .bind(cursor.as_ref().map(|c| c.position).unwrap_or_default())
        .bind(cursor.as_ref().map(|c| c.in_tx_order).unwrap_or_default())
        .bind(
            cursor
                .as_ref()
                .map(|c| c.instance_id.clone())
                .unwrap_or_default(),
        )
        .bind(
            cursor
                .as_ref()
                .map(|c| c.aggregate_type.clone())
                .unwrap_or_default(),
        )
        .bind(
            cursor
                .as_ref()
                .map(|c| c.aggregate_id.clone())
                .unwrap_or_default(),
        )
        .bind(cursor.as_ref().map(|c| c.sequence).unwrap_or_default())
        .bind(query.limit.map(i64::from))
        .bind(query.max_position)
        .fetch_all(&mut *conn)
        .await
        .map_err(on_constraint)?;
    Ok(rows.into_iter().map(StoredEvent::from).collect())
}

/// SQL: whether tenancy's tables already hold the rows of the events2 row aliased
/// `alias` — its push listed it in `tenancy.written_events`, in the same transaction as the
/// rows. Not the `written_by_v3` column: in an adopted ZITADEL store that column is
/// ZITADEL's (those rows live in ZITADEL's tables, not tenancy's), and older stores lack it.
/// `alias` is a literal of the caller's SQL.
pub fn written_by_tenancy(alias: &str) -> String {
    format!(
        "EXISTS (SELECT 1 FROM tenancy.written_events w
                 WHERE w.instance_id = {alias}.instance_id AND w.aggregate_type = {alias}.aggregate_type
                   AND w.aggregate_id = {alias}.aggregate_id AND w.\"sequence\" = {alias}.\"sequence\")"
    )
}

/// The columns of a [`StoredEvent`] from `eventstore.events2 {alias}`; its `written_by_v3`
/// is [`written_by_tenancy`].
pub fn event_columns(alias: &str) -> String {
    format!(
        "{alias}.instance_id, {alias}.aggregate_type, {alias}.aggregate_id, {alias}.event_type, {alias}.\"sequence\",
         {alias}.revision, {alias}.created_at, {alias}.payload, {alias}.creator, {alias}.\"owner\", {alias}.\"position\",
         {alias}.in_tx_order, {} AS written_by_v3",
        written_by_tenancy(alias)
    )
}

#[async_trait]
impl EventReader for PgEventStore {
    /// Gap-safe read of one instance's events after the cursor, in sort-key order.
    async fn read(&self, query: &EventQuery) -> Result<Vec<StoredEvent>> {
        // now() is the transaction start, taken before the lock of read_in: pushes that
        // begin after it stamp later positions, and those already in flight are waited out.
        let mut tx = self.pool.begin().await.map_err(on_constraint)?;
        let events = read_in(&mut tx, query).await?;
        tx.commit().await.map_err(on_constraint)?;
        Ok(events)
    }

    async fn read_aggregate(
        &self,
        instance_id: &str,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> Result<Vec<StoredEvent>> {
        let sql = format!(
            "SELECT {} FROM eventstore.events2 e
             WHERE instance_id = $1 AND aggregate_type = $2 AND aggregate_id = $3 ORDER BY \"sequence\"",
            event_columns("e")
        );
        let rows: Vec<EventRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(instance_id)
            .bind(aggregate_type)
            .bind(aggregate_id)
            .fetch_all(&self.pool)
            .await
            .map_err(on_constraint)?;
        Ok(rows.into_iter().map(StoredEvent::from).collect())
    }
}

/// The aggregates of the catalogue's events.
pub const CATALOGUE_AGGREGATES: [&str; 2] = [INSTANCE_AGGREGATE, ORG_AGGREGATE];

/// Every event of the catalogue ([`EVENT_TYPES`]) of `aggregate_types` (the instance and
/// org aggregates: [`CATALOGUE_AGGREGATES`]) in global sort-key order — the order cross-instance rules such as global custom domains were
/// judged in — of every instance, or only of `instances`; read in pages of 10,000 and
/// passed to `on_event`. For folds (`verify`, the import's unique constraints), which take
/// every event: `written_by_v3` is false, and older stores lack the column. Returns the
/// number of events.
pub async fn for_each_in_order<F>(
    conn: &mut PgConnection,
    instances: Option<&[&str]>,
    aggregate_types: &[&str],
    mut on_event: F,
) -> Result<u64>
where
    F: FnMut(StoredEvent) + Send,
{
    // Two statements rather than an `IS NULL OR` filter, whose generic plan could not use
    // the instance as an index condition.
    let filter = if instances.is_some() {
        "instance_id = ANY($9)"
    } else {
        "true"
    };
    let sql = format!(
        "SELECT instance_id, aggregate_type, aggregate_id, event_type, \"sequence\", revision, created_at,
                payload, creator, \"owner\", \"position\", in_tx_order, false AS written_by_v3
         FROM eventstore.events2
         WHERE {filter} AND instance_id <> '' AND aggregate_type = ANY($1) AND event_type = ANY($2)
           AND ($3::numeric IS NULL OR (\"position\", in_tx_order, instance_id, aggregate_type, aggregate_id, \"sequence\")
                > ($3, $4, $5, $6, $7, $8))
         ORDER BY \"position\", in_tx_order, instance_id, aggregate_type, aggregate_id, \"sequence\"
         LIMIT 10000"
    );
    let mut after: Option<SortKey> = None;
    let mut seen = 0;
    loop {
        let query = sqlx::query_as(AssertSqlSafe(sql.clone()))
            .bind(aggregate_types)
            .bind(EVENT_TYPES)
            .bind(after.as_ref().map(|a| a.position))
            .bind(after.as_ref().map(|a| a.in_tx_order))
            .bind(after.as_ref().map(|a| a.instance_id.clone()))
            .bind(after.as_ref().map(|a| a.aggregate_type.clone()))
            .bind(after.as_ref().map(|a| a.aggregate_id.clone()))
            .bind(after.as_ref().map(|a| a.sequence));
        let query = match instances {
            Some(list) => query.bind(list.to_vec()),
            None => query,
        };
        let rows: Vec<EventRow> = query.fetch_all(&mut *conn).await.map_err(on_constraint)?;
        let Some(last) = rows.last() else {
            return Ok(seen);
        };
        after = Some(StoredEvent::from(last.clone()).sort_key());
        for row in rows {
            seen += 1;
            on_event(StoredEvent::from(row));
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

    use super::*;

    fn event(aggregate: &str, event_type: &str, expected: Option<i64>) -> NewEvent {
        NewEvent {
            expected_sequence: expected,
            ..NewEvent::legacy(
                "i",
                ORG_AGGREGATE,
                aggregate,
                event_type,
                serde_json::json!({"name": "x"}),
                "test",
            )
        }
    }

    fn numbered(events: &[NewEvent], infer: bool) -> Option<(Vec<Option<i64>>, bool)> {
        numbering(events, infer)
            .unwrap()
            .map(|n| (n.sequences, n.inferred))
    }

    #[test]
    fn appends_without_expectations_are_left_to_the_lookup() {
        let events = [
            event("a", "org.changed", None),
            event("a", "org.changed", None),
        ];
        assert!(numbered(&events, true).is_none());
        // A creation without the inference is an append like any other.
        assert!(numbered(&[event("a", "org.added", None)], false).is_none());
    }

    #[test]
    fn a_creating_event_numbers_its_aggregate_from_one_beside_appends() {
        let events = [
            event("a", "org.added", None),
            event("b", "org.changed", None),
            event("a", "org.changed", None),
            event("a", "org.changed", Some(2)),
        ];
        assert_eq!(
            numbered(&events, true),
            Some((vec![Some(1), None, Some(2), Some(3)], true))
        );
        // A creation that is not the aggregate's first event in the push appends.
        let later = [
            event("a", "org.changed", None),
            event("a", "org.added", None),
        ];
        assert!(numbered(&later, true).is_none());
    }

    #[test]
    fn declared_new_aggregates_are_numbered_and_not_marked_inferred() {
        let events = [
            event("a", "org.added", Some(0)),
            event("a", "org.changed", None),
        ];
        assert_eq!(
            numbered(&events, false),
            Some((vec![Some(1), Some(2)], false))
        );
    }

    #[test]
    fn expectations_beyond_what_the_push_knows_go_to_the_read() {
        // An existing aggregate's sequence.
        assert!(numbered(&[event("a", "org.changed", Some(3))], true).is_none());
        // An expectation after an append.
        let appended = [
            event("a", "org.changed", None),
            event("a", "org.changed", Some(4)),
        ];
        assert!(numbered(&appended, true).is_none());
        // An aggregate only taken for new, whose writer expects another count.
        let taken = [
            event("a", "org.added", None),
            event("a", "org.changed", Some(7)),
        ];
        assert!(numbered(&taken, true).is_none());
    }

    #[test]
    fn a_declared_new_aggregate_with_a_miscounted_expectation_conflicts() {
        let events = [
            event("a", "org.added", Some(0)),
            event("a", "org.changed", Some(5)),
        ];
        let refused = numbering(&events, true);
        assert!(
            matches!(&refused, Err(Error::Conflict(why)) if why.contains("is at sequence 1 in this push, expected 5")),
            "{:?}",
            refused.map(|n| n.map(|n| n.sequences))
        );
    }
}
