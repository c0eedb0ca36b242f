use async_trait::async_trait;

use super::org_domain_verify::existing_org_domain;
use super::{Command, CommandContext, emit_org_event, live_organization};
use crate::error::{Error, Result};
use crate::event::{LegacyEvent, UniqueConstraint};
use crate::id::{InstanceId, OrgId};
use crate::ports::UnitOfWork;
use crate::value::DomainName;

/// Removes an org domain; the primary one cannot be removed.
///
/// # What it touches
///
/// - **reads** `get_instance`, `get_organization`, `list_org_domains`;
/// - **writes** `org_domains` (delete, `apply_org_domain_change`), `domains` (soft delete, `apply_domain_change`);
/// - **pushes** `org.domain.removed`, releasing the `org_domain` unique value if it was verified.
#[derive(Debug, Clone)]
pub struct RemoveOrganizationDomain {
    /// The organization's instance.
    pub instance_id: InstanceId,
    /// The organization that holds the domain.
    pub org_id: OrgId,
    /// The domain to remove (any case).
    pub domain: String,
}

#[async_trait]
impl Command for RemoveOrganizationDomain {
    type Output = ();

    async fn execute(&self, uow: &mut dyn UnitOfWork, ctx: &CommandContext) -> Result<()> {
        let domain = DomainName::parse_stored(&self.domain)?;
        live_organization(uow, &self.instance_id, &self.org_id).await?;
        let existing = existing_org_domain(uow, &self.instance_id, &self.org_id, &domain).await?;
        if existing.is_primary {
            return Err(Error::precondition(
                "the primary org domain cannot be removed",
            ));
        }
        let mut uniques = Vec::new();
        if existing.is_verified {
            uniques.push(UniqueConstraint::remove_org_domain(
                self.instance_id.as_str(),
                &existing.domain,
            ));
        }
        let event = LegacyEvent::OrgDomainRemoved {
            domain: existing.domain,
        };
        emit_org_event(
            uow,
            ctx,
            ctx.clock.now(),
            &self.instance_id,
            &self.org_id,
            event,
            uniques,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::testing::*;
    use crate::model::OrganizationState;

    fn cmd() -> RemoveOrganizationDomain {
        RemoveOrganizationDomain {
            instance_id: iid(),
            org_id: oid(),
            domain: "o.example".into(),
        }
    }

    #[tokio::test]
    async fn removes_from_both_tables() {
        let mut uow = with_org(OrganizationState::Active);
        uow.expect_list_org_domains()
            .returning(|_, _| Ok(vec![org_domain("o.example", true, false)]));
        uow.expect_apply_org_domain_change()
            .withf(|c, _| matches!(c, OrgDomainChange::Delete { .. }))
            .times(1)
            .returning(|_, _| Ok(1));
        uow.expect_apply_domain_change()
            .withf(|c, _| matches!(c, DomainChange::RemoveOrganizationDomain { .. }))
            .times(1)
            .returning(|_, _| Ok(1));
        uow.expect_push()
            .times(1)
            .withf(|e| {
                e[0].event_type == "org.domain.removed" && e[0].unique_constraints.len() == 1
            })
            .returning(|_| Ok(vec![]));
        cmd().execute(&mut uow, &ctx()).await.unwrap();
    }

    #[tokio::test]
    async fn primary_cannot_be_removed() {
        let mut uow = with_org(OrganizationState::Active);
        uow.expect_list_org_domains()
            .returning(|_, _| Ok(vec![org_domain("o.example", true, true)]));
        assert!(matches!(
            cmd().execute(&mut uow, &ctx()).await,
            Err(Error::PreconditionFailed(_))
        ));
    }

    #[tokio::test]
    async fn unknown_domain_is_not_found() {
        let mut uow = with_org(OrganizationState::Active);
        uow.expect_list_org_domains().returning(|_, _| Ok(vec![]));
        assert_not_found(cmd().execute(&mut uow, &ctx()).await);
    }
}
