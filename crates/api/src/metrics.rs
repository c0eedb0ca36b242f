//! Request metrics of the API, per method and status code (Prometheus, via
//! `prometheus-client`): `tenancy_api_requests_total{method, protocol, code}` and
//! `tenancy_api_request_duration_seconds{method, protocol}`. `method` is a method of the
//! two services (or `unknown`: a path is the caller's choice, a label set is not);
//! `code` is the gRPC / Connect code name (`ok`, `invalid_argument`, `internal`, ...).

use std::time::Instant;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::Arc;

use crate::pb;

/// The labels of `tenancy_api_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// `<package>.<Service>/<Method>`, or `unknown`.
    pub method: String,
    /// `grpc` or `connect`.
    pub protocol: &'static str,
    /// The gRPC / Connect code name of the answer.
    pub code: &'static str,
}

/// The labels of `tenancy_api_request_duration_seconds`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabels {
    /// `<package>.<Service>/<Method>`, or `unknown`.
    pub method: String,
    /// `grpc` or `connect`.
    pub protocol: &'static str,
}

/// The API's metrics; register them with [`ApiMetrics::register`].
#[derive(Debug)]
pub struct ApiMetrics {
    /// Requests by method, protocol and code.
    pub requests: Family<RequestLabels, Counter>,
    /// Request duration by method and protocol.
    pub duration: Family<MethodLabels, Histogram, fn() -> Histogram>,
    methods: std::collections::HashSet<String>,
}

fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

impl Default for ApiMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl ApiMetrics {
    /// Zeroed series for every method of the protos, not yet registered.
    pub fn new() -> Self {
        let methods = pb::method_paths().into_iter().collect();
        Self {
            requests: Family::default(),
            duration: Family::new_with_constructor(duration_histogram),
            methods,
        }
    }

    /// Adds the metrics to a registry (prefix `tenancy_api_`).
    pub fn register(&self, registry: &mut Registry) {
        let sub = registry.sub_registry_with_prefix("tenancy_api");
        sub.register(
            "requests",
            "API requests by method, protocol and status code",
            self.requests.clone(),
        );
        sub.register(
            "request_duration_seconds",
            "API request duration by method and protocol (to the response's headers)",
            self.duration.clone(),
        );
    }

    fn method(&self, path: &str) -> String {
        let path = path.trim_start_matches('/');
        if self.methods.contains(path) {
            path.to_owned()
        } else {
            "unknown".to_owned()
        }
    }
}

/// The middleware that counts and times every API request.
pub async fn record(
    State(metrics): State<Arc<ApiMetrics>>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = metrics.method(request.uri().path());
    let grpc = crate::protocol::is_grpc(&request);
    let protocol = if grpc { "grpc" } else { "connect" };
    let response = next.run(request).await;
    let code = if grpc {
        // Errors are trailers-only responses (grpc-status in the headers); a success's
        // status comes in the trailers, after this point.
        response
            .headers()
            .get("grpc-status")
            .and_then(|s| s.to_str().ok())
            .and_then(|s| s.parse::<i32>().ok())
            .map_or("ok", |c| {
                crate::error::connect_code(tonic::Code::from_i32(c)).0
            })
    } else {
        connect_code_of(response.status())
    };
    metrics
        .requests
        .get_or_create(&RequestLabels {
            method: method.clone(),
            protocol,
            code,
        })
        .inc();
    metrics
        .duration
        .get_or_create(&MethodLabels { method, protocol })
        .observe(started.elapsed().as_secs_f64());
    response
}

/// The Connect code of an HTTP status as `connect_error` answers it.
fn connect_code_of(status: axum::http::StatusCode) -> &'static str {
    match status.as_u16() {
        200 => "ok",
        400 => "invalid_argument",
        401 => "unauthenticated",
        403 => "permission_denied",
        404 => "not_found",
        409 => "already_exists",
        415 => "invalid_argument",
        429 => "resource_exhausted",
        499 => "canceled",
        501 => "unimplemented",
        503 => "unavailable",
        504 => "deadline_exceeded",
        _ => "internal",
    }
}
