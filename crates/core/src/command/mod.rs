//! Commands (v3 use cases), one file per use case with its tests beside it. Each validates,
//! writes state through the repository ports and appends the equivalent legacy event(s)
//! with `written_by_v3 = true` in the same unit of work. The state written is exactly what
//! the reducers produce for those events (the command applies the reducer's changes), with
//! one timestamp for rows and events.

use std::sync::Arc;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::challenge::TokenGenerator;
use crate::error::Result;
use crate::event::{INSTANCE_AGGREGATE, LegacyEvent, NewEvent, ORG_AGGREGATE, UniqueConstraint};
use crate::id::{InstanceId, OrgId};
use crate::model::{Instance, Organization};
use crate::ports::{Clock, IdGenerator, UnitOfWork, UnitOfWorkFactory};
use crate::state::{apply_change, reduce};

mod instance_add;
mod instance_console_set;
mod instance_default_language_set;
mod instance_default_org_set;
mod instance_domain_add;
mod instance_domain_remove;
mod instance_domain_set_primary;
mod instance_iam_project_set;
mod instance_remove;
mod instance_rename;
mod instance_trusted_domain_add;
mod instance_trusted_domain_remove;
mod org_domain_add;
mod org_domain_remove;
mod org_domain_set_primary;
mod org_domain_validate;
mod org_domain_validation_generate;
mod org_domain_verification_add;
mod org_domain_verify;
mod organization_add;
mod organization_deactivate;
mod organization_reactivate;
mod organization_remove;
mod organization_rename;

pub use instance_add::AddInstance;
pub use instance_console_set::SetInstanceConsole;
pub use instance_default_language_set::SetInstanceDefaultLanguage;
pub use instance_default_org_set::SetInstanceDefaultOrg;
pub use instance_domain_add::AddInstanceDomain;
pub use instance_domain_remove::RemoveInstanceDomain;
pub use instance_domain_set_primary::SetInstanceDomainPrimary;
pub use instance_iam_project_set::SetInstanceIamProject;
pub use instance_remove::RemoveInstance;
pub use instance_rename::RenameInstance;
pub use instance_trusted_domain_add::AddInstanceTrustedDomain;
pub use instance_trusted_domain_remove::RemoveInstanceTrustedDomain;
pub use org_domain_add::AddOrganizationDomain;
pub use org_domain_remove::RemoveOrganizationDomain;
pub use org_domain_set_primary::SetOrganizationDomainPrimary;
pub use org_domain_validate::ValidateOrganizationDomain;
pub use org_domain_validation_generate::{DomainValidation, GenerateOrganizationDomainValidation};
pub use org_domain_verification_add::AddOrganizationDomainVerification;
pub use org_domain_verify::VerifyOrganizationDomain;
pub use organization_add::AddOrganization;
pub use organization_deactivate::DeactivateOrganization;
pub use organization_reactivate::ReactivateOrganization;
pub use organization_remove::RemoveOrganization;
pub use organization_rename::RenameOrganization;

/// What every command needs besides the unit of work.
#[derive(Clone)]
pub struct CommandContext {
    /// The time stamped on rows and events (`SystemClock` in production).
    pub clock: Arc<dyn Clock>,
    /// New ids of instances and organizations (`tenancy_postgres::ids::LeasedIds` in
    /// production: unique across replicas).
    pub ids: Arc<dyn IdGenerator>,
    /// Domain validation tokens.
    pub tokens: Arc<dyn TokenGenerator>,
    /// The user or system on whose behalf the command runs (`events2.creator`).
    pub creator: String,
}

impl std::fmt::Debug for CommandContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandContext")
            .field("creator", &self.creator)
            .finish_non_exhaustive()
    }
}

/// A use case.
#[async_trait]
pub trait Command: Send + Sync {
    /// What the command returns on success (a new id, a validated domain, or `()`).
    type Output: Send;
    /// Runs inside `uow`; the caller commits (see [`run`]).
    async fn execute(&self, uow: &mut dyn UnitOfWork, ctx: &CommandContext)
    -> Result<Self::Output>;

