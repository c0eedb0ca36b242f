//! Push: events/s through the event store (sequences, lock, notify) in batches of 1 and
//! 100 of events that create their aggregates, of 100 declared new, and of 100 that append
//! to existing aggregates (the only ones whose latest sequence the store looks up), against
//! plain multi-row INSERTs of the same rows into a copy of the table. And
//! push -> visible: with the engine running continuously, the time from a push to its row
//! in `zitadel.instances` (p50, p99 against the 50 ms target).

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use rust_decimal::Decimal;
use serde_json::json;
use sqlx::PgPool;
use tenancy_core::event::NewEvent;
use tenancy_eventstore::PgEventStore;
use tenancy_projection::{Engine, EngineConfig};
use tenancy_testkit::db::TestDatabase;
use tenancy_testkit::stream::{event, inst};

use crate::{Args, Figure, percentile_ms};

/// What a push benchmark pushes.
#[derive(Clone, Copy)]
enum Kind {
    /// `org.added` of new organizations, without an expectation: the store takes the
    /// aggregates for new by their creating event.
    Created,
    /// The same, declared new (`expected_sequence: Some(0)`).
    DeclaredNew,
    /// `org.changed` of the organizations `Created` pushed (sequence 2), without an
    /// expectation: the store looks up each aggregate's latest sequence.
    Appended,
}

/// What a push of one kind consists of, in one place.
struct Spec {
    /// What it pushes, for the report.
    pushes: &'static str,
    /// The figure's name, before ", batches of N".
    title: &'static str,
    /// Part of the aggregate ids: `DeclaredNew` pushes aggregates of its own, `Appended`
    /// the ones `Created` pushed (the same tag), whose organizations it changes.
    tag: &'static str,
    event_type: &'static str,
    expected: Option<i64>,
    /// The events' sequence (the plain INSERT's).
    sequence: i64,
}

impl Kind {
    fn spec(self) -> Spec {
        match self {
            Kind::Created => Spec {
                pushes: "org.added of new organizations, no expected sequence",
                title: "push",
                tag: "any",
                event_type: "org.added",
                expected: None,
                sequence: 1,
            },
            Kind::DeclaredNew => Spec {
                pushes: "org.added of new organizations, expected sequence 0",
                title: "push of new aggregates (expected 0)",
                tag: "new",
                event_type: "org.added",
                expected: Some(0),
                sequence: 1,
            },
            Kind::Appended => Spec {
                pushes: "org.changed of existing organizations, no expected sequence",
                title: "push appending to aggregates",
                tag: "any",
                event_type: "org.changed",
                expected: None,
                sequence: 2,
            },
        }
    }
}

/// `n` events of `kind` in batches of `batch`.
fn events(batch: usize, n: usize, kind: Kind) -> Vec<Vec<NewEvent>> {
    let Spec {
        tag,
        event_type,
        expected,
        ..
    } = kind.spec();
    (0..n / batch)
        .map(|b| {
            (0..batch)
                .map(|i| NewEvent {
                    expected_sequence: expected,
                    ..event(
                        "bench",
                        "org",
                        &format!("o{batch}-{tag}-{b}-{i}"),
                        event_type,
                        json!({"name": format!("Org {b} {i}")}),
                    )
                })
                .collect()
        })
        .collect()
}

