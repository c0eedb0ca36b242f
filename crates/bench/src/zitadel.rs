//! Adopting a ZITADEL database next to a live ZITADEL (the fixtures of
//! `tenancy_testkit::zitadel`: the v4 layout with ZITADEL's own transactional tables).
//!
//! - **Push stall during `tenancy migrate`**: the store imported (N events), `VACUUM
//!   ANALYZE`, then a ZITADEL-style writer pushes one event at a time while `tenancy
//!   migrate` runs (schema, indexes on events2 CONCURRENTLY, then the prefill). The figure
//!   is the longest push; the baseline is the longest push of the same writer, on the same
//!   store, during the blocking index build earlier releases' migration 0001 did (`CREATE
//!   INDEX` on events2 inside a transaction). At two sizes: how the stall grows with the
//!   store.
//! - **Pick-up of ZITADEL pushes**: ZITADEL's push sends no notification; with the engine
//!   running continuously, the time from a push's commit to its row in tenancy's tables,
//!   against the same for tenancy's own push (which notifies).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::json;
use sqlx::PgPool;
use tenancy_core::event::NewEvent;
use tenancy_eventstore::PgEventStore;
use tenancy_eventstore::import::import_rows_with;
use tenancy_projection::{Engine, EngineConfig};
use tenancy_testkit::db::TestDatabase;
use tenancy_testkit::stream::{Rng, inst, org};
use tenancy_testkit::zitadel::{self, INIT, TRANSACTIONAL_TABLES, V4};

use crate::catchup::stream_rows;
use crate::{Args, Figure, percentile_ms};

/// One push after another, each timed: (when it started, how long it took).
struct Writer {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Result<Vec<(Instant, Duration)>>>,
}

