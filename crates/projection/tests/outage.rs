//! Recovery after an outage: instances projected, then events arriving while no engine ran,
//! custom domains moving between the instances all along. The instances that share moved
//! domains are caught up together in the store's order (`ordered.rs`): what they leave
//! equals a prefill of the same store, a rejected add is the store's own failure, and a
//! member held by another process is waited for, not overtaken.
#![allow(clippy::unwrap_used)] // integration tests: a failed unwrap is a failed test

use std::time::Duration;

use serde_json::json;
use sqlx::PgPool;
use tenancy_core::event::NewEvent;
use tenancy_core::table::TableRows;
use tenancy_eventstore::PgEventStore;
use tenancy_eventstore::import::{ImportRow, import_rows};
use tenancy_postgres::dump::all_rows;
use tenancy_projection::{Engine, EngineConfig, relational};
use tenancy_testkit::db::TestDatabase;
use tenancy_testkit::stream::{Shape, churn_shaped, inst};
use tenancy_testkit::verify::assert_verified;

fn config() -> EngineConfig {
    EngineConfig {
        batch_size: 50,
        max_failure_count: 3,
        workers: 4,
        ..EngineConfig::default()
    }
}

/// The stream before the outage and during it. `early` and `late` exist before; during
/// the outage `early` gives `moved.example` up and `late` takes it (so they are projected
/// together), and `late` adds `held.example`, which `early` holds all along: the store
/// accepted that add (a legacy writer's race), the fold rejects it.
fn stream(instances: usize, rounds: usize) -> (Vec<Vec<NewEvent>>, Vec<Vec<NewEvent>>) {
    let mut pushes = churn_shaped(
        Shape {
            instances,
            orgs: 3,
            moves: true,
        },
        rounds,
        19,
    );
    let during = pushes.split_off(pushes.len() / 4);
    let mut before = pushes;
    before.push(vec![
        inst("early", "instance.added", json!({"name": "E"})),
        inst(
            "early",
            "instance.domain.added",
            json!({"domain": "held.example"}),
        ),
        inst(
            "early",
            "instance.domain.added",
            json!({"domain": "moved.example"}),
        ),
        inst("late", "instance.added", json!({"name": "L"})),
    ]);
    let mut during = during;
    let middle = during.len() / 2;
    during.insert(
        middle,
        vec![inst(
            "early",
            "instance.domain.removed",
            json!({"domain": "moved.example"}),
        )],
    );
    during.insert(
        middle + 1,
        vec![
            inst(
                "late",
                "instance.domain.added",
                json!({"domain": "Moved.example"}),
            ),
            inst(
                "late",
                "instance.domain.added",
                json!({"domain": "held.example"}),
            ),
        ],
    );
    (before, during)
}

/// The stream pushed once into a store, its rows read back in the store's order, split
/// where the outage begins: every database of a test imports the same rows (the same
/// positions and times).
async fn stored(
    before: &[Vec<NewEvent>],
    during: &[Vec<NewEvent>],
) -> (Vec<ImportRow>, Vec<ImportRow>) {
    let source = TestDatabase::fresh().await.unwrap();
    let store = PgEventStore::new(source.pool.clone());
    for push in before.iter().chain(during) {
        store.push(push.clone()).await.unwrap();
    }
    let mut rows: Vec<ImportRow> = sqlx::query_as::<_, (String, String, String, String, i64, i16, time::OffsetDateTime, Option<serde_json::Value>, String, String, rust_decimal::Decimal, i32, bool)>(
        "SELECT instance_id, aggregate_type, aggregate_id, event_type, \"sequence\", revision, created_at, payload,
                creator, \"owner\", \"position\", in_tx_order, written_by_v3 FROM eventstore.events2
         ORDER BY \"position\", in_tx_order",
    )
    .fetch_all(&source.pool)
    .await
    .unwrap()
    .into_iter()
    .map(|r| ImportRow {
        instance_id: r.0,
        aggregate_type: r.1,
        aggregate_id: r.2,
        event_type: r.3,
        sequence: r.4,
        revision: r.5,
        created_at: r.6,
        payload: r.7,
        creator: r.8,
        owner: r.9,
        position: r.10,
        in_tx_order: r.11,
        written_by_v3: r.12,
    })
    .collect();
    let during = rows.split_off(before.iter().map(Vec::len).sum());
    (rows, during)
}

/// The five tables in one order, the unified table's generated ids left out (they follow
/// the order of the inserts, which differs between a prefill and a recovery).
async fn tables(pool: &PgPool) -> TableRows {
    let mut rows = all_rows(pool).await.unwrap();
    for domain in &mut rows.domains {
        domain.id = 0;
    }
    rows.instances.sort_by_key(|r| format!("{r:?}"));
    rows.organizations.sort_by_key(|r| format!("{r:?}"));
    rows.instance_domains.sort_by_key(|r| format!("{r:?}"));
    rows.org_domains.sort_by_key(|r| format!("{r:?}"));
    rows.domains.sort_by_key(|r| format!("{r:?}"));
    rows
}

