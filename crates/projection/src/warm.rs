//! Warm connections for the catch-up of a notified instance.
//!
//! A PostgreSQL session runs its first statements slowly: it loads the catalog entries of
//! every table, index and function they touch, and sqlx prepares each statement (a round
//! trip of its own). The catch-up of one pushed event measured 10–13 ms on a connection
//! that had not run one before, 3.5–4 ms on one that had. The pool hands its idle
//! connections out in turn (first in, first out), so a process that starts, or takes the
//! poll's lead from one that died, met a cold connection at each of its first catch-ups,
//! one per connection of its pool: the slow pushes of the replica benchmarks.
//!
//! [`Engine::warm_up`] runs the statements of such a catch-up once on each idle connection
//! of the pool that has not served one: for an instance that does not exist, in a
//! transaction that is rolled back, so nothing is written and nobody waits for its locks.
//! Continuous mode runs it in the background ([`Warming`]) after each sweep tick (what the
//! pool opened since is warmed) and when the process takes the poll's lead.
//!
//! In the background it gives way to pushes ([`Pushes`]): each of its steps (a read or
//! two, the batch's loads and writes) waits until no notification was heard for a
//! moment, since some process (the poll's leader) catches that push up just then. A
//! warm-up takes 8–11 ms of both cores' time in a burst; run beside a push's catch-up it
//! made that push the slowest of a replica benchmark's (benchmarks.md, chaos).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rust_decimal::Decimal;
use serde_json::json;
use sqlx::pool::PoolConnection;
use sqlx::{Acquire as _, Connection as _, Postgres};
use tenancy_core::Result;
use tenancy_core::event::{EventQuery, StoredEvent};
use tenancy_postgres::on_constraint;
use time::OffsetDateTime;

use crate::engine::Engine;
use crate::relational;

/// A connection holding this many prepared statements has served catch-ups (one prepares
/// about 20) and is left as it is.
const WARM_STATEMENTS: usize = 10;

impl Engine {
    /// Runs the statements of a catch-up once on each idle connection of the pool that
    /// has not served one (see the module), one connection at a time, `pause` before
    /// each: a background chore that should not take the cores from the catch-ups of the
    /// process that leads. Returns how many connections it warmed.
    pub async fn warm_up(&self, pause: Duration) -> Result<usize> {
        self.warm_up_between(pause, None).await
    }

    /// [`Engine::warm_up`], each step after a quiet moment of `pushes` if given.
    async fn warm_up_between(&self, pause: Duration, pushes: Option<&Pushes>) -> Result<usize> {
        let mut warmed = 0;
        // The pool hands out the connection idle the longest and takes a returned one
        // back last: taken one at a time, each idle connection comes once.
        for n in 0..self.pool().size() as usize {
            tokio::time::sleep(pause).await;
            let Some(conn) = self.pool().try_acquire() else {
                continue;
            };
            if conn.cached_statements_size() < WARM_STATEMENTS {
                self.warm_connection(conn, n, pushes).await?;
                warmed += 1;
            }
        }
        Ok(warmed)
    }

    /// A catch-up's statements for a made-up instance, rolled back.
    async fn warm_connection(
        &self,
        mut conn: PoolConnection<Postgres>,
        n: usize,
        pushes: Option<&Pushes>,
    ) -> Result<()> {
        let quiet = || async {
            if let Some(pushes) = pushes {
                pushes.quiet().await;
            }
        };
        quiet().await;
        let mut session = conn.begin().await.map_err(on_constraint)?;
        let instance = made_up_instance(n);
        let state = self.state();
        // The bulk path's check, which the first catch-up of an instance in a process runs.
        state
            .is_untouched(
                &mut session,
                &instance,
                self.config().bulk_limit.max(1),
                false,
            )
            .await?;
        // Both forms of each read (one instance, a set): each is a statement of its own,
        // the first for a batch, the second for the ordered and grouped paths.
        quiet().await;
        state.try_lock(&mut session, &instance).await?;
        state
            .try_lock_all(&mut session, std::slice::from_ref(&instance))
            .await?;
        quiet().await;
        let cursor = state.cursor(&mut session, &instance).await?;
        state
            .cursors(&mut session, std::slice::from_ref(&instance))
            .await?;
        quiet().await;
        state.failures(&mut session, &instance).await?;
        state
            .failures_among(&mut session, std::slice::from_ref(&instance))
            .await?;
        quiet().await;
        tenancy_eventstore::read_in(
            &mut session,
            &EventQuery {
                instance_id: instance.clone(),
                aggregate_types: relational::aggregate_types(),
                event_types: relational::event_types(),
                after: cursor,
                limit: Some(self.config().batch_size),
                ..EventQuery::default()
            },
        )
        .await?;
        let events = made_up_events(&instance);
        let mut changes = Vec::new();
        for event in &events {
            changes.extend(
                relational::changes(event)?
                    .into_iter()
                    .map(|c| (c, event.created_at)),
            );
        }
        quiet().await;
        tenancy_postgres::batch::apply_batch(&mut session, &changes).await?;
        quiet().await;
        if let Some(last) = events.last() {
            state.set_cursor(&mut session, last).await?;
            state.set_cursors(&mut session, &[last]).await?;
        }
        session.rollback().await.map_err(on_constraint)
    }
}

/// An instance id no one has: the process, the time and `n`.
fn made_up_instance(n: usize) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("tenancy-warm-up-{}-{nanos}-{n}", std::process::id())
}

