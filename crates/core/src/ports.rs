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
use crate::model::{
    Domain, Instance, InstanceDomain, InstanceDomainKind, InstanceDomainType, Organization,
    OrganizationDomain, ValidationType,
};
use crate::query::{
    DomainCriteria, DomainOwner, DomainSort, InstanceCriteria, NameSort, OrganizationCriteria,
    Pagination, TextMatch,
};
use crate::state::{
    DomainChange, InstanceChange, InstanceDomainChange, InstanceUpdate, OrgDomainChange,
    OrganizationChange, OrganizationUpdate,
};

// Each repository has one required write primitive (`apply_*_change`, applying a
// `StateChange` of its table); its named write methods are provided on top of it, so the
// mapping from method to change exists once, here, for every adapter.

/// `zitadel.instances`.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait InstanceRepository: Send {
    /// Applies one change of `zitadel.instances`; returns the rows changed.
    async fn apply_instance_change(
        &mut self,
        change: InstanceChange,
        at: OffsetDateTime,
    ) -> Result<u64>;
    /// A live instance, or NotFound.
    async fn get_instance(&mut self, id: &InstanceId) -> Result<Instance>;
    async fn list_instances(
        &mut self,
        criteria: &InstanceCriteria,
        page: &Pagination<NameSort>,
    ) -> Result<Vec<Instance>>;
    /// How many instances `list_instances` finds without a limit (a total for offset paging).
    async fn count_instances(&mut self, criteria: &InstanceCriteria) -> Result<u64>;
    /// The live instance owning the live custom domain `host` (case-insensitive), or NotFound.
    async fn instance_by_host(&mut self, host: &str) -> Result<Instance>;

    /// Insert; a soft-deleted row with that id comes back as new.
    async fn create_instance(
        &mut self,
        id: &InstanceId,
        name: &str,
        at: OffsetDateTime,
    ) -> Result<()> {
        let change = InstanceChange::Create {
            id: id.clone(),
            name: name.to_owned(),
        };
        self.apply_instance_change(change, at).await.map(drop)
    }
    async fn update_instance(
        &mut self,
        id: &InstanceId,
        update: &InstanceUpdate,
        at: OffsetDateTime,
    ) -> Result<u64> {
        let change = InstanceChange::Update {
            id: id.clone(),
            update: update.clone(),
        };
        self.apply_instance_change(change, at).await
    }
    /// Soft delete.
    async fn remove_instance(&mut self, id: &InstanceId, at: OffsetDateTime) -> Result<u64> {
        self.apply_instance_change(InstanceChange::Remove { id: id.clone() }, at)
            .await
    }
}

/// `zitadel.organizations`.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait OrganizationRepository: Send {
    /// Applies one change of `zitadel.organizations`; returns the rows changed.
    async fn apply_organization_change(
        &mut self,
        change: OrganizationChange,
        at: OffsetDateTime,
    ) -> Result<u64>;
    /// A live organization, or NotFound.
    async fn get_organization(
        &mut self,
        instance_id: &InstanceId,
        id: &OrgId,
    ) -> Result<Organization>;
    /// MissingTenant without `criteria.instance_id`.
    async fn list_organizations(
        &mut self,
        criteria: &OrganizationCriteria,
        page: &Pagination<NameSort>,
    ) -> Result<Vec<Organization>>;
    /// How many organizations `list_organizations` finds without a limit.
    async fn count_organizations(&mut self, criteria: &OrganizationCriteria) -> Result<u64>;

    async fn create_organization(
        &mut self,
        instance_id: &InstanceId,
        id: &OrgId,
        name: &str,
        at: OffsetDateTime,
    ) -> Result<()> {
        let change = OrganizationChange::Create {
            instance_id: instance_id.clone(),
            id: id.clone(),
            name: name.to_owned(),
        };
        self.apply_organization_change(change, at).await.map(drop)
    }
    async fn update_organization(
        &mut self,
        instance_id: &InstanceId,
        id: &OrgId,
        update: &OrganizationUpdate,
        at: OffsetDateTime,
    ) -> Result<u64> {
        let change = OrganizationChange::Update {
            instance_id: instance_id.clone(),
            id: id.clone(),
            update: update.clone(),
        };
        self.apply_organization_change(change, at).await
    }
    async fn remove_organization(
        &mut self,
        instance_id: &InstanceId,
        id: &OrgId,
        at: OffsetDateTime,
    ) -> Result<u64> {
        let change = OrganizationChange::Remove {
            instance_id: instance_id.clone(),
            id: id.clone(),
        };
        self.apply_organization_change(change, at).await
    }
    async fn remove_organizations_of_instance(
        &mut self,
        instance_id: &InstanceId,
        at: OffsetDateTime,
    ) -> Result<u64> {
        let change = OrganizationChange::RemoveAllOfInstance {
            instance_id: instance_id.clone(),
        };
        self.apply_organization_change(change, at).await
    }
}

