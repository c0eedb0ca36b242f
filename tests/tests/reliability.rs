//! Reliability at small scale (CI) and large scale (`TENANCY_SOAK_SCALE`, set by
//! `cargo xtask bench --soak`).
#![allow(clippy::unwrap_used)] // integration tests: a failed unwrap is a failed test

use std::collections::BTreeSet;
use std::time::Duration;

use proptest::prelude::*;
use serde_json::json;
use tenancy_core::Error;
use tenancy_core::id::{InstanceId, OrgId};
use tenancy_core::model::InstanceDomainKind;
use tenancy_core::ports::{
    DomainRepository, InstanceRepository, OrgDomainRepository, OrganizationRepository,
};
use tenancy_core::query::{DomainCriteria, OrganizationCriteria, Pagination, TextMatch};
use tenancy_core::state::OrganizationUpdate;
use tenancy_eventstore::PgEventStore;
use tenancy_postgres::PgStore;
use tenancy_projection::{Engine, EngineConfig};
use tenancy_testkit::db::TestDatabase;
use tenancy_testkit::stream::{Rng, churn, event, inst};
use tenancy_testkit::verify::assert_verified;
use tenancy_testkit::writes::RepositoryWrites as _;

fn scale() -> usize {
    std::env::var("TENANCY_SOAK_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
        .max(1)
}

/// 8 writers push to random aggregates, each push committed after a random delay so that
/// commits land out of position order, while the engine runs continuously.
#[tokio::test]
async fn concurrent_out_of_order_writers_lose_nothing() {
    let db = TestDatabase::fresh().await.unwrap();
    let store = PgEventStore::new(db.pool.clone());
    for i in 0..4 {
        let id = format!("w{i}");
        store
            .push(vec![inst(&id, "instance.added", json!({"name": id}))])
            .await
            .unwrap();
    }
    let engine = Engine::new(
        db.pool.clone(),
        EngineConfig {
            batch_size: 20,
            ..EngineConfig::default()
        },
    );
    let running = engine.spawn_continuous();
    let per_writer = 25 * scale();
    let mut writers = Vec::new();
    for w in 0..8u64 {
        let pool = db.pool.clone();
        writers.push(tokio::spawn(async move {
            let mut rng = Rng(w + 1);
            for n in 0..per_writer {
                let instance = format!("w{}", rng.next(4));
                let org = format!("{instance}-writer{w}-org{n}");
                let mut tx = pool.begin().await.unwrap();
                tenancy_eventstore::push_on(
                    &mut tx,
                    vec![
                        event(&instance, "org", &org, "org.added", json!({"name": org})),
                        event(
                            &instance,
                            "org",
                            &org,
                            "org.domain.added",
                            json!({"domain": format!("{org}.example")}),
                        ),
                    ],
                )
                .await
                .unwrap();
                // Hold the commit: pushes that took their position later commit earlier.
                tokio::time::sleep(Duration::from_millis(rng.next(15))).await;
                tx.commit().await.unwrap();
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    engine.run_until_caught_up(|_, _, _| {}).await.unwrap();
    running.stop().await.unwrap();
    let orgs: i64 = sqlx::query_scalar("SELECT count(*) FROM organizations")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    let domains: i64 = sqlx::query_scalar("SELECT count(*) FROM org_domains")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(
        (orgs as usize, domains as usize),
        (8 * per_writer, 8 * per_writer),
        "0 events lost"
    );
    assert!(engine.failed().await.unwrap().is_empty());
    assert_verified(&engine).await;
}

/// A stream with 1% malformed events: exactly those are listed, everything else applied.
#[tokio::test]
async fn one_percent_malformed_events_are_exactly_the_failures() {
    let db = TestDatabase::fresh().await.unwrap();
    let store = PgEventStore::new(db.pool.clone());
    let mut rng = Rng(77);
    let mut expected = BTreeSet::new();
    let mut total = 0;
    for mut push in churn(5, 300 * scale(), 13) {
        for e in &mut push {
            // Only events whose loss cannot break later ones: renames.
            if e.event_type == "org.changed" && rng.next(100) < 10 {
                e.payload = Some(json!({"name": 42}));
                expected.insert(e.aggregate_id.clone());
            }
        }
        total += push.len();
        let stored = store.push(push).await.unwrap();
        assert!(!stored.is_empty());
    }
    assert!(
        !expected.is_empty(),
        "the stream has malformed events ({total} events)"
    );
    let engine = Engine::new(
        db.pool.clone(),
        EngineConfig {
            max_failure_count: 2,
            ..EngineConfig::default()
        },
    );
    engine.run_until_caught_up(|_, _, _| {}).await.unwrap();
    let failed = engine.failed().await.unwrap();
    let malformed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM eventstore.events2 WHERE jsonb_typeof(payload -> 'name') = 'number'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        failed.len() as i64,
        malformed,
        "exactly the malformed events are listed"
    );
    assert!(
        failed.iter().all(|f| f.error.contains("name")),
        "{failed:?}"
    );
    assert_verified(&engine).await;
}

/// Over randomised data, no repository call with instance A's id reads or changes B's rows.
#[tokio::test]
async fn tenant_isolation_over_random_data() {
    let db = TestDatabase::fresh().await.unwrap();
    let store = PgStore::new(db.pool.clone());
    let mut s = store.session().await.unwrap();
    let t0 = time::OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000);
    let (a, b) = (InstanceId::new("a").unwrap(), InstanceId::new("b").unwrap());
    let mut rng = Rng(5);
    for inst in [&a, &b] {
        s.create_instance(inst, inst.as_str(), t0).await.unwrap();
        s.insert_instance_domain(
            inst,
            &format!("{inst}.example"),
            InstanceDomainKind::Custom {
                is_primary: false,
                is_generated: false,
            },
            t0,
        )
        .await
        .unwrap();
        for o in 0..(5 * scale()) {
            let org = OrgId::new(format!("o{o}")).unwrap();
            s.create_organization(inst, &org, &format!("Org {o}"), t0)
                .await
                .unwrap();
            for d in 0..3 {
                let domain = format!("d{d}.o{o}.shared.example");
                s.insert_org_domain(inst, &org, &domain, t0).await.unwrap();
                s.add_organization_domain(inst, &org, &domain, None, t0)
                    .await
                    .unwrap();
            }
        }
    }
    let snapshot = |rows: tenancy_postgres::dump::TableRows| {
        format!(
            "{:?}{:?}{:?}{:?}{:?}",
            rows.instances
                .iter()
                .filter(|r| r.id == b)
                .collect::<Vec<_>>(),
            rows.organizations
                .iter()
                .filter(|r| r.instance_id == b)
                .collect::<Vec<_>>(),
            rows.instance_domains
                .iter()
                .filter(|r| r.instance_id == b)
                .collect::<Vec<_>>(),
            rows.org_domains
                .iter()
                .filter(|r| r.instance_id == b)
                .collect::<Vec<_>>(),
            rows.domains
                .iter()
                .filter(|r| r.instance_id == b)
                .collect::<Vec<_>>(),
        )
    };
    let before = snapshot(tenancy_postgres::dump::all_rows(&db.pool).await.unwrap());
    let later = t0 + time::Duration::days(1);
    for _ in 0..(200 * scale()) {
        let org = OrgId::new(format!("o{}", rng.next(5))).unwrap();
        let domain = format!("d{}.{org}.shared.example", rng.next(3));
        // Writes through A with ids and domains that also exist in B.
        let _ = match rng.next(7) {
            0 => {
                s.update_organization(
                    &a,
                    &org,
                    &OrganizationUpdate {
                        name: Some(format!("A {}", rng.next(1000))),
                        state: None,
                    },
                    later,
                )
                .await
            }
            1 => s.set_org_domain_verified(&a, &org, &domain, later).await,
            2 => s.set_primary_org_domain(&a, &org, &domain, later).await,
            3 => {
                s.set_organization_domain_verified(&a, &org, &domain, later)
                    .await
            }
            4 => s.remove_organization_domain(&a, &org, &domain, later).await,
            5 => s.delete_org_domain(&a, &org, &domain).await,
            _ => s.remove_organization(&a, &org, later).await,
        };
        // Reads through A never return B's rows.
        let listed = s
            .list_domains(
                &DomainCriteria::of_instance(&a).domain(TextMatch::contains("shared")),
                &Pagination::default(),
            )
            .await
            .unwrap();
        assert!(listed.iter().all(|d| d.instance_id == a));
        let orgs = s
            .list_organizations(
                &OrganizationCriteria {
                    instance_id: Some(a.clone()),
                    include_deleted: true,
                    ..Default::default()
                },
                &Pagination::default(),
            )
            .await
            .unwrap();
        assert!(orgs.iter().all(|o| o.instance_id == a));
        assert!(
            s.list_org_domains(&a, &org)
                .await
                .unwrap()
                .iter()
                .all(|d| d.instance_id == a)
        );
    }
    assert!(matches!(s.instance_by_host("b.example").await, Ok(i) if i.id == b));
    assert!(matches!(
        s.list_domains(&DomainCriteria::default(), &Pagination::default())
            .await,
        Err(Error::MissingTenant(_))
    ));
    let after = snapshot(tenancy_postgres::dump::all_rows(&db.pool).await.unwrap());
    assert_eq!(before, after, "instance B is untouched");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Arbitrary JSON for any catalogue event type: an error or an event, never a panic;
    /// and whatever decodes re-encodes to a payload that decodes to the same event.
    #[test]
    fn payload_decoding_is_total(index in 0..tenancy_core::event::EVENT_TYPES.len(), text in "\\PC{0,80}", n in any::<i64>(), b in any::<bool>()) {
        use tenancy_core::event::{EVENT_TYPES, LegacyEvent};
        let event_type = EVENT_TYPES[index];
        for payload in [
            serde_json::from_str::<serde_json::Value>(&text).ok(),
            Some(json!({"name": text, "domain": text, "validationType": n, "generated": b, "orgId": text, "language": text,
                        "iamProjectId": text, "clientId": text, "appId": text})),
            Some(json!({"domain": n})),
            None,
        ] {
            if let Ok(event) = LegacyEvent::decode(event_type, payload.as_ref()) {
                prop_assert_eq!(LegacyEvent::decode(event_type, Some(&event.encode())).ok(), Some(event));
            }
        }
    }
}
