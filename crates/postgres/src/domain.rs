//! The unified `zitadel.domains` table (soft delete; live reads filter `deleted_at IS NULL`).

use async_trait::async_trait;
use sqlx::{Postgres, QueryBuilder};
use tenancy_core::id::{InstanceId, OrgId};
use tenancy_core::model::{Domain, ValidationType};
use tenancy_core::ports::DomainRepository;
use tenancy_core::query::{DomainCriteria, DomainOwner, DomainSort, Pagination, TextMatch};
use tenancy_core::state::StateChange;
use tenancy_core::{Error, Result};
use time::OffsetDateTime;

use crate::apply::apply_change;
use crate::error::MapDb;
use crate::rows::{DOMAIN_COLUMNS, DomainRow, convert};
use crate::session::{PgSession, push_page, push_text};

/// The live unified row of one owner, just written.
async fn live_row(
    session: &mut PgSession,
    instance_id: &InstanceId,
    owner: DomainOwner,
    domain: &str,
) -> Result<Domain> {
    let criteria = DomainCriteria::of_instance(instance_id)
        .owner(owner)
        .domain(TextMatch::equals(domain).ignoring_case());
    session.get_domain(&criteria).await
}

async fn apply(session: &mut PgSession, change: StateChange, at: OffsetDateTime) -> Result<u64> {
    apply_change(session.conn()?, &change, at).await
}

#[async_trait]
impl DomainRepository for PgSession {
    async fn add_instance_domain(
        &mut self,
        instance_id: &InstanceId,
        domain: &str,
        at: OffsetDateTime,
    ) -> Result<Domain> {
        apply(
            self,
            StateChange::AddInstanceDomain {
                instance_id: instance_id.clone(),
                domain: domain.to_owned(),
            },
            at,
        )
        .await?;
        live_row(self, instance_id, DomainOwner::InstanceOnly, domain).await
    }

    async fn set_instance_domain_primary(
        &mut self,
        instance_id: &InstanceId,
        domain: &str,
        at: OffsetDateTime,
    ) -> Result<u64> {
        apply(
            self,
            StateChange::SetInstanceDomainPrimary {
                instance_id: instance_id.clone(),
                domain: domain.to_owned(),
            },
            at,
        )
        .await
    }

    async fn remove_instance_domain(
        &mut self,
        instance_id: &InstanceId,
        domain: &str,
        at: OffsetDateTime,
    ) -> Result<u64> {
        apply(
            self,
            StateChange::RemoveInstanceDomain {
                instance_id: instance_id.clone(),
                domain: domain.to_owned(),
            },
            at,
        )
        .await
    }

    async fn add_organization_domain(
        &mut self,
        instance_id: &InstanceId,
        org_id: &OrgId,
        domain: &str,
        validation_type: Option<ValidationType>,
        at: OffsetDateTime,
    ) -> Result<Domain> {
        let change = StateChange::AddOrganizationDomain {
            instance_id: instance_id.clone(),
            org_id: org_id.clone(),
            domain: domain.to_owned(),
            validation_type,
        };
        apply(self, change, at).await?;
        live_row(
            self,
            instance_id,
            DomainOwner::Organization(org_id.clone()),
            domain,
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
        let change = StateChange::SetOrganizationDomainValidationType {
            instance_id: instance_id.clone(),
            org_id: org_id.clone(),
            domain: domain.to_owned(),
            validation_type,
        };
        apply(self, change, at).await
    }

    async fn set_organization_domain_verified(
        &mut self,
        instance_id: &InstanceId,
        org_id: &OrgId,
        domain: &str,
        at: OffsetDateTime,
    ) -> Result<u64> {
        let change = StateChange::SetOrganizationDomainVerified {
            instance_id: instance_id.clone(),
            org_id: org_id.clone(),
            domain: domain.to_owned(),
        };
        apply(self, change, at).await
    }

    async fn set_organization_domain_primary(
        &mut self,
        instance_id: &InstanceId,
        org_id: &OrgId,
        domain: &str,
        at: OffsetDateTime,
    ) -> Result<u64> {
        let change = StateChange::SetOrganizationDomainPrimary {
            instance_id: instance_id.clone(),
            org_id: org_id.clone(),
            domain: domain.to_owned(),
        };
        apply(self, change, at).await
    }

    async fn remove_organization_domain(
        &mut self,
        instance_id: &InstanceId,
        org_id: &OrgId,
        domain: &str,
        at: OffsetDateTime,
    ) -> Result<u64> {
        let change = StateChange::RemoveOrganizationDomain {
            instance_id: instance_id.clone(),
            org_id: org_id.clone(),
            domain: domain.to_owned(),
        };
        apply(self, change, at).await
    }

    async fn remove_domains_of_organization(
        &mut self,
        instance_id: &InstanceId,
        org_id: &OrgId,
        at: OffsetDateTime,
    ) -> Result<u64> {
        apply(
            self,
            StateChange::RemoveDomainsOfOrganization {
                instance_id: instance_id.clone(),
                org_id: org_id.clone(),
            },
            at,
        )
        .await
    }

    async fn remove_domains_of_instance(
        &mut self,
        instance_id: &InstanceId,
        at: OffsetDateTime,
    ) -> Result<u64> {
        apply(
            self,
            StateChange::RemoveDomainsOfInstance {
                instance_id: instance_id.clone(),
            },
            at,
        )
        .await
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
