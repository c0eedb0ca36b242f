//! Host resolution: the cache's rules with a scripted source (deterministic
//! interleavings), and invalidation across two connection pools through a real
//! PostgreSQL's LISTEN/NOTIFY.
#![allow(clippy::unwrap_used)] // integration tests: a failed unwrap is a failed test

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tenancy_core::Error;
use tenancy_core::id::{InstanceId, OrgId};
use tenancy_core::model::InstanceDomainKind;
use tenancy_postgres::PgStore;
use tenancy_postgres::hosts::{HostKey, HostResolver, HostResolverConfig, HostSource};
use tenancy_testkit::db::TestDatabase;
use tenancy_testkit::writes::RepositoryWrites as _;
use time::OffsetDateTime;
use tokio::sync::Notify;

/// A source that answers from a map, counts its calls, and can hold a call until released.
#[derive(Default)]
struct Scripted {
    answers: std::sync::Mutex<HashMap<HostKey, String>>,
    calls: AtomicUsize,
    hold: std::sync::atomic::AtomicBool,
    started: Notify,
    release: Notify,
}

#[async_trait]
impl HostSource for Scripted {
    async fn resolve(
        &self,
        keys: &[HostKey],
        _at_least: tenancy_postgres::replicas::Lsn,
    ) -> tenancy_core::Result<HashMap<HostKey, String>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        // Read before waiting: the answer is what the database said when the query ran.
        let answers = self.answers.lock().unwrap().clone();
        if self.hold.load(Ordering::SeqCst) {
            self.started.notify_one();
            self.release.notified().await;
        }
        Ok(keys
            .iter()
            .filter_map(|k| answers.get(k).map(|v| (k.clone(), v.clone())))
            .collect())
    }
}

fn host(d: &str) -> HostKey {
    HostKey::Host(d.into())
}

fn scripted(
    config: HostResolverConfig,
) -> (
    Arc<Scripted>,
    HostResolver,
    tenancy_postgres::hosts::Invalidations,
) {
    let source = Arc::new(Scripted::default());
    source
        .answers
        .lock()
        .unwrap()
        .insert(host("a.example"), "i1".into());
    let (resolver, invalidations) = HostResolver::with_source(source.clone(), config);
    invalidations.listening(true);
    (source, resolver, invalidations)
}

#[tokio::test]
async fn answers_are_cached_and_a_port_or_case_is_the_same_host() {
    let (source, resolver, _inv) = scripted(HostResolverConfig::default());
    resolver.instance_by_host("a.example").await.unwrap();
    assert_eq!(resolver.len(), 1, "stored before the answer is returned");
    for host in ["a.example", "A.Example:8443", "a.example."] {
        assert_eq!(
            resolver.instance_by_host(host).await.unwrap().as_str(),
            "i1"
        );
    }
    assert_eq!(source.calls.load(Ordering::SeqCst), 1);
    let invalid = resolver.instance_by_host("[::1]:80").await;
    assert!(
        matches!(
            invalid,
            Err(Error::InvalidArgument {
                field: "domain",
                ..
            })
        ),
        "{invalid:?}"
    );
}

#[tokio::test]
async fn a_lookup_that_started_before_an_invalidation_does_not_store_its_answer() {
    for payload in ["i1 a.example", "*"] {
        let (source, resolver, invalidations) = scripted(HostResolverConfig::default());
        source.hold.store(true, Ordering::SeqCst);
        let lookup = {
            let resolver = resolver.clone();
            tokio::spawn(async move { resolver.instance_by_host("a.example").await })
        };
        source.started.notified().await;
        // The mapping changes and its notification arrives while the query is in flight.
        source.answers.lock().unwrap().remove(&host("a.example"));
        invalidations.notify(payload);
        source.release.notify_one();
        // The answer of the query that ran before the change is returned, not kept.
        assert_eq!(lookup.await.unwrap().unwrap().as_str(), "i1");
        assert_eq!(resolver.stats().discarded, 1, "{payload}");
        source.hold.store(false, Ordering::SeqCst);
        let after = resolver.instance_by_host("a.example").await;
        assert!(
            matches!(after, Err(Error::NotFound { .. })),
            "{payload}: {after:?}"
        );
        assert_eq!(source.calls.load(Ordering::SeqCst), 2, "{payload}");
    }
}

