//! `zitadel.org_domains`.

use async_trait::async_trait;
use tenancy_core::Result;
use tenancy_core::id::{InstanceId, OrgId};
use tenancy_core::model::OrganizationDomain;
use tenancy_core::ports::OrgDomainRepository;
use tenancy_core::state::OrgDomainChange;
use time::OffsetDateTime;

use crate::apply::apply_change;
use crate::error::MapDb;
use crate::rows::{OrgDomainRow, convert};
use crate::session::PgSession;

#[async_trait]
impl OrgDomainRepository for PgSession {
    async fn apply_org_domain_change(
        &mut self,
        change: OrgDomainChange,
        at: OffsetDateTime,
    ) -> Result<u64> {
        apply_change(self.conn()?, &change.into(), at).await
    }

    async fn list_org_domains(
        &mut self,
        instance_id: &InstanceId,
        org_id: &OrgId,
    ) -> Result<Vec<OrganizationDomain>> {
        let rows: Vec<OrgDomainRow> = sqlx::query_as(
            "SELECT instance_id, org_id, domain, is_verified, is_primary, validation_type::text AS validation_type,
                    created_at, updated_at
             FROM org_domains WHERE instance_id = $1 AND org_id = $2 ORDER BY domain COLLATE \"C\"",
        )
        .bind(instance_id.as_str())
        .bind(org_id.as_str())
        .fetch_all(self.conn()?)
        .await
        .db()?;
        convert(rows)
    }
}
