//! A primary and a streaming replica of it, started from the local server binaries, for
//! tests of reads on replicas. Each [`Replicated`] has clusters of its own (a replica of
//! the shared test server would stream every other test's writes), removed on drop.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sqlx::PgPool;
use tenancy_postgres::embedded::EmbeddedCluster;
use tenancy_postgres::replicas::{Lsn, current_lsn};

use crate::db::ProvisionError;

/// A migrated database `tenancy` on a primary, and a hot standby that streams it.
#[derive(Debug)]
pub struct Replicated {
    /// The primary's cluster.
    pub primary: EmbeddedCluster,
    /// The hot standby's cluster, streaming from the primary.
    pub replica: EmbeddedCluster,
    /// The primary's `tenancy` database, with tenancy's session settings.
    pub pool: PgPool,
    root: PathBuf,
}

fn fail(what: &str, e: impl std::fmt::Display) -> ProvisionError {
    ProvisionError(format!("{what}: {e}"))
}

impl Replicated {
    /// A primary with a migrated `tenancy` database and a replica of it, started with
    /// `replica_options` (e.g. `-c recovery_min_apply_delay=300ms`), caught up.
    pub async fn start(replica_options: &str) -> Result<Self, ProvisionError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let root = std::env::temp_dir().join(format!(
            "tenancy-replicated-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&root);
        let primary_root = root.join("primary");
        let primary =
            tokio::task::spawn_blocking(move || EmbeddedCluster::start(&primary_root, false))
                .await
                .map_err(|e| fail("starting the primary", e))?
                .map_err(|e| fail("starting the primary", e))?;
        tenancy_postgres::embedded::ensure_database(&primary.url(), "tenancy")
            .await
            .map_err(|e| fail("creating the database", e))?;
        let pool = tenancy_postgres::pool::connect(&primary.database_url("tenancy"))
            .await
            .map_err(|e| fail("connecting to the primary", e))?;
        tenancy_postgres::migrate::migrate(&pool)
            .await
            .map_err(|e| fail("migrating the primary", e))?;
        let (of, replica_root, options) = (
            primary.clone(),
            root.join("replica"),
            replica_options.to_owned(),
        );
        let replica = tokio::task::spawn_blocking(move || {
            EmbeddedCluster::replica_of(&of, &replica_root, &options)
        })
        .await
        .map_err(|e| fail("starting the replica", e))?
        .map_err(|e| fail("starting the replica", e))?;
        let replicated = Self {
            primary,
            replica,
            pool,
            root,
        };
        replicated.caught_up().await?;
        Ok(replicated)
    }

    /// The URL of the replica's `tenancy` database.
    pub fn replica_url(&self) -> String {
        self.replica.database_url("tenancy")
    }

    /// The URL of the primary's `tenancy` database.
    pub fn primary_url(&self) -> String {
        self.primary.database_url("tenancy")
    }

    async fn on_replica(&self, sql: &'static str) -> Result<(), ProvisionError> {
        let pool = tenancy_postgres::pool::connect(&self.replica_url())
            .await
            .map_err(|e| fail("connecting to the replica", e))?;
        sqlx::query(sql)
            .execute(&pool)
            .await
            .map_err(|e| fail(sql, e))?;
        pool.close().await;
        Ok(())
    }

    /// Holds the replica where it is: it receives WAL but replays none until resumed.
    pub async fn pause_replay(&self) -> Result<(), ProvisionError> {
        self.on_replica("SELECT pg_wal_replay_pause()").await
    }

    /// Lets the replica replay again (after [`Self::pause_replay`]).
    pub async fn resume_replay(&self) -> Result<(), ProvisionError> {
        self.on_replica("SELECT pg_wal_replay_resume()").await
    }

    /// Waits (up to 30 s) until the replica has replayed everything committed so far.
    pub async fn caught_up(&self) -> Result<(), ProvisionError> {
        let target = current_lsn(&self.pool)
            .await
            .map_err(|e| fail("reading the primary's position", e))?;
        let pool = tenancy_postgres::pool::connect(&self.replica_url())
            .await
            .map_err(|e| fail("connecting to the replica", e))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let replayed: Option<i64> =
                sqlx::query_scalar("SELECT (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint")
                    .fetch_one(&pool)
                    .await
                    .map_err(|e| fail("reading the replica's position", e))?;
            if replayed.is_some_and(|r| Lsn(r as u64) >= target) {
                pool.close().await;
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(ProvisionError(format!(
                    "the replica did not replay {target} within 30 s"
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Replicated {
    fn drop(&mut self) {
        let _ = self.replica.stop();
        let _ = self.primary.stop();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}
