//! Continuous mode: woken by `LISTEN/NOTIFY` from pushes; exponential, capped backoff
//! while the database is unreachable; on shutdown the batch under way finishes (commits or
//! rolls back) first. What costs something when nothing happens is bounded by the events,
//! not by the number of instances, and done by one process of all on the database:
//! - the **poll**, every `poll_interval`, for pushes that notify nobody (ZITADEL's, or any
//!   writer of `events2` but tenancy's push): one range scan of the position index over the
//!   last `poll_lookback`, joined with the cursors, wakes the instances behind. Done by
//!   the poll's *leader*, a session-level advisory lock that every process waits for on a
//!   connection of its own ([`tenancy_postgres::leadership`]): when the leader dies,
//!   another process leads at once;
//! - the **sweep**, every `sweep_interval`, for anything both missed (a lease in
//!   `tenancy.leases`, taken by one process per interval): the same over the
//!   events since the previous sweep started (less the same margin for late commits), plus
//!   the instances whose failed events are still retried. Where a sweep starts is kept in
//!   `tenancy.sweeps`, so a restart costs the events since, not a walk of every instance;
//!   only a database without that row (new, reset, or just switched to a rebuilt
//!   generation) is walked whole, once.
//!
//! Every process hears every push's notification, but only the poll's leader acts on it
//! at once; the others note the instance. A process that becomes the leader (the previous
//! one died) catches up what it noted and is still behind at once. The others look again
//! after [`EngineConfig::follow_delay`](crate::EngineConfig::follow_delay), with one
//! statement for all they noted, and catch up only the instances with an event that has
//! waited that long: the leader's process hangs with its connection open, or it is busy
//! with other instances (one pushed again meanwhile is looked at again later). A process
//! whose look found such an instance stands in: for three poll intervals (at least 1 s)
//! it acts on notifications at once too. Several replicas thus do not race for the same
//! instance at every push, and no push waits for a lease to expire.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::time::Duration;

use rust_decimal::Decimal;
use sqlx::postgres::PgListener;
use tenancy_core::Result;
use tenancy_eventstore::NOTIFY_CHANNEL;
use tenancy_postgres::on_constraint;

use crate::engine::{Engine, Outcome};
use crate::warm::Warming;

/// The engine running continuously on a task of its own ([`Engine::spawn_continuous`]).
#[derive(Debug)]
pub struct Continuous {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<()>>,
}

impl Continuous {
    /// Stops it (the batch under way finishes first) and returns how it ended.
    pub async fn stop(self) -> Result<()> {
        let _ = self.stop.send(());
        self.task
            .await
            .map_err(|e| tenancy_core::Error::internal_with("the projection task failed", e))?
    }
}

impl Engine {
    /// Runs [`Engine::run_continuous`] on a task of its own until [`Continuous::stop`].
    pub fn spawn_continuous(&self) -> Continuous {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let engine = self.clone();
        let task = tokio::spawn(async move {
            engine
                .run_continuous(async {
                    let _ = stopped.await;
                })
                .await
        });
        Continuous { stop, task }
    }

    /// Keeps the projection current until `shutdown` resolves.
    pub async fn run_continuous<S>(&self, shutdown: S) -> Result<()>
    where
        S: Future<Output = ()> + Send,
    {
        tokio::pin!(shutdown);
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.listen(&mut shutdown, &mut backoff).await {
                Ok(()) => return Ok(()),
                Err(error) => {
                    tracing::warn!(error = %error.chain(), ?backoff, "projection engine backing off");
                    tokio::select! {
                        () = &mut shutdown => return Ok(()),
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(self.config().max_backoff);
                }
            }
        }
    }

