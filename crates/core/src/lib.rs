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
//! # tokio_test_block_on(async {
//! use std::sync::Arc;
//! use tenancy_core::command::{run, AddInstance, AddInstanceDomain, CommandContext};
//! use tenancy_core::ports::{SonyflakeGenerator, SystemClock, UnitOfWorkFactory};
//! # use tenancy_core::ports::UnitOfWork;
//! # struct Fake;
//! # #[async_trait::async_trait] impl UnitOfWorkFactory for Fake {
//! #   async fn begin(&self) -> tenancy_core::Result<Box<dyn UnitOfWork>> { unimplemented!() } }
//! # fn in_memory() -> impl UnitOfWorkFactory { Fake }
//! // With `tenancy-testkit`: `let store = tenancy_testkit::InMemoryStore::new();`
//! let store = in_memory();
//! let ctx = CommandContext {
//!     clock: Arc::new(SystemClock),
//!     ids: Arc::new(SonyflakeGenerator::new(1)),
//!     creator: "docs".into(),
//! };
//! # if false {
//! let instance = run(&store, &ctx, &AddInstance { name: "ACME".into() }).await?;
//! run(&store, &ctx, &AddInstanceDomain {
//!     instance_id: instance.clone(),
//!     domain: "login.acme.example".into(),
//!     generated: false,
//! }).await?;
//! # }
//! # Ok::<(), tenancy_core::Error>(())
//! # });
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f) }
//! ```

pub mod command;
pub mod error;
pub mod event;
pub mod id;
#[cfg(any(test, feature = "mocks"))]
pub mod mocks;
pub mod model;
pub mod ports;
pub mod query;
pub mod state;
pub mod value;

pub use error::{Error, Result};
