use async_trait::async_trait;

use super::{Command, CommandContext, emit_instance_event, live_instance};
use crate::error::{Error, Result};
use crate::event::LegacyEvent;
use crate::id::InstanceId;
use crate::ports::UnitOfWork;
use crate::value::Name;

/// Renames an instance.
///
/// # What it touches
///
/// - **reads** `get_instance`;
/// - **writes** `instances` (update, `apply_instance_change`);
/// - **pushes** `instance.changed`.
#[derive(Debug, Clone)]
pub struct RenameInstance {
    /// The instance to rename.
    pub instance_id: InstanceId,
    /// The new name (trimmed; 1 to 200 characters).
    pub name: String,
}

#[async_trait]
impl Command for RenameInstance {
    type Output = ();

    async fn execute(&self, uow: &mut dyn UnitOfWork, ctx: &CommandContext) -> Result<()> {
        let name = Name::parse(&self.name)?;
        let instance = live_instance(uow, &self.instance_id).await?;
        if instance.name == name.as_str() {
            return Err(Error::no_changes("the instance already has this name"));
        }
        let event = LegacyEvent::InstanceChanged { name: name.into() };
        emit_instance_event(uow, ctx, ctx.clock.now(), &self.instance_id, event, vec![]).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::testing::*;

    fn rename(name: &str) -> RenameInstance {
        RenameInstance {
            instance_id: iid(),
            name: name.into(),
        }
    }

    #[tokio::test]
    async fn renames() {
        let mut uow = with_instance();
        uow.expect_apply_instance_change()
            .times(1)
            .withf(|c, _| matches!(c, InstanceChange::Update { update: u, .. } if u.name.as_deref() == Some("New")))
            .returning(|_, _| Ok(1));
        expect_push(&mut uow, "instance.changed");
        rename("New").execute(&mut uow, &ctx()).await.unwrap();
    }

    #[tokio::test]
    async fn same_name_is_no_change() {
        let mut uow = with_instance();
        let result = rename("ACME").execute(&mut uow, &ctx()).await;
        assert!(matches!(result, Err(Error::NoChanges(_))));
    }

    #[tokio::test]
    async fn removed_instance_is_not_found() {
        assert_not_found(rename("New").execute(&mut without_instance(), &ctx()).await);
    }

    #[tokio::test]
    async fn invalid_name_is_rejected() {
        let result = rename(&"x".repeat(201))
            .execute(&mut with_instance(), &ctx())
            .await;
        assert!(matches!(result, Err(Error::InvalidArgument { .. })));
    }
}
