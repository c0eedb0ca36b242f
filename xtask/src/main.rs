//! `cargo xtask <chore>`: migrate, test, lint, docs, consumer, package, ci, images, bench, db.
#![allow(clippy::print_stdout)]

mod docker;
mod docs;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use tenancy_postgres::embedded::EmbeddedCluster;

#[derive(Parser)]
#[command(about = "tenancy's chores")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Apply pending migrations (idempotent), then prefill the relational tables from the
    /// events in the store. Uses DATABASE_URL, else the app's embedded PostgreSQL (database
    /// `tenancy` in its default data directory, as `tenancy` itself would use it).
    Migrate {
        /// List applied and pending migrations instead.
        #[arg(long)]
        status: bool,
    },
    /// Run the test suite (nextest when installed, else cargo test). With the Docker test
    /// images present and no TENANCY_TEST_DB or DATABASE_URL set, CI's matrix: the whole
    /// suite on PostgreSQL 15 in a container, the adapter, event store, projection and
    /// ZITADEL-layout suites on 17, the whole suite again on the embedded cluster.
    Test,
    /// Start a Docker engine when none answers (installing Debian's docker.io if needed),
    /// then build the PostgreSQL test images that are missing (see tenancy_testkit::docker).
    Images,
    /// cargo fmt --check, clippy -D warnings on all targets, cargo-deny when installed.
    Lint,
    /// The rustdoc of every crate (all features) and the book in docs/, warnings denied.
    Docs,
    /// examples/consumer, a crate outside the workspace, built and tested from a clean
    /// copy: with path dependencies, then with git dependencies on the committed HEAD.
    Consumer,
    /// `cargo package` of every library crate, and a build of the packaged sources alone.
    Package,
    /// lint, docs, consumer, package, then test: what CI runs (without the benchmarks).
    Ci,
    /// Benchmarks against baselines measured in the same run (release build); prints a
    /// table and writes target/bench/report.json.
    Bench {
        /// Small sizes, for a smoke run.
        #[arg(long)]
        quick: bool,
        /// Instead of the benchmarks: the reliability suite at large scale (release build,
        /// TENANCY_SOAK_SCALE=20).
        #[arg(long)]
        soak: bool,
        /// Further arguments for tenancy-bench (e.g. --sizes 100,1000 --per-instance 700).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        rest: Vec<String>,
    },
    /// Manage the embedded clusters.
    Db {
        #[command(subcommand)]
        action: DbAction,
    },
}

#[derive(Subcommand)]
enum DbAction {
    /// Stop the shared embedded test cluster and the development cluster, and remove the
    /// shared test containers.
    Stop,
}

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

fn dev_cluster_root() -> PathBuf {
    tenancy_postgres::embedded::default_data_dir().join("postgres")
}

fn cargo(args: &[&str]) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    println!("$ cargo {}", args.join(" "));
    let status = Command::new(cargo)
        .args(args)
        .current_dir(workspace_root())
        .status()?;
    if !status.success() {
        bail!("cargo {} failed ({status})", args.join(" "));
    }
    Ok(())
}

