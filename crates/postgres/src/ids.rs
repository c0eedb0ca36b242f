//! Ids unique across every process on one database, without configuration.
//!
//! ZITADEL's ids are sonyflake ids: time, a sequence, and a 16-bit machine id. Two
//! processes with the same machine id generate the same ids in the same 10 ms tick, so
//! each process leases its machine id from the database: a session-level advisory lock
//! `(MACHINE_ID_LOCK_CLASS, machine_id)` held on a connection of its own for the life of
//! the process. Another process cannot take a held id; when all 65,535 are taken the
//! lease is refused. If the lease's connection breaks, the lock is gone with it (another
//! process may take the id), so the generator stops handing out ids until it holds a
//! lease again, preferably on the same id.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions as _, Connection as _, PgPool};
use tenancy_core::id::SonyflakeIds;
use tenancy_core::ports::IdGenerator;
use tenancy_core::{Error, Result};
use time::OffsetDateTime;

use crate::on_constraint;

/// The first key of the advisory locks that hold machine ids (`'teny'`).
pub const MACHINE_ID_LOCK_CLASS: i32 = 0x7465_6e79;
/// How often the lease's connection is checked.
const CHECK_EVERY: Duration = Duration::from_secs(2);
/// `0` stands for "no lease held"; machine ids are 1..=65535.
const NONE: u32 = 0;

/// A sonyflake [`IdGenerator`] whose machine id is leased from the database.
#[derive(Debug)]
pub struct LeasedIds {
    machine_id: Arc<AtomicU32>,
    ids: std::sync::Mutex<SonyflakeIds>,
    keeper: tokio::task::JoinHandle<()>,
}

impl LeasedIds {
    /// Leases a free machine id on the database of `pool` (its own connection, not one of
    /// the pool's), and keeps the lease for as long as the value lives. `Unavailable`
    /// when every machine id is held.
    pub async fn lease(pool: &PgPool) -> Result<Self> {
        let options = (*pool.connect_options()).clone();
        let (conn, id) = take_lease(&options, None).await?;
        tracing::info!(machine_id = id, "leased a machine id for generated ids");
        let machine_id = Arc::new(AtomicU32::new(u32::from(id)));
        let keeper = tokio::spawn(keep(options, conn, id, machine_id.clone()));
        Ok(Self {
            machine_id,
            ids: std::sync::Mutex::new(SonyflakeIds::new(id)),
            keeper,
        })
    }

    /// The machine id held now (`None` while the lease is being taken again).
    pub fn machine_id(&self) -> Option<u16> {
        u16::try_from(self.machine_id.load(Ordering::Acquire))
            .ok()
            .filter(|id| *id != 0)
    }
}

impl Drop for LeasedIds {
    fn drop(&mut self) {
        // The keeper owns the lease's connection: ending it releases the lock.
        self.keeper.abort();
    }
}

impl IdGenerator for LeasedIds {
    fn next_id(&self) -> Result<String> {
        let machine_id = self.machine_id().ok_or_else(|| {
            Error::Unavailable(
                "no machine id leased (the database connection holding it broke)".into(),
            )
        })?;
        let mut ids = self
            .ids
            .lock()
            .map_err(|_| Error::internal("id generator lock poisoned"))?;
        if ids.machine_id() != machine_id {
            *ids = SonyflakeIds::new(machine_id);
        }
        ids.next_id(OffsetDateTime::now_utc())
    }
}

/// A connection holding the lock of a free machine id: `preferred` first, then from a
/// random start, so that processes starting together do not all race for the same id.
async fn take_lease(
    options: &PgConnectOptions,
    preferred: Option<u16>,
) -> Result<(PgConnection, u16)> {
    let mut conn = options.connect().await.map_err(on_constraint)?;
    let start = preferred.map_or_else(|| i32::from(rand_u16()), |id| i32::from(id) - 1);
    // One statement tries the ids in turn and stops at the first lock it gets: rows
    // filtered out never took their lock, and LIMIT 1 pulls no row past the first.
    let leased: Option<i32> = sqlx::query_scalar(
        "SELECT id FROM (SELECT ((g + $2) % 65535) + 1 AS id FROM generate_series(0, 65534) AS g) AS ids \
         WHERE pg_try_advisory_lock($1, id) LIMIT 1",
    )
    .bind(MACHINE_ID_LOCK_CLASS)
    .bind(start)
    .fetch_optional(&mut conn)
    .await
    .map_err(on_constraint)?;
    let id = leased
        .and_then(|id| u16::try_from(id).ok())
        .ok_or_else(|| {
            Error::Unavailable("every machine id (1..=65535) is leased by another process".into())
        })?;
    Ok((conn, id))
}

/// Checks the lease's connection; when it breaks, stops the generator and leases again.
async fn keep(
    options: PgConnectOptions,
    mut conn: PgConnection,
    id: u16,
    machine_id: Arc<AtomicU32>,
) {
    let mut id = id;
    loop {
        tokio::time::sleep(CHECK_EVERY).await;
        if conn.ping().await.is_ok() {
            continue;
        }
        machine_id.store(NONE, Ordering::Release);
        tracing::warn!(
            machine_id = id,
            "lost the machine id lease: no ids until it is taken again"
        );
        loop {
            match take_lease(&options, Some(id)).await {
                Ok((new_conn, new_id)) => {
                    conn = new_conn;
                    id = new_id;
                    machine_id.store(u32::from(id), Ordering::Release);
                    tracing::info!(machine_id = id, "leased a machine id again");
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e.chain(), "leasing a machine id failed; retrying");
                    tokio::time::sleep(CHECK_EVERY).await;
                }
            }
        }
    }
}

/// A start for the search; not security relevant, only spreads concurrent starts.
fn rand_u16() -> u16 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    (nanos ^ std::process::id().rotate_left(16)) as u16
}
