//! The running engine's periodic work (issue 28): writes that notify nobody reach the
//! tables through the poll, late commits through the sweep, imported history through the
//! sweep's start position; and an idle engine's cost does not follow the number of
//! instances.
#![allow(clippy::unwrap_used)] // integration tests: a failed unwrap is a failed test

use std::time::Duration;

use rust_decimal::Decimal;
use serde_json::json;
use sqlx::{ConnectOptions as _, Connection as _, PgConnection};
use tenancy_eventstore::PgEventStore;
use tenancy_eventstore::import::{ImportRow, import_rows};
use tenancy_postgres::leadership::{LEADERSHIP_LOCK_CLASS, leader_of};
use tenancy_projection::{Engine, EngineConfig};
use tenancy_testkit::db::TestDatabase;
use tenancy_testkit::stream::inst;
use tenancy_testkit::verify::assert_verified;
use time::OffsetDateTime;

fn config() -> EngineConfig {
    EngineConfig {
        workers: 2,
        sweep_interval: Duration::from_secs(3600),
        poll_interval: Duration::from_millis(100),
        ..EngineConfig::default()
    }
}

/// An `instance.added` written straight into the store, as ZITADEL's push or any other
/// writer but tenancy's does (no notification), its position `age_secs` in the past.
async fn write_unnotified(db: &TestDatabase, instance: &str, age_secs: f64) {
    sqlx::query(
        "INSERT INTO eventstore.events2 (instance_id, aggregate_type, aggregate_id, event_type, \"sequence\",
             revision, created_at, payload, creator, \"owner\", \"position\", in_tx_order)
         VALUES ($1, 'instance', $1, 'instance.added', 1, 1, now(), jsonb_build_object('name', $1::text),
                 'writer', $1, EXTRACT(EPOCH FROM clock_timestamp()) - $2::numeric, 0)",
    )
    .bind(instance)
    .bind(Decimal::try_from(age_secs).unwrap())
    .execute(&db.pool)
    .await
    .unwrap();
}

async fn projected(db: &TestDatabase, instance: &str) -> bool {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM instances WHERE id = $1)")
        .bind(instance)
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

/// Pushes the instance's `instance.added` through tenancy's push (a notification).
async fn push_added(db: &TestDatabase, instance: &str) {
    PgEventStore::new(db.pool.clone())
        .push(vec![inst(
            instance,
            "instance.added",
            json!({"name": instance}),
        )])
        .await
        .unwrap();
}

