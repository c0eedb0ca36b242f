//! Regression tests of the security review of 2026-12 (`shared/reports/
//! security-review-2026-12.md`), one module per class of finding, each naming the
//! findings it covers. They drive the real `tenancy` binary on loopback, with clients
//! this project did not write (curl, Python's http.client and h2 where installed, raw
//! sockets) where the finding is about the wire.
#![allow(clippy::unwrap_used)] // integration tests: a failed unwrap is a failed test

#[path = "../common/mod.rs"]
mod common;
mod support;

mod config;
mod connect;
mod egress;
mod errors;
mod folding;
mod host;
mod ids;
mod migrate;
mod text;
mod timeouts;
mod verification;
