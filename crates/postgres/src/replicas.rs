//! Reads spread over PostgreSQL streaming replicas (hot standbys), writes on the primary.
//!
//! [`ReadPools`] holds the primary's pool and one pool per configured replica. A check
//! every `check_interval` reads, on the primary, its WAL position and, on each replica,
//! whether it is still a standby and how far it has replayed. A replica serves reads while
//! it answers, is still in recovery (a promoted replica is another timeline: it leaves the
//! rotation) and lags by at most `max_lag`; otherwise reads go to the other replicas, else
//! to the primary. A replica that fails when a read starts is taken out at once and the
//! read moves on; the next check that finds it healthy puts it back.
//!
//! **Read your writes.** A write hands out a [`ConsistencyToken`]: the primary's WAL
//! position after its commit. A read given the token goes to a replica known to have
//! replayed that far (replay only moves forward, so the position read by the last check is
//! a lower bound), else to the primary.
//!
//! Everything that must see the primary stays there: commands, the projection, `LISTEN`
//! (a standby cannot listen), the migrations.

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres, Transaction};
use tenancy_core::ports::ConsistencyToken;
use tenancy_core::{Error, Result};

use crate::error::MapDb;

/// A WAL position (PostgreSQL's `pg_lsn`), as a byte offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lsn(pub u64);

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

impl FromStr for Lsn {
    type Err = Error;

    /// `16/B374D848`, as PostgreSQL prints a `pg_lsn`.
    fn from_str(text: &str) -> Result<Self> {
        let invalid = || {
            Error::invalid(
                "consistency token",
                format!("{text:?} is not a WAL position such as 16/B374D848"),
            )
        };
        let (high, low) = text.split_once('/').ok_or_else(invalid)?;
        if high.is_empty() || low.is_empty() || high.len() > 8 || low.len() > 8 {
            return Err(invalid());
        }
        let high = u64::from_str_radix(high, 16).map_err(|_| invalid())?;
        let low = u64::from_str_radix(low, 16).map_err(|_| invalid())?;
        Ok(Self((high << 32) | low))
    }
}

impl From<Lsn> for ConsistencyToken {
    fn from(lsn: Lsn) -> Self {
        Self(lsn.to_string())
    }
}

impl TryFrom<&ConsistencyToken> for Lsn {
    type Error = Error;
    fn try_from(token: &ConsistencyToken) -> Result<Self> {
        token.0.parse()
    }
}

/// The primary's position after every commit that has returned: the WAL insert
/// position (not `pg_current_wal_lsn()`, the write position: with `synchronous_commit =
/// off` a commit returns before its record is written). Where the insert position is just
/// past a page header (the last record ended at the page's start), the header is taken
/// off: a replica's replay position is the end of the last record, so it would never
/// reach the header's end on an idle primary.
pub const CURRENT_POSITION_SQL: &str = "\
    WITH p AS (SELECT pg_current_wal_insert_lsn() - '0/0'::pg_lsn AS at, \
                      pg_size_bytes(current_setting('wal_segment_size')) AS segment, \
                      current_setting('wal_block_size')::numeric AS page) \
    SELECT (CASE WHEN at % segment = 40 THEN at - 40 \
                 WHEN at % page = 24 THEN at - 24 \
                 ELSE at END)::bigint FROM p";

/// [`CURRENT_POSITION_SQL`] on a pool or a connection of the primary.
pub async fn current_lsn<'e>(primary: impl sqlx::PgExecutor<'e>) -> Result<Lsn> {
    let lsn: i64 = sqlx::query_scalar(CURRENT_POSITION_SQL)
        .fetch_one(primary)
        .await
        .db()?;
    Ok(Lsn(lsn as u64))
}

/// When a replica serves reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaConfig {
    /// A replica further behind than this serves no reads until it catches up.
    pub max_lag: Duration,
    /// How often the replicas are checked (lag, still a standby, reachable).
    pub check_interval: Duration,
    /// How long a read waits for a replica connection before it moves on.
    pub acquire_timeout: Duration,
}

impl Default for ReplicaConfig {
    fn default() -> Self {
        Self {
            max_lag: Duration::from_secs(5),
            check_interval: Duration::from_secs(1),
            acquire_timeout: Duration::from_secs(2),
        }
    }
}

