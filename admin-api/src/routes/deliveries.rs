//! `/admin/deliveries`: the record of webhook messages, and manual redelivery.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AdminState;
use crate::error::{ApiError, ErrorBody};
use crate::model::{Delivery, DeliveryStatus, DeliverySummary, Timestamp};
use crate::store::DeliveryFilter;

/// Deliveries listed when no `limit` is given.
const DEFAULT_LIMIT: i64 = 100;

/// Filters of `GET /admin/deliveries`.
#[derive(Debug, Deserialize, IntoParams)]
pub struct DeliveryQuery {
    /// Only this webhook's deliveries.
    webhook: Option<String>,
    /// Only deliveries of this namespace's webhooks: its id or its name (`/chat`).
    namespace: Option<String>,
    /// `pending`, `delivered`, `failed` or `dead`.
    status: Option<String>,
    /// Only those created at or after this RFC 3339 time.
    since: Option<String>,
    /// Only those created before this RFC 3339 time.
    until: Option<String>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
    /// 1 to 1000, default 100; newest first.
    limit: Option<String>,
}

/// A page of deliveries, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryPage {
    /// The deliveries, without payload and history (see `GET /admin/deliveries/{id}`).
    pub deliveries: Vec<DeliverySummary>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// Answer of a bulk retry.
#[derive(Debug, Serialize, ToSchema)]
pub struct Retried {
    /// How many dead deliveries were made due again.
    pub retried: u64,
}

impl DeliveryQuery {
    fn into_filter(self) -> Result<DeliveryFilter, ApiError> {
        let status = match non_empty(self.status) {
            None => None,
            Some(s) => Some(DeliveryStatus::parse(&s).ok_or_else(|| {
                ApiError::invalid("status", "must be pending, delivered, failed or dead")
            })?),
        };
        let limit = match non_empty(self.limit) {
            None => DEFAULT_LIMIT,
            Some(s) => s
                .parse::<i64>()
                .ok()
                .filter(|n| (1..=crate::store::MAX_LIST_LIMIT).contains(n))
                .ok_or_else(|| {
                    ApiError::invalid("limit", "must be a whole number from 1 to 1000")
                })?,
        };
        Ok(DeliveryFilter {
            webhook_id: non_empty(self.webhook),
            namespace: non_empty(self.namespace),
            status,
            since: time("since", self.since)?,
            until: time("until", self.until)?,
            before_id: non_empty(self.cursor),
            limit,
        })
    }
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

fn time(field: &str, value: Option<String>) -> Result<Option<Timestamp>, ApiError> {
    non_empty(value)
        .map(|v| {
            Timestamp::parse_rfc3339(&v).ok_or_else(|| {
                ApiError::invalid(field, "must be an RFC 3339 time, e.g. 2026-11-25T22:47:05Z")
            })
        })
        .transpose()
}

/// List deliveries, newest first, a page at a time.
#[utoipa::path(get, path = "/admin/deliveries", tag = "deliveries", params(DeliveryQuery),
    responses((status = 200, body = DeliveryPage), (status = 400, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn list(
    State(state): State<AdminState>,
    query: Result<Query<DeliveryQuery>, QueryRejection>,
) -> Result<Json<DeliveryPage>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let filter = query.into_filter()?;
    let deliveries = state.store.list_deliveries(&filter).await?;
    let full = i64::try_from(deliveries.len()).unwrap_or(i64::MAX) >= filter.limit;
    let next_cursor = full
        .then(|| deliveries.last().map(|d| d.id.clone()))
        .flatten();
    Ok(Json(DeliveryPage {
        deliveries,
        next_cursor,
    }))
}

/// Read a delivery, with its payload and the history of its attempts.
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

/// Send a delivery again now, with the same `webhook-id` (one more attempt for a failed, dead or
/// delivered one; 409 while a node is sending it).
#[utoipa::path(post, path = "/admin/deliveries/{id}/retry", tag = "deliveries",
    params(("id" = String, Path)),
    responses((status = 200, body = Delivery), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn retry(
    State(state): State<AdminState>,
    Path(id): Path<String>,
) -> Result<Json<Delivery>, ApiError> {
    Ok(Json(state.store.retry_delivery(&id).await?))
}

/// Send every dead delivery of a webhook again (one more attempt each), e.g. after an outage.
#[utoipa::path(post, path = "/admin/webhooks/{id}/retry-dead", tag = "deliveries",
    params(("id" = String, Path)),
    responses((status = 200, body = Retried), (status = 404, body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn retry_dead(
    State(state): State<AdminState>,
    Path(id): Path<String>,
) -> Result<Json<Retried>, ApiError> {
    let retried = state.store.retry_dead(&id).await?;
    Ok(Json(Retried { retried }))
}
