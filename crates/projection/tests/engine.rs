//! The projection engine against PostgreSQL: effects, catch-up of a long churning stream,
//! verify, rebuild, interruption, two engines at once, poison events and retry.
#![allow(clippy::unwrap_used)] // integration tests: a failed unwrap is a failed test

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tenancy_core::command::{
    self, AddOrganization, AddOrganizationDomain, RenameOrganization, VerifyOrganizationDomain,
};
use tenancy_core::event::NewEvent;
use tenancy_core::id::{InstanceId, OrgId};
use tenancy_eventstore::PgEventStore;
use tenancy_eventstore::import::{ImportRow, import_rows};
use tenancy_postgres::PgStore;
use tenancy_projection::{Engine, EngineConfig, Outcome};
use tenancy_testkit::db::TestDatabase;
use tenancy_testkit::fixtures;
use tenancy_testkit::stream::{Rng, Shape, churn, churn_shaped, event as ev, inst, org};
use tenancy_testkit::verify::assert_verified;

fn config() -> EngineConfig {
    EngineConfig {
        batch_size: 50,
        max_failure_count: 3,
        workers: 2,
        ..EngineConfig::default()
    }
}

async fn scalar(db: &TestDatabase, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(&db.pool).await.unwrap()
}

async fn text(db: &TestDatabase, sql: &'static str) -> String {
    let rows: Vec<String> = sqlx::query_scalar(sql).fetch_all(&db.pool).await.unwrap();
    rows.join("\n")
}

#[tokio::test]
async fn every_event_type_has_its_effect() {
    let db = TestDatabase::fresh().await.unwrap();
    let store = PgEventStore::new(db.pool.clone());
    let engine = Engine::new(db.pool.clone(), config());
    let i = "i1";
    store.push(vec![
        inst(i, "instance.added", json!({"name": "ACME"})),
        inst(i, "instance.changed", json!({"name": "ACME Corp"})),
        inst(i, "instance.default.org.set", json!({"orgId": "o1"})),
        inst(i, "instance.iam.project.set", json!({"iamProjectId": "p1"})),
        inst(i, "instance.iam.console.set", json!({"clientId": "c1", "appId": "a1"})),
        inst(i, "instance.default.language.set", json!({"language": "de"})),
        inst(i, "instance.domain.added", json!({"domain": "Gen.Example", "generated": true})),
        inst(i, "instance.domain.added", json!({"domain": "custom.example"})),
        inst(i, "instance.domain.primary.set", json!({"domain": "gen.example"})),
        inst(i, "instance.domain.primary.set", json!({"domain": "custom.example"})),
        inst(i, "instance.domain.removed", json!({"domain": "gen.example"})),
        inst(i, "instance.trusted_domains.added", json!({"domain": "t1.example"})),
        inst(i, "instance.trusted_domains.added", json!({"domain": "t2.example"})),
        inst(i, "instance.trusted_domains.removed", json!({"domain": "t2.example"})),
        org(i, "o1", "org.added", json!({"name": "Sales"})),
        org(i, "o1", "org.changed", json!({"name": "Sales EU"})),
        org(i, "o1", "org.changed", json!({})),
        org(i, "o2", "org.added", json!({"name": "Ops"})),
        org(i, "o2", "org.deactivated", json!({})),
        org(i, "o3", "org.added", json!({"name": "Gone"})),
        org(i, "o3", "org.deactivated", json!({})),
        org(i, "o3", "org.reactivated", json!({})),
        org(i, "o1", "org.domain.added", json!({"domain": "sales.example"})),
        org(i, "o1", "org.domain.added", json!({"domain": "eu.sales.example"})),
        org(i, "o1", "org.domain.verification.added", json!({"domain": "sales.example", "validationType": 2, "validationCode": {"crypted": "x"}})),
        org(i, "o1", "org.domain.verification.failed", json!({"domain": "sales.example"})),
        org(i, "o1", "org.domain.verified", json!({"domain": "sales.example"})),
        org(i, "o1", "org.domain.primary.set", json!({"domain": "sales.example"})),
        org(i, "o1", "org.domain.verification.added", json!({"domain": "eu.sales.example", "validationType": 1})),
        org(i, "o1", "org.domain.removed", json!({"domain": "eu.sales.example"})),
        org(i, "o3", "org.domain.added", json!({"domain": "gone.example"})),
        org(i, "o3", "org.removed", json!({})),
        org(i, "o9", "org.changed", json!({"name": "no such org"})),
    ]).await.unwrap();
    store
        .push(vec![ev("", "system", "s", "system.thing", json!({}))])
        .await
        .unwrap();
    store
        .push(vec![ev(i, "user", "u1", "user.added", json!({"x": 1}))])
        .await
        .unwrap();
    let outcome = engine.run_until_caught_up(|_, _, _| {}).await.unwrap();
    assert_eq!((outcome.applied, outcome.failed), (33, 0), "{outcome:?}");

    assert_eq!(text(&db, "SELECT concat_ws('|', name, default_org_id, iam_project_id, console_client_id, console_app_id, default_language) FROM instances").await,
        "ACME Corp|o1|p1|c1|a1|de");
    assert_eq!(text(&db, "SELECT concat_ws('|', domain, type, is_primary, is_generated) FROM instance_domains ORDER BY domain").await,
        "custom.example|custom|t|f\nt1.example|trusted");
    assert_eq!(text(&db, "SELECT concat_ws('|', id, name, state, deleted_at IS NOT NULL) FROM organizations ORDER BY id").await,
        "o1|Sales EU|active|f\no2|Ops|inactive|f\no3|Gone|active|t");
    assert_eq!(text(&db, "SELECT concat_ws('|', org_id, domain, is_verified, is_primary, validation_type) FROM org_domains ORDER BY domain").await,
        "o1|sales.example|t|t|dns");
    assert_eq!(text(&db, "SELECT concat_ws('|', coalesce(org_id, '-'), domain, is_verified, is_primary, validation_type, deleted_at IS NOT NULL) FROM domains ORDER BY id").await,
        "-|Gen.Example|t|f|t\n-|custom.example|t|t|f\no1|sales.example|t|t|2|f\no1|eu.sales.example|f|f|1|t\no3|gone.example|f|f|t");
    // Rows get the event time.
    assert_eq!(scalar(&db, "SELECT count(*) FROM organizations o JOIN eventstore.events2 e ON e.aggregate_id = o.id AND e.event_type = 'org.added' WHERE o.created_at <> e.created_at").await, 0);
    assert_verified(&engine).await;

    store
        .push(vec![inst(
            i,
            "instance.removed",
            json!({"name": "x", "domains": ["custom.example"]}),
        )])
        .await
        .unwrap();
    engine.run_until_caught_up(|_, _, _| {}).await.unwrap();
    assert_eq!(
        scalar(
            &db,
            "SELECT count(*) FROM instances WHERE deleted_at IS NULL"
        )
        .await,
        0
    );
    assert_eq!(
        scalar(
            &db,
            "SELECT count(*) FROM organizations WHERE deleted_at IS NULL"
        )
        .await,
        0
    );
    assert_eq!(
        scalar(&db, "SELECT count(*) FROM instance_domains").await
            + scalar(&db, "SELECT count(*) FROM org_domains").await,
        0
    );
    assert_eq!(
        scalar(&db, "SELECT count(*) FROM domains WHERE deleted_at IS NULL").await,
        0
    );
    assert_verified(&engine).await;
}

