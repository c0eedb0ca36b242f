//! Grew from empty: the process `tenancy start` is — one pool, opened on an empty database
//! the operator had `VACUUM ANALYZE`d — projects continuously while a writer pushes events
//! through it (custom domains moving between instances among them) and host lookups run
//! alongside (a login service's). It must end with no failed event. At the end, the host
//! lookups and pushes of that long-lived pool against those of a fresh pool on the same
//! database, in alternating rounds: a plan cached while the tables were empty would show
//! here as a grown process slower than a fresh one.

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use serde_json::json;
use sqlx::PgPool;
use tenancy_core::Error;
use tenancy_core::event::NewEvent;
use tenancy_core::ports::InstanceRepository;
use tenancy_eventstore::PgEventStore;
use tenancy_postgres::PgStore;
use tenancy_projection::{Engine, EngineConfig};
use tenancy_testkit::db::TestDatabase;
use tenancy_testkit::stream::{Rng, Shape, churn_shaped, org};

use crate::catchup::ORGS_PER_INSTANCE;
use crate::{Args, Figure, percentile_ms};

/// Events per push of the writer.
const PUSH_BATCH: usize = 100;

pub async fn run(args: &Args) -> Result<Vec<Figure>> {
    let total = args
        .grown_events
        .unwrap_or(if args.quick { 20_000 } else { 300_000 });
    let instances = (total / 700).max(4);
    let db = TestDatabase::fresh().await?;
    sqlx::raw_sql("VACUUM ANALYZE").execute(&db.pool).await?;
    let grown = tenancy_postgres::pool::connect_with(db.options.clone(), 16).await?;

    let engine = Engine::new(grown.clone(), EngineConfig::default());
    let running = engine.spawn_continuous();

    let rounds = total.saturating_sub(instances * (3 + ORGS_PER_INSTANCE as usize));
    let pushes: Vec<NewEvent> = churn_shaped(
        Shape {
            instances,
            orgs: ORGS_PER_INSTANCE,
            moves: true,
        },
        rounds,
        77,
    )
    .into_iter()
    .flatten()
    .collect();
    let hosts: Vec<String> = (1..instances).map(|n| format!("inst{n}.example")).collect();
    println!(
        "grew from empty: {} events over {instances} instances pushed in batches of {PUSH_BATCH} while projecting",
        pushes.len()
    );
    let store = PgEventStore::new(grown.clone());
    let started = Instant::now();
    let mut rng = Rng(5);
    for (n, batch) in pushes.chunks(PUSH_BATCH).enumerate() {
        store.push(batch.to_vec()).await?;
        if n % 20 == 0 {
            // A login service resolves hosts all along (unknown until projected).
            let mut session = PgStore::new(grown.clone()).session().await?;
            for _ in 0..50 {
                let host = &hosts[rng.next(hosts.len() as u64) as usize];
                match session.instance_by_host(host).await {
                    Ok(_) | Err(Error::NotFound { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
    running.stop().await?;
    let outcome = engine.run_until_caught_up(|_, _, _| {}).await?;
    let failed = engine.failed().await?;
    ensure!(
        outcome.failed == 0 && failed.is_empty(),
        "events failed: {outcome:?}: {:#?}",
        failed.iter().take(3).collect::<Vec<_>>()
    );
    println!(
        "  pushed and projected in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let fresh = tenancy_postgres::pool::connect_with(db.options.clone(), 16).await?;
    let (lookups, push_batches) = if args.quick {
        (1_000, 20)
    } else {
        (5_000, 100)
    };
    let mut grown_samples = Vec::new();
    let mut fresh_samples = Vec::new();
    let (mut grown_push, mut fresh_push) = (Duration::ZERO, Duration::ZERO);
    for round in 0..6u64 {
        // Alternate which goes first, so a drift of the machine hits both alike.
        let order: [(&PgPool, bool); 2] = if round % 2 == 0 {
            [(&grown, true), (&fresh, false)]
        } else {
            [(&fresh, false), (&grown, true)]
        };
        for (pool, is_grown) in order {
            let samples = lookup(pool, &hosts, lookups, round).await?;
            let pushed = push(pool, push_batches, round, is_grown).await?;
            if is_grown {
                grown_samples.extend(samples);
                grown_push += pushed;
            } else {
                fresh_samples.extend(samples);
                fresh_push += pushed;
            }
        }
    }
    let rate = |samples: &[Duration]| {
        samples.len() as f64 / samples.iter().sum::<Duration>().as_secs_f64()
    };
    let (grown_rate, fresh_rate) = (rate(&grown_samples), rate(&fresh_samples));
    let (grown_p99, fresh_p99) = (
        percentile_ms(&mut grown_samples, 0.99),
        percentile_ms(&mut fresh_samples, 0.99),
    );
    let pushed_events = (6 * push_batches * PUSH_BATCH) as f64;
    let (grown_push_rate, fresh_push_rate) = (
        pushed_events / grown_push.as_secs_f64(),
        pushed_events / fresh_push.as_secs_f64(),
    );
    println!(
        "  host lookup: grown {grown_rate:.0}/s (p99 {grown_p99:.2} ms), fresh {fresh_rate:.0}/s (p99 {fresh_p99:.2} ms)"
    );
    println!(
        "  push, batches of {PUSH_BATCH}: grown {grown_push_rate:.0} events/s, fresh {fresh_push_rate:.0} events/s"
    );
    grown.close().await;
    fresh.close().await;
    let parameters = json!({"events": pushes.len(), "instances": instances, "lookups_per_round": lookups, "rounds": 6});
    Ok(vec![
        Figure::throughput(
            "grown process: host lookup",
            grown_rate,
            fresh_rate,
            "a fresh pool on the same database",
            "queries/s",
            parameters.clone(),
        ),
        Figure::latency(
            "grown process: host lookup p99",
            grown_p99,
            fresh_p99,
            "a fresh pool's p99",
            "ms",
            parameters.clone(),
        ),
        Figure::throughput(
            "grown process: push, batches of 100",
            grown_push_rate,
            fresh_push_rate,
            "a fresh pool on the same database",
            "events/s",
            parameters,
        ),
    ])
}

/// `count` host lookups on one session of `pool`, each timed.
async fn lookup(
    pool: &PgPool,
    hosts: &[String],
    count: usize,
    round: u64,
) -> Result<Vec<Duration>> {
    let mut rng = Rng(round + 11);
    let mut session = PgStore::new(pool.clone()).session().await?;
    let mut samples = Vec::with_capacity(count);
    for _ in 0..count {
        let host = &hosts[rng.next(hosts.len() as u64) as usize];
        let t = Instant::now();
        session.instance_by_host(host).await?;
        samples.push(t.elapsed());
    }
    Ok(samples)
}

/// `batches` pushes of new organizations' events; the time they took.
async fn push(pool: &PgPool, batches: usize, round: u64, grown: bool) -> Result<Duration> {
    let store = PgEventStore::new(pool.clone());
    let who = if grown { "g" } else { "f" };
    let mut took = Duration::ZERO;
    for b in 0..batches {
        let batch: Vec<NewEvent> = (0..PUSH_BATCH)
            .map(|k| {
                let i = format!("inst{}", 1 + (b + k) % 4);
                org(
                    &i,
                    &format!("m-{who}{round}-{b}-{k}"),
                    "org.added",
                    json!({"name": "Measured"}),
                )
            })
            .collect();
        let t = Instant::now();
        store.push(batch).await?;
        took += t.elapsed();
    }
    Ok(took)
}
