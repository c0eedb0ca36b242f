use async_trait::async_trait;

use super::{Command, CommandContext, emit_instance_event};
use crate::error::{Error, Result, Rule};
use crate::event::LegacyEvent;
use crate::id::InstanceId;
use crate::ports::UnitOfWork;
use crate::value::Name;

/// Creates an instance (tenant) with a generated id.
///
/// # What it touches
///
/// - **reads** nothing;
/// - **writes** `instances` (insert, `apply_instance_change`);
/// - **pushes** `instance.added`.
#[derive(Debug, Clone)]
pub struct AddInstance {
    /// The instance's name (trimmed; 1 to 200 characters).
    pub name: String,
}

#[async_trait]
impl Command for AddInstance {
    type Output = InstanceId;

    async fn execute(&self, uow: &mut dyn UnitOfWork, ctx: &CommandContext) -> Result<InstanceId> {
        let name = Name::parse(&self.name)?;
        let id = InstanceId::new(ctx.ids.next_id()?)?;
        let at = ctx.clock.now();
        let event = LegacyEvent::InstanceAdded { name: name.into() };
        emit_instance_event(uow, ctx, at, &id, event, vec![]).await?;
        Ok(id)
    }

    /// The id is always generated: a collision with one generated elsewhere runs again.
    fn retry_on(&self, error: &Error) -> bool {
        matches!(
            error,
            Error::AlreadyExists {
                rule: Rule::InstanceId,
                ..
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::testing::*;
    use crate::mocks::MockUnitOfWork;

    #[tokio::test]
    async fn adds_the_instance_and_its_event() {
        let mut uow = MockUnitOfWork::new();
        uow.expect_apply_instance_change()
            .times(1)
            .withf(|c, at| matches!(c, InstanceChange::Create { id, name } if id.as_str() == "100" && name == "ACME" && *at == NOW))
            .returning(|_, _| Ok(1));
        expect_push(&mut uow, "instance.added");
        let id = AddInstance {
            name: " ACME ".into(),
        }
        .execute(&mut uow, &ctx())
        .await
        .unwrap();
        assert_eq!(id.as_str(), "100");
    }

    #[tokio::test]
    async fn rejects_an_empty_name_without_writing() {
        let mut uow = MockUnitOfWork::new();
        let result = AddInstance { name: "  ".into() }
            .execute(&mut uow, &ctx())
            .await;
        assert!(matches!(
            result,
            Err(Error::InvalidArgument { field: "name", .. })
        ));
    }
}
