//! Delivery rows as the admin API sees them: the failure log, listing, detail and manual retry.
//! The data plane's outbox statements (batched inserts, claims, leases) are in `outbox.rs`.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, StoreError, json_column, to_json};
use crate::model::{AttemptRecord, Delivery, DeliveryStatus, DeliverySummary, Timestamp};

/// Columns of a listing (no payload, no history).
macro_rules! summary_columns {
    () => {
        "id, webhook_id, event, socket_id, seq, size, status, attempts, next_attempt_at, \
         last_status, last_error, created_at, updated_at"
    };
}

/// Most deliveries one listing returns.
pub const MAX_LIST_LIMIT: i64 = 1000;

/// Which deliveries to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    /// Only this webhook's.
    pub webhook_id: Option<String>,
    /// Only those of webhooks of this namespace (its id or its name).
    pub namespace: Option<String>,
    /// Only in this state.
    pub status: Option<DeliveryStatus>,
    /// Only those created at or after this time.
    pub since: Option<Timestamp>,
    /// Only those created before this time.
    pub until: Option<Timestamp>,
    /// Only those older than this delivery id (the cursor of the previous page).
    pub before_id: Option<String>,
    /// At most this many (clamped to 1..=1000).
    pub limit: i64,
}

/// A delivery about to be recorded (the failure log of non-durable webhooks).
#[derive(Debug, Clone)]
pub struct NewDelivery {
    /// `msg_…`, the `webhook-id` header.
    pub id: String,
    /// The webhook it is for.
    pub webhook_id: String,
    /// Event name.
    pub event: String,
    /// The JSON body as sent, or `null` when it was not kept (see `size`).
    pub payload: String,
    /// Bytes of the body as sent.
    pub size: i64,
    /// The socket, when known.
    pub socket_id: Option<String>,
    /// The body's sequence number, when known.
    pub seq: Option<i64>,
    /// Initial state.
    pub status: DeliveryStatus,
    /// When the next attempt is due.
    pub next_attempt_at: Option<Timestamp>,
    /// The attempts made (their count is `attempts`).
    pub history: Vec<AttemptRecord>,
}

impl NewDelivery {
    fn last(&self) -> (Option<i64>, Option<&str>) {
        self.history
            .last()
            .map_or((None, None), |a| (a.status, a.error.as_deref()))
    }
}

impl Store {
    /// Records a delivery.
    pub async fn insert_delivery(&self, new: &NewDelivery) -> Result<(), StoreError> {
        let now = Timestamp::now().0;
        let (last_status, last_error) = new.last();
        sqlx::query(
            "INSERT INTO deliveries (id, webhook_id, event, payload, socket_id, seq, size, status, \
             attempts, next_attempt_at, last_status, last_error, history, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14)",
        )
        .bind(&new.id)
        .bind(&new.webhook_id)
        .bind(&new.event)
        .bind(&new.payload)
        .bind(new.socket_id.as_deref())
        .bind(new.seq)
        .bind(new.size)
        .bind(new.status.as_str())
        .bind(i64::try_from(new.history.len()).unwrap_or(i64::MAX))
        .bind(new.next_attempt_at.map(|t| t.0))
        .bind(last_status)
        .bind(last_error)
        .bind(to_json(&new.history)?)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Deliveries matching `filter`, newest first (by id: `msg_` + a time-ordered UUID).
    pub async fn list_deliveries(
        &self,
        filter: &DeliveryFilter,
    ) -> Result<Vec<DeliverySummary>, StoreError> {
        let sql = concat!(
            "SELECT ",
            summary_columns!(),
            " FROM deliveries \
             WHERE ($1 IS NULL OR webhook_id = $1) AND ($2 IS NULL OR status = $2) \
             AND ($3 IS NULL OR webhook_id IN (SELECT w.id FROM webhooks w \
                  JOIN namespaces n ON n.id = w.namespace_id WHERE n.id = $3 OR n.name = $3)) \
             AND ($4 IS NULL OR created_at >= $4) AND ($5 IS NULL OR created_at < $5) \
             AND ($6 IS NULL OR id < $6) \
             ORDER BY id DESC LIMIT $7"
        );
        let rows = sqlx::query(sql)
            .bind(filter.webhook_id.as_deref())
            .bind(filter.status.map(DeliveryStatus::as_str))
            .bind(filter.namespace.as_deref())
            .bind(filter.since.map(|t| t.0))
            .bind(filter.until.map(|t| t.0))
            .bind(filter.before_id.as_deref())
            .bind(filter.limit.clamp(1, MAX_LIST_LIMIT))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(summary_from_row).collect()
    }

    /// One delivery by id, with its payload and history.
    pub async fn get_delivery(&self, id: &str) -> Result<Delivery, StoreError> {
        let sql = concat!(
            "SELECT ",
            summary_columns!(),
            ", payload, history FROM deliveries WHERE id = $1"
        );
        self.fetch_by_id(sql, id, delivery_from_row, || not_found(id))
            .await
    }

    /// Makes a delivery due now. A failed, dead or delivered one gets one more attempt (then it
    /// is `dead` again if that fails); a pending one keeps its schedule. Refused while a node
    /// holds it (queued or in flight).
    pub async fn retry_delivery(&self, id: &str) -> Result<Delivery, StoreError> {
        let now = Timestamp::now().0;
        let done = sqlx::query(
            "UPDATE deliveries SET manual = CASE WHEN status = 'pending' THEN manual ELSE 1 END, \
             status = 'pending', next_attempt_at = $1, updated_at = $1 \
             WHERE id = $2 AND (lease_until IS NULL OR lease_until < $1) AND payload <> 'null'",
        )
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            // It does not exist (404), its body was not kept, or a node holds it right now.
            if self.get_delivery(id).await?.payload.is_null() {
                return Err(StoreError::Conflict(format!(
                    "the body of delivery {id} was too large to keep, so it cannot be sent again"
                )));
            }
            return Err(StoreError::Conflict(format!(
                "delivery {id} is being sent right now"
            )));
        }
        self.due.notify_one();
        self.get_delivery(id).await
    }

    /// Makes every dead delivery of a webhook due now, for one more attempt each; returns how many.
    pub async fn retry_dead(&self, webhook_id: &str) -> Result<u64, StoreError> {
        self.get_webhook(webhook_id).await?;
        let now = Timestamp::now().0;
        let done = sqlx::query(
            "UPDATE deliveries SET status = 'pending', manual = 1, next_attempt_at = $1, \
             updated_at = $1 WHERE webhook_id = $2 AND status = 'dead'",
        )
        .bind(now)
        .bind(webhook_id)
        .execute(&self.pool)
        .await?;
        self.due.notify_one();
        Ok(done.rows_affected())
    }
}

fn not_found(id: &str) -> StoreError {
    StoreError::NotFound(format!("delivery {id} not found"))
}

fn summary_from_row(row: &AnyRow) -> Result<DeliverySummary, StoreError> {
    let status: String = row.try_get("status")?;
    let next: Option<i64> = row.try_get("next_attempt_at")?;
    Ok(DeliverySummary {
        id: row.try_get("id")?,
        webhook_id: row.try_get("webhook_id")?,
        event: row.try_get("event")?,
        socket_id: row.try_get("socket_id")?,
        seq: row.try_get("seq")?,
        size: row.try_get("size")?,
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

fn delivery_from_row(row: &AnyRow) -> Result<Delivery, StoreError> {
    Ok(Delivery {
        summary: summary_from_row(row)?,
        payload: json_column(row, "payload")?,
        history: json_column(row, "history")?,
    })
}
