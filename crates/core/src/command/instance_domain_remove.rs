use async_trait::async_trait;

use super::{Command, CommandContext, emit_instance_event, live_instance};
use crate::error::{Error, Result};
use crate::event::{LegacyEvent, UniqueConstraint};
use crate::id::InstanceId;
use crate::model::{InstanceDomainKind, same_domain};
use crate::ports::UnitOfWork;
use crate::value::DomainName;

/// Removes a custom domain; generated and primary domains cannot be removed.
///
/// # What it touches
///
/// - **reads** `get_instance`, `list_instance_domains`;
/// - **writes** `instance_domains` (delete, `apply_instance_domain_change`), `domains` (soft delete, `apply_domain_change`);
/// - **pushes** `instance.domain.removed`, releasing the `instance_domain` unique value.
#[derive(Debug, Clone)]
pub struct RemoveInstanceDomain {
    /// The instance that holds the domain.
    pub instance_id: InstanceId,
    /// The custom domain to remove (any case).
    pub domain: String,
}

#[async_trait]
impl Command for RemoveInstanceDomain {
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
        match existing.kind {
            InstanceDomainKind::Custom {
                is_generated: true, ..
            } => {
                return Err(Error::precondition(
                    "a generated instance domain cannot be removed",
                ));
            }
            InstanceDomainKind::Custom {
                is_primary: true, ..
            } => {
                return Err(Error::precondition(
                    "the primary instance domain cannot be removed",
                ));
            }
            _ => {}
        }
        let uniques = vec![UniqueConstraint::remove_instance_domain(&existing.domain)];
        let event = LegacyEvent::InstanceDomainRemoved {
            domain: existing.domain,
        };
        emit_instance_event(uow, ctx, ctx.clock.now(), &self.instance_id, event, uniques).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::testing::*;

    fn cmd(d: &str) -> RemoveInstanceDomain {
        RemoveInstanceDomain {
            instance_id: iid(),
            domain: d.into(),
        }
    }

    #[tokio::test]
    async fn removes_from_both_tables() {
        let mut uow = with_instance();
        uow.expect_list_instance_domains()
            .returning(|_| Ok(vec![custom_domain("b.example", false, false)]));
        uow.expect_apply_instance_domain_change()
            .withf(|c, _| matches!(c, InstanceDomainChange::Delete { .. }))
            .times(1)
            .returning(|_, _| Ok(1));
        uow.expect_apply_domain_change()
            .withf(|c, _| matches!(c, DomainChange::RemoveInstanceDomain { .. }))
            .times(1)
            .returning(|_, _| Ok(1));
        expect_push(&mut uow, "instance.domain.removed");
        cmd("b.example").execute(&mut uow, &ctx()).await.unwrap();
    }

    #[tokio::test]
    async fn generated_and_primary_domains_stay() {
        for (primary, generated) in [(false, true), (true, false)] {
            let mut uow = with_instance();
            uow.expect_list_instance_domains()
                .returning(move |_| Ok(vec![custom_domain("b.example", primary, generated)]));
            let r = cmd("b.example").execute(&mut uow, &ctx()).await;
            assert!(
                matches!(r, Err(Error::PreconditionFailed(_))),
                "{primary} {generated}"
            );
        }
    }

    #[tokio::test]
    async fn unknown_domain_is_not_found() {
        let mut uow = with_instance();
        uow.expect_list_instance_domains().returning(|_| Ok(vec![]));
        assert_not_found(cmd("b.example").execute(&mut uow, &ctx()).await);
    }
}
