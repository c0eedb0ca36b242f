//! Workspace end-to-end and reliability tests live in `tests/`; this crate has no code.
//! The scale of the reliability tests grows with `TENANCY_SOAK_SCALE` (default 1), which
//! `cargo xtask bench --soak` sets.