    /// Whether `error` means "run again in a new unit of work": a generated id that
    /// collided with one generated elsewhere, which the caller must never see.
    fn retry_on(&self, error: &crate::Error) -> bool {
        let _ = error;
        false
    }
}

/// Attempts of a command whose generated id collided (see [`Command::retry_on`]).
const ATTEMPTS: usize = 3;

/// Runs a command in a fresh unit of work: commit on success, roll back on error, so a
/// command that breaks a rule writes nothing.
#[tracing::instrument(name = "command", skip_all, fields(command = std::any::type_name::<C>(), creator = %ctx.creator))]
pub async fn run<C: Command>(
    factory: &dyn UnitOfWorkFactory,
    ctx: &CommandContext,
    command: &C,
) -> Result<C::Output> {
    let mut attempt = 1;
    loop {
        match run_once(factory, ctx, command).await {
            Err(error) if attempt < ATTEMPTS && command.retry_on(&error) => {
                tracing::info!(%error, attempt, "generated id collided; running again");
                attempt += 1;
            }
            result => return result,
        }
    }
}

async fn run_once<C: Command>(
    factory: &dyn UnitOfWorkFactory,
    ctx: &CommandContext,
    command: &C,
) -> Result<C::Output> {
    let mut uow = factory.begin().await?;
    match command.execute(&mut *uow, ctx).await {
        Ok(output) => uow.commit().await.map(|()| output),
        Err(error) => {
            if let Err(rollback) = uow.rollback().await {
                tracing::warn!(%rollback, "rollback after a failed command failed");
            }
            Err(error)
        }
    }
}

/// A uniqueness rule the database found broken (a race the command's own checks could
/// not see, or the event store's unique constraints), told as the checks tell it: the rule
/// `event` claims, and the value as the command wrote it — never the database's detail
/// text (which shows the folded key) or the name of the index that happened to fire first.
fn as_claimed(error: crate::Error, event: &LegacyEvent) -> crate::Error {
    use crate::error::{Error, Rule};
    let Error::AlreadyExists { rule, value } = error else {
        return error;
    };
    let (claimed, written) = match event {
        LegacyEvent::OrgAdded { name } => (Rule::OrganizationName, name.as_str()),
        LegacyEvent::OrgChanged { name: Some(name) } => (Rule::OrganizationName, name.as_str()),
        LegacyEvent::InstanceDomainAdded { domain, .. } => {
            (Rule::CustomInstanceDomain, domain.as_str())
        }
        LegacyEvent::InstanceTrustedDomainAdded { domain } => {
            (Rule::TrustedInstanceDomain, domain.as_str())
        }
        LegacyEvent::OrgDomainAdded { domain } => (Rule::OrganizationDomain, domain.as_str()),
        LegacyEvent::OrgDomainVerified { domain } => {
            (Rule::VerifiedOrganizationDomain, domain.as_str())
        }
        _ => return Error::AlreadyExists { rule, value },
    };
    // The primary-key and unified-table indexes behind the same claim (the id rules keep
    // their own name: a chosen organization id is the caller's value too).
    let rule = match rule {
        Rule::OrganizationId | Rule::InstanceId => return Error::AlreadyExists { rule, value },
        Rule::PrimaryInstanceDomain | Rule::PrimaryOrganizationDomain => rule,
        _ => claimed,
    };
    Error::already_exists(rule, written)
}

