use async_trait::async_trait;

use super::org_domain_verify::existing_org_domain;
use super::{Command, CommandContext, emit_org_event, live_organization};
use crate::error::{Error, Result};
use crate::event::LegacyEvent;
use crate::id::{InstanceId, OrgId};
use crate::ports::UnitOfWork;
use crate::value::DomainName;

/// Makes a verified org domain the org's only primary domain.
///
/// # What it touches
///
/// - **reads** `get_instance`, `get_organization`, `list_org_domains`;
/// - **writes** `org_domains` (update, `apply_org_domain_change`), `domains` (update, `apply_domain_change`);
/// - **pushes** `org.domain.primary.set`.
#[derive(Debug, Clone)]
pub struct SetOrganizationDomainPrimary {
    /// The organization's instance.
    pub instance_id: InstanceId,
    /// The organization that holds the domain.
    pub org_id: OrgId,
    /// One of its verified domains (any case).
    pub domain: String,
}

#[async_trait]
impl Command for SetOrganizationDomainPrimary {
    type Output = ();

    async fn execute(&self, uow: &mut dyn UnitOfWork, ctx: &CommandContext) -> Result<()> {
        let domain = DomainName::parse_stored(&self.domain)?;
        live_organization(uow, &self.instance_id, &self.org_id).await?;
        let existing = existing_org_domain(uow, &self.instance_id, &self.org_id, &domain).await?;
        if !existing.is_verified {
            return Err(Error::precondition(
                "an org domain must be verified before it can be primary",
            ));
        }
        if existing.is_primary {
            return Err(Error::no_changes("the domain is already primary"));
        }
        let event = LegacyEvent::OrgDomainPrimarySet {
            domain: existing.domain,
        };
        emit_org_event(
            uow,
            ctx,
            ctx.clock.now(),
            &self.instance_id,
            &self.org_id,
            event,
            vec![],
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::testing::*;
    use crate::model::OrganizationState;

    fn cmd() -> SetOrganizationDomainPrimary {
        SetOrganizationDomainPrimary {
            instance_id: iid(),
            org_id: oid(),
            domain: "o.example".into(),
        }
    }

    #[tokio::test]
    async fn switches_primary_in_both_tables() {
        let mut uow = with_org(OrganizationState::Active);
        uow.expect_list_org_domains()
            .returning(|_, _| Ok(vec![org_domain("o.example", true, false)]));
        uow.expect_apply_org_domain_change()
            .withf(|c, _| matches!(c, OrgDomainChange::SetPrimary { .. }))
            .times(1)
            .returning(|_, _| Ok(2));
        uow.expect_apply_domain_change()
            .withf(|c, _| matches!(c, DomainChange::SetOrganizationDomainPrimary { .. }))
            .times(1)
            .returning(|_, _| Ok(2));
        expect_push(&mut uow, "org.domain.primary.set");
        cmd().execute(&mut uow, &ctx()).await.unwrap();
    }

    #[tokio::test]
    async fn unverified_cannot_be_primary() {
        let mut uow = with_org(OrganizationState::Active);
        uow.expect_list_org_domains()
            .returning(|_, _| Ok(vec![org_domain("o.example", false, false)]));
        assert!(matches!(
            cmd().execute(&mut uow, &ctx()).await,
            Err(Error::PreconditionFailed(_))
        ));
    }

    #[tokio::test]
    async fn already_primary_is_no_change() {
        let mut uow = with_org(OrganizationState::Active);
        uow.expect_list_org_domains()
            .returning(|_, _| Ok(vec![org_domain("o.example", true, true)]));
        assert!(matches!(
            cmd().execute(&mut uow, &ctx()).await,
            Err(Error::NoChanges(_))
        ));
    }
}