async fn push_all(store: &PgEventStore, pushes: Vec<Vec<NewEvent>>) -> u64 {
    let mut n = 0;
    for push in pushes {
        n += push.len() as u64;
        store.push(push).await.unwrap();
    }
    n
}

async fn table_snapshot(db: &TestDatabase) -> String {
    let mut out = String::new();
    for sql in [
        "SELECT string_agg(t::text, E'\\n' ORDER BY t::text) FROM instances t",
        "SELECT string_agg(t::text, E'\\n' ORDER BY t::text) FROM organizations t",
        "SELECT string_agg(t::text, E'\\n' ORDER BY t::text) FROM instance_domains t",
        "SELECT string_agg(t::text, E'\\n' ORDER BY t::text) FROM org_domains t",
        "SELECT string_agg((instance_id, org_id, domain, is_verified, is_primary, validation_type, created_at, updated_at, deleted_at)::text, E'\\n' ORDER BY (instance_id, org_id, domain, created_at)::text) FROM domains",
    ] {
        let part: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(&db.pool)
            .await
            .unwrap();
        out.push_str(&part.unwrap_or_default());
        out.push('\n');
    }
    out
}

#[tokio::test]
async fn a_long_churning_stream_verifies_and_rebuilds_identically() {
    let db = TestDatabase::fresh().await.unwrap();
    let store = PgEventStore::new(db.pool.clone());
    push_all(&store, churn(5, 400, 7)).await;
    let engine = Engine::new(db.pool.clone(), config());
    let first = engine.run_until_caught_up(|_, _, _| {}).await.unwrap();
    assert!(first.applied > 400, "{first:?}");
    assert!(
        engine.failed().await.unwrap().is_empty(),
        "transient cross-instance failures recover"
    );
    assert_verified(&engine).await;
    assert_eq!(engine.status().await.unwrap().events_behind, 0);
    let before = table_snapshot(&db).await;
    engine.rebuild().await.unwrap();
    assert_eq!(
        table_snapshot(&db).await,
        before,
        "rebuild then replay (in batches) gives the tables of the first (bulk) catch-up"
    );
    assert_verified(&engine).await;
}

/// Every row of the source's store, timestamps included, to import into other databases.
async fn stored_rows(source: &TestDatabase) -> Vec<ImportRow> {
    sqlx::query_as::<_, (String, String, String, String, i64, i16, time::OffsetDateTime, Option<serde_json::Value>, String, String, rust_decimal::Decimal, i32, bool)>(
        "SELECT instance_id, aggregate_type, aggregate_id, event_type, \"sequence\", revision, created_at, payload,
                creator, \"owner\", \"position\", in_tx_order, written_by_v3 FROM eventstore.events2",
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
    .collect()
}

#[tokio::test]
async fn custom_domains_moving_between_instances_never_fail() {
    // Domains released by one instance and taken by another all along the stream. Projected
    // independently, an instance must not take a domain while another one has not yet
    // replayed its own earlier add of it, whether in batches, in bulk, or both side by
    // side: no failure is recorded, and every way ends with the fold's tables.
    let source = TestDatabase::fresh().await.unwrap();
    let shape = Shape {
        instances: 12,
        orgs: 4,
        moves: true,
    };
    push_all(
        &PgEventStore::new(source.pool.clone()),
        churn_shaped(shape, 1_200, 42),
    )
    .await;
    let rows = stored_rows(&source).await;
    let moved: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT lower(payload->>'domain') FROM eventstore.events2
         WHERE event_type = 'instance.domain.added' GROUP BY 1 HAVING count(DISTINCT instance_id) > 1) t",
    )
    .fetch_one(&source.pool)
    .await
    .unwrap();
    assert!(moved > 20, "the stream moves domains: {moved}");
    // At the median size, half of the instances are caught up in bulk and the other half
    // replay in batches, side by side.
    let median: i64 = sqlx::query_scalar(
        "SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY n) FROM
             (SELECT count(*) AS n FROM eventstore.events2 GROUP BY instance_id) t",
    )
    .fetch_one(&source.pool)
    .await
    .unwrap();
    let mut snapshots = Vec::new();
    for bulk_limit in [0, median as u32, 100_000] {
        let db = TestDatabase::fresh().await.unwrap();
        import_rows(&db.pool, &rows).await.unwrap();
        let engine = Engine::new(
            db.pool.clone(),
            EngineConfig {
                bulk_limit,
                workers: 4,
                ..config()
            },
        );
        let outcome = engine.run_until_caught_up(|_, _, _| {}).await.unwrap();
        let failed = engine.failed().await.unwrap();
        assert!(
            failed.is_empty(),
            "bulk_limit {bulk_limit}: {outcome:?}, first failure {:?}",
            failed.first()
        );
        assert_eq!(engine.status().await.unwrap().events_behind, 0);
        assert_verified(&engine).await;
        snapshots.push(table_snapshot(&db).await);
    }
    for snapshot in &snapshots[1..] {
        assert_eq!(snapshot, &snapshots[0], "bulk vs batches");
    }
}

