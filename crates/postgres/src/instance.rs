//! `zitadel.instances`.

use async_trait::async_trait;
use sqlx::{AssertSqlSafe, PgConnection, Postgres, QueryBuilder};
use tenancy_core::id::InstanceId;
use tenancy_core::model::Instance;
use tenancy_core::ports::InstanceRepository;
use tenancy_core::query::{InstanceCriteria, NameSort, Pagination};
use tenancy_core::state::InstanceChange;
use tenancy_core::{Error, Result};
use time::OffsetDateTime;

use crate::apply::apply_change;
use crate::error::MapDb;
use crate::keys::BatchKeys;
use crate::rows::{INSTANCE_COLUMNS, InstanceRow, Write, convert};
use crate::session::{PgSession, push_page, push_text};

#[async_trait]
impl InstanceRepository for PgSession {
    async fn apply_instance_change(
        &mut self,
        change: InstanceChange,
        at: OffsetDateTime,
    ) -> Result<u64> {
        apply_change(self.conn()?, &change.into(), at).await
    }

    async fn get_instance(&mut self, id: &InstanceId) -> Result<Instance> {
        let sql = format!(
            "SELECT {INSTANCE_COLUMNS} FROM instances WHERE id = $1 AND deleted_at IS NULL"
        );
        let row: Option<InstanceRow> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(id.as_str())
            .fetch_optional(self.conn()?)
            .await
            .db()?;
        row.ok_or_else(|| Error::not_found("instance", id))?
            .try_into()
    }

    async fn list_instances(
        &mut self,
        criteria: &InstanceCriteria,
        page: &Pagination<NameSort>,
    ) -> Result<Vec<Instance>> {
        let mut qb: QueryBuilder<Postgres> = QueryBuilder::new(format!(
            "SELECT {INSTANCE_COLUMNS} FROM instances WHERE true"
        ));
        push_instance_filters(&mut qb, criteria);
        let column = match page.sort {
            NameSort::CreatedAt => "created_at",
            NameSort::UpdatedAt => "updated_at",
            NameSort::Name => "name COLLATE \"C\"",
            NameSort::Id => "id COLLATE \"C\"",
        };
        push_page(&mut qb, column, "id COLLATE \"C\"", page)?;
        let rows: Vec<InstanceRow> = qb.build_query_as().fetch_all(self.conn()?).await.db()?;
        convert(rows)
    }

    async fn count_instances(&mut self, criteria: &InstanceCriteria) -> Result<u64> {
        let mut qb: QueryBuilder<Postgres> =
            QueryBuilder::new("SELECT count(*) FROM instances WHERE true");
        push_instance_filters(&mut qb, criteria);
        let count: i64 = qb.build_query_scalar().fetch_one(self.conn()?).await.db()?;
        Ok(u64::try_from(count).unwrap_or_default())
    }

    async fn instance_by_host(&mut self, host: &str) -> Result<Instance> {
        let domain = tenancy_core::value::DomainName::from_host(host)?;
        let host = domain.as_str();
        // One indexed round trip: instance_domains_custom_key on lower(domain).
        let sql = format!(
            "SELECT {} FROM instance_domains d JOIN instances i ON i.id = d.instance_id
             WHERE lower(d.domain COLLATE \"C\") = lower($1 COLLATE \"C\") AND d.type = 'custom' AND i.deleted_at IS NULL",
            INSTANCE_COLUMNS
                .split(", ")
                .map(|c| format!("i.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let row: Option<InstanceRow> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(host)
            .fetch_optional(self.conn()?)
            .await
            .db()?;
        row.ok_or_else(|| Error::not_found("instance for host", host))?
            .try_into()
    }
}

/// The WHERE conditions of `criteria` (after `WHERE true`), shared by list and count.
fn push_instance_filters(qb: &mut QueryBuilder<Postgres>, criteria: &InstanceCriteria) {
    if !criteria.include_deleted {
        qb.push(" AND deleted_at IS NULL");
    }
    if !criteria.ids.is_empty() {
        let ids: Vec<&str> = criteria.ids.iter().map(InstanceId::as_str).collect();
        qb.push(" AND id = ANY(").push_bind(ids).push(")");
    }
    if !criteria.custom_domains.is_empty() {
        let domains: Vec<String> = criteria
            .custom_domains
            .iter()
            .map(|d| d.to_ascii_lowercase())
            .collect();
        // instance_domains_custom_key serves lower(domain) of custom domains.
        qb.push(
            " AND id IN (SELECT d.instance_id FROM instance_domains d \
             WHERE d.type = 'custom' AND lower(d.domain COLLATE \"C\") = ANY(",
        )
        .push_bind(domains)
        .push("))");
    }
    if let Some(m) = &criteria.name {
        push_text(qb, "name", m);
    }
}

// Set-based writes (crate::batch).

/// The instance rows a batch names, locked.
pub(crate) async fn load(conn: &mut PgConnection, keys: &BatchKeys) -> Result<Vec<Instance>> {
    let sql = format!("SELECT {INSTANCE_COLUMNS} FROM instances WHERE id = ANY($1) FOR UPDATE");
    let rows: Vec<InstanceRow> = sqlx::query_as(AssertSqlSafe(sql))
        .bind(keys.instances())
        .fetch_all(conn)
        .await
        .db()?;
    convert(rows)
}

/// Writes whole rows, in order.
pub(crate) async fn write(conn: &mut PgConnection, rows: &[Instance], how: Write) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "INSERT INTO instances (id, name, default_org_id, iam_project_id, console_client_id, console_app_id,
             default_language, created_at, updated_at, deleted_at)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
             $8::timestamptz[], $9::timestamptz[], $10::timestamptz[]){}",
        how.conflict(
            "id",
            &["name", "default_org_id", "iam_project_id", "console_client_id", "console_app_id",
              "default_language", "created_at", "updated_at", "deleted_at"]
        )
    );
    sqlx::query(AssertSqlSafe(sql))
        .bind(rows.iter().map(|r| r.id.to_string()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.name.clone()).collect::<Vec<_>>())
        .bind(
            rows.iter()
                .map(|r| r.default_org_id.clone())
                .collect::<Vec<_>>(),
        )
        .bind(
            rows.iter()
                .map(|r| r.iam_project_id.clone())
                .collect::<Vec<_>>(),
        )
        .bind(
            rows.iter()
                .map(|r| r.console_client_id.clone())
                .collect::<Vec<_>>(),
        )
        .bind(
            rows.iter()
                .map(|r| r.console_app_id.clone())
                .collect::<Vec<_>>(),
        )
        .bind(
            rows.iter()
                .map(|r| r.default_language.clone())
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