async fn plain_insert(pool: &PgPool, batch: &[NewEvent], base: i64, sequence: i64) -> Result<()> {
    let n = batch.len();
    sqlx::query(
        "INSERT INTO bench_plain (instance_id, aggregate_type, aggregate_id, event_type, \"sequence\", revision, created_at,
             payload, creator, \"owner\", \"position\", in_tx_order, written_by_v3)
         SELECT a, b, c, d, $10, 1, now(), e, f, g, h, i, false
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::jsonb[], $6::text[], $7::text[], $8::numeric[], $9::int[])
             AS t(a, b, c, d, e, f, g, h, i)",
    )
    .bind(batch.iter().map(|e| e.instance_id.clone()).collect::<Vec<_>>())
    .bind(batch.iter().map(|e| e.aggregate_type.clone()).collect::<Vec<_>>())
    .bind(batch.iter().map(|e| e.aggregate_id.clone()).collect::<Vec<_>>())
    .bind(batch.iter().map(|e| e.event_type.clone()).collect::<Vec<_>>())
    .bind(batch.iter().map(|e| e.payload.clone()).collect::<Vec<_>>())
    .bind(batch.iter().map(|e| e.creator.clone()).collect::<Vec<_>>())
    .bind(batch.iter().map(|e| e.owner.clone()).collect::<Vec<_>>())
    .bind((0..n).map(|i| Decimal::from(base + i as i64)).collect::<Vec<_>>())
    .bind((1..=n as i32).collect::<Vec<_>>())
    .bind(sequence)
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn run(args: &Args) -> Result<Vec<Figure>> {
    let mut figures = Vec::new();
    let db = TestDatabase::fresh().await?;
    sqlx::query("CREATE TABLE bench_plain (LIKE eventstore.events2 INCLUDING ALL)")
        .execute(&db.pool)
        .await?;
    let store = PgEventStore::new(db.pool.clone());
    let hundreds = if args.quick { 5_000 } else { 50_000 };
    for (batch, n, kind) in [
        (1, if args.quick { 500 } else { 5_000 }, Kind::Created),
        (100, hundreds, Kind::Created),
        (100, hundreds, Kind::DeclaredNew),
        // After `Created` of batches of 100, whose organizations it changes.
        (100, hundreds, Kind::Appended),
    ] {
        let pushes = events(batch, n, kind);
        let spec = kind.spec();
        let name = format!("{}, batches of {batch}", spec.title);
        let sequence = spec.sequence;
        // Alternating rounds, each side first in every other one: a shared machine's
        // drift (and the tables' growth) falls on both sides alike.
        let rounds = 10;
        let per_round = pushes.len().div_ceil(rounds);
        let (mut ours_time, mut plain_time) = (Duration::ZERO, Duration::ZERO);
        for (round, chunk) in pushes.chunks(per_round).enumerate() {
            for side in [round % 2, 1 - round % 2] {
                let started = Instant::now();
                if side == 0 {
                    for push in chunk.iter().cloned() {
                        store.push(push).await?;
                    }
                    ours_time += started.elapsed();
                } else {
                    for (b, push) in chunk.iter().enumerate() {
                        let base = ((round * per_round + b) * batch) as i64;
                        plain_insert(&db.pool, push, base, sequence).await?;
                    }
                    plain_time += started.elapsed();
                }
            }
        }
        let ours = n as f64 / ours_time.as_secs_f64();
        let plain = n as f64 / plain_time.as_secs_f64();
        println!("{name}: {ours:.0} events/s; plain INSERT {plain:.0} events/s");
        figures.push(Figure::throughput(
            &name,
            ours,
            plain,
            "plain multi-row INSERT into a copy of the table",
            "events/s",
            json!({"events": n, "batch": batch, "rounds": rounds, "pushes": spec.pushes}),
        ));
    }
    drop(db);

    // Push -> visible, with the engine in continuous mode (LISTEN/NOTIFY).
    let db = TestDatabase::fresh().await?;
    let store = PgEventStore::new(db.pool.clone());
    let engine = Engine::new(db.pool.clone(), EngineConfig::default());
    let running = engine.spawn_continuous();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pushes = if args.quick { 200 } else { 1_000 };
    let mut samples = Vec::with_capacity(pushes);
    for k in 0..pushes {
        let id = format!("visible-{k}");
        let started = Instant::now();
        store
            .push(vec![inst(&id, "instance.added", json!({"name": "V"}))])
            .await?;
        loop {
            let seen: bool =
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM instances WHERE id = $1)")
                    .bind(&id)
                    .fetch_one(&db.pool)
                    .await?;
            if seen {
                break;
            }
            ensure!(
                started.elapsed() < Duration::from_secs(10),
                "push {k} not visible after 10 s"
            );
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        samples.push(started.elapsed());
    }
    running.stop().await?;
    let (p50, p99) = (
        percentile_ms(&mut samples, 0.5),
        percentile_ms(&mut samples, 0.99),
    );
    println!("push -> visible over {pushes} pushes: p50 {p50:.1} ms, p99 {p99:.1} ms");
    let parameters = json!({"pushes": pushes, "mode": "LISTEN/NOTIFY, in-process engine"});
    figures.push(Figure::latency(
        "push -> visible p50",
        p50,
        50.0,
        "target 50 ms",
        "ms",
        parameters.clone(),
    ));
    figures.push(Figure::latency(
        "push -> visible p99",
        p99,
        50.0,
        "target 50 ms",
        "ms",
        parameters,
    ));
    Ok(figures)
}
