//! Reads on a real streaming replica (a hot standby of a private primary, started from the
//! local server binaries): which pool serves, read-your-writes with a consistency token,
//! no stale answer stored by the host cache while the replica is held behind, a replica
//! that stops and returns, and one that is promoted.
#![allow(clippy::unwrap_used)] // integration tests: a failed unwrap is a failed test

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tenancy_core::Error;
use tenancy_core::id::InstanceId;
use tenancy_core::model::{InstanceDomainKind, InstanceDomainType};
use tenancy_core::ports::UnitOfWorkFactory;
use tenancy_postgres::PgStore;
use tenancy_postgres::hosts::{HostResolver, HostResolverConfig};
use tenancy_postgres::replicas::{ReadPools, ReplicaConfig};
use tenancy_testkit::replica::Replicated;
use tenancy_testkit::writes::RepositoryWrites as _;
use time::OffsetDateTime;

const T0: OffsetDateTime = time::macros::datetime!(2026-01-01 00:00:00 UTC);
const CUSTOM: InstanceDomainKind = InstanceDomainKind::Custom {
    is_primary: false,
    is_generated: false,
};

fn iid(s: &str) -> InstanceId {
    InstanceId::new(s).unwrap()
}

fn fast_checks() -> ReplicaConfig {
    ReplicaConfig {
        check_interval: Duration::from_millis(100),
        acquire_timeout: Duration::from_millis(500),
        ..ReplicaConfig::default()
    }
}

async fn read_pools(cluster: &Replicated) -> ReadPools {
    ReadPools::connect(
        cluster.pool.clone(),
        &[cluster.replica_url()],
        fast_checks(),
    )
    .await
    .unwrap()
}

/// (primary reads, replica reads)
fn reads(pools: &ReadPools) -> (u64, u64) {
    let stats = pools.stats();
    (stats[0].reads, stats[1].reads)
}

