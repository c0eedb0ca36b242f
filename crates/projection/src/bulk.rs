//! Catch-up of an instance the tables know nothing of yet (the migration of an existing
//! store): its events are folded in memory, with the rules of the schema, and the final
//! rows are written set-based, one statement per table, together with the cursor. Each
//! event is still applied in order and checked exactly (the same model `verify` folds); only
//! the writes of intermediate states are saved. Anything unusual — a failing or malformed
//! event, a row another instance holds — falls back to the batch path, which records,
//! retries and defers event by event.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use rust_decimal::Decimal;
use sqlx::PgConnection;
use tenancy_core::event::{EventQuery, SortKey, StoredEvent};
use tenancy_core::model::{InstanceDomain, InstanceDomainKind, ValidationType};
use tenancy_core::ports::UnitOfWork;
use tenancy_core::state::InMemoryState;
use tenancy_core::{Error, Result};
use tenancy_postgres::{PgStore, on_constraint};

use crate::claims;
use crate::engine::{Engine, Outcome, try_lock, write_cursor};
use crate::relational;

/// Instances that go through batches from now on (they have a cursor, rows, or their bulk
/// catch-up fell back), so later calls skip the check.
#[derive(Debug, Default)]
pub(crate) struct Batched(Mutex<HashSet<String>>);

impl Batched {
    fn contains(&self, instance_id: &str) -> bool {
        self.0
            .lock()
            .map(|set| set.contains(instance_id))
            .unwrap_or(true)
    }

    fn insert(&self, instance_id: &str) {
        if let Ok(mut set) = self.0.lock() {
            set.insert(instance_id.to_owned());
        }
    }
}

/// Rows the bulk catch-up wrote, and how many there were when the tables were last
/// analysed. Index choice does not depend on the statistics (tenancy_postgres::pool); the
/// selectivity estimates do (e.g. how many domains an instance has), so they are refreshed
/// whenever the bulk writes have doubled the rows since the last `ANALYZE`, instead of
/// waiting for autovacuum's next round.
#[derive(Debug, Default)]
pub(crate) struct Statistics {
    written: AtomicU64,
    analyzed_at: AtomicU64,
}

/// Below this, the statistics of analysed-empty tables serve well enough.
const ANALYZE_FROM_ROWS: u64 = 5_000;

