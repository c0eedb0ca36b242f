use async_trait::async_trait;

use super::{Command, CommandContext, emit_org_event, live_organization};
use crate::error::{Error, Result};
use crate::event::LegacyEvent;
use crate::id::{InstanceId, OrgId};
use crate::model::OrganizationState;
use crate::ports::UnitOfWork;

/// Reactivates an inactive organization.
///
/// # What it touches
///
/// - **reads** `get_instance`, `get_organization`;
/// - **writes** `organizations` (update, `apply_organization_change`);
/// - **pushes** `org.reactivated`.
#[derive(Debug, Clone)]
pub struct ReactivateOrganization {
    /// The organization's instance.
    pub instance_id: InstanceId,
    /// The inactive organization to reactivate.
    pub org_id: OrgId,
}

#[async_trait]
impl Command for ReactivateOrganization {
    type Output = ();

    async fn execute(&self, uow: &mut dyn UnitOfWork, ctx: &CommandContext) -> Result<()> {
        let org = live_organization(uow, &self.instance_id, &self.org_id).await?;
        if org.state == OrganizationState::Active {
            return Err(Error::precondition("the organization is already active"));
        }
        let event = LegacyEvent::OrgReactivated;
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

    fn cmd() -> ReactivateOrganization {
        ReactivateOrganization {
            instance_id: iid(),
            org_id: oid(),
        }
    }

    #[tokio::test]
    async fn reactivates() {
        let mut uow = with_org(OrganizationState::Inactive);
        uow.expect_apply_organization_change()
            .times(1)
            .withf(|c, _| matches!(c, OrganizationChange::Update { update: u, .. } if u.state == Some(OrganizationState::Active)))
            .returning(|_, _| Ok(1));
        expect_push(&mut uow, "org.reactivated");
        cmd().execute(&mut uow, &ctx()).await.unwrap();
    }

    #[tokio::test]
    async fn active_org_cannot_be_reactivated() {
        let r = cmd()
            .execute(&mut with_org(OrganizationState::Active), &ctx())
            .await;
        assert!(matches!(r, Err(Error::PreconditionFailed(_))));
    }

    #[tokio::test]
    async fn removed_instance_is_not_found() {
        assert_not_found(cmd().execute(&mut without_instance(), &ctx()).await);
    }
}
