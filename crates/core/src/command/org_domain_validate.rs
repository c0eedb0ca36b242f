use async_trait::async_trait;

use super::org_domain_verify::existing_org_domain;
use super::{Command, CommandContext, VerifyOrganizationDomain, live_organization};
use crate::challenge::{Challenge, ChallengeFailure, DomainChallenge, DomainValidationState};
use crate::challenge::{
    VERIFY_FAILURES_PER_WINDOW, VERIFY_WINDOW, domain_validation_state, failed_verifications,
};
use crate::error::{Error, Result};
use crate::event::{LegacyEvent, NewEvent, ORG_AGGREGATE};
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
///
/// # What it touches
///
/// - **reads** (a read-only unit of work first) `get_instance`, `get_organization`,
///   `list_org_domains`; then the organization's events (`EventReader::read_aggregate`)
///   for the last token; then the network, through the [`DomainChallenge`];
/// - **on success** runs [`VerifyOrganizationDomain`]: writes `org_domains` and `domains`
///   (update), pushes `org.domain.verified`;
/// - **on failure** pushes `org.domain.verification.failed` (no table changes) and returns
///   [`crate::challenge::ChallengeFailure`] inside [`Error::Challenge`], which says what
///   the user must do; after too many failures in a window it returns `TooSoon` without
///   contacting anything.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use tenancy_core::challenge::{ChallengeFailure, ChallengeSettings, DomainChallenge};
/// use tenancy_core::command::{run, AddInstance, AddOrganization, AddOrganizationDomain};
/// use tenancy_core::command::{GenerateOrganizationDomainValidation, ValidateOrganizationDomain};
/// use tenancy_core::mocks::MockDomainChallenge;
/// use tenancy_core::model::ValidationType;
/// use tenancy_testkit::{fixtures, InMemoryStore};
///
/// let store = InMemoryStore::new();
/// let ctx = fixtures::context_with_fixed_token();
/// let instance_id = run(&store, &ctx, &AddInstance { name: "ACME".into() }).await?;
/// let org_id = run(&store, &ctx, &AddOrganization {
///     instance_id: instance_id.clone(), id: None, name: "Sales".into(),
/// }).await?;
/// let domain = "sales.acme.example".to_owned();
/// run(&store, &ctx, &AddOrganizationDomain {
///     instance_id: instance_id.clone(), org_id: org_id.clone(), domain: domain.clone(),
/// }).await?;
/// run(&store, &ctx, &GenerateOrganizationDomainValidation {
///     instance_id: instance_id.clone(), org_id: org_id.clone(), domain: domain.clone(),
///     validation_type: ValidationType::Dns, settings: ChallengeSettings::default(),
/// }).await?;
///
/// // The DNS or HTTP check; `tenancy-challenge` has the real ones.
/// let mut published = MockDomainChallenge::new();
/// published.expect_check().returning(|challenge| {
///     assert_eq!(challenge.token, tenancy_testkit::fixtures::TOKEN);
///     Ok(())
/// });
/// let validate = ValidateOrganizationDomain { instance_id, org_id, domain };
/// validate.run(&store, &store.event_reader(), &published, &ctx).await?;
/// # let _ = ChallengeFailure::NotGenerated { domain: String::new() };
/// # let _: Option<&dyn DomainChallenge> = None;
/// # Ok::<(), tenancy_core::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct ValidateOrganizationDomain {
    /// The organization's instance.
    pub instance_id: InstanceId,
    /// The organization that holds the domain.
    pub org_id: OrgId,
    /// One of its unverified domains, with a validation token generated.
    pub domain: String,
}

impl ValidateOrganizationDomain {
    /// Checks the published token and, when it is there, verifies the domain. `factory`
    /// gives the units of work, `events` the organization's history, `checker` the DNS
    /// or HTTP check; the check runs outside any transaction.
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
        // A bounded number of failed checks (requests and events) per domain and window.
        let window = time::Duration::try_from(VERIFY_WINDOW)
            .map_err(|e| Error::internal_with("the verification window", e))?;
        let now = ctx.clock.now();
        let recent: Vec<_> = failed_verifications(&history, &domain)
            .into_iter()
            .filter(|at| now - *at < window)
            .collect();
        if recent.len() >= VERIFY_FAILURES_PER_WINDOW {
            let free_at = recent[recent.len() - VERIFY_FAILURES_PER_WINDOW] + window;
            let retry_in = u64::try_from((free_at - now).whole_seconds()).unwrap_or(0);
            return Err(ChallengeFailure::TooSoon {
                domain: domain.to_string(),
                failures: recent.len(),
                window_secs: VERIFY_WINDOW.as_secs(),
                retry_in_secs: retry_in.max(1),
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
                seen_sequence: history
                    .iter()
                    .filter(|e| e.aggregate_type == ORG_AGGREGATE)
                    .map(|e| e.sequence)
                    .max()
                    .unwrap_or(0),
            };
            match super::run(factory, ctx, &record).await {
                Ok(()) => {}
                // Another call recorded a failure (or changed the org) since this one read
                // the history: one event stands for both.
                Err(Error::Conflict(_)) => tracing::debug!("failed verification coalesced"),
                Err(error) => {
                    tracing::warn!(error = %error.chain(), "recording a failed domain verification failed");
                }
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

/// `org.domain.verification.failed` (no state change), written only if the org's events
/// are still those the check read (`seen_sequence`): concurrent failures coalesce into one.
#[derive(Debug)]
struct RecordVerificationFailure {
    instance_id: InstanceId,
    org_id: OrgId,
    domain: DomainName,
    seen_sequence: i64,
}

#[async_trait]
impl Command for RecordVerificationFailure {
    type Output = ();

    async fn execute(&self, uow: &mut dyn UnitOfWork, ctx: &CommandContext) -> Result<()> {
        live_organization(uow, &self.instance_id, &self.org_id).await?;
        let event = LegacyEvent::OrgDomainVerificationFailed {
            domain: self.domain.to_string(),
        };
        uow.push(vec![NewEvent {
            instance_id: self.instance_id.as_str().to_owned(),
            aggregate_type: ORG_AGGREGATE.to_owned(),
            aggregate_id: self.org_id.as_str().to_owned(),
            event_type: event.event_type().to_owned(),
            revision: 1,
            payload: Some(event.encode()),
            creator: ctx.creator.clone(),
            owner: self.org_id.as_str().to_owned(),
            created_at: Some(ctx.clock.now()),
            written_by_v3: true,
            expected_sequence: Some(self.seen_sequence),
            unique_constraints: vec![],
        }])
        .await?;
        Ok(())
    }
}
