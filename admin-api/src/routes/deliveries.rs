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

/// Filters of `GET /admin/deliveries` (query parameters; an empty value is no filter).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryQuery {
    /// Only this webhook's deliveries (its id).
    webhook: Option<String>,
    /// Only deliveries of this namespace's webhooks: its id or its name (`/chat`).
    namespace: Option<String>,
    /// Only deliveries in this state.
    #[param(value_type = Option<DeliveryStatus>)]
    status: Option<String>,
    /// Only those created at or after this RFC 3339 time.
    #[param(value_type = Option<String>, format = DateTime, example = "2026-11-25T22:47:05Z")]
    since: Option<String>,
    /// Only those created before this RFC 3339 time.
    #[param(value_type = Option<String>, format = DateTime, example = "2026-11-26T00:00:00+01:00")]
    until: Option<String>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Page size, 1 to 1000 (default 100); newest first.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 1000)]
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
#[utoipa::path(get, path = "/admin/deliveries", operation_id = "listDeliveries", tag = "deliveries", params(DeliveryQuery),
    responses((status = 200, description = "A page of deliveries, newest first", body = DeliveryPage),
        (status = 400, description = "A filter is not valid (`bad_request`, `invalid_field`); the message names it", body = ErrorBody)),
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
#[utoipa::path(get, path = "/admin/deliveries/{id}", operation_id = "getDelivery", tag = "deliveries",
    params(("id" = String, Path, description = "Delivery id (the `webhook-id` header, `msg_…`)")),
    responses((status = 200, description = "The delivery, its payload and its attempts", body = Delivery),
        (status = 404, description = "No delivery has this id (`not_found`)", body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn get_one(
    State(state): State<AdminState>,
    Path(id): Path<String>,
) -> Result<Json<Delivery>, ApiError> {
    Ok(Json(state.store.get_delivery(&id).await?))
}

/// Send a delivery again now, with the same `webhook-id` (one more attempt for a failed, dead or
/// delivered one; 409 while a node is sending it).
#[utoipa::path(post, path = "/admin/deliveries/{id}/retry", operation_id = "retryDelivery", tag = "deliveries",
    params(("id" = String, Path, description = "Delivery id (the `webhook-id` header, `msg_…`)")),
    responses((status = 200, description = "The delivery, due now", body = Delivery),
        (status = 404, description = "No delivery has this id (`not_found`)", body = ErrorBody),
        (status = 409, description = "A node is sending it right now (`conflict`)", body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn retry(
    State(state): State<AdminState>,
    Path(id): Path<String>,
) -> Result<Json<Delivery>, ApiError> {
    Ok(Json(state.store.retry_delivery(&id).await?))
}

/// Send every dead delivery of a webhook again (one more attempt each), e.g. after an outage.
#[utoipa::path(post, path = "/admin/webhooks/{id}/retry-dead", operation_id = "retryDeadDeliveries", tag = "deliveries",
    params(("id" = String, Path, description = "Webhook id")),
    responses((status = 200, description = "How many dead deliveries are due again", body = Retried),
        (status = 404, description = "No webhook has this id (`not_found`)", body = ErrorBody)),
    security(("admin_token" = [])))]
pub async fn retry_dead(
    State(state): State<AdminState>,
    Path(id): Path<String>,
) -> Result<Json<Retried>, ApiError> {
    let retried = state.store.retry_dead(&id).await?;
    Ok(Json(Retried { retried }))
}