impl Statistics {
    /// Counts `rows` written; true when this caller should refresh the statistics now.
    fn wrote(&self, rows: u64) -> bool {
        let written = self.written.fetch_add(rows, Ordering::Relaxed) + rows;
        let at = self.analyzed_at.load(Ordering::Relaxed);
        written >= ANALYZE_FROM_ROWS.max(2 * at)
            && self
                .analyzed_at
                .compare_exchange(at, written, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    /// True when rows were written since the last refresh (and claims it).
    fn stale(&self) -> bool {
        let written = self.written.load(Ordering::Relaxed);
        let at = self.analyzed_at.load(Ordering::Relaxed);
        written > at
            && self
                .analyzed_at
                .compare_exchange(at, written, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }
}

/// What the fold of an instance's events ended with.
struct Folded {
    state: InMemoryState,
    applied: u64,
    skipped: u64,
    read: u64,
    last: Option<StoredEvent>,
    /// The first event the model rejected (or could not decode): the batch path handles it.
    rejected: Option<String>,
    /// The fold ended before a domain add that must wait for another instance.
    stopped: bool,
}

impl Engine {
    /// Bulk catch-up of `instance_id` if it qualifies: no cursor, no recorded failures, no
    /// rows in any of the five tables. `None` = use batches.
    pub(crate) async fn bulk_catch_up(
        &self,
        instance_id: &str,
        target: Option<Decimal>,
    ) -> Result<Option<Outcome>> {
        let limit = self.config().bulk_limit;
        if limit == 0 || self.batched().contains(instance_id) {
            return Ok(None);
        }
        let outcome = self.try_bulk(instance_id, target, limit).await?;
        if !outcome.is_some_and(|o| o.busy) {
            // Done in bulk, or not for bulk: either way the instance continues in batches.
            self.batched().insert(instance_id);
        }
        Ok(outcome)
    }

    async fn try_bulk(
        &self,
        instance_id: &str,
        target: Option<Decimal>,
        limit: u32,
    ) -> Result<Option<Outcome>> {
        let started = Instant::now();
        let store = PgStore::new(self.pool().clone());
        let mut session = store.transaction().await?;
        if !try_lock(session.conn()?, instance_id).await? {
            session.rollback().await?;
            return Ok(Some(Outcome {
                busy: true,
                ..Outcome::default()
            }));
        }
        if !is_fresh(session.conn()?, instance_id).await? {
            session.rollback().await?;
            return Ok(None);
        }
        // Up to the first domain it may not take yet; the batches wait there.
        let stop =
            claims::first_waiting_add(session.conn()?, instance_id, None, target, None).await?;
        let folded = self.fold(instance_id, target, limit, stop.as_ref()).await?;
        let Some(last) = folded.last.as_ref() else {
            session.rollback().await?;
            return Ok(None);
        };
        if let Some(why) = &folded.rejected {
            // The events before it are written in bulk; the batch path takes over at the
            // rejected event (records, retries, skips it) rather than replaying the whole
            // history after other instances may have moved past it.
            tracing::debug!(instance_id, %why, "bulk catch-up stops before a rejected event");
        }
        let rows = match insert_rows(session.conn()?, &folded.state).await {
            Ok(rows) => rows,
            Err(Error::Internal { message, source }) => {
                let _ = session.rollback().await;
                return Err(Error::Internal { message, source });
            }
            Err(error) => {
                // Typically a custom domain another instance still holds: the batch path
                // defers or records it event by event.
                tracing::debug!(instance_id, %error, "bulk catch-up falls back to batches");
                session.rollback().await?;
                return Ok(None);
            }
        };
        write_cursor(
            session.conn()?,
            instance_id,
            Some(&last.sort_key()),
            Some(last),
        )
        .await?;
        session.commit().await?;
        if self.statistics().wrote(rows) {
            self.analyze().await?;
        }
        let outcome = Outcome {
            applied: folded.applied,
            skipped: folded.skipped,
            caught_up: !folded.stopped
                && folded.rejected.is_none()
                && folded.read < u64::from(limit),
            ..Outcome::default()
        };
        self.observe_batch(started, &outcome, Some(last.created_at));
        Ok(Some(outcome))
    }

    /// Refreshes the statistics of the tables if the bulk catch-up wrote rows since the
    /// last refresh (at the end of a prefill, so the running system starts with them).
    pub(crate) async fn analyze_if_stale(&self) -> Result<()> {
        if self.statistics().stale() {
            self.analyze().await?;
        }
        Ok(())
    }

    async fn analyze(&self) -> Result<()> {
        let started = Instant::now();
        tenancy_postgres::apply::analyze_tables(self.pool()).await?;
        tracing::debug!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "tables analysed"
        );
        Ok(())
    }

    /// Folds up to `limit` events of the instance, in order, into a fresh model, ending
    /// before `stop` if given.
    async fn fold(
        &self,
        instance_id: &str,
        target: Option<Decimal>,
        limit: u32,
        stop: Option<&SortKey>,
    ) -> Result<Folded> {
        let mut folded = Folded {
            state: InMemoryState::new(),
            applied: 0,
            skipped: 0,
            read: 0,
            last: None,
            rejected: None,
            stopped: false,
        };
        let query = EventQuery {
            instance_id: instance_id.to_owned(),
            aggregate_types: relational::aggregate_types(),
            event_types: relational::event_types(),
            max_position: target,
            limit: Some(limit),
            ..EventQuery::default()
        };
        self.events()
            .read_in_batches(&query, self.config().batch_size.max(1), |events| {
                for event in events {
                    folded.read += 1;
                    folded.stopped |= stop.is_some_and(|key| claims::is_event(&event, key));
                    if folded.rejected.is_some() || folded.stopped {
                        continue;
                    }
                    if event.written_by_v3 {
                        // Its rows were written by the v3 command itself.
                        folded.skipped += 1;
                    } else {
                        let applied = relational::changes(&event)
                            .and_then(|changes| folded.state.apply_all(&changes, event.created_at));
                        if let Err(error) = applied {
                            folded.rejected = Some(format!(
                                "{} {} sequence {}: {error}",
                                event.aggregate_type, event.aggregate_id, event.sequence
                            ));
                            continue;
                        }
                        folded.applied += 1;
                    }
                    folded.last = Some(event);
                }
                Ok(())
            })
            .await?;
        Ok(folded)
    }
}

/// Nothing of the instance anywhere yet — no cursor, no recorded failure, no row (a v3
/// command may have written rows, or a rebuild may be under way): otherwise only the batch
/// path knows how to continue. One round trip.
async fn is_fresh(conn: &mut PgConnection, instance_id: &str) -> Result<bool> {
    sqlx::query_scalar(
        "SELECT NOT (EXISTS (SELECT 1 FROM projections.current_states
                        WHERE projection_name = $2 AND instance_id = $1)
             OR EXISTS (SELECT 1 FROM zitadel.instances WHERE id = $1)
             OR EXISTS (SELECT 1 FROM zitadel.organizations WHERE instance_id = $1)
             OR EXISTS (SELECT 1 FROM zitadel.instance_domains WHERE instance_id = $1)
             OR EXISTS (SELECT 1 FROM zitadel.org_domains WHERE instance_id = $1)
             OR EXISTS (SELECT 1 FROM zitadel.domains WHERE instance_id = $1)
             OR EXISTS (SELECT 1 FROM projections.failed_events2
                        WHERE projection_name = $2 AND instance_id = $1))",
    )
    .bind(instance_id)
    .bind(relational::NAME)
    .fetch_one(conn)
    .await
    .map_err(on_constraint)
}

