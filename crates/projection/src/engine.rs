//! The engine: per `(projection, instance)` batches in one transaction each — cursor and
//! table changes commit together (exactly once); gap-safe reads by sort key (nothing
//! skipped); one process per pair at a time (`pg_try_advisory_xact_lock`); failures recorded,
//! retried and skipped after `max_failure_count`.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rust_decimal::Decimal;
use sqlx::{PgConnection, PgPool};
use tenancy_core::event::{EventQuery, INSTANCE_DOMAIN_ADDED, StoredEvent};
use tenancy_core::ports::{EventReader, UnitOfWork};
use tenancy_core::{Error, Result};
use tenancy_eventstore::PgEventStore;
use tenancy_eventstore::projection_state::{self, FailureKey, ProjectionState};
use tenancy_postgres::{PgSession, PgStore, Savepoint, on_constraint};
use time::OffsetDateTime;
use tokio::task::JoinSet;

use crate::claims;
use crate::memo::{Batched, Statistics};
use crate::metrics::EngineMetrics;
pub use crate::outcome::{Outcome, ReplayV3};
use crate::relational;

/// How the engine works.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Events per batch transaction.
    pub batch_size: u32,
    /// Attempts before a failing event is skipped (it stays listed).
    pub max_failure_count: i16,
    /// Instances worked on in parallel.
    pub workers: usize,
    /// Continuous mode: how often to sweep every instance besides notifications.
    pub sweep_interval: Duration,
    /// Continuous mode: cap of the exponential backoff when the database is unreachable.
    pub max_backoff: Duration,
    /// An instance the tables know nothing of yet, with at most this many events, is
    /// folded in memory and written set-based in one transaction (see `bulk.rs`); larger
    /// ones go in batches. 0 turns the bulk catch-up off.
    pub bulk_limit: u32,
    /// Continuous mode on an adopted (ZITADEL) event store, whose pushes send no
    /// notification: how often to look for events pushed since the last look (one index
    /// range scan over the last `poll_lookback` of positions).
    pub poll_interval: Duration,
    /// How far back each poll looks: a ZITADEL push committing later than this after its
    /// statement started is left to the sweep.
    pub poll_lookback: Duration,
    /// Continuous mode, on a process that does not lead the poll: how long it leaves a
    /// notified instance to the leader before it looks whether the instance is still
    /// behind (and then, for a while, acts on notifications at once itself: the leader's
    /// process hangs, or is swamped). Well above the holder's push -> visible p99 (about 10 ms), so
    /// that normally the look finds nothing to do.
    pub follow_delay: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            batch_size: 500,
            max_failure_count: 5,
            workers: 4,
            sweep_interval: Duration::from_secs(60),
            max_backoff: Duration::from_secs(30),
            bulk_limit: 100_000,
            poll_interval: Duration::from_millis(500),
            poll_lookback: Duration::from_secs(30),
            follow_delay: Duration::from_millis(50),
        }
    }
}

/// The projection engine for `relational_tables` on PostgreSQL.
#[derive(Debug, Clone)]
pub struct Engine {
    pool: PgPool,
    events: PgEventStore,
    config: EngineConfig,
    metrics: Arc<EngineMetrics>,
    batched: Arc<Batched>,
    fresh: Arc<claims::Fresh>,
    state: ProjectionState,
    statistics: Arc<Statistics>,
}

/// Called after each instance with (instances done, instances in all, outcome so far).
pub type Progress = Arc<dyn Fn(usize, usize, &Outcome) + Send + Sync>;

impl Engine {
    /// An engine over `pool`. A worker holds two connections at once (its transaction and
    /// a read), and continuous mode one more to listen: `workers` is lowered to what the
    /// pool can serve, or the workers would wait on each other for good.
    pub fn new(pool: PgPool, mut config: EngineConfig) -> Self {
        let connections = pool.options().get_max_connections() as usize;
        let usable = (connections.saturating_sub(1) / 2).max(1);
        if config.workers > usable {
            tracing::warn!(
                workers = config.workers,
                max_connections = connections,
                usable,
                "the pool is too small for the configured workers: fewer workers run"
            );
            config.workers = usable;
        }
        Self {
            events: PgEventStore::new(pool.clone()),
            pool,
            config,
            metrics: Arc::new(EngineMetrics::new()),
            batched: Arc::new(Batched::default()),
            fresh: Arc::new(claims::Fresh::default()),
            state: relational::state(),
            statistics: Arc::new(Statistics::default()),
        }
    }

