//! The `relational_tables` projection: which events it reads and what they change.

use tenancy_core::Result;
use tenancy_core::event::{
    EVENT_TYPES, INSTANCE_AGGREGATE, LegacyEvent, ORG_AGGREGATE, StoredEvent,
};
use tenancy_core::id::InstanceId;
use tenancy_core::state::{StateChange, reduce};

/// The projection's name in `tenancy.current_states` and `tenancy.failed_events2` (tenancy's own
/// tables: ZITADEL's handler of the same name keeps its cursors in `projections.*`).
pub const NAME: &str = "relational_tables";

/// The aggregate types it reads.
pub fn aggregate_types() -> Vec<String> {
    vec![INSTANCE_AGGREGATE.to_owned(), ORG_AGGREGATE.to_owned()]
}

/// The event types it reads (nothing else of the store is its business).
pub fn event_types() -> Vec<String> {
    EVENT_TYPES.iter().map(|t| (*t).to_owned()).collect()
}

/// The cursors of a next generation being built by a side-by-side rebuild.
pub const NEXT_NAME: &str = "relational_tables.next";
/// The cursors of the generation a switch replaced (kept with its tables).
pub const PREVIOUS_NAME: &str = "relational_tables.previous";

/// The projection's cursors, failures and locks under its name.
pub fn state() -> tenancy_eventstore::projection_state::ProjectionState {
    state_named(NAME)
}

/// The same projection's bookkeeping under another name (another generation's tables).
pub fn state_named(name: &'static str) -> tenancy_eventstore::projection_state::ProjectionState {
    tenancy_eventstore::projection_state::ProjectionState::new(
        name,
        aggregate_types(),
        event_types(),
    )
}

/// Decodes and reduces one stored event.
pub fn changes(event: &StoredEvent) -> Result<Vec<StateChange>> {
    let decoded = LegacyEvent::decode(&event.event_type, event.payload.as_ref())?;
    reduce(
        &InstanceId::new(event.instance_id.clone())?,
        &event.aggregate_id,
        &decoded,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A new aggregate's events that reach the catalogue are read by the projection.
    #[test]
    fn every_catalogue_event_belongs_to_a_read_aggregate() {
        let read = aggregate_types();
        for event_type in EVENT_TYPES {
            let aggregate = event_type.split('.').next().unwrap_or_default();
            assert!(
                read.iter().any(|a| a == aggregate),
                "{event_type}: aggregate {aggregate} is not read by the projection"
            );
        }
    }
}
