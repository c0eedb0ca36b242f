//! `tenancy start`: the API, the health and metrics routes and the projection engine on
//! one port, until SIGTERM or Ctrl-C.
//!
//! At startup it waits for its database: replicas and their database are often started
//! together (a Kubernetes rollout, a host's boot), and a database that restarts while
//! `start` migrates would otherwise end it. While the database is *unavailable* (not
//! running yet, shutting down or restarting, refusing connections:
//! [`tenancy_postgres::is_database_unavailable`]) the whole startup — connect, migrate,
//! build the routes — is tried again, backing off, for `server.database_wait_secs`; then it
//! fails. Anything else fails at once: a wrong password, a database that does not exist, a
//! migration that cannot apply. Once the port is open, the pool and the engine ride out a
//! database restart by themselves.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tenancy_postgres::replicas::ReadPools;
use tenancy_projection::Engine;
use tokio::time::Instant;

use crate::database::{CannotConnect, Database};
use crate::settings::Settings;
use crate::{api, ensure_migrated, http};

/// The first pause between two attempts; it doubles up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(250);
const MAX_PAUSE: Duration = Duration::from_secs(5);

/// Runs `tenancy start` until a shutdown signal.
pub async fn run(settings: &Settings) -> Result<()> {
    let (db, ready) = open_waiting(settings).await?;
    let served = serve(ready, settings).await;
    db.close().await;
    served
}

/// What is built before the port opens.
struct Ready {
    engine: Engine,
    state: http::AppState,
    api_routes: axum::Router,
}

/// Opens the database, migrates and builds the routes, again and again while the database
/// is unavailable, for at most `server.database_wait_secs` (see the module).
async fn open_waiting(settings: &Settings) -> Result<(Database, Ready)> {
    let wait = Duration::from_secs(settings.server.database_wait_secs);
    let deadline = Instant::now() + wait;
    let mut pause = FIRST_PAUSE;
    let mut attempt = 1u32;
    loop {
        let error = match open(settings).await {
            Ok(opened) => return Ok(opened),
            Err(error) => error,
        };
        let now = Instant::now();
        if !unavailable(&error) {
            return Err(error);
        }
        if now >= deadline {
            return Err(error.context(format!(
                "the database was still unavailable after {} s of waiting (server.database_wait_secs)",
                wait.as_secs()
            )));
        }
        let sleep = pause.min(deadline - now);
        tracing::warn!(attempt, error = format!("{error:#}"), retry_in = ?sleep, "the database is unavailable; waiting for it");
        tokio::time::sleep(sleep).await;
        pause = (pause * 2).min(MAX_PAUSE);
        attempt += 1;
    }
}

/// Whether `error` is the database being unavailable, worth waiting out.
fn unavailable(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<CannotConnect>()
            .is_some_and(|e| e.unavailable)
            || tenancy_postgres::is_database_unavailable(cause)
    })
}

/// One attempt at everything before the port opens; on error nothing is left open.
async fn open(settings: &Settings) -> Result<(Database, Ready)> {
    let db = Database::open(
        settings.database_url.as_deref(),
        settings.data_dir.clone(),
        settings.relational_schema.as_deref(),
    )
    .await?;
    match prepare(&db, settings).await {
        Ok(ready) => Ok((db, ready)),
        Err(error) => {
            db.close().await;
            Err(error)
        }
    }
}

async fn prepare(db: &Database, settings: &Settings) -> Result<Ready> {
    ensure_migrated(db, settings).await?;
    let engine = Engine::new(db.pool.clone(), settings.projection.engine());
    let reads = if settings.read_database_urls.is_empty() {
        ReadPools::primary_only(engine.pool().clone())
    } else {
        let reads = ReadPools::connect(
            engine.pool().clone(),
            &settings.read_database_urls,
            settings.replicas.config(),
        )
        .await
        .context("read_database_urls")?;
        for pool in reads.stats().iter().filter(|p| !p.is_primary) {
            match &pool.reason {
                None => tracing::info!(replica = %pool.name, "replica serves reads"),
                Some(why) => {
                    tracing::warn!(replica = %pool.name, %why, "replica serves no reads yet")
                }
            }
        }
        reads
    };
    let state = http::AppState::new(
        engine.clone(),
        Duration::from_secs(settings.projection.stuck_after_secs),
        reads.clone(),
    );
    // Everything the API needs is built (and the tokens logged) before the port opens.
    let api_routes = api::routes(engine.pool(), settings, state.api.clone(), reads).await?;
    Ok(Ready {
        engine,
        state,
        api_routes,
    })
}

/// Binds the port and serves, the engine running beside, until a shutdown signal.
async fn serve(ready: Ready, settings: &Settings) -> Result<()> {
    let Ready {
        engine,
        state,
        api_routes,
    } = ready;
    let listener = tokio::net::TcpListener::bind(&settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    println!("listening on http://{}", listener.local_addr()?);
    let (stop, _) = tokio::sync::watch::channel(false);
    let stop = Arc::new(stop);
    let mut engine_stop = stop.subscribe();
    let projections = tokio::spawn(async move {
        engine
            .run_continuous(async move {
                let _ = engine_stop.wait_for(|s| *s).await;
            })
            .await
    });
    let mut http_stop = stop.subscribe();
    let routes = http::router(state).merge(api_routes);
    let server = tenancy_api::serve(listener, routes, settings.server.config(), async move {
        let _ = http_stop.wait_for(|s| *s).await;
    });
    let signals = {
        let stop = stop.clone();
        async move {
            shutdown_signal().await;
            tracing::info!("shutting down");
            let _ = stop.send(true);
        }
    };
    let (served, ()) = tokio::join!(server, signals);
    served.context("HTTP server")?;
    projections.await.context("projection worker")??;
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