/// What a new instance's first events write: the instance, its generated domain, an
/// organization and its domain (every table of the projection).
fn made_up_events(instance: &str) -> Vec<StoredEvent> {
    let org = format!("{instance}-org");
    let domain = format!("{instance}.warm-up.invalid");
    let now = OffsetDateTime::now_utc();
    [
        (
            "instance",
            instance,
            "instance.added",
            json!({"name": instance}),
        ),
        (
            "instance",
            instance,
            "instance.domain.added",
            json!({"domain": domain, "generated": true}),
        ),
        ("org", org.as_str(), "org.added", json!({"name": org})),
        (
            "org",
            org.as_str(),
            "org.domain.added",
            json!({"domain": format!("org.{domain}")}),
        ),
    ]
    .into_iter()
    .enumerate()
    .map(
        |(n, (aggregate_type, aggregate_id, event_type, payload))| StoredEvent {
            instance_id: instance.to_owned(),
            aggregate_type: aggregate_type.to_owned(),
            aggregate_id: aggregate_id.to_owned(),
            event_type: event_type.to_owned(),
            sequence: 1,
            revision: 1,
            created_at: now,
            payload: Some(payload),
            creator: "tenancy".to_owned(),
            owner: instance.to_owned(),
            position: Decimal::ONE,
            in_tx_order: i32::try_from(n).unwrap_or(0),
            written_by_v3: false,
        },
    )
    .collect()
}

/// When this process last heard a push's notification (continuous mode): the
/// background warm-up waits for a quiet moment before each of its steps.
#[derive(Debug, Clone, Default)]
pub(crate) struct Pushes(Arc<Mutex<Option<tokio::time::Instant>>>);

/// How long after a notification a push's catch-up may still run (3.5–4 ms on a warm
/// connection, from the notification's arrival).
const QUIET: Duration = Duration::from_millis(10);
/// The longest a statement of the warm-up waits for a quiet moment: under pushes that
/// never pause it goes on anyway, one statement per wait.
const QUIET_AT_MOST: Duration = Duration::from_millis(250);

impl Pushes {
    /// A notification arrived now.
    pub(crate) fn heard(&self) {
        if let Ok(mut last) = self.0.lock() {
            *last = Some(tokio::time::Instant::now());
        }
    }

    /// Returns once no notification was heard for [`QUIET`], or after [`QUIET_AT_MOST`].
    async fn quiet(&self) {
        let give_up = tokio::time::Instant::now() + QUIET_AT_MOST;
        loop {
            let last = self.0.lock().ok().and_then(|last| *last);
            let Some(quiet_from) = last.map(|at| at + QUIET) else {
                return;
            };
            let now = tokio::time::Instant::now();
            if quiet_from <= now || give_up <= now {
                return;
            }
            tokio::time::sleep_until(quiet_from.min(give_up)).await;
        }
    }
}

/// The background warm-up of continuous mode: one run at a time, ended with its owner.
#[derive(Debug, Default)]
pub(crate) struct Warming {
    task: Option<tokio::task::JoinHandle<()>>,
    /// The notifications it gives way to.
    pub(crate) pushes: Pushes,
}

/// The pause before each connection of a background warm-up.
const BACKGROUND_PAUSE: Duration = Duration::from_millis(100);

impl Warming {
    /// Starts a warm-up of `engine`'s pool unless one runs.
    pub(crate) fn start(&mut self, engine: &Engine) {
        if self.task.as_ref().is_some_and(|task| !task.is_finished()) {
            return;
        }
        let (engine, pushes) = (engine.clone(), self.pushes.clone());
        self.task = Some(tokio::spawn(async move {
            match engine
                .warm_up_between(BACKGROUND_PAUSE, Some(&pushes))
                .await
            {
                Ok(warmed) => tracing::debug!(warmed, "warmed the pool's connections"),
                Err(error) => {
                    tracing::warn!(error = %error.chain(), "warming the pool's connections failed");
                }
            }
        }));
    }
}

impl Drop for Warming {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Duration, Pushes, QUIET, QUIET_AT_MOST};

    #[tokio::test]
    async fn quiet_at_once_when_no_push_was_heard() {
        let started = tokio::time::Instant::now();
        Pushes::default().quiet().await;
        // Not the give-up bound (a generous limit: the test machine may be busy).
        assert!(started.elapsed() < QUIET_AT_MOST, "{:?}", started.elapsed());
    }

    #[tokio::test]
    async fn quiet_waits_out_a_push_just_heard() {
        let pushes = Pushes::default();
        pushes.heard();
        let heard = tokio::time::Instant::now();
        pushes.quiet().await;
        assert!(heard.elapsed() >= QUIET, "{:?}", heard.elapsed());
    }

    #[tokio::test]
    async fn under_pushes_that_never_pause_quiet_gives_up_at_its_bound() {
        let pushes = Pushes::default();
        pushes.heard();
        let pushing = {
            let pushes = pushes.clone();
            tokio::spawn(async move {
                loop {
                    pushes.heard();
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            })
        };
        let started = tokio::time::Instant::now();
        let waited = tokio::time::timeout(Duration::from_secs(10), pushes.quiet()).await;
        pushing.abort();
        assert!(waited.is_ok(), "it never gave up");
        assert!(
            started.elapsed() >= QUIET_AT_MOST,
            "{:?}",
            started.elapsed()
        );
    }
}
