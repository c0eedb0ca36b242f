//! Host lookups straight from the repositories, without a cache: for the in-memory
//! adapters and for tests. It lives in `tenancy-core` (no need to build the API for it);
//! re-exported here. Production uses `tenancy_postgres::hosts::HostResolver`.

pub use tenancy_core::hosts::RepositoryHosts;
