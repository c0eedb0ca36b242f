//! `projections rebuild`, side by side: the next generation of the tables is filled from
//! the events (bulk for fresh instances, as a prefill) while the live tables keep serving
//! reads and keep being projected; when it holds everything the live one holds, one short
//! transaction makes it live ([`tenancy_postgres::generation`]).
//!
//! - **Resumable**: the next generation and its cursors are durable; killed at any point,
//!   a rerun continues from them.
//! - **One at a time**: a session advisory lock per database; a second rebuild is refused
//!   with the process holding it.
//! - v3 commands write only the live tables: the next generation replays their events too
//!   (all of them, whatever their position), and the switch waits until it has.

use std::time::Duration;

use rust_decimal::Decimal;
use sqlx::postgres::PgPoolOptions;
use sqlx::{ConnectOptions as _, PgConnection};
use tenancy_core::{Error, Result};
use tenancy_postgres::generation::{self, Names, Switch};
use tenancy_postgres::{layout, on_constraint};

use crate::engine::{Engine, Progress};
use crate::outcome::{Outcome, ReplayV3};
use crate::relational;

/// How a side-by-side rebuild ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rebuilt {
    /// What filling the next generation did, over all rounds.
    pub outcome: Outcome,
    /// Rounds of catching up before the switch found nothing missing.
    pub rounds: u32,
    /// Whether a next generation of an interrupted rebuild was continued.
    pub resumed: bool,
    /// How long the live tables were locked for the switch that succeeded (from asking
    /// for the lock to the commit): the longest a reader waited.
    pub frozen_for: Duration,
}

const LOCK: &str = "tenancy.rebuild";
/// How long readers may wait for the last catch-up at a switch before it is let go.
const FROZEN_AT_MOST: Duration = Duration::from_millis(500);
const NAMES: Names<'static> = Names {
    live: relational::NAME,
    next: relational::NEXT_NAME,
    previous: relational::PREVIOUS_NAME,
};

impl Engine {
    /// Rebuilds the tables side by side and switches (see the module). Fails, leaving
    /// the next generation for inspection and a rerun, when an event fails there.
    pub async fn rebuild_side_by_side(&self, progress: Progress) -> Result<Rebuilt> {
        let options = (*self.pool().connect_options()).clone();
        let mut guard = options.connect().await.map_err(on_constraint)?;
        take_rebuild_lock(&mut guard).await?;
        self.rebuild_holding(guard, progress, None).await
    }

    /// Switches back to the generation the last switch replaced (a rollback): it becomes
    /// the next generation again, is caught up from its cursors — the events since it was
    /// replaced, v3 commands' included — and switched in as a rebuild's would be. The
    /// generation it replaces is kept as the previous one, so this can be undone the same
    /// way. Refused while a rebuild is unfinished or when there is no previous generation.
    pub async fn switch_back(&self, progress: Progress) -> Result<Rebuilt> {
        let options = (*self.pool().connect_options()).clone();
        let mut guard = options.connect().await.map_err(on_constraint)?;
        take_rebuild_lock(&mut guard).await?;
        let switched_out_at = generation::previous_to_next(&mut guard, NAMES).await?;
        self.rebuild_holding(guard, progress, Some(switched_out_at))
            .await
    }