#[tokio::test]
async fn bulk_catch_up_writes_the_same_tables_as_batches() {
    // Fresh instances are folded in memory and written set-based; with `bulk_limit` 0
    // everything goes through batches; with a small limit the rest of each instance follows
    // in batches. The churn ends with a custom domain moving between instances, so one
    // instance's bulk write meets a domain the other still holds and falls back.
    let source = TestDatabase::fresh().await.unwrap();
    push_all(&PgEventStore::new(source.pool.clone()), churn(6, 500, 23)).await;
    let rows = stored_rows(&source).await;
    let mut snapshots = Vec::new();
    for bulk_limit in [0, 40, 100_000] {
        let db = TestDatabase::fresh().await.unwrap();
        import_rows(&db.pool, &rows).await.unwrap();
        let engine = Engine::new(
            db.pool.clone(),
            EngineConfig {
                bulk_limit,
                ..config()
            },
        );
        let outcome = engine.run_until_caught_up(|_, _, _| {}).await.unwrap();
        assert!(
            engine.failed().await.unwrap().is_empty(),
            "bulk_limit {bulk_limit}: {outcome:?}"
        );
        assert_eq!(engine.status().await.unwrap().events_behind, 0);
        assert_verified(&engine).await;
        snapshots.push((bulk_limit, table_snapshot(&db).await));
    }
    for (bulk_limit, snapshot) in &snapshots[1..] {
        assert_eq!(
            snapshot, &snapshots[0].1,
            "bulk_limit {bulk_limit} vs batches"
        );
    }
}

#[tokio::test]
async fn an_interrupted_prefill_resumes_without_double_application() {
    let db = TestDatabase::fresh().await.unwrap();
    let store = PgEventStore::new(db.pool.clone());
    let total = push_all(&store, churn(4, 300, 11)).await;
    let engine = Engine::new(
        db.pool.clone(),
        EngineConfig {
            batch_size: 7,
            ..config()
        },
    );
    let mut rng = Rng(3);
    for _ in 0..8 {
        let worker = engine.clone();
        let task = tokio::spawn(async move { worker.run_until_caught_up(|_, _, _| {}).await });
        tokio::time::sleep(std::time::Duration::from_millis(5 + rng.next(60))).await;
        task.abort();
        let _ = task.await;
    }
    // A dropped connection mid-batch: kill the engine's backends once.
    let worker = engine.clone();
    let task = tokio::spawn(async move { worker.run_until_caught_up(|_, _, _| {}).await });
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    let killer = tenancy_testkit::db::TestDatabase::fresh().await.unwrap();
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()")
        .bind(&db.name)
        .execute(&killer.pool)
        .await
        .unwrap();
    let _ = task.await;
    let last = engine.run_until_caught_up(|_, _, _| {}).await.unwrap();
    eprintln!("last run: {last:?}");
    assert!(
        engine.failed().await.unwrap().is_empty(),
        "{:?}",
        engine.failed().await.unwrap()
    );
    assert!(
        engine.metrics().applied_total() <= total,
        "no event applied twice: {} > {total}",
        engine.metrics().applied_total()
    );
    assert_verified(&engine).await;
}

#[tokio::test]
async fn two_engines_at_once_apply_each_event_once() {
    let db = TestDatabase::fresh().await.unwrap();
    let store = PgEventStore::new(db.pool.clone());
    let total = push_all(&store, churn(6, 300, 5)).await;
    let (a, b) = (
        Engine::new(db.pool.clone(), config()),
        Engine::new(db.pool.clone(), config()),
    );
    let (ra, rb) = tokio::join!(
        a.run_until_caught_up(|_, _, _| {}),
        b.run_until_caught_up(|_, _, _| {})
    );
    let (ra, rb): (Outcome, Outcome) = (ra.unwrap(), rb.unwrap());
    // Anything a busy instance left is finished by one more run.
    let rest = a.run_until_caught_up(|_, _, _| {}).await.unwrap();
    // A cross-instance dependency (inst1 re-using inst0's custom domain) may fail once while
    // the instances run in parallel; it is retried and recovers, leaving nothing listed.
    assert!(
        a.failed().await.unwrap().is_empty(),
        "{:?}",
        a.failed().await.unwrap()
    );
    let applied = a.metrics().applied_total() + b.metrics().applied_total();
    let skipped = ra.skipped + rb.skipped + rest.skipped;
    assert_eq!(
        applied + skipped,
        total,
        "every event exactly once ({ra:?} {rb:?} {rest:?})"
    );
    assert_verified(&a).await;
}

