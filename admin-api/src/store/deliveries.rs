//! Delivery rows: durable webhook messages and the log of failed ones.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, StoreError, json_column, to_json};
use crate::model::{Delivery, DeliveryStatus, Timestamp};

/// Column list of every SELECT and INSERT here (a macro, so SQL stays `&'static str`).
macro_rules! columns {
    () => {
        "id, webhook_id, event, payload, status, attempts, next_attempt_at, \
    last_status, last_error, created_at, updated_at"
    };
}

/// Most deliveries one listing returns.
pub const MAX_LIST_LIMIT: i64 = 1000;

/// Which deliveries to list.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    /// Only this webhook's.
    pub webhook_id: Option<String>,
    /// Only in this state.
    pub status: Option<DeliveryStatus>,
    /// At most this many, newest first (clamped to 1..=1000).
    pub limit: i64,
}

/// A delivery about to be recorded.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    /// `msg_…`, the `webhook-id` header.
    pub id: String,
    /// The webhook it is for.
    pub webhook_id: String,
    /// Event name.
    pub event: String,
    /// The JSON body.
    pub payload: serde_json::Value,
    /// Initial state.
    pub status: DeliveryStatus,
    /// Attempts already made.
    pub attempts: i64,
    /// When the next attempt is due.
    pub next_attempt_at: Option<Timestamp>,
    /// HTTP status of the last attempt.
    pub last_status: Option<i64>,
    /// Error of the last attempt.
    pub last_error: Option<String>,
}

impl Store {
    /// Records a delivery.
    pub async fn insert_delivery(&self, new: &NewDelivery) -> Result<(), StoreError> {
        let now = Timestamp::now().0;
        let sql = concat!(
            "INSERT INTO deliveries (",
            columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        );
        sqlx::query(sql)
            .bind(&new.id)
            .bind(&new.webhook_id)
            .bind(&new.event)
            .bind(to_json(&new.payload)?)
            .bind(new.status.as_str())
            .bind(new.attempts)
            .bind(new.next_attempt_at.map(|t| t.0))
            .bind(new.last_status)
            .bind(new.last_error.as_deref())
            .bind(now)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Deliveries matching `filter`, newest first.
    pub async fn list_deliveries(
        &self,
        filter: &DeliveryFilter,
    ) -> Result<Vec<Delivery>, StoreError> {
        let sql = concat!(
            "SELECT ",
            columns!(),
            " FROM deliveries \
             WHERE ($1 IS NULL OR webhook_id = $1) AND ($2 IS NULL OR status = $2) \
             ORDER BY created_at DESC, id DESC LIMIT $3"
        );
        let rows = sqlx::query(sql)
            .bind(filter.webhook_id.as_deref())
            .bind(filter.status.map(DeliveryStatus::as_str))
            .bind(filter.limit.clamp(1, MAX_LIST_LIMIT))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(delivery_from_row).collect()
    }

    /// One delivery by id.
    pub async fn get_delivery(&self, id: &str) -> Result<Delivery, StoreError> {
        let sql = concat!("SELECT ", columns!(), " FROM deliveries WHERE id = $1");
        self.fetch_by_id(sql, id, delivery_from_row, || not_found(id))
            .await
    }

    /// Makes a delivery due now again, whatever its state, and returns it.
    pub async fn retry_delivery(&self, id: &str) -> Result<Delivery, StoreError> {
        let now = Timestamp::now().0;
        let done = sqlx::query(
            "UPDATE deliveries SET status = $1, next_attempt_at = $2, updated_at = $2 WHERE id = $3",
        )
        .bind(DeliveryStatus::Pending.as_str())
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(not_found(id));
        }
        self.get_delivery(id).await
    }
}

fn not_found(id: &str) -> StoreError {
    StoreError::NotFound(format!("delivery {id} not found"))
}

fn delivery_from_row(row: &AnyRow) -> Result<Delivery, StoreError> {
    let status: String = row.try_get("status")?;
    let next: Option<i64> = row.try_get("next_attempt_at")?;
    Ok(Delivery {
        id: row.try_get("id")?,
        webhook_id: row.try_get("webhook_id")?,
        event: row.try_get("event")?,
        payload: json_column(row, "payload")?,
        status: DeliveryStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("status {status:?}")))?,
        attempts: row.try_get("attempts")?,
        next_attempt_at: next.map(Timestamp),
        last_status: row.try_get("last_status")?,
        last_error: row.try_get("last_error")?,
        created_at: Timestamp(row.try_get("created_at")?),
        updated_at: Timestamp(row.try_get("updated_at")?),
    })
}