#[tokio::test]
async fn an_invalidation_of_another_key_does_not_discard_an_answer() {
    let (source, resolver, invalidations) = scripted(HostResolverConfig::default());
    source.hold.store(true, Ordering::SeqCst);
    let lookup = {
        let resolver = resolver.clone();
        tokio::spawn(async move { resolver.instance_by_host("a.example").await })
    };
    source.started.notified().await;
    invalidations.notify("i1 other.example");
    source.release.notify_one();
    lookup.await.unwrap().unwrap();
    source.hold.store(false, Ordering::SeqCst);
    resolver.instance_by_host("a.example").await.unwrap();
    assert_eq!(source.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn nothing_is_stored_while_notifications_cannot_arrive() {
    let (source, resolver, invalidations) = scripted(HostResolverConfig::default());
    resolver.instance_by_host("a.example").await.unwrap();
    invalidations.listening(false);
    assert!(resolver.is_empty(), "a lost connection forgets everything");
    resolver.instance_by_host("a.example").await.unwrap();
    resolver.instance_by_host("a.example").await.unwrap();
    assert_eq!(source.calls.load(Ordering::SeqCst), 3);
    invalidations.listening(true);
    resolver.instance_by_host("a.example").await.unwrap();
    resolver.instance_by_host("a.example").await.unwrap();
    assert_eq!(source.calls.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn unknown_hosts_are_remembered_briefly() {
    let (source, resolver, _inv) = scripted(HostResolverConfig {
        negative_ttl: Duration::from_millis(50),
        ..HostResolverConfig::default()
    });
    for _ in 0..3 {
        let r = resolver.instance_by_host("unknown.example").await;
        assert!(matches!(r, Err(Error::NotFound { .. })), "{r:?}");
    }
    assert_eq!(source.calls.load(Ordering::SeqCst), 1);
    tokio::time::sleep(Duration::from_millis(80)).await;
    let _ = resolver.instance_by_host("unknown.example").await;
    assert_eq!(source.calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_flood_of_distinct_unknown_hosts_costs_few_queries_and_sheds_the_excess() {
    let (source, resolver, _inv) = scripted(HostResolverConfig {
        max_batch: 500,
        max_waiting: 2_000,
        workers: 2,
        ..HostResolverConfig::default()
    });
    source.hold.store(true, Ordering::SeqCst);
    let lookups: Vec<_> = (0..3_000)
        .map(|n| {
            let resolver = resolver.clone();
            tokio::spawn(async move { resolver.instance_by_host(&format!("h{n}.example")).await })
        })
        .collect();
    // Let every lookup queue up behind the held queries, then let them all through.
    source.started.notified().await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    source.hold.store(false, Ordering::SeqCst);
    source.release.notify_waiters();
    source.release.notify_one();
    let (mut unknown, mut shed) = (0, 0);
    for lookup in lookups {
        match lookup.await.unwrap() {
            Err(Error::NotFound { .. }) => unknown += 1,
            Err(Error::Unavailable(message)) if message.contains("overloaded") => shed += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(unknown + shed, 3_000);
    assert!(shed > 0, "beyond max_waiting, lookups fail at once");
    let queries = source.calls.load(Ordering::SeqCst);
    assert!(queries <= 12, "{unknown} misses took {queries} queries");
    assert_eq!(resolver.stats().shed, shed as u64);
}

// --- against PostgreSQL ---------------------------------------------------------------

const T0: OffsetDateTime = time::macros::datetime!(2026-01-01 00:00:00 UTC);

fn iid(s: &str) -> InstanceId {
    InstanceId::new(s).unwrap()
}

/// Polls until `f` holds; generous, since this checks that a notification arrives at all
/// (how fast is the benchmark's business).
async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f().await {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn second_pool(db: &TestDatabase) -> sqlx::PgPool {
    tenancy_postgres::pool::connect_with(db.options.clone(), 4)
        .await
        .unwrap()
}

/// No TTL helps here: an hour.
fn long_lived() -> HostResolverConfig {
    HostResolverConfig {
        ttl: Duration::from_secs(3600),
        negative_ttl: Duration::from_secs(3600),
        ..HostResolverConfig::default()
    }
}

#[tokio::test]
async fn a_change_through_another_pool_reaches_the_cache_by_notification() {
    let db = TestDatabase::fresh().await.unwrap();
    let writer = PgStore::new(second_pool(&db).await);
    let mut s = writer.session().await.unwrap();
    let custom = InstanceDomainKind::Custom {
        is_primary: false,
        is_generated: false,
    };
    for i in ["a", "b"] {
        s.create_instance(&iid(i), i, T0).await.unwrap();
    }
    s.insert_instance_domain(&iid("a"), "Login.ACME.example", custom, T0)
        .await
        .unwrap();
    let org = OrgId::new("o1").unwrap();
    s.create_organization(&iid("a"), &org, "Sales", T0)
        .await
        .unwrap();
    s.insert_org_domain(&iid("a"), &org, "sales.example", T0)
        .await
        .unwrap();

    let resolver = HostResolver::start(db.pool.clone(), long_lived())
        .await
        .unwrap();
    assert_eq!(
        resolver
            .instance_by_host("login.acme.example:443")
            .await
            .unwrap(),
        iid("a")
    );
    // Unverified: not an org's domain yet (a negative entry).
    assert!(
        resolver
            .org_by_domain(&iid("a"), "sales.example")
            .await
            .is_err()
    );
    // The domain moves from a to b.
    s.delete_instance_domain(
        &iid("a"),
        "login.acme.example",
        tenancy_core::model::InstanceDomainType::Custom,
    )
    .await
    .unwrap();
    eventually("the removal", || async {
        matches!(
            resolver.instance_by_host("login.acme.example").await,
            Err(Error::NotFound { .. })
        )
    })
    .await;
    s.insert_instance_domain(&iid("b"), "login.acme.example", custom, T0)
        .await
        .unwrap();
    eventually("the move", || async {
        resolver.instance_by_host("login.acme.example").await.ok() == Some(iid("b"))
    })
    .await;
    s.set_org_domain_verified(&iid("a"), &org, "sales.example", T0)
        .await
        .unwrap();
    eventually("the verification", || async {
        resolver
            .org_by_domain(&iid("a"), "Sales.example")
            .await
            .ok()
            == Some(org.clone())
    })
    .await;
    // Instance b's token never sees a's org: org lookups are per instance.
    assert!(
        resolver
            .org_by_domain(&iid("b"), "sales.example")
            .await
            .is_err()
    );
    s.remove_organization(&iid("a"), &org, T0).await.unwrap();
    eventually("the org's removal", || async {
        resolver
            .org_by_domain(&iid("a"), "sales.example")
            .await
            .is_err()
    })
    .await;
    s.remove_instance(&iid("b"), T0).await.unwrap();
    eventually("the instance's removal", || async {
        resolver
            .instance_by_host("login.acme.example")
            .await
            .is_err()
    })
    .await;
    let stats = resolver.stats();
    assert!(stats.invalidations + stats.flushes >= 5, "{stats:?}");
}

#[tokio::test]
async fn a_dropped_listening_connection_forgets_everything_and_listens_again() {
    let db = TestDatabase::fresh().await.unwrap();
    let store = PgStore::new(db.pool.clone());
    let mut s = store.session().await.unwrap();
    s.create_instance(&iid("a"), "a", T0).await.unwrap();
    let custom = InstanceDomainKind::Custom {
        is_primary: false,
        is_generated: false,
    };
    s.insert_instance_domain(&iid("a"), "a.example", custom, T0)
        .await
        .unwrap();
    let resolver = HostResolver::start(db.pool.clone(), long_lived())
        .await
        .unwrap();
    resolver.instance_by_host("a.example").await.unwrap();
    assert!(!resolver.is_empty());

    // Kill the listening connection, then change the mapping while nobody listens.
    let killed: i64 = sqlx::query_scalar(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
          WHERE datname = current_database() AND query LIKE 'LISTEN%'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(killed, 1);
    s.delete_instance_domain(
        &iid("a"),
        "a.example",
        tenancy_core::model::InstanceDomainType::Custom,
    )
    .await
    .unwrap();
    eventually("the stale entry's end", || async {
        resolver.instance_by_host("a.example").await.is_err()
    })
    .await;
    eventually("listening again", || async { resolver.is_listening() }).await;
    // Listening again: answers are cached and invalidated as before.
    s.insert_instance_domain(&iid("a"), "a.example", custom, T0)
        .await
        .unwrap();
    eventually("the new domain", || async {
        resolver.instance_by_host("a.example").await.is_ok()
    })
    .await;
    // The insert's notification may arrive after the lookup that found the domain (and
    // drop that entry once): then the next lookup caches it again. Either way, lookups
    // are served from the cache again.
    eventually("served from the cache", || async {
        let queries = resolver.stats().source_queries;
        resolver.instance_by_host("a.example").await.is_ok()
            && resolver.stats().source_queries == queries
    })
    .await;
}

#[tokio::test]
async fn a_statement_over_many_rows_flushes_and_a_rolled_back_one_says_nothing() {
    let db = TestDatabase::fresh().await.unwrap();
    sqlx::raw_sql(
        "INSERT INTO instances (id, name) VALUES ('a', 'a');
         INSERT INTO instance_domains (instance_id, domain, type, is_primary, is_generated)
         VALUES ('a', 'a.example', 'custom', false, false)",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let resolver = HostResolver::start(db.pool.clone(), long_lived())
        .await
        .unwrap();
    resolver.instance_by_host("a.example").await.unwrap();

    // Rolled back: no notification, the entry stays.
    let mut tx = db.pool.begin().await.unwrap();
    sqlx::query("DELETE FROM instance_domains WHERE domain = 'a.example'")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    // A later committed change of another host proves the channel was read past it.
    sqlx::query(
        "INSERT INTO instance_domains (instance_id, domain, type, is_primary, is_generated)
         VALUES ('a', 'b.example', 'custom', false, false)",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    eventually("the single-row notification", || async {
        resolver.stats().invalidations >= 1
    })
    .await;
    let queries = resolver.stats().source_queries;
    resolver.instance_by_host("a.example").await.unwrap();
    assert_eq!(resolver.stats().source_queries, queries, "still cached");
    assert_eq!(resolver.stats().flushes, 0);

    // 20 rows in one statement: one `*`.
    sqlx::query(
        "INSERT INTO instance_domains (instance_id, domain, type, is_primary, is_generated)
         SELECT 'a', 'bulk' || n || '.example', 'custom', false, false FROM generate_series(1, 20) n",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    eventually("the flush", || async { resolver.stats().flushes == 1 }).await;
    assert!(resolver.is_empty());
}
