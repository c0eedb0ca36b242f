//! The unified `zitadel.domains` table (soft delete; live reads filter `deleted_at IS NULL`).

use async_trait::async_trait;
use sqlx::{AssertSqlSafe, Connection, PgConnection, Postgres, QueryBuilder};
use tenancy_core::id::{InstanceId, OrgId};
use tenancy_core::model::{Domain, ValidationType};
use tenancy_core::ports::DomainRepository;
use tenancy_core::query::{DomainCriteria, DomainOwner, DomainSort, Pagination};
use tenancy_core::{Error, Result};
use time::OffsetDateTime;

use crate::error::MapDb;
use crate::rows::{DOMAIN_COLUMNS, DomainRow, convert};
use crate::session::{PgSession, lock_primary, push_page, push_text};

/// Rows of one owner: `org_id IS NULL` for the instance, `org_id = $n` for an org.
fn owner_sql(org_id: Option<&OrgId>, param: usize) -> String {
    match org_id {
        None => "org_id IS NULL".to_owned(),
        Some(_) => format!("org_id = ${param}"),
    }
}

async fn insert(
    conn: &mut PgConnection,
    instance_id: &InstanceId,
    org_id: Option<&OrgId>,
    domain: &str,
    is_verified: bool,
    validation_type: Option<ValidationType>,
    at: OffsetDateTime,
) -> Result<Domain> {
    let sql = format!(
        "INSERT INTO zitadel.domains (instance_id, org_id, domain, is_verified, is_primary, validation_type, created_at, updated_at)
         VALUES ($1, $2, $3, $4, false, $5, $6, $6) RETURNING {DOMAIN_COLUMNS}"
    );
    let row: DomainRow = sqlx::query_as(AssertSqlSafe(sql))
        .bind(instance_id.as_str())
        .bind(org_id.map(OrgId::as_str))
        .bind(domain)
        .bind(is_verified)
        .bind(validation_type.map(ValidationType::ordinal))
        .bind(at)
        .fetch_one(conn)
        .await
        .db()?;
    row.try_into()
}

async fn set_primary(
    session: &mut PgSession,
    instance_id: &InstanceId,
    org_id: Option<&OrgId>,
    domain: &str,
    at: OffsetDateTime,
) -> Result<u64> {
    let owner = owner_sql(org_id, 4);
    let scope = match org_id {
        None => format!("domains:{instance_id}"),
        Some(org) => format!("domains:{instance_id}:{org}"),
    };
    let mut tx = session.conn()?.begin().await.db()?;
    lock_primary(&mut tx, &scope).await?;
    let demote = format!(
        "UPDATE zitadel.domains SET is_primary = false, updated_at = $3
         WHERE instance_id = $1 AND {owner} AND deleted_at IS NULL AND is_primary AND lower(domain) <> lower($2)
           AND EXISTS (SELECT 1 FROM zitadel.domains WHERE instance_id = $1 AND {owner}
                       AND deleted_at IS NULL AND lower(domain) = lower($2))"
    );
    let promote = format!(
        "UPDATE zitadel.domains SET is_primary = true, updated_at = $3
         WHERE instance_id = $1 AND {owner} AND deleted_at IS NULL AND lower(domain) = lower($2)"
    );
    let mut rows = 0;
    for sql in [demote, promote] {
        let mut query = sqlx::query(AssertSqlSafe(sql))
            .bind(instance_id.as_str())
            .bind(domain)
            .bind(at);
        if let Some(org) = org_id {
            query = query.bind(org.as_str());
        }
        rows += query.execute(&mut *tx).await.db()?.rows_affected();
    }
    tx.commit().await.db()?;
    Ok(rows)
}

/// Updates the live row of one owner; `set` may use `$v` for `value`.
async fn update_one(
    session: &mut PgSession,
    set: &'static str,
    instance_id: &InstanceId,
    org_id: Option<&OrgId>,
    domain: &str,
    at: OffsetDateTime,
    value: Option<i16>,
) -> Result<u64> {
    let owner = owner_sql(org_id, 4);
    let value_param = if org_id.is_some() { "$5" } else { "$4" };
    let sql = format!(
        "UPDATE zitadel.domains SET {}, updated_at = $3
         WHERE instance_id = $1 AND {owner} AND deleted_at IS NULL AND lower(domain) = lower($2)",
        set.replace("$v", value_param)
    );
    let mut query = sqlx::query(AssertSqlSafe(sql))
        .bind(instance_id.as_str())
        .bind(domain)
        .bind(at);
    if let Some(org) = org_id {
        query = query.bind(org.as_str());
    }
    if let Some(value) = value {
        query = query.bind(value);
    }
    Ok(query.execute(session.conn()?).await.db()?.rows_affected())
}

#[async_trait]
impl DomainRepository for PgSession {
    async fn add_instance_domain(
        &mut self,
        instance_id: &InstanceId,
        domain: &str,
        at: OffsetDateTime,
    ) -> Result<Domain> {
        insert(self.conn()?, instance_id, None, domain, true, None, at).await
    }

    async fn set_instance_domain_primary(
        &mut self,
        instance_id: &InstanceId,
        domain: &str,
        at: OffsetDateTime,
    ) -> Result<u64> {
        set_primary(self, instance_id, None, domain, at).await
    }

