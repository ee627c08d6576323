//! Webhook rows.

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::{Store, StoreError, flag_column, json_column, to_json};
use crate::model::{Batch, Timestamp, Webhook};

/// Column list of every SELECT and INSERT here (a macro, so SQL stays `&'static str`).
macro_rules! columns {
    () => {
        "id, namespace_id, url, events, secret, previous_secret, \
    previous_secret_until, reply, durable, timeout_ms, headers, enabled, created_at, updated_at, batch"
    };
}

impl Store {
    /// Webhooks of one namespace, or all of them, oldest first.
    pub async fn list_webhooks(
        &self,
        namespace_id: Option<&str>,
    ) -> Result<Vec<Webhook>, StoreError> {
        let rows = match namespace_id {
            Some(ns) => {
                let sql = concat!(
                    "SELECT ",
                    columns!(),
                    " FROM webhooks WHERE namespace_id = $1 ORDER BY created_at, id"
                );
                sqlx::query(sql).bind(ns).fetch_all(&self.pool).await?
            }
            None => {
                let sql = concat!(
                    "SELECT ",
                    columns!(),
                    " FROM webhooks ORDER BY created_at, id"
                );
                sqlx::query(sql).fetch_all(&self.pool).await?
            }
        };
        rows.iter().map(|row| self.webhook_from_row(row)).collect()
    }

    /// One webhook by id.
    pub async fn get_webhook(&self, id: &str) -> Result<Webhook, StoreError> {
        let sql = concat!("SELECT ", columns!(), " FROM webhooks WHERE id = $1");
        self.fetch_by_id(sql, id, |row| self.webhook_from_row(row), || not_found(id))
            .await
    }

    /// Inserts a webhook; its namespace must exist.
    pub async fn create_webhook(&self, hook: &Webhook) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        let exists = sqlx::query("SELECT id FROM namespaces WHERE id = $1")
            .bind(&hook.namespace_id)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Err(StoreError::NotFound(format!(
                "namespace {} not found",
                hook.namespace_id
            )));
        }
        let sql = concat!(
            "INSERT INTO webhooks (",
            columns!(),
            ") \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
        );
        let (previous, until) = self.split_previous(hook)?;
        sqlx::query(sql)
            .bind(&hook.id)
            .bind(&hook.namespace_id)
            .bind(&hook.url)
            .bind(to_json(&hook.events)?)
            .bind(self.sealer.seal(&hook.secret)?)
            .bind(previous)
            .bind(until)
            .bind(i64::from(hook.reply))
            .bind(i64::from(hook.durable))
            .bind(timeout_to_i64(hook.timeout_ms))
            .bind(to_json(&hook.headers)?)
            .bind(i64::from(hook.enabled))
            .bind(hook.created_at.0)
            .bind(hook.updated_at.0)
            .bind(batch_column(hook)?)
            .execute(&mut *tx)
            .await?;
        self.commit_change(tx).await
    }

    /// Saves a changed webhook (every column but id, namespace and created_at).
    pub async fn update_webhook(&self, hook: &Webhook) -> Result<(), StoreError> {
        self.modify_webhook(&hook.id, |_| Ok::<_, StoreError>(hook.clone()))
            .await
            .map(drop)
    }

    /// Reads a webhook, applies `change` and saves the result in one transaction (the row
    /// locked meanwhile), so that two concurrent changes, say a PATCH and a secret rotation,
    /// cannot undo one another.
    pub async fn modify_webhook<E: From<StoreError>>(
        &self,
        id: &str,
        change: impl FnOnce(Webhook) -> Result<Webhook, E>,
    ) -> Result<Webhook, E> {
        let mut tx = self.begin().await?;
        let select = (
            concat!("SELECT ", columns!(), " FROM webhooks WHERE id = $1"),
            concat!(
                "SELECT ",
                columns!(),
                " FROM webhooks WHERE id = $1 FOR UPDATE"
            ),
        );
        let row = self
            .locked_row(&mut tx, select, id)
            .await?
            .ok_or_else(|| not_found(id))?;
        let hook = change(self.webhook_from_row(&row)?)?;
        let (previous, until) = self.split_previous(&hook)?;
        sqlx::query(
            "UPDATE webhooks SET url = $1, events = $2, secret = $3, previous_secret = $4, \
             previous_secret_until = $5, reply = $6, durable = $7, timeout_ms = $8, headers = $9, \
             enabled = $10, updated_at = $11, batch = $12 WHERE id = $13",
        )
        .bind(&hook.url)
        .bind(to_json(&hook.events)?)
        .bind(self.sealer.seal(&hook.secret)?)
        .bind(previous)
        .bind(until)
        .bind(i64::from(hook.reply))
        .bind(i64::from(hook.durable))
        .bind(timeout_to_i64(hook.timeout_ms))
        .bind(to_json(&hook.headers)?)
        .bind(i64::from(hook.enabled))
        .bind(hook.updated_at.0)
        .bind(batch_column(&hook)?)
        .bind(&hook.id)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from)?;
        self.commit_change(tx).await?;
        Ok(hook)
    }

    /// Deletes a webhook and its deliveries.
    pub async fn delete_webhook(&self, id: &str) -> Result<(), StoreError> {
        self.delete_by_id("DELETE FROM webhooks WHERE id = $1", id, || not_found(id))
            .await
    }
}

