use async_trait::async_trait;

use super::org_domain_verify::existing_org_domain;
use super::{Command, CommandContext, VerifyOrganizationDomain, emit_org_event, live_organization};
use crate::challenge::domain_validation_state;
use crate::challenge::{Challenge, ChallengeFailure, DomainChallenge, DomainValidationState};
use crate::error::{Error, Result};
use crate::event::{LegacyEvent, ORG_AGGREGATE};
use crate::id::{InstanceId, OrgId};
use crate::ports::{EventReader, UnitOfWork, UnitOfWorkFactory};
use crate::value::DomainName;

/// Verifies an org domain by its published challenge (ZITADEL's
/// `VerifyOrganizationDomain`): finds the last token generated, asks a
/// [`DomainChallenge`] whether it is published, and on success marks the domain verified
/// through [`VerifyOrganizationDomain`] (rows and event in one transaction). A failed
/// check records `org.domain.verification.failed` and returns the failure.
///
/// Not a [`Command`]: the check talks to the network, which must not happen inside a
/// transaction.
#[derive(Debug, Clone)]
pub struct ValidateOrganizationDomain {
    pub instance_id: InstanceId,
    pub org_id: OrgId,
    pub domain: String,
}

impl ValidateOrganizationDomain {
    pub async fn run(
        &self,
        factory: &dyn UnitOfWorkFactory,
        events: &dyn EventReader,
        checker: &dyn DomainChallenge,
        ctx: &CommandContext,
    ) -> Result<()> {
        let domain = DomainName::parse_claimable(&self.domain)?;
        self.ensure_unverified(factory, &domain).await?;
        let history = events
            .read_aggregate(
                self.instance_id.as_str(),
                ORG_AGGREGATE,
                self.org_id.as_str(),
            )
            .await?;
        let pending = match domain_validation_state(&history, &domain)? {
            DomainValidationState::Absent => {
                return Err(Error::not_found("organization domain", &domain));
            }
            DomainValidationState::Verified => {
                return Err(Error::no_changes("the domain is already verified"));
            }
            DomainValidationState::Unverified(None) => {
                return Err(ChallengeFailure::NotGenerated {
                    domain: domain.to_string(),
                }
                .into());
            }
            DomainValidationState::Unverified(Some(pending)) => pending,
        };
        let Some(token) = pending.token else {
            return Err(ChallengeFailure::Unreadable {
                domain: domain.to_string(),
            }
            .into());
        };
        if let Some(expired_at) = pending.expires_at.filter(|at| *at <= ctx.clock.now()) {
            return Err(ChallengeFailure::Expired {
                domain: domain.to_string(),
                expired_at,
            }
            .into());
        }
        let challenge = Challenge {
            domain: domain.clone(),
            validation_type: pending.validation_type,
            token,
        };
        if let Err(failure) = checker.check(&challenge).await {
            let record = RecordVerificationFailure {
                instance_id: self.instance_id.clone(),
                org_id: self.org_id.clone(),
                domain: domain.clone(),
            };
            if let Err(error) = super::run(factory, ctx, &record).await {
                tracing::warn!(error = %error.chain(), "recording a failed domain verification failed");
            }
            return Err(failure.into());
        }
        let verify = VerifyOrganizationDomain {
            instance_id: self.instance_id.clone(),
            org_id: self.org_id.clone(),
            domain: domain.to_string(),
        };
        super::run(factory, ctx, &verify).await
    }

    /// NotFound / NoChanges before any network traffic (a read-only unit of work).
    async fn ensure_unverified(
        &self,
        factory: &dyn UnitOfWorkFactory,
        domain: &DomainName,
    ) -> Result<()> {
        let mut uow = factory.begin().await?;
        let checked = async {
            live_organization(&mut *uow, &self.instance_id, &self.org_id).await?;
            let existing =
                existing_org_domain(&mut *uow, &self.instance_id, &self.org_id, domain).await?;
            if existing.is_verified {
                return Err(Error::no_changes("the domain is already verified"));
            }
            Ok(())
        }
        .await;
        if let Err(error) = uow.rollback().await {
            tracing::warn!(error = %error.chain(), "ending a read-only unit of work failed");
        }
        checked
    }
}

/// `org.domain.verification.failed` (no state change).
#[derive(Debug)]
struct RecordVerificationFailure {
    instance_id: InstanceId,
    org_id: OrgId,
    domain: DomainName,
}

#[async_trait]
impl Command for RecordVerificationFailure {
    type Output = ();

    async fn execute(&self, uow: &mut dyn UnitOfWork, ctx: &CommandContext) -> Result<()> {
        live_organization(uow, &self.instance_id, &self.org_id).await?;
        let event = LegacyEvent::OrgDomainVerificationFailed {
            domain: self.domain.to_string(),
        };
        emit_org_event(
            uow,
            ctx,
            ctx.clock.now(),
            &self.instance_id,
            &self.org_id,
            event,
            vec![],
        )
        .await
    }
}
