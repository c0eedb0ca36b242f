//! Events: the legacy catalogue and the event store's records.

mod catalogue;
mod store;

#[cfg(test)]
pub(crate) use catalogue::spec_samples;
pub use catalogue::{
    DecodeError, EVENT_TYPES, INSTANCE_AGGREGATE, INSTANCE_DOMAIN_ADDED, LegacyEvent, ORG_AGGREGATE,
};
pub use store::{
    EventQuery, NewEvent, SortKey, StoredEvent, UNIQUE_INSTANCE_DOMAIN, UNIQUE_ORG_DOMAIN,
    UNIQUE_ORG_NAME, UniqueAction, UniqueConstraint,
};
