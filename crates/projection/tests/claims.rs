//! The order of custom domains across instances while events keep arriving (`claims.rs`):
//! an instance must not take a domain ahead of another instance's earlier add of it, even
//! when the add it takes, or the other instance's projection, is in flight while it checks.
//! Each test holds a transaction open at the moment that matters, so that the interleaving
//! the running engine meets by chance happens every time.
#![allow(clippy::unwrap_used)] // integration tests: a failed unwrap is a failed test

use std::time::Duration;

use serde_json::json;
use sqlx::PgPool;
use tenancy_core::event::NewEvent;
use tenancy_eventstore::PgEventStore;
use tenancy_projection::{Engine, EngineConfig, relational};
use tenancy_testkit::db::TestDatabase;
use tenancy_testkit::stream::inst;
use tenancy_testkit::verify::assert_verified;

const DOMAIN: &str = "moved.example";

fn config() -> EngineConfig {
    EngineConfig {
        max_failure_count: 3,
        workers: 2,
        ..EngineConfig::default()
    }
}

fn added(instance: &str) -> NewEvent {
    inst(instance, "instance.added", json!({"name": instance}))
}

fn domain(instance: &str, event_type: &str) -> NewEvent {
    inst(instance, event_type, json!({"domain": DOMAIN}))
}

/// A fresh database with its engine and event store.
async fn setup() -> (TestDatabase, Engine, PgEventStore) {
    let db = TestDatabase::fresh().await.unwrap();
    let engine = Engine::new(db.pool.clone(), config());
    let store = PgEventStore::new(db.pool.clone());
    (db, engine, store)
}

/// `instance` added and projected: it replays from now on.
async fn projected(store: &PgEventStore, engine: &Engine, instance: &str) {
    store.push(vec![added(instance)]).await.unwrap();
    engine.catch_up(instance, None).await.unwrap();
}

/// `early`, projected; then `early` adds and gives up the domain, and `late` exists, fresh.
async fn early_then_late(store: &PgEventStore, engine: &Engine) {
    projected(store, engine, "early").await;
    store
        .push(vec![domain("early", "instance.domain.added")])
        .await
        .unwrap();
    store
        .push(vec![domain("early", "instance.domain.removed")])
        .await
        .unwrap();
    store.push(vec![added("late")]).await.unwrap();
}

/// Waits until a session of this test's database waits for a lock (what the test holds).
/// Sessions of other databases — tests running beside it on the same server — do not count.
async fn someone_waits(pool: &PgPool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        if waiting > 0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "nobody waits for the lock"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// After everything ran: no failure, the tables equal the fold, and `holder` holds the
/// domain.
async fn assert_holds_the_domain(db: &TestDatabase, engine: &Engine, holder: &str) {
    let outcome = engine.run_until_caught_up(|_, _, _| {}).await.unwrap();
    assert_eq!((outcome.failed, outcome.deferred), (0, 0), "{outcome:?}");
    assert!(engine.failed().await.unwrap().is_empty());
    assert_verified(engine).await;
    let held_by: String = sqlx::query_scalar(
        "SELECT instance_id FROM instance_domains WHERE domain = $1 AND type = 'custom'",
    )
    .bind(DOMAIN)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(held_by, holder);
}

/// Pushes `events` in a transaction left open: its instance's readers wait for it.
async fn in_flight(
    pool: &PgPool,
    events: Vec<NewEvent>,
) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let mut tx = pool.begin().await.unwrap();
    tenancy_eventstore::push_on(&mut tx, events).await.unwrap();
    tx
}

#[tokio::test]
async fn a_fresh_instance_checks_the_adds_it_folds_even_those_pushed_while_it_read() {
    let (db, engine, store) = setup().await;
    early_then_late(&store, &engine).await;

    // `late`'s add is in flight when its bulk catch-up starts: the read waits for it and
    // folds it. `early` has yet to project its own earlier add: `late` must wait.
    let push = in_flight(&db.pool, vec![domain("late", "instance.domain.added")]).await;
    let catching_up = tokio::spawn({
        let engine = engine.clone();
        async move { engine.catch_up("late", None).await.unwrap() }
    });
    someone_waits(&db.pool).await;
    push.commit().await.unwrap();
    let outcome = catching_up.await.unwrap();
    assert_eq!(
        (outcome.applied, outcome.deferred),
        (0, 1),
        "late waits for early: {outcome:?}"
    );
    assert_holds_the_domain(&db, &engine, "late").await;
}