    async fn remove_instance_domain(
        &mut self,
        instance_id: &InstanceId,
        domain: &str,
        at: OffsetDateTime,
    ) -> Result<u64> {
        update_one(self, "deleted_at = $3", instance_id, None, domain, at, None).await
    }

    async fn add_organization_domain(
        &mut self,
        instance_id: &InstanceId,
        org_id: &OrgId,
        domain: &str,
        validation_type: Option<ValidationType>,
        at: OffsetDateTime,
    ) -> Result<Domain> {
        insert(
            self.conn()?,
            instance_id,
            Some(org_id),
            domain,
            false,
            validation_type,
            at,
        )
        .await
    }

    async fn set_organization_domain_validation_type(
        &mut self,
        instance_id: &InstanceId,
        org_id: &OrgId,
        domain: &str,
        validation_type: ValidationType,
        at: OffsetDateTime,
    ) -> Result<u64> {
        update_one(
            self,
            "validation_type = $v",
            instance_id,
            Some(org_id),
            domain,
            at,
            Some(validation_type.ordinal()),
        )
        .await
    }

    async fn set_organization_domain_verified(
        &mut self,
        instance_id: &InstanceId,
        org_id: &OrgId,
        domain: &str,
        at: OffsetDateTime,
    ) -> Result<u64> {
        update_one(
            self,
            "is_verified = true",
            instance_id,
            Some(org_id),
            domain,
            at,
            None,
        )
        .await
    }

    async fn set_organization_domain_primary(
        &mut self,
        instance_id: &InstanceId,
        org_id: &OrgId,
        domain: &str,
        at: OffsetDateTime,
    ) -> Result<u64> {
        set_primary(self, instance_id, Some(org_id), domain, at).await
    }

    async fn remove_organization_domain(
        &mut self,
        instance_id: &InstanceId,
        org_id: &OrgId,
        domain: &str,
        at: OffsetDateTime,
    ) -> Result<u64> {
        update_one(
            self,
            "deleted_at = $3",
            instance_id,
            Some(org_id),
            domain,
            at,
            None,
        )
        .await
    }

    async fn remove_domains_of_organization(
        &mut self,
        instance_id: &InstanceId,
        org_id: &OrgId,
        at: OffsetDateTime,
    ) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE zitadel.domains SET deleted_at = $3, updated_at = $3
             WHERE instance_id = $1 AND org_id = $2 AND deleted_at IS NULL",
        )
        .bind(instance_id.as_str())
        .bind(org_id.as_str())
        .bind(at)
        .execute(self.conn()?)
        .await
        .db()?;
        Ok(done.rows_affected())
    }

    async fn remove_domains_of_instance(
        &mut self,
        instance_id: &InstanceId,
        at: OffsetDateTime,
    ) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE zitadel.domains SET deleted_at = $2, updated_at = $2 WHERE instance_id = $1 AND deleted_at IS NULL",
        )
        .bind(instance_id.as_str())
        .bind(at)
        .execute(self.conn()?)
        .await
        .db()?;
        Ok(done.rows_affected())
    }

    async fn get_domain(&mut self, criteria: &DomainCriteria) -> Result<Domain> {
        // Two rows are enough to tell "one" from "more than one".
        let page = Pagination {
            limit: Some(2),
            ..Pagination::default()
        };
        let mut rows = self.list_domains(criteria, &page).await?;
        match rows.len() {
            0 => Err(Error::not_found("domain", "matching the criteria")),
            1 => Ok(rows.remove(0)),
            _ => Err(Error::MultipleFound { kind: "domain" }),
        }
    }

    async fn list_domains(
        &mut self,
        criteria: &DomainCriteria,
        page: &Pagination<DomainSort>,
    ) -> Result<Vec<Domain>> {
        let instance_id = criteria
            .instance_id
            .as_ref()
            .ok_or(Error::MissingTenant("listing domains"))?;
        let mut qb: QueryBuilder<Postgres> = QueryBuilder::new(format!(
            "SELECT {DOMAIN_COLUMNS} FROM zitadel.domains WHERE instance_id = "
        ));
        qb.push_bind(instance_id.as_str().to_owned());
        if !criteria.include_deleted {
            qb.push(" AND deleted_at IS NULL");
        }
        if let Some(id) = criteria.id {
            qb.push(" AND id = ").push_bind(id);
        }
        if let Some(m) = &criteria.domain {
            push_text(&mut qb, "domain", m);
        }
        match &criteria.owner {
            None => {}
            Some(DomainOwner::InstanceOnly) => {
                qb.push(" AND org_id IS NULL");
            }
            Some(DomainOwner::Organization(org)) => {
                qb.push(" AND org_id = ").push_bind(org.as_str().to_owned());
            }
        }
        if let Some(v) = criteria.is_verified {
            qb.push(" AND is_verified = ").push_bind(v);
        }
        if let Some(v) = criteria.is_primary {
            qb.push(" AND is_primary = ").push_bind(v);
        }
        let column = match page.sort {
            DomainSort::CreatedAt => "created_at",
            DomainSort::UpdatedAt => "updated_at",
            DomainSort::Domain => "domain COLLATE \"C\"",
        };
        push_page(&mut qb, column, "id", page.order, page.limit, page.offset);
        let rows: Vec<DomainRow> = qb.build_query_as().fetch_all(self.conn()?).await.db()?;
        convert(rows)
    }
}
