use async_trait::async_trait;

use super::{Command, CommandContext, emit_instance_event, live_organization};
use crate::error::{Error, Result};
use crate::event::LegacyEvent;
use crate::id::{InstanceId, OrgId};
use crate::ports::UnitOfWork;

/// Makes a live organization of the instance its default organization.
///
/// # What it touches
///
/// - **reads** `get_instance`, `get_organization`;
/// - **writes** `instances` (update, `apply_instance_change`);
/// - **pushes** `instance.default.org.set`.
#[derive(Debug, Clone)]
pub struct SetInstanceDefaultOrg {
    /// The instance to change.
    pub instance_id: InstanceId,
    /// A live organization of that instance.
    pub org_id: OrgId,
}

#[async_trait]
impl Command for SetInstanceDefaultOrg {
    type Output = ();

    async fn execute(&self, uow: &mut dyn UnitOfWork, ctx: &CommandContext) -> Result<()> {
        live_organization(uow, &self.instance_id, &self.org_id).await?;
        let instance = uow.get_instance(&self.instance_id).await?;
        if instance.default_org_id.as_deref() == Some(self.org_id.as_str()) {
            return Err(Error::no_changes("the organization is already the default"));
        }
        let event = LegacyEvent::InstanceDefaultOrgSet {
            org_id: self.org_id.to_string(),
        };
        emit_instance_event(uow, ctx, ctx.clock.now(), &self.instance_id, event, vec![]).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::testing::*;
    use crate::mocks::MockUnitOfWork;
    use crate::model::OrganizationState;

    fn cmd() -> SetInstanceDefaultOrg {
        SetInstanceDefaultOrg {
            instance_id: iid(),
            org_id: oid(),
        }
    }

    #[tokio::test]
    async fn sets_the_default_org() {
        let mut uow = with_org(OrganizationState::Active);
        uow.expect_apply_instance_change()
            .times(1)
            .withf(|c, _| matches!(c, InstanceChange::Update { update: u, .. } if u.default_org_id.as_deref() == Some("o1")))
            .returning(|_, _| Ok(1));
        expect_push(&mut uow, "instance.default.org.set");
        cmd().execute(&mut uow, &ctx()).await.unwrap();
    }

    #[tokio::test]
    async fn unknown_org_is_not_found() {
        let mut uow = with_instance();
        uow.expect_get_organization()
            .returning(|_, id| Err(Error::not_found("organization", id)));
        assert_not_found(cmd().execute(&mut uow, &ctx()).await);
    }

    #[tokio::test]
    async fn already_default_is_no_change() {
        let mut uow = MockUnitOfWork::new();
        uow.expect_get_instance().returning(|_| {
            let mut i = instance();
            i.default_org_id = Some("o1".into());
            Ok(i)
        });
        uow.expect_get_organization()
            .returning(|_, _| Ok(organization(OrganizationState::Active)));
        let result = cmd().execute(&mut uow, &ctx()).await;
        assert!(matches!(result, Err(Error::NoChanges(_))));
    }
}