/// Waits up to `within` for the instance's row; false when it never came.
async fn appears(db: &TestDatabase, instance: &str, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if projected(db, instance).await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

async fn swept_from(db: &TestDatabase) -> Option<Decimal> {
    sqlx::query_scalar("SELECT swept_from FROM tenancy.sweeps")
        .fetch_optional(&db.pool)
        .await
        .unwrap()
}

async fn until_swept(db: &TestDatabase) {
    for _ in 0..250 {
        if swept_from(db).await.is_some() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no sweep was recorded");
}

#[tokio::test]
async fn a_write_that_notifies_nobody_reaches_the_tables_through_the_poll() {
    let db = TestDatabase::fresh().await.unwrap();
    let engine = Engine::new(db.pool.clone(), config());
    let running = engine.spawn_continuous();
    until_swept(&db).await;
    write_unnotified(&db, "quiet", 0.0).await;
    assert!(
        appears(&db, "quiet", Duration::from_secs(3)).await,
        "an owned store is polled too: the sweep (hourly here) is not what finds it"
    );
    running.stop().await.unwrap();
    assert_verified(&engine).await;
}

/// A leader of the poll whose process hangs: its connection holds the lead and does
/// nothing else.
async fn hung_leader(db: &TestDatabase) -> PgConnection {
    let mut conn = db.options.clone().connect().await.unwrap();
    sqlx::query("SELECT pg_advisory_lock($1, hashtext('relational_tables:poll'))")
        .bind(LEADERSHIP_LOCK_CLASS)
        .execute(&mut conn)
        .await
        .unwrap();
    conn
}

/// Whether a process holds the poll's lead.
async fn poll_led(db: &TestDatabase) -> bool {
    leader_of(&db.pool, "relational_tables:poll")
        .await
        .unwrap()
        .is_some()
}

/// Only the poll's leader acts on a notification at once; the others look again after a
/// delay and catch up what is still behind. With a leader whose process hangs, the
/// engine is such another process: the push reaches the tables all the same, and long
/// before the (hourly) sweep.
#[tokio::test]
async fn a_push_reaches_the_tables_while_a_hung_process_leads_the_poll() {
    let db = TestDatabase::fresh().await.unwrap();
    let _leader = hung_leader(&db).await;
    let engine = Engine::new(db.pool.clone(), config());
    let running = engine.spawn_continuous();
    until_swept(&db).await;
    push_added(&db, "heard").await;
    assert!(
        appears(&db, "heard", Duration::from_secs(3)).await,
        "a process that does not lead the poll still projects a notified push"
    );
    assert!(
        poll_led(&db).await,
        "the hung leader still leads (else this proves nothing)"
    );
    running.stop().await.unwrap();
    assert_verified(&engine).await;
}

/// After its look found an instance the (hung) leader left behind, a process stands in:
/// the next push is projected at once, not after another follow delay.
#[tokio::test]
async fn after_finding_a_push_left_behind_a_process_acts_on_the_next_at_once() {
    let db = TestDatabase::fresh().await.unwrap();
    let _leader = hung_leader(&db).await;
    let follow_delay = Duration::from_secs(5);
    let engine = Engine::new(
        db.pool.clone(),
        EngineConfig {
            follow_delay,
            // The stand-in lasts 3 poll intervals.
            poll_interval: Duration::from_secs(1),
            ..config()
        },
    );
    let running = engine.spawn_continuous();
    until_swept(&db).await;
    push_added(&db, "first").await;
    assert!(
        appears(&db, "first", follow_delay * 2).await,
        "the first push is caught up after the follow delay"
    );
    push_added(&db, "next").await;
    assert!(
        appears(&db, "next", follow_delay / 2).await,
        "the next push is acted on at once, not after another follow delay"
    );
    running.stop().await.unwrap();
    assert_verified(&engine).await;
}

/// When the leader's session ends (its process died), a waiting process leads at once and
/// catches up what it noted meanwhile: not after the follow delay (an hour here).
#[tokio::test]
async fn when_the_leader_dies_another_process_leads_at_once() {
    let db = TestDatabase::fresh().await.unwrap();
    let leader = hung_leader(&db).await;
    let engine = Engine::new(
        db.pool.clone(),
        EngineConfig {
            follow_delay: Duration::from_secs(3600),
            ..config()
        },
    );
    let running = engine.spawn_continuous();
    until_swept(&db).await;
    push_added(&db, "noted").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !projected(&db, "noted").await,
        "a process that does not lead leaves the push to the leader (else this proves nothing)"
    );
    leader.close().await.unwrap();
    assert!(
        appears(&db, "noted", Duration::from_secs(5)).await,
        "the waiting process leads once the leader's session ends, and catches up what it noted"
    );
    let leader = leader_of(&db.pool, "relational_tables:poll")
        .await
        .unwrap()
        .expect("the engine leads the poll now");
    assert_eq!(
        leader.process_id,
        Some(std::process::id()),
        "its connection names this process"
    );
    running.stop().await.unwrap();
    assert_verified(&engine).await;
}

#[tokio::test]
async fn a_late_commit_the_poll_missed_is_found_by_the_next_sweep_only() {
    let db = TestDatabase::fresh().await.unwrap();
    let engine = Engine::new(
        db.pool.clone(),
        EngineConfig {
            poll_lookback: Duration::from_secs(1),
            sweep_interval: Duration::from_millis(1500),
            ..config()
        },
    );
    let running = engine.spawn_continuous();
    until_swept(&db).await;
    // Stamped 5 s ago: older than the poll looks (1 s), within the sweep's margin (10 s).
    write_unnotified(&db, "late", 5.0).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !projected(&db, "late").await,
        "the poll looks back 1 s only (else this test proves nothing of the sweep)"
    );
    assert!(
        appears(&db, "late", Duration::from_secs(5)).await,
        "the next sweep looks further back than where the previous one started"
    );
    running.stop().await.unwrap();
    assert_verified(&engine).await;
}

#[tokio::test]
async fn history_imported_while_no_engine_ran_is_swept_at_the_next_start() {
    let db = TestDatabase::fresh().await.unwrap();
    let engine = Engine::new(db.pool.clone(), config());
    let running = engine.spawn_continuous();
    until_swept(&db).await;
    running.stop().await.unwrap();
    // A ZITADEL store's history: positions from last year, long before the recorded sweep.
    let year_ago = OffsetDateTime::now_utc() - time::Duration::days(365);
    let rows = vec![ImportRow {
        instance_id: "imported".into(),
        aggregate_type: "instance".into(),
        aggregate_id: "imported".into(),
        event_type: "instance.added".into(),
        sequence: 1,
        revision: 1,
        created_at: year_ago,
        payload: Some(json!({"name": "Imported"})),
        creator: "import".into(),
        owner: "imported".into(),
        position: Decimal::from(year_ago.unix_timestamp()),
        in_tx_order: 0,
        written_by_v3: false,
    }];
    import_rows(&db.pool, &rows).await.unwrap();
    let status = engine.status().await.unwrap();
    assert_eq!(
        status.events_behind, 1,
        "status counts it although it is older than the sweep window: {status:?}"
    );
    let running = engine.spawn_continuous();
    assert!(
        appears(&db, "imported", Duration::from_secs(5)).await,
        "the import moved the sweep's start before its events"
    );
    running.stop().await.unwrap();
    assert_eq!(engine.status().await.unwrap().events_behind, 0);
    assert_verified(&engine).await;
}

