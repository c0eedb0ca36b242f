//! Port traits: what the core needs from the outside, sized by capability. Adapters
//! (`tenancy-postgres`, `tenancy-eventstore`, the in-memory adapters of `tenancy-testkit`)
//! implement them; the `mocks` feature provides mockall mocks of each.
//!
//! Write methods return the number of rows they changed where events.md allows a change
//! to aim at a row that does not exist; commands check existence beforehand, the
//! projection ignores zero.

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::error::Result;
use crate::event::{EventQuery, NewEvent, StoredEvent};
use crate::id::{InstanceId, OrgId};

// Each table's repository is defined with its table (`crate::table::<table>`): one write
// primitive, `apply_*_change`, taking its own table's change type, and its reads; the
// reducer (`state::reduce`) says which changes an event makes. Tests that want named writes
// use `tenancy_testkit::writes::RepositoryWrites`.
pub use crate::table::domain::DomainRepository;
pub use crate::table::instance::InstanceRepository;
pub use crate::table::instance_domain::InstanceDomainRepository;
pub use crate::table::org_domain::OrgDomainRepository;
pub use crate::table::organization::OrganizationRepository;
#[cfg(any(test, feature = "mocks"))]
pub use crate::table::{
    domain::MockDomainRepository, instance::MockInstanceRepository,
    instance_domain::MockInstanceDomainRepository, org_domain::MockOrgDomainRepository,
    organization::MockOrganizationRepository,
};

/// Appends events inside the caller's transaction.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait EventWriter: Send {
    /// Appends `events` to their aggregates in the caller's transaction, checking expected sequences and unique constraints; returns them with their positions.
    async fn push(&mut self, events: Vec<NewEvent>) -> Result<Vec<StoredEvent>>;
}

/// Reads events in sort-key order.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait EventReader: Send + Sync {
    /// The events `query` selects, in position order.
    async fn read(&self, query: &EventQuery) -> Result<Vec<StoredEvent>>;
    /// One aggregate's events by sequence (for write models).
    async fn read_aggregate(
        &self,
        instance_id: &str,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> Result<Vec<StoredEvent>>;
}

/// Every state repository at once.
pub trait Repositories:
    InstanceRepository
    + OrganizationRepository
    + InstanceDomainRepository
    + OrgDomainRepository
    + DomainRepository
{
}

impl<T> Repositories for T where
    T: InstanceRepository
        + OrganizationRepository
        + InstanceDomainRepository
        + OrgDomainRepository
        + DomainRepository
        + ?Sized
{
}

/// One transaction: the state writes and the pushed events of a command commit together
/// or not at all. Dropping it without `commit` rolls back.
#[async_trait]
pub trait UnitOfWork: Repositories + EventWriter {
    /// Makes every write of the unit visible at once.
    async fn commit(&mut self) -> Result<()>;
    /// Discards every write of the unit.
    async fn rollback(&mut self) -> Result<()>;
}

/// A position in the database's history, handed out after a write: a read given it sees
/// that write, on whichever copy of the database serves the read. Opaque to callers
/// (PostgreSQL: the primary's WAL position, `16/B374D848`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConsistencyToken(pub String);

/// Opens units of work.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait UnitOfWorkFactory: Send + Sync {
    /// A unit of work for commands: it reads and writes the primary.
    async fn begin(&self) -> Result<Box<dyn UnitOfWork>>;

    /// A unit of work for reads only. An adapter with read replicas serves it from one
    /// that has replayed at least `at_least` (else from the primary); without replicas,
    /// or with no token and a replica that is healthy, reads may lag the last writes by
    /// the replica's lag. The default is [`Self::begin`].
    async fn begin_read(&self, at_least: Option<ConsistencyToken>) -> Result<Box<dyn UnitOfWork>> {
        let _ = at_least;
        self.begin().await
    }

    /// The token of every write committed so far, for a caller to read its writes on a
    /// replica; `None` when reads cannot lag (no replicas). The default is `None`.
    async fn consistency_token(&self) -> Result<Option<ConsistencyToken>> {
        Ok(None)
    }
}

/// Routes requests: the instance a Host header names, and the organization of an
/// instance that verified a domain. Production answers from a cache
/// (`tenancy_postgres::hosts::HostResolver`); both answer NotFound for an unknown host.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait HostLookup: Send + Sync {
    /// The live instance whose custom domain is the host of `host` (an HTTP `Host` header: port, case and a trailing dot do not matter), or NotFound.
    async fn instance_by_host(&self, host: &str) -> Result<InstanceId>;
    /// The live organization of `instance_id` that verified `domain`, or NotFound.
    async fn org_by_domain(&self, instance_id: &InstanceId, domain: &str) -> Result<OrgId>;
}

/// The time commands stamp on rows and events.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait Clock: Send + Sync {
    /// The current time, at microsecond precision (what PostgreSQL stores).
    fn now(&self) -> OffsetDateTime;
}

/// Produces new object ids (ZITADEL-compatible decimal strings in production).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait IdGenerator: Send + Sync {
    /// A new id; an error when none can be produced safely (e.g. a lost machine id lease).
    fn next_id(&self) -> Result<String>;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        // Microseconds: what PostgreSQL keeps, so a value read back equals the one written.
        let now = OffsetDateTime::now_utc();
        now.replace_nanosecond(now.nanosecond() / 1_000 * 1_000)
            .unwrap_or(now)
    }
}

/// Sonyflake ids at the system clock.
#[derive(Debug)]
pub struct SonyflakeGenerator {
    inner: std::sync::Mutex<crate::id::SonyflakeIds>,
}

impl SonyflakeGenerator {
    /// Ids with `machine_id` in the machine bits; two processes need different machine ids (`tenancy_postgres::ids::LeasedIds` leases one).
    pub fn new(machine_id: u16) -> Self {
        Self {
            inner: std::sync::Mutex::new(crate::id::SonyflakeIds::new(machine_id)),
        }
    }
}

impl IdGenerator for SonyflakeGenerator {
    fn next_id(&self) -> Result<String> {
        let mut ids = self
            .inner
            .lock()
            .map_err(|_| crate::Error::internal("id generator lock poisoned"))?;
        ids.next_id(OffsetDateTime::now_utc())
    }
}
