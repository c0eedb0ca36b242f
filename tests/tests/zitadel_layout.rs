//! Adopting a database laid out by ZITADEL itself (fixtures in `crates/testkit/fixtures/zitadel/`,
//! written from the facts of ZITADEL's source): migrate, prefill, verify and continuous
//! projection next to ZITADEL-style writers; nothing of ZITADEL's changed; ZITADEL's own
//! setup and push still working afterwards. Also the upgrade of a database laid out by an
//! earlier tenancy release, and the refusals that change nothing.
#![allow(clippy::unwrap_used)] // integration tests: a failed unwrap is a failed test

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::{AssertSqlSafe, PgPool};
use tenancy_core::command::{AddOrganization, run};
use tenancy_core::event::NewEvent;
use tenancy_core::id::InstanceId;
use tenancy_eventstore::PgEventStore;
use tenancy_eventstore::import::{ImportRow, import_rows};
use tenancy_postgres::PgStore;
use tenancy_postgres::layout::EventStore;
use tenancy_projection::{Engine, EngineConfig};
use tenancy_testkit::db::TestDatabase;
use tenancy_testkit::fixtures;
use tenancy_testkit::stream::{churn, inst, org};
use tenancy_testkit::verify::assert_verified;
use tenancy_testkit::zitadel::{self, INIT, SETUP_NEXT, TRANSACTIONAL_TABLES, V4};

async fn zitadel_database(fixtures: &[&str]) -> TestDatabase {
    zitadel::database(fixtures).await.unwrap()
}

/// A tenancy pool for the database as it is now (layout stored or decided).
async fn tenancy_pool(db: &TestDatabase) -> PgPool {
    tenancy_postgres::pool::connect_with(db.options.clone(), 8)
        .await
        .unwrap()
}

async fn zitadel_push(pool: &PgPool, events: &[NewEvent], with_v3_column: bool, v3: bool) {
    zitadel::push(pool, events, with_v3_column, v3)
        .await
        .unwrap();
}

/// Everything of ZITADEL's that tenancy must not change: relations with their columns,
/// functions with their bodies and settings, types with their labels, triggers, and the
/// rows of ZITADEL's bookkeeping. Indexes tenancy added (`events2_tenancy_*`) are left out
/// and checked on their own.
async fn zitadel_objects(pool: &PgPool) -> Vec<String> {
    // Names render schema-qualified whatever the connection's search path.
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SET LOCAL search_path = pg_catalog")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query_scalar(
        "WITH s AS (SELECT oid, nspname FROM pg_namespace
                    WHERE nspname IN ('eventstore', 'projections', 'system', 'zitadel'))
         SELECT 'relation ' || s.nspname || '.' || c.relname || ' ' || c.relkind::text || ' '
                || coalesce((SELECT string_agg(a.attname || ':' || format_type(a.atttypid, a.atttypmod)
                                               || CASE WHEN a.attnotnull THEN '!' ELSE '' END, ',' ORDER BY a.attnum)
                             FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '')
         FROM pg_class c JOIN s ON s.oid = c.relnamespace WHERE c.relname NOT LIKE 'events2_tenancy_%'
         UNION ALL
         SELECT 'function ' || s.nspname || '.' || p.oid::regprocedure::text || ' ' || md5(p.prosrc)
                || ' ' || coalesce(array_to_string(p.proconfig, ','), '')
         FROM pg_proc p JOIN s ON s.oid = p.pronamespace
         UNION ALL
         SELECT 'type ' || s.nspname || '.' || t.typname || ' '
                || coalesce((SELECT string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder) FROM pg_enum e
                             WHERE e.enumtypid = t.oid), '')
         FROM pg_type t JOIN s ON s.oid = t.typnamespace
         UNION ALL
         SELECT 'trigger ' || tg.tgrelid::regclass::text || '.' || tg.tgname || ' ' || tg.tgenabled::text
         FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid JOIN s ON s.oid = c.relnamespace
         UNION ALL
         SELECT 'cursor ' || projection_name || ' ' || instance_id || ' ' || coalesce(\"sequence\"::text, '-')
         FROM projections.current_states
         UNION ALL
         SELECT 'failed ' || projection_name || ' ' || instance_id FROM projections.failed_events2
         ORDER BY 1",
    )
    .fetch_all(&mut *tx)
    .await
    .unwrap()
}

