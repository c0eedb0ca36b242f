//! A task that one process of all on the database does at a time, held as a session-level
//! advisory lock on a connection of its own (as the machine-id leases of [`crate::ids`]).
//!
//! Every process keeps such a connection waiting in `pg_advisory_lock`; the lock's holder
//! is the leader. When the leader's process dies (SIGKILL included) the kernel closes its
//! socket, PostgreSQL ends its backend and releases the lock, and a waiting process gets
//! it at once: no lease has to expire first. While waiting, a process runs no statement
//! at all (an idle replica costs the database nothing for this), and its connection shows
//! in `pg_stat_activity` as waiting on an advisory lock, under the application name
//! `tenancy leader? <task> pid <process id>` (the holder's reads `tenancy leader ...`).

use std::time::Duration;

use crate::on_constraint;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions as _, Connection as _, PgPool};
use tenancy_core::Result;
use tokio::sync::watch;

/// The first key of the advisory locks of [`Leadership`] (`'tnld'`); the second is
/// `hashtext(<task>)`, the task being `<projection>:<name>`, e.g. `relational_tables:poll`.
pub const LEADERSHIP_LOCK_CLASS: i32 = 0x746e_6c64;
/// What precedes the process id in a lock connection's name (`leader_of` reads it back).
const PID_MARK: &str = " pid ";
/// How often the leader checks its connection (a protocol-level ping: no transaction).
const CHECK_EVERY: Duration = Duration::from_secs(2);
/// The pause before connecting again after an error.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Whether this process leads `task`, kept up to date by a task of its own for as long as
/// the value lives; dropping it gives the lead up at once.
#[derive(Debug)]
pub struct Leadership {
    held: watch::Receiver<bool>,
    keeper: tokio::task::JoinHandle<()>,
}

impl Leadership {
    /// Starts waiting for the lead of `task` on a connection of its own to the database
    /// of `pool` (not one of the pool's). Not held until the lock is granted.
    pub fn wait_for(pool: &PgPool, task: String) -> Self {
        let options = (*pool.connect_options()).clone();
        let (sender, held) = watch::channel(false);
        let keeper = tokio::spawn(keep(options, task, sender));
        Self { held, keeper }
    }

    /// Whether this process leads now.
    pub fn held(&self) -> bool {
        *self.held.borrow()
    }

    /// Waits until the lead is taken or lost, and returns whether it is held.
    pub async fn changed(&mut self) -> Result<bool> {
        self.held
            .changed()
            .await
            .map_err(|_| tenancy_core::Error::internal("the leadership keeper ended"))?;
        Ok(*self.held.borrow_and_update())
    }
}

/// The process leading a task, as the database sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leader {
    /// The server process of its lock connection (`pg_stat_activity.pid`).
    pub backend_pid: i32,
    /// Its operating-system process id, as its connection's name gives it (`None` when
    /// the name was cut at PostgreSQL's 63 bytes: a very long task name).
    pub process_id: Option<u32>,
}

/// Who leads `task` (`<projection>:<name>`) now, if anyone: for operators' checks, tests
/// and benchmarks, one query on `pg_locks`.
pub async fn leader_of(pool: &PgPool, task: &str) -> Result<Option<Leader>> {
    let holder: Option<(i32, Option<String>)> = sqlx::query_as(
        "SELECT l.pid, a.application_name FROM pg_locks l
         LEFT JOIN pg_stat_activity a ON a.pid = l.pid
         WHERE l.locktype = 'advisory' AND l.granted AND l.classid = $1::oid
           AND l.objid = hashtext($2)::oid AND l.objsubid = 2
         LIMIT 1",
    )
    .bind(LEADERSHIP_LOCK_CLASS)
    .bind(task)
    .fetch_optional(pool)
    .await
    .map_err(on_constraint)?;
    Ok(holder.map(|(backend_pid, name)| Leader {
        backend_pid,
        process_id: name
            .as_deref()
            .and_then(|name| name.rsplit_once(PID_MARK))
            .and_then(|(_, pid)| pid.parse().ok()),
    }))
}

impl Drop for Leadership {
    fn drop(&mut self) {
        // The keeper owns the connection: ending it closes the session and frees the lock.
        self.keeper.abort();
    }
}

/// Waits for the lock, reports it held, checks the connection while it is, and starts
/// over when it breaks.
async fn keep(options: PgConnectOptions, task: String, held: watch::Sender<bool>) {
    loop {
        match lead(&options, &task).await {
            Ok(mut conn) => {
                tracing::debug!(%task, "took the lead");
                held.send_replace(true);
                while conn.ping().await.is_ok() {
                    tokio::time::sleep(CHECK_EVERY).await;
                }
                held.send_replace(false);
                tracing::warn!(%task, "lost the lead (its connection broke)");
            }
            Err(error) => {
                tracing::warn!(%task, error = %error.chain(), "waiting for the lead failed; retrying");
                tokio::time::sleep(RETRY_AFTER).await;
            }
        }
    }
}

/// A connection that holds the lock of `task`, once it is granted.
async fn lead(options: &PgConnectOptions, task: &str) -> Result<PgConnection> {
    let name = |prefix: &str| {
        let mut name = format!("{prefix} {task}{PID_MARK}{}", std::process::id());
        name.truncate(63); // PostgreSQL's limit (NAMEDATALEN - 1)
        name
    };
    // The wait has no end by design: an operator's statement or session timeouts (set
    // for the role or the database) do not apply to this connection.
    let mut conn = options
        .clone()
        .application_name(&name("tenancy leader?"))
        .options([("statement_timeout", "0"), ("idle_session_timeout", "0")])
        .connect()
        .await
        .map_err(on_constraint)?;
    sqlx::query("SELECT pg_advisory_lock($1, hashtext($2))")
        .bind(LEADERSHIP_LOCK_CLASS)
        .bind(task)
        .execute(&mut conn)
        .await
        .map_err(on_constraint)?;
    sqlx::query("SELECT set_config('application_name', $1, false)")
        .bind(name("tenancy leader"))
        .execute(&mut conn)
        .await
        .map_err(on_constraint)?;
    Ok(conn)
}
