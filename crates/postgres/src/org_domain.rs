//! `zitadel.org_domains`.

use async_trait::async_trait;
use sqlx::Connection;
use tenancy_core::Result;
use tenancy_core::id::{InstanceId, OrgId};
use tenancy_core::model::{OrganizationDomain, ValidationType};
use tenancy_core::ports::OrgDomainRepository;
use time::OffsetDateTime;

use crate::error::MapDb;
use crate::rows::{OrgDomainRow, convert};
use crate::session::{PgSession, lock_primary};

#[async_trait]
impl OrgDomainRepository for PgSession {
    async fn insert_org_domain(
        &mut self,
        instance_id: &InstanceId,
        org_id: &OrgId,
        domain: &str,
        at: OffsetDateTime,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO zitadel.org_domains (instance_id, org_id, domain, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $4)",
        )
        .bind(instance_id.as_str())
        .bind(org_id.as_str())
        .bind(domain)
        .bind(at)
        .execute(self.conn()?)
        .await
        .db()
        .map(drop)
    }

    async fn set_org_domain_validation(
        &mut self,
        instance_id: &InstanceId,
        org_id: &OrgId,
        domain: &str,
        validation_type: ValidationType,
        at: OffsetDateTime,
    ) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE zitadel.org_domains SET validation_type = $4::zitadel.domain_validation_type, updated_at = $5
             WHERE instance_id = $1 AND org_id = $2 AND lower(domain) = lower($3)",
        )
        .bind(instance_id.as_str())
        .bind(org_id.as_str())
        .bind(domain)
        .bind(validation_type.as_str())
        .bind(at)
        .execute(self.conn()?)
        .await
        .db()?;
        Ok(done.rows_affected())
    }

    async fn set_org_domain_verified(
        &mut self,
        instance_id: &InstanceId,
        org_id: &OrgId,
        domain: &str,
        at: OffsetDateTime,
    ) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE zitadel.org_domains SET is_verified = true, updated_at = $4
             WHERE instance_id = $1 AND org_id = $2 AND lower(domain) = lower($3)",
        )
        .bind(instance_id.as_str())
        .bind(org_id.as_str())
        .bind(domain)
        .bind(at)
        .execute(self.conn()?)
        .await
        .db()?;
        Ok(done.rows_affected())
    }

    async fn set_primary_org_domain(
        &mut self,
        instance_id: &InstanceId,
        org_id: &OrgId,
        domain: &str,
        at: OffsetDateTime,
    ) -> Result<u64> {
        let mut tx = self.conn()?.begin().await.db()?;
        lock_primary(&mut tx, &format!("org:{instance_id}:{org_id}")).await?;
        let demoted = sqlx::query(
            "UPDATE zitadel.org_domains SET is_primary = false, updated_at = $4
             WHERE instance_id = $1 AND org_id = $2 AND is_primary AND lower(domain) <> lower($3)
               AND EXISTS (SELECT 1 FROM zitadel.org_domains
                           WHERE instance_id = $1 AND org_id = $2 AND lower(domain) = lower($3))",
        )
        .bind(instance_id.as_str())
        .bind(org_id.as_str())
        .bind(domain)
        .bind(at)
        .execute(&mut *tx)
        .await
        .db()?;
        let promoted = sqlx::query(
            "UPDATE zitadel.org_domains SET is_primary = true, updated_at = $4
             WHERE instance_id = $1 AND org_id = $2 AND lower(domain) = lower($3)",
        )
        .bind(instance_id.as_str())
        .bind(org_id.as_str())
        .bind(domain)
        .bind(at)
        .execute(&mut *tx)
        .await
        .db()?;
        tx.commit().await.db()?;
        Ok(demoted.rows_affected() + promoted.rows_affected())
    }

    async fn delete_org_domain(
        &mut self,
        instance_id: &InstanceId,
        org_id: &OrgId,
        domain: &str,
    ) -> Result<u64> {
        let done = sqlx::query(
            "DELETE FROM zitadel.org_domains WHERE instance_id = $1 AND org_id = $2 AND lower(domain) = lower($3)",
        )
        .bind(instance_id.as_str())
        .bind(org_id.as_str())
        .bind(domain)
        .execute(self.conn()?)
        .await
        .db()?;
        Ok(done.rows_affected())
    }

    async fn delete_org_domains_of_org(
        &mut self,
        instance_id: &InstanceId,
        org_id: &OrgId,
    ) -> Result<u64> {
        let done =
            sqlx::query("DELETE FROM zitadel.org_domains WHERE instance_id = $1 AND org_id = $2")
                .bind(instance_id.as_str())
                .bind(org_id.as_str())
                .execute(self.conn()?)
                .await
                .db()?;
        Ok(done.rows_affected())
    }

    async fn delete_org_domains_of_instance(&mut self, instance_id: &InstanceId) -> Result<u64> {
        let done = sqlx::query("DELETE FROM zitadel.org_domains WHERE instance_id = $1")
            .bind(instance_id.as_str())
            .execute(self.conn()?)
            .await
            .db()?;
        Ok(done.rows_affected())
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
