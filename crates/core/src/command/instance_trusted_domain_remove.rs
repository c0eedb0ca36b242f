use async_trait::async_trait;

use super::{Command, CommandContext, emit_instance_event, live_instance};
use crate::error::{Error, Result};
use crate::event::LegacyEvent;
use crate::id::InstanceId;
use crate::model::{InstanceDomainKind, same_domain};
use crate::ports::UnitOfWork;
use crate::value::DomainName;

/// Removes a trusted domain.
///
/// # What it touches
///
/// - **reads** `get_instance`, `list_instance_domains`;
/// - **writes** `instance_domains` (delete, `apply_instance_domain_change`);
/// - **pushes** `instance.trusted_domains.removed`.
#[derive(Debug, Clone)]
pub struct RemoveInstanceTrustedDomain {
    /// The instance that trusts the domain.
    pub instance_id: InstanceId,
    /// The trusted domain to remove (any case).
    pub domain: String,
}

#[async_trait]
impl Command for RemoveInstanceTrustedDomain {
    type Output = ();

    async fn execute(&self, uow: &mut dyn UnitOfWork, ctx: &CommandContext) -> Result<()> {
        let domain = DomainName::parse_stored(&self.domain)?;
        live_instance(uow, &self.instance_id).await?;
        let existing = uow
            .list_instance_domains(&self.instance_id)
            .await?
            .into_iter()
            .find(|d| {
                d.kind == InstanceDomainKind::Trusted && same_domain(&d.domain, domain.as_str())
            })
            .ok_or_else(|| Error::not_found("trusted instance domain", &domain))?;
        let event = LegacyEvent::InstanceTrustedDomainRemoved {
            domain: existing.domain,
        };
        emit_instance_event(uow, ctx, ctx.clock.now(), &self.instance_id, event, vec![]).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::testing::*;
    use crate::model::InstanceDomain;

    fn cmd(d: &str) -> RemoveInstanceTrustedDomain {
        RemoveInstanceTrustedDomain {
            instance_id: iid(),
            domain: d.into(),
        }
    }

    #[tokio::test]
    async fn removes() {
        let mut uow = with_instance();
        uow.expect_list_instance_domains().returning(|_| {
            Ok(vec![InstanceDomain {
                kind: InstanceDomainKind::Trusted,
                ..custom_domain("t.example", false, false)
            }])
        });
        uow.expect_apply_instance_domain_change()
            .times(1)
            .withf(|c, _| matches!(c, InstanceDomainChange::Delete { domain: d, domain_type: t, .. } if d == "t.example" && *t == crate::model::InstanceDomainType::Trusted))
            .returning(|_, _| Ok(1));
        expect_push(&mut uow, "instance.trusted_domains.removed");
        cmd("t.example").execute(&mut uow, &ctx()).await.unwrap();
    }

    #[tokio::test]
    async fn a_custom_domain_is_not_a_trusted_one() {
        let mut uow = with_instance();
        uow.expect_list_instance_domains()
            .returning(|_| Ok(vec![custom_domain("t.example", false, false)]));
        assert_not_found(cmd("t.example").execute(&mut uow, &ctx()).await);
    }
}
