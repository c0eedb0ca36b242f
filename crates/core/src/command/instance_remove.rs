use async_trait::async_trait;

use super::{Command, CommandContext, emit_instance_event, live_instance};
use crate::error::Result;
use crate::event::{LegacyEvent, UniqueConstraint};
use crate::id::InstanceId;
use crate::model::InstanceDomainKind;
use crate::ports::UnitOfWork;

/// Removes an instance: soft-deletes it and its organizations, deletes its instance and
/// org domain rows, soft-deletes its unified domains, and releases its custom domains.
///
/// # What it touches
///
/// - **reads** `get_instance`, `list_instance_domains`;
/// - **writes** `instances` (soft delete, `apply_instance_change`), `organizations` (soft delete of all, `apply_organization_change`), `instance_domains` (delete of all, `apply_instance_domain_change`), `org_domains` (delete of all, `apply_org_domain_change`), `domains` (soft delete of all, `apply_domain_change`);
/// - **pushes** `instance.removed`, releasing the `instance_domain` unique value of each custom domain.
#[derive(Debug, Clone)]
pub struct RemoveInstance {
    /// The instance to remove.
    pub instance_id: InstanceId,
}

#[async_trait]
impl Command for RemoveInstance {
    type Output = ();

    async fn execute(&self, uow: &mut dyn UnitOfWork, ctx: &CommandContext) -> Result<()> {
        live_instance(uow, &self.instance_id).await?;
        let mut released = Vec::new();
        for domain in uow.list_instance_domains(&self.instance_id).await? {
            if matches!(domain.kind, InstanceDomainKind::Custom { .. }) {
                released.push(UniqueConstraint::remove_instance_domain(&domain.domain));
            }
        }
        let event = LegacyEvent::InstanceRemoved;
        emit_instance_event(
            uow,
            ctx,
            ctx.clock.now(),
            &self.instance_id,
            event,
            released,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::testing::*;

    #[tokio::test]
    async fn removes_with_the_cascade() {
        let mut uow = with_instance();
        uow.expect_list_instance_domains()
            .returning(|_| Ok(vec![custom_domain("a.example", true, true)]));
        uow.expect_apply_instance_change()
            .withf(|c, _| matches!(c, InstanceChange::Remove { .. }))
            .times(1)
            .returning(|_, _| Ok(1));
        uow.expect_apply_organization_change()
            .withf(|c, _| matches!(c, OrganizationChange::RemoveAllOfInstance { .. }))
            .times(1)
            .returning(|_, _| Ok(2));
        uow.expect_apply_instance_domain_change()
            .withf(|c, _| matches!(c, InstanceDomainChange::DeleteAllOfInstance { .. }))
            .times(1)
            .returning(|_, _| Ok(1));
        uow.expect_apply_org_domain_change()
            .withf(|c, _| matches!(c, OrgDomainChange::DeleteAllOfInstance { .. }))
            .times(1)
            .returning(|_, _| Ok(0));
        uow.expect_apply_domain_change()
            .withf(|c, _| matches!(c, DomainChange::RemoveDomainsOfInstance { .. }))
            .times(1)
            .returning(|_, _| Ok(1));
        uow.expect_push()
            .times(1)
            .withf(|e| e[0].event_type == "instance.removed" && e[0].unique_constraints.len() == 1)
            .returning(|_| Ok(vec![]));
        RemoveInstance { instance_id: iid() }
            .execute(&mut uow, &ctx())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn removed_instance_is_not_found() {
        let r = RemoveInstance { instance_id: iid() }
            .execute(&mut without_instance(), &ctx())
            .await;
        assert_not_found(r);
    }
}