    async fn listen<S>(
        &self,
        shutdown: &mut std::pin::Pin<&mut S>,
        backoff: &mut Duration,
    ) -> Result<()>
    where
        S: Future<Output = ()> + Send,
    {
        let mut listener = PgListener::connect_with(self.pool())
            .await
            .map_err(on_constraint)?;
        listener
            .listen(NOTIFY_CHANNEL)
            .await
            .map_err(on_constraint)?;
        // Connected again: what happened meanwhile is caught by the next sweep.
        *backoff = Duration::from_millis(100);
        // Every process may have to lead at once, with warm connections (crate::warm).
        let mut warming = Warming::default();
        let mut sweep = tokio::time::interval(self.config().sweep_interval);
        // Instances whose events wait for another instance (deferred) or for another
        // process (busy): retried soon rather than at the next sweep.
        let mut again = Retries::default();
        // Instances notified while another process leads the poll, with when.
        let mut noted: HashMap<String, tokio::time::Instant> = HashMap::new();
        let follow_delay = self.config().follow_delay;
        let mut follow = tokio::time::interval((follow_delay / 2).max(Duration::from_millis(1)));
        follow.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let poll_every = self.config().poll_interval.max(Duration::from_millis(10));
        let mut poll = tokio::time::interval(poll_every);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The poll's leader: one process of all, replaced at once when it dies.
        let mut leader = self.state().leadership(self.pool(), "poll");
        // Until when this process acts on notifications at once without the lead: its
        // last look found an instance the leader had left behind (its process hangs, or
        // it is swamped).
        let stand_in_for = poll_every.mul_f64(3.0).max(Duration::from_secs(1));
        let mut standing_in_until: Option<tokio::time::Instant> = None;
        let mut newest: HashMap<String, (Decimal, i32)> = HashMap::new();
        // This process among the others on the database (the sweep's lease).
        let holder = holder_id();
        let mut first_sweep = true;
        loop {
            tokio::select! {
                biased;
                () = &mut *shutdown => {
                    // Another process takes the periodic work over at once, not when the
                    // leases expire.
                    if let Err(error) = self.state().release_leases(self.pool(), &holder).await {
                        tracing::warn!(error = %error.chain(), "releasing the leases failed");
                    }
                    return Ok(());
                }
                notification = listener.recv() => {
                    let notification = notification.map_err(on_constraint)?;
                    warming.pushes.heard();
                    let instance = notification.payload().to_owned();
                    let standing_in = standing_in_until.is_some_and(|until| until > tokio::time::Instant::now());
                    if leader.held() || standing_in {
                        let outcome = self.catch_up(&instance, None).await?;
                        tracing::debug!(%instance, leader = leader.held(), ?outcome, "caught up a notified instance");
                        again.note(instance, outcome);
                    } else {
                        noted.entry(instance).or_insert_with(tokio::time::Instant::now);
                    }
                }
                _ = follow.tick(), if !noted.is_empty() => {
                    let due: Vec<String> = noted
                        .iter()
                        .filter(|(_, at)| at.elapsed() >= follow_delay)
                        .map(|(instance, _)| instance.clone())
                        .collect();
                    if due.is_empty() {
                        continue;
                    }
                    for instance in &due {
                        noted.remove(instance);
                    }
                    // Left behind: an event that has waited the whole delay. An instance
                    // with younger events only (pushed again since it was noted) is the
                    // leader's still, and looked at again once they are that old.
                    let now = tokio::time::Instant::now();
                    let mut left_behind = Vec::new();
                    for (instance, age) in self.state().behind_among(self.pool(), &due).await? {
                        if age >= follow_delay {
                            left_behind.push(instance);
                        } else {
                            noted.insert(instance, now.checked_sub(age).unwrap_or(now));
                        }
                    }
                    if !left_behind.is_empty() && !leader.held() {
                        standing_in_until = Some(now + stand_in_for);
                    }
                    for instance in left_behind {
                        let outcome = self.catch_up(&instance, None).await?;
                        again.note(instance, outcome);
                    }
                }
                held = leader.changed() => {
                    let held = held?;
                    tracing::debug!(held, noted = noted.len(), "the poll's lead changed");
                    if held && !noted.is_empty() {
                        // Taken over from a leader that died: what it left behind is ours
                        // now, not after the follow delay.
                        let waiting: Vec<String> = noted.drain().map(|(instance, _)| instance).collect();
                        for (instance, _) in self.state().behind_among(self.pool(), &waiting).await? {
                            let outcome = self.catch_up(&instance, None).await?;
                            tracing::debug!(%instance, ?outcome, "caught up what the dead leader left");
                            again.note(instance, outcome);
                        }
                    }
                    if held {
                        // Connections opened since (or the pool's replacements) are cold;
                        // the lead's catch-ups should not meet them one by one.
                        warming.start(self);
                    }
                }
                () = again.busy.due(), if again.busy.is_waiting() => {
                    for instance in again.busy.take() {
                        let outcome = self.catch_up(&instance, None).await?;
                        tracing::debug!(%instance, ?outcome, "retried a busy instance");
                        again.note(instance, outcome);
                    }
                }
                () = again.deferred.due(), if again.deferred.is_waiting() => {
                    // Together: instances that wait for each other (domains moving between
                    // them) go on in the store's order (crate::ordered), not a round each.
                    let waiting: Vec<String> = again.deferred.take().into_iter().collect();
                    for (instance, outcome) in self.run_list(waiting, None, None, |_, _, _| {}).await? {
                        again.note(instance, outcome);
                    }
                }
                _ = sweep.tick() => {
                    // One sweep per interval for all processes on the database (a lease);
                    // but always at (re)connecting: what happened meanwhile is ours to
                    // catch, and it costs the events since the last sweep.
                    let lease = self.config().sweep_interval.mul_f64(0.9);
                    let leased = self.state().take_lease(self.pool(), "sweep", &holder, lease).await?;
                    if leased || std::mem::take(&mut first_sweep) {
                        for (instance, outcome) in self.sweep().await? {
                            again.note(instance, outcome);
                        }
                    }
                    warming.start(self);
                }
                _ = poll.tick() => {
                    // The leader only, for pushes that notify nobody (ZITADEL's, or any
                    // writer of events2 but tenancy's push).
                    if !leader.held() {
                        newest.clear();
                        continue;
                    }
                    for instance in self.pushed_since_last_poll(&mut newest).await? {
                        let outcome = self.catch_up(&instance, None).await?;
                        again.note(instance, outcome);
                    }
                }
            }
        }
    }
}