#[tokio::test]
async fn poison_events_are_recorded_skipped_and_retried() {
    let db = TestDatabase::fresh().await.unwrap();
    let store = PgEventStore::new(db.pool.clone());
    store
        .push(vec![
            inst("i", "instance.added", json!({"name": "I"})),
            org("i", "o", "org.added", json!({"name": "O"})),
        ])
        .await
        .unwrap();
    store
        .push(vec![org(
            "i",
            "o",
            "org.domain.added",
            json!({"domain": "a.example"}),
        )])
        .await
        .unwrap();
    let mut broken = org("i", "o", "org.domain.added", json!({}));
    broken.payload = Some(json!("not an object"));
    store.push(vec![broken]).await.unwrap();
    store
        .push(vec![org(
            "i",
            "o",
            "org.domain.verification.added",
            json!({"domain": "a.example", "validationType": 0}),
        )])
        .await
        .unwrap();
    store
        .push(vec![org("i", "o", "org.changed", json!({"name": "After"}))])
        .await
        .unwrap();
    store
        .push(vec![inst("j", "instance.added", json!({"name": "J"}))])
        .await
        .unwrap();
    let engine = Engine::new(db.pool.clone(), config());
    let outcome = engine.run_until_caught_up(|_, _, _| {}).await.unwrap();
    assert!(outcome.failed >= 2, "{outcome:?}");
    let failed = engine.failed().await.unwrap();
    assert_eq!(failed.len(), 2);
    assert!(failed.iter().all(|f| f.failure_count == 3), "{failed:?}");
    assert!(
        failed[0].error.contains("payload") || failed[1].error.contains("payload"),
        "{failed:?}"
    );
    assert!(
        failed.iter().any(|f| f.error.contains("validationType")),
        "{failed:?}"
    );
    assert_eq!(
        text(&db, "SELECT name FROM organizations").await,
        "After",
        "later events continue"
    );
    assert_eq!(
        scalar(&db, "SELECT count(*) FROM instances").await,
        2,
        "other instances continue"
    );

    // Fix the cause, then retry.
    sqlx::query("UPDATE eventstore.events2 SET payload = '{\"domain\": \"a.example\", \"validationType\": 1}' WHERE event_type = 'org.domain.verification.added'")
        .execute(&db.pool).await.unwrap();
    let poisoned = failed
        .iter()
        .find(|f| f.error.contains("validationType"))
        .unwrap();
    let retried = engine
        .retry(
            &poisoned.instance_id,
            &poisoned.aggregate_type,
            &poisoned.aggregate_id,
            poisoned.failed_sequence,
        )
        .await
        .unwrap();
    assert_eq!(retried, tenancy_projection::RetryOutcome::Applied);
    assert_eq!(
        text(&db, "SELECT validation_type::text FROM org_domains").await,
        "http"
    );
    let other = engine.failed().await.unwrap();
    assert_eq!(other.len(), 1);
    assert!(
        engine
            .retry(
                &other[0].instance_id,
                &other[0].aggregate_type,
                &other[0].aggregate_id,
                other[0].failed_sequence
            )
            .await
            .is_err(),
        "still broken"
    );
    assert!(
        engine
            .dismiss(
                &other[0].instance_id,
                &other[0].aggregate_type,
                &other[0].aggregate_id,
                other[0].failed_sequence
            )
            .await
            .unwrap()
    );
    assert!(engine.failed().await.unwrap().is_empty());
}

#[tokio::test]
async fn v3_commands_and_legacy_writers_interleave_without_double_apply() {
    let db = TestDatabase::fresh().await.unwrap();
    let events = Arc::new(PgEventStore::new(db.pool.clone()));
    let pg = PgStore::with_events(db.pool.clone(), events.clone());
    let engine = Engine::new(db.pool.clone(), config());
    let ctx = fixtures::context();
    events
        .push(vec![inst("i", "instance.added", json!({"name": "I"}))])
        .await
        .unwrap();
    engine.run_until_caught_up(|_, _, _| {}).await.unwrap();
    let instance = InstanceId::new("i").unwrap();
    let o1 = command::run(
        &pg,
        &ctx,
        &AddOrganization {
            id: None,
            instance_id: instance.clone(),
            name: "V3 Org".into(),
        },
    )
    .await
    .unwrap();
    events
        .push(vec![org(
            "i",
            "legacy",
            "org.added",
            json!({"name": "Legacy Org"}),
        )])
        .await
        .unwrap();
    command::run(
        &pg,
        &ctx,
        &AddOrganizationDomain {
            instance_id: instance.clone(),
            org_id: o1.clone(),
            domain: "v3.example".into(),
        },
    )
    .await
    .unwrap();
    events
        .push(vec![org(
            "i",
            "legacy",
            "org.domain.added",
            json!({"domain": "v3.example"}),
        )])
        .await
        .unwrap();
    engine.run_until_caught_up(|_, _, _| {}).await.unwrap();
    command::run(
        &pg,
        &ctx,
        &VerifyOrganizationDomain {
            instance_id: instance.clone(),
            org_id: o1.clone(),
            domain: "v3.example".into(),
        },
    )
    .await
    .unwrap();
    command::run(
        &pg,
        &ctx,
        &RenameOrganization {
            instance_id: instance.clone(),
            org_id: OrgId::new("legacy").unwrap(),
            name: "Renamed by v3".into(),
        },
    )
    .await
    .unwrap();
    let outcome = engine.run_until_caught_up(|_, _, _| {}).await.unwrap();
    assert_eq!(outcome.failed, 0);
    assert_eq!(
        scalar(&db, "SELECT count(*) FROM domains").await,
        2,
        "no double apply"
    );
    assert_eq!(
        text(&db, "SELECT name FROM organizations ORDER BY name").await,
        "Renamed by v3\nV3 Org"
    );
    assert_verified(&engine).await;
}

