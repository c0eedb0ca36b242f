//! `zitadel.org_domains`.

use async_trait::async_trait;
use tenancy_core::Result;
use tenancy_core::id::{InstanceId, OrgId};
use tenancy_core::model::{OrganizationDomain, ValidationType};
use tenancy_core::ports::OrgDomainRepository;
use tenancy_core::state::StateChange;
use time::OffsetDateTime;

use crate::apply::apply_change;
use crate::error::MapDb;
use crate::rows::{OrgDomainRow, convert};
use crate::session::PgSession;

#[async_trait]
impl OrgDomainRepository for PgSession {
    async fn insert_org_domain(
        &mut self,
        instance_id: &InstanceId,
        org_id: &OrgId,
        domain: &str,
        at: OffsetDateTime,
    ) -> Result<()> {
        let change = StateChange::InsertOrgDomain {
            instance_id: instance_id.clone(),
            org_id: org_id.clone(),
            domain: domain.to_owned(),
        };
        apply_change(self.conn()?, &change, at).await.map(drop)
    }

    async fn set_org_domain_validation(
        &mut self,
        instance_id: &InstanceId,
        org_id: &OrgId,
        domain: &str,
        validation_type: ValidationType,
        at: OffsetDateTime,
    ) -> Result<u64> {
        let change = StateChange::SetOrgDomainValidation {
            instance_id: instance_id.clone(),
            org_id: org_id.clone(),
            domain: domain.to_owned(),
            validation_type,
        };
        apply_change(self.conn()?, &change, at).await
    }

    async fn set_org_domain_verified(
        &mut self,
        instance_id: &InstanceId,
        org_id: &OrgId,
        domain: &str,
        at: OffsetDateTime,
    ) -> Result<u64> {
        let change = StateChange::SetOrgDomainVerified {
            instance_id: instance_id.clone(),
            org_id: org_id.clone(),
            domain: domain.to_owned(),
        };
        apply_change(self.conn()?, &change, at).await
    }

    async fn set_primary_org_domain(
        &mut self,
        instance_id: &InstanceId,
        org_id: &OrgId,
        domain: &str,
        at: OffsetDateTime,
    ) -> Result<u64> {
        let change = StateChange::SetPrimaryOrgDomain {
            instance_id: instance_id.clone(),
            org_id: org_id.clone(),
            domain: domain.to_owned(),
        };
        apply_change(self.conn()?, &change, at).await
    }

    async fn delete_org_domain(
        &mut self,
        instance_id: &InstanceId,
        org_id: &OrgId,
        domain: &str,
    ) -> Result<u64> {
        let change = StateChange::DeleteOrgDomain {
            instance_id: instance_id.clone(),
            org_id: org_id.clone(),
            domain: domain.to_owned(),
        };
        apply_change(self.conn()?, &change, OffsetDateTime::UNIX_EPOCH).await
    }

    async fn delete_org_domains_of_org(
        &mut self,
        instance_id: &InstanceId,
        org_id: &OrgId,
    ) -> Result<u64> {
        let change = StateChange::DeleteOrgDomainsOfOrg {
            instance_id: instance_id.clone(),
            org_id: org_id.clone(),
        };
        apply_change(self.conn()?, &change, OffsetDateTime::UNIX_EPOCH).await
    }

    async fn delete_org_domains_of_instance(&mut self, instance_id: &InstanceId) -> Result<u64> {
        let change = StateChange::DeleteOrgDomainsOfInstance {
            instance_id: instance_id.clone(),
        };
        apply_change(self.conn()?, &change, OffsetDateTime::UNIX_EPOCH).await
    }

    async fn list_org_domains(
        &mut self,
        instance_id: &InstanceId,
        org_id: &OrgId,
    ) -> Result<Vec<OrganizationDomain>> {
        let rows: Vec<OrgDomainRow> = sqlx::query_as(
            "SELECT instance_id, org_id, domain, is_verified, is_primary, validation_type::text AS validation_type,
                    created_at, updated_at
             FROM zitadel.org_domains WHERE instance_id = $1 AND org_id = $2 ORDER BY domain COLLATE \"C\"",
        )
        .bind(instance_id.as_str())
        .bind(org_id.as_str())
        .fetch_all(self.conn()?)
        .await
        .db()?;
        convert(rows)
    }
}
