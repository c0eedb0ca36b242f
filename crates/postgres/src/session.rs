//! [`PgStore`] opens sessions: a [`PgSession`] is either one transaction (a unit of work)
//! or one pooled connection in autocommit mode (plain repository reads). Both implement
//! every repository port over the same `&mut PgConnection`.

use std::sync::Arc;

use async_trait::async_trait;
use sqlx::pool::PoolConnection;
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder, Transaction};
use tenancy_core::event::{NewEvent, StoredEvent};
use tenancy_core::ports::{ConsistencyToken, EventWriter, UnitOfWork, UnitOfWorkFactory};
use tenancy_core::query::{KeyValue, KeyedSort, Pagination, SortOrder, TextMatch};
use tenancy_core::{Error, Result};

use crate::error::MapDb;
use crate::replicas::{Lsn, ReadPools};

/// Pushes events on the caller's connection, inside the caller's transaction. Implemented
/// by `tenancy-eventstore`; injected here so that state writes and events commit together
/// without this crate knowing the event store's internals.
#[async_trait]
pub trait EventPusher: Send + Sync {
    /// Pushes `events` on `conn`, inside the transaction the state writes use.
    async fn push_on(
        &self,
        conn: &mut PgConnection,
        events: Vec<NewEvent>,
    ) -> Result<Vec<StoredEvent>>;
}

/// The PostgreSQL store: a pool plus the event pusher used by units of work.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    pusher: Option<Arc<dyn EventPusher>>,
    /// Where `begin_read` goes; `None`: the primary.
    reads: Option<ReadPools>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("pool", &self.pool)
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// A store whose units of work cannot push events (repository use only).
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            pusher: None,
            reads: None,
        }
    }

    /// A store whose units of work push events through `pusher` in the same transaction.
    pub fn with_events(pool: PgPool, pusher: Arc<dyn EventPusher>) -> Self {
        Self {
            pool,
            pusher: Some(pusher),
            reads: None,
        }
    }

    /// Reads of [`UnitOfWorkFactory::begin_read`] spread over `reads`' replicas (see
    /// [`crate::replicas`]); its primary should be this store's pool.
    pub fn with_read_pools(mut self, reads: ReadPools) -> Self {
        self.reads = Some(reads);
        self
    }

    /// Connects with sensible pool defaults and tenancy's session settings
    /// ([`crate::pool`]).
    pub async fn connect(url: &str) -> Result<PgPool> {
        crate::pool::connect(url).await
    }

    /// The primary's pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// A unit of work over one transaction.
    pub async fn transaction(&self) -> Result<PgSession> {
        let tx = self.pool.begin().await.db()?;
        Ok(PgSession {
            conn: Conn::Tx(Some(tx)),
            pusher: self.pusher.clone(),
        })
    }

    /// Repositories on one pooled connection in autocommit mode: each call is one
    /// statement (or its own transaction where it needs several).
    pub async fn session(&self) -> Result<PgSession> {
        let conn = self.pool.acquire().await.db()?;
        Ok(PgSession {
            conn: Conn::Pooled(conn),
            pusher: self.pusher.clone(),
        })
    }
}

#[async_trait]
impl UnitOfWorkFactory for PgStore {
    async fn begin(&self) -> Result<Box<dyn UnitOfWork>> {
        Ok(Box::new(self.transaction().await?))
    }

    /// On a replica that has replayed `at_least` when read pools are configured, else a
    /// transaction on the primary. Writes through it fail (read-only).
    async fn begin_read(&self, at_least: Option<ConsistencyToken>) -> Result<Box<dyn UnitOfWork>> {
        let Some(reads) = &self.reads else {
            return self.begin().await;
        };
        let at_least = at_least.as_ref().map(Lsn::try_from).transpose()?;
        let (tx, _) = reads.begin_read(at_least).await?;
        Ok(Box::new(PgSession {
            conn: Conn::Tx(Some(tx)),
            pusher: None,
        }))
    }

    async fn consistency_token(&self) -> Result<Option<ConsistencyToken>> {
        match &self.reads {
            Some(reads) if reads.has_replicas() => Ok(Some(reads.consistency_token().await?)),
            _ => Ok(None),
        }
    }
}

enum Conn {
    Pooled(PoolConnection<Postgres>),
    /// `None` once committed or rolled back.
    Tx(Option<Transaction<'static, Postgres>>),
}

/// Repositories on one connection or transaction.
pub struct PgSession {
    conn: Conn,
    pusher: Option<Arc<dyn EventPusher>>,
}

impl std::fmt::Debug for PgSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = match &self.conn {
            Conn::Pooled(_) => "autocommit",
            Conn::Tx(Some(_)) => "transaction",
            Conn::Tx(None) => "finished",
        };
        f.debug_struct("PgSession")
            .field("mode", &mode)
            .finish_non_exhaustive()
    }
}

impl PgSession {
    /// The connection every statement runs on.
    pub fn conn(&mut self) -> Result<&mut PgConnection> {
        match &mut self.conn {
            Conn::Pooled(c) => Ok(&mut **c),
            Conn::Tx(Some(tx)) => Ok(&mut **tx),
            Conn::Tx(None) => Err(Error::internal(
                "the unit of work is already committed or rolled back",
            )),
        }
    }