#[tokio::test]
async fn continuous_mode_applies_pushed_events_and_stops_gracefully() {
    let db = TestDatabase::fresh().await.unwrap();
    let store = PgEventStore::new(db.pool.clone());
    let engine = Engine::new(
        db.pool.clone(),
        EngineConfig {
            sweep_interval: std::time::Duration::from_secs(3600),
            ..config()
        },
    );
    let running = engine.spawn_continuous();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    store
        .push(vec![inst(
            "live",
            "instance.added",
            json!({"name": "Live"}),
        )])
        .await
        .unwrap();
    let mut seen = false;
    for _ in 0..100 {
        if scalar(&db, "SELECT count(*) FROM instances").await == 1 {
            seen = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        seen,
        "a pushed event becomes visible through LISTEN/NOTIFY, without waiting for the sweep"
    );
    tokio::time::timeout(std::time::Duration::from_secs(5), running.stop())
        .await
        .unwrap()
        .unwrap();
}

/// Every v3 command against PostgreSQL: rows and events are written together, a command
/// that breaks a rule writes nothing, and the fold of the v3 events equals the tables.
#[tokio::test]
async fn every_v3_command_end_to_end_matches_the_fold_of_its_events() {
    use tenancy_core::Error;
    use tenancy_core::command::*;
    use tenancy_core::model::ValidationType;
    let db = TestDatabase::fresh().await.unwrap();
    let pg = PgStore::with_events(
        db.pool.clone(),
        Arc::new(PgEventStore::new(db.pool.clone())),
    );
    let ctx = fixtures::context();
    let engine = Engine::new(db.pool.clone(), config());
    let events = || {
        scalar(
            &db,
            "SELECT count(*) FROM eventstore.events2 WHERE written_by_v3",
        )
    };

    let i = command::run(
        &pg,
        &ctx,
        &AddInstance {
            name: "ACME".into(),
        },
    )
    .await
    .unwrap();
    command::run(
        &pg,
        &ctx,
        &RenameInstance {
            instance_id: i.clone(),
            name: "ACME Corp".into(),
        },
    )
    .await
    .unwrap();
    command::run(
        &pg,
        &ctx,
        &SetInstanceIamProject {
            instance_id: i.clone(),
            iam_project_id: "p1".into(),
        },
    )
    .await
    .unwrap();
    command::run(
        &pg,
        &ctx,
        &SetInstanceConsole {
            instance_id: i.clone(),
            client_id: "c1".into(),
            app_id: "a1".into(),
        },
    )
    .await
    .unwrap();
    command::run(
        &pg,
        &ctx,
        &SetInstanceDefaultLanguage {
            instance_id: i.clone(),
            language: "de-CH".into(),
        },
    )
    .await
    .unwrap();
    for (d, generated) in [
        ("gen.acme.example", true),
        ("login.acme.example", false),
        ("old.acme.example", false),
    ] {
        command::run(
            &pg,
            &ctx,
            &AddInstanceDomain {
                instance_id: i.clone(),
                domain: d.into(),
                generated,
            },
        )
        .await
        .unwrap();
    }
    command::run(
        &pg,
        &ctx,
        &SetInstanceDomainPrimary {
            instance_id: i.clone(),
            domain: "gen.acme.example".into(),
        },
    )
    .await
    .unwrap();
    command::run(
        &pg,
        &ctx,
        &SetInstanceDomainPrimary {
            instance_id: i.clone(),
            domain: "login.acme.example".into(),
        },
    )
    .await
    .unwrap();
    command::run(
        &pg,
        &ctx,
        &RemoveInstanceDomain {
            instance_id: i.clone(),
            domain: "old.acme.example".into(),
        },
    )
    .await
    .unwrap();
    command::run(
        &pg,
        &ctx,
        &AddInstanceTrustedDomain {
            instance_id: i.clone(),
            domain: "t1.example".into(),
        },
    )
    .await
    .unwrap();
    command::run(
        &pg,
        &ctx,
        &AddInstanceTrustedDomain {
            instance_id: i.clone(),
            domain: "t2.example".into(),
        },
    )
    .await
    .unwrap();
    command::run(
        &pg,
        &ctx,
        &RemoveInstanceTrustedDomain {
            instance_id: i.clone(),
            domain: "t2.example".into(),
        },
    )
    .await
    .unwrap();
    let sales = command::run(
        &pg,
        &ctx,
        &AddOrganization {
            id: None,
            instance_id: i.clone(),
            name: "Sales".into(),
        },
    )
    .await
    .unwrap();
    let ops = command::run(
        &pg,
        &ctx,
        &AddOrganization {
            id: None,
            instance_id: i.clone(),
            name: "Ops".into(),
        },
    )
    .await
    .unwrap();
    command::run(
        &pg,
        &ctx,
        &SetInstanceDefaultOrg {
            instance_id: i.clone(),
            org_id: sales.clone(),
        },
    )
    .await
    .unwrap();
    command::run(
        &pg,
        &ctx,
        &RenameOrganization {
            instance_id: i.clone(),
            org_id: ops.clone(),
            name: "Operations".into(),
        },
    )
    .await
    .unwrap();
    command::run(
        &pg,
        &ctx,
        &DeactivateOrganization {
            instance_id: i.clone(),
            org_id: ops.clone(),
        },
    )
    .await
    .unwrap();
    command::run(
        &pg,
        &ctx,
        &ReactivateOrganization {
            instance_id: i.clone(),
            org_id: ops.clone(),
        },
    )
    .await
    .unwrap();
    for d in ["sales.example", "eu.sales.example"] {
        command::run(
            &pg,
            &ctx,
            &AddOrganizationDomain {
                instance_id: i.clone(),
                org_id: sales.clone(),
                domain: d.into(),
            },
        )
        .await
        .unwrap();
        command::run(
            &pg,
            &ctx,
            &AddOrganizationDomainVerification {
                instance_id: i.clone(),
                org_id: sales.clone(),
                domain: d.into(),
                validation_type: ValidationType::Http,
            },
        )
        .await
        .unwrap();
        command::run(
            &pg,
            &ctx,
            &VerifyOrganizationDomain {
                instance_id: i.clone(),
                org_id: sales.clone(),
                domain: d.into(),
            },
        )
        .await
        .unwrap();
    }
    command::run(
        &pg,
        &ctx,
        &SetOrganizationDomainPrimary {
            instance_id: i.clone(),
            org_id: sales.clone(),
            domain: "sales.example".into(),
        },
    )
    .await
    .unwrap();
    command::run(
        &pg,
        &ctx,
        &RemoveOrganizationDomain {
            instance_id: i.clone(),
            org_id: sales.clone(),
            domain: "eu.sales.example".into(),
        },
    )
    .await
    .unwrap();
    command::run(
        &pg,
        &ctx,
        &AddOrganizationDomain {
            instance_id: i.clone(),
            org_id: ops.clone(),
            domain: "ops.example".into(),
        },
    )
    .await
    .unwrap();
    command::run(
        &pg,
        &ctx,
        &RemoveOrganization {
            instance_id: i.clone(),
            org_id: ops.clone(),
        },
    )
    .await
    .unwrap();
    let before = events().await;
    assert_eq!(before, 30, "one event per successful command");

    // Rule violations: typed errors, nothing written.
    let broken: Vec<Result<(), Error>> = vec![
        command::run(
            &pg,
            &ctx,
            &RemoveOrganization {
                instance_id: i.clone(),
                org_id: sales.clone(),
            },
        )
        .await,
        command::run(
            &pg,
            &ctx,
            &RemoveInstanceDomain {
                instance_id: i.clone(),
                domain: "gen.acme.example".into(),
            },
        )
        .await,
        command::run(
            &pg,
            &ctx,
            &RemoveInstanceDomain {
                instance_id: i.clone(),
                domain: "login.acme.example".into(),
            },
        )
        .await,
        command::run(
            &pg,
            &ctx,
            &RemoveOrganizationDomain {
                instance_id: i.clone(),
                org_id: sales.clone(),
                domain: "sales.example".into(),
            },
        )
        .await,
        command::run(
            &pg,
            &ctx,
            &ReactivateOrganization {
                instance_id: i.clone(),
                org_id: sales.clone(),
            },
        )
        .await,
        command::run(
            &pg,
            &ctx,
            &RenameOrganization {
                instance_id: i.clone(),
                org_id: ops.clone(),
                name: "x".into(),
            },
        )
        .await,
        command::run(
            &pg,
            &ctx,
            &SetInstanceDefaultLanguage {
                instance_id: i.clone(),
                language: "not a tag".into(),
            },
        )
        .await,
        command::run(
            &pg,
            &ctx,
            &AddInstanceTrustedDomain {
                instance_id: i.clone(),
                domain: "T1.example".into(),
            },
        )
        .await
        .map(drop),
    ];
    for result in &broken {
        assert!(result.is_err(), "{broken:?}");
    }
    assert_eq!(events().await, before, "failed commands push nothing");
    assert_verified(&engine).await;

    // An import of these events into an empty store fills the unique constraints the
    // commands kept (`tenancy events import`).
    assert_import_keeps_unique_constraints(&db).await;

    // The removal of the instance, then the fold still equals the tables.
    command::run(
        &pg,
        &ctx,
        &RemoveInstance {
            instance_id: i.clone(),
        },
    )
    .await
    .unwrap();
    assert_eq!(
        scalar(&db, "SELECT count(*) FROM domains WHERE deleted_at IS NULL").await,
        0
    );
    let gone = command::run(
        &pg,
        &ctx,
        &RenameInstance {
            instance_id: i.clone(),
            name: "Back".into(),
        },
    )
    .await;
    assert!(matches!(gone, Err(Error::NotFound { .. })), "{gone:?}");
    assert_verified(&engine).await;
    // The projection skips v3 events: nothing applied twice.
    let outcome = engine.run_until_caught_up(|_, _, _| {}).await.unwrap();
    assert_eq!((outcome.applied, outcome.failed), (0, 0));
    assert_verified(&engine).await;
}

/// Exports `db`'s events, imports them into a fresh database, and compares the unique
/// constraints: the import derives them from the fold, the commands kept them as they went.
async fn assert_import_keeps_unique_constraints(db: &TestDatabase) {
    let rows = stored_rows(db).await;
    let uniques = "SELECT instance_id || ' ' || unique_type || ' ' || unique_field FROM eventstore.unique_constraints ORDER BY 1";
    let kept: Vec<String> = sqlx::query_scalar(uniques)
        .fetch_all(&db.pool)
        .await
        .unwrap();
    assert!(kept.len() >= 3, "{kept:?}");
    let other = TestDatabase::fresh().await.unwrap();
    import_rows(&other.pool, &rows).await.unwrap();
    let imported: Vec<String> = sqlx::query_scalar(uniques)
        .fetch_all(&other.pool)
        .await
        .unwrap();
    assert_eq!(imported, kept);
}

/// Issue 25: a custom domain held by an instance that was removed, then added by another
/// instance. A prefill gets it right; `rebuild` recorded "already exists: custom instance
/// domain" failures and left rows different from the fold.
#[tokio::test]
async fn rebuild_equals_the_prefill_when_removed_instances_released_their_domains() {
    let db = TestDatabase::fresh().await.unwrap();
    let store = PgEventStore::new(db.pool.clone());
    let mut pushes = churn_shaped(
        Shape {
            instances: 6,
            orgs: 2,
            moves: true,
        },
        300,
        11,
    );
    for k in 0..8 {
        let (old, new) = (format!("gone{k}"), format!("heir{k}"));
        let domains = [format!("d{k}a.example"), format!("D{k}b.example")];
        let mut held = vec![inst(&old, "instance.added", json!({"name": old}))];
        for d in &domains {
            held.push(inst(&old, "instance.domain.added", json!({"domain": d})));
        }
        held.push(inst(
            &old,
            "instance.domain.primary.set",
            json!({"domain": domains[0]}),
        ));
        for n in 0..60 {
            held.push(inst(
                &old,
                "instance.changed",
                json!({"name": format!("{old}-{n}")}),
            ));
        }
        pushes.insert(k * 20, held);
        pushes.push(vec![inst(&old, "instance.removed", json!({}))]);
        let mut heir = vec![inst(&new, "instance.added", json!({"name": new}))];
        for d in &domains {
            heir.push(inst(
                &new,
                "instance.domain.added",
                json!({"domain": d.to_lowercase()}),
            ));
        }
        pushes.push(heir);
    }
    push_all(&store, pushes).await;
    let engine = Engine::new(
        db.pool.clone(),
        EngineConfig {
            workers: 4,
            ..config()
        },
    );
    engine.run_until_caught_up(|_, _, _| {}).await.unwrap();
    assert!(engine.failed().await.unwrap().is_empty(), "the prefill");
    assert_verified(&engine).await;
    let prefilled = table_snapshot(&db).await;

    let rebuilt = engine.rebuild().await.unwrap();
    let failed = engine.failed().await.unwrap();
    assert!(failed.is_empty(), "{rebuilt:?}: {:?}", failed.first());
    assert_eq!(rebuilt.failed, 0);
    assert_eq!(
        table_snapshot(&db).await,
        prefilled,
        "rebuild leaves what the prefill left"
    );
    assert_verified(&engine).await;

    // As `tenancy projections rebuild` runs it: a new process, nothing remembered.
    let cli = Engine::new(
        db.pool.clone(),
        EngineConfig {
            workers: 4,
            ..config()
        },
    );
    let rebuilt = cli.rebuild().await.unwrap();
    assert_eq!(rebuilt.failed, 0, "{rebuilt:?}");
    assert!(cli.failed().await.unwrap().is_empty());
    assert_eq!(table_snapshot(&db).await, prefilled);
}

/// Issue 25: a side-by-side rebuild leaves what a prefill leaves, on a stream where
/// domains move between instances and removed instances released theirs.
#[tokio::test]
async fn side_by_side_rebuild_equals_the_prefill() {
    let db = TestDatabase::fresh().await.unwrap();
    let store = PgEventStore::new(db.pool.clone());
    push_all(
        &store,
        churn_shaped(
            Shape {
                instances: 8,
                orgs: 3,
                moves: true,
            },
            400,
            23,
        ),
    )
    .await;
    let engine = Engine::new(
        db.pool.clone(),
        EngineConfig {
            workers: 4,
            ..config()
        },
    );
    engine.run_until_caught_up(|_, _, _| {}).await.unwrap();
    assert!(engine.failed().await.unwrap().is_empty());
    let prefilled = table_snapshot(&db).await;
    let rebuilt = engine
        .rebuild_side_by_side(Arc::new(|_, _, _| {}))
        .await
        .unwrap();
    assert!(!rebuilt.resumed);
    assert_eq!(table_snapshot(&db).await, prefilled);
    assert!(engine.failed().await.unwrap().is_empty());
    assert_eq!(
        engine.status().await.unwrap().events_behind,
        0,
        "the cursors came along"
    );
    assert_verified(&engine).await;
    // Autovacuum: on again for the new live tables, off for the replaced ones (no worker
    // holds a switch or a drop; see `generation::create_next`).
    assert_eq!(scalar(&db, LIVE_TABLES_WITHOUT_AUTOVACUUM).await, 0);
    assert_eq!(scalar(&db, PREVIOUS_TABLES_WITHOUT_AUTOVACUUM).await, 5);
    // The replaced generation is kept, then dropped on request.
    let previous: i64 = scalar(&db, "SELECT count(*) FROM tenancy_previous.instances").await;
    assert!(previous > 0);
    assert!(engine.drop_previous_generation().await.unwrap());
    assert!(!engine.drop_previous_generation().await.unwrap());
}

/// The live tables with autovacuum turned off.
const LIVE_TABLES_WITHOUT_AUTOVACUUM: &str = "SELECT count(*) FROM pg_class
     WHERE oid = ANY(ARRAY['instances', 'organizations', 'instance_domains', 'org_domains', 'domains']::regclass[])
       AND 'autovacuum_enabled=false' = ANY(reloptions)";
/// The replaced generation's tables with autovacuum turned off.
const PREVIOUS_TABLES_WITHOUT_AUTOVACUUM: &str = "SELECT count(*) FROM pg_class c
     JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = 'tenancy_previous' AND c.relkind = 'r'
       AND 'autovacuum_enabled=false' = ANY(c.reloptions)";

/// Issue 25: switching back to the generation a rebuild replaced — its very tables, caught
/// up with what was written since (legacy pushes and v3 commands) — and back again.
#[tokio::test]
async fn switching_back_restores_the_replaced_tables_caught_up() {
    let db = TestDatabase::fresh().await.unwrap();
    let events = Arc::new(PgEventStore::new(db.pool.clone()));
    let pg = PgStore::with_events(db.pool.clone(), events.clone());
    push_all(&events, churn(4, 150, 31)).await;
    let engine = Engine::new(db.pool.clone(), config());
    let refused = engine
        .switch_back(Arc::new(|_, _, _| {}))
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("no previous generation"),
        "{refused}"
    );
    engine.run_until_caught_up(|_, _, _| {}).await.unwrap();
    let table = "SELECT 'instances'::regclass::oid::bigint";
    let original = scalar(&db, table).await;
    engine
        .rebuild_side_by_side(Arc::new(|_, _, _| {}))
        .await
        .unwrap();
    let rebuilt = scalar(&db, table).await;
    assert_ne!(rebuilt, original);
    // Written after the switch: only the rebuilt generation has it so far.
    events
        .push(vec![inst(
            "after",
            "instance.added",
            json!({"name": "After"}),
        )])
        .await
        .unwrap();
    engine.run_until_caught_up(|_, _, _| {}).await.unwrap();
    let org_id = command::run(
        &pg,
        &fixtures::context(),
        &AddOrganization {
            id: None,
            instance_id: InstanceId::new("after").unwrap(),
            name: "Written by v3".into(),
        },
    )
    .await
    .unwrap();
    let before = table_snapshot(&db).await;
    let back = engine.switch_back(Arc::new(|_, _, _| {})).await.unwrap();
    assert!(back.resumed);
    assert_eq!(
        scalar(&db, table).await,
        original,
        "the replaced tables are live again"
    );
    assert_eq!(
        table_snapshot(&db).await,
        before,
        "nothing written since is missing"
    );
    let v3: i64 = sqlx::query_scalar("SELECT count(*) FROM organizations WHERE id = $1")
        .bind(org_id.as_str())
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(v3, 1);
    assert!(engine.failed().await.unwrap().is_empty());
    assert_eq!(engine.status().await.unwrap().events_behind, 0);
    assert_verified(&engine).await;
    assert_eq!(scalar(&db, LIVE_TABLES_WITHOUT_AUTOVACUUM).await, 0);
    assert_eq!(scalar(&db, PREVIOUS_TABLES_WITHOUT_AUTOVACUUM).await, 5);
    // And forth again: the rebuilt generation was kept.
    engine.switch_back(Arc::new(|_, _, _| {})).await.unwrap();
    assert_eq!(scalar(&db, table).await, rebuilt);
    assert_eq!(table_snapshot(&db).await, before);
    assert_verified(&engine).await;
}

