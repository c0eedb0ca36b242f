//! # tenancy-testkit
//!
//! What tests of tenancy and of the teams that use it need:
//! - [`InMemoryStore`]: every port of `tenancy-core` in memory, with the same rules as
//!   PostgreSQL (uniqueness, soft delete, pagination), commit and rollback;
//! - [`db::TestDatabase`]: a fresh, migrated PostgreSQL database per test, provisioned from
//!   `DATABASE_URL`, a testcontainers container, or an embedded cluster (see the README);
//! - [`fixtures`]: a fixed clock and sequential ids for deterministic tests;
//! - [`zitadel`]: databases laid out by ZITADEL itself, and its push.

pub mod db;
pub mod fixtures;
mod memory;
pub mod servers;
pub mod stream;
pub mod zitadel;

pub use memory::{InMemoryEventStore, InMemoryStore, InMemoryUnitOfWork};
