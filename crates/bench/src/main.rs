//! `cargo xtask bench`: tenancy against baselines measured in the same run, as ratios.
//! Prints a table and writes `target/bench/report.json`.
#![allow(clippy::print_stdout)]

mod api;
mod catchup;
mod chaos;
mod grown;
mod hosts;
mod idle;
mod lookup;
mod memory;
mod outage;
mod paging;
mod push;
mod rebuild;
mod replicas;
mod zitadel;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::Parser;
use serde::Serialize;

#[derive(Parser, Debug, Clone)]
#[command(about = "tenancy benchmarks")]
pub struct Args {
    /// Small sizes, for a smoke run in CI.
    #[arg(long)]
    pub quick: bool,
    /// Numbers of instances of the catch-up's scale curve (default 100,300,1000,3000); for
    /// `--only idle` or `--only memory`, the small and the large size; for `--only rebuild`,
    /// the instances (700 events each) of each store.
    #[arg(long, value_delimiter = ',')]
    pub sizes: Option<Vec<usize>>,
    /// Events per instance of the catch-up (default 700).
    #[arg(long)]
    pub per_instance: Option<usize>,
    /// Instances of the catch-up's ZITADEL-style and batches-only baselines (default 300).
    #[arg(long)]
    pub baseline_instances: Option<usize>,
    /// Events the writer pushes in the grew-from-empty run (default 300,000).
    #[arg(long)]
    pub grown_events: Option<usize>,
    /// Pushes per engine count of `--only chaos` (default 600; `--quick`: 100): more
    /// samples put p99 further from the few slowest.
    #[arg(long)]
    pub chaos_samples: Option<usize>,
    /// Run one benchmark only (for profiling).
    #[arg(long, value_enum)]
    pub only: Option<Bench>,
    /// Internal: the writer process of the host-invalidation benchmark (database URL).
    #[arg(long, hide = true)]
    pub hosts_writer: Option<String>,
    /// Internal: a child process of the memory benchmark (the job to run).
    #[arg(long, hide = true)]
    pub memory_child: Option<String>,
    /// Internal: an engine process of the chaos benchmark (database URL).
    #[arg(long, hide = true)]
    pub engine_child: Option<String>,
    /// Internal: the database of the memory benchmark's child.
    #[arg(long, hide = true)]
    pub memory_url: Option<String>,
    /// Where to write the JSON report.
    #[arg(long, default_value = "target/bench/report.json")]
    pub report: PathBuf,
}

/// The benchmarks, for `--only`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bench {
    Catchup,
    Grown,
    Push,
    Lookup,
    Hosts,
    Paging,
    Api,
    Zitadel,
    Rebuild,
    Idle,
    Memory,
    Replicas,
    Outage,
    Chaos,
}

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    pub name: String,
    pub ours: f64,
    pub baseline: f64,
    /// ours / baseline (for latencies: baseline / ours, so > 1 is better; for costs
    /// ([`Figure::cost`]) ours / baseline, lower is better).
    pub ratio: f64,
    pub unit: String,
    pub baseline_name: String,
    pub parameters: serde_json::Value,
}

impl Figure {
    pub fn throughput(
        name: &str,
        ours: f64,
        baseline: f64,
        baseline_name: &str,
        unit: &str,
        parameters: serde_json::Value,
    ) -> Self {
        Self {
            name: name.into(),
            ours,
            baseline,
            ratio: ours / baseline,
            unit: unit.into(),
            baseline_name: baseline_name.into(),
            parameters,
        }
    }

    /// A cost against the same cost at a baseline (memory, transactions, time per
    /// event): the ratio is ours / baseline as for a throughput, but lower is better.
    pub fn cost(
        name: &str,
        ours: f64,
        baseline: f64,
        baseline_name: &str,
        unit: &str,
        parameters: serde_json::Value,
    ) -> Self {
        let unit = format!("{unit} (ratio: cost, lower is better)");
        Self::throughput(name, ours, baseline, baseline_name, &unit, parameters)
    }

    pub fn latency(
        name: &str,
        ours: f64,
        baseline: f64,
        baseline_name: &str,
        unit: &str,
        parameters: serde_json::Value,
    ) -> Self {
        Self {
            name: name.into(),
            ours,
            baseline,
            ratio: baseline / ours,
            unit: unit.into(),
            baseline_name: baseline_name.into(),
            parameters,
        }
    }
}

/// The two store sizes (instances) of the benchmarks that compare a small store with a
/// large one: `--sizes small,large`, else 1,000 and 100,000 (`--quick`: 5,000).
pub fn small_and_large(args: &Args) -> (usize, usize) {
    match (args.sizes.as_deref(), args.quick) {
        (Some([small, large]), _) => (*small, *large),
        (_, true) => (1_000, 5_000),
        (_, false) => (1_000, 100_000),
    }
}

/// p-th percentile of durations, in milliseconds.
pub fn percentile_ms(samples: &mut [Duration], p: f64) -> f64 {
    samples.sort();
    if samples.is_empty() {
        return 0.0;
    }
    let index = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[index].as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    if let Some(url) = &args.hosts_writer {
        return hosts::writer(url).await;
    }
    if let Some(url) = &args.engine_child {
        return chaos::child_main(url).await;
    }
    if let (Some(job), Some(url)) = (&args.memory_child, &args.memory_url) {
        return memory::child_main(job, url).await;
    }
    init_tracing();
    let mut figures = Vec::new();
    let runs = |bench| args.only.is_none_or(|only| only == bench);
    if runs(Bench::Catchup) {
        figures.extend(catchup::run(&args).await?);
    }
    if runs(Bench::Outage) {
        figures.extend(outage::run(&args).await?);
    }
    if runs(Bench::Grown) {
        figures.extend(grown::run(&args).await?);
    }
    if runs(Bench::Push) {
        figures.extend(push::run(&args).await?);
    }
    if runs(Bench::Lookup) {
        figures.extend(lookup::run(&args).await?);
    }
    if runs(Bench::Hosts) {
        figures.extend(hosts::run(&args).await?);
    }
    if runs(Bench::Paging) {
        figures.extend(paging::run(&args).await?);
    }
    if runs(Bench::Api) {
        figures.extend(api::run(&args).await?);
    }
    if runs(Bench::Zitadel) {
        figures.extend(zitadel::run(&args).await?);
    }
    if runs(Bench::Rebuild) {
        figures.extend(rebuild::run(&args).await?);
    }
    if runs(Bench::Idle) {
        figures.extend(idle::run(&args).await?);
    }
    if runs(Bench::Chaos) {
        figures.extend(chaos::run(&args).await?);
    }
    if runs(Bench::Memory) {
        figures.extend(memory::run(&args).await?);
    }
    if runs(Bench::Replicas) {
        figures.extend(replicas::run(&args).await?);
    }
    println!();
    println!(
        "{:<34} {:>14} {:>14} {:>8}  unit (baseline)",
        "benchmark", "ours", "baseline", "ratio"
    );
    for f in &figures {
        println!(
            "{:<34} {:>14.1} {:>14.1} {:>8.2}  {} ({})",
            f.name, f.ours, f.baseline, f.ratio, f.unit, f.baseline_name
        );
    }
    if let Some(dir) = args.report.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.report, serde_json::to_string_pretty(&figures)?)?;
    println!("\nwrote {}", args.report.display());
    Ok(())
}

/// Diagnostics on demand (`RUST_LOG=tenancy_projection=debug`) on stderr, quiet otherwise;
/// the engine processes of `chaos` as well.
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .with_writer(std::io::stderr)
        .init();
}
