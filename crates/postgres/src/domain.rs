//! The unified `zitadel.domains` table (soft delete; live reads filter `deleted_at IS NULL`).

use async_trait::async_trait;
use sqlx::{Postgres, QueryBuilder};
use tenancy_core::model::Domain;
use tenancy_core::ports::DomainRepository;
use tenancy_core::query::{DomainCriteria, DomainOwner, DomainSort, Pagination};
use tenancy_core::state::DomainChange;
use tenancy_core::{Error, Result};
use time::OffsetDateTime;

use crate::apply::apply_change;
use crate::error::MapDb;
use crate::rows::{DOMAIN_COLUMNS, DomainRow, convert};
use crate::session::{PgSession, push_page, push_text};

#[async_trait]
impl DomainRepository for PgSession {
    async fn apply_domain_change(
        &mut self,
        change: DomainChange,
        at: OffsetDateTime,
    ) -> Result<u64> {
        apply_change(self.conn()?, &change.into(), at).await
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
            "SELECT {DOMAIN_COLUMNS} FROM domains WHERE instance_id = "
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
            Some(DomainOwner::Organizations(orgs)) => {
                let orgs: Vec<String> = orgs.iter().map(|o| o.as_str().to_owned()).collect();
                qb.push(" AND org_id = ANY(").push_bind(orgs).push(")");
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
        push_page(&mut qb, column, "id", page)?;
        let rows: Vec<DomainRow> = qb.build_query_as().fetch_all(self.conn()?).await.db()?;
        convert(rows)
    }
}
