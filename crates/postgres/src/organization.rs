//! `zitadel.organizations`.

use async_trait::async_trait;
use sqlx::{AssertSqlSafe, PgConnection, Postgres, QueryBuilder};
use tenancy_core::id::{InstanceId, OrgId};
use tenancy_core::model::Organization;
use tenancy_core::ports::OrganizationRepository;
use tenancy_core::query::{NameSort, OrganizationCriteria, Pagination};
use tenancy_core::state::OrganizationChange;
use tenancy_core::{Error, Result};
use time::OffsetDateTime;

use crate::apply::apply_change;
use crate::error::MapDb;
use crate::keys::{BatchKeys, columns, list};
use crate::rows::{ORGANIZATION_COLUMNS, OrganizationRow, Write, convert};
use crate::session::{PgSession, push_page, push_text};

#[async_trait]
impl OrganizationRepository for PgSession {
    async fn apply_organization_change(
        &mut self,
        change: OrganizationChange,
        at: OffsetDateTime,
    ) -> Result<u64> {
        apply_change(self.conn()?, &change.into(), at).await
    }

    async fn get_organization(
        &mut self,
        instance_id: &InstanceId,
        id: &OrgId,
    ) -> Result<Organization> {
        let sql = format!(
            "SELECT {ORGANIZATION_COLUMNS} FROM organizations
             WHERE instance_id = $1 AND id = $2 AND deleted_at IS NULL"
        );
        let row: Option<OrganizationRow> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(instance_id.as_str())
            .bind(id.as_str())
            .fetch_optional(self.conn()?)
            .await
            .db()?;
        row.ok_or_else(|| Error::not_found("organization", id))?
            .try_into()
    }

    async fn list_organizations(
        &mut self,
        criteria: &OrganizationCriteria,
        page: &Pagination<NameSort>,
    ) -> Result<Vec<Organization>> {
        let instance_id = criteria
            .instance_id
            .as_ref()
            .ok_or(Error::MissingTenant("listing organizations"))?;
        let mut qb: QueryBuilder<Postgres> = QueryBuilder::new(format!(
            "SELECT {ORGANIZATION_COLUMNS} FROM organizations WHERE instance_id = "
        ));
        qb.push_bind(instance_id.as_str().to_owned());
        push_organization_filters(&mut qb, criteria);
        let column = match page.sort {
            NameSort::CreatedAt => "created_at",
            NameSort::UpdatedAt => "updated_at",
            NameSort::Name => "name COLLATE \"C\"",
            NameSort::Id => "id COLLATE \"C\"",
        };
        push_page(&mut qb, column, "id COLLATE \"C\"", page)?;
        let rows: Vec<OrganizationRow> = qb.build_query_as().fetch_all(self.conn()?).await.db()?;
        convert(rows)
    }

    async fn count_organizations(&mut self, criteria: &OrganizationCriteria) -> Result<u64> {
        let instance_id = criteria
            .instance_id
            .as_ref()
            .ok_or(Error::MissingTenant("counting organizations"))?;
        let mut qb: QueryBuilder<Postgres> =
            QueryBuilder::new("SELECT count(*) FROM organizations WHERE instance_id = ");
        qb.push_bind(instance_id.as_str().to_owned());
        push_organization_filters(&mut qb, criteria);
        let count: i64 = qb.build_query_scalar().fetch_one(self.conn()?).await.db()?;
        Ok(u64::try_from(count).unwrap_or_default())
    }
}

/// The conditions of `criteria` after `WHERE instance_id = $1`, shared by list and count.
fn push_organization_filters(qb: &mut QueryBuilder<Postgres>, criteria: &OrganizationCriteria) {
    if !criteria.include_deleted {
        qb.push(" AND deleted_at IS NULL");
    }
    if !criteria.ids.is_empty() {
        let ids: Vec<&str> = criteria.ids.iter().map(OrgId::as_str).collect();
        qb.push(" AND id = ANY(").push_bind(ids).push(")");
    }
    if let Some(m) = &criteria.name {
        push_text(qb, "name", m);
    }
    if let Some(state) = criteria.state {
        qb.push(" AND state = ")
            .push_bind(state.as_str())
            .push("::organization_state");
    }
    if let Some(m) = &criteria.domain {
        qb.push(
            " AND EXISTS (SELECT 1 FROM org_domains d \
             WHERE d.instance_id = organizations.instance_id AND d.org_id = organizations.id",
        );
        push_text(qb, "d.domain", m);
        qb.push(")");
    }
}

// Set-based writes (crate::batch).

/// The organizations a batch names or whose live name it may take, locked: each instance's
/// own keys (index probes per key), or all of an instance a change empties. A named key
/// goes straight to the locking probe: one with no row locks nothing.
pub(crate) async fn load(conn: &mut PgConnection, keys: &BatchKeys) -> Result<Vec<Organization>> {
    if keys.all_organizations.is_empty() && keys.orgs.is_empty() && keys.org_names.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT r.* FROM (
             SELECT DISTINCT a.instance_id, a.id FROM (
                 SELECT k.i AS instance_id, k.id FROM unnest($1::text[], $2::text[]) AS k(i, id)
                 UNION ALL
                 SELECT o.instance_id, o.id FROM unnest($3::text[], $4::text[]) AS k(i, name),
                 LATERAL (SELECT o.instance_id, o.id FROM organizations o
                      WHERE o.instance_id = k.i AND o.deleted_at IS NULL
                      AND lower(o.name COLLATE \"C\") = k.name OFFSET 0) o
                 UNION ALL
                 SELECT o.instance_id, o.id FROM organizations o WHERE o.instance_id = ANY($5)) a
             ORDER BY 1, 2) k,
         LATERAL (SELECT {ORGANIZATION_COLUMNS} FROM organizations o
              WHERE o.instance_id = k.instance_id AND o.id = k.id FOR UPDATE) r"
    );
    let (org_instances, orgs) = columns(&keys.orgs);
    let (name_instances, names) = columns(&keys.org_names);
    let rows: Vec<OrganizationRow> = sqlx::query_as(AssertSqlSafe(sql))
        .bind(org_instances)
        .bind(orgs)
        .bind(name_instances)
        .bind(names)
        .bind(list(&keys.all_organizations))
        .fetch_all(conn)
        .await
        .db()?;
    convert(rows)
}

/// Writes whole rows, in order.
pub(crate) async fn write(
    conn: &mut PgConnection,
    rows: &[Organization],
    how: Write,
) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "INSERT INTO organizations (instance_id, id, name, state, created_at, updated_at, deleted_at)
         SELECT a, b, c, d::organization_state, e, f, g
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::timestamptz[], $7::timestamptz[])
             AS t(a, b, c, d, e, f, g){}",
        how.conflict(
            "instance_id, id",
            &["name", "state", "created_at", "updated_at", "deleted_at"]
        )
    );
    sqlx::query(AssertSqlSafe(sql))
        .bind(
            rows.iter()
                .map(|r| r.instance_id.to_string())
                .collect::<Vec<_>>(),
        )
        .bind(rows.iter().map(|r| r.id.to_string()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.name.clone()).collect::<Vec<_>>())
        .bind(
            rows.iter()
                .map(|r| r.state.as_str().to_owned())
                .collect::<Vec<_>>(),
        )
        .bind(rows.iter().map(|r| r.created_at).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.updated_at).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.deleted_at).collect::<Vec<_>>())
        .execute(conn)
        .await
        .db()
        .map(drop)
}
