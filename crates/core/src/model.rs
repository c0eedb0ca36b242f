//! The state-persisted entities, one per table of `zitadel.*` (schema.md). Each is defined
//! with its table (`crate::table::<table>`) and listed here.

pub use crate::table::domain::Domain;
pub use crate::table::instance::Instance;
pub use crate::table::instance_domain::{InstanceDomain, InstanceDomainKind, InstanceDomainType};
pub use crate::table::org_domain::{OrganizationDomain, ValidationType};
pub use crate::table::organization::{Organization, OrganizationState};

/// Equality of domain values as the schema judges it: `lower(domain)`.
pub fn same_domain(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}