impl Engine {
    /// One sweep: the instances behind among those with events since the position where
    /// the previous sweep (of any process) started, less the margin for late commits, and
    /// those whose failures are still retried; every instance when no sweep is recorded.
    /// Records where the next one starts: this one's start, or the lowest cursor of an
    /// instance left waiting (returned, for the caller to retry soon).
    pub(crate) async fn sweep(&self) -> Result<Vec<(String, Outcome)>> {
        let from = self.newest_position().await?.unwrap_or_default();
        let instances = match self.state().swept_from(self.pool()).await? {
            None => self.instances().await?,
            Some(swept_from) => {
                self.behind_after(Some(swept_from - self.sweep_margin()), true)
                    .await?
            }
        };
        let waiting: Vec<(String, Outcome)> = self
            .run_list(instances, None, None, |_, _, _| {})
            .await?
            .into_iter()
            .filter(|(_, outcome)| outcome.deferred > 0 || outcome.busy)
            .collect();
        let next = if waiting.is_empty() {
            from
        } else {
            let ids: Vec<String> = waiting.iter().map(|(id, _)| id.clone()).collect();
            from.min(self.state().lowest_cursor(self.pool(), &ids).await?)
        };
        self.state().set_swept_from(self.pool(), next).await?;
        Ok(waiting)
    }

    /// Where the events start that may be behind: the recorded sweep position less the
    /// margin for late commits; `None` when no sweep is recorded (every event may be).
    pub(crate) async fn sweep_window(&self) -> Result<Option<Decimal>> {
        Ok(self
            .state()
            .swept_from(self.pool())
            .await?
            .map(|from| from - self.sweep_margin()))
    }

    fn sweep_margin(&self) -> Decimal {
        self.late_commit_margin() * Decimal::from(SWEEP_MARGIN)
    }

    /// Positions are commit-ordered only roughly (a push stamps its position before it
    /// commits): the poll looks back this far.
    fn late_commit_margin(&self) -> Decimal {
        Decimal::try_from(self.config().poll_lookback.as_secs_f64()).unwrap_or(Decimal::from(30))
    }

    /// The instances behind after `after` (else within the poll's lookback), and with
    /// `retries` those whose failed events are still retried.
    async fn behind_after(&self, after: Option<Decimal>, retries: bool) -> Result<Vec<String>> {
        let retry_below = retries.then_some(self.config().max_failure_count);
        Ok(self
            .state()
            .behind(self.pool(), after, self.late_commit_margin(), retry_below)
            .await?
            .into_iter()
            .map(|(instance, _, _)| instance)
            .collect())
    }

    /// The instances behind whose newest event within the lookback moved since the last
    /// poll (`newest` remembers each such instance's newest event seen, and forgets the
    /// others): an instance blocked by a failing event is not woken at every poll.
    async fn pushed_since_last_poll(
        &self,
        newest: &mut HashMap<String, (Decimal, i32)>,
    ) -> Result<Vec<String>> {
        let rows = self
            .state()
            .behind(self.pool(), None, self.late_commit_margin(), None)
            .await?;
        let mut moved = Vec::new();
        let mut seen_now = HashMap::with_capacity(rows.len());
        for (instance, position, order) in rows {
            if newest
                .get(&instance)
                .is_none_or(|seen| *seen < (position, order))
            {
                moved.push(instance.clone());
            }
            seen_now.insert(instance, (position, order));
        }
        *newest = seen_now;
        Ok(moved)
    }
}

