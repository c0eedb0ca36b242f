//! The in-memory adapters pass the repository contract PostgreSQL passes
//! (`crates/postgres/tests/repositories.rs`).

use tenancy_core::ports::Repositories;
use tenancy_testkit::InMemoryStore;
use tenancy_testkit::contract::{Adapter, repository_contract};

struct InMemory;

#[async_trait::async_trait]
impl Adapter for InMemory {
    async fn fresh(&mut self) -> Box<dyn Repositories> {
        Box::new(InMemoryStore::new().unit_of_work())
    }
}

#[tokio::test]
async fn the_repository_contract() {
    repository_contract(&mut InMemory).await;
}
