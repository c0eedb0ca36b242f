//! The planner trap: `VACUUM ANALYZE` on a fresh database records the tables tenancy fills
//! as empty. A connection that caches a generic plan then keeps a sequential scan for as
//! long as it lives, while the tables grow. This test warms the connections of a pool made
//! the way tenancy makes its pools on analysed-empty tables, grows every table behind their
//! back to a few thousand rows, runs every path again on the same connections, and counts
//! the sequential scans PostgreSQL recorded on `zitadel.*` and `eventstore.events2`
//! (foreign-key checks inside the inserts included): there must be none.
#![allow(clippy::unwrap_used)] // integration tests: a failed unwrap is a failed test

use std::collections::BTreeMap;

use serde_json::json;
use sqlx::{Connection, PgPool};
use tenancy_core::id::InstanceId;
use tenancy_core::ports::{DomainRepository, InstanceRepository, OrganizationRepository};
use tenancy_core::query::{DomainCriteria, OrganizationCriteria, Pagination};
use tenancy_eventstore::PgEventStore;
use tenancy_postgres::PgStore;
use tenancy_projection::{Engine, EngineConfig};
use tenancy_testkit::db::TestDatabase;
use tenancy_testkit::stream::{inst, org};

/// Rows each table gets behind the warmed connections' back.
const GROWN: i64 = 4_000;

/// Sequential scans so far on the tables the engine and repositories read and write.
async fn seq_scans(db: &TestDatabase) -> BTreeMap<String, i64> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT schemaname || '.' || relname, seq_scan FROM pg_stat_user_tables
         WHERE schemaname = 'zitadel' OR (schemaname = 'eventstore' AND relname = 'events2')",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    rows.into_iter().collect()
}

/// Makes every connection of the pool publish its pending statistics (a backend reports
/// them at most once a second otherwise): all of them are held at once, so each runs it.
async fn flush_stats(pool: &PgPool, connections: u32) {
    let mut held = Vec::new();
    for _ in 0..connections {
        let mut conn = pool.acquire().await.unwrap();
        sqlx::query("SELECT pg_stat_force_next_flush()")
            .execute(&mut *conn)
            .await
            .unwrap();
        held.push(conn);
    }
}

/// A new instance with a custom domain, an organization and an org domain.
async fn new_instance(events: &PgEventStore, i: &str) {
    events
        .push(vec![
            inst(
                i,
                "instance.added",
                json!({"name": format!("Instance {i}")}),
            ),
            inst(
                i,
                "instance.domain.added",
                json!({"domain": format!("{i}.example")}),
            ),
            org(i, &format!("{i}-o"), "org.added", json!({"name": "Org"})),
            org(
                i,
                &format!("{i}-o"),
                "org.domain.added",
                json!({"domain": format!("o.{i}.example")}),
            ),
        ])
        .await
        .unwrap();
}

/// Increments of an instance already projected: the batch path.
async fn more_of(events: &PgEventStore, i: &str, round: usize) {
    let o = format!("{i}-o");
    events
        .push(vec![
            org(
                i,
                &o,
                "org.changed",
                json!({"name": format!("Org r{round}")}),
            ),
            org(
                i,
                &o,
                "org.domain.added",
                json!({"domain": format!("r{round}.{i}.example")}),
            ),
            org(
                i,
                &o,
                "org.domain.verified",
                json!({"domain": format!("r{round}.{i}.example")}),
            ),
            inst(
                i,
                "instance.domain.added",
                json!({"domain": format!("r{round}.{i}.example")}),
            ),
        ])
        .await
        .unwrap();
}

