//! `/admin/namespaces/{id}/webhooks` and `/admin/webhooks/{id}`: webhook subscriptions.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use super::AdminState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::JsonBody;
use crate::model::{
    NewWebhook, SecretRotated, Timestamp, Webhook, WebhookCreated, WebhookPatch,
    generate_webhook_secret,
};

/// How long a rotated-out secret keeps signing beside the new one.
const ROTATION_GRACE_MS: i64 = 24 * 60 * 60 * 1000;

/// List a namespace's webhooks.
#[utoipa::path(get, path = "/admin/namespaces/{id}/webhooks", operation_id = "listWebhooks", tag = "webhooks",
    params(("id" = String, Path, description = "Namespace id")),
    responses((status = 200, description = "The namespace's webhooks (secrets never shown)", body = [Webhook]),
        (status = 404, description = "No namespace has this id (`not_found`)", body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn list(
    State(state): State<AdminState>,
    Path(namespace_id): Path<String>,
) -> Result<Json<Vec<Webhook>>, ApiError> {
    state.store.get_namespace(&namespace_id).await?;
    Ok(Json(state.store.list_webhooks(Some(&namespace_id)).await?))
}

/// Subscribe a URL to a namespace's events.
#[utoipa::path(post, path = "/admin/namespaces/{id}/webhooks", operation_id = "createWebhook", tag = "webhooks",
    params(("id" = String, Path, description = "Namespace id")),
    request_body(content = NewWebhook, examples(
        ("events" = (summary = "Chat events, answered by the backend", value = json!({
            "url": "https://backend.example.com/hooks/chat", "events": ["chat:*", "$connect", "$disconnect"],
            "reply": true}))),
        ("durable" = (summary = "Orders, kept and retried for hours", value = json!({
            "url": "https://backend.example.com/hooks/orders", "events": ["order:placed"], "durable": true,
            "timeout_ms": 10000, "headers": {"x-team": "orders"}}))),
        ("presence" = (summary = "Room lifecycle", value = json!({
            "url": "https://backend.example.com/hooks/presence",
            "events": ["$room_occupied", "$room_vacated", "$join", "$leave"]}))),
    )),
    responses((status = 201, description = "Created; `secret` is shown this once when the bridge generated it", body = WebhookCreated),
        (status = 404, description = "No namespace has this id (`not_found`)", body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn create(
    State(state): State<AdminState>,
    Path(namespace_id): Path<String>,
    JsonBody(body): JsonBody<NewWebhook>,
) -> Result<(StatusCode, Json<WebhookCreated>), ApiError> {
    body.validate()?;
    state.url_policy.check_webhook_url(&body.url)?;
    let created = body.create(namespace_id);
    state.store.create_webhook(&created.webhook).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// Read a webhook.
#[utoipa::path(get, path = "/admin/webhooks/{id}", operation_id = "getWebhook", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id")),
    responses((status = 200, description = "The webhook (its secret never shown)", body = Webhook),
        (status = 404, description = "No webhook has this id (`not_found`)", body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn get_one(
    State(state): State<AdminState>,
    Path(id): Path<String>,
) -> Result<Json<Webhook>, ApiError> {
    Ok(Json(state.store.get_webhook(&id).await?))
}

/// Change a webhook.
#[utoipa::path(patch, path = "/admin/webhooks/{id}", operation_id = "updateWebhook", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id")),
    request_body(content = WebhookPatch, examples(
        ("disable" = (summary = "Stop deliveries", value = json!({"enabled": false}))),
        ("events" = (summary = "Other events", value = json!({"events": ["*", "$connect"]}))),
    )),
    responses((status = 200, description = "The webhook as changed", body = Webhook),
        (status = 404, description = "No webhook has this id (`not_found`)", body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn update(
    State(state): State<AdminState>,
    Path(id): Path<String>,
    JsonBody(patch): JsonBody<WebhookPatch>,
) -> Result<Json<Webhook>, ApiError> {
    let next = state
        .store
        .modify_webhook(&id, |current| {
            let next = patch.apply(&current)?;
            if next.url != current.url {
                state.url_policy.check_webhook_url(&next.url)?;
            }
            Ok::<_, ApiError>(next)
        })
        .await?;
    Ok(Json(next))
}

/// Delete a webhook and its deliveries.
#[utoipa::path(delete, path = "/admin/webhooks/{id}", operation_id = "deleteWebhook", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id")),
    responses((status = 204, description = "Deleted"),
        (status = 404, description = "No webhook has this id (`not_found`)", body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn delete(
    State(state): State<AdminState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.store.delete_webhook(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Replace the signing secret; for 24 hours deliveries carry both signatures.
#[utoipa::path(post, path = "/admin/webhooks/{id}/rotate-secret", operation_id = "rotateWebhookSecret", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id")),
    responses((status = 200, description = "The webhook and its new secret, shown this once", body = SecretRotated),
        (status = 404, description = "No webhook has this id (`not_found`)", body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn rotate_secret(
    State(state): State<AdminState>,
    Path(id): Path<String>,
) -> Result<Json<SecretRotated>, ApiError> {
    let secret = generate_webhook_secret();
    let webhook = state
        .store
        .modify_webhook(&id, |mut webhook| {
            let now = Timestamp::now();
            let old = std::mem::replace(&mut webhook.secret, secret.clone());
            webhook.previous_secret = Some((old, now.0 + ROTATION_GRACE_MS));
            webhook.updated_at = now;
            Ok::<_, ApiError>(webhook)
        })
        .await?;
    Ok(Json(SecretRotated { webhook, secret }))
}
