//! Event store records (`eventstore.events2`) and queries, independent of the storage.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

/// A uniqueness claim kept in `eventstore.unique_constraints`, pushed with the event
/// that implies it. Values are lower-cased by the store.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct UniqueConstraint {
    pub action: UniqueAction,
    /// `''` for a global constraint.
    pub instance_id: String,
    pub unique_type: String,
    pub unique_field: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum UniqueAction {
    Add,
    Remove,
}

/// Custom instance domains are unique across every instance.
pub const UNIQUE_INSTANCE_DOMAIN: &str = "instance_domain";
/// Verified org domains are unique within an instance.
pub const UNIQUE_ORG_DOMAIN: &str = "org_domain";
/// Live org names are unique within an instance.
pub const UNIQUE_ORG_NAME: &str = "org_name";

impl UniqueConstraint {
    pub fn add_instance_domain(domain: &str) -> Self {
        Self::new(UniqueAction::Add, "", UNIQUE_INSTANCE_DOMAIN, domain)
    }
    pub fn remove_instance_domain(domain: &str) -> Self {
        Self::new(UniqueAction::Remove, "", UNIQUE_INSTANCE_DOMAIN, domain)
    }
    pub fn add_org_domain(instance_id: &str, domain: &str) -> Self {
        Self::new(UniqueAction::Add, instance_id, UNIQUE_ORG_DOMAIN, domain)
    }
    pub fn remove_org_domain(instance_id: &str, domain: &str) -> Self {
        Self::new(UniqueAction::Remove, instance_id, UNIQUE_ORG_DOMAIN, domain)
    }
    pub fn add_org_name(instance_id: &str, name: &str) -> Self {
        Self::new(UniqueAction::Add, instance_id, UNIQUE_ORG_NAME, name)
    }
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
    pub instance_id: String,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub event_type: String,
    pub revision: i16,
    pub payload: Option<Value>,
    pub creator: String,
    pub owner: String,
    /// The event time; `None` lets the store stamp the statement time. v3 commands pass the
    /// time they also wrote on the rows (one timestamp for rows and events).
    pub created_at: Option<OffsetDateTime>,
    /// A v3 command wrote the rows of this event in the same unit of work: the projection
    /// must not apply it again.
    pub written_by_v3: bool,
    /// Optimistic concurrency: the aggregate's latest sequence the writer saw (0 = new).
    pub expected_sequence: Option<i64>,
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
    pub position: Decimal,
    pub in_tx_order: i32,
    pub instance_id: String,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
}

/// A stored row of `eventstore.events2`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    pub instance_id: String,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub event_type: String,
    pub sequence: i64,
    pub revision: i16,
    pub created_at: OffsetDateTime,
    pub payload: Option<Value>,
    pub creator: String,
    pub owner: String,
    pub position: Decimal,
    pub in_tx_order: i32,
    /// tenancy's tables already hold this event's rows: a tenancy command wrote them with
    /// the event (`tenancy.written_events` in PostgreSQL). Not necessarily the store's
    /// `written_by_v3` column, which in an adopted ZITADEL store is ZITADEL's own mark.
    pub written_by_v3: bool,
}

impl StoredEvent {
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
    pub instance_id: String,
    pub aggregate_types: Vec<String>,
    pub aggregate_ids: Vec<String>,
    pub event_types: Vec<String>,
    pub after: Option<SortKey>,
    /// Only events at or before this position (a catch-up's target).
    pub max_position: Option<Decimal>,
    pub limit: Option<u32>,
}
