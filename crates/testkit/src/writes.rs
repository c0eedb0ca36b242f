//! Named writes over the repository ports, for tests and fixtures: each builds its
//! table's change and applies it through the table's port (`apply_*_change`), as the
//! reducer's changes are applied. Production code applies changes the reducer made.

use async_trait::async_trait;
use tenancy_core::Result;
use tenancy_core::id::{InstanceId, OrgId};
use tenancy_core::model::{Domain, InstanceDomainKind, InstanceDomainType, ValidationType};
use tenancy_core::ports::Repositories;
use tenancy_core::query::{DomainCriteria, DomainOwner, TextMatch};
use tenancy_core::state::{
    DomainChange, InstanceChange, InstanceDomainChange, InstanceUpdate, OrgDomainChange,
    OrganizationChange, OrganizationUpdate,
};
use time::OffsetDateTime;

/// `use tenancy_testkit::writes::RepositoryWrites as _;` gives every set of repositories
/// (PostgreSQL, in memory, a `dyn Repositories`) these methods.
#[async_trait]
pub trait RepositoryWrites: Repositories {
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

    /// Applies [`InstanceChange::Update`] at `at`; returns the rows changed.
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

    /// Applies [`OrganizationChange::Create`] at `at`; returns the rows changed.
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

    /// Applies [`OrganizationChange::Update`] at `at`; returns the rows changed.
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

    /// Applies [`OrganizationChange::Remove`] at `at`; returns the rows changed.
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

    /// Applies [`OrganizationChange::RemoveAllOfInstance`] at `at`; returns the rows changed.
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

    /// Applies [`InstanceDomainChange::Insert`] at `at`; returns the rows changed.
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

    /// Applies [`InstanceDomainChange::Delete`]; returns the rows changed.
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

    /// Applies [`InstanceDomainChange::DeleteAllOfInstance`]; returns the rows changed.
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

    /// Applies [`OrgDomainChange::Insert`] at `at`; returns the rows changed.
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

    /// Applies [`OrgDomainChange::SetValidation`] at `at`; returns the rows changed.
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

    /// Applies [`OrgDomainChange::SetVerified`] at `at`; returns the rows changed.
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

    /// Applies [`OrgDomainChange::SetPrimary`] at `at`; returns the rows changed.
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

    /// Applies [`OrgDomainChange::Delete`]; returns the rows changed.
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

    /// Applies [`OrgDomainChange::DeleteAllOfOrg`]; returns the rows changed.
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

    /// Applies [`OrgDomainChange::DeleteAllOfInstance`]; returns the rows changed.
    async fn delete_org_domains_of_instance(&mut self, instance_id: &InstanceId) -> Result<u64> {
        let change = OrgDomainChange::DeleteAllOfInstance {
            instance_id: instance_id.clone(),
        };
        self.apply_org_domain_change(change, OffsetDateTime::UNIX_EPOCH)
            .await
    }

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

    /// Applies [`DomainChange::SetInstanceDomainPrimary`] at `at`; returns the rows changed.
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

    /// Applies [`DomainChange::RemoveInstanceDomain`] at `at`; returns the rows changed.
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

    /// Applies [`DomainChange::AddOrganizationDomain`] at `at`; returns the rows changed.
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

    /// Applies [`DomainChange::SetOrganizationDomainValidationType`] at `at`; returns the rows changed.
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

    /// Applies [`DomainChange::SetOrganizationDomainVerified`] at `at`; returns the rows changed.
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

    /// Applies [`DomainChange::SetOrganizationDomainPrimary`] at `at`; returns the rows changed.
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

    /// Applies [`DomainChange::RemoveOrganizationDomain`] at `at`; returns the rows changed.
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

    /// Applies [`DomainChange::RemoveDomainsOfOrganization`] at `at`; returns the rows changed.
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

    /// Applies [`DomainChange::RemoveDomainsOfInstance`] at `at`; returns the rows changed.
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

impl<T: Repositories + ?Sized> RepositoryWrites for T {}
