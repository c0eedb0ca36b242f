//! # tenancy-api
//!
//! The service API of tenancy: `tenancy.instance.v2.InstanceService` and
//! `tenancy.org.v2.OrganizationService` (protos in `proto/` at the workspace root, shaped
//! like ZITADEL's v2 APIs), served as gRPC with reflection and as Connect JSON over HTTP
//! from one implementation ([`Api`]) over the core's commands and repositories.
//! `tenancy start` mounts [`router`] beside `/healthz` and `/metrics`.
#![deny(missing_docs)]

pub mod auth;
mod codec;
mod convert;
pub mod error;
pub mod hosts;
mod instance;
pub mod listen;
pub mod metrics;
mod org;
pub mod paging;
pub mod pb;
mod protocol;
mod server;
mod service;
pub mod text;

pub use listen::{ServeConfig, serve};
pub use server::{DEFAULT_MAX_REQUEST_BYTES, connect_error, listener, router, router_with_metrics};
pub use service::{Api, Stamped};
