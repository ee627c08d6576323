//! API key rows.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, StoreError, json_column, to_json};
use crate::model::{ApiKey, Timestamp};

/// Column list of every SELECT and INSERT here (a macro, so SQL stays `&'static str`).
macro_rules! columns {
    () => {
        "id, name, namespaces, key_hash, prefix, created_at, last_used_at, revoked_at"
    };
}

impl Store {
    /// All API keys, revoked ones included, oldest first.
    pub async fn list_api_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        let sql = concat!(
            "SELECT ",
            columns!(),
            " FROM api_keys ORDER BY created_at, id"
        );
        let rows = sqlx::query(sql).fetch_all(&self.pool).await?;
        rows.iter().map(api_key_from_row).collect()
    }

    /// One API key by id.
    pub async fn get_api_key(&self, id: &str) -> Result<ApiKey, StoreError> {
        let sql = concat!("SELECT ", columns!(), " FROM api_keys WHERE id = $1");
        self.fetch_by_id(sql, id, api_key_from_row, || not_found(id))
            .await
    }

    /// Inserts an API key (only its hash).
    pub async fn create_api_key(&self, key: &ApiKey) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        let sql = concat!(
            "INSERT INTO api_keys (",
            columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        );
        sqlx::query(sql)
            .bind(&key.id)
            .bind(&key.name)
            .bind(to_json(&key.namespaces)?)
            .bind(&key.key_hash)
            .bind(&key.prefix)
            .bind(key.created_at.0)
            .bind(key.last_used_at.map(|t| t.0))
            .bind(key.revoked_at.map(|t| t.0))
            .execute(&mut *tx)
            .await?;
        self.commit_change(tx).await
    }

    /// Saves a changed key: its name, namespaces and hash (a declared key whose value changed).
    pub async fn update_api_key(&self, key: &ApiKey) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "UPDATE api_keys SET name = $1, namespaces = $2, key_hash = $3, prefix = $4 \
             WHERE id = $5",
        )
        .bind(&key.name)
        .bind(to_json(&key.namespaces)?)
        .bind(&key.key_hash)
        .bind(&key.prefix)
        .bind(&key.id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(not_found(&key.id));
        }
        self.commit_change(tx).await
    }

    /// Revokes a key (idempotent: the first revocation time is kept) and returns it.
    pub async fn revoke_api_key(&self, id: &str, at: Timestamp) -> Result<ApiKey, StoreError> {
        let mut tx = self.begin().await?;
        let done =
            sqlx::query("UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2")
                .bind(at.0)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        if done.rows_affected() == 0 {
            return Err(not_found(id));
        }
        self.commit_change(tx).await?;
        self.get_api_key(id).await
    }

    /// Records that these keys authenticated requests at `at`; not a catalog change.
    pub async fn touch_api_keys(&self, ids: &[String], at: Timestamp) -> Result<(), StoreError> {
        for id in ids {
            sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2")
                .bind(at.0)
                .bind(id)
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }
}

fn not_found(id: &str) -> StoreError {
    StoreError::NotFound(format!("api key {id} not found"))
}

fn api_key_from_row(row: &AnyRow) -> Result<ApiKey, StoreError> {
    let last_used: Option<i64> = row.try_get("last_used_at")?;
    let revoked: Option<i64> = row.try_get("revoked_at")?;
    Ok(ApiKey {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        namespaces: json_column(row, "namespaces")?,
        key_hash: row.try_get("key_hash")?,
        prefix: row.try_get("prefix")?,
        created_at: Timestamp(row.try_get("created_at")?),
        last_used_at: last_used.map(Timestamp),
        revoked_at: revoked.map(Timestamp),
    })
}
