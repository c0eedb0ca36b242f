//! The one error type of tenancy. Adapters map their failures onto it (see
//! `tenancy-postgres`'s `on_constraint`), so callers match on meaning, not on SQLSTATEs.

use std::fmt;

/// Result alias used across every tenancy crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, in terms of the domain.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The addressed object does not exist (or is soft-deleted).
    #[error("{kind} not found: {id}")]
    NotFound { kind: &'static str, id: String },

    /// A uniqueness rule would be broken; `rule` names it.
    #[error("already exists: {rule}: {value}")]
    AlreadyExists { rule: &'static str, value: String },

    /// Input that breaks a validation rule; `field` names the input, `reason` the rule.
    #[error("invalid {field}: {reason}")]
    InvalidArgument { field: &'static str, reason: String },

    /// The object exists but is not in a state that allows the operation.
    #[error("precondition failed: {0}")]
    PreconditionFailed(String),

    /// Someone else changed the same aggregate or state concurrently.
    #[error("conflict: {0}")]
    Conflict(String),

    /// A `get` matched more than one row.
    #[error("{kind}: more than one row matched")]
    MultipleFound { kind: &'static str },

    /// The command would not change anything.
    #[error("no changes: {0}")]
    NoChanges(String),

    /// A tenant-scoped read or write was attempted without an instance id.
    #[error("missing tenant: {0} requires an instance id")]
    MissingTenant(&'static str),

    /// A domain verification found no valid proof; the failure says what to do.
    #[error("domain verification failed: {0}")]
    Challenge(#[from] crate::challenge::ChallengeFailure),

    /// Anything else: infrastructure failures and broken invariants, with the cause.
    #[error("internal error: {message}")]
    Internal {
        message: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

impl Error {
    pub fn not_found(kind: &'static str, id: impl fmt::Display) -> Self {
        Self::NotFound {
            kind,
            id: id.to_string(),
        }
    }

    pub fn already_exists(rule: &'static str, value: impl fmt::Display) -> Self {
        Self::AlreadyExists {
            rule,
            value: value.to_string(),
        }
    }

    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field,
            reason: reason.into(),
        }
    }

    pub fn precondition(reason: impl Into<String>) -> Self {
        Self::PreconditionFailed(reason.into())
    }

    pub fn no_changes(what: impl Into<String>) -> Self {
        Self::NoChanges(what.into())
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::Internal {
            message: message.into(),
            source: None,
        }
    }

    pub fn internal_with(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Internal {
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }
}
