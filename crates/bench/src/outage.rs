//! Recovery after an outage: a store prefilled and projected, then events arriving — with
//! custom domains moving between instances all along — while the engine is stopped
//! (imported, `VACUUM ANALYZE`), then the engine started again. Its events/s against the
//! limit measured on a twin database in the same run, before and after the catch-up
//! (their mean): the outage's events read in order
//! (as many readers as the engine has workers, each instance after its cursor) and the
//! instances' final rows, folded beforehand outside the clock, written over their old ones
//! by DELETE and COPY in one transaction.

use std::collections::BTreeSet;
use std::time::Instant;

use anyhow::{Result, ensure};
use serde_json::json;
use sqlx::Connection;
use tenancy_core::event::EventQuery;
use tenancy_core::ports::EventReader;
use tenancy_eventstore::PgEventStore;
use tenancy_eventstore::import::{ImportRow, import_rows_with};
use tenancy_projection::{Engine, EngineConfig, relational};
use tenancy_testkit::db::TestDatabase;

use crate::catchup::{copy_rows, fold, loaded, stream_rows};
use crate::{Args, Figure};

pub async fn run(args: &Args) -> Result<Vec<Figure>> {
    let (instances, prefill, outage) = if args.quick {
        (30, 5_000, 15_000)
    } else {
        (430, 100_000, 300_000)
    };
    let rows = stream_rows(instances, prefill + outage, 42, true);
    // The outage starts at a push's first event: a push is one transaction.
    let split = (prefill..rows.len())
        .find(|&n| rows[n].in_tx_order == 1)
        .unwrap_or(rows.len());
    let (before, during) = rows.split_at(split);
    println!(
        "recovery after an outage: {} events projected, then {} events with moving domains over {instances} instances while stopped",
        before.len(),
        during.len()
    );
    let config = EngineConfig::default();
    // The limit is measured before and after the catch-up and averaged: on a shared
    // machine whose speed drifts within a run, one side measured once moved the ratio
    // by a quarter (0.43–0.58 in eight runs of the same build).
    let limit_before = limit_run(&rows, before, during, &config).await?;
    println!("  limit before: {limit_before:.0} events/s");

    let db = stopped_during_outage(before, during, &config).await?;
    let engine = Engine::new(db.pool.clone(), config.clone());
    println!("  stopped, {} events behind: catching up", during.len());
    let started = Instant::now();
    let outcome = engine.run_until_caught_up(|_, _, _| {}).await?;
    let ours = during.len() as f64 / started.elapsed().as_secs_f64();
    let failed = engine.failed().await?;
    ensure!(
        outcome.failed == 0 && failed.is_empty(),
        "events failed: {outcome:?}: {failed:#?}"
    );
    let report = engine.verify().await?;
    ensure!(
        report.is_equal(),
        "verify found {} differences: {:#?}",
        report.differences.len(),
        report.differences.iter().take(5).collect::<Vec<_>>()
    );
    drop(db);
    println!("  ours: {ours:.0} events/s");

    let limit_after = limit_run(&rows, before, during, &config).await?;
    let limit = (limit_before + limit_after) / 2.0;
    println!(
        "  limit (the outage's events read in order + DELETE and COPY of the final rows): {limit_before:.0} before, {limit_after:.0} after, {limit:.0} events/s; ratio {:.2} ({:.2} against the limit after only)",
        ours / limit,
        ours / limit_after
    );
    Ok(vec![Figure::throughput(
        "catch-up after an outage vs limit",
        ours,
        limit,
        "outage's events read in order + rows rewritten by COPY",
        "events/s",
        json!({"instances": instances, "prefilled": before.len(), "outage": during.len(), "moves": true,
               "limit_before": limit_before, "limit_after": limit_after,
               "workers": config.workers, "batch_size": config.batch_size, "path": "prefill, stop, import, VACUUM ANALYZE, catch-up"}),
    )])
}

/// A database whose engine projected `before`, then stopped while `during` arrived.
async fn stopped_during_outage(
    before: &[ImportRow],
    during: &[ImportRow],
    config: &EngineConfig,
) -> Result<TestDatabase> {
    let db = loaded(before).await?;
    let engine = Engine::new(db.pool.clone(), config.clone());
    let outcome = engine.run_until_caught_up(|_, _, _| {}).await?;
    ensure!(outcome.failed == 0, "the prefill failed: {outcome:?}");
    for chunk in during.chunks(200_000) {
        import_rows_with(&db.pool, chunk, false).await?;
    }
    sqlx::raw_sql("VACUUM ANALYZE").execute(&db.pool).await?;
    Ok(db)
}

/// The limit on a twin of the stopped database (see the module).
async fn limit_run(
    rows: &[ImportRow],
    before: &[ImportRow],
    during: &[ImportRow],
    config: &EngineConfig,
) -> Result<f64> {
    let db = stopped_during_outage(before, during, config).await?;
    let state = fold(rows)?;
    let touched: BTreeSet<String> = during.iter().map(|r| r.instance_id.clone()).collect();
    let every: BTreeSet<String> = rows.iter().map(|r| r.instance_id.clone()).collect();
    ensure!(
        touched == every,
        "the outage touches {} of {} instances: the limit rewrites them all",
        touched.len(),
        every.len()
    );
    let cursors: Vec<(String, Option<tenancy_core::event::SortKey>)> = {
        let mut conn = db.pool.acquire().await?;
        let state = relational::state();
        let mut cursors = Vec::new();
        for instance in &touched {
            cursors.push((instance.clone(), state.cursor(&mut conn, instance).await?));
        }
        cursors
    };
    let started = Instant::now();
    let queue = std::sync::Arc::new(tokio::sync::Mutex::new(cursors));
    let mut readers = Vec::new();
    for _ in 0..config.workers.max(1) {
        let (events, queue) = (PgEventStore::new(db.pool.clone()), queue.clone());
        readers.push(tokio::spawn(async move {
            let mut read = 0u64;
            loop {
                let Some((instance, mut after)) = queue.lock().await.pop() else {
                    return Ok::<u64, anyhow::Error>(read);
                };
                loop {
                    let batch = events
                        .read(&EventQuery {
                            instance_id: instance.clone(),
                            aggregate_types: relational::aggregate_types(),
                            event_types: relational::event_types(),
                            after: after.clone(),
                            limit: Some(500),
                            ..EventQuery::default()
                        })
                        .await?;
                    let Some(last) = batch.last() else { break };
                    after = Some(last.sort_key());
                    read += batch.len() as u64;
                }
            }
        }));
    }
    let mut read = 0;
    for reader in readers {
        read += reader.await??;
    }
    ensure!(
        read as usize == during.len(),
        "the limit read {read} of {} events",
        during.len()
    );
    let layout = tenancy_postgres::pool::layout_of(&db.options, None).await?;
    let options = db
        .options
        .clone()
        .options([("search_path", layout.search_path())]);
    let mut conn = sqlx::PgConnection::connect_with(&options).await?;
    let mut tx = conn.begin().await?;
    sqlx::raw_sql(
        "DELETE FROM domains; DELETE FROM org_domains; DELETE FROM instance_domains;
         DELETE FROM organizations; DELETE FROM instances;",
    )
    .execute(&mut *tx)
    .await?;
    copy_rows(&mut tx, &state).await?;
    tx.commit().await?;
    let rate = during.len() as f64 / started.elapsed().as_secs_f64();
    conn.close().await?;
    Ok(rate)
}