/// Inserts every row of `state`, one multi-row statement (UNNEST of bound arrays) per
/// table, parents first. The unified domains get their ids from the identity column, in
/// the model's order. Returns the number of rows written.
pub async fn insert_rows(conn: &mut PgConnection, state: &InMemoryState) -> Result<u64> {
    let mut rows = 0;
    let i: Vec<_> = state.all_instances().collect();
    if !i.is_empty() {
        rows += i.len() as u64;
        sqlx::query(
            "INSERT INTO zitadel.instances (id, name, default_org_id, iam_project_id, console_client_id, console_app_id,
                 default_language, created_at, updated_at, deleted_at)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                 $8::timestamptz[], $9::timestamptz[], $10::timestamptz[])",
        )
        .bind(i.iter().map(|r| r.id.to_string()).collect::<Vec<_>>())
        .bind(i.iter().map(|r| r.name.clone()).collect::<Vec<_>>())
        .bind(i.iter().map(|r| r.default_org_id.clone()).collect::<Vec<_>>())
        .bind(i.iter().map(|r| r.iam_project_id.clone()).collect::<Vec<_>>())
        .bind(i.iter().map(|r| r.console_client_id.clone()).collect::<Vec<_>>())
        .bind(i.iter().map(|r| r.console_app_id.clone()).collect::<Vec<_>>())
        .bind(i.iter().map(|r| r.default_language.clone()).collect::<Vec<_>>())
        .bind(i.iter().map(|r| r.created_at).collect::<Vec<_>>())
        .bind(i.iter().map(|r| r.updated_at).collect::<Vec<_>>())
        .bind(i.iter().map(|r| r.deleted_at).collect::<Vec<_>>())
        .execute(&mut *conn)
        .await
        .map_err(on_constraint)?;
    }
    let o: Vec<_> = state.all_organizations().collect();
    if !o.is_empty() {
        rows += o.len() as u64;
        sqlx::query(
            "INSERT INTO zitadel.organizations (instance_id, id, name, state, created_at, updated_at, deleted_at)
             SELECT a, b, c, d::zitadel.organization_state, e, f, g
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::timestamptz[], $7::timestamptz[])
                 AS t(a, b, c, d, e, f, g)",
        )
        .bind(o.iter().map(|r| r.instance_id.to_string()).collect::<Vec<_>>())
        .bind(o.iter().map(|r| r.id.to_string()).collect::<Vec<_>>())
        .bind(o.iter().map(|r| r.name.clone()).collect::<Vec<_>>())
        .bind(o.iter().map(|r| r.state.as_str().to_owned()).collect::<Vec<_>>())
        .bind(o.iter().map(|r| r.created_at).collect::<Vec<_>>())
        .bind(o.iter().map(|r| r.updated_at).collect::<Vec<_>>())
        .bind(o.iter().map(|r| r.deleted_at).collect::<Vec<_>>())
        .execute(&mut *conn)
        .await
        .map_err(on_constraint)?;
    }
    let d: Vec<_> = state.all_instance_domains().collect();
    let flags = |r: &&InstanceDomain| match r.kind {
        InstanceDomainKind::Custom {
            is_primary,
            is_generated,
        } => (Some(is_primary), Some(is_generated)),
        InstanceDomainKind::Trusted => (None, None),
    };
    if !d.is_empty() {
        rows += d.len() as u64;
        sqlx::query(
            "INSERT INTO zitadel.instance_domains (instance_id, domain, type, is_primary, is_generated, created_at, updated_at)
             SELECT a, b, c::zitadel.domain_type, d, e, f, g
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bool[], $5::bool[], $6::timestamptz[], $7::timestamptz[])
                 AS t(a, b, c, d, e, f, g)",
        )
        .bind(d.iter().map(|r| r.instance_id.to_string()).collect::<Vec<_>>())
        .bind(d.iter().map(|r| r.domain.clone()).collect::<Vec<_>>())
        .bind(d.iter().map(|r| r.kind.domain_type().as_str().to_owned()).collect::<Vec<_>>())
        .bind(d.iter().map(|r| flags(r).0).collect::<Vec<_>>())
        .bind(d.iter().map(|r| flags(r).1).collect::<Vec<_>>())
        .bind(d.iter().map(|r| r.created_at).collect::<Vec<_>>())
        .bind(d.iter().map(|r| r.updated_at).collect::<Vec<_>>())
        .execute(&mut *conn)
        .await
        .map_err(on_constraint)?;
    }
    let od: Vec<_> = state.all_org_domains().collect();
    if !od.is_empty() {
        rows += od.len() as u64;
        sqlx::query(
            "INSERT INTO zitadel.org_domains (instance_id, org_id, domain, is_verified, is_primary, validation_type, created_at, updated_at)
             SELECT a, b, c, d, e, f::zitadel.domain_validation_type, g, h
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bool[], $5::bool[], $6::text[], $7::timestamptz[], $8::timestamptz[])
                 AS t(a, b, c, d, e, f, g, h)",
        )
        .bind(od.iter().map(|r| r.instance_id.to_string()).collect::<Vec<_>>())
        .bind(od.iter().map(|r| r.org_id.to_string()).collect::<Vec<_>>())
        .bind(od.iter().map(|r| r.domain.clone()).collect::<Vec<_>>())
        .bind(od.iter().map(|r| r.is_verified).collect::<Vec<_>>())
        .bind(od.iter().map(|r| r.is_primary).collect::<Vec<_>>())
        .bind(od.iter().map(|r| r.validation_type.map(|v| v.as_str().to_owned())).collect::<Vec<_>>())
        .bind(od.iter().map(|r| r.created_at).collect::<Vec<_>>())
        .bind(od.iter().map(|r| r.updated_at).collect::<Vec<_>>())
        .execute(&mut *conn)
        .await
        .map_err(on_constraint)?;
    }
    let u: Vec<_> = state.all_domains().collect();
    if !u.is_empty() {
        rows += u.len() as u64;
        sqlx::query(
            "INSERT INTO zitadel.domains (instance_id, org_id, domain, is_verified, is_primary, validation_type, created_at, updated_at, deleted_at)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bool[], $5::bool[], $6::int2[], $7::timestamptz[],
                 $8::timestamptz[], $9::timestamptz[])",
        )
        .bind(u.iter().map(|r| r.instance_id.to_string()).collect::<Vec<_>>())
        .bind(u.iter().map(|r| r.org_id.as_ref().map(ToString::to_string)).collect::<Vec<_>>())
        .bind(u.iter().map(|r| r.domain.clone()).collect::<Vec<_>>())
        .bind(u.iter().map(|r| r.is_verified).collect::<Vec<_>>())
        .bind(u.iter().map(|r| r.is_primary).collect::<Vec<_>>())
        .bind(u.iter().map(|r| r.validation_type.map(ValidationType::ordinal)).collect::<Vec<_>>())
        .bind(u.iter().map(|r| r.created_at).collect::<Vec<_>>())
        .bind(u.iter().map(|r| r.updated_at).collect::<Vec<_>>())
        .bind(u.iter().map(|r| r.deleted_at).collect::<Vec<_>>())
        .execute(&mut *conn)
        .await
        .map_err(on_constraint)?;
    }
    Ok(rows)
}