/// Transactions committed or rolled back in this test's database so far.
async fn transactions(db: &TestDatabase) -> i64 {
    // Statistics of other backends arrive within a second or so; ours are flushed now.
    sqlx::query("SELECT pg_stat_force_next_flush()")
        .execute(&db.pool)
        .await
        .unwrap();
    sqlx::query_scalar(
        "SELECT (xact_commit + xact_rollback)::bigint FROM pg_stat_database WHERE datname = current_database()",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn an_idle_engine_does_not_walk_its_instances() {
    let db = TestDatabase::fresh().await.unwrap();
    let store = PgEventStore::new(db.pool.clone());
    let instances = 400;
    for chunk in (0..instances).collect::<Vec<_>>().chunks(100) {
        let events = chunk
            .iter()
            .map(|i| {
                inst(
                    &format!("idle-{i:04}"),
                    "instance.added",
                    json!({"name": format!("Idle {i}")}),
                )
            })
            .collect();
        store.push(events).await.unwrap();
    }
    let config = EngineConfig {
        sweep_interval: Duration::from_millis(250),
        poll_interval: Duration::from_millis(250),
        ..config()
    };
    let engine = Engine::new(db.pool.clone(), config);
    engine.run_until_caught_up(|_, _, _| {}).await.unwrap();
    let running = engine.spawn_continuous();
    until_swept(&db).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = transactions(&db).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = transactions(&db).await;
    running.stop().await.unwrap();
    // 12 sweeps and 12 polls in 3 s. Walking the instances at each sweep (as before issue
    // 28) costs at least one transaction per instance: 4,800 here.
    let idle = after - before;
    eprintln!("idle: {idle} transactions in 3 s with {instances} instances");
    assert!(
        idle < 300,
        "{idle} transactions in 3 s of idle with {instances} instances: the periodic work follows the instances"
    );
    assert_verified(&engine).await;
}

#[tokio::test]
async fn a_small_pool_does_not_starve_the_workers() {
    let db = TestDatabase::fresh().await.unwrap();
    let store = PgEventStore::new(db.pool.clone());
    for i in 0..40 {
        store
            .push(vec![inst(
                &format!("small-{i}"),
                "instance.added",
                json!({"name": "Small"}),
            )])
            .await
            .unwrap();
    }
    // Four workers on four connections: each worker needs two at once.
    let pool = tenancy_postgres::pool::connect_with(db.options.clone(), 4)
        .await
        .unwrap();
    let engine = Engine::new(
        pool,
        EngineConfig {
            workers: 4,
            bulk_limit: 0,
            ..config()
        },
    );
    let running = engine.spawn_continuous();
    until_swept(&db).await;
    running.stop().await.unwrap();
    assert_verified(&engine).await;
}

/// The warm-up of the pool's connections (`tenancy_projection` `warm`): the statements of
/// a catch-up prepared on every idle connection, for a made-up instance in a transaction
/// rolled back: nothing written, nothing left behind; a warm connection is left alone.
#[tokio::test]
async fn warming_the_connections_prepares_a_catch_up_and_writes_nothing() {
    let db = TestDatabase::fresh().await.unwrap();
    PgEventStore::new(db.pool.clone())
        .push(vec![inst(
            "acme",
            "instance.added",
            json!({"name": "Acme"}),
        )])
        .await
        .unwrap();
    Engine::new(db.pool.clone(), config())
        .run_until_caught_up(|_, _, _| {})
        .await
        .unwrap();
    let pool = tenancy_postgres::pool::connect_with(db.options.clone(), 3)
        .await
        .unwrap();
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(pool.acquire().await.unwrap());
    }
    drop(held);
    let rows_before = tenancy_postgres::dump::all_rows(&db.pool).await.unwrap();
    let count = |sql: &'static str| {
        let pool = db.pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    let bookkeeping = "SELECT (SELECT count(*) FROM tenancy.current_states)
                            + (SELECT count(*) FROM tenancy.failed_events2)
                            + (SELECT count(*) FROM eventstore.events2)";
    let before = count(bookkeeping).await;

    let engine = Engine::new(pool.clone(), config());
    assert_eq!(engine.warm_up(Duration::ZERO).await.unwrap(), 3);

    assert_eq!(
        tenancy_postgres::dump::all_rows(&db.pool).await.unwrap(),
        rows_before
    );
    assert_eq!(count(bookkeeping).await, before);
    let mut held = Vec::new();
    for _ in 0..3 {
        let conn = pool.acquire().await.unwrap();
        assert!(
            conn.cached_statements_size() >= 10,
            "a connection holds {} prepared statements",
            conn.cached_statements_size()
        );
        held.push(conn);
    }
    drop(held);
    assert_eq!(
        engine.warm_up(Duration::ZERO).await.unwrap(),
        0,
        "warm already"
    );
    assert!(projected(&db, "acme").await);
}