    pub(crate) fn events(&self) -> &PgEventStore {
        &self.events
    }

    /// The projection's cursors, failures and locks.
    pub(crate) fn state(&self) -> &ProjectionState {
        &self.state
    }

    pub(crate) fn fresh(&self) -> &claims::Fresh {
        &self.fresh
    }

    pub(crate) fn batched(&self) -> &Batched {
        &self.batched
    }

    pub(crate) fn statistics(&self) -> &Statistics {
        &self.statistics
    }

    /// The same engine keeping its cursors under another projection name (another
    /// generation of the tables, reached through its pool's `search_path`).
    pub(crate) fn with_state(mut self, state: ProjectionState) -> Self {
        self.state = state;
        self
    }

    /// The engine, counting into `metrics` (shared with the process's registry).
    pub fn with_metrics(mut self, metrics: Arc<EngineMetrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// The engine's metrics.
    pub fn metrics(&self) -> &Arc<EngineMetrics> {
        &self.metrics
    }

    /// The engine's settings.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The pool the engine reads and writes with.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Every instance with events of the projection's aggregates (a loose index scan over
    /// the primary key, not a scan of the whole table).
    pub async fn instances(&self) -> Result<Vec<String>> {
        projection_state::instances(&self.pool).await
    }

    /// The newest position in the store now (the target of a catch-up).
    pub async fn newest_position(&self) -> Result<Option<Decimal>> {
        let mut conn = self.pool.acquire().await.map_err(on_constraint)?;
        projection_state::newest_position(&mut conn).await
    }

    /// Applies batches for one instance until it reaches `target` (or everything, without
    /// one), another process holds it, or a failing event blocks it.
    pub async fn catch_up(&self, instance_id: &str, target: Option<Decimal>) -> Result<Outcome> {
        self.catch_up_with(instance_id, target, None).await
    }

    /// [`Self::catch_up`], and with `replay` also the v3-written events up to its
    /// position (after a rebuild reset the tables).
    pub async fn catch_up_with(
        &self,
        instance_id: &str,
        target: Option<Decimal>,
        replay: Option<ReplayV3>,
    ) -> Result<Outcome> {
        let mut total = Outcome::default();
        if let Some(outcome) = self.bulk_catch_up(instance_id, target, replay).await? {
            total.add(outcome);
            // A fresh instance that waits stays fresh: it never replays in batches.
            if outcome.busy || outcome.caught_up || outcome.deferred > 0 {
                return Ok(total);
            }
        }
        loop {
            let outcome = self.run_batch(instance_id, target, replay).await?;
            total.add(outcome);
            // A failure below the limit blocks the instance until a later run retries it:
            // retrying at once would burn the attempts before other instances (whose
            // events it may depend on, e.g. a custom domain released elsewhere) move on.
            if outcome.busy || outcome.caught_up || outcome.failed > 0 || outcome.deferred > 0 {
                return Ok(total);
            }
            if outcome.applied == 0 && outcome.skipped == 0 {
                return Ok(total);
            }
        }
    }

    /// Catches every instance up to the newest position present at start, `workers` at a
    /// time. `progress` is called after each instance with (done, total, outcome so far).
    pub async fn run_until_caught_up<F>(&self, progress: F) -> Result<Outcome>
    where
        F: Fn(usize, usize, &Outcome) + Send + Sync + 'static,
    {
        let target = self.newest_position().await?;
        let outcome = self.run_rounds(target, None, Arc::new(progress)).await?;
        self.analyze_if_stale().await?;
        // Everything up to the target is projected (or its failures are listed): the first
        // sweep of a `tenancy start` after this prefill starts there, not with a walk of
        // every instance. A sweep position already recorded is left as it is.
        if let Some(target) = target
            && outcome.deferred == 0
            && !outcome.busy
        {
            self.state().start_sweeps_at(self.pool(), target).await?;
        }
        Ok(outcome)
    }

    /// Rounds until no instance records a new failure or waits. The first round covers
    /// every instance; later rounds only those that failed, waited (deferred) or were
    /// busy in the previous one. Each round is one more attempt for each blocked event, so every failing
    /// event is skipped after `max_failure_count` rounds at most: the loop ends.
    pub(crate) async fn run_rounds(
        &self,
        target: Option<Decimal>,
        replay: Option<ReplayV3>,
        progress: Progress,
    ) -> Result<Outcome> {
        let instances = self.instances().await?;
        self.run_rounds_of(instances, target, replay, progress)
            .await
    }

    /// [`Engine::run_rounds`] over `instances` only.
    pub(crate) async fn run_rounds_of(
        &self,
        instances: Vec<String>,
        target: Option<Decimal>,
        replay: Option<ReplayV3>,
        progress: Progress,
    ) -> Result<Outcome> {
        let mut sum = Outcome::default();
        let mut pending = instances;
        // Deferred events wait for other instances of this very run, which move on in the
        // same rounds; the cap only guards against an instance another process holds for
        // good. Rounds without any progress pause briefly.
        let mut idle_rounds = 0;
        while !pending.is_empty() {
            let report = progress.clone();
            let outcomes = self
                .run_list(pending, target, replay, move |done, total, o| {
                    report(done, total, o)
                })
                .await?;
            let mut round = Outcome::default();
            pending = Vec::new();
            for (instance, outcome) in outcomes {
                round.add(outcome);
                // Busy: another worker or process holds its lock — maybe for another
                // instance whose lock key collides with it — so it is tried again too.
                if outcome.failed > 0 || outcome.deferred > 0 || outcome.busy {
                    pending.push(instance);
                }
            }
            sum.add(round);
            sum.deferred = round.deferred;
            sum.busy = round.busy;
            tracing::debug!(
                applied = round.applied,
                failed = round.failed,
                deferred = round.deferred,
                next = pending.len(),
                "round"
            );
            if round.failed == 0 && round.deferred == 0 && !round.busy {
                break;
            }
            if round.applied == 0 && round.failed == 0 {
                idle_rounds += 1;
                if idle_rounds > 600 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(sum)
    }

    /// Catches every instance up to `target` with the configured workers (small fresh
    /// instances in groups); `progress(done, total, outcome)` is called after each.
    pub async fn run_instances<F>(
        &self,
        target: Option<Decimal>,
        replay: Option<ReplayV3>,
        progress: F,
    ) -> Result<Outcome>
    where
        F: Fn(usize, usize, &Outcome) + Send + Sync + 'static,
    {
        let instances = self.instances().await?;
        let mut sum = Outcome::default();
        for (_, outcome) in self.run_list(instances, target, replay, progress).await? {
            sum.add(outcome);
        }
        Ok(sum)
    }

    /// Catches each of `instances` up, `workers` at a time; the outcome of each.
    pub(crate) async fn run_list<F>(
        &self,
        instances: Vec<String>,
        target: Option<Decimal>,
        replay: Option<ReplayV3>,
        progress: F,
    ) -> Result<Vec<(String, Outcome)>>
    where
        F: Fn(usize, usize, &Outcome) + Send + Sync + 'static,
    {
        let total = instances.len();
        // Small fresh instances in groups (crate::group); what a group leaves, and every
        // other instance, one by one. A queue that `workers` tasks drain: memory follows
        // the workers, not the instances (a task per instance held each one's future).
        let (groups, rest) = self.small_fresh_groups(instances).await?;
        // Replaying instances that share custom domains in what they have left, together
        // in the store's order (crate::ordered): one at a time they would wait for each
        // other at every move.
        let (components, rest) = self.entangled(rest, target).await?;
        let jobs: VecDeque<Job> = groups
            .into_iter()
            .map(Job::Group)
            .chain(components.into_iter().map(Job::Ordered))
            .chain(rest.into_iter().map(Job::One))
            .collect();
        let jobs = Arc::new(std::sync::Mutex::new(jobs));
        let (sender, mut done) = tokio::sync::mpsc::unbounded_channel();
        let mut workers = JoinSet::new();
        for _ in 0..self.config.workers.max(1) {
            let (engine, jobs, sender) = (self.clone(), jobs.clone(), sender.clone());
            workers.spawn(async move {
                loop {
                    let job = jobs
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .pop_front();
                    let Some(job) = job else { return };
                    let result = engine.run_job(job, target, replay).await;
                    if result.is_err() {
                        // The first error ends the run: no new job starts anywhere.
                        jobs.lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .clear();
                    }
                    if sender.send(result).is_err() {
                        return;
                    }
                }
            });
        }
        drop(sender);
        let mut sum = Outcome::default();
        let mut outcomes = Vec::with_capacity(total);
        let mut first_error = None;
        while let Some(result) = done.recv().await {
            match result {
                Ok(finished) => {
                    for (instance, outcome) in finished {
                        sum.add(outcome);
                        outcomes.push((instance, outcome));
                    }
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
            progress(outcomes.len(), total, &sum);
        }
        while let Some(joined) = workers.join_next().await {
            if let Err(e) = joined {
                first_error.get_or_insert(Error::internal_with("projection worker panicked", e));
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(outcomes),
        }
    }

    /// One job of [`Engine::run_list`]: the outcome of each instance it finished.
    async fn run_job(
        &self,
        job: Job,
        target: Option<Decimal>,
        replay: Option<ReplayV3>,
    ) -> Result<Vec<(String, Outcome)>> {
        match job {
            Job::One(instance) => {
                let outcome = self.catch_up_with(&instance, target, replay).await?;
                Ok(vec![(instance, outcome)])
            }
            Job::Ordered(members) => self.catch_up_ordered(members, target, replay).await,
            Job::Group(group) => {
                let grouped = self.catch_up_group(group, target, replay).await?;
                let mut outcomes = grouped.done;
                for instance in grouped.rest {
                    let outcome = self.catch_up_with(&instance, target, replay).await?;
                    outcomes.push((instance, outcome));
                }
                Ok(outcomes)
            }
        }
    }

    /// One batch for one instance in one transaction.
    #[tracing::instrument(name = "projection_batch", skip(self, target, replay), fields(projection = relational::NAME))]
    pub async fn run_batch(
        &self,
        instance_id: &str,
        target: Option<Decimal>,
        replay: Option<ReplayV3>,
    ) -> Result<Outcome> {
        let started = Instant::now();
        let store = PgStore::new(self.pool.clone());
        let mut session = store.transaction().await?;
        if !self.state.try_lock(session.conn()?, instance_id).await? {
            session.rollback().await?;
            return Ok(Outcome {
                busy: true,
                ..Outcome::default()
            });
        }
        let cursor = self.state.cursor(session.conn()?, instance_id).await?;
        let mut events = self
            .events
            .read(&EventQuery {
                instance_id: instance_id.to_owned(),
                aggregate_types: relational::aggregate_types(),
                event_types: relational::event_types(),
                after: cursor.clone(),
                max_position: target,
                limit: Some(self.config.batch_size),
                ..EventQuery::default()
            })
            .await?;
        // A domain another instance has yet to reach an earlier add of: the batch ends
        // before it (crate::claims).
        let mut waiting = false;
        if claims::has_domain_adds(&events) {
            let until = events.last().map(|e| e.position);
            let first = claims::first_waiting_add(
                session.conn()?,
                &self.state,
                &self.fresh,
                instance_id,
                cursor.as_ref(),
                until,
                replay,
                self.config.bulk_limit,
            )
            .await?;
            if let Some(at) =
                first.and_then(|key| events.iter().position(|e| claims::is_event(e, &key)))
            {
                events.truncate(at);
                waiting = true;
            }
        }
        if events.is_empty() {
            session.rollback().await?;
            return Ok(Outcome {
                caught_up: !waiting,
                deferred: u64::from(waiting),
                ..Outcome::default()
            });
        }
        let caught_up = !waiting && events.len() < self.config.batch_size as usize;
        let failures = self.state.failures(session.conn()?, instance_id).await?;

        // Fast path: the whole batch without savepoints.
        let fast = self
            .apply_all(&mut session, &events, &failures, replay)
            .await;
        let outcome = match fast {
            Ok(mut outcome) => {
                if let Some(last) = events.last() {
                    self.state.set_cursor(session.conn()?, last).await?;
                }
                outcome.caught_up = caught_up;
                outcome
            }
            Err(Error::Internal { message, source }) => {
                let _ = session.rollback().await;
                return Err(Error::Internal { message, source });
            }
            Err(_) => {
                // Slow path: isolate the failing event(s) with savepoints.
                let _ = session.rollback().await;
                session = store.transaction().await?;
                if !self.state.try_lock(session.conn()?, instance_id).await? {
                    session.rollback().await?;
                    return Ok(Outcome {
                        busy: true,
                        ..Outcome::default()
                    });
                }
                let mut outcome = self
                    .apply_isolated(&mut session, instance_id, &events, &failures, replay)
                    .await?;
                outcome.caught_up =
                    caught_up && outcome.applied + outcome.skipped == events.len() as u64;
                outcome
            }
        };
        let mut outcome = outcome;
        outcome.deferred += u64::from(waiting);
        let newest = events.last().map(|e| e.created_at);
        session.commit().await?;
        self.observe_batch(started, &outcome, newest);
        Ok(outcome)
    }

    /// Metrics of one committed batch (or bulk catch-up).
    pub(crate) fn observe_batch(
        &self,
        started: Instant,
        outcome: &Outcome,
        newest: Option<OffsetDateTime>,
    ) {
        let label = EngineMetrics::label(relational::NAME);
        self.metrics.applied(relational::NAME, outcome.applied);
        self.metrics
            .failures
            .get_or_create(&label)
            .inc_by(outcome.failed);
        self.metrics
            .batch_seconds
            .get_or_create(&label)
            .observe(started.elapsed().as_secs_f64());
        if let Some(newest) = newest {
            let lag = (OffsetDateTime::now_utc() - newest)
                .as_seconds_f64()
                .max(0.0);
            self.metrics.lag_seconds.get_or_create(&label).set(lag);
        }
    }

    pub(crate) fn wanted(
        event: &StoredEvent,
        failures: &HashMap<FailureKey, i16>,
        max: i16,
        replay: Option<ReplayV3>,
    ) -> bool {
        if event.written_by_v3 && replay.is_none_or(|ReplayV3(until)| event.position > until) {
            return false;
        }
        let key = (
            event.aggregate_type.clone(),
            event.aggregate_id.clone(),
            event.sequence,
        );
        failures.get(&key).is_none_or(|count| *count < max)
    }

    async fn apply_all(
        &self,
        session: &mut PgSession,
        events: &[StoredEvent],
        failures: &HashMap<FailureKey, i16>,
        replay: Option<ReplayV3>,
    ) -> Result<Outcome> {
        // Decode and reduce the whole batch, then write its net effect set-based; any
        // error sends the batch to the exact path, event by event (apply_isolated).
        let mut outcome = Outcome::default();
        let mut changes = Vec::new();
        let mut applied = Vec::new();
        for event in events {
            if !Self::wanted(event, failures, self.config.max_failure_count, replay) {
                outcome.skipped += 1;
                continue;
            }
            changes.extend(
                relational::changes(event)?
                    .into_iter()
                    .map(|c| (c, event.created_at)),
            );
            applied.push(event);
        }
        tenancy_postgres::batch::apply_batch(session.conn()?, &changes).await?;
        for event in applied {
            clear_recovered(&self.state, session, event, failures).await?;
            outcome.applied += 1;
        }
        Ok(outcome)
    }

    async fn apply_isolated(
        &self,
        session: &mut PgSession,
        instance_id: &str,
        events: &[StoredEvent],
        failures: &HashMap<FailureKey, i16>,
        replay: Option<ReplayV3>,
    ) -> Result<Outcome> {
        let mut outcome = Outcome::default();
        let mut last_done: Option<&StoredEvent> = None;
        for event in events {
            if !Self::wanted(event, failures, self.config.max_failure_count, replay) {
                outcome.skipped += 1;
                last_done = Some(event);
                continue;
            }
            match apply_isolated_event(&self.state, session, event, failures).await? {
                Isolated::Applied => {
                    outcome.applied += 1;
                    last_done = Some(event);
                }
                Isolated::Waits => {
                    outcome.deferred += 1;
                    break;
                }
                Isolated::Failed(error) => {
                    let count = self
                        .state
                        .record_failure(session.conn()?, event, &error.to_string(), 1)
                        .await?;
                    outcome.failed += 1;
                    tracing::warn!(instance_id, aggregate_id = %event.aggregate_id, sequence = event.sequence, event_type = %event.event_type, error = %error.chain(), count, "event failed");
                    if count >= self.config.max_failure_count {
                        // Skipped from now on; it stays listed in failed_events2.
                        outcome.skipped += 1;
                        last_done = Some(event);
                    } else {
                        break;
                    }
                }
            }
        }
        if let Some(event) = last_done {
            self.state.set_cursor(session.conn()?, event).await?;
        }
        Ok(outcome)
    }
}

/// Work for one worker of [`Engine::run_list`].
enum Job {
    /// Small fresh instances caught up together (crate::group).
    Group(Vec<String>),
    /// Replaying instances that share custom domains, in global order (crate::ordered).
    Ordered(Vec<String>),
    One(String),
}

/// How one event of an exact path (each event in a savepoint) ended.
pub(crate) enum Isolated {
    /// Applied; a failure it had recorded is cleared.
    Applied,
    /// Not applied, and not its own failure: a conflict with another transaction, or an
    /// add of a domain another instance has yet to release (`waits_for_other_instance`).
    Waits,
    /// Not applied: its own error, to record.
    Failed(Error),
}

/// Applies one event in a savepoint, rolled back to on error (an internal error is
/// returned as such: the transaction is to be given up).
pub(crate) async fn apply_isolated_event(
    state: &ProjectionState,
    session: &mut PgSession,
    event: &StoredEvent,
    failures: &HashMap<FailureKey, i16>,
) -> Result<Isolated> {
    session.savepoint(Savepoint::EVENT).await?;
    match apply_event(session, event).await {
        Ok(()) => {
            session.release(Savepoint::EVENT).await?;
            clear_recovered(state, session, event, failures).await?;
            Ok(Isolated::Applied)
        }
        Err(Error::Internal { message, source }) => Err(Error::Internal { message, source }),
        Err(error) => {
            session.rollback_to(Savepoint::EVENT).await?;
            // A deadlock or serialization failure with another instance's transaction
            // says nothing about the event: tried again soon.
            let transient = matches!(error, Error::Conflict(_));
            if transient || waits_for_other_instance(state, session.conn()?, event, &error).await? {
                Ok(Isolated::Waits)
            } else {
                Ok(Isolated::Failed(error))
            }
        }
    }
}

/// Decodes, reduces and applies one event with its `created_at` as the event time.
pub(crate) async fn apply_event(session: &mut PgSession, event: &StoredEvent) -> Result<()> {
    let changes: Vec<_> = relational::changes(event)?
        .into_iter()
        .map(|c| (c, event.created_at))
        .collect();
    tenancy_postgres::apply::apply_changes(session.conn()?, &changes)
        .await
        .map(drop)
}

/// A custom domain is unique across instances, and instances are projected independently:
/// an instance may reach `instance.domain.added` for a domain that another instance has
/// released by an event *before* this one, but which that instance's projection has not
/// reached yet. Such an event waits (is deferred) rather than counting as a failure.
async fn waits_for_other_instance(
    state: &ProjectionState,
    conn: &mut PgConnection,
    event: &StoredEvent,
    error: &Error,
) -> Result<bool> {
    let is_global_conflict = matches!(
        error,
        Error::AlreadyExists {
            rule: tenancy_core::Rule::CustomInstanceDomain,
            ..
        }
    );
    if !is_global_conflict || event.event_type != INSTANCE_DOMAIN_ADDED {
        return Ok(false);
    }
    let Some(domain) = event
        .payload
        .as_ref()
        .and_then(|p| p.get("domain"))
        .and_then(|d| d.as_str())
    else {
        return Ok(false);
    };
    state
        .holder_is_behind(
            conn,
            &event.instance_id,
            &[domain.to_ascii_lowercase()],
            event.position,
        )
        .await
}

/// An event that failed before and now applied is no longer a failure.
pub(crate) async fn clear_recovered(
    state: &ProjectionState,
    session: &mut PgSession,
    event: &StoredEvent,
    failures: &HashMap<FailureKey, i16>,
) -> Result<()> {
    let key = (
        event.aggregate_type.clone(),
        event.aggregate_id.clone(),
        event.sequence,
    );
    if failures.contains_key(&key) {
        let (t, id, seq) = &key;
        state
            .delete_failure(session.conn()?, &event.instance_id, (t, id, *seq))
            .await?;
    }
    Ok(())
}