/// `zitadel.instance_domains` (custom and trusted; no soft delete).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait InstanceDomainRepository: Send {
    /// Applies one change of `zitadel.instance_domains`; returns the rows changed.
    async fn apply_instance_domain_change(
        &mut self,
        change: InstanceDomainChange,
        at: OffsetDateTime,
    ) -> Result<u64>;
    async fn list_instance_domains(
        &mut self,
        instance_id: &InstanceId,
    ) -> Result<Vec<InstanceDomain>>;

    async fn insert_instance_domain(
        &mut self,
        instance_id: &InstanceId,
        domain: &str,
        kind: InstanceDomainKind,
        at: OffsetDateTime,
    ) -> Result<()> {
        let change = InstanceDomainChange::Insert {
            instance_id: instance_id.clone(),
            domain: domain.to_owned(),
            kind,
        };
        self.apply_instance_domain_change(change, at)
            .await
            .map(drop)
    }
    /// Demote the current primary, promote `domain`; nothing when `domain` is not there.
    async fn set_primary_instance_domain(
        &mut self,
        instance_id: &InstanceId,
        domain: &str,
        at: OffsetDateTime,
    ) -> Result<u64> {
        let change = InstanceDomainChange::SetPrimary {
            instance_id: instance_id.clone(),
            domain: domain.to_owned(),
        };
        self.apply_instance_domain_change(change, at).await
    }
    async fn delete_instance_domain(
        &mut self,
        instance_id: &InstanceId,
        domain: &str,
        domain_type: InstanceDomainType,
    ) -> Result<u64> {
        let change = InstanceDomainChange::Delete {
            instance_id: instance_id.clone(),
            domain: domain.to_owned(),
            domain_type,
        };
        self.apply_instance_domain_change(change, OffsetDateTime::UNIX_EPOCH)
            .await
    }
    async fn delete_instance_domains_of_instance(
        &mut self,
        instance_id: &InstanceId,
    ) -> Result<u64> {
        let change = InstanceDomainChange::DeleteAllOfInstance {
            instance_id: instance_id.clone(),
        };
        self.apply_instance_domain_change(change, OffsetDateTime::UNIX_EPOCH)
            .await
    }
}

