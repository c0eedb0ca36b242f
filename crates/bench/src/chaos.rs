//! Push -> visible while replicas die (issue 25): engines in processes of their own (this
//! binary with `--engine-child`, as `tenancy start` runs its engine), one left alone
//! against three of which a random one is SIGKILLed and restarted every 1–3 s, in
//! alternating rounds (1, 3, 3, 1). The store is the idle benchmark's (small instances,
//! imported, `VACUUM ANALYZE`d, prefilled). The pushes go through tenancy's push (a
//! notification each). At the end the last engine catches up and the tables must equal
//! the fold of the events, with no failed event.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use serde_json::json;
use tenancy_projection::{Engine, EngineConfig};
use tenancy_testkit::db::TestDatabase;
use tenancy_testkit::stream::Rng;

use crate::zitadel::{PickUpWriter, pick_up};
use crate::{Args, Figure, percentile_ms};

pub async fn run(args: &Args) -> Result<Vec<Figure>> {
    let (small, _) = crate::small_and_large(args);
    let db = crate::idle::prefilled(small).await?;
    // Pushes come about every 110 ms (a random pause of up to 200 ms, then the wait for
    // the row): 600 per engine count is a minute of chaos.
    let samples = if args.quick { 100 } else { 600 };
    let rounds = 4;
    let mut samples_of: [Vec<Duration>; 2] = Default::default();
    let mut kills = 0;
    for round in 0..rounds {
        let order = if round % 2 == 0 { [1, 3] } else { [3, 1] };
        for engines in order {
            let running = Engines::start(&db, engines).await?;
            let chaos = (engines > 1).then(|| running.kill_at_random(Rng(round as u64 + 1)));
            let took = pick_up(
                &db.pool,
                &format!("chaos-{engines}-{round}"),
                samples / rounds,
                PickUpWriter::Tenancy,
            )
            .await?;
            samples_of[usize::from(engines == 3)].extend(took);
            if let Some(chaos) = chaos {
                kills += chaos.stop().await?;
            }
            if round == rounds - 1 && engines == order[1] {
                caught_up_and_equal(&db).await?;
            }
            running.kill_all()?;
            // The dead processes' sweep lease expires meanwhile; their sessions end.
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    let [mut one, mut three] = samples_of;
    let (one_p50, one_p99) = (percentile_ms(&mut one, 0.5), percentile_ms(&mut one, 0.99));
    let (three_p50, three_p99) = (
        percentile_ms(&mut three, 0.5),
        percentile_ms(&mut three, 0.99),
    );
    println!(
        "push -> visible, {small} instances, {} samples each: 1 engine p50 {one_p50:.1} ms p99 {one_p99:.1} ms; \
         3 engines, {kills} SIGKILLs, p50 {three_p50:.1} ms p99 {three_p99:.1} ms; tables equal, no failed event",
        one.len()
    );
    Ok(vec![Figure::latency(
        &format!("push -> visible p99, 3 in chaos vs 1 ({small})"),
        three_p99,
        one_p99,
        "1 engine, undisturbed",
        "ms (ratio >= 1: no worse than one engine)",
        json!({"samples": one.len(), "rounds": rounds, "sigkills": kills, "p50_ms_1": one_p50,
               "p50_ms_3": three_p50, "kill_every_s": "1-3"}),
    )])
}

/// Waits for the engine processes to project everything, then checks the tables against
/// the fold and that no event failed.
async fn caught_up_and_equal(db: &TestDatabase) -> Result<()> {
    let engine = Engine::new(db.pool.clone(), EngineConfig::default());
    for _ in 0..300 {
        if engine.status().await?.events_behind == 0 {
            let failed = engine.failed().await?;
            ensure!(failed.is_empty(), "{} failed events", failed.len());
            let report = engine.verify().await?;
            ensure!(
                report.is_equal(),
                "{} differences after the chaos: {:?}",
                report.differences.len(),
                report.differences.first()
            );
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("the engines did not catch up within 30 s")
}

/// Engine processes on one database.
struct Engines {
    url: String,
    children: Arc<std::sync::Mutex<Vec<Child>>>,
}

impl Engines {
    /// `n` engine processes, returned once one of them leads the poll.
    async fn start(db: &TestDatabase, n: usize) -> Result<Self> {
        let url = db.url();
        let children = (0..n)
            .map(|_| spawn_child(&url))
            .collect::<Result<Vec<_>>>()?;
        let leaders: Vec<String> = children
            .iter()
            .map(|c| format!("tenancy leader relational_tables:poll pid {}", c.id()))
            .collect();
        let running = Self {
            url,
            children: Arc::new(std::sync::Mutex::new(children)),
        };
        for _ in 0..200 {
            // The leader's connection is named after its process (tenancy_postgres::leadership).
            let held: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE application_name = ANY ($1))",
            )
            .bind(&leaders)
            .fetch_one(&db.pool)
            .await?;
            if held {
                return Ok(running);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        anyhow::bail!("no engine process took the poll's lead within 10 s")
    }

    /// A task that SIGKILLs a random process every 1–3 s and starts another in its place.
    fn kill_at_random(&self, mut rng: Rng) -> Chaos {
        let stop = Arc::new(AtomicBool::new(false));
        let kills = Arc::new(AtomicUsize::new(0));
        let (children, url) = (self.children.clone(), self.url.clone());
        let task = {
            let (stop, kills) = (stop.clone(), kills.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(1000 + rng.next(2000))).await;
                    if stop.load(Ordering::SeqCst) {
                        return Ok(());
                    }
                    let mut children = children.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
                    let victim = usize::try_from(rng.next(children.len() as u64))?;
                    children[victim].kill()?; // SIGKILL
                    children[victim].wait()?;
                    children[victim] = spawn_child(&url)?;
                    kills.fetch_add(1, Ordering::SeqCst);
                }
            })
        };
        Chaos { stop, kills, task }
    }

    fn kill_all(self) -> Result<()> {
        let mut children = self
            .children
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?;
        for child in children.iter_mut() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }
}

struct Chaos {
    stop: Arc<AtomicBool>,
    kills: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<Result<()>>,
}

impl Chaos {
    /// Stops the killing (after the pause under way) and returns how many were killed.
    async fn stop(self) -> Result<usize> {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await??;
        Ok(self.kills.load(Ordering::SeqCst))
    }
}

fn spawn_child(url: &str) -> Result<Child> {
    Command::new(std::env::current_exe()?)
        .args(["--engine-child", url])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting an engine process")
}

/// The engine process: `tenancy start`'s engine (continuous mode, default settings, a pool
/// of its own) until it is killed.
pub async fn child_main(url: &str) -> Result<()> {
    let options: sqlx::postgres::PgConnectOptions = url.parse()?;
    let pool = tenancy_postgres::pool::connect_with(options, 10).await?;
    Engine::new(pool, EngineConfig::default())
        .run_continuous(std::future::pending())
        .await?;
    Ok(())
}
