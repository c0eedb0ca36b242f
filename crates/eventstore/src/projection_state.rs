//! The bookkeeping of a projection, as SQL: its cursor per instance
//! (`tenancy.current_states`), its failed events (`tenancy.failed_events2`), its
//! per-instance lock, and the reads of the store and the tables that its ordering rules
//! need (which instances exist, which are fresh, which domain adds must wait). The engine
//! (`tenancy-projection`) decides; this module only reads and writes.

use std::collections::HashMap;

use rust_decimal::Decimal;
use sqlx::{AssertSqlSafe, PgConnection, PgPool};
use tenancy_core::Result;
use tenancy_core::event::{SortKey, StoredEvent};
use tenancy_core::state::Table;
use tenancy_postgres::on_constraint;
use time::OffsetDateTime;

use crate::written_by_tenancy;

/// A failed event's key: aggregate type, aggregate id, sequence.
pub type FailureKey = (String, String, i64);

/// A row of `tenancy.failed_events2`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct FailedEvent {
    /// The event's instance.
    pub instance_id: String,
    /// The event's aggregate type.
    pub aggregate_type: String,
    /// The event's aggregate id.
    pub aggregate_id: String,
    /// The event's sequence in its aggregate.
    pub failed_sequence: i64,
    /// When the event was written.
    pub event_creation_date: OffsetDateTime,
    /// How often applying it failed; at the engine's limit it is skipped.
    pub failure_count: i16,
    /// The last failure's message.
    pub error: String,
    /// When it last failed.
    pub last_failed: OffsetDateTime,
}

/// How far a projection is: its cursors, the events past them, its failures.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// Instances with a cursor.
    pub instances: i64,
    /// Events of the projection's types past the cursors.
    pub events_behind: i64,
    /// The oldest event not yet passed.
    pub oldest_behind: Option<OffsetDateTime>,
    /// Rows of `tenancy.failed_events2` for the projection.
    pub failed_events: i64,
}

/// A domain add of the instance with an instance that has an earlier add of the same
/// domain not yet projected (the blocker), and whether the blocker has a cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitingAdd {
    /// The waiting `instance.domain.added` event.
    pub add: SortKey,
    /// The instance that claimed the domain earlier and is not yet projected past it.
    pub blocker: String,
    /// Whether the blocker was ever projected (else it has not started).
    pub blocker_has_cursor: bool,
}

/// One projection's state, by name, over the events it reads.
#[derive(Debug, Clone)]
pub struct ProjectionState {
    name: &'static str,
    aggregate_types: Vec<String>,
    event_types: Vec<String>,
}

fn sort_key(
    instance_id: &str,
    (position, in_tx_order, aggregate_type, aggregate_id, sequence): (
        Decimal,
        i32,
        String,
        String,
        i64,
    ),
) -> SortKey {
    SortKey {
        position,
        in_tx_order,
        instance_id: instance_id.to_owned(),
        aggregate_type,
        aggregate_id,
        sequence,
    }
}

impl ProjectionState {
    /// The state of projection `name`, which reads events of `aggregate_types` and
    /// `event_types`.
    pub fn new(name: &'static str, aggregate_types: Vec<String>, event_types: Vec<String>) -> Self {
        Self {
            name,
            aggregate_types,
            event_types,
        }
    }

    fn lock_key(&self) -> String {
        format!("tenancy.projection:{}", self.name)
    }

    /// Takes the instance's lock for this transaction unless another worker holds it.
    pub async fn try_lock(&self, conn: &mut PgConnection, instance_id: &str) -> Result<bool> {
        sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(hashtext($1), hashtext($2))")
            .bind(self.lock_key())
            .bind(instance_id)
            .fetch_one(conn)
            .await
            .map_err(on_constraint)
    }

