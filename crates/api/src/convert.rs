//! Rows to messages, and the proto enums and filters to the core's types.

use pbjson_types::Timestamp;
use tenancy_core::Error;
use tenancy_core::model::{OrganizationState, ValidationType};
use tenancy_core::query::{TextMatch, TextOperation};
use time::OffsetDateTime;
use tonic::Status;

use crate::error::status;
use crate::pb::filter::v2::TextFilterMethod;
use crate::pb::org::v2 as org;

pub fn timestamp(at: OffsetDateTime) -> Option<Timestamp> {
    Some(Timestamp {
        seconds: at.unix_timestamp(),
        nanos: i32::try_from(at.nanosecond()).unwrap_or(0),
    })
}

/// A text filter; unknown methods are InvalidArgument naming `field`.
/// `error` with its field renamed to the request's field (the core names its own).
pub fn renamed(error: Error, field: &'static str) -> Error {
    match error {
        Error::InvalidArgument { reason, .. } => Error::InvalidArgument { field, reason },
        other => other,
    }
}

pub fn text_match(field: &'static str, value: &str, method: i32) -> Result<TextMatch, Status> {
    let method = TextFilterMethod::try_from(method).map_err(|_| {
        status(Error::invalid(
            field,
            format!("unknown text method {method}"),
        ))
    })?;
    let (operation, ignore_case) = match method {
        TextFilterMethod::Equals => (TextOperation::Equals, false),
        TextFilterMethod::EqualsIgnoreCase => (TextOperation::Equals, true),
        TextFilterMethod::StartsWith => (TextOperation::StartsWith, false),
        TextFilterMethod::StartsWithIgnoreCase => (TextOperation::StartsWith, true),
        TextFilterMethod::Contains => (TextOperation::Contains, false),
        TextFilterMethod::ContainsIgnoreCase => (TextOperation::Contains, true),
        TextFilterMethod::EndsWith => (TextOperation::EndsWith, false),
        TextFilterMethod::EndsWithIgnoreCase => (TextOperation::EndsWith, true),
    };
    Ok(TextMatch::new(operation, value, ignore_case))
}

pub fn org_state(state: OrganizationState) -> org::OrganizationState {
    match state {
        OrganizationState::Active => org::OrganizationState::Active,
        OrganizationState::Inactive => org::OrganizationState::Inactive,
    }
}

/// Removed organizations are not listed, so only active and inactive filter anything.
pub fn org_state_filter(state: i32) -> Result<Option<OrganizationState>, Status> {
    match org::OrganizationState::try_from(state) {
        Ok(org::OrganizationState::Active) => Ok(Some(OrganizationState::Active)),
        Ok(org::OrganizationState::Inactive) => Ok(Some(OrganizationState::Inactive)),
        _ => Err(status(Error::invalid(
            "filters.state_filter.state",
            "must be ORGANIZATION_STATE_ACTIVE or ORGANIZATION_STATE_INACTIVE",
        ))),
    }
}

pub fn validation_type(kind: Option<ValidationType>) -> org::DomainValidationType {
    match kind {
        Some(ValidationType::Http) => org::DomainValidationType::Http,
        Some(ValidationType::Dns) => org::DomainValidationType::Dns,
        None => org::DomainValidationType::Unspecified,
    }
}

pub fn requested_validation_type(kind: i32) -> Result<ValidationType, Status> {
    match org::DomainValidationType::try_from(kind) {
        Ok(org::DomainValidationType::Http) => Ok(ValidationType::Http),
        Ok(org::DomainValidationType::Dns) => Ok(ValidationType::Dns),
        _ => Err(status(Error::invalid(
            "type",
            "must be DOMAIN_VALIDATION_TYPE_DNS or DOMAIN_VALIDATION_TYPE_HTTP",
        ))),
    }
}
