//! The durable outbox's statements: batched inserts and completions, claims of due rows under a
//! lease, lease renewal and release, the byte usage behind the budget, and retention.
//!
//! Batches are single statements over a `VALUES` list, so a burst costs one round trip and one
//! commit. Both engines name a `VALUES` list's columns `column1`, `column2`, …

use std::fmt::Write as _;

use sqlx::Row;

use super::{Engine, Store, StoreError, json_column};
use crate::model::{AttemptRecord, DeliveryStatus};

/// Rows in one batched statement (Postgres allows 65535 parameters, SQLite 32766).
pub const MAX_BATCH_ROWS: usize = 256;

/// A durable message about to be written, held by `lease_owner` until `lease_until`.
#[derive(Debug, Clone)]
pub struct OutboxRow {
    /// `msg_…`, the `webhook-id` header.
    pub id: String,
    /// The webhook it is for.
    pub webhook_id: String,
    /// Event name.
    pub event: String,
    /// The JSON body.
    pub payload: String,
    /// The socket whose event it is.
    pub socket_id: Option<String>,
    /// The body's per-socket sequence number.
    pub seq: Option<i64>,
    /// When it was accepted (unix ms); it is due from then on.
    pub created_at: i64,
}

/// The new state of a delivery after an attempt (or a release without one).
#[derive(Debug, Clone)]
pub struct DeliveryUpdate {
    /// Which delivery.
    pub id: String,
    /// Its new state.
    pub status: DeliveryStatus,
    /// Attempts made so far.
    pub attempts: i64,
    /// When the next attempt is due, while pending.
    pub next_attempt_at: Option<i64>,
    /// The history, last attempt last.
    pub history: Vec<AttemptRecord>,
}

/// A due delivery this process now holds.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    /// `msg_…`.
    pub id: String,
    /// The webhook it is for.
    pub webhook_id: String,
    /// Event name.
    pub event: String,
    /// The JSON body.
    pub payload: String,
    /// Attempts made so far.
    pub attempts: i64,
    /// Whether this is a single manual attempt.
    pub manual: bool,
    /// The history so far.
    pub history: Vec<AttemptRecord>,
}

/// Undelivered bytes of one webhook in one state.
#[derive(Debug, Clone)]
pub struct OutboxUsage {
    /// The webhook.
    pub webhook_id: String,
    /// `pending` or `dead`.
    pub status: DeliveryStatus,
    /// Rows.
    pub count: i64,
    /// Sum of their body sizes.
    pub bytes: i64,
    /// Earliest `next_attempt_at` (pending rows).
    pub oldest_due: Option<i64>,
}

