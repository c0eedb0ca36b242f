//! # tenancy-projection
//!
//! The engine that keeps the `relational_tables` projection (the five `zitadel.*` tables)
//! in step with `eventstore.events2`, with the guarantees of projections.md: exactly once
//! (cursor and table changes in one transaction), no skipped events (gap-safe reads by
//! sort key), ordered per instance with instances in parallel, many processes at once
//! (per-instance transaction-scoped advisory lock), failures recorded, retried and
//! skipped after `max_failure_count`. Operations: [`Engine::status`], [`Engine::failed`],
//! [`Engine::retry`], [`Engine::dismiss`], [`Engine::rebuild`], [`Engine::verify`];
//! continuous mode with LISTEN/NOTIFY and a sweep: [`Engine::run_continuous`] (or
//! [`Engine::spawn_continuous`] on a task of its own).
//!
//! Events already in the store, projected into the tables:
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use serde_json::json;
//! use tenancy_core::event::NewEvent;
//! use tenancy_core::ports::InstanceRepository;
//! use tenancy_projection::{Engine, EngineConfig};
//!
//! let db = tenancy_testkit::db::TestDatabase::fresh().await?;
//! let events = tenancy_eventstore::PgEventStore::new(db.pool.clone());
//! let event = |event_type: &str, payload| NewEvent::legacy("acme", "instance", "acme", event_type, payload, "zitadel");
//! events.push(vec![
//!     event("instance.added", json!({"name": "ACME"})),
//!     event("instance.domain.added", json!({"domain": "login.acme.example"})),
//! ]).await?;
//!
//! let engine = Engine::new(db.pool.clone(), EngineConfig::default());
//! let outcome = engine.run_until_caught_up(|_done, _total, _outcome| {}).await?;
//! assert_eq!(outcome.applied, 2);
//!
//! let store = tenancy_postgres::PgStore::new(db.pool.clone());
//! let found = store.session().await?.instance_by_host("login.acme.example").await?;
//! assert_eq!(found.name, "ACME");
//! assert!(engine.verify().await?.is_equal(), "the tables equal a fold of the events");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
#![deny(missing_docs)]

mod bulk;
mod claims;
mod continuous;
mod engine;
mod group;
mod memo;
pub mod metrics;
mod ops;
mod ordered;
mod outcome;
pub mod relational;
pub mod scrape;
mod side_by_side;
mod verify;
mod warm;

pub use bulk::insert_rows;
pub use continuous::Continuous;
pub use engine::{Engine, EngineConfig, Outcome, ReplayV3};
pub use group::SMALL_INSTANCE_EVENTS;
pub use ops::{FailedEvent, RetryOutcome, Status};
pub use side_by_side::Rebuilt;
pub use verify::VerifyReport;
