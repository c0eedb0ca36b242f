use async_trait::async_trait;

use super::{Command, CommandContext, emit_instance_event, live_instance};
use crate::error::{Error, Result};
use crate::event::LegacyEvent;
use crate::id::InstanceId;
use crate::ports::UnitOfWork;
use crate::value::LanguageTag;

/// Sets the instance's default language (a BCP-47 tag).
///
/// # What it touches
///
/// - **reads** `get_instance`;
/// - **writes** `instances` (update, `apply_instance_change`);
/// - **pushes** `instance.default.language.set`.
#[derive(Debug, Clone)]
pub struct SetInstanceDefaultLanguage {
    /// The instance to change.
    pub instance_id: InstanceId,
    /// A BCP-47 tag (`de`, `en-US`); InvalidArgument otherwise.
    pub language: String,
}

#[async_trait]
impl Command for SetInstanceDefaultLanguage {
    type Output = ();

    async fn execute(&self, uow: &mut dyn UnitOfWork, ctx: &CommandContext) -> Result<()> {
        let language = LanguageTag::parse(&self.language)?;
        let instance = live_instance(uow, &self.instance_id).await?;
        if instance.default_language.as_deref() == Some(language.as_str()) {
            return Err(Error::no_changes("the default language is already set"));
        }
        let event = LegacyEvent::InstanceDefaultLanguageSet {
            language: language.into(),
        };
        emit_instance_event(uow, ctx, ctx.clock.now(), &self.instance_id, event, vec![]).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::testing::*;

    fn cmd(lang: &str) -> SetInstanceDefaultLanguage {
        SetInstanceDefaultLanguage {
            instance_id: iid(),
            language: lang.into(),
        }
    }

    #[tokio::test]
    async fn sets_the_language() {
        let mut uow = with_instance();
        uow.expect_apply_instance_change()
            .times(1)
            .withf(|c, _| matches!(c, InstanceChange::Update { update: u, .. } if u.default_language.as_deref() == Some("de-CH")))
            .returning(|_, _| Ok(1));
        expect_push(&mut uow, "instance.default.language.set");
        cmd("de-CH").execute(&mut uow, &ctx()).await.unwrap();
    }

    #[tokio::test]
    async fn malformed_tag_is_invalid() {
        let r = cmd("de_CH").execute(&mut with_instance(), &ctx()).await;
        assert!(matches!(
            r,
            Err(Error::InvalidArgument {
                field: "language",
                ..
            })
        ));
    }

    #[tokio::test]
    async fn removed_instance_is_not_found() {
        assert_not_found(cmd("de").execute(&mut without_instance(), &ctx()).await);
    }
}
