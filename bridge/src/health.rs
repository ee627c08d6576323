//! `/healthz` (the process answers) and `/readyz` (the store answers, and the adapter's
//! connection to the other nodes is up).

use std::sync::Arc;
use std::time::Duration;

use admin_api::Store;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::cluster::Cluster;
use crate::shutdown::Stopping;

/// How long `/readyz` waits for the store.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// What `/readyz` looks at.
#[derive(Clone)]
pub struct Readiness {
    /// The store.
    pub store: Store,
    /// This node and its adapter.
    pub cluster: Cluster,
    /// Whether the node is stopping.
    pub stopping: Arc<Stopping>,
}

/// Always 200 while the process serves requests.
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// 200 when the store answers and the adapter is connected, 503 with the reason otherwise (it
/// recovers by itself when the service comes back). The node keeps serving its own sockets.
/// From the start of a stop: 503 `draining`, so that load balancers send no new clients.
pub async fn readyz(State(ready): State<Readiness>) -> (StatusCode, Json<Value>) {
    let node = ready.cluster.node_id.to_string();
    if ready.stopping.is_draining() {
        // Expected while stopping: no warning per probe.
        return unready(
            &node,
            "draining",
            "draining",
            "this node is stopping".into(),
        );
    }
    if let Err(reason) = ready.cluster.health.check() {
        return not_ready(&node, "adapter_unavailable", reason);
    }
    match tokio::time::timeout(READY_TIMEOUT, ready.store.ping()).await {
        Ok(Ok(())) => (
            StatusCode::OK,
            Json(json!({"status": "ready", "node": node})),
        ),
        Ok(Err(err)) => not_ready(&node, "unavailable", err.to_string()),
        Err(_) => not_ready(&node, "unavailable", "store did not answer in time".into()),
    }
}

fn not_ready(node: &str, code: &str, reason: String) -> (StatusCode, Json<Value>) {
    tracing::warn!(%reason, "not ready");
    unready(node, "unavailable", code, reason)
}

/// A 503 of `/readyz`: its status, and the error's code and message.
fn unready(node: &str, status: &str, code: &str, message: String) -> (StatusCode, Json<Value>) {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({
            "status": status,
            "node": node,
            "error": {"code": code, "message": message},
        })),
    )
}
