//! `/admin/namespaces`: create, list, read, change and delete namespaces.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use super::AdminState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::JsonBody;
use crate::model::{Namespace, NamespacePatch, NewNamespace, Timestamp, new_id};

/// List namespaces.
#[utoipa::path(get, path = "/admin/namespaces", operation_id = "listNamespaces", tag = "namespaces",
    responses((status = 200, description = "Every namespace (JWT secrets never shown)", body = [Namespace])),
    security(("admin_token" = [])))]
pub async fn list(State(state): State<AdminState>) -> Result<Json<Vec<Namespace>>, ApiError> {
    let namespaces = state.store.list_namespaces().await?;
    Ok(Json(namespaces.iter().map(Namespace::redacted).collect()))
}

/// Create a namespace.
#[utoipa::path(post, path = "/admin/namespaces", operation_id = "createNamespace", tag = "namespaces",
    request_body(content = NewNamespace, examples(
        ("public" = (summary = "Anyone may connect", value = json!({"name": "/chat"}))),
        ("jwt" = (summary = "An HS256 token is required", value = json!({"name": "/private",
            "auth": {"mode": "jwt", "algorithm": "HS256", "secret": "a-long-random-shared-secret"}}))),
        ("jwks" = (summary = "Tokens of an identity provider", value = json!({"name": "/app",
            "auth": {"mode": "jwt", "algorithm": "RS256", "jwks_url": "https://idp.example.com/.well-known/jwks.json",
                "issuer": "https://idp.example.com/", "audience": "bridge"}}))),
    )),
    responses((status = 201, description = "Created (a JWT secret is not echoed)", body = Namespace),
        (status = 409, description = "A namespace of that name exists (`conflict`)", body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn create(
    State(state): State<AdminState>,
    JsonBody(body): JsonBody<NewNamespace>,
) -> Result<(StatusCode, Json<Namespace>), ApiError> {
    body.validate()?;
    state.url_policy.check_namespace_auth(&body.auth)?;
    let now = Timestamp::now();
    let ns = Namespace {
        id: new_id(),
        name: body.name,
        auth: body.auth,
        created_at: now,
        updated_at: now,
    };
    state.store.create_namespace(&ns).await?;
    Ok((StatusCode::CREATED, Json(ns.redacted())))
}

/// Read a namespace.
#[utoipa::path(get, path = "/admin/namespaces/{id}", operation_id = "getNamespace", tag = "namespaces",
    params(("id" = String, Path, description = "Namespace id")),
    responses((status = 200, description = "The namespace (its JWT secret never shown)", body = Namespace),
        (status = 404, description = "No namespace has this id (`not_found`)", body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn get_one(
    State(state): State<AdminState>,
    Path(id): Path<String>,
) -> Result<Json<Namespace>, ApiError> {
    Ok(Json(state.store.get_namespace(&id).await?.redacted()))
}

/// Change a namespace's name or auth.
#[utoipa::path(patch, path = "/admin/namespaces/{id}", operation_id = "updateNamespace", tag = "namespaces",
    params(("id" = String, Path, description = "Namespace id")),
    request_body(content = NamespacePatch, examples(
        ("rename" = (summary = "A new name", value = json!({"name": "/chat-v2"}))),
        ("open" = (summary = "No auth any more", value = json!({"auth": {"mode": "none"}}))),
    )),
    responses((status = 200, description = "The namespace as changed", body = Namespace),
        (status = 404, description = "No namespace has this id (`not_found`)", body = ErrorBody),
        (status = 409, description = "Another namespace has that name (`conflict`)", body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn update(
    State(state): State<AdminState>,
    Path(id): Path<String>,
    JsonBody(patch): JsonBody<NamespacePatch>,
) -> Result<Json<Namespace>, ApiError> {
    let next = state
        .store
        .modify_namespace(&id, |current| {
            let next = patch.apply(&current)?;
            state.url_policy.check_namespace_auth(&next.auth)?;
            Ok::<_, ApiError>(next)
        })
        .await?;
    Ok(Json(next.redacted()))
}

/// Delete a namespace, its webhooks, and disconnect its sockets.
#[utoipa::path(delete, path = "/admin/namespaces/{id}", operation_id = "deleteNamespace", tag = "namespaces",
    params(("id" = String, Path, description = "Namespace id")),
    responses((status = 204, description = "Deleted"),
        (status = 404, description = "No namespace has this id (`not_found`)", body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn delete(
    State(state): State<AdminState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.store.delete_namespace(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}