fn start_writer(pool: PgPool) -> Writer {
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    let task = tokio::spawn(async move {
        zitadel::push(
            &pool,
            &[inst(
                "bench-writer",
                "instance.added",
                json!({"name": "Writer"}),
            )],
            true,
            false,
        )
        .await?;
        let mut samples = Vec::new();
        let mut n = 0u64;
        while !stopped.load(Ordering::Relaxed) {
            n += 1;
            let id = format!("w{n}");
            let started = Instant::now();
            zitadel::push(
                &pool,
                &[org("bench-writer", &id, "org.added", json!({"name": id}))],
                true,
                false,
            )
            .await?;
            samples.push((started, started.elapsed()));
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        Ok(samples)
    });
    Writer { stop, task }
}

/// The pushes that overlapped `[from, to]` (a push blocked by what ran in the window may
/// have started before it), in milliseconds.
fn overlapping(samples: &[(Instant, Duration)], from: Instant, to: Instant) -> Vec<Duration> {
    samples
        .iter()
        .filter(|(at, took)| *at <= to && *at + *took >= from)
        .map(|(_, took)| *took)
        .collect()
}

/// The longest push that overlapped `[from, to]`, in milliseconds.
fn longest(samples: &[(Instant, Duration)], from: Instant, to: Instant) -> f64 {
    overlapping(samples, from, to)
        .iter()
        .map(|took| took.as_secs_f64() * 1000.0)
        .fold(0.0, f64::max)
}

async fn zitadel_store(events: usize) -> Result<TestDatabase> {
    let db = zitadel::database(&[INIT, V4, TRANSACTIONAL_TABLES]).await?;
    let rows = stream_rows((events / 700).max(4), events, 11, false);
    for chunk in rows.chunks(200_000) {
        import_rows_with(&db.pool, chunk, false).await?;
    }
    sqlx::raw_sql("VACUUM ANALYZE").execute(&db.pool).await?;
    Ok(db)
}

/// One point of the stall curve (milliseconds, but `seconds`).
struct Stall {
    events: usize,
    /// Longest push during `tenancy migrate` as a whole, and during its two parts.
    migrate: f64,
    schema: f64,
    prefill: f64,
    p99: f64,
    /// Longest push during the blocking index build, and while nothing else ran.
    blocking: f64,
    quiet: f64,
    seconds: f64,
}

async fn stall(events: usize) -> Result<Stall> {
    let db = zitadel_store(events).await?;
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM eventstore.events2")
        .fetch_one(&db.pool)
        .await?;
    let writer = start_writer(db.pool.clone());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let quiet_from = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let quiet_to = Instant::now();
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Earlier releases: the projection index built in the migration's transaction.
    let blocking_from = Instant::now();
    let mut tx = db.pool.begin().await?;
    sqlx::query("CREATE INDEX bench_blocking ON eventstore.events2 (instance_id, aggregate_type, event_type, \"position\")")
        .execute(&mut *tx)
        .await?;
    tx.rollback().await?;
    let blocking_to = Instant::now();
    tokio::time::sleep(Duration::from_millis(500)).await;

    // tenancy migrate: the schema, the indexes CONCURRENTLY, then the prefill.
    let migrate_from = Instant::now();
    let pool = tenancy_postgres::pool::connect_with(db.options.clone(), 8).await?;
    tenancy_postgres::migrate::migrate(&pool).await?;
    let schema_to = Instant::now();
    let pool = tenancy_postgres::pool::connect_with(db.options.clone(), 8).await?;
    let outcome = Engine::new(pool.clone(), EngineConfig::default())
        .run_until_caught_up(|_, _, _| {})
        .await?;
    let migrate_to = Instant::now();
    anyhow::ensure!(
        outcome.failed == 0,
        "the prefill failed events: {outcome:?}"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    writer.stop.store(true, Ordering::Relaxed);
    let samples = writer.task.await??;
    pool.close().await;
    let ours = longest(&samples, migrate_from, migrate_to);
    let schema = longest(&samples, migrate_from, schema_to);
    let prefill = longest(&samples, schema_to, migrate_to);
    let mut during = overlapping(&samples, migrate_from, migrate_to);
    let p99 = percentile_ms(&mut during, 0.99);
    let blocking = longest(&samples, blocking_from, blocking_to);
    let quiet = longest(&samples, quiet_from, quiet_to);
    let seconds = (migrate_to - migrate_from).as_secs_f64();
    println!(
        "zitadel store, {stored} events: longest ZITADEL push during tenancy migrate {ours:.1} ms \
         ({seconds:.1} s, {} pushes, p99 {p99:.1} ms; schema and indexes {:.1} s: {schema:.1} ms, prefill: {prefill:.1} ms); \
         during a blocking index build {blocking:.1} ms; quiet {quiet:.1} ms",
        during.len(),
        (schema_to - migrate_from).as_secs_f64()
    );
    Ok(Stall {
        events: stored as usize,
        migrate: ours,
        schema,
        prefill,
        p99,
        blocking,
        quiet,
        seconds,
    })
}

/// Who writes the events of a pick-up measurement.
#[derive(Debug, Clone, Copy)]
pub(crate) enum PickUpWriter {
    /// tenancy's push (it notifies).
    Tenancy,
    /// ZITADEL's `eventstore.push` (an adopted store; no notification).
    Zitadel,
    /// A plain INSERT into `eventstore.events2`, position stamped at insert, no
    /// notification: any other writer of a store tenancy owns.
    Insert,
}

impl PickUpWriter {
    /// Writes `events`, each the first of a new aggregate.
    async fn write(self, pool: &PgPool, store: &PgEventStore, events: &[NewEvent]) -> Result<()> {
        match self {
            PickUpWriter::Tenancy => drop(store.push(events.to_vec()).await?),
            PickUpWriter::Zitadel => zitadel::push(pool, events, true, false).await?,
            PickUpWriter::Insert => {
                for e in events {
                    sqlx::query(
                        "INSERT INTO eventstore.events2 (instance_id, aggregate_type, aggregate_id, event_type,
                             \"sequence\", revision, created_at, payload, creator, \"owner\", \"position\", in_tx_order)
                         VALUES ($1, $2, $3, $4, 1, 1, now(), $5, 'writer', $1,
                                 EXTRACT(EPOCH FROM clock_timestamp()), 0)",
                    )
                    .bind(&e.instance_id)
                    .bind(&e.aggregate_type)
                    .bind(&e.aggregate_id)
                    .bind(&e.event_type)
                    .bind(&e.payload)
                    .execute(pool)
                    .await?;
                }
            }
        }
        Ok(())
    }
}

/// Push -> row visible, `samples` times, each push after a random pause.
pub(crate) async fn pick_up(
    pool: &PgPool,
    instance: &str,
    samples: usize,
    writer: PickUpWriter,
) -> Result<Vec<Duration>> {
    Ok(pick_up_timed(pool, instance, samples, writer)
        .await?
        .into_iter()
        .map(|(_, took)| took)
        .collect())
}

/// [`pick_up`], each sample with when its push started.
pub(crate) async fn pick_up_timed(
    pool: &PgPool,
    instance: &str,
    samples: usize,
    writer: PickUpWriter,
) -> Result<Vec<(Instant, Duration)>> {
    let store = PgEventStore::new(pool.clone());
    let first = [inst(instance, "instance.added", json!({"name": instance}))];
    writer.write(pool, &store, &first).await?;
    let mut rng = Rng(0x5eed);
    let mut took = Vec::with_capacity(samples);
    for n in 0..samples {
        tokio::time::sleep(Duration::from_millis(rng.next(200))).await;
        let id = format!("p{n}");
        let event = [org(instance, &id, "org.added", json!({"name": id}))];
        let pushed = Instant::now();
        writer.write(pool, &store, &event).await?;
        loop {
            let visible: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM organizations WHERE instance_id = $1 AND id = $2)",
            )
            .bind(instance)
            .bind(&id)
            .fetch_one(pool)
            .await?;
            if visible {
                break;
            }
            anyhow::ensure!(
                pushed.elapsed() < Duration::from_secs(30),
                "{id} never became visible"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        took.push((pushed, pushed.elapsed()));
    }
    Ok(took)
}

pub async fn run(args: &Args) -> Result<Vec<Figure>> {
    let sizes: &[usize] = if args.quick {
        &[20_000, 60_000]
    } else {
        &[250_000, 1_000_000]
    };
    let mut figures = Vec::new();
    for &size in sizes {
        let s = stall(size).await?;
        figures.push(Figure::latency(
            &format!("ZITADEL push stall, migrate {}k", s.events / 1000),
            s.migrate,
            s.blocking,
            "the same push during a blocking index build (earlier releases)",
            "ms (longest)",
            json!({"events": s.events, "schema_and_indexes_longest_ms": s.schema,
                   "prefill_longest_ms": s.prefill, "p99_ms": s.p99, "quiet_longest_ms": s.quiet,
                   "migrate_and_prefill_s": s.seconds, "target_ms": 100}),
        ));
    }

    let db = zitadel::database(&[INIT, V4]).await?;
    let pool = tenancy_postgres::pool::connect_with(db.options.clone(), 8).await?;
    tenancy_postgres::migrate::migrate(&pool).await?;
    let pool = tenancy_postgres::pool::connect_with(db.options.clone(), 8).await?;
    let engine = Engine::new(pool.clone(), EngineConfig::default());
    let running = engine.spawn_continuous();
    let samples = if args.quick { 20 } else { 200 };
    let mut zitadel_push = pick_up(&pool, "pick-z", samples, PickUpWriter::Zitadel).await?;
    let mut own_push = pick_up(&pool, "pick-t", samples, PickUpWriter::Tenancy).await?;
    running.stop().await?;
    let (z50, z99) = (
        percentile_ms(&mut zitadel_push, 0.5),
        percentile_ms(&mut zitadel_push, 0.99),
    );
    let (t50, t99) = (
        percentile_ms(&mut own_push, 0.5),
        percentile_ms(&mut own_push, 0.99),
    );
    println!(
        "pick-up, {samples} pushes each: ZITADEL push (poll every {:?}) p50 {z50:.0} ms, p99 {z99:.0} ms; \
         tenancy push (notify) p50 {t50:.1} ms, p99 {t99:.1} ms",
        EngineConfig::default().poll_interval
    );
    figures.push(Figure::latency(
        "ZITADEL push -> visible, p99",
        z99,
        t99,
        "tenancy push (notify), p99",
        "ms",
        json!({"samples": samples, "p50_ms": z50, "target_ms": 2000,
               "poll_interval_ms": EngineConfig::default().poll_interval.as_millis() as u64}),
    ));
    pool.close().await;
    Ok(figures)
}
