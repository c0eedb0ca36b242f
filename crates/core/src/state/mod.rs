//! State changes, the reducer from legacy events to them, and the in-memory model.

mod apply;
mod change;
mod memory;
mod table;

pub use apply::apply_change;
pub use change::{
    DomainChange, InstanceChange, InstanceDomainChange, InstanceUpdate, OrgDomainChange,
    OrganizationChange, OrganizationUpdate, StateChange, reduce,
};
pub use memory::{InMemoryState, RowDiff};
pub use table::{Table, TableRows};
