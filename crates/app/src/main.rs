//! `tenancy`: migrate, start, projections, events import, demo.
#![allow(clippy::print_stdout)] // a CLI prints its results

mod api;
mod database;
mod demo;
mod http;
mod org_domains;
mod settings;
mod start;
mod telemetry;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use tenancy_projection::Engine;

use crate::database::Database;
use crate::telemetry::LogFormat;

#[derive(Parser)]
#[command(
    name = "tenancy",
    version,
    about = "State layer of a multi-tenant identity platform"
)]
struct Cli {
    /// PostgreSQL URL; without one, an embedded PostgreSQL is started in --data-dir.
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    database_url: Option<String>,
    /// Data directory of the embedded PostgreSQL.
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// A TOML configuration file (default: ./tenancy.toml if present).
    #[arg(long, env = "TENANCY_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value = "text", global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Apply schema migrations, then prefill the tables from the events in the store.
    Migrate,
    /// Migrate if needed, keep the projections current, serve /healthz, /readyz, /metrics
    /// and the service API (gRPC and Connect JSON).
    Start {
        /// HTTP address (default 127.0.0.1:8080).
        #[arg(long)]
        listen: Option<String>,
    },
    /// Make a bearer token for the service API: prints the token and the tenancy.toml
    /// entry that holds its digest. Needs no database.
    ApiToken {
        /// Who holds the token: the events its calls write carry it as creator.
        #[arg(long)]
        name: String,
        /// Bind the token to this instance; without it, a system token.
        #[arg(long)]
        instance: Option<String>,
    },
    /// Operate the relational_tables projection.
    Projections {
        #[command(subcommand)]
        action: ProjectionAction,
    },
    /// The event store.
    Events {
        #[command(subcommand)]
        action: EventAction,
    },
    /// Fill an empty database with a realistic dataset through both write paths.
    Demo,
    /// Verify organization domains: generate a token, check its DNS record or HTTP file.
    OrgDomains {
        #[command(subcommand)]
        action: org_domains::OrgDomainAction,
    },
    /// Show where tenancy's objects live in this database (or would, before `migrate`).
    Layout,
    /// Remove everything tenancy added: its schema, the relational tables, its indexes on
    /// eventstore.events2. The events stay.
    Remove {
        /// Required: the relational tables and tenancy's bookkeeping are dropped.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Subcommand)]
enum ProjectionAction {
    /// Events behind, lag and failures.
    Status,
    /// Apply events.
    Run {
        /// Apply everything up to the newest position present at start, then exit
        /// (non-zero when events failed).
        #[arg(long)]
        until_caught_up: bool,
    },
    /// List failed events.
    Failed,
    /// Retry a failed event (after fixing its cause).
    Retry {
        instance_id: String,
        aggregate_type: String,
        aggregate_id: String,
        sequence: i64,
    },
    /// Forget a failed event.
    Dismiss {
        instance_id: String,
        aggregate_type: String,
        aggregate_id: String,
        sequence: i64,
    },
    /// Rebuild the tables from the events side by side with the live ones, then switch
    /// (readers never see a partial generation); the replaced one is kept until
    /// `drop-previous` or the next rebuild.
    Rebuild {
        /// Reset the live tables and replay into them (an outage: for a database nobody reads).
        #[arg(long, conflicts_with = "abandon")]
        in_place: bool,
        /// Drop the next generation of an unfinished rebuild instead of continuing it.
        #[arg(long)]
        abandon: bool,
    },
    /// Drop the generation the last rebuild replaced.
    DropPrevious,
    /// Switch back to the generation the last rebuild replaced (a rollback, online): it is
    /// caught up with the events since, then switched in; the one it replaces is kept.
    SwitchBack,
    /// Fold the events, 500 instances at a time, and compare with the tables (exit 0 only
    /// when equal).
    Verify,
}

#[derive(Subcommand)]
enum EventAction {
    /// Import an export (COPY ... WITH (FORMAT csv, HEADER), or JSON lines).
    Import { file: PathBuf },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    };
    telemetry::shutdown();
    code
}

async fn run(cli: Cli) -> Result<ExitCode> {
    if let Command::ApiToken { .. } = cli.command {
        // No database needed.
        return dispatch_offline(cli.command);
    }
    let listen = match &cli.command {
        Command::Start { listen } => listen.clone(),
        _ => None,
    };
    let settings = settings::load(
        cli.config.as_deref(),
        cli.database_url.clone(),
        cli.data_dir.clone(),
        listen,
    )?;
    if let Command::Events {
        action: EventAction::Import { file },
    } = &cli.command
        && !file.is_file()
    {
        bail!("{} is not a readable file", file.display());
    }
    if let Command::Start { .. } = cli.command {
        // It opens the database itself, waiting for it (crate::start).
        start::run(&settings).await?;
        return Ok(ExitCode::SUCCESS);
    }
    let db = Database::open(
        settings.database_url.as_deref(),
        settings.data_dir.clone(),
        settings.relational_schema.as_deref(),
    )
    .await?;
    let engine = Engine::new(db.pool.clone(), settings.projection.engine());
    let result = dispatch(cli.command, &db, &engine, &settings).await;
    db.close().await;
    result
}

async fn ensure_migrated(db: &Database, settings: &settings::Settings) -> Result<()> {
    let applied =
        tenancy_postgres::migrate::migrate_with(&db.pool, settings.relational_schema.as_deref())
            .await
            .context("migrating the schema")?;
    if !applied.is_empty() {
        tracing::info!(?applied, "applied migrations");
    }
    Ok(())
}

async fn require_schema(db: &Database) -> Result<()> {
    let pending: Vec<_> = tenancy_postgres::migrate::status(&db.pool)
        .await?
        .into_iter()
        .filter(|m| !m.applied)
        .collect();
    if !pending.is_empty() {
        bail!(
            "{} migration(s) pending: run `tenancy migrate` first",
            pending.len()
        );
    }
    Ok(())
}

async fn dispatch(
    command: Command,
    db: &Database,
    engine: &Engine,
    settings: &settings::Settings,
) -> Result<ExitCode> {
    match command {
        Command::ApiToken { .. } => dispatch_offline(command),
        Command::Migrate => {
            let applied = tenancy_postgres::migrate::migrate_with(
                &db.pool,
                settings.relational_schema.as_deref(),
            )
            .await
            .context("migrating the schema")?;
            println!(
                "migrations: {}",
                if applied.is_empty() {
                    "up to date".to_owned()
                } else {
                    format!("applied {applied:?}")
                }
            );
            prefill(engine).await
        }
        Command::Start { .. } => bail!("`tenancy start` opens its database itself (crate::start)"),
        Command::Demo => {
            ensure_migrated(db, settings).await?;
            demo::run(&db.pool, engine).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Events {
            action: EventAction::Import { file },
        } => {
            require_schema(db).await?;
            let report = tenancy_eventstore::import::import_file(&db.pool, &file).await?;
            println!(
                "imported {}: {} rows, {} added, {} already present",
                file.display(),
                report.rows,
                report.inserted,
                report.already_present
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::OrgDomains { action } => {
            require_schema(db).await?;
            org_domains::run_action(action, &db.pool, settings).await
        }
        Command::Projections { action } => {
            require_schema(db).await?;
            projections(action, engine).await
        }
        Command::Layout => {
            let mut conn = db.pool.acquire().await?;
            let stored = tenancy_postgres::layout::stored(&mut conn).await?;
            let layout = match &stored {
                Some(layout) => layout.clone(),
                None => {
                    tenancy_postgres::layout::resolve(
                        &mut conn,
                        settings.relational_schema.as_deref(),
                    )
                    .await?
                }
            };
            println!(
                "{}\nZITADEL present:    {}\nevent store:        {}\nrelational tables:  schema {}\nbookkeeping:        schema tenancy",
                if stored.is_some() {
                    "layout (stored by the first migration)"
                } else {
                    "layout (not migrated yet: what `tenancy migrate` would decide)"
                },
                if layout.zitadel_present { "yes" } else { "no" },
                if layout.adopted() {
                    "adopted (ZITADEL's, used as found)"
                } else {
                    "owned (created by tenancy)"
                },
                layout.relational_schema,
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Remove { yes } => {
            if !yes {
                bail!(
                    "`tenancy remove` drops the relational tables and tenancy's bookkeeping: run it with --yes"
                );
            }
            let mut conn = db.pool.acquire().await?;
            let removed = tenancy_postgres::migrate::remove(&mut conn).await?;
            println!(
                "removed: schema tenancy, the relational tables in schema {}, indexes {:?} on eventstore.events2; the events stay",
                removed.relational_schema.as_deref().unwrap_or("tenancy"),
                removed.store_indexes
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn prefill(engine: &Engine) -> Result<ExitCode> {
    let bar = if std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(0);
        bar.set_style(ProgressStyle::with_template(
            "{spinner} projecting {pos}/{len} instances [{elapsed}] {msg}",
        )?);
        Some(bar)
    } else {
        None
    };
    let progress_bar = bar.clone();
    let outcome = engine
        .run_until_caught_up(move |done, total, outcome| {
            if let Some(bar) = &progress_bar {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
                bar.set_message(format!(
                    "{} applied, {} failed",
                    outcome.applied, outcome.failed
                ));
            }
        })
        .await?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let failed = engine.failed().await?;
    println!(
        "projection relational_tables: {} events applied, {} skipped, {} failed events listed",
        outcome.applied,
        outcome.skipped,
        failed.len()
    );
    Ok(if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn projections(action: ProjectionAction, engine: &Engine) -> Result<ExitCode> {
    match action {
        ProjectionAction::Status => {
            let s = engine.status().await?;
            println!("projection       instances  events_behind  lag_seconds  failed_events");
            println!(
                "{:<16} {:>9}  {:>13}  {:>11.1}  {:>13}",
                s.projection, s.instances, s.events_behind, s.lag_seconds, s.failed_events
            );
        }
        ProjectionAction::Run { until_caught_up } => {
            if !until_caught_up {
                bail!(
                    "`projections run` needs --until-caught-up (use `tenancy start` to keep projections current)"
                );
            }
            return prefill(engine).await;
        }
        ProjectionAction::Failed => {
            let failed = engine.failed().await?;
            if failed.is_empty() {
                println!("no failed events");
            }
            for f in failed {
                println!(
                    "{} {} {} {} attempts={} last={} error: {}",
                    f.instance_id,
                    f.aggregate_type,
                    f.aggregate_id,
                    f.failed_sequence,
                    f.failure_count,
                    f.last_failed,
                    f.error
                );
            }
        }
        ProjectionAction::Retry {
            instance_id,
            aggregate_type,
            aggregate_id,
            sequence,
        } => {
            let outcome = engine
                .retry(&instance_id, &aggregate_type, &aggregate_id, sequence)
                .await?;
            println!("retry: {outcome:?}");
        }
        ProjectionAction::Dismiss {
            instance_id,
            aggregate_type,
            aggregate_id,
            sequence,
        } => {
            if !engine
                .dismiss(&instance_id, &aggregate_type, &aggregate_id, sequence)
                .await?
            {
                bail!("no failed event {instance_id} {aggregate_type} {aggregate_id} {sequence}");
            }
            println!("dismissed");
        }
        ProjectionAction::Rebuild { abandon: true, .. } => {
            if engine.abandon_rebuild().await? {
                println!("the unfinished rebuild was abandoned (the live tables are untouched)");
            } else {
                println!("there is no unfinished rebuild");
            }
        }
        ProjectionAction::Rebuild { in_place, .. } => {
            let (outcome, what) = if in_place {
                (engine.rebuild().await?, "rebuilt in place".to_owned())
            } else {
                let rebuilt = engine
                    .rebuild_side_by_side(std::sync::Arc::new(|_, _, _| {}))
                    .await?;
                let what = format!(
                    "rebuilt side by side{} and switched after {} round(s); the previous generation is kept (`projections drop-previous`)",
                    if rebuilt.resumed { " (resumed)" } else { "" },
                    rebuilt.rounds
                );
                (rebuilt.outcome, what)
            };
            println!(
                "{what}: {} events applied, {} failed",
                outcome.applied, outcome.failed
            );
            let failed = engine.failed().await?.len();
            if outcome.failed > 0 || failed > 0 {
                eprintln!(
                    "error: the rebuild recorded failed events ({failed} listed by `tenancy projections failed`)"
                );
                return Ok(ExitCode::FAILURE);
            }
        }
        ProjectionAction::SwitchBack => {
            let rebuilt = engine
                .switch_back(std::sync::Arc::new(|_, _, _| {}))
                .await?;
            println!(
                "switched back after {} round(s): {} events applied since the previous generation was replaced; \
                 the generation it replaced is kept (`projections drop-previous`, or switch back again)",
                rebuilt.rounds, rebuilt.outcome.applied
            );
            if rebuilt.outcome.failed > 0 || !engine.failed().await?.is_empty() {
                eprintln!("error: catching up the previous generation recorded failed events");
                return Ok(ExitCode::FAILURE);
            }
        }
        ProjectionAction::DropPrevious => {
            if engine.drop_previous_generation().await? {
                println!("the previous generation was dropped");
            } else {
                println!("there is no previous generation");
            }
        }
        ProjectionAction::Verify => {
            let report = engine.verify().await?;
            for line in &report.differences {
                println!("{line}");
            }
            println!(
                "verify: {} events folded, {} failed in the fold, {} differences",
                report.events,
                report.failed_in_fold,
                report.differences.len()
            );
            return Ok(if report.is_equal() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn dispatch_offline(command: Command) -> Result<ExitCode> {
    if let Command::ApiToken { name, instance } = command {
        api::print_new_token(&name, instance.as_deref())?;
    }
    Ok(ExitCode::SUCCESS)
}
