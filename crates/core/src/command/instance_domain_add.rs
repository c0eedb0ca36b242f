use async_trait::async_trait;

use super::{Command, CommandContext, emit_instance_event, live_instance};
use crate::error::{Error, Result, Rule};
use crate::event::{LegacyEvent, UniqueConstraint};
use crate::id::InstanceId;
use crate::ports::UnitOfWork;
use crate::value::DomainName;

/// Adds a custom domain to an instance. A custom domain is unique across all instances:
/// a host resolves to exactly one instance.
///
/// # What it touches
///
/// - **reads** `get_instance`, `instance_by_host` (is the domain taken?);
/// - **writes** `instance_domains` (insert, `apply_instance_domain_change`), `domains` (insert, `apply_domain_change`);
/// - **pushes** `instance.domain.added`, claiming the `instance_domain` unique value.
#[derive(Debug, Clone)]
pub struct AddInstanceDomain {
    /// The instance that is to be served under the domain.
    pub instance_id: InstanceId,
    /// The domain (a host name; lower-cased; IP-shaped names are refused).
    pub domain: String,
    /// Generated domains (the instance's default host) cannot be removed later.
    pub generated: bool,
}

#[async_trait]
impl Command for AddInstanceDomain {
    type Output = DomainName;

    async fn execute(&self, uow: &mut dyn UnitOfWork, ctx: &CommandContext) -> Result<DomainName> {
        let domain = DomainName::parse_claimable(&self.domain)?;
        live_instance(uow, &self.instance_id).await?;
        match uow.instance_by_host(domain.as_str()).await {
            Ok(_) => {
                return Err(Error::already_exists(Rule::CustomInstanceDomain, &domain));
            }
            Err(Error::NotFound { .. }) => {}
            Err(other) => return Err(other),
        }
        let event = LegacyEvent::InstanceDomainAdded {
            domain: domain.to_string(),
            generated: self.generated,
        };
        let uniques = vec![UniqueConstraint::add_instance_domain(domain.as_str())];
        emit_instance_event(uow, ctx, ctx.clock.now(), &self.instance_id, event, uniques).await?;
        Ok(domain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::testing::*;
    use crate::model::InstanceDomainKind;

    fn cmd(domain: &str) -> AddInstanceDomain {
        AddInstanceDomain {
            instance_id: iid(),
            domain: domain.into(),
            generated: false,
        }
    }

    #[tokio::test]
    async fn adds_to_both_tables() {
        let mut uow = with_instance();
        uow.expect_instance_by_host()
            .returning(|h| Err(Error::not_found("instance for host", h)));
        uow.expect_apply_instance_domain_change()
            .times(1)
            .withf(|c, _| matches!(c, InstanceDomainChange::Insert { domain: d, kind: k, .. } if d == "login.acme.example"
                    && *k
                        == InstanceDomainKind::Custom {
                            is_primary: false,
                            is_generated: false,
                        }))
            .returning(|_, _| Ok(1));
        uow.expect_apply_domain_change()
            .times(1)
            .withf(|c, _| matches!(c, DomainChange::AddInstanceDomain { domain: d, .. } if d == "login.acme.example"))
            .returning(|_, _| Ok(1));
        expect_push(&mut uow, "instance.domain.added");
        let domain = cmd("Login.ACME.example")
            .execute(&mut uow, &ctx())
            .await
            .unwrap();
        assert_eq!(domain.as_str(), "login.acme.example");
    }

    #[tokio::test]
    async fn taken_domain_already_exists() {
        let mut uow = with_instance();
        uow.expect_instance_by_host().returning(|_| Ok(instance()));
        let r = cmd("login.acme.example").execute(&mut uow, &ctx()).await;
        assert!(matches!(
            r,
            Err(Error::AlreadyExists {
                rule: Rule::CustomInstanceDomain,
                ..
            })
        ));
    }

    #[tokio::test]
    async fn invalid_domain_is_rejected_before_any_read() {
        let mut uow = crate::mocks::MockUnitOfWork::new();
        let r = cmd("bad_domain").execute(&mut uow, &ctx()).await;
        assert!(matches!(
            r,
            Err(Error::InvalidArgument {
                field: "domain",
                ..
            })
        ));
    }

    #[tokio::test]
    async fn removed_instance_is_not_found() {
        assert_not_found(
            cmd("a.example")
                .execute(&mut without_instance(), &ctx())
                .await,
        );
    }
}
