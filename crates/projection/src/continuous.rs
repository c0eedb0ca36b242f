//! Continuous mode: woken by `LISTEN/NOTIFY` from pushes and by a periodic sweep for
//! anything a notification missed; exponential, capped backoff while the database is
//! unreachable; on shutdown the batch under way finishes (commits or rolls back) first.
//! On an adopted ZITADEL store, whose pushes notify nobody, a poll every `poll_interval`
//! wakes the instances whose newest position moved (one range scan of the position index
//! over the last `poll_lookback`), so their events reach the tables within a second or so
//! instead of at the next sweep.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::time::Duration;

use rust_decimal::Decimal;
use sqlx::postgres::PgListener;
use tenancy_core::Result;
use tenancy_eventstore::NOTIFY_CHANNEL;
use tenancy_postgres::on_constraint;

use crate::engine::Engine;

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
        // Connected again: whatever happened meanwhile is caught by a sweep.
        *backoff = Duration::from_millis(100);
        let mut sweep = tokio::time::interval(self.config().sweep_interval);
        // Instances whose events wait for another instance (deferred) or for another
        // process (busy): retried soon rather than at the next sweep.
        let mut again: BTreeSet<String> = BTreeSet::new();
        let mut retry = tokio::time::interval(Duration::from_millis(100));
        let adopted = {
            let mut conn = self.pool().acquire().await.map_err(on_constraint)?;
            tenancy_postgres::layout::stored(&mut conn)
                .await?
                .is_some_and(|layout| layout.adopted())
        };
        let mut poll =
            tokio::time::interval(self.config().poll_interval.max(Duration::from_millis(10)));
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut newest: HashMap<String, Decimal> = HashMap::new();
        // This process among the others on the database (leases of periodic tasks).
        let holder = holder_id();
        let mut first_sweep = true;
        loop {
            tokio::select! {
                biased;
                () = &mut *shutdown => return Ok(()),
                notification = listener.recv() => {
                    let notification = notification.map_err(on_constraint)?;
                    let instance = notification.payload().to_owned();
                    let outcome = self.catch_up(&instance, None).await?;
                    if outcome.deferred > 0 || outcome.busy {
                        again.insert(instance);
                    }
                }
                _ = retry.tick(), if !again.is_empty() => {
                    for instance in std::mem::take(&mut again) {
                        let outcome = self.catch_up(&instance, None).await?;
                        if outcome.deferred > 0 || outcome.busy {
                            again.insert(instance);
                        }
                    }
                }
                _ = sweep.tick() => {
                    // One sweep per interval for all processes on the database; but always
                    // at (re)connecting, since what happened meanwhile is ours to catch.
                    let lease = self.config().sweep_interval.mul_f64(0.9);
                    let leased = self.state().take_lease(self.pool(), "sweep", &holder, lease).await?;
                    let first = std::mem::take(&mut first_sweep);
                    if leased || first {
                        self.run_instances(None, None, |_, _, _| {}).await?;
                    }
                }
                _ = poll.tick(), if adopted => {
                    // One poller at a time: the lease outlives a few of its ticks, so a
                    // poller that dies is replaced within them.
                    let lease = self.config().poll_interval.mul_f64(3.0).max(Duration::from_secs(1));
                    if !self.state().take_lease(self.pool(), "poll", &holder, lease).await? {
                        newest.clear();
                        continue;
                    }
                    for instance in self.pushed_since_last_poll(&mut newest).await? {
                        let outcome = self.catch_up(&instance, None).await?;
                        if outcome.deferred > 0 || outcome.busy {
                            again.insert(instance);
                        }
                    }
                }
            }
        }
    }
}

impl Engine {
    /// The instances whose newest position rose since the last poll (`newest` remembers
    /// each instance's newest position seen within the lookback, and forgets older ones).
    async fn pushed_since_last_poll(
        &self,
        newest: &mut HashMap<String, Decimal>,
    ) -> Result<Vec<String>> {
        let lookback = Decimal::try_from(self.config().poll_lookback.as_secs_f64())
            .unwrap_or(Decimal::from(30));
        let rows =
            tenancy_eventstore::projection_state::newest_positions_since(self.pool(), lookback)
                .await?;
        let mut moved = Vec::new();
        let mut seen_now = HashMap::with_capacity(rows.len());
        for (instance, position) in rows {
            if newest.get(&instance).is_none_or(|seen| *seen < position) {
                moved.push(instance.clone());
            }
            seen_now.insert(instance, position);
        }
        // Only the instances within the lookback are remembered.
        *newest = seen_now;
        Ok(moved)
    }
}

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
