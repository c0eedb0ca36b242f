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
#![deny(missing_docs)]

mod bulk;
mod claims;
mod continuous;
mod engine;
mod group;
mod memo;
pub mod metrics;
mod ops;
mod outcome;
pub mod relational;
pub mod scrape;
mod side_by_side;
mod verify;

pub use bulk::insert_rows;
pub use continuous::Continuous;
pub use engine::{Engine, EngineConfig, Outcome, ReplayV3};
pub use group::SMALL_INSTANCE_EVENTS;
pub use ops::{FailedEvent, RetryOutcome, Status};
pub use side_by_side::Rebuilt;
pub use verify::VerifyReport;
