//! Applies a [`StateChange`] through the repository ports: each table's change goes to
//! that table's port.

use time::OffsetDateTime;

use crate::error::Result;
use crate::ports::Repositories;
use crate::state::StateChange;

/// Applies one change through the repositories; returns the rows changed.
pub async fn apply_change<R: Repositories + ?Sized>(
    repos: &mut R,
    change: &StateChange,
    at: OffsetDateTime,
) -> Result<u64> {
    match change.clone() {
        StateChange::Instance(change) => repos.apply_instance_change(change, at).await,
        StateChange::Organization(change) => repos.apply_organization_change(change, at).await,
        StateChange::InstanceDomain(change) => repos.apply_instance_domain_change(change, at).await,
        StateChange::OrgDomain(change) => repos.apply_org_domain_change(change, at).await,
        StateChange::Domain(change) => repos.apply_domain_change(change, at).await,
    }
}
