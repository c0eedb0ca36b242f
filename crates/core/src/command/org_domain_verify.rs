use async_trait::async_trait;

use super::org_domain_add::ensure_not_verified_elsewhere;
use super::{Command, CommandContext, emit_org_event, live_organization};
use crate::error::{Error, Result};
use crate::event::{LegacyEvent, UniqueConstraint};
use crate::id::{InstanceId, OrgId};
use crate::model::{OrganizationDomain, same_domain};
use crate::ports::UnitOfWork;
use crate::value::DomainName;

/// Marks an org domain verified. A verified domain belongs to one org per instance.
///
/// # What it touches
///
/// - **reads** `get_instance`, `get_organization`, `list_org_domains`, `list_domains` (verified elsewhere?);
/// - **writes** `org_domains` (update, `apply_org_domain_change`), `domains` (update, `apply_domain_change`);
/// - **pushes** `org.domain.verified`, claiming the `org_domain` unique value.
#[derive(Debug, Clone)]
pub struct VerifyOrganizationDomain {
    /// The organization's instance.
    pub instance_id: InstanceId,
    /// The organization that holds the domain.
    pub org_id: OrgId,
    /// One of its unverified domains.
    pub domain: String,
}

#[async_trait]
impl Command for VerifyOrganizationDomain {
    type Output = ();

    async fn execute(&self, uow: &mut dyn UnitOfWork, ctx: &CommandContext) -> Result<()> {
        let domain = DomainName::parse_claimable(&self.domain)?;
        live_organization(uow, &self.instance_id, &self.org_id).await?;
        let existing = existing_org_domain(uow, &self.instance_id, &self.org_id, &domain).await?;
        if existing.is_verified {
            return Err(Error::no_changes("the domain is already verified"));
        }
        ensure_not_verified_elsewhere(uow, &self.instance_id, &self.org_id, &domain).await?;
        let uniques = vec![UniqueConstraint::add_org_domain(
            self.instance_id.as_str(),
            &existing.domain,
        )];
        let event = LegacyEvent::OrgDomainVerified {
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

/// The live org's unverified row for `domain`: NotFound, or PreconditionFailed when it
/// is verified already (starting a verification of it makes no sense).
pub(super) async fn unverified_org_domain(
    uow: &mut dyn UnitOfWork,
    instance_id: &InstanceId,
    org_id: &OrgId,
    domain: &DomainName,
) -> Result<OrganizationDomain> {
    live_organization(uow, instance_id, org_id).await?;
    let existing = existing_org_domain(uow, instance_id, org_id, domain).await?;
    if existing.is_verified {
        return Err(Error::precondition("the domain is already verified"));
    }
    Ok(existing)
}

/// The org's row for `domain`, or NotFound.
pub(super) async fn existing_org_domain(
    uow: &mut dyn UnitOfWork,
    instance_id: &InstanceId,
    org_id: &OrgId,
    domain: &DomainName,
) -> Result<OrganizationDomain> {
    uow.list_org_domains(instance_id, org_id)
        .await?
        .into_iter()
        .find(|d| same_domain(&d.domain, domain.as_str()))
        .ok_or_else(|| Error::not_found("organization domain", domain))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::testing::*;
    use crate::model::{Domain, OrganizationState};

    fn cmd() -> VerifyOrganizationDomain {
        VerifyOrganizationDomain {
            instance_id: iid(),
            org_id: oid(),
            domain: "o.example".into(),
        }
    }

    fn other_org_verified() -> Domain {
        Domain {
            id: 2,
            instance_id: iid(),
            org_id: Some(OrgId::new("o2").unwrap()),
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
    async fn verifies_in_both_tables() {
        let mut uow = with_org(OrganizationState::Active);
        uow.expect_list_org_domains()
            .returning(|_, _| Ok(vec![org_domain("o.example", false, false)]));
        uow.expect_list_domains().returning(|_, _| Ok(vec![]));
        uow.expect_apply_org_domain_change()
            .withf(|c, _| matches!(c, OrgDomainChange::SetVerified { .. }))
            .times(1)
            .returning(|_, _| Ok(1));
        uow.expect_apply_domain_change()
            .withf(|c, _| matches!(c, DomainChange::SetOrganizationDomainVerified { .. }))
            .times(1)
            .returning(|_, _| Ok(1));
        uow.expect_push()
            .times(1)
            .withf(|e| {
                e[0].event_type == "org.domain.verified"
                    && e[0].unique_constraints[0].unique_type == "org_domain"
            })
            .returning(|_| Ok(vec![]));
        cmd().execute(&mut uow, &ctx()).await.unwrap();
    }

    #[tokio::test]
    async fn verified_by_another_org_already_exists() {
        let mut uow = with_org(OrganizationState::Active);
        uow.expect_list_org_domains()
            .returning(|_, _| Ok(vec![org_domain("o.example", false, false)]));
        uow.expect_list_domains()
            .returning(|_, _| Ok(vec![other_org_verified()]));
        let r = cmd().execute(&mut uow, &ctx()).await;
        assert!(matches!(r, Err(Error::AlreadyExists { .. })));
    }

    #[tokio::test]
    async fn already_verified_is_no_change() {
        let mut uow = with_org(OrganizationState::Active);
        uow.expect_list_org_domains()
            .returning(|_, _| Ok(vec![org_domain("o.example", true, false)]));
        assert!(matches!(
            cmd().execute(&mut uow, &ctx()).await,
            Err(Error::NoChanges(_))
        ));
    }

    #[tokio::test]
    async fn unknown_domain_is_not_found() {
        let mut uow = with_org(OrganizationState::Active);
        uow.expect_list_org_domains().returning(|_, _| Ok(vec![]));
        assert_not_found(cmd().execute(&mut uow, &ctx()).await);
    }
}
