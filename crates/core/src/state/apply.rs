//! Applies a [`StateChange`] through the repository ports: the one place that maps
//! changes to repository methods.

use time::OffsetDateTime;

use crate::error::Result;
use crate::ports::Repositories;
use crate::state::StateChange;

/// Applies one change through the repositories; returns the rows changed.
pub async fn apply_change<R: Repositories + ?Sized>(
    repos: &mut R,
    change: &StateChange,
    at: OffsetDateTime,
) -> Result<u64> {
    use StateChange as C;
    match change {
        C::CreateInstance { id, name } => repos.create_instance(id, name, at).await.map(|()| 1),
        C::UpdateInstance { id, update } => repos.update_instance(id, update, at).await,
        C::RemoveInstance { id } => repos.remove_instance(id, at).await,
        C::CreateOrganization {
            instance_id,
            id,
            name,
        } => repos
            .create_organization(instance_id, id, name, at)
            .await
            .map(|()| 1),
        C::UpdateOrganization {
            instance_id,
            id,
            update,
        } => repos.update_organization(instance_id, id, update, at).await,
        C::RemoveOrganization { instance_id, id } => {
            repos.remove_organization(instance_id, id, at).await
        }
        C::RemoveOrganizationsOfInstance { instance_id } => {
            repos
                .remove_organizations_of_instance(instance_id, at)
                .await
        }
        C::InsertInstanceDomain {
            instance_id,
            domain,
            kind,
        } => repos
            .insert_instance_domain(instance_id, domain, *kind, at)
            .await
            .map(|()| 1),
        C::SetPrimaryInstanceDomain {
            instance_id,
            domain,
        } => {
            repos
                .set_primary_instance_domain(instance_id, domain, at)
                .await
        }
        C::DeleteInstanceDomain {
            instance_id,
            domain,
            domain_type,
        } => {
            repos
                .delete_instance_domain(instance_id, domain, *domain_type)
                .await
        }
        C::DeleteInstanceDomainsOfInstance { instance_id } => {
            repos.delete_instance_domains_of_instance(instance_id).await
        }
        C::InsertOrgDomain {
            instance_id,
            org_id,
            domain,
        } => repos
            .insert_org_domain(instance_id, org_id, domain, at)
            .await
            .map(|()| 1),
        C::SetOrgDomainValidation {
            instance_id,
            org_id,
            domain,
            validation_type,
        } => {
            repos
                .set_org_domain_validation(instance_id, org_id, domain, *validation_type, at)
                .await
        }
        C::SetOrgDomainVerified {
            instance_id,
            org_id,
            domain,
        } => {
            repos
                .set_org_domain_verified(instance_id, org_id, domain, at)
                .await
        }
        C::SetPrimaryOrgDomain {
            instance_id,
            org_id,
            domain,
        } => {
            repos
                .set_primary_org_domain(instance_id, org_id, domain, at)
                .await
        }
        C::DeleteOrgDomain {
            instance_id,
            org_id,
            domain,
        } => repos.delete_org_domain(instance_id, org_id, domain).await,
        C::DeleteOrgDomainsOfOrg {
            instance_id,
            org_id,
        } => repos.delete_org_domains_of_org(instance_id, org_id).await,
        C::DeleteOrgDomainsOfInstance { instance_id } => {
            repos.delete_org_domains_of_instance(instance_id).await
        }
        C::AddInstanceDomain {
            instance_id,
            domain,
        } => repos
            .add_instance_domain(instance_id, domain, at)
            .await
            .map(|_| 1),
        C::SetInstanceDomainPrimary {
            instance_id,
            domain,
        } => {
            repos
                .set_instance_domain_primary(instance_id, domain, at)
                .await
        }
        C::RemoveInstanceDomain {
            instance_id,
            domain,
        } => repos.remove_instance_domain(instance_id, domain, at).await,
        C::AddOrganizationDomain {
            instance_id,
            org_id,
            domain,
            validation_type,
        } => repos
            .add_organization_domain(instance_id, org_id, domain, *validation_type, at)
            .await
            .map(|_| 1),
        C::SetOrganizationDomainValidationType {
            instance_id,
            org_id,
            domain,
            validation_type,
        } => {
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
        C::SetOrganizationDomainVerified {
            instance_id,
            org_id,
            domain,
        } => {
            repos
                .set_organization_domain_verified(instance_id, org_id, domain, at)
                .await
        }
        C::SetOrganizationDomainPrimary {
            instance_id,
            org_id,
            domain,
        } => {
            repos
                .set_organization_domain_primary(instance_id, org_id, domain, at)
                .await
        }
        C::RemoveOrganizationDomain {
            instance_id,
            org_id,
            domain,
        } => {
            repos
                .remove_organization_domain(instance_id, org_id, domain, at)
                .await
        }
        C::RemoveDomainsOfOrganization {
            instance_id,
            org_id,
        } => {
            repos
                .remove_domains_of_organization(instance_id, org_id, at)
                .await
        }
        C::RemoveDomainsOfInstance { instance_id } => {
            repos.remove_domains_of_instance(instance_id, at).await
        }
    }
}
