//! # tenancy-postgres
//!
//! PostgreSQL storage for every repository port of `tenancy-core`, exactly as schema.md
//! says: embedded migrations ([`migrate`]), a unit of work over one transaction
//! ([`PgStore`], [`PgSession`]), the error mapping in one place ([`on_constraint`]), and an
//! embedded cluster launcher for machines without a configured database ([`embedded`]).
//!
//! ```no_run
//! # async fn demo() -> tenancy_core::Result<()> {
//! use tenancy_core::id::InstanceId;
//! use tenancy_core::ports::InstanceRepository;
//! let pool = tenancy_postgres::PgStore::connect("postgres://postgres@127.0.0.1/tenancy").await?;
//! tenancy_postgres::migrate::migrate(&pool).await?;
//! let store = tenancy_postgres::PgStore::new(pool);
//! let instance = store.session().await?.instance_by_host("login.acme.example").await?;
//! # let _ = instance; Ok(()) }
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
pub mod migrate;
mod org_domain;
mod organization;
pub mod pool;
pub mod replicas;
mod rows;
mod session;

pub use error::on_constraint;
pub use session::{EventPusher, PgSession, PgStore, Savepoint};
