//! The book's chapters as doc comments, so `cargo test -p tenancy-book --doc` compiles
//! and runs their Rust blocks against the workspace's crates (`mdbook test` cannot link
//! them). Blocks marked `no_run` (those that need a database) are compiled only.

/// `docs/src/library.md`.
#[cfg(doctest)]
#[doc = include_str!("src/library.md")]
pub struct Library;

/// `docs/src/hosts.md`.
#[cfg(doctest)]
#[doc = include_str!("src/hosts.md")]
pub struct Hosts;

/// `docs/src/design.md`.
#[cfg(doctest)]
#[doc = include_str!("src/design.md")]
pub struct Design;

/// The repository's `README.md`.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct Readme;
