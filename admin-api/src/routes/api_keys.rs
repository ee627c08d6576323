//! `/admin/api-keys`: keys of the emit API, shown once, revocable.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use super::AdminState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::JsonBody;
use crate::model::{
    ApiKey, ApiKeyCreated, NewApiKey, Timestamp, generate_api_key, hash_api_key, new_id,
};

/// List API keys (revoked ones included; keys themselves are never shown).
#[utoipa::path(get, path = "/admin/api-keys", operation_id = "listApiKeys", tag = "api-keys",
    responses((status = 200, description = "Every key, revoked ones included", body = [ApiKey])),
    security(("admin_token" = [])))]
pub async fn list(State(state): State<AdminState>) -> Result<Json<Vec<ApiKey>>, ApiError> {
    Ok(Json(state.store.list_api_keys().await?))
}

/// Create an API key; the answer's `key` is the only time it is shown.
#[utoipa::path(post, path = "/admin/api-keys", operation_id = "createApiKey", tag = "api-keys",
    request_body(content = NewApiKey, examples(
        ("one" = (summary = "A backend's key for one namespace", value = json!({"name": "chat backend", "namespaces": ["/chat"]}))),
        ("all" = (summary = "A key for every namespace", value = json!({"name": "ops", "namespaces": ["*"]}))),
    )),
    responses((status = 201, description = "Created; `key` is shown this once", body = ApiKeyCreated)),
    security(("admin_token" = [])))]
pub async fn create(
    State(state): State<AdminState>,
    JsonBody(body): JsonBody<NewApiKey>,
) -> Result<(StatusCode, Json<ApiKeyCreated>), ApiError> {
    body.validate()?;
    let (key, prefix) = generate_api_key();
    let api_key = ApiKey {
        id: new_id(),
        name: body.name,
        namespaces: body.namespaces,
        prefix,
        created_at: Timestamp::now(),
        last_used_at: None,
        revoked_at: None,
        key_hash: hash_api_key(&key),
    };
    state.store.create_api_key(&api_key).await?;
    Ok((StatusCode::CREATED, Json(ApiKeyCreated { api_key, key })))
}

/// Revoke an API key; it stops working on every node within a second.
#[utoipa::path(delete, path = "/admin/api-keys/{id}", operation_id = "revokeApiKey", tag = "api-keys",
    params(("id" = String, Path, description = "API key id")),
    responses((status = 200, description = "The key, with its `revoked_at`", body = ApiKey),
        (status = 404, description = "No API key has this id (`not_found`)", body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn revoke(
    State(state): State<AdminState>,
    Path(id): Path<String>,
) -> Result<Json<ApiKey>, ApiError> {
    Ok(Json(
        state.store.revoke_api_key(&id, Timestamp::now()).await?,
    ))
}