async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(15);
    while !f().await {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within 15 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn reads_go_to_the_replica_and_a_token_reads_the_write_even_when_it_is_behind() {
    let cluster = Replicated::start("").await.unwrap();
    let pools = read_pools(&cluster).await;
    let store = PgStore::new(cluster.pool.clone()).with_read_pools(pools.clone());
    assert!(pools.stats()[1].healthy, "{:?}", pools.stats());

    // Without a token, reads are the replica's; a write through them is refused.
    for _ in 0..5 {
        let mut uow = store.begin_read(None).await.unwrap();
        assert!(matches!(
            uow.get_instance(&iid("nobody")).await,
            Err(Error::NotFound { .. })
        ));
    }
    assert_eq!(reads(&pools), (0, 5));
    let mut uow = store.begin_read(None).await.unwrap();
    assert!(uow.create_instance(&iid("w"), "W", T0).await.is_err());
    drop(uow);

    // Held behind: the replica does not show the write, a read with its token does.
    cluster.pause_replay().await.unwrap();
    let mut uow = store.begin().await.unwrap();
    uow.create_instance(&iid("acme"), "ACME", T0).await.unwrap();
    uow.commit().await.unwrap();
    let token = store.consistency_token().await.unwrap().unwrap();
    let stale = store
        .begin_read(None)
        .await
        .unwrap()
        .get_instance(&iid("acme"))
        .await;
    assert!(matches!(stale, Err(Error::NotFound { .. })), "{stale:?}");
    let before = reads(&pools);
    let fresh = store
        .begin_read(Some(token.clone()))
        .await
        .unwrap()
        .get_instance(&iid("acme"))
        .await;
    assert_eq!(fresh.unwrap().name, "ACME");
    assert_eq!(
        reads(&pools).0,
        before.0 + 1,
        "the primary served the read with the token"
    );

    // Caught up, the replica serves the token's reads again.
    cluster.resume_replay().await.unwrap();
    cluster.caught_up().await.unwrap();
    pools.check().await;
    let before = reads(&pools);
    let fresh = store
        .begin_read(Some(token))
        .await
        .unwrap()
        .get_instance(&iid("acme"))
        .await;
    assert_eq!(fresh.unwrap().name, "ACME");
    assert_eq!(reads(&pools), (before.0, before.1 + 1));
    // A malformed token is the caller's error, not a silent read anywhere.
    let wrong = store
        .begin_read(Some(tenancy_core::ports::ConsistencyToken(
            "yesterday".into(),
        )))
        .await;
    assert!(matches!(wrong, Err(Error::InvalidArgument { .. })));
}

#[tokio::test]
async fn the_host_cache_stores_no_stale_answer_of_a_replica_held_behind() {
    let cluster = Replicated::start("").await.unwrap();
    let writer = PgStore::new(cluster.pool.clone());
    let mut s = writer.session().await.unwrap();
    for i in ["a", "b"] {
        s.create_instance(&iid(i), i, T0).await.unwrap();
    }
    s.insert_instance_domain(&iid("a"), "login.acme.example", CUSTOM, T0)
        .await
        .unwrap();
    cluster.caught_up().await.unwrap();
    let pools = read_pools(&cluster).await;
    let config = HostResolverConfig {
        ttl: Duration::from_secs(3600),
        negative_ttl: Duration::from_secs(3600),
        ..HostResolverConfig::default()
    };
    let resolver = HostResolver::start_with_read_pools(pools.clone(), config)
        .await
        .unwrap();
    assert_eq!(
        resolver
            .instance_by_host("login.acme.example")
            .await
            .unwrap(),
        iid("a")
    );
    assert_eq!(reads(&pools), (0, 1), "the miss was the replica's");

    // The replica is held; the domain moves from a to b on the primary.
    cluster.pause_replay().await.unwrap();
    let invalidations = resolver.stats().invalidations;
    s.delete_instance_domain(&iid("a"), "login.acme.example", InstanceDomainType::Custom)
        .await
        .unwrap();
    s.insert_instance_domain(&iid("b"), "login.acme.example", CUSTOM, T0)
        .await
        .unwrap();
    eventually("both notifications", || async {
        resolver.stats().invalidations >= invalidations + 2
    })
    .await;
    // The replica still says a …
    let replica = sqlx::PgPool::connect(&cluster.replica_url()).await.unwrap();
    let on_replica: String = sqlx::query_scalar(
        "SELECT instance_id FROM zitadel.instance_domains WHERE domain = 'login.acme.example'",
    )
    .fetch_one(&replica)
    .await
    .unwrap();
    assert_eq!(on_replica, "a");
    // … but the cache answers b, and keeps b (a hit, no further query).
    assert_eq!(
        resolver
            .instance_by_host("login.acme.example")
            .await
            .unwrap(),
        iid("b")
    );
    let queries = resolver.stats().source_queries;
    assert_eq!(
        resolver
            .instance_by_host("login.acme.example")
            .await
            .unwrap(),
        iid("b")
    );
    assert_eq!(resolver.stats().source_queries, queries, "b was stored");
    // A key no invalidation touched is still the replica's to answer.
    let before = reads(&pools);
    assert!(resolver.instance_by_host("unknown.example").await.is_err());
    assert_eq!(reads(&pools), (before.0, before.1 + 1));

    cluster.resume_replay().await.unwrap();
    cluster.caught_up().await.unwrap();
    pools.check().await;
    // Once the replica has replayed what a key's invalidation noted, its misses are the
    // replica's again.
    let invalidations = resolver.stats().invalidations;
    s.insert_instance_domain(&iid("a"), "other.acme.example", CUSTOM, T0)
        .await
        .unwrap();
    eventually("the notification", || async {
        resolver.stats().invalidations > invalidations
    })
    .await;
    cluster.caught_up().await.unwrap();
    pools.check().await;
    let before = reads(&pools);
    assert_eq!(
        resolver
            .instance_by_host("other.acme.example")
            .await
            .unwrap(),
        iid("a")
    );
    assert_eq!(reads(&pools), (before.0, before.1 + 1));
}

#[tokio::test]
async fn a_replica_that_stops_returns_and_is_promoted_costs_no_failed_read() {
    let cluster = Replicated::start("").await.unwrap();
    let pools = read_pools(&cluster).await;
    let store = Arc::new(PgStore::new(cluster.pool.clone()).with_read_pools(pools.clone()));
    let resolver = HostResolver::start_with_read_pools(
        pools.clone(),
        HostResolverConfig {
            negative_ttl: Duration::from_millis(1),
            ..HostResolverConfig::default()
        },
    )
    .await
    .unwrap();

    // A steady load of reads and host misses; every error counted.
    let failed = Arc::new(AtomicU64::new(0));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (store, resolver, failed, done) = (
            store.clone(),
            resolver.clone(),
            failed.clone(),
            done.clone(),
        );
        tokio::spawn(async move {
            let mut n = 0u64;
            while !done.load(Ordering::Relaxed) {
                n += 1;
                let read = async {
                    let mut uow = store.begin_read(None).await?;
                    uow.get_instance(&iid("nobody")).await.map(drop)
                };
                match read.await {
                    Err(Error::NotFound { .. }) => {}
                    other => {
                        eprintln!("read {n}: {other:?}");
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                match resolver.instance_by_host(&format!("h{n}.example")).await {
                    Err(Error::NotFound { .. }) => {}
                    other => {
                        eprintln!("lookup {n}: {other:?}");
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };

    let replica_reads = || pools.stats()[1].reads;
    let grows = |what: &'static str| {
        let pools = pools.clone();
        async move {
            let start = pools.stats()[1].reads;
            eventually(what, || {
                let pools = pools.clone();
                async move { pools.stats()[1].reads > start + 10 }
            })
            .await;
        }
    };
    grows("reads on the replica").await;

    cluster.replica.stop().unwrap();
    eventually("the replica out of the rotation", || async {
        !pools.stats()[1].healthy
    })
    .await;
    let stopped_at = replica_reads();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        replica_reads(),
        stopped_at,
        "no read was sent to the stopped replica"
    );

    cluster.replica.start_again().unwrap();
    grows("reads on the returned replica").await;

    cluster.replica.promote().unwrap();
    eventually("the promoted replica out of the rotation", || async {
        let stats = pools.stats();
        !stats[1].healthy
            && stats[1]
                .reason
                .as_deref()
                .is_some_and(|r| r.contains("promoted"))
    })
    .await;
    done.store(true, Ordering::Relaxed);
    load.await.unwrap();
    // A read that had begun on the replica when it stopped may fail once; no more.
    assert!(
        failed.load(Ordering::Relaxed) <= 1,
        "{} reads failed",
        failed.load(Ordering::Relaxed)
    );
}

#[tokio::test]
async fn a_replica_further_behind_than_max_lag_serves_nothing_until_it_catches_up() {
    let cluster = Replicated::start("").await.unwrap();
    let pools = ReadPools::connect(
        cluster.pool.clone(),
        &[cluster.replica_url()],
        ReplicaConfig {
            max_lag: Duration::from_millis(300),
            ..fast_checks()
        },
    )
    .await
    .unwrap();
    let store = PgStore::new(cluster.pool.clone()).with_read_pools(pools.clone());
    assert!(pools.stats()[1].healthy);
    cluster.pause_replay().await.unwrap();
    // The primary moves on; the replica does not.
    let writer = PgStore::new(cluster.pool.clone());
    let mut s = writer.session().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    for n in 0.. {
        s.create_instance(&iid(&format!("lag{n}")), "lag", T0)
            .await
            .unwrap();
        let stats = pools.stats();
        if !stats[1].healthy {
            let reason = stats[1].reason.clone().unwrap_or_default();
            assert!(reason.contains("behind"), "{reason}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the lagging replica stayed in the rotation"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(pools.stats()[1].lag >= Duration::from_millis(300));
    let before = reads(&pools);
    store.begin_read(None).await.unwrap();
    assert_eq!(
        reads(&pools),
        (before.0 + 1, before.1),
        "the primary served"
    );
    cluster.resume_replay().await.unwrap();
    eventually("the replica back", || async { pools.stats()[1].healthy }).await;
    let before = reads(&pools);
    store.begin_read(None).await.unwrap();
    assert_eq!(
        reads(&pools),
        (before.0, before.1 + 1),
        "the replica served"
    );
}