/// Every path once: push and bulk catch-up of a new instance, push and batches for an
/// existing one, host lookup and tenant-scoped lists through the repositories.
async fn every_path(pool: &PgPool, engine: &Engine, fresh: &str, existing: &str, round: usize) {
    let events = PgEventStore::new(pool.clone());
    new_instance(&events, fresh).await;
    more_of(&events, existing, round).await;
    let outcome = engine.run_until_caught_up(|_, _, _| {}).await.unwrap();
    assert_eq!(outcome.failed, 0, "{outcome:?}");
    let store = PgStore::new(pool.clone());
    let mut session = store.session().await.unwrap();
    let found = session
        .instance_by_host(&format!("{existing}.example"))
        .await
        .unwrap();
    assert_eq!(found.id.as_str(), existing);
    let instance = InstanceId::new(existing).unwrap();
    let orgs = session
        .list_organizations(
            &OrganizationCriteria {
                instance_id: Some(instance.clone()),
                ..OrganizationCriteria::default()
            },
            &Pagination::default(),
        )
        .await
        .unwrap();
    assert_eq!(orgs.len(), 1);
    let domains = session
        .list_domains(
            &DomainCriteria::of_instance(&instance),
            &Pagination::default(),
        )
        .await
        .unwrap();
    assert!(!domains.is_empty());
}

/// Grows every table to a few thousand rows from another connection: rows of other
/// instances in the five tables, and events of an aggregate the projection does not read.
async fn grow(db: &TestDatabase) {
    let mut conn = db.pool.acquire().await.unwrap().detach();
    sqlx::raw_sql(
        "INSERT INTO instances (id, name) SELECT 'g' || n, 'G' || n FROM generate_series(1, 4000) n;
         INSERT INTO organizations (instance_id, id, name) SELECT 'g' || n, 'o', 'O' FROM generate_series(1, 4000) n;
         INSERT INTO instance_domains (instance_id, domain, type, is_primary, is_generated)
             SELECT 'g' || n, 'g' || n || '.grown.example', 'custom', false, false FROM generate_series(1, 4000) n;
         INSERT INTO org_domains (instance_id, org_id, domain)
             SELECT 'g' || n, 'o', 'o.g' || n || '.grown.example' FROM generate_series(1, 4000) n;
         INSERT INTO domains (instance_id, org_id, domain)
             SELECT 'g' || n, CASE WHEN n % 2 = 0 THEN 'o' END, 'd.g' || n || '.grown.example'
             FROM generate_series(1, 4000) n;
         INSERT INTO eventstore.events2 (instance_id, aggregate_type, aggregate_id, event_type, \"sequence\", revision,
                 created_at, payload, creator, \"owner\", \"position\", in_tx_order)
             SELECT 'g' || (n % 400), 'user', 'u' || n, 'user.added', 1, 1, now(), '{}', 'grow', 'grow', n, 1
             FROM generate_series(1, 20000) n;",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    // Its own scans (the count, the checks of the inserts) are published before the
    // baseline is read.
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM organizations")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(count >= GROWN);
    sqlx::query("SELECT pg_stat_force_next_flush()")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
}

#[tokio::test]
async fn no_sequential_scan_once_tables_grew_after_vacuum_analyze_of_empty_tables() {
    let db = TestDatabase::fresh().await.unwrap();
    sqlx::raw_sql("VACUUM ANALYZE")
        .execute(&db.pool)
        .await
        .unwrap();
    // Two connections, so that the sessions planning on empty tables are the very ones
    // used after the growth.
    let connections = 2;
    let pool = tenancy_postgres::pool::connect_with(db.options.clone(), connections)
        .await
        .unwrap();
    let engine = Engine::new(
        pool.clone(),
        EngineConfig {
            workers: 1,
            ..EngineConfig::default()
        },
    );
    // PostgreSQL switches a prepared statement to a generic plan after five executions:
    // every path runs more often than that on the small tables.
    let events = PgEventStore::new(pool.clone());
    new_instance(&events, "w0").await;
    for round in 1..=12 {
        every_path(&pool, &engine, &format!("w{round}"), "w0", round).await;
    }

    grow(&db).await;
    flush_stats(&pool, connections).await;
    let before = seq_scans(&db).await;

    for round in 13..=18 {
        every_path(&pool, &engine, &format!("w{round}"), "w0", round).await;
    }
    flush_stats(&pool, connections).await;
    let after = seq_scans(&db).await;
    let grew: Vec<String> = after
        .iter()
        .filter(|(table, n)| before.get(*table).is_some_and(|b| *n > b))
        .map(|(table, n)| format!("{table}: {} sequential scans", n - before[table]))
        .collect();
    assert!(
        grew.is_empty(),
        "sequential scans on grown tables, from plans made while they were empty:\n{}",
        grew.join("\n")
    );
    pool.close().await;
}