impl Store {
    /// Inserts `rows` in one statement, skipping those whose webhook no longer exists; returns
    /// the ids written.
    pub async fn insert_outbox(
        &self,
        rows: &[OutboxRow],
        lease_owner: &str,
        lease_until: i64,
    ) -> Result<Vec<String>, StoreError> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "INSERT INTO deliveries (id, webhook_id, event, payload, socket_id, seq, size, \
             created_at, updated_at, next_attempt_at, status, attempts, history, lease_owner, \
             lease_until) \
             SELECT v.column1, v.column2, v.column3, v.column4, v.column5, v.column6, v.column7, \
             v.column8, v.column8, v.column8, 'pending', 0, '[]', $1, $2 \
             FROM (VALUES {}) AS v WHERE v.column2 IN (SELECT id FROM webhooks) RETURNING id",
            placeholders(rows.len(), 8, 3)
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(lease_owner)
            .bind(lease_until);
        for row in rows {
            query = query
                .bind(&row.id)
                .bind(&row.webhook_id)
                .bind(&row.event)
                .bind(&row.payload)
                .bind(row.socket_id.as_deref())
                .bind(row.seq)
                .bind(i64::try_from(row.payload.len()).unwrap_or(i64::MAX))
                .bind(row.created_at);
        }
        let written = query.fetch_all(&self.pool).await?;
        written
            .iter()
            .map(|r| r.try_get::<String, _>("id").map_err(StoreError::from))
            .collect()
    }

    /// Writes the outcome of attempts in one statement, for the rows `lease_owner` still holds,
    /// and releases their lease.
    pub async fn complete_deliveries(
        &self,
        updates: &[DeliveryUpdate],
        lease_owner: &str,
        now: i64,
    ) -> Result<u64, StoreError> {
        if updates.is_empty() {
            return Ok(0);
        }
        let sql = format!(
            "UPDATE deliveries SET status = v.column2, attempts = v.column3, \
             next_attempt_at = v.column4, last_status = v.column5, last_error = v.column6, \
             history = v.column7, manual = 0, lease_owner = NULL, lease_until = NULL, \
             updated_at = $2 \
             FROM (VALUES {}) AS v WHERE deliveries.id = v.column1 AND deliveries.lease_owner = $1",
            placeholders(updates.len(), 7, 3)
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(lease_owner)
            .bind(now);
        for update in updates {
            let last = update.history.last();
            query = query
                .bind(&update.id)
                .bind(update.status.as_str())
                .bind(update.attempts)
                .bind(update.next_attempt_at)
                .bind(last.and_then(|a| a.status))
                .bind(last.and_then(|a| a.error.clone()))
                .bind(super::to_json(&update.history)?);
        }
        Ok(query.execute(&self.pool).await?.rows_affected())
    }

    /// Takes up to `limit` due, unheld rows of enabled webhooks for `lease_owner` until
    /// `lease_until`; on Postgres several processes claim at once without overlap.
    pub async fn claim_due(
        &self,
        lease_owner: &str,
        lease_until: i64,
        now: i64,
        limit: i64,
    ) -> Result<Vec<ClaimedDelivery>, StoreError> {
        let lock = match self.engine {
            Engine::Postgres => " FOR UPDATE SKIP LOCKED",
            Engine::Sqlite => "",
        };
        let sql = format!(
            "UPDATE deliveries SET lease_owner = $1, lease_until = $2 WHERE id IN (\
             SELECT id FROM deliveries WHERE status = 'pending' AND next_attempt_at <= $3 \
             AND (lease_until IS NULL OR lease_until < $3) \
             AND webhook_id IN (SELECT id FROM webhooks WHERE enabled = 1) \
             ORDER BY next_attempt_at LIMIT $4{lock}) \
             RETURNING id, webhook_id, event, payload, attempts, manual, history"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(lease_owner)
            .bind(lease_until)
            .bind(now)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(ClaimedDelivery {
                    id: row.try_get("id")?,
                    webhook_id: row.try_get("webhook_id")?,
                    event: row.try_get("event")?,
                    payload: row.try_get("payload")?,
                    attempts: row.try_get("attempts")?,
                    manual: row.try_get::<i64, _>("manual")? != 0,
                    history: json_column(row, "history")?,
                })
            })
            .collect()
    }

    /// Extends the lease of the rows `ids` that `lease_owner` holds.
    pub async fn renew_leases(
        &self,
        ids: &[String],
        lease_owner: &str,
        lease_until: i64,
    ) -> Result<u64, StoreError> {
        let mut renewed = 0;
        for chunk in ids.chunks(MAX_BATCH_ROWS * 4) {
            let sql = format!(
                "UPDATE deliveries SET lease_until = $1 WHERE lease_owner = $2 AND id IN ({})",
                (3..3 + chunk.len()).fold(String::new(), |mut s, n| {
                    let _ = write!(s, "{}${n}", if s.is_empty() { "" } else { ", " });
                    s
                })
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(lease_until)
                .bind(lease_owner);
            for id in chunk {
                query = query.bind(id);
            }
            renewed += query.execute(&self.pool).await?.rows_affected();
        }
        Ok(renewed)
    }

    /// Lets go of every row `lease_owner` holds: they are due for whichever process claims them.
    pub async fn release_leases(&self, lease_owner: &str) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE deliveries SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = $1",
        )
        .bind(lease_owner)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Undelivered rows and bytes per webhook and state (`pending`, `dead`).
    pub async fn outbox_usage(&self) -> Result<Vec<OutboxUsage>, StoreError> {
        let rows = sqlx::query(
            "SELECT webhook_id, status, COUNT(*) AS n, CAST(COALESCE(SUM(size), 0) AS BIGINT) AS bytes, \
             MIN(next_attempt_at) AS oldest FROM deliveries WHERE status IN ('pending', 'dead') \
             GROUP BY webhook_id, status",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let status: String = row.try_get("status")?;
                Ok(OutboxUsage {
                    webhook_id: row.try_get("webhook_id")?,
                    status: DeliveryStatus::parse(&status)
                        .ok_or_else(|| StoreError::Corrupt(format!("status {status:?}")))?,
                    count: row.try_get("n")?,
                    bytes: row.try_get("bytes")?,
                    oldest_due: row.try_get("oldest")?,
                })
            })
            .collect()
    }

    /// Deletes up to `limit` rows in `status` last changed before `before`; returns how many.
    pub async fn prune_deliveries(
        &self,
        status: DeliveryStatus,
        before: i64,
        limit: i64,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM deliveries WHERE id IN (SELECT id FROM deliveries \
             WHERE status = $1 AND updated_at < $2 LIMIT $3)",
        )
        .bind(status.as_str())
        .bind(before)
        .bind(limit)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Woken when deliveries became due through this handle (a manual retry).
    pub fn outbox_due(&self) -> std::sync::Arc<tokio::sync::Notify> {
        self.due.clone()
    }
}

/// `($s, $s+1, …), (…)`: `rows` groups of `cols` numbered parameters from `$start`.
fn placeholders(rows: usize, cols: usize, start: usize) -> String {
    let mut sql = String::with_capacity(rows * cols * 6);
    for r in 0..rows {
        sql.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..cols {
            let n = start + r * cols + c;
            let _ = write!(sql, "{}${n}", if c == 0 { "" } else { ", " });
        }
        sql.push(')');
    }
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_number_rows_in_order() {
        assert_eq!(placeholders(2, 3, 3), "($3, $4, $5), ($6, $7, $8)");
        assert_eq!(placeholders(1, 1, 1), "($1)");
    }
}
