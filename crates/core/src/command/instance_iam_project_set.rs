use async_trait::async_trait;

use super::{Command, CommandContext, emit_instance_event, live_instance};
use crate::error::{Error, Result};
use crate::event::LegacyEvent;
use crate::id::InstanceId;
use crate::ports::UnitOfWork;

/// Sets the id of the instance's IAM project.
///
/// # What it touches
///
/// - **reads** `get_instance`;
/// - **writes** `instances` (update, `apply_instance_change`);
/// - **pushes** `instance.iam.project.set`.
#[derive(Debug, Clone)]
pub struct SetInstanceIamProject {
    /// The instance to change.
    pub instance_id: InstanceId,
    /// The IAM project's id.
    pub iam_project_id: String,
}

#[async_trait]
impl Command for SetInstanceIamProject {
    type Output = ();

    async fn execute(&self, uow: &mut dyn UnitOfWork, ctx: &CommandContext) -> Result<()> {
        let project = self.iam_project_id.trim();
        if project.is_empty() {
            return Err(Error::invalid("iam_project_id", "must not be empty"));
        }
        let instance = live_instance(uow, &self.instance_id).await?;
        if instance.iam_project_id.as_deref() == Some(project) {
            return Err(Error::no_changes("the IAM project is already set"));
        }
        let event = LegacyEvent::InstanceIamProjectSet {
            iam_project_id: project.to_owned(),
        };
        emit_instance_event(uow, ctx, ctx.clock.now(), &self.instance_id, event, vec![]).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::testing::*;

    fn cmd(project: &str) -> SetInstanceIamProject {
        SetInstanceIamProject {
            instance_id: iid(),
            iam_project_id: project.into(),
        }
    }

    #[tokio::test]
    async fn sets_the_project() {
        let mut uow = with_instance();
        uow.expect_apply_instance_change()
            .times(1)
            .withf(|c, _| matches!(c, InstanceChange::Update { update: u, .. } if u.iam_project_id.as_deref() == Some("p1")))
            .returning(|_, _| Ok(1));
        expect_push(&mut uow, "instance.iam.project.set");
        cmd("p1").execute(&mut uow, &ctx()).await.unwrap();
    }

    #[tokio::test]
    async fn empty_project_is_invalid() {
        let result = cmd(" ").execute(&mut with_instance(), &ctx()).await;
        assert!(matches!(result, Err(Error::InvalidArgument { .. })));
    }

    #[tokio::test]
    async fn removed_instance_is_not_found() {
        assert_not_found(cmd("p1").execute(&mut without_instance(), &ctx()).await);
    }
}
