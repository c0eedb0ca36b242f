//! Rows of every table with sensible defaults, for tests that seed a store or set a
//! mock's answer. Change what a test cares about with struct update syntax:
//!
//! ```
//! use tenancy_core::model::{Instance, OrganizationState};
//! use tenancy_testkit::rows::{self, WithState};
//!
//! let acme = rows::instance("i1");
//! let renamed = Instance { name: "ACME Corp".into(), ..rows::instance("i1") };
//! assert_eq!(acme.id, renamed.id);
//! let inactive = rows::organization("i1", "o1").with_state(OrganizationState::Inactive);
//! assert_eq!(inactive.state, OrganizationState::Inactive);
//! ```
//!
//! Every row is live, created and updated at [`CREATED`]. Ids are taken as strings; an
//! empty one panics (a test's typo, not input to handle).

use tenancy_core::id::{InstanceId, OrgId};
use tenancy_core::model::{
    Domain, Instance, InstanceDomain, InstanceDomainKind, Organization, OrganizationDomain,
    OrganizationState, ValidationType,
};
use time::OffsetDateTime;

/// `created_at` and `updated_at` of every row built here.
pub const CREATED: OffsetDateTime = time::macros::datetime!(2026-01-01 00:00:00 UTC);

fn instance_id(id: &str) -> InstanceId {
    InstanceId::new(id).unwrap_or_else(|e| panic!("a test's instance id: {e}"))
}

fn org_id(id: &str) -> OrgId {
    OrgId::new(id).unwrap_or_else(|e| panic!("a test's organization id: {e}"))
}

/// A live instance named `Instance <id>`, with no default organization, IAM project,
/// console or default language.
pub fn instance(id: &str) -> Instance {
    Instance {
        id: instance_id(id),
        name: format!("Instance {id}"),
        default_org_id: None,
        iam_project_id: None,
        console_client_id: None,
        console_app_id: None,
        default_language: None,
        created_at: CREATED,
        updated_at: CREATED,
        deleted_at: None,
    }
}

/// An active organization `org` of `instance`, named `Organization <org>`.
pub fn organization(instance: &str, org: &str) -> Organization {
    Organization {
        instance_id: instance_id(instance),
        id: org_id(org),
        name: format!("Organization {org}"),
        state: OrganizationState::Active,
        created_at: CREATED,
        updated_at: CREATED,
        deleted_at: None,
    }
}

/// The organization in another state (the one setting tests need most).
pub trait WithState {
    /// The same row in `state`.
    fn with_state(self, state: OrganizationState) -> Self;
}

impl WithState for Organization {
    fn with_state(self, state: OrganizationState) -> Self {
        Self { state, ..self }
    }
}

/// A custom domain of `instance`: not primary, not generated.
pub fn custom_domain(instance: &str, domain: &str) -> InstanceDomain {
    InstanceDomain {
        instance_id: instance_id(instance),
        domain: domain.into(),
        kind: InstanceDomainKind::Custom {
            is_primary: false,
            is_generated: false,
        },
        created_at: CREATED,
        updated_at: CREATED,
    }
}

/// A trusted domain of `instance`.
pub fn trusted_domain(instance: &str, domain: &str) -> InstanceDomain {
    InstanceDomain {
        kind: InstanceDomainKind::Trusted,
        ..custom_domain(instance, domain)
    }
}

/// A domain of organization `org`: not verified, not primary, no validation started.
pub fn org_domain(instance: &str, org: &str, domain: &str) -> OrganizationDomain {
    OrganizationDomain {
        instance_id: instance_id(instance),
        org_id: org_id(org),
        domain: domain.into(),
        is_verified: false,
        is_primary: false,
        validation_type: None,
        created_at: CREATED,
        updated_at: CREATED,
    }
}

/// A verified, primary organization domain validated by DNS (what a finished
/// verification leaves).
pub fn verified_org_domain(instance: &str, org: &str, domain: &str) -> OrganizationDomain {
    OrganizationDomain {
        is_verified: true,
        is_primary: true,
        validation_type: Some(ValidationType::Dns),
        ..org_domain(instance, org, domain)
    }
}

/// A live row of the unified `domains` table: an instance domain when `org` is `None`,
/// else a domain of that organization. `id` is the table's generated key.
pub fn domain(id: i64, instance: &str, org: Option<&str>, domain: &str) -> Domain {
    Domain {
        id,
        instance_id: instance_id(instance),
        org_id: org.map(org_id),
        domain: domain.into(),
        is_verified: false,
        is_primary: false,
        validation_type: None,
        created_at: CREATED,
        updated_at: CREATED,
        deleted_at: None,
    }
}
