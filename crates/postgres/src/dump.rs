//! Every row of the five tables, soft-deleted ones included (for `verify` and tests).

use sqlx::{AssertSqlSafe, PgPool};
use tenancy_core::Result;

use crate::error::MapDb;
use crate::rows::{
    DOMAIN_COLUMNS, DomainRow, INSTANCE_COLUMNS, InstanceDomainRow, InstanceRow,
    ORGANIZATION_COLUMNS, OrgDomainRow, OrganizationRow, convert,
};

/// The content of the state tables (the type lives in core, beside the table registry).
pub use tenancy_core::state::TableRows;

/// Reads every row of the five tables (a consistent snapshot: one repeatable-read transaction).
pub async fn all_rows(pool: &PgPool) -> Result<TableRows> {
    let mut tx = pool.begin().await.db()?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .execute(&mut *tx)
        .await
        .db()?;
    let instances: Vec<InstanceRow> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {INSTANCE_COLUMNS} FROM instances"
    )))
    .fetch_all(&mut *tx)
    .await
    .db()?;
    let organizations: Vec<OrganizationRow> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {ORGANIZATION_COLUMNS} FROM organizations"
    )))
    .fetch_all(&mut *tx)
    .await
    .db()?;
    let instance_domains: Vec<InstanceDomainRow> = sqlx::query_as(
        "SELECT instance_id, domain, type::text AS type, is_primary, is_generated, created_at, updated_at
         FROM instance_domains",
    )
    .fetch_all(&mut *tx)
    .await
    .db()?;
    let org_domains: Vec<OrgDomainRow> = sqlx::query_as(
        "SELECT instance_id, org_id, domain, is_verified, is_primary, validation_type::text AS validation_type,
                created_at, updated_at
         FROM org_domains",
    )
    .fetch_all(&mut *tx)
    .await
    .db()?;
    let domains: Vec<DomainRow> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {DOMAIN_COLUMNS} FROM domains"
    )))
    .fetch_all(&mut *tx)
    .await
    .db()?;
    tx.commit().await.db()?;
    Ok(TableRows {
        instances: convert(instances)?,
        organizations: convert(organizations)?,
        instance_domains: convert(instance_domains)?,
        org_domains: convert(org_domains)?,
        domains: convert(domains)?,
    })
}
