//! # tenancy-core
//!
//! The domain of tenancy — instances (tenants), organizations, instance domains and
//! organization domains — as state-persisted entities, with the rules users expect, the
//! v3 commands, the legacy (ZITADEL-compatible) event catalogue, the reducers from events
//! to table changes, and the ports adapters implement. No I/O happens here.
//!
//! Run a command against any [`ports::UnitOfWorkFactory`]: PostgreSQL
//! (`tenancy-postgres`) in production, the in-memory adapters of `tenancy-testkit` in tests.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use tenancy_core::command::{run, AddInstance, AddInstanceDomain};
//! use tenancy_core::ports::InstanceRepository;
//! use tenancy_testkit::{fixtures, InMemoryStore};
//!
//! let store = InMemoryStore::new();
//! let ctx = fixtures::context();
//! let instance = run(&store, &ctx, &AddInstance { name: "ACME".into() }).await?;
//! run(&store, &ctx, &AddInstanceDomain {
//!     instance_id: instance.clone(),
//!     domain: "Login.ACME.example".into(),
//!     generated: false,
//! }).await?;
//! let found = store.unit_of_work().instance_by_host("login.acme.example").await?;
//! assert_eq!(found.id, instance);
//! # Ok::<(), tenancy_core::Error>(())
//! # }).unwrap();
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]

pub mod challenge;
pub mod command;
pub mod error;
pub mod event;
pub mod hosts;
pub mod id;
#[cfg(any(test, feature = "mocks"))]
#[cfg_attr(docsrs, doc(cfg(feature = "mocks")))]
pub mod mocks;
pub mod model;
pub mod page_token;
pub mod ports;
pub mod query;
pub mod state;
pub mod table;
pub mod value;

pub use error::{Error, Result, Rule};

/// The attribute the ports are declared with: implement a port with
/// `#[tenancy_core::async_trait]` without depending on `async-trait` yourself.
pub use async_trait::async_trait;
/// The date-time crate of every row and port (`OffsetDateTime`), so a consumer builds rows
/// without a dependency of its own that could drift to another version.
pub use time;