/// `zitadel.org_domains` (no soft delete).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait OrgDomainRepository: Send {
    /// Applies one change of `zitadel.org_domains`; returns the rows changed.
    async fn apply_org_domain_change(
        &mut self,
        change: OrgDomainChange,
        at: OffsetDateTime,
    ) -> Result<u64>;
    /// The domains of one org.
    async fn list_org_domains(
        &mut self,
        instance_id: &InstanceId,
        org_id: &OrgId,
    ) -> Result<Vec<OrganizationDomain>>;

    async fn insert_org_domain(
        &mut self,
        instance_id: &InstanceId,
        org_id: &OrgId,
        domain: &str,
        at: OffsetDateTime,
    ) -> Result<()> {
        let change = OrgDomainChange::Insert {
            instance_id: instance_id.clone(),
            org_id: org_id.clone(),
            domain: domain.to_owned(),
        };
        self.apply_org_domain_change(change, at).await.map(drop)
    }
    async fn set_org_domain_validation(
        &mut self,
        instance_id: &InstanceId,
        org_id: &OrgId,
        domain: &str,
        validation_type: ValidationType,
        at: OffsetDateTime,
    ) -> Result<u64> {
        let change = OrgDomainChange::SetValidation {
            instance_id: instance_id.clone(),
            org_id: org_id.clone(),
            domain: domain.to_owned(),
            validation_type,
        };
        self.apply_org_domain_change(change, at).await
    }
    async fn set_org_domain_verified(
        &mut self,
        instance_id: &InstanceId,
        org_id: &OrgId,
        domain: &str,
        at: OffsetDateTime,
    ) -> Result<u64> {
        let change = OrgDomainChange::SetVerified {
            instance_id: instance_id.clone(),
            org_id: org_id.clone(),
            domain: domain.to_owned(),
        };
        self.apply_org_domain_change(change, at).await
    }
    async fn set_primary_org_domain(
        &mut self,
        instance_id: &InstanceId,
        org_id: &OrgId,
        domain: &str,
        at: OffsetDateTime,
    ) -> Result<u64> {
        let change = OrgDomainChange::SetPrimary {
            instance_id: instance_id.clone(),
            org_id: org_id.clone(),
            domain: domain.to_owned(),
        };
        self.apply_org_domain_change(change, at).await
    }
    async fn delete_org_domain(
        &mut self,
        instance_id: &InstanceId,
        org_id: &OrgId,
        domain: &str,
    ) -> Result<u64> {
        let change = OrgDomainChange::Delete {
            instance_id: instance_id.clone(),
            org_id: org_id.clone(),
            domain: domain.to_owned(),
        };
        self.apply_org_domain_change(change, OffsetDateTime::UNIX_EPOCH)
            .await
    }
    async fn delete_org_domains_of_org(
        &mut self,
        instance_id: &InstanceId,
        org_id: &OrgId,
    ) -> Result<u64> {
        let change = OrgDomainChange::DeleteAllOfOrg {
            instance_id: instance_id.clone(),
            org_id: org_id.clone(),
        };
        self.apply_org_domain_change(change, OffsetDateTime::UNIX_EPOCH)
            .await
    }
    async fn delete_org_domains_of_instance(&mut self, instance_id: &InstanceId) -> Result<u64> {
        let change = OrgDomainChange::DeleteAllOfInstance {
            instance_id: instance_id.clone(),
        };
        self.apply_org_domain_change(change, OffsetDateTime::UNIX_EPOCH)
            .await
    }
}

