use async_trait::async_trait;

use super::org_domain_verify::unverified_org_domain;
use super::{Command, CommandContext, emit_org_event};
use crate::challenge::{Challenge, ChallengeSettings, Publication, encode_token};
use crate::error::{Error, Result};
use crate::event::LegacyEvent;
use crate::id::{InstanceId, OrgId};
use crate::model::ValidationType;
use crate::ports::UnitOfWork;
use crate::value::DomainName;
use time::OffsetDateTime;

/// Generates a validation token for an org domain (ZITADEL's
/// `GenerateOrganizationDomainValidation`): records it with
/// `org.domain.verification.added` and says what to publish. A new token replaces the
/// previous one.
///
/// # What it touches
///
/// - **reads** `get_instance`, `get_organization`, `list_org_domains`; a token from `ctx.tokens`;
/// - **writes** `org_domains` (update, `apply_org_domain_change`), `domains` (update, `apply_domain_change`);
/// - **pushes** `org.domain.verification.added` with the token and its expiry.
#[derive(Debug, Clone)]
pub struct GenerateOrganizationDomainValidation {
    /// The organization's instance.
    pub instance_id: InstanceId,
    /// The organization that holds the domain.
    pub org_id: OrgId,
    /// One of its unverified domains.
    pub domain: String,
    /// Publish the token as a DNS TXT record or as an HTTP file.
    pub validation_type: ValidationType,
    /// The challenge's prefix and the token's lifetime.
    pub settings: ChallengeSettings,
}

/// A generated token and where to publish it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainValidation {
    /// The token to publish.
    pub token: String,
    /// When verifying with this token stops being possible.
    pub expires_at: OffsetDateTime,
    /// The DNS record or HTTP file to publish, ready to show the user.
    pub publication: Publication,
}

#[async_trait]
impl Command for GenerateOrganizationDomainValidation {
    type Output = DomainValidation;

    async fn execute(
        &self,
        uow: &mut dyn UnitOfWork,
        ctx: &CommandContext,
    ) -> Result<DomainValidation> {
        self.settings.validate()?;
        let domain = DomainName::parse_claimable(&self.domain)?;
        let existing = unverified_org_domain(uow, &self.instance_id, &self.org_id, &domain).await?;
        let token = ctx.tokens.token()?;
        let now = ctx.clock.now();
        let lifetime = time::Duration::try_from(self.settings.lifetime)
            .map_err(|_| Error::invalid("challenge lifetime", "is too long"))?;
        let expires_at = now
            .checked_add(lifetime)
            .ok_or_else(|| Error::invalid("challenge lifetime", "is too long"))?;
        let event = LegacyEvent::OrgDomainVerificationAdded {
            domain: existing.domain,
            validation_type: self.validation_type,
            validation_code: Some(encode_token(&token)),
            expires_at: Some(expires_at),
        };
        emit_org_event(
            uow,
            ctx,
            now,
            &self.instance_id,
            &self.org_id,
            event,
            vec![],
        )
        .await?;
        let publication = Challenge {
            domain,
            validation_type: self.validation_type,
            token: token.clone(),
        }
        .publication(&self.settings);
        Ok(DomainValidation {
            token,
            expires_at,
            publication,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::challenge::decode_token;
    use crate::command::testing::*;
    use crate::model::OrganizationState;

    fn cmd(vt: ValidationType) -> GenerateOrganizationDomainValidation {
        GenerateOrganizationDomainValidation {
            instance_id: iid(),
            org_id: oid(),
            domain: "O.example".into(),
            validation_type: vt,
            settings: ChallengeSettings::default(),
        }
    }

    #[tokio::test]
    async fn records_a_readable_token_with_its_expiry_and_says_what_to_publish() {
        let mut uow = with_org(OrganizationState::Active);
        uow.expect_list_org_domains()
            .returning(|_, _| Ok(vec![org_domain("o.example", false, false)]));
        uow.expect_apply_org_domain_change()
            .withf(|c, _| matches!(c, OrgDomainChange::SetValidation { .. }))
            .times(1)
            .returning(|_, _| Ok(1));
        uow.expect_apply_domain_change()
            .withf(|c, _| matches!(c, DomainChange::SetOrganizationDomainValidationType { .. }))
            .times(1)
            .returning(|_, _| Ok(1));
        uow.expect_push()
            .times(1)
            .withf(|e| {
                let p = e[0].payload.as_ref().unwrap();
                decode_token(&p["validationCode"]).as_deref() == Some(TOKEN)
                    && p["expiresAt"] == "2026-01-02T04:04:05Z"
            })
            .returning(|_| Ok(vec![]));
        let out = cmd(ValidationType::Dns)
            .execute(&mut uow, &ctx())
            .await
            .unwrap();
        assert_eq!(out.token, TOKEN);
        assert_eq!(out.expires_at, NOW + time::Duration::hours(1));
        assert_eq!(
            out.publication,
            Publication::DnsTxt {
                name: "_zitadel-challenge.o.example".into(),
                value: TOKEN.into()
            }
        );
    }

    #[tokio::test]
    async fn a_verified_domain_gets_no_token() {
        let mut uow = with_org(OrganizationState::Active);
        uow.expect_list_org_domains()
            .returning(|_, _| Ok(vec![org_domain("o.example", true, false)]));
        let r = cmd(ValidationType::Http).execute(&mut uow, &ctx()).await;
        assert!(matches!(r, Err(Error::PreconditionFailed(_))));
    }

    #[tokio::test]
    async fn a_bad_prefix_is_refused_before_anything_is_read() {
        let mut uow = crate::mocks::MockUnitOfWork::new();
        let mut command = cmd(ValidationType::Dns);
        command.settings.prefix = "a.b".into();
        let r = command.execute(&mut uow, &ctx()).await;
        assert!(matches!(
            r,
            Err(Error::InvalidArgument {
                field: "challenge prefix",
                ..
            })
        ));
    }
}
