//! # tenancy-api
//!
//! The service API of tenancy: `tenancy.instance.v2.InstanceService` and
//! `tenancy.org.v2.OrganizationService` (protos in the crate's `proto/`, shaped
//! like ZITADEL's v2 APIs), served as gRPC with reflection and as Connect JSON over HTTP
//! from one implementation ([`Api`]) over the core's commands and repositories.
//! `tenancy start` mounts [`router`] beside `/healthz` and `/metrics`.
//!
//! The API over the in-memory adapters, asked over Connect JSON which instance a login
//! host belongs to (a login service's first call):
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use tenancy_api::auth::{ApiTokens, TokenEntry, token_digest};
//! use tenancy_api::{Api, DEFAULT_MAX_REQUEST_BYTES, router};
//! use tenancy_core::challenge::{ChallengeSettings, OsTokens};
//! use tenancy_core::command::{run, AddInstance, AddInstanceDomain};
//! use tenancy_core::page_token::PageTokens;
//! use tenancy_testkit::{fixtures, InMemoryStore};
//! use tower::ServiceExt as _;
//!
//! let store = InMemoryStore::new();
//! let ctx = fixtures::context();
//! let acme = run(&store, &ctx, &AddInstance { name: "ACME".into() }).await?;
//! let domain = AddInstanceDomain { instance_id: acme.clone(), domain: "login.acme.example".into(), generated: false };
//! run(&store, &ctx, &domain).await?;
//!
//! let api = Api {
//!     factory: Arc::new(store.clone()),
//!     events: Arc::new(store.event_reader()),
//!     hosts: Arc::new(store.host_lookup()),
//!     checker: Arc::new(tenancy_core::mocks::MockDomainChallenge::new()),
//!     challenge: ChallengeSettings::default(),
//!     clock: ctx.clock.clone(),
//!     ids: ctx.ids.clone(),
//!     tokens: Arc::new(OsTokens),
//!     page_tokens: PageTokens::new(vec![7; 32])?,
//! };
//! // A system token named `login`; only its SHA-256 is configured.
//! let tokens = ApiTokens::new(&[TokenEntry { name: "login".into(), sha256: token_digest("secret"), instance_id: None }])?;
//! let app = router(api, tokens, DEFAULT_MAX_REQUEST_BYTES)?;
//!
//! let request = axum::http::Request::post("/tenancy.instance.v2.InstanceService/ResolveHost")
//!     .header("host", "tenancy.internal:8080")
//!     .header("authorization", "Bearer secret")
//!     .header("content-type", "application/json")
//!     .body(axum::body::Body::from(r#"{"host": "Login.ACME.example:443"}"#))?;
//! let response = app.oneshot(request).await?;
//! let status = response.status();
//! let body = axum::body::to_bytes(response.into_body(), 4096).await?;
//! assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
//! let answer: serde_json::Value = serde_json::from_slice(&body)?;
//! assert_eq!(answer["instanceId"], acme.as_str());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
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