/// The unified `zitadel.domains` table (soft delete; every live read filters
/// `deleted_at IS NULL`).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait DomainRepository: Send {
    /// Applies one change of `zitadel.domains`; returns the rows changed.
    async fn apply_domain_change(
        &mut self,
        change: DomainChange,
        at: OffsetDateTime,
    ) -> Result<u64>;
    /// Exactly one row: NotFound when none matches, MultipleFound when several do.
    async fn get_domain(&mut self, criteria: &DomainCriteria) -> Result<Domain>;
    async fn list_domains(
        &mut self,
        criteria: &DomainCriteria,
        page: &Pagination<DomainSort>,
    ) -> Result<Vec<Domain>>;

    /// Instance domains are always verified.
    async fn add_instance_domain(
        &mut self,
        instance_id: &InstanceId,
        domain: &str,
        at: OffsetDateTime,
    ) -> Result<Domain> {
        let change = DomainChange::AddInstanceDomain {
            instance_id: instance_id.clone(),
            domain: domain.to_owned(),
        };
        self.apply_domain_change(change, at).await?;
        let criteria = DomainCriteria::of_instance(instance_id)
            .owner(DomainOwner::InstanceOnly)
            .domain(TextMatch::equals(domain).ignoring_case());
        self.get_domain(&criteria).await
    }
    async fn set_instance_domain_primary(
        &mut self,
        instance_id: &InstanceId,
        domain: &str,
        at: OffsetDateTime,
    ) -> Result<u64> {
        let change = DomainChange::SetInstanceDomainPrimary {
            instance_id: instance_id.clone(),
            domain: domain.to_owned(),
        };
        self.apply_domain_change(change, at).await
    }
    async fn remove_instance_domain(
        &mut self,
        instance_id: &InstanceId,
        domain: &str,
        at: OffsetDateTime,
    ) -> Result<u64> {
        let change = DomainChange::RemoveInstanceDomain {
            instance_id: instance_id.clone(),
            domain: domain.to_owned(),
        };
        self.apply_domain_change(change, at).await
    }
    async fn add_organization_domain(
        &mut self,
        instance_id: &InstanceId,
        org_id: &OrgId,
        domain: &str,
        validation_type: Option<ValidationType>,
        at: OffsetDateTime,
    ) -> Result<Domain> {
        let change = DomainChange::AddOrganizationDomain {
            instance_id: instance_id.clone(),
            org_id: org_id.clone(),
            domain: domain.to_owned(),
            validation_type,
        };
        self.apply_domain_change(change, at).await?;
        let criteria = DomainCriteria::of_instance(instance_id)
            .owner(DomainOwner::Organization(org_id.clone()))
            .domain(TextMatch::equals(domain).ignoring_case());
        self.get_domain(&criteria).await
    }
    async fn set_organization_domain_validation_type(
        &mut self,
        instance_id: &InstanceId,
        org_id: &OrgId,
        domain: &str,
        validation_type: ValidationType,
        at: OffsetDateTime,
    ) -> Result<u64> {
        let change = DomainChange::SetOrganizationDomainValidationType {
            instance_id: instance_id.clone(),
            org_id: org_id.clone(),
            domain: domain.to_owned(),
            validation_type,
        };
        self.apply_domain_change(change, at).await
    }
    async fn set_organization_domain_verified(
        &mut self,
        instance_id: &InstanceId,
        org_id: &OrgId,
        domain: &str,
        at: OffsetDateTime,
    ) -> Result<u64> {
        let change = DomainChange::SetOrganizationDomainVerified {
            instance_id: instance_id.clone(),
            org_id: org_id.clone(),
            domain: domain.to_owned(),
        };
        self.apply_domain_change(change, at).await
    }
    async fn set_organization_domain_primary(
        &mut self,
        instance_id: &InstanceId,
        org_id: &OrgId,
        domain: &str,
        at: OffsetDateTime,
    ) -> Result<u64> {
        let change = DomainChange::SetOrganizationDomainPrimary {
            instance_id: instance_id.clone(),
            org_id: org_id.clone(),
            domain: domain.to_owned(),
        };
        self.apply_domain_change(change, at).await
    }
    async fn remove_organization_domain(
        &mut self,
        instance_id: &InstanceId,
        org_id: &OrgId,
        domain: &str,
        at: OffsetDateTime,
    ) -> Result<u64> {
        let change = DomainChange::RemoveOrganizationDomain {
            instance_id: instance_id.clone(),
            org_id: org_id.clone(),
            domain: domain.to_owned(),
        };
        self.apply_domain_change(change, at).await
    }
    async fn remove_domains_of_organization(
        &mut self,
        instance_id: &InstanceId,
        org_id: &OrgId,
        at: OffsetDateTime,
    ) -> Result<u64> {
        let change = DomainChange::RemoveDomainsOfOrganization {
            instance_id: instance_id.clone(),
            org_id: org_id.clone(),
        };
        self.apply_domain_change(change, at).await
    }
    async fn remove_domains_of_instance(
        &mut self,
        instance_id: &InstanceId,
        at: OffsetDateTime,
    ) -> Result<u64> {
        let change = DomainChange::RemoveDomainsOfInstance {
            instance_id: instance_id.clone(),
        };
        self.apply_domain_change(change, at).await
    }
}

/// Appends events inside the caller's transaction.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait EventWriter: Send {
    async fn push(&mut self, events: Vec<NewEvent>) -> Result<Vec<StoredEvent>>;
}

/// Reads events in sort-key order.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait EventReader: Send + Sync {
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
    async fn commit(&mut self) -> Result<()>;
    async fn rollback(&mut self) -> Result<()>;
}

/// Opens units of work.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait UnitOfWorkFactory: Send + Sync {
    async fn begin(&self) -> Result<Box<dyn UnitOfWork>>;
}

/// Routes requests: the instance a Host header names, and the organization of an
/// instance that verified a domain. Production answers from a cache
/// (`tenancy_postgres::hosts::HostResolver`); both answer NotFound for an unknown host.
#[async_trait]
pub trait HostLookup: Send + Sync {
    async fn instance_by_host(&self, host: &str) -> Result<InstanceId>;
    async fn org_by_domain(&self, instance_id: &InstanceId, domain: &str) -> Result<OrgId>;
}

/// The time commands stamp on rows and events.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait Clock: Send + Sync {
    fn now(&self) -> OffsetDateTime;
}

/// Produces new object ids (ZITADEL-compatible decimal strings in production).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait IdGenerator: Send + Sync {
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