/// Batches the engine committed (the count of its batch duration histogram).
fn batches(engine: &Engine) -> u64 {
    let mut registry = prometheus_client::registry::Registry::default();
    engine.metrics().register(&mut registry);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    text.lines()
        .find(|line| line.starts_with("tenancy_projection_batch_duration_seconds_count"))
        .and_then(|line| line.rsplit(' ').next())
        .map_or(0, |count| count.parse().unwrap())
}

/// The failed events as (instance, aggregate, sequence).
async fn failed(engine: &Engine) -> Vec<(String, String, i64)> {
    engine
        .failed()
        .await
        .unwrap()
        .into_iter()
        .map(|f| (f.instance_id, f.aggregate_id, f.failed_sequence))
        .collect()
}

/// The stream of [`stream`] in two databases: `whole` holds all of it, prefilled in one
/// go (what recovery must leave); `db` was prefilled before the outage, then the outage's
/// events arrived while no engine ran. Returns both and `db`'s engine (stopped).
async fn outage(instances: usize, rounds: usize) -> (TestDatabase, TestDatabase, Engine, usize) {
    let (before, during) = stream(instances, rounds);
    let (before, during) = stored(&before, &during).await;
    let whole = TestDatabase::fresh().await.unwrap();
    import_rows(&whole.pool, &before).await.unwrap();
    import_rows(&whole.pool, &during).await.unwrap();
    let prefill = Engine::new(whole.pool.clone(), config());
    prefill.run_until_caught_up(|_, _, _| {}).await.unwrap();
    assert_verified(&prefill).await;
    assert_eq!(
        failed(&prefill).await.len(),
        1,
        "late's add of held.example"
    );

    let db = TestDatabase::fresh().await.unwrap();
    import_rows(&db.pool, &before).await.unwrap();
    let engine = Engine::new(db.pool.clone(), config());
    engine.run_until_caught_up(|_, _, _| {}).await.unwrap();
    assert!(failed(&engine).await.is_empty());
    import_rows(&db.pool, &during).await.unwrap();
    (whole, db, engine, during.len())
}

#[tokio::test]
async fn an_outage_with_moving_domains_is_caught_up_in_the_stores_order() {
    let (whole, db, engine, events) = outage(10, 1_600).await;
    let expected_failures = failed(&Engine::new(whole.pool.clone(), config())).await;

    let recovery = Engine::new(db.pool.clone(), config());
    let outcome = recovery.run_until_caught_up(|_, _, _| {}).await.unwrap();
    let committed = batches(&recovery);
    assert_eq!(outcome.deferred, 0, "{outcome:?}");
    assert_eq!(
        failed(&engine).await,
        expected_failures,
        "only the store's own rejected add fails, with every attempt spent"
    );
    assert_eq!(engine.failed().await.unwrap()[0].failure_count, 3);
    assert_eq!(engine.status().await.unwrap().events_behind, 0);
    assert_verified(&engine).await;
    assert_eq!(
        tables(&db.pool).await,
        tables(&whole.pool).await,
        "recovery leaves what a prefill of the same store leaves"
    );
    // One instance at a time, the instances waited for each other at every moved domain:
    // a batch every 15–20 events here (77 measured). Together, one per 2,000 events.
    assert!(
        committed < u64::try_from(events / 100).unwrap(),
        "{committed} batches for {events} events"
    );
}

#[tokio::test]
async fn a_member_held_by_another_process_is_waited_for_not_overtaken() {
    // `early` is in a component of two instances and a few events; `inst0` in one of more
    // than one window (2,000 events), so that a window's bin is refused with more of the
    // component's events to come.
    for held in ["early", "inst0"] {
        let (whole, db, engine, events) = outage(6, 4_000).await;
        assert!(events > 2_500, "{events} events");

        // Another process holds the member (its projection lock) for a while.
        let mut holder = db.pool.begin().await.unwrap();
        assert!(
            relational::state()
                .try_lock(&mut holder, held)
                .await
                .unwrap()
        );
        let release = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(800)).await;
            holder.rollback().await.unwrap();
        });
        let outcome = engine.run_until_caught_up(|_, _, _| {}).await.unwrap();
        release.await.unwrap();
        assert!(!outcome.busy, "{held}: {outcome:?}");
        assert_eq!(
            failed(&engine).await.len(),
            1,
            "{held}: late's add of held.example"
        );
        assert_verified(&engine).await;
        assert_eq!(tables(&db.pool).await, tables(&whole.pool).await, "{held}");
    }
}

#[tokio::test]
async fn tenancy_start_after_an_outage_recovers_in_the_stores_order() {
    // The continuous engine (`tenancy start`): its first sweep finds the instances behind.
    let (whole, db, engine, _) = outage(8, 800).await;

    let running = engine.spawn_continuous();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while engine.status().await.unwrap().events_behind > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not caught up in 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    running.stop().await.unwrap();
    assert_eq!(failed(&engine).await.len(), 1, "late's add of held.example");
    assert_verified(&engine).await;
    assert_eq!(tables(&db.pool).await, tables(&whole.pool).await);
}