/// Where a read was served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// The primary's pool.
    Primary,
    /// The replica at this index of the configuration.
    Replica(usize),
}

/// One pool's figures, for metrics and status.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolStats {
    /// `primary`, or the replica's `host:port`.
    pub name: String,
    /// Whether this is the primary's pool.
    pub is_primary: bool,
    /// Serving reads now (the primary always is).
    pub healthy: bool,
    /// Reads begun on this pool since start.
    pub reads: u64,
    /// How far behind the primary the last check found it (0 for the primary).
    pub lag: Duration,
    /// Why it serves no reads, when it does not.
    pub reason: Option<String>,
}

struct Replica {
    name: String,
    pool: PgPool,
    healthy: AtomicBool,
    /// Replayed WAL position found by the last check (a lower bound of the present one).
    replayed: AtomicU64,
    lag_ms: AtomicU64,
    reads: AtomicU64,
    reason: Mutex<Option<String>>,
}

impl Replica {
    fn set_down(&self, reason: String) {
        if self.healthy.swap(false, Ordering::AcqRel) {
            tracing::warn!(replica = %self.name, %reason, "replica serves no reads");
        }
        *self.reason.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason);
    }

    fn set_up(&self) {
        if !self.healthy.swap(true, Ordering::AcqRel) {
            tracing::info!(replica = %self.name, "replica serves reads");
        }
        *self.reason.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

struct Inner {
    primary: PgPool,
    replicas: Vec<Replica>,
    config: ReplicaConfig,
    next: AtomicUsize,
    primary_reads: AtomicU64,
    /// The primary's WAL position over time, newest last: how far behind a replay
    /// position is, in time.
    samples: Mutex<VecDeque<(Instant, Lsn)>>,
}

/// The primary's pool and the replicas' pools; cheap to clone.
#[derive(Clone)]
pub struct ReadPools {
    inner: Arc<Inner>,
    _checker: Arc<Checker>,
}

struct Checker(Option<tokio::task::JoinHandle<()>>);

impl Drop for Checker {
    fn drop(&mut self) {
        if let Some(task) = &self.0 {
            task.abort();
        }
    }
}

impl fmt::Debug for ReadPools {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadPools")
            .field("replicas", &self.inner.replicas.len())
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// `host:port` of a replica's options, for names in logs and metrics (never credentials).
fn name_of(options: &PgConnectOptions) -> String {
    format!("{}:{}", options.get_host(), options.get_port())
}

impl ReadPools {
    /// Reads on the primary only: what a store without replicas does.
    pub fn primary_only(primary: PgPool) -> Self {
        Self::build(primary, Vec::new(), ReplicaConfig::default(), false)
    }

    /// The primary and a pool per replica URL, connected lazily (a replica that is down
    /// at start is checked and used once it answers), with the primary's session settings
    /// and `search_path`; starts the checks and runs the first before returning.
    pub async fn connect(primary: PgPool, urls: &[String], config: ReplicaConfig) -> Result<Self> {
        let search_path: String = sqlx::query_scalar("SHOW search_path")
            .fetch_one(&primary)
            .await
            .db()?;
        let mut replicas = Vec::new();
        for url in urls {
            let options: PgConnectOptions = url.parse().map_err(|e| {
                Error::invalid("read_database_urls", format!("not a PostgreSQL URL: {e}"))
            })?;
            let name = name_of(&options);
            let options = options
                .options(crate::pool::SESSION_SETTINGS)
                .options([("search_path", search_path.as_str())]);
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(config.acquire_timeout)
                .connect_lazy_with(options);
            replicas.push((name, pool));
        }
        let pools = Self::build(primary, replicas, config, true);
        pools.check().await;
        Ok(pools)
    }

    fn build(
        primary: PgPool,
        replicas: Vec<(String, PgPool)>,
        config: ReplicaConfig,
        check: bool,
    ) -> Self {
        let inner = Arc::new(Inner {
            primary,
            replicas: replicas
                .into_iter()
                .map(|(name, pool)| Replica {
                    name,
                    pool,
                    healthy: AtomicBool::new(false),
                    replayed: AtomicU64::new(0),
                    lag_ms: AtomicU64::new(0),
                    reads: AtomicU64::new(0),
                    reason: Mutex::new(Some("not checked yet".into())),
                })
                .collect(),
            config,
            next: AtomicUsize::new(0),
            primary_reads: AtomicU64::new(0),
            samples: Mutex::new(VecDeque::new()),
        });
        let task = (check && !inner.replicas.is_empty())
            .then(|| tokio::spawn(check_loop(Arc::downgrade(&inner))));
        Self {
            inner,
            _checker: Arc::new(Checker(task)),
        }
    }

    /// The primary's pool: every write, and reads that must see the last commit.
    pub fn primary(&self) -> &PgPool {
        &self.inner.primary
    }

    /// Whether any replica is configured (reads can lag, tokens mean something).
    pub fn has_replicas(&self) -> bool {
        !self.inner.replicas.is_empty()
    }

    /// Runs one check of every replica now.
    pub async fn check(&self) {
        check_once(&self.inner).await;
    }

    /// The replicas serving reads that have replayed `at_least`, round robin.
    fn candidates(&self, at_least: Lsn) -> impl Iterator<Item = (usize, &Replica)> {
        let replicas = &self.inner.replicas;
        let start = self.inner.next.fetch_add(1, Ordering::Relaxed);
        (0..replicas.len())
            .map(move |offset| (start + offset) % replicas.len())
            .map(move |index| (index, &replicas[index]))
            .filter(move |(_, replica)| {
                replica.healthy.load(Ordering::Acquire)
                    && Lsn(replica.replayed.load(Ordering::Acquire)) >= at_least
            })
    }

    /// A read-only transaction on a replica that has replayed `at_least` (any healthy one
    /// without a token), else on the primary. A replica that fails to start it leaves the
    /// rotation and the next one is tried.
    pub async fn begin_read(
        &self,
        at_least: Option<Lsn>,
    ) -> Result<(Transaction<'static, Postgres>, Served)> {
        for (index, replica) in self.candidates(at_least.unwrap_or_default()) {
            match replica.pool.begin().await {
                Ok(tx) => {
                    replica.reads.fetch_add(1, Ordering::Relaxed);
                    return Ok((tx, Served::Replica(index)));
                }
                Err(e) => replica.set_down(format!("starting a read failed: {e}")),
            }
        }
        let tx = self
            .inner
            .primary
            .begin_with("BEGIN READ ONLY")
            .await
            .db()?;
        self.inner.primary_reads.fetch_add(1, Ordering::Relaxed);
        Ok((tx, Served::Primary))
    }

    /// The pool of a replica that has replayed `at_least`, else the primary's: for single
    /// statements outside a transaction (host resolution).
    pub fn read_pool(&self, at_least: Lsn) -> (&PgPool, Served) {
        if let Some((index, replica)) = self.candidates(at_least).next() {
            replica.reads.fetch_add(1, Ordering::Relaxed);
            return (&replica.pool, Served::Replica(index));
        }
        self.inner.primary_reads.fetch_add(1, Ordering::Relaxed);
        (&self.inner.primary, Served::Primary)
    }

    /// A replica whose statement failed: out of the rotation until a check finds it well.
    pub fn report_failure(&self, served: Served, error: &str) {
        if let Served::Replica(index) = served
            && let Some(replica) = self.inner.replicas.get(index)
        {
            replica.set_down(format!("a read failed: {error}"));
        }
    }

    /// The token of every commit so far (the primary's WAL position).
    pub async fn consistency_token(&self) -> Result<ConsistencyToken> {
        Ok(current_lsn(&self.inner.primary).await?.into())
    }

    /// Per pool: reads served, health, lag.
    pub fn stats(&self) -> Vec<PoolStats> {
        let inner = &self.inner;
        let mut stats = vec![PoolStats {
            name: "primary".into(),
            is_primary: true,
            healthy: true,
            reads: inner.primary_reads.load(Ordering::Relaxed),
            lag: Duration::ZERO,
            reason: None,
        }];
        stats.extend(inner.replicas.iter().map(|r| PoolStats {
            name: r.name.clone(),
            is_primary: false,
            healthy: r.healthy.load(Ordering::Acquire),
            reads: r.reads.load(Ordering::Relaxed),
            lag: Duration::from_millis(r.lag_ms.load(Ordering::Relaxed)),
            reason: r.reason.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        }));
        stats
    }
}

async fn check_loop(inner: Weak<Inner>) {
    loop {
        let Some(strong) = inner.upgrade() else {
            return;
        };
        let interval = strong.config.check_interval;
        check_once(&strong).await;
        drop(strong);
        tokio::time::sleep(interval).await;
    }
}

/// How long ago the primary was last at or before `replayed`: the replica has everything
/// the primary had then, and lacks what came after (a lower bound of its lag, to the
/// sampling interval).
fn lag_of(samples: &VecDeque<(Instant, Lsn)>, replayed: Lsn, now: Instant) -> Duration {
    match samples.iter().find(|(_, lsn)| *lsn > replayed) {
        None => Duration::ZERO,
        Some((first_missing, _)) => now.saturating_duration_since(*first_missing),
    }
}

async fn check_once(inner: &Inner) {
    let timeout = inner.config.check_interval.max(Duration::from_millis(500));
    let now = Instant::now();
    match tokio::time::timeout(timeout, current_lsn(&inner.primary)).await {
        Ok(Ok(lsn)) => {
            let mut samples = inner.samples.lock().unwrap_or_else(|p| p.into_inner());
            samples.push_back((now, lsn));
            let keep = inner.config.max_lag * 4 + Duration::from_secs(10);
            while samples
                .front()
                .is_some_and(|(at, _)| now.saturating_duration_since(*at) > keep)
            {
                samples.pop_front();
            }
        }
        // Without the primary no lag can be measured; the replicas keep their state.
        _ => return,
    }
    for replica in &inner.replicas {
        let probe = sqlx::query_as::<_, (bool, Option<i64>)>(
            "SELECT pg_is_in_recovery(), (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint",
        )
        .fetch_one(&replica.pool);
        match tokio::time::timeout(timeout, probe).await {
            Err(_) => replica.set_down(format!("no answer within {timeout:?}")),
            Ok(Err(e)) => replica.set_down(format!("unreachable: {e}")),
            Ok(Ok((false, _))) => {
                replica
                    .set_down("not a standby (promoted?): it no longer follows the primary".into());
            }
            Ok(Ok((true, replayed))) => {
                let replayed = Lsn(replayed.unwrap_or(0) as u64);
                replica.replayed.fetch_max(replayed.0, Ordering::AcqRel);
                let lag = {
                    let samples = inner.samples.lock().unwrap_or_else(|p| p.into_inner());
                    lag_of(&samples, replayed, Instant::now())
                };
                replica
                    .lag_ms
                    .store(lag.as_millis() as u64, Ordering::Relaxed);
                if lag > inner.config.max_lag {
                    replica.set_down(format!(
                        "{lag:?} behind the primary (max_lag {:?})",
                        inner.config.max_lag
                    ));
                } else {
                    replica.set_up();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_print_and_parse_as_postgresql_does() {
        let lsn: Lsn = "16/B374D848".parse().unwrap_or_default();
        assert_eq!(lsn, Lsn((0x16 << 32) | 0xB374_D848));
        assert_eq!(lsn.to_string(), "16/B374D848");
        assert_eq!("0/0".parse::<Lsn>().ok(), Some(Lsn(0)));
        for wrong in ["", "16", "/1", "1/", "x/1", "1/2/3", "123456789/0", "-1/0"] {
            assert!(wrong.parse::<Lsn>().is_err(), "{wrong:?}");
        }
    }

    #[test]
    fn lag_is_the_age_of_the_first_position_not_replayed() {
        let now = Instant::now();
        let samples: VecDeque<(Instant, Lsn)> = [
            (now - Duration::from_secs(3), Lsn(100)),
            (now - Duration::from_secs(2), Lsn(200)),
            (now - Duration::from_secs(1), Lsn(300)),
        ]
        .into();
        assert_eq!(lag_of(&samples, Lsn(300), now), Duration::ZERO);
        assert_eq!(lag_of(&samples, Lsn(250), now), Duration::from_secs(1));
        assert_eq!(lag_of(&samples, Lsn(150), now), Duration::from_secs(2));
        assert_eq!(lag_of(&samples, Lsn(0), now), Duration::from_secs(3));
    }
}