    /// The rebuild, with the rebuild lock held on `guard`. `switched_out_at`: the next
    /// generation is a former live one, replaced at that position: up to it, the rows of
    /// v3 commands are in its tables (their events are skipped, as the live projection
    /// does); after it they are not (replayed, as for any next generation).
    async fn rebuild_holding(
        &self,
        mut guard: PgConnection,
        progress: Progress,
        switched_out_at: Option<Decimal>,
    ) -> Result<Rebuilt> {
        let options = (*self.pool().connect_options()).clone();
        let layout = layout::stored(&mut guard).await?.ok_or_else(|| {
            Error::precondition("the database is not migrated: run `tenancy migrate`")
        })?;
        let resumed = generation::next_exists(&mut guard).await?;
        if !resumed {
            generation::create_next(&mut guard, &layout).await?;
        }
        let pool = PgPoolOptions::new()
            .max_connections(
                u32::try_from(self.config().workers)
                    .unwrap_or(4)
                    .saturating_add(2),
            )
            .connect_with(generation::next_options(options, &layout))
            .await
            .map_err(on_constraint)?;
        let next = Engine::new(pool.clone(), self.config().clone())
            .with_state(relational::state_named(relational::NEXT_NAME));
        let mut total = Outcome::default();
        if let Some(switched_out_at) = switched_out_at {
            total.add(
                next.run_rounds(Some(switched_out_at), None, progress.clone())
                    .await?,
            );
        }
        let mut rounds = 0;
        // The position every instance of the next generation has reached (after a round).
        let mut reached: Option<Decimal> = None;
        let result = loop {
            rounds += 1;
            let Some(target) = self.newest_position().await? else {
                // An empty store: nothing to build.
                generation::drop_next(&mut guard, relational::NEXT_NAME).await?;
                break Ok(Duration::ZERO);
            };
            // Every v3 event is replayed: its rows are in the live tables only. After the
            // first round, only the instances with events since the last one.
            let outcome = match reached {
                None => {
                    next.run_rounds(Some(target), Some(ReplayV3(Decimal::MAX)), progress.clone())
                        .await?
                }
                Some(reached) => {
                    let moved = next.state().instances_after(self.pool(), reached).await?;
                    next.run_rounds_of(
                        moved,
                        Some(target),
                        Some(ReplayV3(Decimal::MAX)),
                        progress.clone(),
                    )
                    .await?
                }
            };
            reached = Some(target);
            total.add(outcome);
            let failed = next.failed().await?;
            if !failed.is_empty() {
                break Err(Error::precondition(format!(
                    "the next generation recorded {} failed events (first: {} {} {} {}: {}); \
                     the live tables are untouched. Fix the cause and run the rebuild again \
                     (it continues), or `tenancy projections rebuild --abandon`",
                    failed.len(),
                    failed[0].instance_id,
                    failed[0].aggregate_type,
                    failed[0].aggregate_id,
                    failed[0].failed_sequence,
                    failed[0].error
                )));
            }
            next.analyze_if_stale().await?;
            // The live tables frozen, the last events are brought over, then the switch;
            // readers wait for this part only. Too slow (a burst of writes), it is let go
            // and tried again after one more round.
            let freezing = std::time::Instant::now();
            let frozen = match generation::freeze(&mut guard, &layout).await {
                Ok(frozen) => frozen,
                Err(error) => {
                    // Transactions on the live tables kept the lock from being granted
                    // within 50 ms (e.g. a long report): readers are not held up meanwhile.
                    if rounds % 100 == 0 {
                        tracing::warn!(error = %error.chain(), rounds, "the live tables could not be locked for the switch yet");
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            // Only the instances with events since the round's target.
            let last = async {
                let newest = self.newest_position().await?.unwrap_or(target);
                let moved = next.state().instances_after(self.pool(), target).await?;
                next.run_rounds_of(
                    moved,
                    Some(newest),
                    Some(ReplayV3(Decimal::MAX)),
                    progress.clone(),
                )
                .await
                .map(|outcome| (target, outcome))
            };
            match tokio::time::timeout(FROZEN_AT_MOST, last).await {
                Ok(Ok((target, outcome))) => {
                    total.add(outcome);
                    // The next generation has every event up to `target`: after the switch
                    // the sweeps start there (its position moves with its cursors).
                    next.state().start_sweeps_at(self.pool(), target).await?;
                    match frozen.finish(NAMES, target).await? {
                        Switch::Done => break Ok(freezing.elapsed()),
                        Switch::Behind(missing) => {
                            tracing::info!(
                                missing,
                                rounds,
                                "the next generation is behind; one more round"
                            );
                        }
                    }
                }
                Ok(Err(error)) => {
                    frozen.release().await?;
                    break Err(error);
                }
                Err(_) => {
                    frozen.release().await?;
                    tracing::info!(rounds, "the last catch-up took too long; one more round");
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        pool.close().await;
        let frozen_for = result?;
        self.fresh().clear();
        self.batched().clear();
        Ok(Rebuilt {
            outcome: total,
            rounds,
            resumed,
            frozen_for,
        })
    }

    /// Drops the generation the last switch replaced. True when there was one.
    pub async fn drop_previous_generation(&self) -> Result<bool> {
        let mut conn = self.pool().acquire().await.map_err(on_constraint)?;
        generation::drop_previous(&mut conn, relational::PREVIOUS_NAME).await
    }

    /// Abandons an unfinished side-by-side rebuild (drops the next generation). True
    /// when there was one.
    pub async fn abandon_rebuild(&self) -> Result<bool> {
        let options = (*self.pool().connect_options()).clone();
        let mut guard = options.connect().await.map_err(on_constraint)?;
        take_rebuild_lock(&mut guard).await?;
        generation::drop_next(&mut guard, relational::NEXT_NAME).await
    }
}

/// The database's rebuild lock for the life of `conn`, or why not: who holds it.
async fn take_rebuild_lock(conn: &mut PgConnection) -> Result<()> {
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext($1))")
        .bind(LOCK)
        .fetch_one(&mut *conn)
        .await
        .map_err(on_constraint)?;
    if locked {
        return Ok(());
    }
    let holder: Option<(i32, String, Option<String>, String)> = sqlx::query_as(
        "SELECT a.pid, coalesce(a.application_name, ''), host(a.client_addr), a.backend_start::text
         FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
         WHERE l.locktype = 'advisory' AND l.granted AND l.objid = hashtext($1)::oid
         LIMIT 1",
    )
    .bind(LOCK)
    .fetch_optional(&mut *conn)
    .await
    .map_err(on_constraint)?;
    Err(Error::precondition(match holder {
        Some((pid, application, address, since)) => format!(
            "another rebuild is running on this database: server process {pid} ({}{}), connected since {since}",
            if application.is_empty() {
                "a tenancy process"
            } else {
                &application
            },
            address.map(|a| format!(" from {a}")).unwrap_or_default(),
        ),
        None => "another rebuild is running on this database".to_owned(),
    }))
}
