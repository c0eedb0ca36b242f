//! The running engine when nothing happens, and how fast a push shows, on stores of many
//! small instances (issues 25 and 28): `tenancy start`'s engines on a store that was
//! imported, `VACUUM ANALYZE`d and prefilled, then left idle. Idle cost is the database's
//! transactions per second (`pg_stat_database`, every statement outside a transaction
//! counts as one) while nothing is pushed: at a small and a large number of instances with
//! one engine, and with three engines (replicas) against one. Push -> visible is measured
//! at the large size, through tenancy's push (notification) and a plain INSERT (none: the poll),
//! with one and with three engines.

use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::json;
use tenancy_postgres::leadership::leader_of;
use tenancy_projection::{Continuous, Engine, EngineConfig};
use tenancy_testkit::db::TestDatabase;

use crate::catchup::{loaded, stream_rows};
use crate::zitadel::{PickUpWriter, pick_up};
use crate::{Args, Figure, percentile_ms};

/// Events per instance: trials and test tenants.
const PER_INSTANCE: usize = 30;

pub async fn run(args: &Args) -> Result<Vec<Figure>> {
    let (small, large) = crate::small_and_large(args);
    let window = Duration::from_secs(if args.quick { 10 } else { 20 });
    let mut figures = Vec::new();
    let db = prefilled(small).await?;
    // 1 and 3 engines in alternating windows (1, 3, 3, 1), each half the window: the
    // database's own work after the prefill (autovacuum and autoanalyze run transactions
    // in it too) falls on both alike rather than on whichever comes second.
    let (mut one_small, mut three_small) = (0.0, 0.0);
    for engines in [1, 3, 3, 1] {
        let rate = idle_rate(&db, engines, window / 2).await? / 2.0;
        if engines == 1 {
            one_small += rate;
        } else {
            three_small += rate;
        }
    }
    drop(db);
    println!(
        "idle, {small} instances: 1 engine {one_small:.1} transactions/s, 3 engines {three_small:.1}/s"
    );
    let db = prefilled(large).await?;
    let one_large = idle_rate(&db, 1, window).await?;
    println!("idle, {large} instances: 1 engine {one_large:.1} transactions/s");
    let samples = if args.quick { 20 } else { 100 };
    // 1 and 3 engines in alternating rounds (1, 3, 3, 1, ...): drift on a shared machine
    // and the store's own settling (autovacuum after the prefill) fall on both alike.
    let rounds = 4;
    let mut samples_of: [(Vec<Duration>, Vec<Duration>); 2] = Default::default();
    for round in 0..rounds {
        let order = if round % 2 == 0 { [1, 3] } else { [3, 1] };
        for engines in order {
            let running = spawn(&db, engines).await?;
            // Running, not starting: past their first sweep and the warm-up of their
            // connections (the chaos benchmark waits as long).
            tokio::time::sleep(SETTLE).await;
            let (own, zitadel) = &mut samples_of[usize::from(engines == 3)];
            own.extend(
                pick_up(
                    &db.pool,
                    &format!("pick-t{engines}-{round}"),
                    samples * 2 / rounds,
                    PickUpWriter::Tenancy,
                )
                .await?,
            );
            zitadel.extend(
                pick_up(
                    &db.pool,
                    &format!("pick-i{engines}-{round}"),
                    samples / rounds,
                    PickUpWriter::Insert,
                )
                .await?,
            );
            stop(running, &db).await?;
        }
    }
    let mut latencies = Vec::new();
    for (engines, (mut own, mut zitadel)) in [1, 3].into_iter().zip(samples_of) {
        let figures = (
            percentile_ms(&mut own, 0.5),
            percentile_ms(&mut own, 0.99),
            percentile_ms(&mut zitadel, 0.5),
            percentile_ms(&mut zitadel, 0.99),
        );
        println!(
            "push -> visible, {large} instances, {engines} engine(s), {} and {} samples: tenancy push p50 {:.1} ms p99 {:.1} ms; \
             unnotified INSERT (poll) p50 {:.0} ms p99 {:.0} ms",
            own.len(),
            zitadel.len(),
            figures.0,
            figures.1,
            figures.2,
            figures.3
        );
        latencies.push(figures);
    }
    let parameters = json!({"per_instance": PER_INSTANCE, "window_s": window.as_secs(), "path": "import, VACUUM ANALYZE, prefill, start"});
    figures.push(Figure::cost(
        &format!("idle cost, {large} vs {small} instances"),
        one_large,
        one_small,
        &format!("{small} instances"),
        "transactions/s, target <= 1.5",
        parameters.clone(),
    ));
    figures.push(Figure::cost(
        &format!("idle cost, 3 vs 1 engines, {small} inst."),
        three_small,
        one_small,
        "1 engine",
        "transactions/s, target <= 1.5",
        parameters,
    ));
    let (one, three) = (latencies[0], latencies[1]);
    let poll_ms = EngineConfig::default().poll_interval.as_millis() as f64;
    figures.push(Figure::latency(
        &format!("push -> visible p99, {large} inst., 3 vs 1"),
        three.1,
        one.1,
        "1 engine",
        "ms (tenancy push; target <= 50)",
        json!({"samples": samples * 2, "rounds": rounds, "p50_ms_1": one.0, "p50_ms_3": three.0}),
    ));
    figures.push(Figure::latency(
        &format!("INSERT (no notify) -> visible p99, {large}"),
        one.3,
        poll_ms + 100.0,
        "poll interval + 100 ms",
        "ms",
        json!({"samples": samples, "rounds": rounds, "p50_ms": one.2, "p99_ms_3_engines": three.3}),
    ));
    Ok(figures)
}