/// The `batch` column: its settings as JSON, NULL when the webhook is not batched.
/// `max_in_flight` is left out at its default (1), so that a node of the version before it
/// (which refuses fields it does not know) still reads the webhooks that do not use it, during a
/// rolling deploy or after a rollback.
fn batch_column(hook: &Webhook) -> Result<Option<String>, StoreError> {
    let Some(batch) = &hook.batch else {
        return Ok(None);
    };
    let mut value = serde_json::to_value(batch).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    if let Some(fields) = value.as_object_mut()
        && batch.max_in_flight == Batch::default().max_in_flight
    {
        fields.remove("max_in_flight");
    }
    to_json(&value).map(Some)
}

/// The settings a stored `batch` holds; those a later version added are ignored, so a rollback
/// does not make the catalog unreadable.
fn batch_from_column(text: &str) -> Result<Batch, StoreError> {
    let corrupt = |_| StoreError::Corrupt("batch".into());
    let mut value: serde_json::Value = serde_json::from_str(text).map_err(corrupt)?;
    if let Some(fields) = value.as_object_mut() {
        fields.retain(|name, _| Batch::FIELDS.contains(&name.as_str()));
    }
    serde_json::from_value(value).map_err(corrupt)
}

/// Timeouts are validated to at most 60 s, so this never saturates in practice.
fn timeout_to_i64(timeout_ms: u64) -> i64 {
    i64::try_from(timeout_ms).unwrap_or(i64::MAX)
}

impl Store {
    /// The previous secret (sealed) and its end, as stored in two columns.
    fn split_previous(&self, hook: &Webhook) -> Result<(Option<String>, Option<i64>), StoreError> {
        Ok(match &hook.previous_secret {
            Some((secret, until)) => (Some(self.sealer.seal(secret)?), Some(*until)),
            None => (None, None),
        })
    }

    fn webhook_from_row(&self, row: &AnyRow) -> Result<Webhook, StoreError> {
        let previous: Option<String> = row.try_get("previous_secret")?;
        let until: Option<i64> = row.try_get("previous_secret_until")?;
        let timeout_ms: i64 = row.try_get("timeout_ms")?;
        let secret: String = row.try_get("secret")?;
        Ok(Webhook {
            id: row.try_get("id")?,
            namespace_id: row.try_get("namespace_id")?,
            url: row.try_get("url")?,
            events: json_column(row, "events")?,
            secret: self.sealer.open(&secret)?,
            previous_secret: previous
                .map(|p| self.sealer.open(&p))
                .transpose()?
                .zip(until),
            reply: flag_column(row, "reply")?,
            durable: flag_column(row, "durable")?,
            timeout_ms: u64::try_from(timeout_ms)
                .map_err(|_| StoreError::Corrupt("timeout_ms".into()))?,
            headers: json_column(row, "headers")?,
            enabled: flag_column(row, "enabled")?,
            batch: row
                .try_get::<Option<String>, _>("batch")?
                .map(|text| batch_from_column(&text))
                .transpose()?,
            created_at: Timestamp(row.try_get("created_at")?),
            updated_at: Timestamp(row.try_get("updated_at")?),
        })
    }

    /// Reseals the webhook secrets that are not sealed with the current key; returns how many.
    pub(super) async fn reseal_webhooks(
        &self,
        tx: &mut Transaction<'static, Any>,
    ) -> Result<usize, StoreError> {
        let rows = sqlx::query("SELECT id, secret, previous_secret FROM webhooks")
            .fetch_all(&mut **tx)
            .await?;
        let mut changed = 0;
        for row in rows {
            let id: String = row.try_get("id")?;
            let secret: String = row.try_get("secret")?;
            let previous: Option<String> = row.try_get("previous_secret")?;
            let stale = |value: &str| self.sealer.needs_reseal(value);
            if !stale(&secret) && !previous.as_deref().is_some_and(stale) {
                continue;
            }
            let reseal = |value: &str| self.sealer.seal(&self.sealer.open(value)?);
            let previous = previous.as_deref().map(reseal).transpose()?;
            sqlx::query("UPDATE webhooks SET secret = $1, previous_secret = $2 WHERE id = $3")
                .bind(reseal(&secret)?)
                .bind(previous)
                .bind(&id)
                .execute(&mut **tx)
                .await?;
            changed += 1;
        }
        Ok(changed)
    }
}

fn not_found(id: &str) -> StoreError {
    StoreError::NotFound(format!("webhook {id} not found"))
}
