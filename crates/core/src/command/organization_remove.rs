use async_trait::async_trait;

use super::{Command, CommandContext, emit_org_event, live_organization};
use crate::error::{Error, Result};
use crate::event::{LegacyEvent, UniqueConstraint};
use crate::id::{InstanceId, OrgId};
use crate::ports::UnitOfWork;

/// Removes an organization (not the instance's default one): soft-deletes it, deletes its
/// org domain rows, soft-deletes its unified domains and releases its name and verified
/// domains.
///
/// # What it touches
///
/// - **reads** `get_instance`, `get_organization`, `get_instance` (is it the default org?), `list_org_domains`;
/// - **writes** `organizations` (soft delete, `apply_organization_change`), `org_domains` (delete of all its, `apply_org_domain_change`), `domains` (soft delete of all its, `apply_domain_change`);
/// - **pushes** `org.removed`, releasing the `org_name` unique value and the `org_domain` value of each verified domain.
#[derive(Debug, Clone)]
pub struct RemoveOrganization {
    /// The organization's instance.
    pub instance_id: InstanceId,
    /// The organization to remove.
    pub org_id: OrgId,
}

#[async_trait]
impl Command for RemoveOrganization {
    type Output = ();

    async fn execute(&self, uow: &mut dyn UnitOfWork, ctx: &CommandContext) -> Result<()> {
        let org = live_organization(uow, &self.instance_id, &self.org_id).await?;
        let instance = uow.get_instance(&self.instance_id).await?;
        if instance.default_org_id.as_deref() == Some(self.org_id.as_str()) {
            return Err(Error::precondition(
                "the default organization of an instance cannot be removed",
            ));
        }
        let iid = self.instance_id.as_str();
        let mut uniques = vec![UniqueConstraint::remove_org_name(iid, &org.name)];
        for domain in uow
            .list_org_domains(&self.instance_id, &self.org_id)
            .await?
        {
            if domain.is_verified {
                uniques.push(UniqueConstraint::remove_org_domain(iid, &domain.domain));
            }
        }
        let event = LegacyEvent::OrgRemoved;
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
    use crate::mocks::MockUnitOfWork;
    use crate::model::OrganizationState;

    fn cmd() -> RemoveOrganization {
        RemoveOrganization {
            instance_id: iid(),
            org_id: oid(),
        }
    }

    #[tokio::test]
    async fn removes_with_its_domains() {
        let mut uow = with_org(OrganizationState::Active);
        uow.expect_list_org_domains().returning(|_, _| {
            Ok(vec![
                org_domain("v.example", true, true),
                org_domain("u.example", false, false),
            ])
        });
        uow.expect_apply_organization_change()
            .withf(|c, _| matches!(c, OrganizationChange::Remove { .. }))
            .times(1)
            .returning(|_, _| Ok(1));
        uow.expect_apply_org_domain_change()
            .withf(|c, _| matches!(c, OrgDomainChange::DeleteAllOfOrg { .. }))
            .times(1)
            .returning(|_, _| Ok(2));
        uow.expect_apply_domain_change()
            .withf(|c, _| matches!(c, DomainChange::RemoveDomainsOfOrganization { .. }))
            .times(1)
            .returning(|_, _| Ok(2));
        uow.expect_push()
            .times(1)
            .withf(|e| e[0].event_type == "org.removed" && e[0].unique_constraints.len() == 2)
            .returning(|_| Ok(vec![]));
        cmd().execute(&mut uow, &ctx()).await.unwrap();
    }

    #[tokio::test]
    async fn default_org_cannot_be_removed() {
        let mut uow = MockUnitOfWork::new();
        uow.expect_get_instance().returning(|_| {
            let mut i = instance();
            i.default_org_id = Some("o1".into());
            Ok(i)
        });
        uow.expect_get_organization()
            .returning(|_, _| Ok(organization(OrganizationState::Active)));
        let r = cmd().execute(&mut uow, &ctx()).await;
        assert!(matches!(r, Err(Error::PreconditionFailed(_))));
    }

    #[tokio::test]
    async fn removed_org_is_not_found() {
        let mut uow = with_instance();
        uow.expect_get_organization()
            .returning(|_, id| Err(Error::not_found("organization", id)));
        assert_not_found(cmd().execute(&mut uow, &ctx()).await);
    }
}
