//! `/healthz` (the process answers) and `/readyz` (the store answers too).

use std::time::Duration;

use admin_api::Store;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

/// How long `/readyz` waits for the store.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// Always 200 while the process serves requests.
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// 200 when the store answers, 503 otherwise (it recovers by itself when the store comes back).
pub async fn readyz(State(store): State<Store>) -> (StatusCode, Json<Value>) {
    match tokio::time::timeout(READY_TIMEOUT, store.ping()).await {
        Ok(Ok(())) => (StatusCode::OK, Json(json!({"status": "ready"}))),
        Ok(Err(err)) => not_ready(err.to_string()),
        Err(_) => not_ready("store did not answer in time".into()),
    }
}

fn not_ready(reason: String) -> (StatusCode, Json<Value>) {
    tracing::warn!(%reason, "not ready");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({"status": "unavailable", "error": {"code": "unavailable", "message": reason}})),
    )
}
