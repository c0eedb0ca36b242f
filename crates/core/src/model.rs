//! The state-persisted entities, one per table of `zitadel.*` (schema.md).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::id::{InstanceId, OrgId};

/// A tenant (`zitadel.instances`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    pub id: InstanceId,
    pub name: String,
    pub default_org_id: Option<String>,
    pub iam_project_id: Option<String>,
    pub console_client_id: Option<String>,
    pub console_app_id: Option<String>,
    pub default_language: Option<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub deleted_at: Option<OffsetDateTime>,
}

/// `zitadel.organization_state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrganizationState {
    Active,
    Inactive,
}

impl OrganizationState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Inactive => "inactive",
        }
    }

    pub fn parse(value: &str) -> Result<Self> {
        match value {
            "active" => Ok(Self::Active),
            "inactive" => Ok(Self::Inactive),
            other => Err(Error::invalid(
                "state",
                format!("{other:?} is not active or inactive"),
            )),
        }
    }
}

/// An organization (`zitadel.organizations`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Organization {
    pub instance_id: InstanceId,
    pub id: OrgId,
    pub name: String,
    pub state: OrganizationState,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub deleted_at: Option<OffsetDateTime>,
}

/// The kind of an instance domain; primary and generated exist only for custom domains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum InstanceDomainKind {
    Custom {
        is_primary: bool,
        is_generated: bool,
    },
    Trusted,
}

/// `zitadel.domain_type`, the kind without its flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InstanceDomainType {
    Custom,
    Trusted,
}

impl InstanceDomainType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Custom => "custom",
            Self::Trusted => "trusted",
        }
    }
}

impl InstanceDomainKind {
    pub fn domain_type(self) -> InstanceDomainType {
        match self {
            Self::Custom { .. } => InstanceDomainType::Custom,
            Self::Trusted => InstanceDomainType::Trusted,
        }
    }
}

/// A row of `zitadel.instance_domains`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceDomain {
    pub instance_id: InstanceId,
    pub domain: String,
    pub kind: InstanceDomainKind,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// How an organization proves it owns a domain; the legacy ordinal is 1 (http), 2 (dns).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ValidationType {
    Http,
    Dns,
}

impl ValidationType {
    pub fn ordinal(self) -> i16 {
        match self {
            Self::Http => 1,
            Self::Dns => 2,
        }
    }

    /// `0`, unknown values and absence are errors: the legacy writers never meant them.
    pub fn from_ordinal(value: i64) -> Result<Self> {
        match value {
            1 => Ok(Self::Http),
            2 => Ok(Self::Dns),
            other => Err(Error::invalid(
                "validationType",
                format!("{other} is neither 1 (http) nor 2 (dns)"),
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Dns => "dns",
        }
    }

    pub fn parse(value: &str) -> Result<Self> {
        match value {
            "http" => Ok(Self::Http),
            "dns" => Ok(Self::Dns),
            other => Err(Error::invalid(
                "validation_type",
                format!("{other:?} is neither http nor dns"),
            )),
        }
    }
}

/// A row of `zitadel.org_domains`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrganizationDomain {
    pub instance_id: InstanceId,
    pub org_id: OrgId,
    pub domain: String,
    pub is_verified: bool,
    pub is_primary: bool,
    pub validation_type: Option<ValidationType>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// A row of the unified `zitadel.domains`: an instance domain when `org_id` is `None`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Domain {
    pub id: i64,
    pub instance_id: InstanceId,
    pub org_id: Option<OrgId>,
    pub domain: String,
    pub is_verified: bool,
    pub is_primary: bool,
    pub validation_type: Option<ValidationType>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub deleted_at: Option<OffsetDateTime>,
}

/// Equality of domain values as the schema judges it: `lower(domain)`.
pub fn same_domain(a: &str, b: &str) -> bool {
    a.to_lowercase() == b.to_lowercase()
}
