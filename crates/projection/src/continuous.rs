//! Continuous mode: woken by `LISTEN/NOTIFY` from pushes and by a periodic sweep for
//! anything a notification missed; exponential, capped backoff while the database is
//! unreachable; on shutdown the batch under way finishes (commits or rolls back) first.

use std::collections::BTreeSet;
use std::future::Future;
use std::time::Duration;

use sqlx::postgres::PgListener;
use tenancy_core::Result;
use tenancy_eventstore::NOTIFY_CHANNEL;
use tenancy_postgres::on_constraint;

use crate::engine::Engine;

impl Engine {
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
                    tracing::warn!(%error, ?backoff, "projection engine backing off");
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
                    self.run_instances(None, None, |_, _, _| {}).await?;
                }
            }
        }
    }
}
