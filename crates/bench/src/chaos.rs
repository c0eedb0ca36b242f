//! Push -> visible while replicas die (issue 25): engines in processes of their own (this
//! binary with `--engine-child`, as `tenancy start` runs its engine), one left alone
//! against three of which a random one is SIGKILLed every 1–3 s and restarted 0.5 s later, in
//! alternating rounds (1, 3, 3, 1), each after the processes have run for 2 s. The store is the idle benchmark's (small instances,
//! imported, `VACUUM ANALYZE`d, prefilled). The pushes go through tenancy's push (a
//! notification each). At the end the last engine catches up and the tables must equal
//! the fold of the events, with no failed event.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use serde_json::json;
use tenancy_postgres::leadership::leader_of;
use tenancy_projection::{Engine, EngineConfig};
use tenancy_testkit::db::TestDatabase;
use tenancy_testkit::stream::Rng;

use crate::idle::SETTLE;
use crate::zitadel::{PickUpWriter, pick_up_timed};
use crate::{Args, Figure, percentile_ms};

pub async fn run(args: &Args) -> Result<Vec<Figure>> {
    let (small, _) = crate::small_and_large(args);
    let db = crate::idle::prefilled(small).await?;
    // Pushes come about every 110 ms (a random pause of up to 200 ms, then the wait for
    // the row): 600 per engine count is a minute of chaos.
    let samples = args
        .chaos_samples
        .unwrap_or(if args.quick { 100 } else { 600 });
    let rounds = 4;
    let mut samples_of: [Vec<Duration>; 2] = Default::default();
    // The chaos rounds' samples with the last kill before each row showed, and how long
    // before the push it came (zero when during it).
    let mut after_kill: Vec<(Duration, Option<(Kill, Duration)>)> = Vec::new();
    let mut kills = 0;
    for round in 0..rounds {
        let order = if round % 2 == 0 { [1, 3] } else { [3, 1] };
        for engines in order {
            let running = Engines::start(&db, engines).await?;
            // Running, not starting: their first sweep and warm-up (the process restarted
            // after each kill goes through both under load, and counts).
            tokio::time::sleep(SETTLE).await;
            let chaos = (engines > 1 && std::env::var("NO_KILL").is_err())
                .then(|| running.kill_at_random(db.pool.clone(), Rng(round as u64 + 1)));
            let took = pick_up_timed(
                &db.pool,
                &format!("chaos-{engines}-{round}"),
                samples / rounds,
                PickUpWriter::Tenancy,
            )
            .await?;
            samples_of[usize::from(engines == 3)].extend(took.iter().map(|(_, t)| *t));
            if let Some(chaos) = chaos {
                let killed = chaos.stop().await?;
                kills += killed.len();
                for (pushed, took) in took {
                    let last = killed
                        .iter()
                        .filter(|k| k.at <= pushed + took)
                        .max_by_key(|k| k.at)
                        .map(|k| (*k, pushed.saturating_duration_since(k.at)));
                    after_kill.push((took, last));
                }
            }
            if round == rounds - 1 && engines == order[1] {
                caught_up_and_equal(&db).await?;
            }
            running.kill_all()?;
            // The dead processes' sweep lease expires meanwhile; their sessions end.
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    // Where the slow samples of the chaos rounds come from: those within 1 s after a
    // kill against the rest, and the slowest with their kill.
    let (mut near_kill, mut far): (Vec<Duration>, Vec<Duration>) = (Vec::new(), Vec::new());
    for (took, kill) in &after_kill {
        if kill.is_some_and(|(_, before_push)| before_push < Duration::from_secs(1)) {
            near_kill.push(*took);
        } else {
            far.push(*took);
        }
    }
    let (near_count, far_count) = (near_kill.len(), far.len());
    let (near_p99, far_p99) = (
        percentile_ms(&mut near_kill, 0.99),
        percentile_ms(&mut far, 0.99),
    );
    after_kill.sort_by_key(|(took, _)| std::cmp::Reverse(*took));
    let slowest: Vec<String> = after_kill
        .iter()
        .take(8)
        .map(|(took, kill)| match kill {
            Some((k, before_push)) => format!(
                "{:.1} ms ({} killed {:.0} ms before, at {})",
                took.as_secs_f64() * 1000.0,
                if k.leader { "leader" } else { "other" },
                before_push.as_secs_f64() * 1000.0,
                wall(k.at)
            ),
            None => format!("{:.1} ms (no kill before)", took.as_secs_f64() * 1000.0),
        })
        .collect();
    println!(
        "chaos samples within 1 s after a kill: {near_count}, p99 {near_p99:.1} ms; the others: {far_count}, p99 {far_p99:.1} ms; slowest: {}",
        slowest.join(", ")
    );
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
    let interval = ratio_interval(&one, &three, &mut Rng(0x5eed));
    if let Some((low, high)) = interval {
        println!(
            "  p99 of 1 engine over p99 of 3: {:.2}, 90 % bootstrap interval {low:.2}-{high:.2} ({RESAMPLES} resamples of each side)",
            one_p99 / three_p99
        );
    }
    Ok(vec![Figure::latency(
        &format!("push -> visible p99, 3 in chaos vs 1 ({small})"),
        three_p99,
        one_p99,
        "1 engine, undisturbed",
        "ms (ratio >= 1: no worse than one engine)",
        json!({"samples": one.len(), "rounds": rounds, "sigkills": kills, "p50_ms_1": one_p50,
               "p50_ms_3": three_p50, "kill_every_s": "1-3",
               "ratio_interval_90": interval.map(|(low, high)| [low, high])}),
    )])
}

/// Resamples of [`ratio_interval`].
const RESAMPLES: usize = 1_000;

/// A 90 % bootstrap interval of the figure's ratio (`one`'s p99 over `three`'s): both
/// sides resampled with replacement. With 600 samples a side p99 is the 7th slowest, so
/// one slow sample moves it; the interval says how far the ratio of one run can be from
/// what the engines would show in many (`None` without samples on a side). A bootstrap
/// of a tail quantile is rough, but it tells a ratio of 0.9 that is noise from one that
/// is not.
fn ratio_interval(one: &[Duration], three: &[Duration], rng: &mut Rng) -> Option<(f64, f64)> {
    if one.is_empty() || three.is_empty() {
        return None;
    }
    let mut resample = |from: &[Duration]| -> Vec<Duration> {
        (0..from.len())
            .map(|_| from[rng.next(from.len() as u64) as usize])
            .collect()
    };
    let mut ratios: Vec<f64> = (0..RESAMPLES)
        .map(|_| {
            let (mut a, mut b) = (resample(one), resample(three));
            percentile_ms(&mut a, 0.99) / percentile_ms(&mut b, 0.99)
        })
        .filter(|ratio| ratio.is_finite())
        .collect();
    ratios.sort_by(f64::total_cmp);
    let at = |p: f64| {
        ratios
            .get(((ratios.len() as f64 - 1.0) * p).round() as usize)
            .copied()
    };
    Some((at(0.05)?, at(0.95)?))
}

/// The time of day of `at`, to find it in the engine processes' logs (`RUST_LOG`).
fn wall(at: Instant) -> String {
    let then = time::OffsetDateTime::now_utc() - at.elapsed();
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        then.hour(),
        then.minute(),
        then.second(),
        then.millisecond()
    )
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

/// How long a killed engine process stays down before it is started again.
const RESTART_AFTER: Duration = Duration::from_millis(500);
/// The task whose leader the benchmark watches (`tenancy_postgres::leadership`).
const POLL: &str = "relational_tables:poll";

/// Engine processes on one database.
struct Engines {
    url: String,
    children: Arc<std::sync::Mutex<Vec<Child>>>,
}

impl Engines {
    /// The process ids of the engine processes now.
    fn pids(&self) -> Result<Vec<u32>> {
        let children = self
            .children
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?;
        Ok(children.iter().map(Child::id).collect())
    }

    /// `n` engine processes, returned once one of them leads the poll.
    async fn start(db: &TestDatabase, n: usize) -> Result<Self> {
        let url = db.url();
        let children = (0..n)
            .map(|_| spawn_child(&url))
            .collect::<Result<Vec<_>>>()?;
        let running = Self {
            url,
            children: Arc::new(std::sync::Mutex::new(children)),
        };
        for _ in 0..200 {
            let leader = leader_of(&db.pool, POLL).await?;
            let pids = running.pids()?;
            if leader.is_some_and(|l| l.process_id.is_some_and(|pid| pids.contains(&pid))) {
                return Ok(running);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        anyhow::bail!("no engine process took the poll's lead within 10 s")
    }

    /// A task that SIGKILLs a random process every 1–3 s and starts another in its place.
    fn kill_at_random(&self, pool: sqlx::PgPool, mut rng: Rng) -> Chaos {
        let stop = Arc::new(AtomicBool::new(false));
        let kills = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (children, url) = (self.children.clone(), self.url.clone());
        let task = {
            let (stop, kills) = (stop.clone(), kills.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(1000 + rng.next(2000))).await;
                    if stop.load(Ordering::SeqCst) {
                        return Ok(());
                    }
                    let victim = usize::try_from(rng.next(3))?;
                    let pid =
                        children.lock().map_err(|_| anyhow::anyhow!("poisoned"))?[victim].id();
                    let leader = leader_of(&pool, POLL)
                        .await?
                        .is_some_and(|l| l.process_id == Some(pid));
                    // Killing, reaping and starting a process block the calling thread:
                    // off the runtime, whose threads time the pushes.
                    let at = blocking(&children, move |children| {
                        children[victim].kill()?; // SIGKILL
                        let at = Instant::now();
                        children[victim].wait()?;
                        Ok(at)
                    })
                    .await?;
                    // Restarted as an orchestrator would, not within the same millisecond.
                    tokio::time::sleep(RESTART_AFTER).await;
                    let url = url.clone();
                    blocking(&children, move |children| {
                        children[victim] = spawn_child(&url)?;
                        Ok(())
                    })
                    .await?;
                    kills
                        .lock()
                        .map_err(|_| anyhow::anyhow!("poisoned"))?
                        .push(Kill { at, leader });
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
    kills: Arc<std::sync::Mutex<Vec<Kill>>>,
    task: tokio::task::JoinHandle<Result<()>>,
}

/// A SIGKILL: when, and whether the victim led the poll.
#[derive(Debug, Clone, Copy)]
struct Kill {
    at: Instant,
    leader: bool,
}

impl Chaos {
    /// Stops the killing (after the pause under way) and returns the kills.
    async fn stop(self) -> Result<Vec<Kill>> {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await??;
        let kills = self.kills.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
        Ok(kills.clone())
    }
}

/// Runs `work` on the engine processes on a thread for blocking work.
async fn blocking<T: Send + 'static>(
    children: &Arc<std::sync::Mutex<Vec<Child>>>,
    work: impl FnOnce(&mut Vec<Child>) -> Result<T> + Send + 'static,
) -> Result<T> {
    let children = children.clone();
    tokio::task::spawn_blocking(move || {
        let mut children = children.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
        work(&mut children)
    })
    .await?
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
    // Quiet unless asked (RUST_LOG), then with the time of day of each line.
    crate::init_tracing();
    let options: sqlx::postgres::PgConnectOptions = url.parse()?;
    let pool = tenancy_postgres::pool::connect_with(options, 10).await?;
    Engine::new(pool, EngineConfig::default())
        .run_continuous(std::future::pending())
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{Duration, Rng, ratio_interval};

    fn ms(values: impl IntoIterator<Item = u64>) -> Vec<Duration> {
        values.into_iter().map(Duration::from_millis).collect()
    }

    #[test]
    fn the_interval_of_sides_that_differ_by_a_factor_is_that_factor() {
        let one = ms([5; 300]);
        let three = ms([10; 300]);
        assert_eq!(ratio_interval(&one, &three, &mut Rng(7)), Some((0.5, 0.5)));
    }

    #[test]
    fn a_p99_set_by_a_few_slow_samples_is_not_told_from_no_difference() {
        // p99 of 600 samples is the 7th slowest: with 7 slow samples on one side the
        // ratio is 4, but about half of the resamples draw 6 or fewer of them.
        let one: Vec<Duration> = ms((0..600).map(|n| if n < 7 { 20 } else { 5 }));
        let three = ms([5; 600]);
        assert_eq!(ratio_interval(&one, &three, &mut Rng(7)), Some((1.0, 4.0)));
    }

    #[test]
    fn no_samples_no_interval() {
        assert_eq!(ratio_interval(&[], &ms([5]), &mut Rng(7)), None);
    }
}