    /// Waits for the instance's lock, for this transaction.
    pub async fn lock(&self, conn: &mut PgConnection, instance_id: &str) -> Result<()> {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1), hashtext($2))")
            .bind(self.lock_key())
            .bind(instance_id)
            .execute(conn)
            .await
            .map_err(on_constraint)
            .map(drop)
    }

    /// The sort key of the last event the instance's projection passed.
    pub async fn cursor(
        &self,
        conn: &mut PgConnection,
        instance_id: &str,
    ) -> Result<Option<SortKey>> {
        Ok(self
            .cursors(conn, &[instance_id.to_owned()])
            .await?
            .remove(instance_id))
    }

    /// Moves the instance's cursor to `event`.
    pub async fn set_cursor(&self, conn: &mut PgConnection, event: &StoredEvent) -> Result<()> {
        self.set_cursors(conn, &[event]).await
    }

    /// True when the instance's cursor has passed `event`.
    pub async fn has_passed(&self, conn: &mut PgConnection, event: &StoredEvent) -> Result<bool> {
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM tenancy.current_states WHERE projection_name = $1 AND instance_id = $2
                 AND (\"position\", in_tx_order, instance_id, aggregate_type, aggregate_id, \"sequence\")
                     >= ($3, $4, $2, $5, $6, $7))",
        )
        .bind(self.name)
        .bind(&event.instance_id)
        .bind(event.position)
        .bind(event.in_tx_order)
        .bind(&event.aggregate_type)
        .bind(&event.aggregate_id)
        .bind(event.sequence)
        .fetch_one(conn)
        .await
        .map_err(on_constraint)
    }

    /// The instance's failed events with their attempts so far.
    pub async fn failures(
        &self,
        conn: &mut PgConnection,
        instance_id: &str,
    ) -> Result<HashMap<FailureKey, i16>> {
        Ok(self
            .failures_among(conn, &[instance_id.to_owned()])
            .await?
            .remove(instance_id)
            .unwrap_or_default())
    }

    /// Records `attempts` more failed attempts of `event`; returns the attempts so far.
    pub async fn record_failure(
        &self,
        conn: &mut PgConnection,
        event: &StoredEvent,
        error: &str,
        attempts: i16,
    ) -> Result<i16> {
        sqlx::query_scalar(
            "INSERT INTO tenancy.failed_events2 (projection_name, instance_id, aggregate_type, aggregate_id,
                 failed_sequence, event_creation_date, failure_count, error, last_failed)
             VALUES ($1, $2, $3, $4, $5, $6, $8, $7, now())
             ON CONFLICT (projection_name, instance_id, aggregate_type, aggregate_id, failed_sequence)
             DO UPDATE SET failure_count = tenancy.failed_events2.failure_count + EXCLUDED.failure_count,
                 error = EXCLUDED.error, last_failed = now()
             RETURNING failure_count",
        )
        .bind(self.name)
        .bind(&event.instance_id)
        .bind(&event.aggregate_type)
        .bind(&event.aggregate_id)
        .bind(event.sequence)
        .bind(event.created_at)
        .bind(error)
        .bind(attempts)
        .fetch_one(conn)
        .await
        .map_err(on_constraint)
    }

    /// Forgets a failed event; true when there was one.
    pub async fn delete_failure(
        &self,
        conn: &mut PgConnection,
        instance_id: &str,
        (aggregate_type, aggregate_id, sequence): (&str, &str, i64),
    ) -> Result<bool> {
        let done = sqlx::query(
            "DELETE FROM tenancy.failed_events2 WHERE projection_name = $1 AND instance_id = $2
             AND aggregate_type = $3 AND aggregate_id = $4 AND failed_sequence = $5",
        )
        .bind(self.name)
        .bind(instance_id)
        .bind(aggregate_type)
        .bind(aggregate_id)
        .bind(sequence)
        .execute(conn)
        .await
        .map_err(on_constraint)?;
        Ok(done.rows_affected() > 0)
    }

    /// Every failed event, by instance and time.
    pub async fn failed(&self, pool: &PgPool) -> Result<Vec<FailedEvent>> {
        sqlx::query_as(
            "SELECT instance_id, aggregate_type, aggregate_id, failed_sequence, event_creation_date, failure_count,
                    error, last_failed
             FROM tenancy.failed_events2 WHERE projection_name = $1
             ORDER BY instance_id, event_creation_date, aggregate_id, failed_sequence",
        )
        .bind(self.name)
        .fetch_all(pool)
        .await
        .map_err(on_constraint)
    }

    /// Cursors, events past them and failures. With `since` (the start of the oldest
    /// sweep still valid, `tenancy.sweeps`) only instances with events after it or with
    /// failed events are looked at, so the cost follows the recent events.
    pub async fn progress(&self, pool: &PgPool, since: Option<Decimal>) -> Result<Progress> {
        let (events_behind, oldest_behind): (i64, Option<OffsetDateTime>) = self
            .behind_events("count(*), min(e.created_at)", "", since)
            .fetch_one(pool)
            .await
            .map_err(on_constraint)?;
        let (instances, failed_events): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM tenancy.current_states WHERE projection_name = $1),
                    (SELECT count(*) FROM tenancy.failed_events2 WHERE projection_name = $1)",
        )
        .bind(self.name)
        .fetch_one(pool)
        .await
        .map_err(on_constraint)?;
        Ok(Progress {
            instances,
            events_behind,
            oldest_behind,
            failed_events,
        })
    }

    /// Takes or renews the lease of the projection's periodic `task` for `holder`, to last
    /// `duration` from now: true when `holder` holds it (it was free, expired or already
    /// `holder`'s). One statement; a lease held by a live other process is left alone.
    pub async fn take_lease(
        &self,
        pool: &PgPool,
        task: &str,
        holder: &str,
        duration: std::time::Duration,
    ) -> Result<bool> {
        let held: Option<bool> = sqlx::query_scalar(
            "INSERT INTO tenancy.leases (name, holder, until)
             VALUES ($1, $2, clock_timestamp() + make_interval(secs => $3))
             ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, until = EXCLUDED.until
                 WHERE tenancy.leases.holder = EXCLUDED.holder OR tenancy.leases.until < clock_timestamp()
             RETURNING true",
        )
        .bind(format!("{}:{task}", self.name))
        .bind(holder)
        .bind(duration.as_secs_f64())
        .fetch_optional(pool)
        .await
        .map_err(on_constraint)?;
        Ok(held.unwrap_or(false))
    }

    /// The instances with events of the projection after `position` (the position index:
    /// cost follows those events, not the store).
    pub async fn instances_after(&self, pool: &PgPool, position: Decimal) -> Result<Vec<String>> {
        sqlx::query_scalar(
            "SELECT DISTINCT instance_id FROM eventstore.events2
             WHERE \"position\" > $1 AND instance_id <> '' AND aggregate_type = ANY($2)",
        )
        .bind(position)
        .bind(&self.aggregate_types)
        .fetch_all(pool)
        .await
        .map_err(on_constraint)
    }

    /// Starts waiting for the lead of the projection's `task` (`<projection>:<task>`): one
    /// process at a time holds it, and when that process dies another gets it at once
    /// (a session-level advisory lock, [`tenancy_postgres::leadership`]).
    pub fn leadership(
        &self,
        pool: &PgPool,
        task: &str,
    ) -> tenancy_postgres::leadership::Leadership {
        tenancy_postgres::leadership::Leadership::wait_for(pool, format!("{}:{task}", self.name))
    }

    /// Gives up the leases `holder` holds (it stops).
    pub async fn release_leases(&self, pool: &PgPool, holder: &str) -> Result<()> {
        sqlx::query("DELETE FROM tenancy.leases WHERE holder = $1")
            .bind(holder)
            .execute(pool)
            .await
            .map_err(on_constraint)
            .map(drop)
    }

    /// The instances with events of the projection after a position that their cursor has
    /// not passed, each with its newest such event's position and order. The bound is
    /// `after`, or without it `now()` minus `lookback` seconds; either way a range of the
    /// position index, so the cost follows the events after it, not the number of
    /// instances. Instances whose failed events still get retries (`failure_count` below
    /// `retry_below`) are listed too, whatever their positions, with their cursor's.
    pub async fn behind(
        &self,
        pool: &PgPool,
        after: Option<Decimal>,
        lookback: Decimal,
        retry_below: Option<i16>,
    ) -> Result<Vec<(String, Decimal, i32)>> {
        sqlx::query_as(
            "WITH newest AS (
                 SELECT DISTINCT ON (instance_id) instance_id, \"position\", in_tx_order, aggregate_type, aggregate_id, \"sequence\"
                 FROM eventstore.events2
                 WHERE \"position\" > COALESCE($4, EXTRACT(EPOCH FROM now()) - $5) AND instance_id <> ''
                   AND aggregate_type = ANY($2) AND event_type = ANY($3)
                 ORDER BY instance_id, \"position\" DESC, in_tx_order DESC, aggregate_type DESC, aggregate_id DESC, \"sequence\" DESC)
             SELECT n.instance_id, n.\"position\", n.in_tx_order FROM newest n
             LEFT JOIN tenancy.current_states c ON c.projection_name = $1 AND c.instance_id = n.instance_id
             WHERE c.instance_id IS NULL
                OR (n.\"position\", n.in_tx_order, n.aggregate_type, n.aggregate_id, n.\"sequence\")
                   > (c.\"position\", c.in_tx_order, c.aggregate_type, c.aggregate_id, c.\"sequence\")
             UNION
             SELECT DISTINCT f.instance_id, COALESCE(c.\"position\", 0), COALESCE(c.in_tx_order, 0)
             FROM tenancy.failed_events2 f
             LEFT JOIN tenancy.current_states c ON c.projection_name = $1 AND c.instance_id = f.instance_id
             WHERE f.projection_name = $1 AND f.failure_count < $6",
        )
        .bind(self.name)
        .bind(&self.aggregate_types)
        .bind(&self.event_types)
        .bind(after)
        .bind(lookback)
        .bind(retry_below.unwrap_or(0))
        .fetch_all(pool)
        .await
        .map_err(on_constraint)
    }

    /// Those of `instance_ids` with an event of the projection that their cursor has not
    /// passed (committed ones: a notification comes at its push's commit), each with how
    /// long ago its oldest such event was pushed (by its position, the database's clock).
    /// One statement for the set, each instance an index range after its cursor, so an
    /// instance caught up costs a probe and one behind its events past the cursor, not a
    /// read of its history.
    pub async fn behind_among(
        &self,
        pool: &PgPool,
        instance_ids: &[String],
    ) -> Result<Vec<(String, std::time::Duration)>> {
        let rows: Vec<(String, f64)> = sqlx::query_as(
            "SELECT i.id, greatest(EXTRACT(EPOCH FROM clock_timestamp()) - o.oldest, 0)::float8
             FROM unnest($2::text[]) AS i(id)
             LEFT JOIN tenancy.current_states c ON c.projection_name = $1 AND c.instance_id = i.id
             CROSS JOIN LATERAL (
                 SELECT min(e.\"position\") AS oldest FROM eventstore.events2 e
                 WHERE e.instance_id = i.id AND e.aggregate_type = ANY($3) AND e.event_type = ANY($4)
                   AND e.\"position\" >= coalesce(c.\"position\", 0)
                   AND (c.instance_id IS NULL
                        OR (e.\"position\", e.in_tx_order, e.aggregate_type, e.aggregate_id, e.\"sequence\")
                           > (c.\"position\", c.in_tx_order, c.aggregate_type, c.aggregate_id, c.\"sequence\"))) o
             WHERE o.oldest IS NOT NULL",
        )
        .bind(self.name)
        .bind(instance_ids)
        .bind(&self.aggregate_types)
        .bind(&self.event_types)
        .fetch_all(pool)
        .await
        .map_err(on_constraint)?;
        Ok(rows
            .into_iter()
            .map(|(id, age)| (id, std::time::Duration::from_secs_f64(age.max(0.0))))
            .collect())
    }

    /// Where the next sweep starts (`tenancy.sweeps`); `None`: it walks every instance.
    pub async fn swept_from(&self, pool: &PgPool) -> Result<Option<Decimal>> {
        sqlx::query_scalar("SELECT swept_from FROM tenancy.sweeps WHERE projection_name = $1")
            .bind(self.name)
            .fetch_optional(pool)
            .await
            .map_err(on_constraint)
    }

    /// Records where the next sweep starts.
    pub async fn set_swept_from(&self, pool: &PgPool, position: Decimal) -> Result<()> {
        sqlx::query(
            "INSERT INTO tenancy.sweeps (projection_name, swept_from) VALUES ($1, $2)
             ON CONFLICT (projection_name) DO UPDATE SET swept_from = EXCLUDED.swept_from, last_swept = now()",
        )
        .bind(self.name)
        .bind(position)
        .execute(pool)
        .await
        .map_err(on_constraint)
        .map(drop)
    }

    /// Records where sweeps start unless a position is recorded already.
    pub async fn start_sweeps_at(&self, pool: &PgPool, position: Decimal) -> Result<()> {
        sqlx::query(
            "INSERT INTO tenancy.sweeps (projection_name, swept_from) VALUES ($1, $2)
             ON CONFLICT (projection_name) DO NOTHING",
        )
        .bind(self.name)
        .bind(position)
        .execute(pool)
        .await
        .map_err(on_constraint)
        .map(drop)
    }

    /// The lowest cursor position among `instance_ids` (0 when one has no cursor).
    pub async fn lowest_cursor(&self, pool: &PgPool, instance_ids: &[String]) -> Result<Decimal> {
        sqlx::query_scalar(
            "SELECT COALESCE(min(COALESCE(c.\"position\", 0)), 0) FROM unnest($2::text[]) AS i(id)
             LEFT JOIN tenancy.current_states c ON c.projection_name = $1 AND c.instance_id = i.id",
        )
        .bind(self.name)
        .bind(instance_ids)
        .fetch_one(pool)
        .await
        .map_err(on_constraint)
    }

    /// Per instance behind: its events past its cursor and the creation time of the oldest
    /// of them (as [`ProjectionState::progress`]; instances caught up are absent).
    pub async fn lag_by_instance(
        &self,
        pool: &PgPool,
        since: Option<Decimal>,
    ) -> Result<Vec<(String, i64, OffsetDateTime)>> {
        self.behind_events(
            "e.instance_id, count(*), min(e.created_at)",
            "GROUP BY e.instance_id",
            since,
        )
        .fetch_all(pool)
        .await
        .map_err(on_constraint)
    }

    /// A query over the events past their instance's cursor, selecting `select`. Without
    /// `since` it reads every event of the projection. With it, only the instances with
    /// events after `since` or with failed events are looked at: the sweep's invariant
    /// (`tenancy.sweeps`) is that every other instance has passed all its events, so the
    /// answer is the same and the cost follows the recent events, not the store.
    fn behind_events<T>(
        &self,
        select: &str,
        group_by: &str,
        since: Option<Decimal>,
    ) -> sqlx::query::QueryAs<'static, sqlx::Postgres, T, sqlx::postgres::PgArguments>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>,
    {
        let candidates = if since.is_some() {
            "AND e.instance_id IN (
                 SELECT instance_id FROM eventstore.events2
                 WHERE \"position\" > $4 AND instance_id <> '' AND aggregate_type = ANY($2) AND event_type = ANY($3)
                 UNION
                 SELECT instance_id FROM tenancy.failed_events2 WHERE projection_name = $1)"
        } else {
            "AND $4::numeric IS NULL"
        };
        // `select`, `group_by` and `candidates` are this module's constants.
        let sql = format!(
            "SELECT {select} FROM eventstore.events2 e
             LEFT JOIN tenancy.current_states c ON c.projection_name = $1 AND c.instance_id = e.instance_id
             WHERE e.instance_id <> '' AND e.aggregate_type = ANY($2) AND e.event_type = ANY($3)
               {candidates}
               AND (c.instance_id IS NULL
                    OR (e.\"position\", e.in_tx_order, e.instance_id, e.aggregate_type, e.aggregate_id, e.\"sequence\")
                       > (c.\"position\", c.in_tx_order, c.instance_id, c.aggregate_type, c.aggregate_id, c.\"sequence\"))
             {group_by}"
        );
        sqlx::query_as(AssertSqlSafe(sql))
            .bind(self.name)
            .bind(self.aggregate_types.clone())
            .bind(self.event_types.clone())
            .bind(since)
    }

    /// Empties every table of the registry and forgets the projection's cursors and
    /// failures, in one transaction that no worker's cursor write can interleave with.
    /// Returns the newest position in the store at that moment.
    pub async fn reset(&self, pool: &PgPool) -> Result<Option<Decimal>> {
        let mut tx = pool.begin().await.map_err(on_constraint)?;
        sqlx::query("LOCK TABLE tenancy.current_states IN EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await
            .map_err(on_constraint)?;
        // Names from the registry, not from input.
        let tables: Vec<&str> = Table::ALL.iter().rev().map(|t| t.name()).collect();
        sqlx::query(AssertSqlSafe(format!(
            "TRUNCATE {} RESTART IDENTITY",
            tables.join(", ")
        )))
        .execute(&mut *tx)
        .await
        .map_err(on_constraint)?;
        for table in tenancy_postgres::generation::BOOKKEEPING {
            sqlx::query(AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE projection_name = $1"
            )))
            .bind(self.name)
            .execute(&mut *tx)
            .await
            .map_err(on_constraint)?;
        }
        let target = newest_position(&mut tx).await?;
        tx.commit().await.map_err(on_constraint)?;
        Ok(target)
    }

    /// Among `instance_ids`, those this transaction now holds the lock of (the others are
    /// held by another worker or process). One statement for the set.
    pub async fn try_lock_all(
        &self,
        conn: &mut PgConnection,
        instance_ids: &[String],
    ) -> Result<Vec<String>> {
        sqlx::query_scalar(
            "SELECT id FROM unnest($2::text[]) AS i(id)
             WHERE pg_try_advisory_xact_lock(hashtext($1), hashtext(id))",
        )
        .bind(self.lock_key())
        .bind(instance_ids)
        .fetch_all(conn)
        .await
        .map_err(on_constraint)
    }

    /// Among `instance_ids`, the untouched ones ([`ProjectionState::is_untouched`]) with at
    /// most `limit` events of the projection's aggregates, each with that number. One
    /// statement for the set: a probe per instance and table, no per-instance round trip.
    pub async fn untouched_among(
        &self,
        conn: &mut PgConnection,
        instance_ids: &[String],
        limit: u32,
    ) -> Result<Vec<(String, i64)>> {
        sqlx::query_as(
            "SELECT i.id, n.events FROM unnest($2::text[]) AS i(id)
             CROSS JOIN LATERAL (SELECT count(*) AS events FROM (
                 SELECT 1 FROM eventstore.events2 e
                 WHERE e.instance_id = i.id AND e.aggregate_type = ANY($3) LIMIT $4 + 1) t) n
             WHERE n.events <= $4
               AND NOT EXISTS (SELECT 1 FROM tenancy.current_states WHERE projection_name = $1 AND instance_id = i.id)
               AND NOT EXISTS (SELECT 1 FROM tenancy.failed_events2 WHERE projection_name = $1 AND instance_id = i.id)
               AND NOT EXISTS (SELECT 1 FROM instances WHERE id = i.id)
               AND NOT EXISTS (SELECT 1 FROM organizations WHERE instance_id = i.id)
               AND NOT EXISTS (SELECT 1 FROM instance_domains WHERE instance_id = i.id)
               AND NOT EXISTS (SELECT 1 FROM org_domains WHERE instance_id = i.id)
               AND NOT EXISTS (SELECT 1 FROM domains WHERE instance_id = i.id)",
        )
        .bind(self.name)
        .bind(instance_ids)
        .bind(&self.aggregate_types)
        .bind(i64::from(limit))
        .fetch_all(conn)
        .await
        .map_err(on_constraint)
    }

    /// Moves the cursor of each event's instance to that event (one per instance), in one
    /// statement.
    pub async fn set_cursors(
        &self,
        conn: &mut PgConnection,
        events: &[&StoredEvent],
    ) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let column =
            |f: fn(&StoredEvent) -> String| events.iter().map(|e| f(e)).collect::<Vec<_>>();
        let positions: Vec<Decimal> = events.iter().map(|e| e.position).collect();
        let orders: Vec<i32> = events.iter().map(|e| e.in_tx_order).collect();
        let sequences: Vec<i64> = events.iter().map(|e| e.sequence).collect();
        let dates: Vec<OffsetDateTime> = events.iter().map(|e| e.created_at).collect();
        sqlx::query(
            "INSERT INTO tenancy.current_states (projection_name, instance_id, \"position\", in_tx_order,
                 aggregate_type, aggregate_id, \"sequence\", event_date, last_updated)
             SELECT $1, c.* , now() FROM unnest($2::text[], $3::numeric[], $4::int[], $5::text[], $6::text[],
                 $7::bigint[], $8::timestamptz[]) AS c
             ON CONFLICT (projection_name, instance_id) DO UPDATE SET \"position\" = EXCLUDED.\"position\",
                 in_tx_order = EXCLUDED.in_tx_order, aggregate_type = EXCLUDED.aggregate_type,
                 aggregate_id = EXCLUDED.aggregate_id, \"sequence\" = EXCLUDED.\"sequence\",
                 event_date = EXCLUDED.event_date, last_updated = now()",
        )
        .bind(self.name)
        .bind(column(|e| e.instance_id.clone()))
        .bind(positions)
        .bind(orders)
        .bind(column(|e| e.aggregate_type.clone()))
        .bind(column(|e| e.aggregate_id.clone()))
        .bind(sequences)
        .bind(dates)
        .execute(conn)
        .await
        .map_err(on_constraint)
        .map(drop)
    }

    /// True when the instance has no cursor, failure or row, and — unless `known` — at
    /// most `limit` events of the projection's aggregates.
    pub async fn is_untouched(
        &self,
        conn: &mut PgConnection,
        instance_id: &str,
        limit: u32,
        known: bool,
    ) -> Result<bool> {
        sqlx::query_scalar(
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
        .bind(self.name)
        .bind(instance_id)
        .bind(&self.aggregate_types)
        .bind(i64::from(limit))
        .bind(known)
        .fetch_one(conn)
        .await
        .map_err(on_constraint)
    }

    /// In order per instance, the custom domain adds of `instance_ids` after `after`
    /// (exclusive) and up to `until` (inclusive), each with every other instance that has
    /// an earlier add of the same domain its projection has not passed (index
    /// `events2_tenancy_instance_domain_added`). Events tenancy wrote count only up to
    /// `replay_until` (a rebuild replays them), else not at all.
    pub async fn waiting_adds(
        &self,
        conn: &mut PgConnection,
        instance_ids: &[String],
        after: Option<&SortKey>,
        until: Option<Decimal>,
        replay_until: Option<Decimal>,
    ) -> Result<Vec<WaitingAdd>> {
        type Row = (String, Decimal, i32, String, String, i64, String, bool);
        let sql = format!(
            "SELECT a.instance_id, a.\"position\", a.in_tx_order, a.aggregate_type, a.aggregate_id, a.\"sequence\",
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
                   AND b.instance_id <> a.instance_id
                   AND (NOT {written_b} OR b.\"position\" <= $9)
                 OFFSET 0) b
             LEFT JOIN tenancy.current_states c
                 ON c.projection_name = $1 AND c.instance_id = b.instance_id
             WHERE a.instance_id = ANY($2) AND a.aggregate_type = 'instance' AND a.event_type = 'instance.domain.added'
               AND (NOT {written_a} OR a.\"position\" <= $9)
               AND ($3::numeric IS NULL
                    OR (a.\"position\", a.in_tx_order, a.aggregate_type, a.aggregate_id, a.\"sequence\")
                       > ($3, $4, $5, $6, $7))
               AND ($8::numeric IS NULL OR a.\"position\" <= $8)
               AND (c.instance_id IS NULL
                    OR (b.\"position\", b.in_tx_order, b.aggregate_type, b.aggregate_id, b.\"sequence\")
                       > (c.\"position\", c.in_tx_order, c.aggregate_type, c.aggregate_id, c.\"sequence\"))
             ORDER BY a.instance_id, a.\"position\", a.in_tx_order, a.aggregate_type, a.aggregate_id, a.\"sequence\"",
            written_a = written_by_tenancy("a"),
            written_b = written_by_tenancy("b"),
        );
        let rows: Vec<Row> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(self.name)
            .bind(instance_ids)
            .bind(after.map(|k| k.position))
            .bind(after.map(|k| k.in_tx_order))
            .bind(after.map(|k| k.aggregate_type.as_str()))
            .bind(after.map(|k| k.aggregate_id.as_str()))
            .bind(after.map(|k| k.sequence))
            .bind(until)
            .bind(replay_until)
            .fetch_all(conn)
            .await
            .map_err(on_constraint)?;
        Ok(rows
            .into_iter()
            .map(
                |(instance_id, p, o, t, id, s, blocker, blocker_has_cursor)| WaitingAdd {
                    add: sort_key(&instance_id, (p, o, t, id, s)),
                    blocker,
                    blocker_has_cursor,
                },
            )
            .collect())
    }

    /// After an insert of `instance_id` failed on a custom domain of `domains` (lower-cased):
    /// true when another instance holding one of them has not passed all its instance
    /// events up to `position` (it may release the domain on the way), or when no other
    /// instance holds any of them any more (released between the failed insert and this
    /// check). Either way the insert waits and is tried again, rather than failing. Used by
    /// the bulk catch-up (the instance's last event) and by batches (the adding event).
    pub async fn holder_is_behind(
        &self,
        conn: &mut PgConnection,
        instance_id: &str,
        domains: &[String],
        position: Decimal,
    ) -> Result<bool> {
        sqlx::query_scalar(
            "WITH holders AS (
                 SELECT instance_id FROM instance_domains
                 WHERE lower(domain COLLATE \"C\") = ANY($2) AND type = 'custom' AND instance_id <> $3
                 UNION
                 SELECT instance_id FROM domains
                 WHERE lower(domain COLLATE \"C\") = ANY($2) AND org_id IS NULL AND deleted_at IS NULL AND instance_id <> $3)
             SELECT NOT EXISTS (SELECT 1 FROM holders) OR EXISTS (
                 SELECT 1 FROM holders h
                 LEFT JOIN tenancy.current_states c ON c.projection_name = $1 AND c.instance_id = h.instance_id
                 WHERE EXISTS (
                     SELECT 1 FROM eventstore.events2 e
                     WHERE e.instance_id = h.instance_id AND e.aggregate_type = 'instance'
                       AND e.\"position\" <= $4
                       AND (c.instance_id IS NULL
                            OR (e.\"position\", e.in_tx_order, e.aggregate_type, e.aggregate_id, e.\"sequence\")
                               > (c.\"position\", c.in_tx_order, c.aggregate_type, c.aggregate_id, c.\"sequence\"))))",
        )
        .bind(self.name)
        .bind(domains)
        .bind(instance_id)
        .bind(position)
        .fetch_one(conn)
        .await
        .map_err(on_constraint)
    }
}

/// A custom domain add in a batch of several instances, for [`ProjectionState::blocked_adds`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingAdd {
    /// The adding instance.
    pub instance_id: String,
    /// The domain, as the event's payload has it.
    pub domain: String,
    /// The add's position.
    pub position: Decimal,
    /// The add's order in its transaction.
    pub in_tx_order: i32,
}

/// The reads of the projection's ordered catch-up (several instances in the store's global
/// order, `tenancy-projection`'s `ordered`).
impl ProjectionState {
    /// The cursors of those of `instance_ids` that have one.
    pub async fn cursors(
        &self,
        conn: &mut PgConnection,
        instance_ids: &[String],
    ) -> Result<HashMap<String, SortKey>> {
        let rows: Vec<(String, Decimal, i32, String, String, i64)> = sqlx::query_as(
            "SELECT instance_id, \"position\", in_tx_order, aggregate_type, aggregate_id, \"sequence\"
             FROM tenancy.current_states WHERE projection_name = $1 AND instance_id = ANY($2)",
        )
        .bind(self.name)
        .bind(instance_ids)
        .fetch_all(conn)
        .await
        .map_err(on_constraint)?;
        Ok(rows
            .into_iter()
            .map(|(i, p, o, t, id, s)| {
                let key = sort_key(&i, (p, o, t, id, s));
                (i, key)
            })
            .collect())
    }

    /// The failed events of `instance_ids` with their attempts so far, by instance.
    pub async fn failures_among(
        &self,
        conn: &mut PgConnection,
        instance_ids: &[String],
    ) -> Result<HashMap<String, HashMap<FailureKey, i16>>> {
        let rows: Vec<(String, String, String, i64, i16)> = sqlx::query_as(
            "SELECT instance_id, aggregate_type, aggregate_id, failed_sequence, failure_count
             FROM tenancy.failed_events2 WHERE projection_name = $1 AND instance_id = ANY($2)",
        )
        .bind(self.name)
        .bind(instance_ids)
        .fetch_all(conn)
        .await
        .map_err(on_constraint)?;
        let mut failures: HashMap<String, HashMap<FailureKey, i16>> = HashMap::new();
        for (instance, t, id, seq, count) in rows {
            failures
                .entry(instance)
                .or_default()
                .insert((t, id, seq), count);
        }
        Ok(failures)
    }

    /// The custom domains that those of `instance_ids` with a cursor may still take or
    /// give up up to `until`: the domains of their instance domain adds and removals past
    /// the cursor, and — for an instance whose removal is past its cursor — the custom
    /// domains it holds in the tables. Two instances sharing one must be projected in the
    /// store's order. (instance, lower-cased domain) pairs.
    pub async fn unprojected_custom_domains(
        &self,
        conn: &mut PgConnection,
        instance_ids: &[String],
        until: Option<Decimal>,
    ) -> Result<Vec<(String, String)>> {
        sqlx::query_as(
            "WITH behind AS (
                 SELECT c.instance_id, e.event_type, lower(e.payload ->> 'domain') AS domain
                 FROM tenancy.current_states c
                 JOIN eventstore.events2 e ON e.instance_id = c.instance_id AND e.aggregate_type = 'instance'
                  AND e.event_type IN ('instance.domain.added', 'instance.domain.removed', 'instance.removed')
                  AND (e.\"position\", e.in_tx_order, e.aggregate_type, e.aggregate_id, e.\"sequence\")
                      > (c.\"position\", c.in_tx_order, c.aggregate_type, c.aggregate_id, c.\"sequence\")
                  AND ($3::numeric IS NULL OR e.\"position\" <= $3)
                 WHERE c.projection_name = $1 AND c.instance_id = ANY($2))
             SELECT instance_id, domain FROM behind WHERE event_type <> 'instance.removed' AND domain IS NOT NULL
             UNION
             SELECT d.instance_id, lower(d.domain COLLATE \"C\") FROM instance_domains d
             WHERE d.type = 'custom'
               AND d.instance_id IN (SELECT instance_id FROM behind WHERE event_type = 'instance.removed')",
        )
        .bind(self.name)
        .bind(instance_ids)
        .bind(until)
        .fetch_all(conn)
        .await
        .map_err(on_constraint)
    }

    /// Among `adds` (instances projected together, in the store's order), those that must
    /// wait: an instance outside `members` has an earlier add of the same domain its
    /// projection has not passed (the members' earlier adds come first in their own order).
    /// Each as (index in `adds`, the blocker, whether the blocker has a cursor). Events
    /// tenancy wrote count only up to `replay_until` (a rebuild replays them), else not at
    /// all.
    pub async fn blocked_adds(
        &self,
        conn: &mut PgConnection,
        adds: &[PendingAdd],
        members: &[String],
        replay_until: Option<Decimal>,
    ) -> Result<Vec<(usize, String, bool)>> {
        if adds.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT (a.n - 1)::bigint, b.instance_id, c.instance_id IS NOT NULL
             FROM unnest($2::text[], $3::text[], $4::numeric[], $5::int[]) WITH ORDINALITY
                  AS a(instance_id, domain, \"position\", in_tx_order, n)
             CROSS JOIN LATERAL (
                 SELECT b.instance_id, b.\"position\", b.in_tx_order, b.aggregate_type, b.aggregate_id, b.\"sequence\"
                 FROM eventstore.events2 b
                 WHERE b.aggregate_type = 'instance' AND b.event_type = 'instance.domain.added'
                   AND lower(b.payload ->> 'domain') = lower(a.domain)
                   AND (b.\"position\", b.in_tx_order) < (a.\"position\", a.in_tx_order)
                   AND b.instance_id <> a.instance_id AND b.instance_id <> ALL($6)
                   AND (NOT {written_b} OR b.\"position\" <= $7)
                 OFFSET 0) b
             LEFT JOIN tenancy.current_states c
                 ON c.projection_name = $1 AND c.instance_id = b.instance_id
             WHERE c.instance_id IS NULL
                OR (b.\"position\", b.in_tx_order, b.aggregate_type, b.aggregate_id, b.\"sequence\")
                   > (c.\"position\", c.in_tx_order, c.aggregate_type, c.aggregate_id, c.\"sequence\")
             ORDER BY 1",
            written_b = written_by_tenancy("b"),
        );
        let rows: Vec<(i64, String, bool)> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(self.name)
            .bind(
                adds.iter()
                    .map(|a| a.instance_id.clone())
                    .collect::<Vec<_>>(),
            )
            .bind(adds.iter().map(|a| a.domain.clone()).collect::<Vec<_>>())
            .bind(adds.iter().map(|a| a.position).collect::<Vec<_>>())
            .bind(adds.iter().map(|a| a.in_tx_order).collect::<Vec<_>>())
            .bind(members)
            .bind(replay_until)
            .fetch_all(conn)
            .await
            .map_err(on_constraint)?;
        Ok(rows
            .into_iter()
            .map(|(n, blocker, has_cursor)| {
                (
                    usize::try_from(n).unwrap_or(usize::MAX),
                    blocker,
                    has_cursor,
                )
            })
            .collect())
    }
}

/// Every instance with events (a loose index scan over the primary key, not a scan of the
/// whole table).
pub async fn instances(pool: &PgPool) -> Result<Vec<String>> {
    sqlx::query_scalar(
        "WITH RECURSIVE ids AS (
             SELECT min(instance_id) AS id FROM eventstore.events2 WHERE instance_id > ''
             UNION ALL
             SELECT (SELECT min(instance_id) FROM eventstore.events2 WHERE instance_id > ids.id)
             FROM ids WHERE ids.id IS NOT NULL)
         SELECT id FROM ids WHERE id IS NOT NULL",
    )
    .fetch_all(pool)
    .await
    .map_err(on_constraint)
}

/// The newest position in the store now.
pub async fn newest_position(conn: &mut PgConnection) -> Result<Option<Decimal>> {
    sqlx::query_scalar("SELECT max(\"position\") FROM eventstore.events2")
        .fetch_one(conn)
        .await
        .map_err(on_constraint)
}
