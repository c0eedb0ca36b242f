//! Applies a [`StateChange`] through the repository ports: the one place that maps
//! changes to repository methods.

use time::OffsetDateTime;

use crate::error::Result;
use crate::ports::Repositories;
use crate::state::{
    DomainChange, InstanceChange, InstanceDomainChange, OrgDomainChange, OrganizationChange,
    StateChange,
};

/// Applies one change through the repositories; returns the rows changed.
pub async fn apply_change<R: Repositories + ?Sized>(
    repos: &mut R,
    change: &StateChange,
    at: OffsetDateTime,
) -> Result<u64> {
    use StateChange as C;
    match change {
        C::Instance(InstanceChange::Create { id, name }) => {
            repos.create_instance(id, name, at).await.map(|()| 1)
        }
        C::Instance(InstanceChange::Update { id, update }) => {
            repos.update_instance(id, update, at).await
        }
        C::Instance(InstanceChange::Remove { id }) => repos.remove_instance(id, at).await,
        C::Organization(OrganizationChange::Create {
            instance_id,
            id,
            name,
        }) => repos
            .create_organization(instance_id, id, name, at)
            .await
            .map(|()| 1),
        C::Organization(OrganizationChange::Update {
            instance_id,
            id,
            update,
        }) => repos.update_organization(instance_id, id, update, at).await,
        C::Organization(OrganizationChange::Remove { instance_id, id }) => {
            repos.remove_organization(instance_id, id, at).await
        }
        C::Organization(OrganizationChange::RemoveAllOfInstance { instance_id }) => {
            repos
                .remove_organizations_of_instance(instance_id, at)
                .await
        }
        C::InstanceDomain(InstanceDomainChange::Insert {
            instance_id,
            domain,
            kind,
        }) => repos
            .insert_instance_domain(instance_id, domain, *kind, at)
            .await
            .map(|()| 1),
        C::InstanceDomain(InstanceDomainChange::SetPrimary {
            instance_id,
            domain,
        }) => {
            repos
                .set_primary_instance_domain(instance_id, domain, at)
                .await
        }
        C::InstanceDomain(InstanceDomainChange::Delete {
            instance_id,
            domain,
            domain_type,
        }) => {
            repos
                .delete_instance_domain(instance_id, domain, *domain_type)
                .await
        }
        C::InstanceDomain(InstanceDomainChange::DeleteAllOfInstance { instance_id }) => {
            repos.delete_instance_domains_of_instance(instance_id).await
        }
        C::OrgDomain(OrgDomainChange::Insert {
            instance_id,
            org_id,
            domain,
        }) => repos
            .insert_org_domain(instance_id, org_id, domain, at)
            .await
            .map(|()| 1),
        C::OrgDomain(OrgDomainChange::SetValidation {
            instance_id,
            org_id,
            domain,
            validation_type,
        }) => {
            repos
                .set_org_domain_validation(instance_id, org_id, domain, *validation_type, at)
                .await
        }
        C::OrgDomain(OrgDomainChange::SetVerified {
            instance_id,
            org_id,
            domain,
        }) => {
            repos
                .set_org_domain_verified(instance_id, org_id, domain, at)
                .await
        }
        C::OrgDomain(OrgDomainChange::SetPrimary {
            instance_id,
            org_id,
            domain,
        }) => {
            repos
                .set_primary_org_domain(instance_id, org_id, domain, at)
                .await
        }
        C::OrgDomain(OrgDomainChange::Delete {
            instance_id,
            org_id,
            domain,
        }) => repos.delete_org_domain(instance_id, org_id, domain).await,
        C::OrgDomain(OrgDomainChange::DeleteAllOfOrg {
            instance_id,
            org_id,
        }) => repos.delete_org_domains_of_org(instance_id, org_id).await,
        C::OrgDomain(OrgDomainChange::DeleteAllOfInstance { instance_id }) => {
            repos.delete_org_domains_of_instance(instance_id).await
        }
        C::Domain(DomainChange::AddInstanceDomain {
            instance_id,
            domain,
        }) => repos
            .add_instance_domain(instance_id, domain, at)
            .await
            .map(|_| 1),
        C::Domain(DomainChange::SetInstanceDomainPrimary {
            instance_id,
            domain,
        }) => {
            repos
                .set_instance_domain_primary(instance_id, domain, at)
                .await
        }
        C::Domain(DomainChange::RemoveInstanceDomain {
            instance_id,
            domain,
        }) => repos.remove_instance_domain(instance_id, domain, at).await,
        C::Domain(DomainChange::AddOrganizationDomain {
            instance_id,
            org_id,
            domain,
            validation_type,
        }) => repos
            .add_organization_domain(instance_id, org_id, domain, *validation_type, at)
            .await
            .map(|_| 1),
        C::Domain(DomainChange::SetOrganizationDomainValidationType {
            instance_id,
            org_id,
            domain,
            validation_type,
        }) => {
            repos
                .set_organization_domain_validation_type(
                    instance_id,
                    org_id,
                    domain,
                    *validation_type,
                    at,
                )
                .await
        }
        C::Domain(DomainChange::SetOrganizationDomainVerified {
            instance_id,
            org_id,
            domain,
        }) => {
            repos
                .set_organization_domain_verified(instance_id, org_id, domain, at)
                .await
        }
        C::Domain(DomainChange::SetOrganizationDomainPrimary {
            instance_id,
            org_id,
            domain,
        }) => {
            repos
                .set_organization_domain_primary(instance_id, org_id, domain, at)
                .await
        }
        C::Domain(DomainChange::RemoveOrganizationDomain {
            instance_id,
            org_id,
            domain,
        }) => {
            repos
                .remove_organization_domain(instance_id, org_id, domain, at)
                .await
        }
        C::Domain(DomainChange::RemoveDomainsOfOrganization {
            instance_id,
            org_id,
        }) => {
            repos
                .remove_domains_of_organization(instance_id, org_id, at)
                .await
        }
        C::Domain(DomainChange::RemoveDomainsOfInstance { instance_id }) => {
            repos.remove_domains_of_instance(instance_id, at).await
        }
    }
}
