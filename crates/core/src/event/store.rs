//! Event store records (`eventstore.events2`) and queries, independent of the storage.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

/// A uniqueness claim kept in `eventstore.unique_constraints`, pushed with the event
/// that implies it. Values are lower-cased by the store.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct UniqueConstraint {
    /// Claim the value, or release it.
    pub action: UniqueAction,
    /// `''` for a global constraint.
    pub instance_id: String,
    /// The kind of value (`instance_domain`, `org_domain`, `org_name`).
    pub unique_type: String,
    /// The value, lower-cased.
    pub unique_field: String,
}

/// Whether a push claims a unique value or releases it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum UniqueAction {
    /// Claim: the push fails with AlreadyExists if another aggregate holds it.
    Add,
    /// Release: the value is free again.
    Remove,
}

/// Custom instance domains are unique across every instance.
pub const UNIQUE_INSTANCE_DOMAIN: &str = "instance_domain";
/// Verified org domains are unique within an instance.
pub const UNIQUE_ORG_DOMAIN: &str = "org_domain";
/// Live org names are unique within an instance.
pub const UNIQUE_ORG_NAME: &str = "org_name";

impl UniqueConstraint {
    /// Claim a custom instance domain (unique across all instances).
    pub fn add_instance_domain(domain: &str) -> Self {
        Self::new(UniqueAction::Add, "", UNIQUE_INSTANCE_DOMAIN, domain)
    }
    /// Release a custom instance domain.
    pub fn remove_instance_domain(domain: &str) -> Self {
        Self::new(UniqueAction::Remove, "", UNIQUE_INSTANCE_DOMAIN, domain)
    }
    /// Claim a verified organization domain within an instance.
    pub fn add_org_domain(instance_id: &str, domain: &str) -> Self {
        Self::new(UniqueAction::Add, instance_id, UNIQUE_ORG_DOMAIN, domain)
    }
    /// Release a verified organization domain.
    pub fn remove_org_domain(instance_id: &str, domain: &str) -> Self {
        Self::new(UniqueAction::Remove, instance_id, UNIQUE_ORG_DOMAIN, domain)
    }
    /// Claim an organization name within an instance.
    pub fn add_org_name(instance_id: &str, name: &str) -> Self {
        Self::new(UniqueAction::Add, instance_id, UNIQUE_ORG_NAME, name)
    }
    /// Release an organization name.
    pub fn remove_org_name(instance_id: &str, name: &str) -> Self {
        Self::new(UniqueAction::Remove, instance_id, UNIQUE_ORG_NAME, name)
    }

    fn new(action: UniqueAction, instance_id: &str, unique_type: &str, field: &str) -> Self {
        Self {
            action,
            instance_id: instance_id.to_owned(),
            unique_type: unique_type.to_owned(),
            unique_field: field.to_lowercase(),
        }
    }
}

/// An event to push. The store assigns `sequence`, `position` and `in_tx_order`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewEvent {
    /// The instance the event belongs to (`''` for system events).
    pub instance_id: String,
    /// `instance` or `org` for the catalogue's events.
    pub aggregate_type: String,
    /// The instance's or organization's id.
    pub aggregate_id: String,
    /// The catalogue's type (`instance.added`, ...).
    pub event_type: String,
    /// The payload's schema version (1 for every catalogue event).
    pub revision: i16,
    /// The payload as JSON; `None` for events without one.
    pub payload: Option<Value>,
    /// Who caused the event (a user id or a system name).
    pub creator: String,
    /// The resource owner: the organization (or instance) that owns the aggregate.
    pub owner: String,
    /// The event time; `None` lets the store stamp the statement time. v3 commands pass the
    /// time they also wrote on the rows (one timestamp for rows and events).
    pub created_at: Option<OffsetDateTime>,
    /// A v3 command wrote the rows of this event in the same unit of work: the projection
    /// must not apply it again.
    pub written_by_v3: bool,
    /// Optimistic concurrency: the aggregate's latest sequence the writer saw (0 = new).
    /// A push fails with `Conflict` when the aggregate is elsewhere. Expecting 0 declares
    /// the aggregate new: the store numbers its events from 1 without looking up its latest
    /// sequence. `None` appends after whatever is latest.
    pub expected_sequence: Option<i64>,
    /// Values this event claims or releases, checked in the push's transaction.
    pub unique_constraints: Vec<UniqueConstraint>,
}