#[tokio::test]
async fn a_group_of_fresh_instances_checks_the_adds_it_folds_even_those_pushed_while_it_read() {
    let (db, engine, store) = setup().await;
    early_then_late(&store, &engine).await;

    // Another process holds `early` meanwhile, so `late` (small and fresh: caught up in a
    // group) is the one to move first.
    let mut holder = db.pool.begin().await.unwrap();
    assert!(
        relational::state()
            .try_lock(&mut holder, "early")
            .await
            .unwrap()
    );
    let push = in_flight(&db.pool, vec![domain("late", "instance.domain.added")]).await;
    // One pass over every instance without a target, as the running engine makes.
    let running = tokio::spawn({
        let engine = engine.clone();
        async move {
            engine
                .run_instances(None, None, |_, _, _| {})
                .await
                .unwrap()
        }
    });
    someone_waits(&db.pool).await;
    push.commit().await.unwrap();
    let outcome = running.await.unwrap();
    assert!(outcome.busy, "early is held: {outcome:?}");
    let late_projected: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM tenancy.current_states WHERE instance_id = 'late')",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(!late_projected, "late took the domain ahead of early's add");
    holder.rollback().await.unwrap();
    assert_holds_the_domain(&db, &engine, "late").await;
}

#[tokio::test]
async fn a_bulk_catch_up_overtaken_while_in_flight_folds_again_rather_than_replay() {
    let (db, engine, store) = setup().await;
    projected(&store, &engine, "late").await;
    store
        .push(vec![
            added("early"),
            domain("early", "instance.domain.added"),
        ])
        .await
        .unwrap();

    // `early`'s bulk catch-up has folded its add and stops at its first insert (the test
    // holds the row's key). Meanwhile `early` gives the domain up and `late` takes it:
    // `late` counts on `early` being caught up in bulk, so its add does not wait.
    let mut blocker = db.pool.begin().await.unwrap();
    sqlx::query("INSERT INTO instances (id, name) VALUES ('early', 'held by the test')")
        .execute(&mut *blocker)
        .await
        .unwrap();
    let catching_up = tokio::spawn({
        let engine = engine.clone();
        async move { engine.catch_up("early", None).await.unwrap() }
    });
    someone_waits(&db.pool).await;
    store
        .push(vec![
            domain("early", "instance.domain.removed"),
            domain("late", "instance.domain.added"),
        ])
        .await
        .unwrap();
    let late = engine.catch_up("late", None).await.unwrap();
    assert_eq!(late.applied, 1, "{late:?}");

    // `early`'s fold holds the domain `late` now holds: it folds again (and gives the
    // domain up), rather than replay its add in batches, where it would fail.
    blocker.rollback().await.unwrap();
    let early = catching_up.await.unwrap();
    assert_eq!((early.failed, early.deferred), (0, 1), "{early:?}");
    assert_holds_the_domain(&db, &engine, "late").await;
}

#[tokio::test]
async fn an_instance_with_nothing_to_project_yet_stays_fresh_for_the_others() {
    let (db, engine, store) = setup().await;
    projected(&store, &engine, "taker").await;
    // `other` has only an event the projection does not read (a ZITADEL login policy).
    store
        .push(vec![inst(
            "other",
            "instance.policy.login.added",
            json!({}),
        )])
        .await
        .unwrap();
    let nothing = engine.catch_up("other", None).await.unwrap();
    assert_eq!(nothing.applied, 0, "{nothing:?}");

    // `other` adds and gives the domain up, then `taker` takes it: `taker` counts on
    // `other` being caught up in bulk, which must still be so.
    store
        .push(vec![
            added("other"),
            domain("other", "instance.domain.added"),
            domain("other", "instance.domain.removed"),
        ])
        .await
        .unwrap();
    store
        .push(vec![domain("taker", "instance.domain.added")])
        .await
        .unwrap();
    let taker = engine.catch_up("taker", None).await.unwrap();
    assert_eq!(taker.applied, 1, "{taker:?}");
    let other = engine.catch_up("other", None).await.unwrap();
    assert_eq!((other.applied, other.failed), (3, 0), "{other:?}");
    assert_holds_the_domain(&db, &engine, "taker").await;
}
