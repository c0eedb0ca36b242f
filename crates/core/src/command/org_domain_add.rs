use async_trait::async_trait;

use super::{Command, CommandContext, emit_org_event, live_organization};
use crate::error::{Error, Result, Rule};
use crate::event::LegacyEvent;
use crate::id::{InstanceId, OrgId};
use crate::model::same_domain;
use crate::ports::UnitOfWork;
use crate::query::{DomainCriteria, Pagination, TextMatch};
use crate::value::DomainName;

/// Claims a domain for an organization (unverified). Several orgs may claim the same
/// domain, but not one that another org of the instance has verified.
///
/// # What it touches
///
/// - **reads** `get_instance`, `get_organization`, `list_org_domains`, `list_domains` (verified elsewhere?);
/// - **writes** `org_domains` (insert, `apply_org_domain_change`), `domains` (insert, `apply_domain_change`);
/// - **pushes** `org.domain.added`.
#[derive(Debug, Clone)]
pub struct AddOrganizationDomain {
    /// The organization's instance.
    pub instance_id: InstanceId,
    /// The organization that claims the domain.
    pub org_id: OrgId,
    /// The domain to claim.
    pub domain: String,
}

#[async_trait]
impl Command for AddOrganizationDomain {
    type Output = DomainName;

    async fn execute(&self, uow: &mut dyn UnitOfWork, ctx: &CommandContext) -> Result<DomainName> {
        let domain = DomainName::parse_claimable(&self.domain)?;
        live_organization(uow, &self.instance_id, &self.org_id).await?;
        let own = uow
            .list_org_domains(&self.instance_id, &self.org_id)
            .await?;
        if own.iter().any(|d| same_domain(&d.domain, domain.as_str())) {
            return Err(Error::already_exists(Rule::OrganizationDomain, &domain));
        }
        ensure_not_verified_elsewhere(uow, &self.instance_id, &self.org_id, &domain).await?;
        let event = LegacyEvent::OrgDomainAdded {
            domain: domain.to_string(),
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
        .await?;
        Ok(domain)
    }
}

/// AlreadyExists when another org of the instance has verified `domain`.
pub(super) async fn ensure_not_verified_elsewhere(
    uow: &mut dyn UnitOfWork,
    instance_id: &InstanceId,
    org_id: &OrgId,
    domain: &DomainName,
) -> Result<()> {
    let criteria = DomainCriteria::of_instance(instance_id)
        .domain(TextMatch::equals(domain.as_str()).ignoring_case())
        .verified(true);
    let verified = uow.list_domains(&criteria, &Pagination::default()).await?;
    if verified
        .iter()
        .any(|d| d.org_id.as_ref().is_some_and(|o| o != org_id))
    {
        return Err(Error::already_exists(
            Rule::VerifiedOrganizationDomain,
            domain,
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::testing::*;
    use crate::model::{Domain, OrganizationState};

    fn cmd(d: &str) -> AddOrganizationDomain {
        AddOrganizationDomain {
            instance_id: iid(),
            org_id: oid(),
            domain: d.into(),
        }
    }

    pub(crate) fn verified_by(org: &str) -> Domain {
        Domain {
            id: 9,
            instance_id: iid(),
            org_id: Some(OrgId::new(org).unwrap()),
            domain: "o.example".into(),
            is_verified: true,
            is_primary: false,
            validation_type: None,
            created_at: NOW,
            updated_at: NOW,
            deleted_at: None,
        }
    }

    #[tokio::test]
    async fn adds_unverified_to_both_tables() {
        let mut uow = with_org(OrganizationState::Active);
        uow.expect_list_org_domains().returning(|_, _| Ok(vec![]));
        uow.expect_list_domains().returning(|_, _| Ok(vec![]));
        uow.expect_apply_org_domain_change()
            .withf(|c, _| matches!(c, OrgDomainChange::Insert { .. }))
            .times(1)
            .returning(|_, _| Ok(1));
        uow.expect_apply_domain_change()
            .times(1)
            .withf(|c, _| matches!(c, DomainChange::AddOrganizationDomain { domain: d, validation_type: v, .. } if d == "o.example" && v.is_none()))
            .returning(|_, _| Ok(1));
        expect_push(&mut uow, "org.domain.added");
        cmd("o.example").execute(&mut uow, &ctx()).await.unwrap();
    }

    #[tokio::test]
    async fn own_duplicate_already_exists() {
        let mut uow = with_org(OrganizationState::Active);
        uow.expect_list_org_domains()
            .returning(|_, _| Ok(vec![org_domain("O.example", false, false)]));
        let r = cmd("o.example").execute(&mut uow, &ctx()).await;
        assert!(matches!(
            r,
            Err(Error::AlreadyExists {
                rule: Rule::OrganizationDomain,
                ..
            })
        ));
    }

    #[tokio::test]
    async fn verified_by_another_org_already_exists() {
        let mut uow = with_org(OrganizationState::Active);
        uow.expect_list_org_domains().returning(|_, _| Ok(vec![]));
        uow.expect_list_domains()
            .returning(|_, _| Ok(vec![verified_by("o2")]));
        let r = cmd("o.example").execute(&mut uow, &ctx()).await;
        assert!(matches!(
            r,
            Err(Error::AlreadyExists {
                rule: Rule::VerifiedOrganizationDomain,
                ..
            })
        ));
    }

    #[tokio::test]
    async fn removed_org_is_not_found() {
        let mut uow = with_instance();
        uow.expect_get_organization()
            .returning(|_, id| Err(Error::not_found("organization", id)));
        assert_not_found(cmd("o.example").execute(&mut uow, &ctx()).await);
    }
}
