//! `/admin/stats`: live counters the data plane hands in.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::AdminState;

/// Counters since the process started, plus live connections.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct Stats {
    /// Open Socket.IO connections per namespace name.
    pub connections: BTreeMap<String, u64>,
    /// Client events received.
    pub events_in: u64,
    /// Webhook deliveries answered 2xx.
    pub webhooks_sent: u64,
    /// Webhook deliveries that failed for good.
    pub webhooks_failed: u64,
    /// Emit API messages sent.
    pub emits: u64,
    /// The durable outbox, store-wide (read every second).
    pub outbox: OutboxStats,
}

/// The durable outbox as the store holds it (all nodes), and what this node refused.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct OutboxStats {
    /// Deliveries waiting for an attempt.
    pub pending: u64,
    /// Bytes of their bodies.
    pub pending_bytes: u64,
    /// Deliveries that used up the retry schedule.
    pub dead: u64,
    /// Bytes of their bodies.
    pub dead_bytes: u64,
    /// Seconds since the oldest pending delivery became due (0 when none is late).
    pub oldest_due_seconds: f64,
    /// Durable events this node refused because the outbox was over its byte budget.
    pub refused_full: u64,
    /// Durable events this node refused because the store could not be written.
    pub refused_unavailable: u64,
}

/// Where stats come from: implemented by the data plane, which knows the sockets.
pub trait StatsSource: Send + Sync {
    /// The current counters.
    fn snapshot(&self) -> Stats;
}

/// Current counters of this node.
#[utoipa::path(get, path = "/admin/stats", tag = "stats",
    responses((status = 200, body = Stats)),
    security(("admin_token" = [])))]
pub async fn get_stats(State(state): State<AdminState>) -> Json<Stats> {
    Json(state.stats.snapshot())
}
