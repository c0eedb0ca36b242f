//! Projection metrics computed at scrape time, present from the start: how far the tables
//! are behind the store now — not as of the last batch's commit, so a stall shows as
//! rising lag and a caught-up projection as zero.
//!
//! - `tenancy_projection_events_behind`, `..._oldest_unprojected_age_seconds` (the age of
//!   the oldest event not yet projected: lag as time, 0 when caught up),
//!   `..._failed_events`, `..._instances` (with a cursor);
//! - `..._instance_lag_seconds`: a histogram over the instances that are behind (each
//!   instance's oldest unprojected event), so 100k tenants stay a dozen series;
//! - `..._oldest_instance_lag_seconds{instance_id}`: the few instances furthest behind;
//! - `..._scrape_errors_total`: scrapes whose status query failed (the values then stay
//!   those of the last good scrape).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use time::OffsetDateTime;

use crate::engine::Engine;

/// The instances furthest behind that get a series of their own.
pub const OLDEST_INSTANCES: usize = 5;
const LAG_BUCKETS: [f64; 12] = [
    0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 21600.0, 86400.0,
];

#[derive(Debug, Default, Clone)]
struct Snapshot {
    instances: i64,
    events_behind: i64,
    oldest_age: f64,
    failed_events: i64,
    /// Seconds behind, per instance behind.
    lags: Vec<f64>,
    /// The furthest behind: (instance, seconds).
    oldest: Vec<(String, f64)>,
}

/// The collector; call [`ProjectionScrape::refresh`] before encoding the registry.
#[derive(Debug, Default)]
pub struct ProjectionScrape {
    snapshot: Mutex<Snapshot>,
    errors: AtomicU64,
}

impl ProjectionScrape {
    /// Reads the projection's state now (two queries).
    pub async fn refresh(&self, engine: &Engine) {
        match Self::read(engine).await {
            Ok(snapshot) => {
                *self
                    .snapshot
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = snapshot;
            }
            Err(error) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %error.chain(), "reading the projection's status for /metrics failed");
            }
        }
    }

    async fn read(engine: &Engine) -> tenancy_core::Result<Snapshot> {
        let status = engine.status().await?;
        let now = OffsetDateTime::now_utc();
        let mut per_instance: Vec<(String, f64)> = engine
            .state()
            .lag_by_instance(engine.pool(), engine.sweep_window().await?)
            .await?
            .into_iter()
            .map(|(instance, _, oldest)| (instance, (now - oldest).as_seconds_f64().max(0.0)))
            .collect();
        per_instance.sort_by(|a, b| b.1.total_cmp(&a.1));
        Ok(Snapshot {
            instances: status.instances,
            events_behind: status.events_behind,
            oldest_age: status.lag_seconds,
            failed_events: status.failed_events,
            lags: per_instance.iter().map(|(_, lag)| *lag).collect(),
            oldest: per_instance.into_iter().take(OLDEST_INSTANCES).collect(),
        })
    }
}

impl Collector for ProjectionScrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let snapshot = self
            .snapshot
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let gauges: [(&str, &str, ConstGauge<f64>); 4] = [
            (
                "tenancy_projection_events_behind",
                "Events in the store not yet projected",
                ConstGauge::new(snapshot.events_behind as f64),
            ),
            (
                "tenancy_projection_oldest_unprojected_age_seconds",
                "Age of the oldest event not yet projected (0 when caught up)",
                ConstGauge::new(snapshot.oldest_age),
            ),
            (
                "tenancy_projection_failed_events",
                "Events recorded as failed",
                ConstGauge::new(snapshot.failed_events as f64),
            ),
            (
                "tenancy_projection_instances",
                "Instances with a cursor",
                ConstGauge::new(snapshot.instances as f64),
            ),
        ];
        for (name, help, gauge) in gauges {
            let metric = encoder.encode_descriptor(name, help, None, gauge.metric_type())?;
            gauge.encode(metric)?;
        }
        let histogram = Histogram::new(LAG_BUCKETS);
        for lag in &snapshot.lags {
            histogram.observe(*lag);
        }
        let metric = encoder.encode_descriptor(
            "tenancy_projection_instance_lag_seconds",
            "Instances behind, by the age of their oldest event not yet projected",
            None,
            histogram.metric_type(),
        )?;
        histogram.encode(metric)?;
        let mut family = encoder.encode_descriptor(
            "tenancy_projection_oldest_instance_lag_seconds",
            "The instances furthest behind (at most 5), by the age of their oldest event not yet projected",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for (instance, lag) in &snapshot.oldest {
            let labels = [("instance_id", instance.as_str())];
            let gauge = ConstGauge::new(*lag);
            gauge.encode(family.encode_family(&labels)?)?;
        }
        let errors = ConstCounter::new(self.errors.load(Ordering::Relaxed));
        let metric = encoder.encode_descriptor(
            "tenancy_projection_scrape_errors",
            "Scrapes whose projection status query failed",
            None,
            errors.metric_type(),
        )?;
        errors.encode(metric)?;
        Ok(())
    }
}
