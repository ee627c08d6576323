//! `/admin/namespaces`: create, list, read, change and delete namespaces.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use super::AdminState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::JsonBody;
use crate::model::{Namespace, NamespacePatch, NewNamespace, Timestamp, new_id};

/// List namespaces.
#[utoipa::path(get, path = "/admin/namespaces", tag = "namespaces",
    responses((status = 200, body = [Namespace]), (status = 401, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn list(State(state): State<AdminState>) -> Result<Json<Vec<Namespace>>, ApiError> {
    let namespaces = state.store.list_namespaces().await?;
    Ok(Json(namespaces.iter().map(Namespace::redacted).collect()))
}

/// Create a namespace.
#[utoipa::path(post, path = "/admin/namespaces", tag = "namespaces", request_body = NewNamespace,
    responses((status = 201, body = Namespace), (status = 400, body = ErrorBody),
        (status = 409, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn create(
    State(state): State<AdminState>,
    JsonBody(body): JsonBody<NewNamespace>,
) -> Result<(StatusCode, Json<Namespace>), ApiError> {
    body.validate()?;
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
#[utoipa::path(get, path = "/admin/namespaces/{id}", tag = "namespaces",
    params(("id" = String, Path)),
    responses((status = 200, body = Namespace), (status = 404, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn get_one(
    State(state): State<AdminState>,
    Path(id): Path<String>,
) -> Result<Json<Namespace>, ApiError> {
    Ok(Json(state.store.get_namespace(&id).await?.redacted()))
}

/// Change a namespace's name or auth.
#[utoipa::path(patch, path = "/admin/namespaces/{id}", tag = "namespaces",
    params(("id" = String, Path)), request_body = NamespacePatch,
    responses((status = 200, body = Namespace), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn update(
    State(state): State<AdminState>,
    Path(id): Path<String>,
    JsonBody(patch): JsonBody<NamespacePatch>,
) -> Result<Json<Namespace>, ApiError> {
    let next = state
        .store
        .modify_namespace(&id, |current| patch.apply(&current))
        .await?;
    Ok(Json(next.redacted()))
}

/// Delete a namespace, its webhooks, and disconnect its sockets.
#[utoipa::path(delete, path = "/admin/namespaces/{id}", tag = "namespaces",
    params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn delete(
    State(state): State<AdminState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.store.delete_namespace(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}
