use async_trait::async_trait;

use super::org_domain_verify::unverified_org_domain;
use super::{Command, CommandContext, emit_org_event};
use crate::error::Result;
use crate::event::LegacyEvent;
use crate::id::{InstanceId, OrgId};
use crate::model::ValidationType;
use crate::ports::UnitOfWork;
use crate::value::DomainName;

/// Starts the verification of an org domain by HTTP or DNS.
///
/// # What it touches
///
/// - **reads** `get_instance`, `get_organization`, `list_org_domains`;
/// - **writes** `org_domains` (update, `apply_org_domain_change`), `domains` (update, `apply_domain_change`);
/// - **pushes** `org.domain.verification.added` (without a token).
#[derive(Debug, Clone)]
pub struct AddOrganizationDomainVerification {
    /// The organization's instance.
    pub instance_id: InstanceId,
    /// The organization that holds the domain.
    pub org_id: OrgId,
    /// One of its unverified domains.
    pub domain: String,
    /// How the domain is to be validated.
    pub validation_type: ValidationType,
}

#[async_trait]
impl Command for AddOrganizationDomainVerification {
    type Output = ();

    async fn execute(&self, uow: &mut dyn UnitOfWork, ctx: &CommandContext) -> Result<()> {
        let domain = DomainName::parse_claimable(&self.domain)?;
        let existing = unverified_org_domain(uow, &self.instance_id, &self.org_id, &domain).await?;
        let event = LegacyEvent::OrgDomainVerificationAdded {
            domain: existing.domain,
            validation_type: self.validation_type,
            validation_code: None,
            expires_at: None,
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
    use crate::error::Error;
    use crate::model::OrganizationState;

    fn cmd(vt: ValidationType) -> AddOrganizationDomainVerification {
        AddOrganizationDomainVerification {
            instance_id: iid(),
            org_id: oid(),
            domain: "o.example".into(),
            validation_type: vt,
        }
    }

    #[tokio::test]
    async fn records_the_validation_type_in_both_tables() {
        for vt in [ValidationType::Http, ValidationType::Dns] {
            let mut uow = with_org(OrganizationState::Active);
            uow.expect_list_org_domains()
                .returning(|_, _| Ok(vec![org_domain("o.example", false, false)]));
            uow.expect_apply_org_domain_change()
                .times(1)
                .withf(move |c, _| matches!(c, OrgDomainChange::SetValidation { validation_type: v, .. } if *v == vt))
                .returning(|_, _| Ok(1));
            uow.expect_apply_domain_change()
                .withf(|c, _| matches!(c, DomainChange::SetOrganizationDomainValidationType { .. }))
                .times(1)
                .returning(|_, _| Ok(1));
            uow.expect_push()
                .times(1)
                .withf(move |e| {
                    e[0].payload.as_ref().unwrap()["validationType"] == i64::from(vt.ordinal())
                })
                .returning(|_| Ok(vec![]));
            cmd(vt).execute(&mut uow, &ctx()).await.unwrap();
        }
    }

    #[tokio::test]
    async fn verified_domain_needs_no_verification() {
        let mut uow = with_org(OrganizationState::Active);
        uow.expect_list_org_domains()
            .returning(|_, _| Ok(vec![org_domain("o.example", true, false)]));
        let r = cmd(ValidationType::Dns).execute(&mut uow, &ctx()).await;
        assert!(matches!(r, Err(Error::PreconditionFailed(_))));
    }

    #[tokio::test]
    async fn unknown_domain_is_not_found() {
        let mut uow = with_org(OrganizationState::Active);
        uow.expect_list_org_domains().returning(|_, _| Ok(vec![]));
        assert_not_found(cmd(ValidationType::Http).execute(&mut uow, &ctx()).await);
    }
}