/// How long engine processes run before a round's first sample (here and in the chaos
/// benchmark), on both sides.
pub(crate) const SETTLE: Duration = Duration::from_secs(2);

/// A store of `instances` small instances, imported, analysed and prefilled.
pub(crate) async fn prefilled(instances: usize) -> Result<TestDatabase> {
    let rows = stream_rows(instances, instances * PER_INSTANCE, 7, false);
    let db = loaded(&rows).await?;
    let started = Instant::now();
    let engine = Engine::new(db.pool.clone(), EngineConfig::default());
    engine.run_until_caught_up(|_, _, _| {}).await?;
    sqlx::raw_sql("VACUUM ANALYZE").execute(&db.pool).await?;
    println!(
        "{instances} instances, {} events: prefilled in {:.1} s",
        rows.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(db)
}

/// `engines` engines, each with a pool of its own as a process would have, returned once
/// a sweep is recorded and one of them leads the poll.
async fn spawn(db: &TestDatabase, engines: usize) -> Result<Vec<Continuous>> {
    let mut running = Vec::new();
    for _ in 0..engines {
        let pool = tenancy_postgres::pool::connect_with(db.options.clone(), 10).await?;
        running.push(Engine::new(pool, EngineConfig::default()).spawn_continuous());
    }
    for _ in 0..600 {
        let swept: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM tenancy.sweeps)")
            .fetch_one(&db.pool)
            .await?;
        if swept && poll_led(db).await? {
            return Ok(running);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("no sweep or no leader within 60 s")
}

/// Stops the engines, and waits until their sessions have ended (the poll is led by none).
async fn stop(running: Vec<Continuous>, db: &TestDatabase) -> Result<()> {
    for engine in running {
        engine.stop().await?;
    }
    for _ in 0..200 {
        if !poll_led(db).await? {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    anyhow::bail!("the poll is still led 2 s after every engine stopped")
}

/// Whether an engine leads the poll (`tenancy_postgres::leadership`).
async fn poll_led(db: &TestDatabase) -> Result<bool> {
    Ok(leader_of(&db.pool, "relational_tables:poll")
        .await?
        .is_some())
}

/// Transactions per second of the database over `window` while `engines` engines idle.
async fn idle_rate(db: &TestDatabase, engines: usize, window: Duration) -> Result<f64> {
    let running = spawn(db, engines).await?;
    // Past the start (the first sweeps, the leases), and past the statistics of the work
    // before: an idle backend reports its transactions up to 10 s late.
    tokio::time::sleep(Duration::from_secs(12)).await;
    // A window in which autovacuum or autoanalyze ran (they count as the database's
    // transactions too, and follow the prefill's writes) is measured again.
    let mut rate = 0.0;
    for _ in 0..5 {
        let before = transactions(db).await?;
        let vacuums_before = autovacuums(db).await?;
        let started = Instant::now();
        tokio::time::sleep(window).await;
        let after = transactions(db).await?;
        rate = (after - before) as f64 / started.elapsed().as_secs_f64();
        let vacuums = autovacuums(db).await? - vacuums_before;
        if vacuums == 0 {
            break;
        }
        println!(
            "idle window of {engines} engine(s): {vacuums} autovacuum/autoanalyze runs in it, measured again"
        );
    }
    stop(running, db).await?;
    Ok(rate)
}

/// Autovacuum and autoanalyze runs on the database's tables so far (they count as its
/// transactions too).
async fn autovacuums(db: &TestDatabase) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT coalesce(sum(autovacuum_count + autoanalyze_count), 0)::bigint FROM pg_stat_all_tables",
    )
    .fetch_one(&db.pool)
    .await?)
}

async fn transactions(db: &TestDatabase) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT (xact_commit + xact_rollback)::bigint FROM pg_stat_database WHERE datname = current_database()",
    )
    .fetch_one(&db.pool)
    .await?)
}