fn has(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// One run of the suite on one database provider.
struct Job {
    title: &'static str,
    /// `TENANCY_TEST_DB` and `TENANCY_TEST_PG`, when the job sets them.
    env: Vec<(&'static str, &'static str)>,
    /// A nextest filter expression; `None` runs everything (doc tests included).
    filter: Option<&'static str>,
}

/// The adapter, event store, projection and ZITADEL-layout suites: what a server version
/// can break.
const DATABASE_SUITES: &str = "package(tenancy-postgres) | package(tenancy-eventstore) \
     | package(tenancy-projection) | package(tenancy-testkit) \
     | (package(tenancy-tests) & binary(zitadel_layout))";

fn jobs() -> Vec<Job> {
    let chosen =
        std::env::var_os("TENANCY_TEST_DB").is_some() || std::env::var_os("DATABASE_URL").is_some();
    if chosen {
        return vec![Job {
            title: "as configured",
            env: vec![],
            filter: None,
        }];
    }
    if !docker::images_present() {
        println!(
            "the Docker test images are not there (`cargo xtask images` builds them): \
             one run on the automatic provider"
        );
        return vec![Job {
            title: "automatic provider",
            env: vec![],
            filter: None,
        }];
    }
    vec![
        Job {
            title: "docker, PostgreSQL 15, whole suite",
            env: vec![("TENANCY_TEST_DB", "docker"), ("TENANCY_TEST_PG", "15")],
            filter: None,
        },
        Job {
            title: "docker, PostgreSQL 17, database suites",
            env: vec![("TENANCY_TEST_DB", "docker"), ("TENANCY_TEST_PG", "17")],
            filter: Some(DATABASE_SUITES),
        },
        Job {
            title: "embedded cluster, whole suite",
            env: vec![("TENANCY_TEST_DB", "embedded")],
            filter: None,
        },
    ]
}

/// Runs nextest, echoing its output, and returns its summary line ("N tests run: ...").
fn nextest(job: &Job) -> Result<String> {
    let mut args = vec!["nextest", "run", "--workspace", "--no-fail-fast"];
    if let Some(filter) = job.filter {
        args.extend(["-E", filter]);
    }
    println!(
        "$ {} cargo {}",
        job.env
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" "),
        args.join(" ")
    );
    let mut child = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(&args)
        .envs(job.env.iter().copied())
        .current_dir(workspace_root())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut summary = String::from("no summary");
    if let Some(stderr) = child.stderr.take() {
        for line in BufReader::new(stderr).lines() {
            let line = line?;
            eprintln!("{line}");
            if line.contains(" tests run: ") || line.contains(" test run: ") {
                summary = line.trim().to_owned();
            }
        }
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("{}: {summary}", job.title);
    }
    Ok(summary)
}

fn test() -> Result<()> {
    let nextest_installed = Command::new("cargo")
        .args(["nextest", "--version"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !nextest_installed {
        println!("cargo-nextest is not installed: using cargo test, on the automatic provider");
        return cargo(&["test", "--workspace", "--no-fail-fast"]);
    }
    // Doc tests first: they need no database.
    cargo(&["test", "--workspace", "--doc"])?;
    let mut results = Vec::new();
    for job in jobs() {
        let started = std::time::Instant::now();
        let result = nextest(&job);
        results.push((job.title, started.elapsed(), result));
    }
    // The shared embedded cluster and containers are left running: other test or bench
    // processes may be using them. `cargo xtask db stop` stops them.
    println!("\ntest runs (the provider each served is checked by testkit's provider test):");
    for (title, took, result) in &results {
        let outcome = match result {
            Ok(summary) => summary.clone(),
            Err(e) => format!("FAILED: {e:#}"),
        };
        println!("  {title:<48} {:>5.0} s  {outcome}", took.as_secs_f64());
    }
    if results.iter().any(|(_, _, r)| r.is_err()) {
        bail!("some test runs failed");
    }
    Ok(())
}

fn lint() -> Result<()> {
    cargo(&["fmt", "--all", "--", "--check"])?;
    cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ])?;
    // The in-memory part of the testkit builds alone (no sqlx, testcontainers, DNS).
    cargo(&[
        "clippy",
        "-p",
        "tenancy-testkit",
        "--no-default-features",
        "--",
        "-D",
        "warnings",
    ])?;
    // The alert rules (ops/prometheus) parse and their expressions are valid PromQL.
    if has("promtool") {
        let status = Command::new("promtool")
            .args([
                "check",
                "rules",
                concat!(env!("CARGO_MANIFEST_DIR"), "/../ops/prometheus/alerts.yml"),
            ])
            .status()?;
        if !status.success() {
            anyhow::bail!("promtool check rules failed");
        }
    } else {
        println!("promtool is not installed: skipping the alert rules check");
    }
    if has("cargo-deny") {
        cargo(&["deny", "check", "licenses", "bans", "sources"])?;
    } else {
        println!("cargo-deny is not installed: skipping license/ban/source checks");
    }
    Ok(())
}

