use async_trait::async_trait;

use super::{Command, CommandContext, emit_instance_event, live_instance};
use crate::error::{Error, Result, Rule};
use crate::event::LegacyEvent;
use crate::id::InstanceId;
use crate::model::{InstanceDomainKind, same_domain};
use crate::ports::UnitOfWork;
use crate::value::DomainName;

/// Adds a trusted domain (unique per instance).
///
/// # What it touches
///
/// - **reads** `get_instance`, `list_instance_domains`;
/// - **writes** `instance_domains` (insert, `apply_instance_domain_change`);
/// - **pushes** `instance.trusted_domains.added`.
#[derive(Debug, Clone)]
pub struct AddInstanceTrustedDomain {
    /// The instance that is to trust the domain.
    pub instance_id: InstanceId,
    /// The domain to trust.
    pub domain: String,
}

#[async_trait]
impl Command for AddInstanceTrustedDomain {
    type Output = DomainName;

    async fn execute(&self, uow: &mut dyn UnitOfWork, ctx: &CommandContext) -> Result<DomainName> {
        let domain = DomainName::parse(&self.domain)?;
        live_instance(uow, &self.instance_id).await?;
        let taken = uow
            .list_instance_domains(&self.instance_id)
            .await?
            .iter()
            .any(|d| {
                d.kind == InstanceDomainKind::Trusted && same_domain(&d.domain, domain.as_str())
            });
        if taken {
            return Err(Error::already_exists(Rule::TrustedInstanceDomain, &domain));
        }
        let event = LegacyEvent::InstanceTrustedDomainAdded {
            domain: domain.to_string(),
        };
        emit_instance_event(uow, ctx, ctx.clock.now(), &self.instance_id, event, vec![]).await?;
        Ok(domain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::testing::*;
    use crate::model::InstanceDomain;

    fn cmd(d: &str) -> AddInstanceTrustedDomain {
        AddInstanceTrustedDomain {
            instance_id: iid(),
            domain: d.into(),
        }
    }

    #[tokio::test]
    async fn adds_only_to_instance_domains() {
        let mut uow = with_instance();
        uow.expect_list_instance_domains()
            .returning(|_| Ok(vec![custom_domain("t.example", false, false)]));
        uow.expect_apply_instance_domain_change()
            .times(1)
            .withf(|c, _| matches!(c, InstanceDomainChange::Insert { domain: d, kind: k, .. } if d == "t.example" && *k == InstanceDomainKind::Trusted))
            .returning(|_, _| Ok(1));
        expect_push(&mut uow, "instance.trusted_domains.added");
        cmd("t.example").execute(&mut uow, &ctx()).await.unwrap();
    }

    #[tokio::test]
    async fn duplicate_is_already_exists() {
        let mut uow = with_instance();
        uow.expect_list_instance_domains().returning(|_| {
            Ok(vec![InstanceDomain {
                kind: InstanceDomainKind::Trusted,
                ..custom_domain("t.example", false, false)
            }])
        });
        let r = cmd("T.example").execute(&mut uow, &ctx()).await;
        assert!(matches!(r, Err(Error::AlreadyExists { .. })));
    }

    #[tokio::test]
    async fn removed_instance_is_not_found() {
        assert_not_found(
            cmd("t.example")
                .execute(&mut without_instance(), &ctx())
                .await,
        );
    }
}
