//! Catch-up: N legacy events projected by the engine, against (a) a ZITADEL-style
//! projection in the same harness — one statement per table change, a savepoint around
//! each event, 200 events per transaction — and (b) the limit: the same final rows
//! written by one set-based load.

use std::collections::HashMap;
use std::time::Instant;

use anyhow::{Result, ensure};
use rust_decimal::Decimal;
use serde_json::json;
use sqlx::PgPool;
use tenancy_core::event::{EventQuery, LegacyEvent, StoredEvent};
use tenancy_core::id::InstanceId;
use tenancy_core::ports::{EventReader, UnitOfWork};
use tenancy_core::state::{InMemoryState, apply_change};
use tenancy_eventstore::PgEventStore;
use tenancy_eventstore::import::{ImportRow, import_rows};
use tenancy_postgres::PgStore;
use tenancy_projection::{Engine, EngineConfig, insert_rows, relational};
use tenancy_testkit::db::TestDatabase;
use tenancy_testkit::stream::churn;
use time::{Duration, OffsetDateTime};

use crate::{Args, Figure};

/// The stream as stored rows: sequences per aggregate, increasing positions.
pub fn stream_rows(instances: usize, events: usize, seed: u64) -> Vec<ImportRow> {
    let rounds = events.saturating_sub(instances * 6).max(1);
    let start = OffsetDateTime::now_utc() - Duration::days(30);
    let mut sequences: HashMap<(String, String, String), i64> = HashMap::new();
    let mut rows = Vec::with_capacity(events);
    for push in churn(instances, rounds, seed) {
        for (order, event) in push.into_iter().enumerate() {
            let n = rows.len() as i64;
            let key = (
                event.instance_id.clone(),
                event.aggregate_type.clone(),
                event.aggregate_id.clone(),
            );
            let sequence = sequences.entry(key).and_modify(|s| *s += 1).or_insert(1);
            rows.push(ImportRow {
                instance_id: event.instance_id,
                aggregate_type: event.aggregate_type,
                aggregate_id: event.aggregate_id,
                event_type: event.event_type,
                sequence: *sequence,
                revision: 1,
                created_at: start + Duration::microseconds(n),
                payload: event.payload,
                creator: event.creator,
                owner: event.owner,
                position: Decimal::new(start.unix_timestamp() * 1_000_000 + n, 6),
                in_tx_order: order as i32 + 1,
                written_by_v3: false,
            });
        }
    }
    rows
}

async fn loaded(rows: &[ImportRow]) -> Result<TestDatabase> {
    let db = TestDatabase::fresh().await?;
    for chunk in rows.chunks(200_000) {
        import_rows(&db.pool, chunk).await?;
    }
    sqlx::query("ANALYZE").execute(&db.pool).await?;
    Ok(db)
}

pub async fn run(args: &Args) -> Result<Vec<Figure>> {
    let (instances, events) = match (args.quick, args.instances, args.events) {
        (_, Some(i), Some(e)) => (i, e),
        (true, i, e) => (i.unwrap_or(50), e.unwrap_or(20_000)),
        (false, i, e) => (i.unwrap_or(1_000), e.unwrap_or(1_000_000)),
    };
    let rows = stream_rows(instances, events, 42);
    let n = rows.len() as f64;
    println!("catch-up: {} events over {instances} instances", rows.len());
    let config = EngineConfig::default();
    let parameters = json!({"events": rows.len(), "instances": instances, "batch_size": config.batch_size, "workers": config.workers});

    let (ours, verify_rate) = engine_run(&rows, config.clone()).await?;
    println!("  ours: {ours:.0} events/s; verify {verify_rate:.0} events/s");
    let batch_config = EngineConfig {
        bulk_limit: 0,
        ..config.clone()
    };
    let (batches, _) = engine_run(&rows, batch_config).await?;
    println!("  ours, batches only: {batches:.0} events/s");

    let db = loaded(&rows).await?;
    let started = Instant::now();
    zitadel_style(&db.pool, config.workers).await?;
    let zitadel = n / started.elapsed().as_secs_f64();
    println!("  ZITADEL-style: {zitadel:.0} events/s");
    drop(db);

    let db = loaded(&rows).await?;
    let state = fold(&rows)?;
    let started = Instant::now();
    set_based_load(&db.pool, &state).await?;
    let limit = n / started.elapsed().as_secs_f64();
    println!("  set-based limit: {limit:.0} events/s");
    drop(db);

    Ok(vec![
        Figure::throughput(
            "catch-up vs ZITADEL-style",
            ours,
            zitadel,
            "one statement per change, savepoint per event, 200 per tx",
            "events/s",
            parameters.clone(),
        ),
        Figure::throughput(
            "catch-up vs set-based limit",
            ours,
            limit,
            "final rows in one set-based load",
            "events/s",
            parameters.clone(),
        ),
        Figure::throughput(
            "catch-up, batches only vs ZITADEL-style",
            batches,
            zitadel,
            "one statement per change, savepoint per event, 200 per tx",
            "events/s",
            json!({"events": rows.len(), "instances": instances, "batch_size": config.batch_size, "workers": config.workers, "bulk_limit": 0}),
        ),
        Figure::throughput(
            "verify (fold + compare)",
            verify_rate,
            ours,
            "catch-up",
            "events/s",
            parameters,
        ),
    ])
}

