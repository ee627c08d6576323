//! `/admin/deliveries`: the record of webhook messages, and manual retry.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use utoipa::IntoParams;

use super::AdminState;
use crate::error::{ApiError, ErrorBody};
use crate::model::{Delivery, DeliveryStatus};
use crate::store::DeliveryFilter;

/// Deliveries listed when no `limit` is given.
const DEFAULT_LIMIT: i64 = 100;

/// Filters of `GET /admin/deliveries`.
#[derive(Debug, Deserialize, IntoParams)]
pub struct DeliveryQuery {
    /// Only this webhook's deliveries.
    webhook: Option<String>,
    /// `pending`, `delivered`, `failed` or `dead`.
    status: Option<String>,
    /// 1 to 1000, default 100; newest first.
    limit: Option<String>,
}

impl DeliveryQuery {
    fn into_filter(self) -> Result<DeliveryFilter, ApiError> {
        let status = match self.status.as_deref() {
            None | Some("") => None,
            Some(s) => Some(DeliveryStatus::parse(s).ok_or_else(|| {
                ApiError::invalid("status", "must be pending, delivered, failed or dead")
            })?),
        };
        let limit = match self.limit.as_deref() {
            None | Some("") => DEFAULT_LIMIT,
            Some(s) => s
                .parse::<i64>()
                .ok()
                .filter(|n| (1..=crate::store::MAX_LIST_LIMIT).contains(n))
                .ok_or_else(|| {
                    ApiError::invalid("limit", "must be a whole number from 1 to 1000")
                })?,
        };
        Ok(DeliveryFilter {
            webhook_id: self.webhook.filter(|w| !w.is_empty()),
            status,
            limit,
        })
    }
}

/// List deliveries, newest first.
#[utoipa::path(get, path = "/admin/deliveries", tag = "deliveries", params(DeliveryQuery),
    responses((status = 200, body = [Delivery]), (status = 400, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn list(
    State(state): State<AdminState>,
    query: Result<Query<DeliveryQuery>, QueryRejection>,
) -> Result<Json<Vec<Delivery>>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let filter = query.into_filter()?;
    Ok(Json(state.store.list_deliveries(&filter).await?))
}

/// Read a delivery.
#[utoipa::path(get, path = "/admin/deliveries/{id}", tag = "deliveries",
    params(("id" = String, Path)),
    responses((status = 200, body = Delivery), (status = 404, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn get_one(
    State(state): State<AdminState>,
    Path(id): Path<String>,
) -> Result<Json<Delivery>, ApiError> {
    Ok(Json(state.store.get_delivery(&id).await?))
}

/// Make a delivery due again now.
#[utoipa::path(post, path = "/admin/deliveries/{id}/retry", tag = "deliveries",
    params(("id" = String, Path)),
    responses((status = 200, body = Delivery), (status = 404, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn retry(
    State(state): State<AdminState>,
    Path(id): Path<String>,
) -> Result<Json<Delivery>, ApiError> {
    Ok(Json(state.store.retry_delivery(&id).await?))
}