/// A busy instance is another process's batch under way: retried soon after it, since
/// that batch may have read before the event that woke this process.
const BUSY_RETRY: Duration = Duration::from_millis(10);
/// A deferred instance waits for another instance to move on.
const DEFERRED_RETRY: Duration = Duration::from_millis(100);

/// Instances to catch up again soon.
#[derive(Debug, Default)]
struct Retries {
    busy: Waiting,
    deferred: Waiting,
}

impl Retries {
    fn note(&mut self, instance: String, outcome: Outcome) {
        if outcome.busy {
            self.busy.add(instance, BUSY_RETRY);
        } else if outcome.deferred > 0 {
            self.deferred.add(instance, DEFERRED_RETRY);
        }
    }
}

/// Instances tried again together, a period after the first of them was added. A
/// deadline, not an interval: an interval polled only while instances wait fired every
/// tick it missed meanwhile at once, so a process that met a busy instance tried it again
/// dozens of times within milliseconds, beside the batch it waited for.
#[derive(Debug, Default)]
struct Waiting {
    instances: BTreeSet<String>,
    due: Option<tokio::time::Instant>,
}

impl Waiting {
    fn add(&mut self, instance: String, period: Duration) {
        self.due
            .get_or_insert_with(|| tokio::time::Instant::now() + period);
        self.instances.insert(instance);
    }

    fn is_waiting(&self) -> bool {
        self.due.is_some()
    }

    /// Resolves when they are due (at once if none wait: guard with [`Self::is_waiting`]).
    fn due(&self) -> tokio::time::Sleep {
        tokio::time::sleep_until(self.due.unwrap_or_else(tokio::time::Instant::now))
    }

    fn take(&mut self) -> BTreeSet<String> {
        self.due = None;
        std::mem::take(&mut self.instances)
    }
}

/// The sweep looks this many poll lookbacks before where the previous one started. A push
/// that commits later than that after stamping its position (5 minutes by default; ZITADEL's
/// pushes take milliseconds) is projected with its instance's next event, or by
/// `projections run`, which walks every instance.
const SWEEP_MARGIN: i64 = 10;

/// A name for this engine's leases, unique among processes: host, process id and time.
fn holder_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{host}/{}/{started}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::{BUSY_RETRY, DEFERRED_RETRY, Outcome, Retries};

    #[test]
    fn a_retry_is_due_its_period_after_the_first_instance_noted_not_at_once() {
        let mut again = Retries::default();
        let noted = tokio::time::Instant::now();
        let busy = Outcome {
            busy: true,
            ..Outcome::default()
        };
        again.note("a".to_owned(), busy);
        let due = again.busy.due.expect("a busy instance is due");
        assert!(
            due >= noted + BUSY_RETRY,
            "due {:?} early",
            noted + BUSY_RETRY - due
        );
        // A second one joins the first's retry rather than moving it.
        again.note("b".to_owned(), busy);
        assert_eq!(again.busy.due, Some(due));
        assert_eq!(again.busy.take().len(), 2);
        assert_eq!(again.busy.due, None);
        // Found busy again on that retry: due a whole period later once more.
        let retried = tokio::time::Instant::now();
        again.note("a".to_owned(), busy);
        assert!(
            again
                .busy
                .due
                .is_some_and(|due| due >= retried + BUSY_RETRY)
        );
    }

    #[test]
    fn deferred_instances_wait_their_own_period() {
        let mut again = Retries::default();
        let noted = tokio::time::Instant::now();
        again.note(
            "a".to_owned(),
            Outcome {
                deferred: 1,
                ..Outcome::default()
            },
        );
        assert_eq!(again.busy.due, None);
        assert!(
            again
                .deferred
                .due
                .is_some_and(|due| due >= noted + DEFERRED_RETRY)
        );
        assert_eq!(again.deferred.take().len(), 1);
        assert_eq!(again.deferred.due, None);
        // Caught up: nothing to retry.
        again.note("a".to_owned(), Outcome::default());
        assert_eq!((again.busy.due, again.deferred.due), (None, None));
    }
}
