//! The host cache stays equal to the tables while the projection writes them (bulk fill
//! and batches): every change the projection commits reaches the cache by notification.
#![allow(clippy::unwrap_used)] // integration tests: a failed unwrap is a failed test

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use tenancy_core::ports::InstanceRepository;
use tenancy_eventstore::PgEventStore;
use tenancy_postgres::PgStore;
use tenancy_postgres::hosts::{HostResolver, HostResolverConfig};
use tenancy_projection::{Engine, EngineConfig};
use tenancy_testkit::db::TestDatabase;
use tenancy_testkit::stream::{Shape, churn_shaped};

#[tokio::test]
async fn the_cache_follows_the_projection_through_churn() {
    let db = TestDatabase::fresh().await.unwrap();
    let events = PgEventStore::new(db.pool.clone());
    let store = PgStore::new(db.pool.clone());
    let engine = Engine::new(
        db.pool.clone(),
        EngineConfig {
            batch_size: 7,
            ..EngineConfig::default()
        },
    );
    // Only notifications can make the cache forget within this test.
    let resolver = HostResolver::start(
        db.pool.clone(),
        HostResolverConfig {
            ttl: Duration::from_secs(3600),
            negative_ttl: Duration::from_secs(3600),
            ..HostResolverConfig::default()
        },
    )
    .await
    .unwrap();
    let rounds = churn_shaped(
        Shape {
            instances: 3,
            orgs: 2,
            moves: true,
        },
        12,
        7,
    );
    let mut hosts = BTreeSet::new();
    for round in rounds.chunks(3) {
        for push in round {
            for event in push {
                if let Some(domain) = event.payload.as_ref().and_then(|p| p["domain"].as_str()) {
                    hosts.insert(domain.to_ascii_lowercase());
                }
            }
            events.push(push.clone()).await.unwrap();
        }
        engine.run_until_caught_up(|_, _, _| {}).await.unwrap();
        // Ask the cache first (so that it holds answers the next round must invalidate),
        // then wait until it agrees with an uncached read for every host.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut differences = Vec::new();
            let mut uncached = store.session().await.unwrap();
            for host in &hosts {
                let cached = resolver.instance_by_host(host).await.ok();
                let table = uncached.instance_by_host(host).await.ok().map(|i| i.id);
                if cached != table {
                    differences.push(format!("{host}: cache {cached:?}, tables {table:?}"));
                }
            }
            if differences.is_empty() {
                break;
            }
            assert!(Instant::now() < deadline, "{}", differences.join("\n"));
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let stats = resolver.stats();
    assert!(
        stats.hits > 0 && stats.invalidations + stats.flushes > 0,
        "{stats:?}"
    );
}
