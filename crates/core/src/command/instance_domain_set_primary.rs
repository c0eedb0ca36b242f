use async_trait::async_trait;

use super::{Command, CommandContext, emit_instance_event, live_instance};
use crate::error::{Error, Result};
use crate::event::LegacyEvent;
use crate::id::InstanceId;
use crate::model::{InstanceDomainKind, same_domain};
use crate::ports::UnitOfWork;
use crate::value::DomainName;

/// Makes a custom domain the instance's only primary domain.
///
/// # What it touches
///
/// - **reads** `get_instance`, `list_instance_domains`;
/// - **writes** `instance_domains` (update, `apply_instance_domain_change`), `domains` (update, `apply_domain_change`);
/// - **pushes** `instance.domain.primary.set`.
#[derive(Debug, Clone)]
pub struct SetInstanceDomainPrimary {
    /// The instance that holds the domain.
    pub instance_id: InstanceId,
    /// One of its custom domains (any case).
    pub domain: String,
}

#[async_trait]
impl Command for SetInstanceDomainPrimary {
    type Output = ();

    async fn execute(&self, uow: &mut dyn UnitOfWork, ctx: &CommandContext) -> Result<()> {
        let domain = DomainName::parse_stored(&self.domain)?;
        live_instance(uow, &self.instance_id).await?;
        let existing = uow
            .list_instance_domains(&self.instance_id)
            .await?
            .into_iter()
            .find(|d| {
                matches!(d.kind, InstanceDomainKind::Custom { .. })
                    && same_domain(&d.domain, domain.as_str())
            })
            .ok_or_else(|| Error::not_found("custom instance domain", &domain))?;
        if matches!(
            existing.kind,
            InstanceDomainKind::Custom {
                is_primary: true,
                ..
            }
        ) {
            return Err(Error::no_changes("the domain is already primary"));
        }
        let event = LegacyEvent::InstanceDomainPrimarySet {
            domain: existing.domain,
        };
        emit_instance_event(uow, ctx, ctx.clock.now(), &self.instance_id, event, vec![]).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::testing::*;

    fn cmd(d: &str) -> SetInstanceDomainPrimary {
        SetInstanceDomainPrimary {
            instance_id: iid(),
            domain: d.into(),
        }
    }

    #[tokio::test]
    async fn switches_primary_in_both_tables() {
        let mut uow = with_instance();
        uow.expect_list_instance_domains().returning(|_| {
            Ok(vec![
                custom_domain("a.example", true, false),
                custom_domain("b.example", false, false),
            ])
        });
        uow.expect_apply_instance_domain_change()
            .times(1)
            .withf(|c, _| matches!(c, InstanceDomainChange::SetPrimary { domain: d, .. } if d == "b.example"))
            .returning(|_, _| Ok(2));
        uow.expect_apply_domain_change()
            .withf(|c, _| matches!(c, DomainChange::SetInstanceDomainPrimary { .. }))
            .times(1)
            .returning(|_, _| Ok(2));
        expect_push(&mut uow, "instance.domain.primary.set");
        cmd("B.example").execute(&mut uow, &ctx()).await.unwrap();
    }

    #[tokio::test]
    async fn unknown_domain_is_not_found() {
        let mut uow = with_instance();
        uow.expect_list_instance_domains().returning(|_| Ok(vec![]));
        assert_not_found(cmd("b.example").execute(&mut uow, &ctx()).await);
    }

    #[tokio::test]
    async fn already_primary_is_no_change() {
        let mut uow = with_instance();
        uow.expect_list_instance_domains()
            .returning(|_| Ok(vec![custom_domain("a.example", true, false)]));
        let r = cmd("a.example").execute(&mut uow, &ctx()).await;
        assert!(matches!(r, Err(Error::NoChanges(_))));
    }
}
