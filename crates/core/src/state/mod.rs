//! State changes, the reducer from legacy events to them, and the in-memory model.

mod apply;
mod change;
pub(crate) mod memory;

pub use crate::table::{Table, TableRows};
pub use apply::apply_change;
pub use change::{
    DomainChange, InstanceChange, InstanceDomainChange, InstanceUpdate, OrgDomainChange,
    OrganizationChange, OrganizationUpdate, StateChange, reduce,
};
pub use memory::{InMemoryState, RowDiff};
