//! Peak memory of the jobs that read the whole store (issue 28), each in a child process
//! of its own (this binary in child mode) on a store of small instances that was imported
//! and `VACUUM ANALYZE`d, at a small and a large number of instances, one after the other
//! on the same database:
//! - the prefill (`projections run --until-caught-up`);
//! - `verify`;
//! - the side-by-side rebuild with its switch (`projections rebuild`);
//! - the engine of `tenancy start` (continuous mode) through its heaviest periodic moment:
//!   the sweep of a database with no sweep recorded, which walks every instance. The child
//!   deletes the record, runs until the sweep has written it again, then 2 s more.
//!
//! The child reports its peak resident set (`VmHWM`); the figure is the large size
//! against the small one.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use serde_json::json;
use tenancy_projection::{Engine, EngineConfig};

use crate::catchup::{loaded, stream_rows};
use crate::{Args, Figure};

const PER_INSTANCE: usize = 30;

pub async fn run(args: &Args) -> Result<Vec<Figure>> {
    let (small, large) = crate::small_and_large(args);
    let mut peaks = Vec::new();
    for instances in [small, large] {
        let db = {
            let rows = stream_rows(instances, instances * PER_INSTANCE, 11, false);
            loaded(&rows).await?
        };
        let url = db.url();
        let mut peak = Vec::with_capacity(JOBS.len());
        for job in JOBS {
            peak.push(child(job, &url)?);
        }
        println!(
            "peak RSS, {instances} instances ({} events): {}",
            instances * PER_INSTANCE,
            JOBS.iter()
                .zip(&peak)
                .map(|(job, kb)| format!("{job} {:.0} MB", kb / 1024.0))
                .collect::<Vec<_>>()
                .join(", ")
        );
        peaks.push(peak);
    }
    let mb = |job: usize| [peaks[0][job] / 1024.0, peaks[1][job] / 1024.0];
    let parameters = json!({"per_instance": PER_INSTANCE, "small": small, "large": large,
                            "peak_mb": JOBS.iter().enumerate().map(|(j, job)| (job.to_string(), json!(mb(j)))).collect::<serde_json::Map<_, _>>(),
                            "target_mb_at_100k": 512});
    Ok(JOBS
        .iter()
        .enumerate()
        .map(|(j, job)| {
            let [at_small, at_large] = mb(j);
            Figure::cost(
                &format!("{job} peak RSS, {large} vs {small}"),
                at_large,
                at_small,
                &format!("{small} instances"),
                "MB",
                parameters.clone(),
            )
        })
        .collect())
}

/// The jobs measured, in the order they run on one database.
const JOBS: [&str; 4] = ["prefill", "verify", "rebuild", "start"];

/// Runs `job` in a child process on the database at `url`; its peak RSS in kB.
fn child(job: &str, url: &str) -> Result<f64> {
    let output = Command::new(std::env::current_exe()?)
        .args(["--memory-child", job, "--memory-url", url])
        .output()?;
    ensure!(
        output.status.success(),
        "the {job} child failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("peak_rss_kb "))
        .context("the child reported no peak")?
        .trim()
        .parse()
        .context("peak_rss_kb")
}

/// Child mode: runs `job` and prints its peak RSS.
pub async fn child_main(job: &str, url: &str) -> Result<()> {
    let options: sqlx::postgres::PgConnectOptions = url.parse()?;
    let pool = tenancy_postgres::pool::connect_with(options, 16).await?;
    let engine = Engine::new(pool, EngineConfig::default());
    match job {
        "prefill" => {
            let outcome = engine.run_until_caught_up(|_, _, _| {}).await?;
            ensure!(outcome.failed == 0, "events failed: {outcome:?}");
        }
        "verify" => {
            let report = engine.verify().await?;
            ensure!(
                report.is_equal(),
                "{} differences",
                report.differences.len()
            );
        }
        "rebuild" => {
            let rebuilt = engine
                .rebuild_side_by_side(std::sync::Arc::new(|_, _, _| {}))
                .await?;
            ensure!(
                rebuilt.outcome.failed == 0,
                "events failed: {:?}",
                rebuilt.outcome
            );
        }
        "start" => {
            let pool = engine.pool().clone();
            sqlx::query("DELETE FROM tenancy.sweeps")
                .execute(&pool)
                .await?;
            let running = engine.spawn_continuous();
            let deadline = Instant::now() + Duration::from_secs(600);
            while sqlx::query_scalar::<_, i64>("SELECT count(*) FROM tenancy.sweeps")
                .fetch_one(&pool)
                .await?
                == 0
            {
                ensure!(
                    Instant::now() < deadline,
                    "no sweep recorded after 10 minutes"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
            running.stop().await?;
        }
        other => anyhow::bail!("unknown child job {other}"),
    }
    let status = std::fs::read_to_string("/proc/self/status")?;
    let peak = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .context("no VmHWM")?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .to_owned();
    println!("peak_rss_kb {peak}");
    Ok(())
}
