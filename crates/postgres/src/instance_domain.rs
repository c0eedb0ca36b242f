//! `zitadel.instance_domains`.

use async_trait::async_trait;
use sqlx::Connection;
use tenancy_core::Result;
use tenancy_core::id::InstanceId;
use tenancy_core::model::{InstanceDomain, InstanceDomainKind, InstanceDomainType};
use tenancy_core::ports::InstanceDomainRepository;
use time::OffsetDateTime;

use crate::error::MapDb;
use crate::rows::{InstanceDomainRow, convert};
use crate::session::{PgSession, lock_primary};

#[async_trait]
impl InstanceDomainRepository for PgSession {
    async fn insert_instance_domain(
        &mut self,
        instance_id: &InstanceId,
        domain: &str,
        kind: InstanceDomainKind,
        at: OffsetDateTime,
    ) -> Result<()> {
        let (is_primary, is_generated) = match kind {
            InstanceDomainKind::Custom {
                is_primary,
                is_generated,
            } => (Some(is_primary), Some(is_generated)),
            InstanceDomainKind::Trusted => (None, None),
        };
        sqlx::query(
            "INSERT INTO zitadel.instance_domains (instance_id, domain, type, is_primary, is_generated, created_at, updated_at)
             VALUES ($1, $2, $3::zitadel.domain_type, $4, $5, $6, $6)",
        )
        .bind(instance_id.as_str())
        .bind(domain)
        .bind(kind.domain_type().as_str())
        .bind(is_primary)
        .bind(is_generated)
        .bind(at)
        .execute(self.conn()?)
        .await
        .db()
        .map(drop)
    }

    async fn set_primary_instance_domain(
        &mut self,
        instance_id: &InstanceId,
        domain: &str,
        at: OffsetDateTime,
    ) -> Result<u64> {
        // Unique indexes are checked per row, so demote first, then promote; the lock
        // serializes concurrent switches of the same instance.
        let mut tx = self.conn()?.begin().await.db()?;
        lock_primary(&mut tx, &format!("instance:{instance_id}")).await?;
        let demoted = sqlx::query(
            "UPDATE zitadel.instance_domains SET is_primary = false, updated_at = $3
             WHERE instance_id = $1 AND type = 'custom' AND is_primary AND lower(domain) <> lower($2)
               AND EXISTS (SELECT 1 FROM zitadel.instance_domains
                           WHERE instance_id = $1 AND type = 'custom' AND lower(domain) = lower($2))",
        )
        .bind(instance_id.as_str())
        .bind(domain)
        .bind(at)
        .execute(&mut *tx)
        .await
        .db()?;
        let promoted = sqlx::query(
            "UPDATE zitadel.instance_domains SET is_primary = true, updated_at = $3
             WHERE instance_id = $1 AND type = 'custom' AND lower(domain) = lower($2)",
        )
        .bind(instance_id.as_str())
        .bind(domain)
        .bind(at)
        .execute(&mut *tx)
        .await
        .db()?;
        tx.commit().await.db()?;
        Ok(demoted.rows_affected() + promoted.rows_affected())
    }

    async fn delete_instance_domain(
        &mut self,
        instance_id: &InstanceId,
        domain: &str,
        domain_type: InstanceDomainType,
    ) -> Result<u64> {
        let done = sqlx::query(
            "DELETE FROM zitadel.instance_domains
             WHERE instance_id = $1 AND type = $3::zitadel.domain_type AND lower(domain) = lower($2)",
        )
        .bind(instance_id.as_str())
        .bind(domain)
        .bind(domain_type.as_str())
        .execute(self.conn()?)
        .await
        .db()?;
        Ok(done.rows_affected())
    }

    async fn delete_instance_domains_of_instance(
        &mut self,
        instance_id: &InstanceId,
    ) -> Result<u64> {
        let done = sqlx::query("DELETE FROM zitadel.instance_domains WHERE instance_id = $1")
            .bind(instance_id.as_str())
            .execute(self.conn()?)
            .await
            .db()?;
        Ok(done.rows_affected())
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