impl NewEvent {
    /// An event as a legacy (ZITADEL) writer pushes it: revision 1, owned by its aggregate,
    /// stamped by the store, no expectations, no unique constraints.
    pub fn legacy(
        instance_id: &str,
        aggregate_type: &str,
        aggregate_id: &str,
        event_type: &str,
        payload: Value,
        creator: &str,
    ) -> Self {
        Self {
            instance_id: instance_id.into(),
            aggregate_type: aggregate_type.into(),
            aggregate_id: aggregate_id.into(),
            event_type: event_type.into(),
            revision: 1,
            payload: Some(payload),
            creator: creator.into(),
            owner: aggregate_id.into(),
            created_at: None,
            written_by_v3: false,
            expected_sequence: None,
            unique_constraints: vec![],
        }
    }
}

/// The global order of events: `(position, in_tx_order, instance_id, aggregate_type,
/// aggregate_id, sequence)`, the only order projections may use.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SortKey {
    /// When the event was inserted, as seconds since the epoch (`clock_timestamp()`).
    pub position: Decimal,
    /// The event's order within its transaction.
    pub in_tx_order: i32,
    /// The instance.
    pub instance_id: String,
    /// The aggregate type.
    pub aggregate_type: String,
    /// The aggregate id.
    pub aggregate_id: String,
    /// The event's number within its aggregate.
    pub sequence: i64,
}

/// A stored row of `eventstore.events2`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    /// The instance the event belongs to.
    pub instance_id: String,
    /// `instance` or `org` for the catalogue's events.
    pub aggregate_type: String,
    /// The instance's or organization's id.
    pub aggregate_id: String,
    /// The catalogue's type (`instance.added`, ...).
    pub event_type: String,
    /// The event's number within its aggregate, from 1, without gaps.
    pub sequence: i64,
    /// The payload's schema version.
    pub revision: i16,
    /// When the event was written.
    pub created_at: OffsetDateTime,
    /// The payload as JSON; `None` for events without one.
    pub payload: Option<Value>,
    /// Who caused the event.
    pub creator: String,
    /// The resource owner of the aggregate.
    pub owner: String,
    /// When the event was inserted, as seconds since the epoch (ZITADEL's `position`).
    pub position: Decimal,
    /// The event's order within its transaction.
    pub in_tx_order: i32,
    /// tenancy's tables already hold this event's rows: a tenancy command wrote them with
    /// the event (`tenancy.written_events` in PostgreSQL). Not necessarily the store's
    /// `written_by_v3` column, which in an adopted ZITADEL store is ZITADEL's own mark.
    pub written_by_v3: bool,
}

impl StoredEvent {
    /// The event's place in the global order.
    pub fn sort_key(&self) -> SortKey {
        SortKey {
            position: self.position,
            in_tx_order: self.in_tx_order,
            instance_id: self.instance_id.clone(),
            aggregate_type: self.aggregate_type.clone(),
            aggregate_id: self.aggregate_id.clone(),
            sequence: self.sequence,
        }
    }
}

/// A read of one instance's events in sort-key order, resumed after a cursor (never by
/// offset).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventQuery {
    /// The instance whose events are read (events are always read per instance).
    pub instance_id: String,
    /// Only these aggregate types (empty: any).
    pub aggregate_types: Vec<String>,
    /// Only these aggregates (empty: any).
    pub aggregate_ids: Vec<String>,
    /// Only these event types (empty: any).
    pub event_types: Vec<String>,
    /// Resume behind this event (exclusive).
    pub after: Option<SortKey>,
    /// Only events at or before this position (a catch-up's target).
    pub max_position: Option<Decimal>,
    /// At most this many events.
    pub limit: Option<u32>,
}
