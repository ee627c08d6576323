//! Namespace rows.

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::{Store, StoreError, conflict_on_unique, json_column, to_json};
use crate::model::{Namespace, NamespaceAuth, Timestamp};

/// Column list of every SELECT and INSERT here (a macro, so SQL stays `&'static str`).
macro_rules! columns {
    () => {
        "id, name, auth, created_at, updated_at"
    };
}

impl Store {
    /// All namespaces, by name.
    pub async fn list_namespaces(&self) -> Result<Vec<Namespace>, StoreError> {
        let sql = concat!("SELECT ", columns!(), " FROM namespaces ORDER BY name");
        let rows = sqlx::query(sql).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| self.namespace_from_row(row))
            .collect()
    }

    /// One namespace by id.
    pub async fn get_namespace(&self, id: &str) -> Result<Namespace, StoreError> {
        let sql = concat!("SELECT ", columns!(), " FROM namespaces WHERE id = $1");
        self.fetch_by_id(
            sql,
            id,
            |row| self.namespace_from_row(row),
            || not_found(id),
        )
        .await
    }

    /// Inserts a namespace; a taken name is a conflict.
    pub async fn create_namespace(&self, ns: &Namespace) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO namespaces (id, name, auth, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&ns.id)
        .bind(&ns.name)
        .bind(self.auth_column(&ns.auth)?)
        .bind(ns.created_at.0)
        .bind(ns.updated_at.0)
        .execute(&mut *tx)
        .await
        .map_err(|e| conflict_on_unique(e, || name_taken(&ns.name)))?;
        self.commit_change(tx).await
    }

    /// Saves a changed namespace.
    pub async fn update_namespace(&self, ns: &Namespace) -> Result<(), StoreError> {
        self.modify_namespace(&ns.id, |_| Ok::<_, StoreError>(ns.clone()))
            .await
            .map(drop)
    }

    /// Reads a namespace, applies `change` and saves the result in one transaction (the row
    /// locked meanwhile), so that concurrent changes cannot undo one another.
    pub async fn modify_namespace<E: From<StoreError>>(
        &self,
        id: &str,
        change: impl FnOnce(Namespace) -> Result<Namespace, E>,
    ) -> Result<Namespace, E> {
        let mut tx = self.begin().await?;
        let select = (
            concat!("SELECT ", columns!(), " FROM namespaces WHERE id = $1"),
            concat!(
                "SELECT ",
                columns!(),
                " FROM namespaces WHERE id = $1 FOR UPDATE"
            ),
        );
        let row = self
            .locked_row(&mut tx, select, id)
            .await?
            .ok_or_else(|| not_found(id))?;
        let ns = change(self.namespace_from_row(&row)?)?;
        sqlx::query("UPDATE namespaces SET name = $1, auth = $2, updated_at = $3 WHERE id = $4")
            .bind(&ns.name)
            .bind(self.auth_column(&ns.auth)?)
            .bind(ns.updated_at.0)
            .bind(&ns.id)
            .execute(&mut *tx)
            .await
            .map_err(|e| conflict_on_unique(e, || name_taken(&ns.name)))?;
        self.commit_change(tx).await?;
        Ok(ns)
    }

    /// Deletes a namespace and, by cascade, its webhooks and their deliveries.
    pub async fn delete_namespace(&self, id: &str) -> Result<(), StoreError> {
        self.delete_by_id("DELETE FROM namespaces WHERE id = $1", id, || not_found(id))
            .await
    }
}

impl Store {
    fn namespace_from_row(&self, row: &AnyRow) -> Result<Namespace, StoreError> {
        let mut auth: NamespaceAuth = json_column(row, "auth")?;
        if let NamespaceAuth::Jwt(jwt) = &mut auth {
            jwt.secret = jwt
                .secret
                .as_deref()
                .map(|s| self.sealer.open(s))
                .transpose()?;
        }
        Ok(Namespace {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            auth,
            created_at: Timestamp(row.try_get("created_at")?),
            updated_at: Timestamp(row.try_get("updated_at")?),
        })
    }

    /// The `auth` column: the settings as JSON, a JWT secret sealed.
    fn auth_column(&self, auth: &NamespaceAuth) -> Result<String, StoreError> {
        let mut auth = auth.clone();
        if let NamespaceAuth::Jwt(jwt) = &mut auth {
            jwt.secret = jwt
                .secret
                .as_deref()
                .map(|s| self.sealer.seal(s))
                .transpose()?;
        }
        to_json(&auth)
    }

    /// Reseals the JWT secrets that are not sealed with the current key; returns how many.
    pub(super) async fn reseal_namespaces(
        &self,
        tx: &mut Transaction<'static, Any>,
    ) -> Result<usize, StoreError> {
        let rows = sqlx::query("SELECT id, auth FROM namespaces")
            .fetch_all(&mut **tx)
            .await?;
        let mut changed = 0;
        for row in rows {
            let auth: NamespaceAuth = json_column(&row, "auth")?;
            let NamespaceAuth::Jwt(mut jwt) = auth else {
                continue;
            };
            let Some(secret) = jwt.secret.take() else {
                continue;
            };
            if !self.sealer.needs_reseal(&secret) {
                continue;
            }
            jwt.secret = Some(self.sealer.seal(&self.sealer.open(&secret)?)?);
            let id: String = row.try_get("id")?;
            sqlx::query("UPDATE namespaces SET auth = $1 WHERE id = $2")
                .bind(to_json(&NamespaceAuth::Jwt(jwt))?)
                .bind(&id)
                .execute(&mut **tx)
                .await?;
            changed += 1;
        }
        Ok(changed)
    }
}

fn not_found(id: &str) -> StoreError {
    StoreError::NotFound(format!("namespace {id} not found"))
}

fn name_taken(name: &str) -> String {
    format!("a namespace named {name} already exists")
}