/// Issue 25: during a side-by-side rebuild every live host keeps resolving (no
/// not-found, no error) while the live projection runs and two writers write — legacy
/// pushes and v3 commands —; interrupted, the rebuild resumes; a second one is refused;
/// after the switch the tables equal the fold of every event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn side_by_side_rebuild_under_load_never_takes_the_tables_away() {
    use tenancy_core::ports::InstanceRepository as _;
    let db = TestDatabase::fresh().await.unwrap();
    let events = Arc::new(PgEventStore::new(db.pool.clone()));
    let mut pushes = churn(6, 600, 31);
    let hosts: Vec<(String, String)> = (0..40)
        .map(|n| (format!("live{n}"), format!("host{n}.live.example")))
        .collect();
    for (instance, host) in &hosts {
        pushes.push(vec![
            inst(instance, "instance.added", json!({"name": instance})),
            inst(instance, "instance.domain.added", json!({"domain": host})),
        ]);
    }
    push_all(&events, pushes).await;
    let engine = Engine::new(
        db.pool.clone(),
        EngineConfig {
            workers: 2,
            ..config()
        },
    );
    engine.run_until_caught_up(|_, _, _| {}).await.unwrap();

    // The live projection, as `tenancy start` runs it.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let live = {
        let engine = engine.clone();
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            engine
                .run_continuous(async move {
                    let _ = stopped.wait_for(|s| *s).await;
                })
                .await
        })
    };
    let reader = {
        let pool = db.pool.clone();
        let hosts = hosts.clone();
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            let store = PgStore::new(pool);
            let (mut reads, mut missing) = (0u64, Vec::new());
            let mut rng = Rng(3);
            while !*stopped.borrow_and_update() {
                let (instance, host) = &hosts[usize::try_from(rng.next(40)).unwrap()];
                let mut session = store.session().await.unwrap();
                match session.instance_by_host(host).await {
                    Ok(found) => assert_eq!(found.id.as_str(), instance),
                    Err(e) => missing.push(format!("{host}: {e}")),
                }
                reads += 1;
            }
            (reads, missing)
        })
    };
    let writers = {
        let events = events.clone();
        let pool = db.pool.clone();
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            let v3 = PgStore::with_events(pool, events.clone());
            let ctx = fixtures::context();
            let mut n = 0;
            while !*stopped.borrow_and_update() {
                n += 1;
                let legacy = format!("late{}", n % 7);
                events
                    .push(vec![inst(
                        &legacy,
                        "instance.changed",
                        json!({"name": format!("late {n}")}),
                    )])
                    .await
                    .unwrap();
                let org = AddOrganization {
                    instance_id: InstanceId::new(format!("live{}", n % 40)).unwrap(),
                    id: None,
                    name: format!("v3 org {n}"),
                };
                command::run(&v3, &ctx, &org).await.unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            n
        })
    };

    // Interrupted once (the future dropped) while filling the next generation, then run
    // to the end.
    let filling = async {
        loop {
            let cursors: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM tenancy.current_states WHERE projection_name = 'relational_tables.next'",
            )
            .fetch_one(&db.pool)
            .await
            .unwrap();
            if cursors > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::select! {
        done = engine.rebuild_side_by_side(Arc::new(|_, _, _| {})) => panic!("not interrupted: {done:?}"),
        () = filling => {}
    }
    // The interrupted run's lock may take a moment to be released with its connection.
    let rebuilt = loop {
        match engine.rebuild_side_by_side(Arc::new(|_, _, _| {})).await {
            Err(tenancy_core::Error::PreconditionFailed(why))
                if why.contains("another rebuild") =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => break other.unwrap(),
        }
    };
    assert!(rebuilt.resumed, "{rebuilt:?}");
    eprintln!(
        "switch: live tables locked for {:?} ({rebuilt:?})",
        rebuilt.frozen_for
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = stop.send(true);
    let written = writers.await.unwrap();
    let (reads, missing) = reader.await.unwrap();
    live.await.unwrap().unwrap();
    assert!(
        written > 5 && reads > 100,
        "{written} writes, {reads} reads"
    );
    assert!(
        missing.is_empty(),
        "{} of {reads} lookups failed: {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    engine.run_until_caught_up(|_, _, _| {}).await.unwrap();
    assert!(engine.failed().await.unwrap().is_empty());
    assert_verified(&engine).await;
}

/// Issue 25: one rebuild at a time per database; the refusal names the holder.
#[tokio::test]
async fn a_second_rebuild_is_refused_naming_the_running_one() {
    let db = TestDatabase::fresh().await.unwrap();
    let mut holder = db.pool.acquire().await.unwrap();
    sqlx::query("SELECT pg_advisory_lock(hashtext('tenancy.rebuild'))")
        .execute(&mut *holder)
        .await
        .unwrap();
    let engine = Engine::new(db.pool.clone(), config());
    let refused = engine
        .rebuild_side_by_side(Arc::new(|_, _, _| {}))
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("another rebuild is running")
            && refused.to_string().contains("server process"),
        "{refused}"
    );
}