/// Applies the reducer's changes for `event` and pushes it, written by v3.
async fn emit(
    uow: &mut dyn UnitOfWork,
    ctx: &CommandContext,
    at: OffsetDateTime,
    instance_id: &InstanceId,
    aggregate_id: &str,
    event: LegacyEvent,
    unique_constraints: Vec<UniqueConstraint>,
) -> Result<()> {
    for change in reduce(instance_id, aggregate_id, &event)? {
        apply_change(uow, &change, at)
            .await
            .map_err(|e| as_claimed(e, &event))?;
    }
    let aggregate_type = event.aggregate_type();
    uow.push(vec![NewEvent {
        instance_id: instance_id.as_str().to_owned(),
        aggregate_type: aggregate_type.to_owned(),
        aggregate_id: aggregate_id.to_owned(),
        event_type: event.event_type().to_owned(),
        revision: 1,
        payload: Some(event.encode()),
        creator: ctx.creator.clone(),
        owner: aggregate_id.to_owned(),
        created_at: Some(at),
        written_by_v3: true,
        expected_sequence: None,
        unique_constraints,
    }])
    .await
    .map_err(|e| as_claimed(e, &event))?;
    debug_assert!(aggregate_type == INSTANCE_AGGREGATE || aggregate_type == ORG_AGGREGATE);
    Ok(())
}

async fn emit_instance_event(
    uow: &mut dyn UnitOfWork,
    ctx: &CommandContext,
    at: OffsetDateTime,
    instance_id: &InstanceId,
    event: LegacyEvent,
    unique_constraints: Vec<UniqueConstraint>,
) -> Result<()> {
    emit(
        uow,
        ctx,
        at,
        instance_id,
        instance_id.as_str(),
        event,
        unique_constraints,
    )
    .await
}

async fn emit_org_event(
    uow: &mut dyn UnitOfWork,
    ctx: &CommandContext,
    at: OffsetDateTime,
    instance_id: &InstanceId,
    org_id: &OrgId,
    event: LegacyEvent,
    unique_constraints: Vec<UniqueConstraint>,
) -> Result<()> {
    emit(
        uow,
        ctx,
        at,
        instance_id,
        org_id.as_str(),
        event,
        unique_constraints,
    )
    .await
}

/// The live instance, or NotFound (a removed instance takes no commands).
async fn live_instance(uow: &mut dyn UnitOfWork, id: &InstanceId) -> Result<Instance> {
    uow.get_instance(id).await
}

/// The live organization of a live instance, or NotFound.
async fn live_organization(
    uow: &mut dyn UnitOfWork,
    instance_id: &InstanceId,
    org_id: &OrgId,
) -> Result<Organization> {
    live_instance(uow, instance_id).await?;
    uow.get_organization(instance_id, org_id).await
}

#[cfg(any(test, feature = "mocks"))]
#[cfg_attr(docsrs, doc(cfg(feature = "mocks")))]
pub mod testing {
    //! Fixtures for tests of commands and of code that calls them (feature `mocks`): a
    //! context with a fixed clock, id and token, the rows of a live instance `i1` and its
    //! organization `o1`, and [`MockUnitOfWork`]s that already hold them.
    //!
    //! ```
    //! use tenancy_core::command::testing::{NOW, instance, with_org};
    //! use tenancy_core::model::OrganizationState;
    //! // get_instance answers instance() and get_organization an active `o1`; add the
    //! // expectations of the writes the code under test makes.
    //! let uow = with_org(OrganizationState::Active);
    //! assert_eq!(instance().created_at, NOW);
    //! # drop(uow);
    //! ```
    pub use crate::state::{
        DomainChange, InstanceChange, InstanceDomainChange, OrgDomainChange, OrganizationChange,
    };
    use std::sync::Arc;

    use time::OffsetDateTime;
    use time::macros::datetime;

    use super::CommandContext;
    use crate::error::Error;
    use crate::event::StoredEvent;
    use crate::id::{InstanceId, OrgId};
    use crate::mocks::MockUnitOfWork;
    use crate::model::{
        Instance, InstanceDomain, InstanceDomainKind, Organization, OrganizationDomain,
        OrganizationState,
    };
    use crate::ports::{MockClock, MockIdGenerator};

    /// The time of every fixture row and of [`ctx`]'s clock.
    pub const NOW: OffsetDateTime = datetime!(2026-01-02 03:04:05 UTC);

