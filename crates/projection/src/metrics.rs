//! Engine metrics in the Prometheus text format (via `prometheus-client`): events
//! applied, failures, batch durations, lag in seconds, per projection.

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The label every projection series carries.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProjectionLabel {
    /// The projection's name (`relational_tables`).
    pub projection: String,
}

/// The engine's metrics; register them with [`EngineMetrics::register`].
#[derive(Debug)]
pub struct EngineMetrics {
    /// Events applied to the tables.
    pub events_applied: Family<ProjectionLabel, Counter>,
    /// Events that failed to apply.
    pub failures: Family<ProjectionLabel, Counter>,
    /// How long a batch took.
    pub batch_seconds: Family<ProjectionLabel, Histogram, fn() -> Histogram>,
    /// Age of the newest event applied when its batch committed.
    pub lag_seconds: Family<ProjectionLabel, Gauge<f64, std::sync::atomic::AtomicU64>>,
    applied_total: AtomicU64,
}

fn batch_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

impl Default for EngineMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl EngineMetrics {
    /// Zeroed metrics, not yet registered.
    pub fn new() -> Self {
        Self {
            events_applied: Family::default(),
            failures: Family::default(),
            batch_seconds: Family::new_with_constructor(batch_histogram),
            lag_seconds: Family::default(),
            applied_total: AtomicU64::new(0),
        }
    }

    /// Adds the metrics to a registry (prefix `tenancy_projection_`).
    pub fn register(&self, registry: &mut Registry) {
        let sub = registry.sub_registry_with_prefix("tenancy_projection");
        sub.register(
            "events_applied",
            "Events applied to the projection's tables",
            self.events_applied.clone(),
        );
        sub.register(
            "failures",
            "Events that failed to apply",
            self.failures.clone(),
        );
        sub.register(
            "batch_duration_seconds",
            "Duration of one batch transaction",
            self.batch_seconds.clone(),
        );
        sub.register(
            "lag_seconds",
            "Age of the newest applied event at its batch's commit",
            self.lag_seconds.clone(),
        );
    }

    pub(crate) fn label(projection: &str) -> ProjectionLabel {
        ProjectionLabel {
            projection: projection.to_owned(),
        }
    }

    pub(crate) fn applied(&self, projection: &str, n: u64) {
        self.events_applied
            .get_or_create(&Self::label(projection))
            .inc_by(n);
        self.applied_total.fetch_add(n, Ordering::Relaxed);
    }

    /// Events applied since start, all projections (for tests and summaries).
    pub fn applied_total(&self) -> u64 {
        self.applied_total.load(Ordering::Relaxed)
    }
}
