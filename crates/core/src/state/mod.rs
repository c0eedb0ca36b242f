//! State changes, the reducer from legacy events to them, and the in-memory model.

mod apply;
mod change;
mod memory;

pub use apply::apply_change;
pub use change::{InstanceUpdate, OrganizationUpdate, StateChange, reduce};
pub use memory::InMemoryState;
