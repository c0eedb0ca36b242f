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
    rows(pool, None).await
}

/// Every row of the five tables that belongs to one of `instance_ids` (a consistent
/// snapshot), for reading a large store a part at a time.
pub async fn rows_of_instances(pool: &PgPool, instance_ids: &[String]) -> Result<TableRows> {
    rows(pool, Some(instance_ids)).await
}

async fn rows(pool: &PgPool, instance_ids: Option<&[String]>) -> Result<TableRows> {
    // `$1 IS NULL OR ...` would keep a generic plan from using the instance index.
    let of = |column: &str| match instance_ids {
        Some(_) => format!(" WHERE {column} = ANY($1)"),
        None => String::new(),
    };
    let ids = instance_ids.map(<[String]>::to_vec);
    let mut tx = pool.begin().await.db()?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .execute(&mut *tx)
        .await
        .db()?;
    let instances: Vec<InstanceRow> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {INSTANCE_COLUMNS} FROM instances{}",
        of("id")
    )))
    .scoped(ids.as_ref())
    .fetch_all(&mut *tx)
    .await
    .db()?;
    let organizations: Vec<OrganizationRow> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {ORGANIZATION_COLUMNS} FROM organizations{}",
        of("instance_id")
    )))
    .scoped(ids.as_ref())
    .fetch_all(&mut *tx)
    .await
    .db()?;
    let instance_domains: Vec<InstanceDomainRow> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT instance_id, domain, type::text AS type, is_primary, is_generated, created_at, updated_at
         FROM instance_domains{}",
        of("instance_id")
    )))
    .scoped(ids.as_ref())
    .fetch_all(&mut *tx)
    .await
    .db()?;
    let org_domains: Vec<OrgDomainRow> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT instance_id, org_id, domain, is_verified, is_primary, validation_type::text AS validation_type,
                created_at, updated_at
         FROM org_domains{}",
        of("instance_id")
    )))
    .scoped(ids.as_ref())
    .fetch_all(&mut *tx)
    .await
    .db()?;
    let domains: Vec<DomainRow> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {DOMAIN_COLUMNS} FROM domains{}",
        of("instance_id")
    )))
    .scoped(ids.as_ref())
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

/// Binds the instance ids of a query made by `rows` for a part of the store.
trait Scoped: Sized {
    fn scoped(self, ids: Option<&Vec<String>>) -> Self;
}

impl<'q, O> Scoped for sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments> {
    fn scoped(self, ids: Option<&Vec<String>>) -> Self {
        match ids {
            Some(ids) => self.bind(ids.clone()),
            None => self,
        }
    }
}

/// Every instance id that has a row in one of the five tables.
pub async fn instance_ids(pool: &PgPool) -> Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT id FROM instances
         UNION SELECT instance_id FROM organizations
         UNION SELECT instance_id FROM instance_domains
         UNION SELECT instance_id FROM org_domains
         UNION SELECT instance_id FROM domains",
    )
    .fetch_all(pool)
    .await
    .db()
}