    /// Marks a point of the transaction to roll back to ([`Savepoint`]).
    pub async fn savepoint(&mut self, point: Savepoint) -> Result<()> {
        self.run_savepoint("SAVEPOINT", point).await
    }

    /// Keeps what happened since the savepoint.
    pub async fn release(&mut self, point: Savepoint) -> Result<()> {
        self.run_savepoint("RELEASE SAVEPOINT", point).await
    }

    /// Undoes what happened since the savepoint (the transaction goes on).
    pub async fn rollback_to(&mut self, point: Savepoint) -> Result<()> {
        self.run_savepoint("ROLLBACK TO SAVEPOINT", point).await
    }

    async fn run_savepoint(&mut self, verb: &str, point: Savepoint) -> Result<()> {
        // Both parts are constants of this crate, not input.
        sqlx::query(sqlx::AssertSqlSafe(format!("{verb} {}", point.0)))
            .execute(self.conn()?)
            .await
            .map_err(crate::on_constraint)
            .map(drop)
    }
}

/// A savepoint's name (a constant: names are SQL identifiers, never input).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Savepoint(&'static str);

impl Savepoint {
    /// The savepoint around one event of a projection batch.
    pub const EVENT: Savepoint = Savepoint("projection_event");
}

#[async_trait]
impl EventWriter for PgSession {
    async fn push(&mut self, events: Vec<NewEvent>) -> Result<Vec<StoredEvent>> {
        let pusher = self.pusher.clone().ok_or_else(|| {
            Error::internal(
                "this store was built without an event pusher (use PgStore::with_events)",
            )
        })?;
        if matches!(self.conn, Conn::Pooled(_)) {
            return Err(Error::internal(
                "events are pushed inside a unit of work (PgStore::transaction)",
            ));
        }
        pusher.push_on(self.conn()?, events).await
    }
}

#[async_trait]
impl UnitOfWork for PgSession {
    async fn commit(&mut self) -> Result<()> {
        match &mut self.conn {
            Conn::Tx(tx) => match tx.take() {
                Some(tx) => tx.commit().await.db(),
                None => Err(Error::internal("the unit of work is already finished")),
            },
            Conn::Pooled(_) => Ok(()),
        }
    }

    async fn rollback(&mut self) -> Result<()> {
        match &mut self.conn {
            Conn::Tx(tx) => match tx.take() {
                Some(tx) => tx.rollback().await.db(),
                None => Ok(()),
            },
            Conn::Pooled(_) => Ok(()),
        }
    }
}

/// Appends ` AND <column> <op> <bound value>` for a text match; `LIKE` patterns come
/// escaped from [`TextMatch::like_pattern`].
pub(crate) fn push_text(qb: &mut QueryBuilder<Postgres>, column: &'static str, m: &TextMatch) {
    if m.ignore_case {
        qb.push(" AND lower(").push(column).push(" COLLATE \"C\")");
    } else {
        qb.push(" AND ").push(column);
    }
    match m.like_pattern() {
        Some(pattern) => {
            qb.push(" LIKE ").push_bind(pattern);
        }
        None if m.ignore_case => {
            qb.push(" = lower(")
                .push_bind(m.value.clone())
                .push(" COLLATE \"C\")");
        }
        None => {
            qb.push(" = ").push_bind(m.value.clone());
        }
    }
}

/// Appends the keyset condition `AND (<column>, <tiebreak>) > (..)` when the page has
/// one, then `ORDER BY <column> <dir>, <tiebreak> <dir> LIMIT .. OFFSET ..`; `column` and
/// `tiebreak` come from allow-lists in the callers.
pub(crate) fn push_page<S: KeyedSort>(
    qb: &mut QueryBuilder<Postgres>,
    column: &'static str,
    tiebreak: &'static str,
    page: &Pagination<S>,
) -> Result<()> {
    page.check_keyset()?;
    let (dir, beyond) = match page.order {
        SortOrder::Ascending => (" ASC", ") > ("),
        SortOrder::Descending => (" DESC", ") < ("),
    };
    // Keyset: a row comparison on the sort columns, which an index on them serves.
    if let Some(after) = &page.after {
        qb.push(" AND (")
            .push(column)
            .push(", ")
            .push(tiebreak)
            .push(beyond);
        push_key(qb, &after.value);
        qb.push(", ");
        push_key(qb, &after.id);
        qb.push(")");
    }
    qb.push(" ORDER BY ")
        .push(column)
        .push(dir)
        .push(", ")
        .push(tiebreak)
        .push(dir);
    if let Some(limit) = page.limit {
        qb.push(" LIMIT ").push_bind(i64::from(limit));
    }
    if page.offset > 0 {
        qb.push(" OFFSET ")
            .push_bind(i64::try_from(page.offset).unwrap_or(i64::MAX));
    }
    Ok(())
}

fn push_key(qb: &mut QueryBuilder<Postgres>, value: &KeyValue) {
    match value {
        KeyValue::Text(text) => {
            qb.push_bind(text.clone()).push(" COLLATE \"C\"");
        }
        KeyValue::Time(time) => {
            qb.push_bind(*time);
        }
        KeyValue::Number(number) => {
            qb.push_bind(*number);
        }
    }
}
