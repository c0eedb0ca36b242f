//! Peak memory of the jobs that read the whole store (issue 28): the prefill
//! (`projections run --until-caught-up`) and `verify`, each in a child process of its own
//! (this binary in child mode) on a store of small instances that was imported and
//! `VACUUM ANALYZE`d, at a small and a large number of instances. The child reports its
//! peak resident set (`VmHWM`); the figure is the large size against the small one.

use std::process::Command;

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
        let prefill = child("prefill", &url)?;
        let verify = child("verify", &url)?;
        println!(
            "peak RSS, {instances} instances ({} events): prefill {:.0} MB, verify {:.0} MB",
            instances * PER_INSTANCE,
            prefill / 1024.0,
            verify / 1024.0
        );
        peaks.push((prefill, verify));
    }
    let ((p_small, v_small), (p_large, v_large)) = (peaks[0], peaks[1]);
    let parameters = json!({"per_instance": PER_INSTANCE, "small": small, "large": large,
                            "prefill_mb": [p_small / 1024.0, p_large / 1024.0],
                            "verify_mb": [v_small / 1024.0, v_large / 1024.0], "target_mb_at_100k": 512});
    Ok(vec![
        Figure {
            name: format!("prefill peak RSS, {large} vs {small}"),
            ours: p_large / 1024.0,
            baseline: p_small / 1024.0,
            ratio: p_large / p_small,
            unit: "MB (ratio: growth, lower is better)".into(),
            baseline_name: format!("{small} instances"),
            parameters: parameters.clone(),
        },
        Figure {
            name: format!("verify peak RSS, {large} vs {small}"),
            ours: v_large / 1024.0,
            baseline: v_small / 1024.0,
            ratio: v_large / v_small,
            unit: "MB (ratio: growth, lower is better)".into(),
            baseline_name: format!("{small} instances"),
            parameters,
        },
    ])
}

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
