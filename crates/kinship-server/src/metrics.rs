//! `/metrics` in the Prometheus text format, with prometheus-client.

use crate::state::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::Arc;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Default)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    events_received: Counter,
    events_stored: Counter,
    events_rejected: Counter,
    records_resolved: Counter,
    merges: Counter,
    segment_transitions: Counter,
    segment_evaluations: Gauge,
    queue_depth: Gauge,
    stream_published: Counter,
    stream_consumed: Counter,
    stream_redelivered: Counter,
    resolution_lag_records: Gauge,
    resolution_lag_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    changes_applied: Counter,
    change_version: Gauge,
    flow_runs: Counter,
    tasks_created: Counter,
    deliveries: Family<DeliveryLabels, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct DeliveryLabels {
    endpoint: String,
    outcome: &'static str,
}

impl Default for Inner {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("kinship");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| Histogram::new(exponential_buckets(0.0001, 2.0, 18)));
        let (events_received, events_stored, events_rejected, records_resolved, merges, queue_depth) =
            (Counter::default(), Counter::default(), Counter::default(), Counter::default(), Counter::default(), Gauge::default());
        registry.register("http_requests", "HTTP requests by route, method and status", requests.clone());
        registry.register("http_request_duration_seconds", "HTTP request latency by route", latency.clone());
        registry.register("events_received", "Collection API events committed to the log, retries included", events_received.clone());
        registry.register("events_stored", "Collection API events that were new (not retries)", events_stored.clone());
        registry.register(
            "events_rejected",
            "Collection API events rejected as invalid, and malformed stream messages",
            events_rejected.clone(),
        );
        registry.register("records_resolved", "Records resolved into profiles by the real-time resolver", records_resolved.clone());
        registry.register("merges", "Arrivals that merged or re-resolved existing profiles", merges.clone());
        registry.register("queue_depth", "Requests waiting for the writer", queue_depth.clone());
        let segment_transitions = Counter::default();
        registry.register("segment_transitions", "Profiles entering or leaving a segment", segment_transitions.clone());
        let segment_evaluations = Gauge::default();
        registry.register(
            "segment_evaluations",
            "Segment and computed-trait programs run against one profile (full recomputations count every profile)",
            segment_evaluations.clone(),
        );
        let (stream_published, stream_consumed, stream_redelivered) = (Counter::default(), Counter::default(), Counter::default());
        registry.register(
            "stream_published",
            "Events JetStream acknowledged (ingest mode nats), retries included",
            stream_published.clone(),
        );
        registry.register("stream_consumed", "Stream messages this node committed and acknowledged", stream_consumed.clone());
        registry.register("stream_redelivered", "Stream messages delivered to this node more than once", stream_redelivered.clone());
        let (resolution_lag_records, resolution_lag_seconds) = (Gauge::default(), Gauge::<f64, std::sync::atomic::AtomicU64>::default());
        registry.register("resolution_lag_records", "Records logged but not yet resolved into profiles", resolution_lag_records.clone());
        registry.register(
            "resolution_lag_seconds",
            "How long the oldest record not yet resolved has waited (0 when none waits)",
            resolution_lag_seconds.clone(),
        );
        let (changes_applied, change_version) = (Counter::default(), Gauge::default());
        registry.register("changes_applied", "Entries of the change feed this node applied", changes_applied.clone());
        registry.register("change_version", "The newest change-feed version this node has applied", change_version.clone());
        let (flow_runs, tasks_created) = (Counter::default(), Counter::default());
        registry.register("flow_runs", "Flow runs recorded by this node (a trigger whose condition held)", flow_runs.clone());
        registry.register("tasks_created", "Tasks this node's flow runs created", tasks_created.clone());
        let deliveries = Family::<DeliveryLabels, Counter>::default();
        registry.register("delivery_attempts", "Delivery attempts by endpoint and outcome", deliveries.clone());
        Self {
            registry,
            requests,
            latency,
            events_received,
            events_stored,
            events_rejected,
            records_resolved,
            merges,
            segment_transitions,
            segment_evaluations,
            queue_depth,
            stream_published,
            stream_consumed,
            stream_redelivered,
            resolution_lag_records,
            resolution_lag_seconds,
            changes_applied,
            change_version,
            flow_runs,
            tasks_created,
            deliveries,
        }
    }
}

impl Metrics {
    pub fn events_committed(&self, received: u64, stored: u64) {
        self.inner.events_received.inc_by(received);
        self.inner.events_stored.inc_by(stored);
    }

    pub fn events_rejected(&self, n: u64) {
        self.inner.events_rejected.inc_by(n);
    }

    pub fn resolved(&self, r: &kinship_pipeline::IncrementalReport) {
        self.inner.records_resolved.inc_by(r.attached + r.created + r.reresolved);
        self.inner.merges.inc_by(r.reresolved + r.fuzzy_merges);
    }

    pub fn stream_published(&self, n: u64) {
        self.inner.stream_published.inc_by(n);
    }

    pub fn stream_consumed(&self, n: u64) {
        self.inner.stream_consumed.inc_by(n);
    }

    pub fn stream_redelivered(&self, n: u64) {
        self.inner.stream_redelivered.inc_by(n);
    }

    pub fn segment_transitions(&self, n: u64) {
        self.inner.segment_transitions.inc_by(n);
    }

    /// Records waiting for resolution, and since when the oldest of them (Unix ms).
    pub fn resolution_lag(&self, records: u64, oldest_ms: Option<i64>) {
        self.inner.resolution_lag_records.set(records as i64);
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
        self.inner.resolution_lag_seconds.set(oldest_ms.map_or(0.0, |t| (now - t).max(0) as f64 / 1000.0));
    }

    /// (records, seconds) as last measured, for the dashboard.
    pub fn lag(&self) -> (i64, f64) {
        (self.inner.resolution_lag_records.get(), self.inner.resolution_lag_seconds.get())
    }

    pub fn flows_ran(&self, runs: usize, tasks: usize) {
        self.inner.flow_runs.inc_by(runs as u64);
        self.inner.tasks_created.inc_by(tasks as u64);
    }

    pub fn delivery_attempt(&self, endpoint: &str, outcome: &'static str) {
        self.inner.deliveries.get_or_create(&DeliveryLabels { endpoint: endpoint.to_string(), outcome }).inc();
    }

    pub fn changes_followed(&self, applied: usize, version: u64) {
        self.inner.changes_applied.inc_by(applied as u64);
        self.inner.change_version.set(version as i64);
    }
}

pub async fn render(State(state): State<Arc<AppState>>) -> Response {
    state.metrics.inner.queue_depth.set(state.writer.queue_depth() as i64);
    state.metrics.inner.segment_evaluations.set(state.audience.read().expect("not poisoned").evaluations() as i64);
    let mut body = String::new();
    if prometheus_client::encoding::text::encode(&mut body, &state.metrics.inner.registry).is_err() {
        return (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "metrics could not be encoded").into_response();
    }
    ([(axum::http::header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], body).into_response()
}

/// Counts every request and times it, labelled by its route pattern (not the raw path, so
/// profile ids do not explode the label set).
pub async fn track_requests(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = req.method().to_string();
    let started = std::time::Instant::now();
    let response = next.run(req).await;
    let m = &state.metrics.inner;
    m.latency.get_or_create(&RouteLabels { route: route.clone() }).observe(started.elapsed().as_secs_f64());
    m.requests.get_or_create(&RequestLabels { route, method, status: response.status().as_u16() }).inc();
    response
}
