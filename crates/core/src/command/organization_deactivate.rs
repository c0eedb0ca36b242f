use async_trait::async_trait;

use super::{Command, CommandContext, emit_org_event, live_organization};
use crate::error::{Error, Result};
use crate::event::LegacyEvent;
use crate::id::{InstanceId, OrgId};
use crate::model::OrganizationState;
use crate::ports::UnitOfWork;

/// Deactivates an active organization.
///
/// # What it touches
///
/// - **reads** `get_instance`, `get_organization`;
/// - **writes** `organizations` (update, `apply_organization_change`);
/// - **pushes** `org.deactivated`.
#[derive(Debug, Clone)]
pub struct DeactivateOrganization {
    /// The organization's instance.
    pub instance_id: InstanceId,
    /// The active organization to deactivate.
    pub org_id: OrgId,
}

#[async_trait]
impl Command for DeactivateOrganization {
    type Output = ();

    async fn execute(&self, uow: &mut dyn UnitOfWork, ctx: &CommandContext) -> Result<()> {
        let org = live_organization(uow, &self.instance_id, &self.org_id).await?;
        if org.state == OrganizationState::Inactive {
            return Err(Error::precondition("the organization is already inactive"));
        }
        let event = LegacyEvent::OrgDeactivated;
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

    fn cmd() -> DeactivateOrganization {
        DeactivateOrganization {
            instance_id: iid(),
            org_id: oid(),
        }
    }

    #[tokio::test]
    async fn deactivates() {
        let mut uow = with_org(OrganizationState::Active);
        uow.expect_apply_organization_change()
            .times(1)
            .withf(|c, _| matches!(c, OrganizationChange::Update { update: u, .. } if u.state == Some(OrganizationState::Inactive)))
            .returning(|_, _| Ok(1));
        expect_push(&mut uow, "org.deactivated");
        cmd().execute(&mut uow, &ctx()).await.unwrap();
    }

    #[tokio::test]
    async fn inactive_org_cannot_be_deactivated() {
        let r = cmd()
            .execute(&mut with_org(OrganizationState::Inactive), &ctx())
            .await;
        assert!(matches!(r, Err(Error::PreconditionFailed(_))));
    }

    #[tokio::test]
    async fn removed_instance_is_not_found() {
        assert_not_found(cmd().execute(&mut without_instance(), &ctx()).await);
    }
}
