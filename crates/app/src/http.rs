//! HTTP of `tenancy start`: `/healthz` (alive), `/readyz` (database reachable and the
//! projection not stuck), `/metrics` (Prometheus text: engine metrics and the pool).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::registry::Registry;
use tenancy_postgres::replicas::{PoolStats, ReadPools};
use tenancy_projection::Engine;

#[derive(Clone)]
pub struct AppState {
    pub engine: Engine,
    pub registry: Arc<Registry>,
    /// Projection series computed at each scrape.
    pub scrape: Arc<tenancy_projection::scrape::ProjectionScrape>,
    /// The API's request metrics (registered here, recorded by the API's router).
    pub api: Arc<tenancy_api::metrics::ApiMetrics>,
    pub pool_size: Gauge,
    pub pool_idle: Gauge,
    pub stuck_after: Duration,
}

/// Per pool of reads (the primary and each replica): reads served, health, lag.
#[derive(Debug)]
struct ReadPoolsScrape(ReadPools);

impl Collector for ReadPoolsScrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = self.0.stats();
        let mut reads = encoder.encode_descriptor(
            "tenancy_db_reads",
            "Reads begun on each pool (primary, or a replica's host:port)",
            None,
            MetricType::Counter,
        )?;
        for pool in &stats {
            let labels = [("pool", pool.name.as_str())];
            ConstCounter::new(pool.reads).encode(reads.encode_family(&labels)?)?;
        }
        type Series = (&'static str, &'static str, fn(&PoolStats) -> f64);
        let gauges: [Series; 2] = [
            (
                "tenancy_db_replica_lag_seconds",
                "How far each replica was behind the primary at its last check",
                |p| p.lag.as_secs_f64(),
            ),
            (
                "tenancy_db_replica_serving",
                "1 while a replica serves reads (reachable, a standby, within max_lag)",
                |p| f64::from(u8::from(p.healthy)),
            ),
        ];
        for (name, help, value) in gauges {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for pool in stats.iter().filter(|p| !p.is_primary) {
                let labels = [("pool", pool.name.as_str())];
                ConstGauge::new(value(pool)).encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

impl AppState {
    pub fn new(engine: Engine, stuck_after: Duration, reads: ReadPools) -> Self {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(ReadPoolsScrape(reads)));
        engine.metrics().register(&mut registry);
        let scrape = Arc::new(tenancy_projection::scrape::ProjectionScrape::default());
        registry.register_collector(Box::new(scrape.clone()));
        let api = Arc::new(tenancy_api::metrics::ApiMetrics::new());
        api.register(&mut registry);
        let (pool_size, pool_idle) = (Gauge::default(), Gauge::default());
        let pool = registry.sub_registry_with_prefix("tenancy_db_pool");
        pool.register(
            "connections",
            "Open connections of the pool",
            pool_size.clone(),
        );
        pool.register(
            "idle_connections",
            "Idle connections of the pool",
            pool_idle.clone(),
        );
        Self {
            engine,
            registry: Arc::new(registry),
            scrape,
            api,
            pool_size,
            pool_idle,
            stuck_after,
        }
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    if let Err(e) = sqlx::query("SELECT 1").execute(state.engine.pool()).await {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("database unreachable: {e}\n"),
        );
    }
    match state.engine.status().await {
        Ok(status) if status.lag_seconds > state.stuck_after.as_secs_f64() => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "projection {} stuck: {} events behind, lag {:.0}s\n",
                status.projection, status.events_behind, status.lag_seconds
            ),
        ),
        Ok(status) => (
            StatusCode::OK,
            format!("ready: {} events behind\n", status.events_behind),
        ),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("status failed: {e}\n"),
        ),
    }
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    state.scrape.refresh(&state.engine).await;
    let pool = state.engine.pool();
    state.pool_size.set(i64::from(pool.size()));
    state
        .pool_idle
        .set(i64::try_from(pool.num_idle()).unwrap_or(i64::MAX));
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &state.registry) {
        Ok(()) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        ),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain")],
            e.to_string(),
        ),
    }
}