async fn scalar(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

fn engine(pool: &PgPool) -> Engine {
    Engine::new(
        pool.clone(),
        EngineConfig {
            batch_size: 50,
            ..EngineConfig::default()
        },
    )
}

/// A churning stream pushed through ZITADEL's push; every 7th batch as ZITADEL's v3 code
/// would mark it (`written_by_v3`: its rows are in ZITADEL's tables, not tenancy's).
async fn fill_through_zitadel(pool: &PgPool, with_v3_column: bool) -> usize {
    let mut pushed = 0;
    for (n, batch) in churn(6, 60, 7).into_iter().enumerate() {
        pushed += batch.len();
        zitadel_push(pool, &batch, with_v3_column, with_v3_column && n % 7 == 3).await;
    }
    pushed
}

#[tokio::test]
async fn adopts_a_zitadel_v4_database_with_its_transactional_tables_in_place() {
    let db = zitadel_database(&[INIT, V4, TRANSACTIONAL_TABLES]).await;
    let pushed = fill_through_zitadel(&db.pool, true).await;
    assert!(
        scalar(
            &db.pool,
            "SELECT count(*) FROM eventstore.events2 WHERE written_by_v3"
        )
        .await
            > 0
    );
    let before = zitadel_objects(&db.pool).await;

    // Migrate: one decision, tenancy's objects in its own schema, the store adopted.
    let pool = tenancy_pool(&db).await;
    let applied = tenancy_postgres::migrate::migrate(&pool).await.unwrap();
    assert_eq!(applied, tenancy_postgres::migrate::versions());
    let layout = tenancy_postgres::layout::stored(&mut pool.acquire().await.unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(layout.relational_schema, "tenancy");
    assert_eq!(layout.event_store, EventStore::Adopted);
    assert!(layout.zitadel_present);
    assert_eq!(
        scalar(
            &pool,
            "SELECT count(*) FROM tenancy.migrations WHERE skipped"
        )
        .await,
        1,
        "the event store migration is skipped: ZITADEL's store is used as found"
    );
    // Point 5: ZITADEL's es_projection serves the projection read; tenancy added only
    // what it lacks, CONCURRENTLY (valid, not in a transaction).
    let added: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
         WHERE i.indrelid = 'eventstore.events2'::regclass AND c.relname LIKE 'events2_tenancy_%' AND i.indisvalid
         ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        added,
        [
            "events2_tenancy_instance_domain_added",
            "events2_tenancy_position"
        ]
    );
    // Points 1, 3, 6: nothing of ZITADEL's changed; its cursors and trigger are its own.
    assert_eq!(zitadel_objects(&pool).await, before);

    // Point 2: ZITADEL's `relational_tables` cursor is not tenancy's: everything is applied.
    // Point 7: the events ZITADEL's v3 wrote are projected (their rows are not in
    // tenancy's tables), and verify agrees.
    let engine = engine(&pool);
    let outcome = engine.run_until_caught_up(|_, _, _| {}).await.unwrap();
    assert_eq!(outcome.failed, 0, "{outcome:?}");
    assert!(outcome.applied > 0 && outcome.applied as usize <= pushed);
    assert_eq!(outcome.skipped, 0, "no event was written by tenancy");
    assert!(scalar(&pool, "SELECT count(*) FROM tenancy.instances").await > 0);
    assert!(scalar(&pool, "SELECT count(*) FROM tenancy.organizations").await > 0);
    assert_eq!(
        scalar(
            &pool,
            "SELECT count(*) FROM tenancy.current_states WHERE in_tx_order IS NULL"
        )
        .await,
        0
    );
    assert_verified(&engine).await;

    // A tenancy command on the adopted store: its event goes to ZITADEL's store without
    // ZITADEL's v3 mark (ZITADEL's handlers project it), listed as tenancy's own.
    let instance: String =
        sqlx::query_scalar("SELECT min(id) FROM tenancy.instances WHERE deleted_at IS NULL")
            .fetch_one(&pool)
            .await
            .unwrap();
    let store = PgStore::with_events(pool.clone(), Arc::new(PgEventStore::new(pool.clone())));
    let ctx = fixtures::context();
    run(
        &store,
        &ctx,
        &AddOrganization {
            id: None,
            instance_id: InstanceId::new(instance.clone()).unwrap(),
            name: "Added by tenancy".into(),
        },
    )
    .await
    .unwrap();
    assert_eq!(
        scalar(
            &pool,
            "SELECT count(*) FROM eventstore.events2 e JOIN tenancy.written_events w USING (instance_id, aggregate_type, aggregate_id, \"sequence\")
             WHERE NOT e.written_by_v3"
        )
        .await,
        1
    );
    let outcome = engine.run_until_caught_up(|_, _, _| {}).await.unwrap();
    assert_eq!(
        (outcome.applied, outcome.failed),
        (0, 0),
        "tenancy's own event is not applied twice"
    );
    assert_verified(&engine).await;

    // ZITADEL keeps working: its push, then its next setup; tenancy picks the push up.
    zitadel_push(
        &db.pool,
        &[org(
            &instance,
            "zitadel-later",
            "org.added",
            json!({"name": "Pushed by ZITADEL"}),
        )],
        true,
        false,
    )
    .await;
    sqlx::raw_sql(AssertSqlSafe(SETUP_NEXT))
        .execute(&db.pool)
        .await
        .unwrap();
    let outcome = engine.run_until_caught_up(|_, _, _| {}).await.unwrap();
    assert_eq!((outcome.applied, outcome.failed), (1, 0));
    assert_verified(&engine).await;
    // Again: migrate is idempotent and still changes nothing of ZITADEL's.
    assert!(
        tenancy_postgres::migrate::migrate(&pool)
            .await
            .unwrap()
            .is_empty()
    );
    pool.close().await;
}

#[tokio::test]
async fn adopts_an_older_store_without_written_by_v3_or_cursor_order() {
    let db = zitadel_database(&[INIT]).await;
    fill_through_zitadel(&db.pool, false).await;
    let before = zitadel_objects(&db.pool).await;
    let pool = tenancy_pool(&db).await;
    tenancy_postgres::migrate::migrate(&pool).await.unwrap();
    assert_eq!(zitadel_objects(&pool).await, before);
    assert_eq!(
        scalar(&pool, "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'eventstore' AND column_name = 'written_by_v3'").await,
        0,
        "ZITADEL's table is not altered"
    );
    let engine = engine(&pool);
    let outcome = engine.run_until_caught_up(|_, _, _| {}).await.unwrap();
    assert!(outcome.applied > 0 && outcome.failed == 0, "{outcome:?}");
    assert_verified(&engine).await;
    // tenancy's push works on a store without the column.
    let events = PgEventStore::new(pool.clone());
    events
        .push(vec![inst(
            "late",
            "instance.added",
            json!({"name": "Late"}),
        )])
        .await
        .unwrap();
    let status = engine.status().await.unwrap();
    assert!(status.instances > 0, "{status:?}");
    assert_eq!(
        engine
            .run_until_caught_up(|_, _, _| {})
            .await
            .unwrap()
            .applied,
        1
    );
    assert_verified(&engine).await;

    // An import into this store: a row marked written_by_v3 cannot be kept (no column) and
    // nothing is imported; unmarked rows are, with their unique constraints.
    let row = |v3: bool| ImportRow {
        instance_id: "imported".into(),
        aggregate_type: "instance".into(),
        aggregate_id: "imported".into(),
        event_type: if v3 {
            "instance.changed"
        } else {
            "instance.added"
        }
        .into(),
        sequence: if v3 { 3 } else { 1 },
        revision: 1,
        created_at: time::OffsetDateTime::now_utc(),
        payload: Some(json!({"name": "Imported"})),
        creator: "export".into(),
        owner: "imported".into(),
        position: rust_decimal::Decimal::from(1),
        in_tx_order: 1,
        written_by_v3: v3,
    };
    let mut domain = row(false);
    domain.event_type = "instance.domain.added".into();
    domain.sequence = 2;
    domain.in_tx_order = 2;
    domain.payload = Some(json!({"domain": "Imported.Example", "generated": false}));
    let refused = import_rows(&pool, &[row(false), domain.clone(), row(true)]).await;
    assert!(
        refused
            .unwrap_err()
            .to_string()
            .contains("no written_by_v3 column")
    );
    assert_eq!(
        scalar(
            &pool,
            "SELECT count(*) FROM eventstore.events2 WHERE instance_id = 'imported'"
        )
        .await,
        0
    );
    import_rows(&pool, &[row(false), domain]).await.unwrap();
    assert_eq!(
        scalar(&pool, "SELECT count(*) FROM eventstore.unique_constraints WHERE instance_id = '' AND unique_field = 'imported.example'").await,
        1
    );
    pool.close().await;
}

#[tokio::test]
async fn refuses_what_it_cannot_adopt_and_changes_nothing() {
    // The relational tables configured into ZITADEL's own schema.
    let db = zitadel_database(&[INIT, V4, TRANSACTIONAL_TABLES]).await;
    let before = zitadel_objects(&db.pool).await;
    let refused = tenancy_postgres::migrate::migrate_with(&db.pool, Some("zitadel")).await;
    let message = refused.unwrap_err().to_string();
    assert!(message.contains("ZITADEL is present"), "{message}");
    assert_eq!(
        scalar(
            &db.pool,
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'tenancy'"
        )
        .await,
        0
    );
    assert_eq!(zitadel_objects(&db.pool).await, before);

    // An event store without the columns tenancy reads.
    let db = TestDatabase::empty().await.unwrap();
    sqlx::raw_sql(
        "CREATE SCHEMA eventstore;
         CREATE TABLE eventstore.events2 (instance_id TEXT NOT NULL, aggregate_type TEXT NOT NULL,
             aggregate_id TEXT NOT NULL, event_type TEXT NOT NULL, \"sequence\" BIGINT NOT NULL,
             revision SMALLINT NOT NULL, created_at TIMESTAMPTZ NOT NULL, payload JSONB,
             creator TEXT NOT NULL, \"owner\" TEXT NOT NULL)",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let message = tenancy_postgres::migrate::migrate(&db.pool)
        .await
        .unwrap_err()
        .to_string();
    assert!(message.contains("position, in_tx_order"), "{message}");
    assert_eq!(
        scalar(
            &db.pool,
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'tenancy'"
        )
        .await,
        0
    );

    // A migration that fails half-way leaves nothing: a table in the way of migration 3.
    let db = TestDatabase::empty().await.unwrap();
    sqlx::raw_sql("CREATE SCHEMA zitadel; CREATE TYPE zitadel.organization_state AS ENUM ('a')")
        .execute(&db.pool)
        .await
        .unwrap();
    // No ZITADEL markers and no tables: the relational schema stays `zitadel`.
    let message = tenancy_postgres::migrate::migrate(&db.pool)
        .await
        .unwrap_err()
        .to_string();
    assert!(message.contains("nothing was applied"), "{message}");
    assert_eq!(
        scalar(
            &db.pool,
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'tenancy'"
        )
        .await,
        0
    );
    assert_eq!(
        scalar(
            &db.pool,
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'eventstore'"
        )
        .await,
        0
    );
}

#[tokio::test]
async fn zitadel_pushes_reach_the_tables_of_a_running_engine_without_notifications() {
    let db = zitadel_database(&[INIT, V4]).await;
    let pool = tenancy_pool(&db).await;
    tenancy_postgres::migrate::migrate(&pool).await.unwrap();
    drop(pool);
    let pool = tenancy_pool(&db).await;
    let engine = engine(&pool);
    let running = engine.spawn_continuous();
    // Four ZITADEL-style writers, each its own instance, pushing orgs with pauses.
    let mut writers = Vec::new();
    for w in 0..4 {
        let pool = db.pool.clone();
        writers.push(tokio::spawn(async move {
            let i = format!("zw{w}");
            zitadel_push(&pool, &[inst(&i, "instance.added", json!({"name": i}))], true, false).await;
            let mut seen = Vec::new();
            for n in 0..15 {
                let o = format!("o{n}");
                zitadel_push(&pool, &[org(&i, &o, "org.added", json!({"name": o}))], true, false).await;
                let pushed = Instant::now();
                // Visible in tenancy's table: measured, bounded generously (not a benchmark).
                loop {
                    let found: bool = sqlx::query_scalar(
                        "SELECT EXISTS (SELECT 1 FROM tenancy.organizations WHERE instance_id = $1 AND id = $2)",
                    )
                    .bind(&i)
                    .bind(&o)
                    .fetch_one(&pool)
                    .await
                    .unwrap();
                    if found {
                        break;
                    }
                    assert!(pushed.elapsed() < Duration::from_secs(20), "{i}/{o} never projected");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                seen.push(pushed.elapsed());
            }
            seen
        }));
    }
    let mut latencies = Vec::new();
    for writer in writers {
        latencies.extend(writer.await.unwrap());
    }
    latencies.sort();
    running.stop().await.unwrap();
    eprintln!(
        "pick-up of ZITADEL pushes (no notification): p50 {:?}, max {:?}",
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1]
    );
    assert_eq!(
        scalar(&pool, "SELECT count(*) FROM tenancy.failed_events2").await,
        0
    );
    assert_verified(&engine).await;
}

#[tokio::test]
async fn upgrades_a_database_laid_out_by_an_earlier_release_in_place() {
    // The layout of releases before the `tenancy` schema, with a little history: instance
    // a half projected (a cursor), b written by a v3 command (rows and event together),
    // one recorded failure.
    let db = TestDatabase::empty().await.unwrap();
    // As those releases connected: the server's default search path.
    let plain = PgPool::connect_with(db.options.clone()).await.unwrap();
    let legacy = sqlx::migrate!("../crates/postgres/migrations/legacy");
    legacy.run(&plain).await.unwrap();
    sqlx::raw_sql(
        "INSERT INTO eventstore.events2 (instance_id, aggregate_type, aggregate_id, event_type, \"sequence\", revision,
             created_at, payload, creator, \"owner\", \"position\", in_tx_order, written_by_v3) VALUES
           ('a', 'instance', 'a', 'instance.added', 1, 1, '2026-01-01Z', '{\"name\": \"A\"}', 'c', 'a', 1.0, 1, false),
           ('a', 'org', 'o1', 'org.added', 1, 1, '2026-01-02Z', '{\"name\": \"O1\"}', 'c', 'o1', 2.0, 1, false),
           ('b', 'instance', 'b', 'instance.added', 1, 1, '2026-01-03Z', '{\"name\": \"B\"}', 'c', 'b', 3.0, 1, true);
         INSERT INTO zitadel.instances (id, name, created_at, updated_at) VALUES
           ('a', 'A', '2026-01-01Z', '2026-01-01Z'), ('b', 'B', '2026-01-03Z', '2026-01-03Z');
         INSERT INTO projections.current_states (projection_name, instance_id, \"position\", in_tx_order, aggregate_type,
             aggregate_id, \"sequence\", event_date) VALUES ('relational_tables', 'a', 1.0, 1, 'instance', 'a', 1, '2026-01-01Z');
         INSERT INTO projections.failed_events2 (projection_name, instance_id, aggregate_type, aggregate_id, failed_sequence,
             event_creation_date, failure_count, error) VALUES ('relational_tables', 'z', 'org', 'x', 1, '2026-01-01Z', 5, 'kept');",
    )
    .execute(&plain)
    .await
    .unwrap();

    let pool = tenancy_pool(&db).await;
    let applied = tenancy_postgres::migrate::migrate(&pool).await.unwrap();
    assert_eq!(applied, tenancy_postgres::migrate::versions());
    let layout = tenancy_postgres::layout::stored(&mut pool.acquire().await.unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            layout.relational_schema.as_str(),
            layout.event_store,
            layout.zitadel_present
        ),
        ("zitadel", EventStore::Owned, false)
    );
    assert_eq!(
        scalar(
            &pool,
            "SELECT count(*) FROM tenancy.migrations WHERE skipped"
        )
        .await,
        2
    );
    assert_eq!(
        scalar(&pool, "SELECT count(*) FROM tenancy.current_states").await,
        1
    );
    assert_eq!(
        scalar(&pool, "SELECT count(*) FROM tenancy.failed_events2").await,
        1
    );
    assert_eq!(
        scalar(&pool, "SELECT count(*) FROM tenancy.written_events").await,
        1
    );
    assert_eq!(
        scalar(
            &pool,
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'projections'
             UNION ALL SELECT count(*) FROM pg_proc WHERE pronamespace = 'zitadel'::regnamespace AND proname LIKE 'apply_%'
             UNION ALL SELECT count(*) FROM pg_class WHERE relname = '_sqlx_migrations'
             ORDER BY 1 DESC LIMIT 1"
        )
        .await,
        0,
        "the old bookkeeping, functions and ledger are gone"
    );
    // The earlier indexes on events2 serve: nothing is built twice.
    assert_eq!(
        scalar(&pool, "SELECT count(*) FROM pg_class WHERE relname IN ('events2_tenancy_projection', 'events2_tenancy_position')").await,
        0
    );
    let engine = engine(&pool);
    let outcome = engine.run_until_caught_up(|_, _, _| {}).await.unwrap();
    assert_eq!((outcome.applied, outcome.skipped), (1, 1), "{outcome:?}");
    assert_eq!(
        scalar(&pool, "SELECT count(*) FROM zitadel.organizations").await,
        1
    );
    assert_verified(&engine).await;

    // Removed again: its tables and schemas go, the store it created stays with the events.
    let removed = tenancy_postgres::migrate::remove(&mut pool.acquire().await.unwrap().detach())
        .await
        .unwrap();
    assert_eq!(removed.relational_schema.as_deref(), Some("zitadel"));
    assert_eq!(removed.store_indexes.len(), 3, "{removed:?}");
    pool.close().await;
    assert_eq!(
        scalar(
            &plain,
            "SELECT count(*) FROM pg_namespace WHERE nspname IN ('tenancy', 'zitadel')"
        )
        .await,
        0
    );
    assert_eq!(
        scalar(&plain, "SELECT count(*) FROM eventstore.events2").await,
        3
    );
}

/// A ZITADEL store's history imported before tenancy was ever migrated there (no `tenancy`
/// schema yet): the import stores it, and the prefill after the migration projects it.
#[tokio::test]
async fn imports_into_a_zitadel_store_before_tenancy_is_migrated() {
    let db = zitadel_database(&[INIT, V4]).await;
    let row = ImportRow {
        instance_id: "early".into(),
        aggregate_type: "instance".into(),
        aggregate_id: "early".into(),
        event_type: "instance.added".into(),
        sequence: 1,
        revision: 1,
        created_at: time::OffsetDateTime::now_utc(),
        payload: Some(json!({"name": "Early"})),
        creator: "export".into(),
        owner: "early".into(),
        position: rust_decimal::Decimal::from(1),
        in_tx_order: 1,
        written_by_v3: false,
    };
    import_rows(&db.pool, &[row]).await.unwrap();
    let pool = tenancy_pool(&db).await;
    tenancy_postgres::migrate::migrate(&pool).await.unwrap();
    let pool = tenancy_pool(&db).await;
    let engine = Engine::new(pool.clone(), EngineConfig::default());
    engine.run_until_caught_up(|_, _, _| {}).await.unwrap();
    assert_eq!(
        scalar(&pool, "SELECT count(*) FROM instances WHERE id = 'early'").await,
        1
    );
    pool.close().await;
}
