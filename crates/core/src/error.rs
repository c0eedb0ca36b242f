//! The one error type of tenancy. Adapters map their failures onto it (see
//! `tenancy-postgres`'s `on_constraint`), so callers match on meaning, not on SQLSTATEs.

use std::fmt;

/// Result alias used across every tenancy crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The uniqueness rules of the schema (schema.md), each one partial unique index or key
/// in PostgreSQL and one check in memory. Displayed as the rule's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    /// Instance ids, across all instances.
    InstanceId,
    /// Organization ids, per instance.
    OrganizationId,
    /// Live organization names, per instance, ignoring case.
    OrganizationName,
    /// Live custom instance domains, across all instances, ignoring case.
    CustomInstanceDomain,
    /// Trusted domains, per instance.
    TrustedInstanceDomain,
    /// An instance domain row (instance, type, domain).
    InstanceDomain,
    /// At most one primary custom domain per instance.
    PrimaryInstanceDomain,
    /// A domain of one organization.
    OrganizationDomain,
    /// A verified organization domain, per instance.
    VerifiedOrganizationDomain,
    /// At most one primary domain per organization.
    PrimaryOrganizationDomain,
    /// A unique constraint tenancy does not know by name.
    Other,
}

impl Rule {
    /// The rule's name in messages (`already exists: custom instance domain: ...`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InstanceId => "instance id",
            Self::OrganizationId => "organization id",
            Self::OrganizationName => "organization name",
            Self::CustomInstanceDomain => "custom instance domain",
            Self::TrustedInstanceDomain => "trusted instance domain",
            Self::InstanceDomain => "instance domain",
            Self::PrimaryInstanceDomain => "primary instance domain",
            Self::OrganizationDomain => "organization domain",
            Self::VerifiedOrganizationDomain => "verified organization domain",
            Self::PrimaryOrganizationDomain => "primary organization domain",
            Self::Other => "unique constraint",
        }
    }

    /// The rule an `eventstore.unique_constraints` type stands for.
    pub fn of_unique_type(unique_type: &str) -> Self {
        match unique_type {
            crate::event::UNIQUE_INSTANCE_DOMAIN => Self::CustomInstanceDomain,
            crate::event::UNIQUE_ORG_DOMAIN => Self::VerifiedOrganizationDomain,
            crate::event::UNIQUE_ORG_NAME => Self::OrganizationName,
            _ => Self::Other,
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What went wrong, in terms of the domain.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The addressed object does not exist (or is soft-deleted).
    #[error("{kind} not found: {id}")]
    NotFound {
        /// What was looked for (`instance`, `organization domain`, ...).
        kind: &'static str,
        /// The id or key it was looked for by.
        id: String,
    },

    /// A uniqueness rule would be broken; `rule` names it.
    #[error("already exists: {rule}: {value}")]
    AlreadyExists {
        /// The uniqueness rule that would break.
        rule: Rule,
        /// The value that is taken (a name, a domain, an id).
        value: String,
    },

    /// Input that breaks a validation rule; `field` names the input, `reason` the rule.
    #[error("invalid {field}: {reason}")]
    InvalidArgument {
        /// The input's name, as the caller knows it (`domain`, `name`, `page_token`).
        field: &'static str,
        /// The rule it breaks, in words the caller can act on.
        reason: String,
    },

    /// The object exists but is not in a state that allows the operation.
    #[error("precondition failed: {0}")]
    PreconditionFailed(String),

    /// Someone else changed the same aggregate or state concurrently.
    #[error("conflict: {0}")]
    Conflict(String),

    /// A `get` matched more than one row.
    #[error("{kind}: more than one row matched")]
    MultipleFound {
        /// What was looked for.
        kind: &'static str,
    },

    /// The command would not change anything.
    #[error("no changes: {0}")]
    NoChanges(String),

    /// A tenant-scoped read or write was attempted without an instance id.
    #[error("missing tenant: {0} requires an instance id")]
    MissingTenant(&'static str),

    /// A domain verification found no valid proof; the failure says what to do.
    #[error("domain verification failed: {0}")]
    Challenge(#[from] crate::challenge::ChallengeFailure),

    /// Too much work waiting: the request was shed, nothing was done; retry later.
    #[error("unavailable: {0}")]
    Unavailable(String),

    /// Anything else: infrastructure failures and broken invariants, with the cause.
    #[error("internal error: {message}")]
    Internal {
        /// What tenancy was doing when it failed.
        message: String,
        /// The underlying failure (a database error, an I/O error), when there is one.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

impl Error {
    /// [`Error::NotFound`] of a `kind` by `id`.
    pub fn not_found(kind: &'static str, id: impl fmt::Display) -> Self {
        Self::NotFound {
            kind,
            id: id.to_string(),
        }
    }

    /// [`Error::AlreadyExists`]: `value` is taken under `rule`.
    pub fn already_exists(rule: Rule, value: impl fmt::Display) -> Self {
        Self::AlreadyExists {
            rule,
            value: value.to_string(),
        }
    }

    /// [`Error::InvalidArgument`]: `field` breaks the rule `reason` says.
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field,
            reason: reason.into(),
        }
    }

    /// [`Error::PreconditionFailed`] with the state that forbids the operation.
    pub fn precondition(reason: impl Into<String>) -> Self {
        Self::PreconditionFailed(reason.into())
    }

    /// [`Error::NoChanges`]: `what` already holds.
    pub fn no_changes(what: impl Into<String>) -> Self {
        Self::NoChanges(what.into())
    }

    /// [`Error::Internal`] without an underlying error (a broken invariant).
    pub fn internal(message: impl Into<String>) -> Self {
        Self::Internal {
            message: message.into(),
            source: None,
        }
    }

    /// The message and every cause below it (`a: b: c`), for logs: `Display` shows only
    /// the top, which for an infrastructure failure says nothing about why.
    pub fn chain(&self) -> String {
        let mut text = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            let cause_text = cause.to_string();
            if !text.ends_with(&cause_text) {
                text.push_str(": ");
                text.push_str(&cause_text);
            }
            source = cause.source();
        }
        text
    }

    /// [`Error::Internal`] caused by `source`, which [`Error::chain`] and logs show.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chain_names_every_cause() {
        let io = std::io::Error::other("invalid byte sequence for encoding UTF8: 0x00");
        let error = Error::internal_with("database error", io);
        assert_eq!(error.to_string(), "internal error: database error");
        assert_eq!(
            error.chain(),
            "internal error: database error: invalid byte sequence for encoding UTF8: 0x00"
        );
    }
}
