//! `zitadel.instance_domains`.

use async_trait::async_trait;
use tenancy_core::Result;
use tenancy_core::id::InstanceId;
use tenancy_core::model::InstanceDomain;
use tenancy_core::ports::InstanceDomainRepository;
use tenancy_core::state::InstanceDomainChange;
use time::OffsetDateTime;

use crate::apply::apply_change;
use crate::error::MapDb;
use crate::rows::{InstanceDomainRow, convert};
use crate::session::PgSession;

#[async_trait]
impl InstanceDomainRepository for PgSession {
    async fn apply_instance_domain_change(
        &mut self,
        change: InstanceDomainChange,
        at: OffsetDateTime,
    ) -> Result<u64> {
        apply_change(self.conn()?, &change.into(), at).await
    }

    async fn list_instance_domains(
        &mut self,
        instance_id: &InstanceId,
    ) -> Result<Vec<InstanceDomain>> {
        let rows: Vec<InstanceDomainRow> = sqlx::query_as(
            "SELECT instance_id, domain, type::text AS type, is_primary, is_generated, created_at, updated_at
             FROM instance_domains WHERE instance_id = $1
             ORDER BY domain COLLATE \"C\", type::text COLLATE \"C\"",
        )
        .bind(instance_id.as_str())
        .fetch_all(self.conn()?)
        .await
        .db()?;
        convert(rows)
    }
}
