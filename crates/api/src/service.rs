//! What both services share: the adapters they run on, the caller's instance, and how a
//! command runs on behalf of a caller.

use std::sync::Arc;

use tenancy_core::Error;
use tenancy_core::challenge::{ChallengeSettings, DomainChallenge, TokenGenerator};
use tenancy_core::command::{Command, CommandContext, run};
use tenancy_core::id::InstanceId;
use tenancy_core::page_token::PageTokens;
use tenancy_core::ports::{
    Clock, EventReader, HostLookup, IdGenerator, UnitOfWork, UnitOfWorkFactory,
};
use tenancy_core::value::DomainName;
use time::OffsetDateTime;
use tonic::{Request, Status};

use crate::auth::{Caller, Principal};
use crate::error::status;

/// The adapters the API runs on.
#[derive(Clone)]
pub struct Api {
    /// Units of work for commands and reads (`PgStore` in production).
    pub factory: Arc<dyn UnitOfWorkFactory>,
    /// The event store's reads (a domain's validation history).
    pub events: Arc<dyn EventReader>,
    /// Host resolution (the cache in production).
    pub hosts: Arc<dyn HostLookup>,
    /// The DNS and HTTP checks of domain verification.
    pub checker: Arc<dyn DomainChallenge>,
    /// The challenge's prefix and the tokens' lifetime.
    pub challenge: ChallengeSettings,
    /// The time stamped on rows and events.
    pub clock: Arc<dyn Clock>,
    /// New ids (leased machine id in production).
    pub ids: Arc<dyn IdGenerator>,
    /// Domain validation tokens.
    pub tokens: Arc<dyn TokenGenerator>,
    /// Signs and checks page tokens (keyset paging).
    pub page_tokens: PageTokens,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api").finish_non_exhaustive()
    }
}

/// A clock stopped at one instant: a command and its response carry the same time.
struct StoppedClock(OffsetDateTime);

impl Clock for StoppedClock {
    fn now(&self) -> OffsetDateTime {
        self.0
    }
}

/// Whether the instance of a request is checked for a read or for a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Read,
    Write,
}

/// What a write hands back: the time it stamped on rows and events.
pub type Stamped<T> = (T, OffsetDateTime);

impl Api {
    /// The caller the authentication layer put on the request.
    pub fn caller<T>(request: &Request<T>) -> Result<Caller, Status> {
        request
            .extensions()
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| Status::unauthenticated("no caller: the request was not authenticated"))
    }

    /// PERMISSION_DENIED unless a system token calls.
    pub fn require_system(caller: &Caller, method: &str) -> Result<(), Status> {
        match caller.principal {
            Principal::System { .. } => Ok(()),
            Principal::Instance { .. } => Err(Status::permission_denied(format!(
                "{method} needs a system token"
            ))),
        }
    }

    /// The instance a request acts on: `explicit` (a request field or the instance
    /// header) or else the instance whose custom domain is the Host. An instance token
    /// reaches only its own instance; any other answers NOT_FOUND, worded as for an
    /// instance that does not exist.
    pub async fn instance(&self, caller: &Caller, explicit: &str) -> Result<InstanceId, Status> {
        self.instance_for(caller, explicit, Access::Read).await
    }

    /// As [`Self::instance`]; for a write the named instance is checked on the primary
    /// (a replica may not show an instance created a moment ago).
    async fn instance_for(
        &self,
        caller: &Caller,
        explicit: &str,
        access: Access,
    ) -> Result<InstanceId, Status> {
        let explicit = Some(explicit).filter(|id| !id.is_empty()).or(caller
            .instance_header
            .as_deref()
            .filter(|id| !id.is_empty()));
        // What an instance token is told about another instance: exactly what it would be
        // told if that instance, or that host, did not exist.
        let (id, unknown) = match explicit {
            Some(id) => {
                let id = InstanceId::new(id).map_err(status)?;
                let unknown = Error::not_found("instance", &id);
                if let Principal::Instance { instance_id, .. } = &caller.principal
                    && *instance_id != id
                {
                    return Err(status(unknown));
                }
                // A named instance must exist (and be live): otherwise a list of it would
                // answer an empty page instead of NOT_FOUND.
                let mut uow = match access {
                    Access::Read => self.read(caller).await?,
                    Access::Write => self.factory.begin().await.map_err(status)?,
                };
                match uow.get_instance(&id).await {
                    Ok(_) => {}
                    Err(Error::NotFound { .. }) => return Err(status(unknown)),
                    Err(other) => return Err(status(other)),
                }
                (id, unknown)
            }
            None => {
                let host = caller.host.as_deref().unwrap_or_default();
                let id = self.hosts.instance_by_host(host).await.map_err(status)?;
                let domain = DomainName::from_host(host).map_err(status)?;
                (id, Error::not_found("instance for host", domain))
            }
        };
        match &caller.principal {
            Principal::System { .. } => Ok(id),
            Principal::Instance { instance_id, .. } if *instance_id == id => Ok(id),
            Principal::Instance { .. } => Err(status(unknown)),
        }
    }

    /// The context of the caller's commands, with a clock stopped at `at`.
    pub fn context(&self, caller: &Caller, at: OffsetDateTime) -> CommandContext {
        CommandContext {
            clock: Arc::new(StoppedClock(at)),
            ids: self.ids.clone(),
            tokens: self.tokens.clone(),
            creator: caller.principal.name().to_owned(),
        }
    }

    /// Runs a command in its own unit of work for the caller.
    pub async fn run<C: Command>(
        &self,
        caller: &Caller,
        command: &C,
    ) -> Result<Stamped<C::Output>, Status> {
        let at = self.clock.now();
        let output = run(&*self.factory, &self.context(caller, at), command)
            .await
            .map_err(status)?;
        // With read replicas: the position a later read sends to see this write. The
        // write has committed; failing to read the position only costs that guarantee.
        match self.factory.consistency_token().await {
            Ok(Some(token)) => caller.wrote(token),
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(error = %error.chain(), "no consistency token after a write")
            }
        }
        Ok((output, at))
    }

    /// The usual write: who calls (`system_only` names the method when it needs a system
    /// token), which instance (`explicit`: the request's instance id, if it has one), then
    /// the command `make` builds for that instance from the request.
    pub async fn write<T, C: Command>(
        &self,
        request: Request<T>,
        system_only: Option<&str>,
        explicit: impl FnOnce(&T) -> &str,
        make: impl FnOnce(InstanceId, T) -> Result<C, Status>,
    ) -> Result<Stamped<C::Output>, Status> {
        let caller = Api::caller(&request)?;
        if let Some(method) = system_only {
            Api::require_system(&caller, method)?;
        }
        let request = request.into_inner();
        let instance_id = self
            .instance_for(&caller, explicit(&request), Access::Write)
            .await?;
        let command = make(instance_id, request)?;
        self.run(&caller, &command).await
    }

    /// A unit of work for reads, on a replica when the adapter has them: one that has
    /// replayed the caller's consistency token, if it sent one. Dropping it rolls back.
    pub async fn read(&self, caller: &Caller) -> Result<Box<dyn UnitOfWork>, Status> {
        self.factory
            .begin_read(caller.consistency.clone())
            .await
            .map_err(status)
    }
}
