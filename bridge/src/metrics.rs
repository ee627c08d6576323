//! Prometheus metrics: the recorder, the series names, and the `/metrics` handler.

use std::sync::OnceLock;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Open Socket.IO connections, by namespace.
pub const CONNECTIONS: &str = "bridge_connections";
/// Open HTTP connections, by listener (public, admin).
pub const HTTP_CONNECTIONS: &str = "bridge_http_connections";
/// Connections closed at once because the listener's cap was reached, by listener.
pub const CONNECTIONS_REFUSED: &str = "bridge_connections_refused_total";
/// Connections closed because their client stopped reading (writes waited past the timeout).
pub const SLOW_READERS_CLOSED: &str = "bridge_slow_readers_closed_total";
/// Client events received, by namespace.
pub const EVENTS_RECEIVED: &str = "bridge_events_received_total";
/// Webhook attempts, by outcome.
pub const WEBHOOK_ATTEMPTS: &str = "bridge_webhook_attempts_total";
/// Webhook attempt latency, seconds.
pub const WEBHOOK_LATENCY: &str = "bridge_webhook_duration_seconds";
/// Deliveries per batch of a batched webhook.
pub const WEBHOOK_BATCH_SIZE: &str = "bridge_webhook_batch_deliveries";
/// Webhook messages dropped (queue full), by reason.
pub const WEBHOOK_DROPPED: &str = "bridge_webhook_dropped_total";
/// Bytes of messages waiting in memory for webhook deliveries.
pub const QUEUED_BYTES: &str = "bridge_webhook_queued_bytes";
/// Emits sent to clients, by outcome.
pub const EMITS: &str = "bridge_emits_total";
/// Sockets an emit with acknowledgements reached (acks plus time-outs).
pub const EMIT_SOCKETS_REACHED: &str = "bridge_emit_sockets_reached";

/// Durable deliveries waiting for an attempt (store-wide).
pub const OUTBOX_PENDING: &str = "bridge_outbox_pending";
/// Bytes of their bodies.
pub const OUTBOX_PENDING_BYTES: &str = "bridge_outbox_pending_bytes";
/// Durable deliveries that used up the schedule (store-wide).
pub const OUTBOX_DEAD: &str = "bridge_outbox_dead";
/// Seconds since the oldest pending delivery became due.
pub const OUTBOX_OLDEST_DUE: &str = "bridge_outbox_oldest_due_seconds";
/// Durable attempts by what followed: delivered, retry, dead, failed.
pub const OUTBOX_OUTCOMES: &str = "bridge_outbox_deliveries_total";
/// Durable events refused, by reason (outbox_full, store_unavailable, queue_full).
pub const OUTBOX_REFUSED: &str = "bridge_outbox_refused_total";
/// Delivery rows deleted by retention, by status.
pub const DELIVERIES_PRUNED: &str = "bridge_deliveries_pruned_total";
/// Room joins refused, by reason (name_too_long, socket_room_limit).
pub const ROOM_JOINS_REFUSED: &str = "bridge_room_joins_refused_total";

/// Sets the outbox gauges from a usage read.
pub fn record_outbox(stats: &admin_api::OutboxStats) {
    metrics::gauge!(OUTBOX_PENDING).set(stats.pending as f64);
    metrics::gauge!(OUTBOX_PENDING_BYTES).set(stats.pending_bytes as f64);
    metrics::gauge!(OUTBOX_DEAD).set(stats.dead as f64);
    metrics::gauge!(OUTBOX_OLDEST_DUE).set(stats.oldest_due_seconds);
}

/// The process-wide recorder, every series labelled `node="<node_id>"`. The `metrics` facade has
/// one global recorder, so this installs it once and every `Application` in the process (tests
/// start several) shares its handle and the first one's node label.
pub fn recorder(node_id: &str) -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ])
                .expect("static buckets are valid")
                // A count of sockets, not seconds.
                .set_buckets_for_metric(
                    Matcher::Full(EMIT_SOCKETS_REACHED.into()),
                    &[
                        0.0, 1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0,
                        5000.0, 10000.0, 25000.0,
                    ],
                )
                .expect("static buckets are valid")
                .set_buckets_for_metric(
                    Matcher::Full(WEBHOOK_BATCH_SIZE.into()),
                    &[1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0],
                )
                .expect("static buckets are valid")
                .add_global_label("node", node_id)
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
