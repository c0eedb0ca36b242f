//! # tenancy-testkit
//!
//! What tests of tenancy and of the teams that use it need:
//! - [`InMemoryStore`]: every port of `tenancy-core` in memory, with the same rules as
//!   PostgreSQL (uniqueness, soft delete, pagination), commit and rollback;
//! - [`db::TestDatabase`]: a fresh, migrated PostgreSQL database per test, provisioned from
//!   `DATABASE_URL`, a testcontainers container, or an embedded cluster (see the README);
//! - [`contract`]: the repository contract every adapter passes (run on both here);
//! - [`fixtures`]: a stepping clock, sequential ids and fixed tokens for deterministic tests;
//! - [`rows`]: a row of every table with defaults, to change with struct update syntax;
//! - [`zitadel`]: databases laid out by ZITADEL itself, and its push;
//! - [`verify`]: the assertion that the tables equal the fold of the events;
//! - [`servers`]: a DNS and an HTTP server on loopback, for verification tests;
//! - [`docker`]: the PostgreSQL test images built here and their shared containers;
//! - [`replica`]: a private primary with a streaming replica, for tests of replica reads.
//!
//! `db`, `docker`, `replica`, `zitadel` and `verify` are behind the feature `postgres`, `servers` behind
//! `servers` (both on by default). Without them the in-memory part builds with no sqlx,
//! testcontainers or DNS code: `tenancy-testkit = { default-features = false }`.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use tenancy_core::command::{run, AddInstance, AddOrganization};
//! use tenancy_core::ports::OrganizationRepository;
//! use tenancy_testkit::{fixtures, InMemoryStore};
//!
//! let store = InMemoryStore::new();
//! let ctx = fixtures::context(); // clock from 2026-01-01, ids 1, 2, 3, ...
//! let acme = run(&store, &ctx, &AddInstance { name: "ACME".into() }).await?;
//! let sales = run(&store, &ctx, &AddOrganization {
//!     instance_id: acme.clone(), id: None, name: "Sales".into(),
//! }).await?;
//! assert_eq!((acme.as_str(), sales.as_str()), ("1", "2"));
//!
//! // Same rules as PostgreSQL: names are unique per instance, ignoring case.
//! let taken = run(&store, &ctx, &AddOrganization {
//!     instance_id: acme.clone(), id: None, name: "SALES".into(),
//! }).await;
//! assert!(matches!(taken, Err(tenancy_core::Error::AlreadyExists { .. })));
//! let found = store.unit_of_work().get_organization(&acme, &sales).await?;
//! assert_eq!(found.name, "Sales");
//! # Ok::<(), tenancy_core::Error>(())
//! # }).unwrap();
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]

pub mod changes;
pub mod contract;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub mod db;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub mod docker;
pub mod fixtures;
mod memory;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub mod replica;
pub mod rows;
#[cfg(feature = "servers")]
#[cfg_attr(docsrs, doc(cfg(feature = "servers")))]
pub mod servers;
pub mod stream;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub mod verify;
pub mod writes;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub mod zitadel;

pub use memory::{InMemoryEventStore, InMemoryStore, InMemoryUnitOfWork};