/// The engine on a freshly loaded store: events/s of the catch-up, and of `verify` after it
/// (which must find no difference, and no event may fail).
async fn engine_run(rows: &[ImportRow], config: EngineConfig) -> Result<(f64, f64)> {
    let db = loaded(rows).await?;
    let engine = Engine::new(db.pool.clone(), config);
    let started = Instant::now();
    let outcome = engine.run_until_caught_up(|_, _, _| {}).await?;
    let rate = rows.len() as f64 / started.elapsed().as_secs_f64();
    let failed = engine.failed().await?;
    ensure!(
        outcome.failed == 0 && failed.is_empty(),
        "events failed: {outcome:?}: {failed:#?}"
    );
    let verify_started = Instant::now();
    let report = engine.verify().await?;
    let verify_rate = report.events as f64 / verify_started.elapsed().as_secs_f64();
    ensure!(
        report.is_equal(),
        "verify found {} differences: {:#?}",
        report.differences.len(),
        report.differences.iter().take(5).collect::<Vec<_>>()
    );
    Ok((rate, verify_rate))
}

/// The baseline: per instance, 200 events per transaction, each event in a savepoint.
async fn zitadel_style(pool: &PgPool, workers: usize) -> Result<()> {
    let instances: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT instance_id FROM eventstore.events2")
            .fetch_all(pool)
            .await?;
    let queue = std::sync::Arc::new(tokio::sync::Mutex::new(instances));
    let mut tasks = Vec::new();
    for _ in 0..workers.max(1) {
        let (pool, queue) = (pool.clone(), queue.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let Some(instance) = queue.lock().await.pop() else {
                    return Ok::<(), anyhow::Error>(());
                };
                project_instance(&pool, &instance).await?;
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(())
}

async fn project_instance(pool: &PgPool, instance: &str) -> Result<()> {
    let events = PgEventStore::new(pool.clone());
    let store = PgStore::new(pool.clone());
    let mut after = None;
    loop {
        let batch = events
            .read(&EventQuery {
                instance_id: instance.to_owned(),
                aggregate_types: relational::aggregate_types(),
                event_types: relational::event_types(),
                after: after.clone(),
                limit: Some(200),
                ..EventQuery::default()
            })
            .await?;
        let Some(last) = batch.last() else {
            return Ok(());
        };
        after = Some(last.sort_key());
        let mut session = store.transaction().await?;
        for event in &batch {
            sqlx::query("SAVEPOINT exec_stmt")
                .execute(session.conn()?)
                .await?;
            if apply_one(&mut session, event).await.is_ok() {
                sqlx::query("RELEASE SAVEPOINT exec_stmt")
                    .execute(session.conn()?)
                    .await?;
            } else {
                // As ZITADEL does: the failed event is rolled back and the batch goes on.
                // (Instances run in parallel, so a custom domain re-used by another
                // instance can conflict here; the engine defers such events instead.)
                sqlx::query("ROLLBACK TO SAVEPOINT exec_stmt")
                    .execute(session.conn()?)
                    .await?;
            }
        }
        cursor(&mut session, last).await?;
        session.commit().await?;
    }
}

async fn apply_one(session: &mut tenancy_postgres::PgSession, event: &StoredEvent) -> Result<()> {
    for change in relational::changes(event)? {
        apply_change(session, &change, event.created_at).await?;
    }
    Ok(())
}

async fn cursor(session: &mut tenancy_postgres::PgSession, last: &StoredEvent) -> Result<()> {
    sqlx::query(
        "INSERT INTO projections.current_states VALUES ('zitadel_style', $1, $2, $3, $4, $5, $6, $7, now())
         ON CONFLICT (projection_name, instance_id) DO UPDATE SET \"position\" = EXCLUDED.\"position\",
             in_tx_order = EXCLUDED.in_tx_order, \"sequence\" = EXCLUDED.\"sequence\"",
    )
    .bind(&last.instance_id)
    .bind(last.position)
    .bind(last.in_tx_order)
    .bind(&last.aggregate_type)
    .bind(&last.aggregate_id)
    .bind(last.sequence)
    .bind(last.created_at)
    .execute(session.conn()?)
    .await?;
    Ok(())
}

fn fold(rows: &[ImportRow]) -> Result<InMemoryState> {
    let mut state = InMemoryState::new();
    for row in rows {
        let event = LegacyEvent::decode(&row.event_type, row.payload.as_ref())?;
        state.apply_event(
            &InstanceId::new(row.instance_id.clone())?,
            &row.aggregate_id,
            &event,
            row.created_at,
        )?;
    }
    Ok(state)
}

/// The final rows, one multi-row statement per table (the engine's own set-based writer).
async fn set_based_load(pool: &PgPool, state: &InMemoryState) -> Result<()> {
    let mut tx = pool.begin().await?;
    insert_rows(&mut tx, state).await?;
    tx.commit().await?;
    Ok(())
}