    /// A context whose clock says [`NOW`], whose ids are all `100`, and whose tokens
    /// are [`TOKEN`].
    pub fn ctx() -> CommandContext {
        let mut clock = MockClock::new();
        clock.expect_now().return_const(NOW);
        let mut ids = MockIdGenerator::new();
        ids.expect_next_id().returning(|| Ok("100".into()));
        CommandContext {
            clock: Arc::new(clock),
            ids: Arc::new(ids),
            tokens: Arc::new(FixedToken),
            creator: "tester".into(),
        }
    }

    /// The token [`FixedToken`] generates.
    pub const TOKEN: &str = "tokentokentoken";

    /// Always [`TOKEN`].
    #[derive(Debug)]
    pub struct FixedToken;

    impl crate::challenge::TokenGenerator for FixedToken {
        fn token(&self) -> crate::error::Result<String> {
            Ok(TOKEN.into())
        }
    }

    /// The fixtures' instance id, `i1`.
    pub fn iid() -> InstanceId {
        InstanceId::new("i1").unwrap_or_else(|_| unreachable!("a valid id"))
    }

    /// The fixtures' organization id, `o1`.
    pub fn oid() -> OrgId {
        OrgId::new("o1").unwrap_or_else(|_| unreachable!("a valid id"))
    }

    /// A live instance `i1` named `ACME`.
    pub fn instance() -> Instance {
        Instance {
            id: iid(),
            name: "ACME".into(),
            default_org_id: None,
            iam_project_id: None,
            console_client_id: None,
            console_app_id: None,
            default_language: None,
            created_at: NOW,
            updated_at: NOW,
            deleted_at: None,
        }
    }

    /// A live organization `o1` of `i1` named `Org`, in `state`.
    pub fn organization(state: OrganizationState) -> Organization {
        Organization {
            instance_id: iid(),
            id: oid(),
            name: "Org".into(),
            state,
            created_at: NOW,
            updated_at: NOW,
            deleted_at: None,
        }
    }

    /// A custom domain of `i1`.
    pub fn custom_domain(domain: &str, is_primary: bool, is_generated: bool) -> InstanceDomain {
        InstanceDomain {
            instance_id: iid(),
            domain: domain.into(),
            kind: InstanceDomainKind::Custom {
                is_primary,
                is_generated,
            },
            created_at: NOW,
            updated_at: NOW,
        }
    }

    /// A domain of organization `o1`.
    pub fn org_domain(domain: &str, is_verified: bool, is_primary: bool) -> OrganizationDomain {
        OrganizationDomain {
            instance_id: iid(),
            org_id: oid(),
            domain: domain.into(),
            is_verified,
            is_primary,
            validation_type: None,
            created_at: NOW,
            updated_at: NOW,
        }
    }

    /// A unit of work with a live instance `i1`.
    pub fn with_instance() -> MockUnitOfWork {
        let mut uow = MockUnitOfWork::new();
        uow.expect_get_instance().returning(|_| Ok(instance()));
        uow
    }

    /// A unit of work with a live instance `i1` and a live organization `o1`.
    pub fn with_org(state: OrganizationState) -> MockUnitOfWork {
        let mut uow = with_instance();
        uow.expect_get_organization()
            .returning(move |_, _| Ok(organization(state)));
        uow
    }

    /// A unit of work whose instance is gone.
    pub fn without_instance() -> MockUnitOfWork {
        let mut uow = MockUnitOfWork::new();
        uow.expect_get_instance()
            .returning(|id| Err(Error::not_found("instance", id)));
        uow
    }

    /// Expects exactly one push of one v3 event of `event_type` stamped `NOW`.
    pub fn expect_push(uow: &mut MockUnitOfWork, event_type: &'static str) {
        uow.expect_push()
            .times(1)
            .withf(move |events| {
                events.len() == 1
                    && events[0].event_type == event_type
                    && events[0].written_by_v3
                    && events[0].created_at == Some(NOW)
            })
            .returning(|_| Ok(Vec::<StoredEvent>::new()));
    }

    /// Fails unless `result` is a NotFound error.
    pub fn assert_not_found<T: std::fmt::Debug>(result: crate::Result<T>) {
        assert!(matches!(result, Err(Error::NotFound { .. })), "{result:?}");
    }
}
