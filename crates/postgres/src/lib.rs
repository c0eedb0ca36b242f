//! # tenancy-postgres
//!
//! PostgreSQL storage for every repository port of `tenancy-core`, exactly as schema.md
//! says: embedded migrations ([`migrate`]), a unit of work over one transaction
//! ([`PgStore`], [`PgSession`]), the error mapping in one place ([`on_constraint`]), and an
//! embedded cluster launcher for machines without a configured database ([`embedded`]).
//!
//! In production: `let pool = PgStore::connect(&url).await?; migrate(&pool).await?;`, and
//! `PgStore::with_events(pool, event_store)` so that commands push their events in the
//! same transaction. Writes through the ports, in one unit of work:
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use tenancy_core::id::InstanceId;
//! use tenancy_core::model::InstanceDomainKind;
//! use tenancy_core::ports::{InstanceDomainRepository, InstanceRepository, UnitOfWorkFactory};
//! use tenancy_core::state::{InstanceChange, InstanceDomainChange};
//! use tenancy_postgres::PgStore;
//!
//! // A fresh, migrated database (DATABASE_URL, a container or an embedded cluster).
//! let db = tenancy_testkit::db::TestDatabase::fresh().await?;
//! let store = PgStore::new(db.pool.clone());
//!
//! let acme = InstanceId::new("acme")?;
//! let now = tenancy_core::time::OffsetDateTime::now_utc();
//! let mut uow = store.begin().await?;
//! uow.apply_instance_change(InstanceChange::Create { id: acme.clone(), name: "ACME".into() }, now)
//!     .await?;
//! let custom = InstanceDomainKind::Custom { is_primary: true, is_generated: false };
//! let domain = InstanceDomainChange::Insert {
//!     instance_id: acme.clone(),
//!     domain: "login.acme.example".into(),
//!     kind: custom,
//! };
//! uow.apply_instance_domain_change(domain, now).await?;
//! uow.commit().await?;
//!
//! let found = store.session().await?.instance_by_host("Login.ACME.example:443").await?;
//! assert_eq!(found.id, acme);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
#![deny(missing_docs)]

pub mod apply;
pub mod batch;
mod domain;
pub mod dump;
pub mod embedded;
mod error;
pub mod generation;
pub mod hosts;
pub mod ids;
mod instance;
mod instance_domain;
mod keys;
pub mod layout;
pub mod leadership;
pub mod migrate;
mod org_domain;
mod organization;
pub mod pool;
pub mod replicas;
mod rows;
mod session;

pub use error::{is_database_unavailable, on_constraint};
pub use session::{EventPusher, PgSession, PgStore, Savepoint};
