//! `zitadel.instances`.

use async_trait::async_trait;
use sqlx::{AssertSqlSafe, Postgres, QueryBuilder};
use tenancy_core::id::InstanceId;
use tenancy_core::model::Instance;
use tenancy_core::ports::InstanceRepository;
use tenancy_core::query::{InstanceCriteria, NameSort, Pagination};
use tenancy_core::state::InstanceUpdate;
use tenancy_core::{Error, Result};
use time::OffsetDateTime;

use crate::error::MapDb;
use crate::rows::{INSTANCE_COLUMNS, InstanceRow, convert};
use crate::session::{PgSession, push_page, push_text};

#[async_trait]
impl InstanceRepository for PgSession {
    async fn create_instance(
        &mut self,
        id: &InstanceId,
        name: &str,
        at: OffsetDateTime,
    ) -> Result<()> {
        // A soft-deleted row with that id comes back as new; a live one is a duplicate.
        let done = sqlx::query(
            "INSERT INTO zitadel.instances (id, name, created_at, updated_at) VALUES ($1, $2, $3, $3)
             ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, default_org_id = NULL,
                 iam_project_id = NULL, console_client_id = NULL, console_app_id = NULL,
                 default_language = NULL, created_at = EXCLUDED.created_at,
                 updated_at = EXCLUDED.updated_at, deleted_at = NULL
             WHERE zitadel.instances.deleted_at IS NOT NULL",
        )
        .bind(id.as_str())
        .bind(name)
        .bind(at)
        .execute(self.conn()?)
        .await
        .db()?;
        if done.rows_affected() == 0 {
            return Err(Error::already_exists("instance id", id));
        }
        Ok(())
    }

    async fn update_instance(
        &mut self,
        id: &InstanceId,
        update: &InstanceUpdate,
        at: OffsetDateTime,
    ) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE zitadel.instances SET
                 name = coalesce($2, name),
                 default_org_id = coalesce($3, default_org_id),
                 iam_project_id = coalesce($4, iam_project_id),
                 console_client_id = coalesce($5, console_client_id),
                 console_app_id = coalesce($6, console_app_id),
                 default_language = coalesce($7, default_language),
                 updated_at = $8
             WHERE id = $1 AND deleted_at IS NULL",
        )
        .bind(id.as_str())
        .bind(update.name.as_deref())
        .bind(update.default_org_id.as_deref())
        .bind(update.iam_project_id.as_deref())
        .bind(update.console_client_id.as_deref())
        .bind(update.console_app_id.as_deref())
        .bind(update.default_language.as_deref())
        .bind(at)
        .execute(self.conn()?)
        .await
        .db()?;
        Ok(done.rows_affected())
    }

    async fn remove_instance(&mut self, id: &InstanceId, at: OffsetDateTime) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE zitadel.instances SET deleted_at = $2, updated_at = $2 WHERE id = $1 AND deleted_at IS NULL",
        )
        .bind(id.as_str())
        .bind(at)
        .execute(self.conn()?)
        .await
        .db()?;
        Ok(done.rows_affected())
    }

    async fn get_instance(&mut self, id: &InstanceId) -> Result<Instance> {
        let sql = format!(
            "SELECT {INSTANCE_COLUMNS} FROM zitadel.instances WHERE id = $1 AND deleted_at IS NULL"
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
            "SELECT {INSTANCE_COLUMNS} FROM zitadel.instances WHERE true"
        ));
        if !criteria.include_deleted {
            qb.push(" AND deleted_at IS NULL");
        }
        if let Some(m) = &criteria.name {
            push_text(&mut qb, "name", m);
        }
        let column = match page.sort {
            NameSort::CreatedAt => "created_at",
            NameSort::UpdatedAt => "updated_at",
            NameSort::Name => "name COLLATE \"C\"",
        };
        push_page(
            &mut qb,
            column,
            "id COLLATE \"C\"",
            page.order,
            page.limit,
            page.offset,
        );
        let rows: Vec<InstanceRow> = qb.build_query_as().fetch_all(self.conn()?).await.db()?;
        convert(rows)
    }

    async fn instance_by_host(&mut self, host: &str) -> Result<Instance> {
        // One indexed round trip: instance_domains_custom_key on lower(domain).
        let sql = format!(
            "SELECT {} FROM zitadel.instance_domains d JOIN zitadel.instances i ON i.id = d.instance_id
             WHERE lower(d.domain) = lower($1) AND d.type = 'custom' AND i.deleted_at IS NULL",
            INSTANCE_COLUMNS.split(", ").map(|c| format!("i.{c}")).collect::<Vec<_>>().join(", ")
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