async fn migrate(status: bool) -> Result<()> {
    let url = match std::env::var("DATABASE_URL") {
        Ok(url) => url,
        Err(_) => {
            let root = dev_cluster_root();
            let cluster =
                tokio::task::spawn_blocking(move || EmbeddedCluster::start(&root, true)).await??;
            println!(
                "using the embedded PostgreSQL in {} (port {})",
                dev_cluster_root().display(),
                cluster.port()
            );
            tenancy_postgres::embedded::ensure_database(&cluster.url(), "tenancy").await?;
            cluster.database_url("tenancy")
        }
    };
    let pool = tenancy_postgres::PgStore::connect(&url)
        .await
        .context("connecting")?;
    if status {
        for m in tenancy_postgres::migrate::status(&pool).await? {
            println!(
                "{:>4}  {:<8}  {}",
                m.version,
                if m.applied { "applied" } else { "pending" },
                m.description
            );
        }
    } else {
        let applied = tenancy_postgres::migrate::migrate(&pool).await?;
        if applied.is_empty() {
            println!("schema is up to date");
        } else {
            println!("applied migrations {applied:?}");
        }
        let engine = tenancy_projection::Engine::new(
            pool.clone(),
            tenancy_projection::EngineConfig::default(),
        );
        let outcome = engine.run_until_caught_up(|_, _, _| {}).await?;
        let failed = engine.failed().await?;
        println!(
            "prefill: {} events applied, {} skipped, {} failed events listed",
            outcome.applied,
            outcome.skipped,
            failed.len()
        );
        if !failed.is_empty() {
            bail!(
                "{} events failed: see `cargo run -p tenancy-app -- projections failed`",
                failed.len()
            );
        }
    }
    Ok(())
}

fn main() {
    if let Err(error) = run(Cli::parse().task) {
        eprintln!("xtask: {error:#}");
        std::process::exit(1);
    }
}

fn run(task: Task) -> Result<()> {
    match task {
        Task::Migrate { status } => tokio::runtime::Runtime::new()?.block_on(migrate(status)),
        Task::Test => test(),
        Task::Images => docker::images(),
        Task::Lint => lint(),
        Task::Docs => docs::docs(),
        Task::Consumer => docs::consumer(),
        Task::Package => docs::package(),
        Task::Ci => lint()
            .and_then(|()| docs::docs())
            .and_then(|()| docs::consumer())
            .and_then(|()| docs::package())
            .and_then(|()| test()),
        Task::Bench { soak: true, .. } => {
            let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
                .args([
                    "test",
                    "--release",
                    "-p",
                    "tenancy-tests",
                    "-p",
                    "tenancy-app",
                    "--test",
                    "reliability",
                ])
                .env("TENANCY_SOAK_SCALE", "20")
                .current_dir(workspace_root())
                .status()?;
            if !status.success() {
                bail!("the soak suite failed ({status})");
            }
            Ok(())
        }
        Task::Bench { quick, rest, .. } => {
            let mut args = vec!["run", "--release", "--quiet", "-p", "tenancy-bench", "--"];
            if quick {
                args.push("--quick");
            }
            args.extend(rest.iter().map(String::as_str));
            cargo(&args)
        }
        Task::Db {
            action: DbAction::Stop,
        } => {
            EmbeddedCluster::stop_at(&tenancy_testkit::db::embedded_root())?;
            docker::remove_containers();
            if dev_cluster_root().exists() {
                EmbeddedCluster::stop_at(&dev_cluster_root())?;
            }
            Ok(())
        }
    }
}
