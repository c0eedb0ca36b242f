//! The service API on `tenancy start`: wires `tenancy-api` to PostgreSQL, the event
//! store, the host cache and the domain checker.

use std::sync::Arc;

use anyhow::{Context, Result};
use tenancy_api::auth::{ApiTokens, new_token};
use tenancy_api::{Api, router_with_metrics};
use tenancy_challenge::Checker;
use tenancy_core::challenge::OsTokens;
use tenancy_core::page_token::PageTokens;
use tenancy_core::ports::SystemClock;
use tenancy_eventstore::PgEventStore;
use tenancy_postgres::PgStore;
use tenancy_postgres::hosts::{HostResolver, HostResolverConfig};
use tenancy_postgres::replicas::ReadPools;

use crate::settings::Settings;

/// The API's routes over `pool`, reading from `reads`' replicas where it may.
pub async fn routes(
    pool: &sqlx::PgPool,
    settings: &Settings,
    metrics: std::sync::Arc<tenancy_api::metrics::ApiMetrics>,
    reads: ReadPools,
) -> Result<axum::Router> {
    let events = Arc::new(PgEventStore::new(pool.clone()));
    // Commands on the primary; Get and List on the replicas, if any.
    let store = PgStore::with_events(pool.clone(), events.clone()).with_read_pools(reads.clone());
    let hosts = HostResolver::start_with_read_pools(reads, HostResolverConfig::default())
        .await
        .context("starting the host cache")?;
    let key = match &settings.api.page_token_key {
        Some(key) => key.as_bytes().to_vec(),
        None => {
            let (random, _) = new_token()?;
            random.into_bytes()
        }
    };
    let tokens = ApiTokens::new(&settings.api.tokens).context("[api] tokens")?;
    if tokens.is_empty() {
        tracing::warn!("no [api] tokens configured: every API call is refused");
    }
    // Which token may do what, never the token or its digest.
    for entry in &settings.api.tokens {
        match &entry.instance_id {
            None => tracing::info!(token = %entry.name, scope = "system", "API token"),
            Some(instance) => {
                tracing::info!(token = %entry.name, scope = "instance", instance = %instance, "API token");
            }
        }
    }
    let api = Api {
        factory: Arc::new(store),
        events,
        hosts: Arc::new(hosts),
        checker: Arc::new(Checker::new(settings.verification.challenge())?),
        challenge: settings.verification.tokens(),
        clock: Arc::new(SystemClock),
        ids: Arc::new(tenancy_postgres::ids::LeasedIds::lease(pool).await?),
        tokens: Arc::new(OsTokens),
        page_tokens: PageTokens::new(key).context("[api] page_token_key")?,
    };
    Ok(router_with_metrics(
        api,
        tokens,
        settings.api.max_request_bytes,
        metrics,
    )?)
}

/// `tenancy api-token`: a new token, and the entry that configures it.
pub fn print_new_token(name: &str, instance: Option<&str>) -> Result<()> {
    let (token, digest) = new_token()?;
    println!("token (give it to the client; it is not stored anywhere):\n  {token}\n");
    println!("add to tenancy.toml:\n[[api.tokens]]\nname = {name:?}\nsha256 = \"{digest}\"");
    if let Some(instance) = instance {
        println!("instance_id = {instance:?}");
    }
    Ok(())
}
