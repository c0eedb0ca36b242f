//! Rebuild side by side against rebuild in place, on the operator's path (the store
//! imported, `VACUUM ANALYZE`, prefilled): the duration of each, host lookups per second
//! of a reader running during the side-by-side rebuild against the same reader idle before
//! and after it (and the lookups the in-place rebuild fails), and how long the switch
//! locked the tables.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::json;
use tenancy_core::ports::InstanceRepository as _;
use tenancy_postgres::PgStore;
use tenancy_projection::{Engine, EngineConfig};

use crate::catchup::{loaded, stream_rows};
use crate::{Args, Figure};

pub async fn run(args: &Args) -> Result<Vec<Figure>> {
    let sizes: Vec<usize> = match (&args.sizes, args.quick) {
        (Some(sizes), _) => sizes.clone(),
        (None, true) => vec![30],
        (None, false) => vec![100, 300],
    };
    let mut figures = Vec::new();
    for &instances in &sizes {
        figures.extend(one_size(instances, 700).await?);
    }
    Ok(figures)
}

/// What a reader saw.
struct Read {
    lookups: u64,
    failures: u64,
    /// The longest lookup: a reader's stall.
    longest: Duration,
}

/// Looks hosts up (one session each) until `stop`.
fn reader(
    pool: sqlx::PgPool,
    hosts: Arc<Vec<String>>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Read> {
    tokio::spawn(async move {
        let store = PgStore::new(pool);
        let mut read = Read {
            lookups: 0,
            failures: 0,
            longest: Duration::ZERO,
        };
        let mut n = 0usize;
        while !stop.load(Ordering::Relaxed) {
            n = (n + 7) % hosts.len();
            let started = Instant::now();
            let found = match store.session().await {
                Ok(mut session) => session.instance_by_host(&hosts[n]).await.is_ok(),
                Err(_) => false,
            };
            read.longest = read.longest.max(started.elapsed());
            read.lookups += 1;
            read.failures += u64::from(!found);
        }
        read
    })
}

/// How long the reader runs alone, before the rebuild and after it.
const IDLE_WINDOW: Duration = Duration::from_secs(3);

/// The reader alone for [`IDLE_WINDOW`].
async fn idle_read(pool: &sqlx::PgPool, hosts: &Arc<Vec<String>>) -> Result<Read> {
    let stop = Arc::new(AtomicBool::new(false));
    let idle = reader(pool.clone(), hosts.clone(), stop.clone());
    tokio::time::sleep(IDLE_WINDOW).await;
    stop.store(true, Ordering::Relaxed);
    Ok(idle.await?)
}

async fn one_size(instances: usize, per_instance: usize) -> Result<Vec<Figure>> {
    let rows = stream_rows(instances, instances * per_instance, 7, false);
    let events = rows.len();
    let db = loaded(&rows).await?;
    let config = EngineConfig {
        workers: 4,
        ..EngineConfig::default()
    };
    let engine = Engine::new(db.pool.clone(), config);
    engine.run_until_caught_up(|_, _, _| {}).await?;
    let hosts: Vec<String> = sqlx::query_scalar(
        "SELECT d.domain FROM instance_domains d JOIN instances i ON i.id = d.instance_id
         WHERE d.type = 'custom' AND i.deleted_at IS NULL",
    )
    .fetch_all(&db.pool)
    .await?;
    anyhow::ensure!(!hosts.is_empty(), "the stream has live custom domains");
    let hosts = Arc::new(hosts);
    let reader_pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect_with((*db.pool.connect_options()).clone())
        .await?;

    // Idle: the reader alone for 3 s before the rebuild and 3 s after it (the database
    // settles after a prefill and after a switch; one window was at 0.8x to 1.3x the
    // rate during the rebuild). The baseline is both windows together.
    let before = idle_read(&reader_pool, &hosts).await?;

    // Side by side, the reader running.
    let stop = Arc::new(AtomicBool::new(false));
    let during = reader(reader_pool.clone(), hosts.clone(), stop.clone());
    let started = Instant::now();
    let rebuilt = engine.rebuild_side_by_side(Arc::new(|_, _, _| {})).await?;
    let side_by_side = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let Read {
        lookups: during_lookups,
        failures: during_failures,
        longest: during_longest,
    } = during.await?;
    let during_rate = during_lookups as f64 / side_by_side.as_secs_f64();
    engine.drop_previous_generation().await?;
    let after = idle_read(&reader_pool, &hosts).await?;
    let idle = (before.lookups + after.lookups) as f64 / (2.0 * IDLE_WINDOW.as_secs_f64());
    let (idle_failures, idle_longest) = (
        before.failures + after.failures,
        before.longest.max(after.longest),
    );

    // In place, the reader running (its failures: the outage).
    let stop = Arc::new(AtomicBool::new(false));
    let in_place_reader = reader(reader_pool.clone(), hosts.clone(), stop.clone());
    let started = Instant::now();
    engine.rebuild().await?;
    let in_place = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let Read {
        lookups: in_place_lookups,
        failures: in_place_failures,
        ..
    } = in_place_reader.await?;

    println!(
        "rebuild ({events} events, {instances} instances): side by side {:.2} s (switch locked {:.1} ms, {} rounds), in place {:.2} s; \
         lookups/s idle {idle:.0} (before {:.0}, after {:.0}; {idle_failures} failed, longest {:.1} ms), during side by side {during_rate:.0} ({during_failures} failed, \
         longest {:.1} ms), during in place {in_place_lookups} lookups, {} failed",
        side_by_side.as_secs_f64(),
        rebuilt.frozen_for.as_secs_f64() * 1000.0,
        rebuilt.rounds,
        in_place.as_secs_f64(),
        before.lookups as f64 / IDLE_WINDOW.as_secs_f64(),
        after.lookups as f64 / IDLE_WINDOW.as_secs_f64(),
        idle_longest.as_secs_f64() * 1000.0,
        during_longest.as_secs_f64() * 1000.0,
        in_place_failures,
    );
    let parameters = json!({"events": events, "instances": instances, "workers": 4,
        "path": "import, VACUUM ANALYZE, prefill, then rebuild"});
    Ok(vec![
        Figure::latency(
            &format!("rebuild side by side, {events} ev"),
            side_by_side.as_secs_f64(),
            in_place.as_secs_f64(),
            "rebuild in place (an outage)",
            "s",
            parameters.clone(),
        ),
        Figure::throughput(
            &format!("lookups during rebuild, {events} ev"),
            during_rate,
            idle,
            "the same reader idle",
            "lookups/s",
            json!({"failed_during": during_failures, "failed_in_place": in_place_failures, "instances": instances}),
        ),
        Figure::latency(
            &format!("longest lookup during side by side, {events} ev"),
            during_longest.as_secs_f64() * 1000.0,
            idle_longest.as_secs_f64() * 1000.0,
            "longest lookup of the same reader idle",
            "ms",
            parameters.clone(),
        ),
        Figure::latency(
            &format!("switch lock, {events} ev"),
            rebuilt.frozen_for.as_secs_f64() * 1000.0,
            50.0,
            "target 50 ms",
            "ms",
            parameters,
        ),
    ])
}
