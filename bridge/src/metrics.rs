//! Prometheus metrics: the recorder, the series names, and the `/metrics` handler.

use std::sync::OnceLock;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Open Socket.IO connections, by namespace.
pub const CONNECTIONS: &str = "bridge_connections";
/// Client events received, by namespace.
pub const EVENTS_RECEIVED: &str = "bridge_events_received_total";
/// Webhook attempts, by outcome.
pub const WEBHOOK_ATTEMPTS: &str = "bridge_webhook_attempts_total";
/// Webhook attempt latency, seconds.
pub const WEBHOOK_LATENCY: &str = "bridge_webhook_duration_seconds";
/// Webhook messages dropped (queue full), by reason.
pub const WEBHOOK_DROPPED: &str = "bridge_webhook_dropped_total";
/// Emits sent to clients, by outcome.
pub const EMITS: &str = "bridge_emits_total";
/// Sockets an emit with acknowledgements reached (acks plus time-outs).
pub const EMIT_SOCKETS_REACHED: &str = "bridge_emit_sockets_reached";

/// The process-wide recorder. The `metrics` facade has one global recorder, so this installs it
/// once and every `Application` in the process (tests start several) shares its handle.
pub fn recorder() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ])
                .expect("static buckets are valid")
                .build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics may be empty");
            }
            handle
        })
        .clone()
}

/// `GET /metrics`: Prometheus text format.
pub async fn serve(State(handle): State<PrometheusHandle>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle.render(),
    )
}
