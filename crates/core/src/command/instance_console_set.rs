use async_trait::async_trait;

use super::{Command, CommandContext, emit_instance_event, live_instance};
use crate::error::{Error, Result};
use crate::event::LegacyEvent;
use crate::id::InstanceId;
use crate::ports::UnitOfWork;

/// Sets the console's OIDC client id and app id.
///
/// # What it touches
///
/// - **reads** `get_instance`;
/// - **writes** `instances` (update, `apply_instance_change`);
/// - **pushes** `instance.iam.console.set`.
#[derive(Debug, Clone)]
pub struct SetInstanceConsole {
    /// The instance to change.
    pub instance_id: InstanceId,
    /// The console's OIDC client id.
    pub client_id: String,
    /// The console's application id.
    pub app_id: String,
}

#[async_trait]
impl Command for SetInstanceConsole {
    type Output = ();

    async fn execute(&self, uow: &mut dyn UnitOfWork, ctx: &CommandContext) -> Result<()> {
        let (client_id, app_id) = (self.client_id.trim(), self.app_id.trim());
        if client_id.is_empty() {
            return Err(Error::invalid("client_id", "must not be empty"));
        }
        if app_id.is_empty() {
            return Err(Error::invalid("app_id", "must not be empty"));
        }
        let instance = live_instance(uow, &self.instance_id).await?;
        if instance.console_client_id.as_deref() == Some(client_id)
            && instance.console_app_id.as_deref() == Some(app_id)
        {
            return Err(Error::no_changes("the console is already set"));
        }
        let event = LegacyEvent::InstanceIamConsoleSet {
            client_id: client_id.to_owned(),
            app_id: app_id.to_owned(),
        };
        emit_instance_event(uow, ctx, ctx.clock.now(), &self.instance_id, event, vec![]).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::testing::*;

    fn cmd(client: &str, app: &str) -> SetInstanceConsole {
        SetInstanceConsole {
            instance_id: iid(),
            client_id: client.into(),
            app_id: app.into(),
        }
    }

    #[tokio::test]
    async fn sets_client_and_app() {
        let mut uow = with_instance();
        uow.expect_apply_instance_change()
            .times(1)
            .withf(|c, _| matches!(c, InstanceChange::Update { update: u, .. } if u.console_client_id.as_deref() == Some("c")
                    && u.console_app_id.as_deref() == Some("a")))
            .returning(|_, _| Ok(1));
        expect_push(&mut uow, "instance.iam.console.set");
        cmd("c", "a").execute(&mut uow, &ctx()).await.unwrap();
    }

    #[tokio::test]
    async fn empty_ids_are_invalid() {
        let r = cmd("", "a").execute(&mut with_instance(), &ctx()).await;
        assert!(matches!(
            r,
            Err(Error::InvalidArgument {
                field: "client_id",
                ..
            })
        ));
        let r = cmd("c", " ").execute(&mut with_instance(), &ctx()).await;
        assert!(matches!(
            r,
            Err(Error::InvalidArgument {
                field: "app_id",
                ..
            })
        ));
    }

    #[tokio::test]
    async fn removed_instance_is_not_found() {
        assert_not_found(cmd("c", "a").execute(&mut without_instance(), &ctx()).await);
    }
}
