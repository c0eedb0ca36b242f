//! `zitadel.instance_domains`.

use async_trait::async_trait;
use tenancy_core::Result;
use tenancy_core::id::InstanceId;
use tenancy_core::model::{InstanceDomain, InstanceDomainKind, InstanceDomainType};
use tenancy_core::ports::InstanceDomainRepository;
use tenancy_core::state::StateChange;
use time::OffsetDateTime;

use crate::apply::apply_change;
use crate::error::MapDb;
use crate::rows::{InstanceDomainRow, convert};
use crate::session::PgSession;

#[async_trait]
impl InstanceDomainRepository for PgSession {
    async fn insert_instance_domain(
        &mut self,
        instance_id: &InstanceId,
        domain: &str,
        kind: InstanceDomainKind,
        at: OffsetDateTime,
    ) -> Result<()> {
        let change = StateChange::InsertInstanceDomain {
            instance_id: instance_id.clone(),
            domain: domain.to_owned(),
            kind,
        };
        apply_change(self.conn()?, &change, at).await.map(drop)
    }

    async fn set_primary_instance_domain(
        &mut self,
        instance_id: &InstanceId,
        domain: &str,
        at: OffsetDateTime,
    ) -> Result<u64> {
        let change = StateChange::SetPrimaryInstanceDomain {
            instance_id: instance_id.clone(),
            domain: domain.to_owned(),
        };
        apply_change(self.conn()?, &change, at).await
    }

    async fn delete_instance_domain(
        &mut self,
        instance_id: &InstanceId,
        domain: &str,
        domain_type: InstanceDomainType,
    ) -> Result<u64> {
        let change = StateChange::DeleteInstanceDomain {
            instance_id: instance_id.clone(),
            domain: domain.to_owned(),
            domain_type,
        };
        apply_change(self.conn()?, &change, OffsetDateTime::UNIX_EPOCH).await
    }

    async fn delete_instance_domains_of_instance(
        &mut self,
        instance_id: &InstanceId,
    ) -> Result<u64> {
        let change = StateChange::DeleteInstanceDomainsOfInstance {
            instance_id: instance_id.clone(),
        };
        apply_change(self.conn()?, &change, OffsetDateTime::UNIX_EPOCH).await
    }

    async fn list_instance_domains(
        &mut self,
        instance_id: &InstanceId,
    ) -> Result<Vec<InstanceDomain>> {
        let rows: Vec<InstanceDomainRow> = sqlx::query_as(
            "SELECT instance_id, domain, type::text AS type, is_primary, is_generated, created_at, updated_at
             FROM zitadel.instance_domains WHERE instance_id = $1
             ORDER BY domain COLLATE \"C\", type::text COLLATE \"C\"",
        )
        .bind(instance_id.as_str())
        .fetch_all(self.conn()?)
        .await
        .db()?;
        convert(rows)
    }
}
