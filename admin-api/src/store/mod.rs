//! The store: every SQL statement of the bridge, over Postgres or SQLite.
//!
//! One set of portable statements runs through sqlx's `Any` driver: ids and JSON are TEXT,
//! timestamps BIGINT unix milliseconds, flags 0/1. Every write bumps `catalog_version` in the same
//! transaction, so every node (which polls that one row) notices admin changes.

mod api_keys;
mod deliveries;
mod namespaces;
mod outbox;
mod sealing;
mod webhooks;

use std::sync::Arc;
use std::time::Duration;

pub use deliveries::{DeliveryFilter, MAX_LIST_LIMIT, NewDelivery};
pub use outbox::{ClaimedDelivery, DeliveryUpdate, MAX_BATCH_ROWS, OutboxRow, OutboxUsage};
pub use sealing::{KeyError, Sealer};

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::Migrator;
use sqlx::{Any, AnyConnection, AnyPool, Connection, Row, Transaction};
use tokio::sync::Notify;

use crate::model::{ApiKey, Namespace, Webhook};

static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/postgres");
static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/sqlite");

/// How long to wait for a connection before calling the store unavailable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A unique constraint refused the write.
    #[error("{0}")]
    Conflict(String),
    /// The database could not be reached.
    #[error("database unreachable: {}", Driver(.0))]
    Unavailable(sqlx::Error),
    /// `DATABASE_URL` is not a supported URL.
    #[error("unsupported DATABASE_URL {0:?}: expected sqlite://PATH or postgres://…")]
    BadUrl(String),
    /// Applying migrations failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored value could not be decoded.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// A secret is sealed with a key this process was not given.
    #[error(
        "a stored secret is sealed with key {0}, which is not configured \
         (BRIDGE_SECRETS_KEY or BRIDGE_SECRETS_OLD_KEYS)"
    )]
    MissingKey(String),
    /// Any other database error.
    #[error("database error: {}", Driver(.0))]
    Database(sqlx::Error),
}

/// A driver error as a user reads it: the server's own message for an error the database
/// returned (sqlx's `Display` adds "error returned from database:" and the line of Postgres's C
/// source that raised it), the driver's text otherwise.
struct Driver<'a>(&'a sqlx::Error);

impl std::fmt::Display for Driver<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            sqlx::Error::Database(db) => f.write_str(db.message()),
            other => other.fmt(f),
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        match err {
            // A connection cut without an answer (a proxy or pooler whose Postgres is gone) is
            // read by the driver as a protocol error.
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed => Self::Unavailable(err),
            sqlx::Error::Database(ref db)
                if refuses_connections(db.code().as_deref(), db.message()) =>
            {
                Self::Unavailable(err)
            }
            other => Self::Database(other),
        }
    }
}

/// Postgres errors that say the server cannot be used right now rather than that the statement
/// is wrong: connection exceptions (class 08), shutting down (57P01–57P03), too many connections
/// (53300), and a database that does not accept connections (55000 with that message; the code
/// alone also covers statement errors).
fn refuses_connections(code: Option<&str>, message: &str) -> bool {
    code.is_some_and(|code| {
        code.starts_with("08")
            || matches!(code, "57P01" | "57P02" | "57P03" | "53300")
            || (code == "55000" && message.contains("not currently accepting connections"))
    })
}

/// Which engine a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// PostgreSQL.
    Postgres,
    /// An embedded SQLite file.
    Sqlite,
}

/// Everything the data plane keeps in memory, read in one go.
#[derive(Debug, Clone, Default)]
pub struct CatalogSnapshot {
    /// `catalog_version` read before the tables.
    pub version: i64,
    /// All namespaces.
    pub namespaces: Vec<Namespace>,
    /// All webhooks, enabled or not.
    pub webhooks: Vec<Webhook>,
    /// All API keys that are not revoked.
    pub api_keys: Vec<ApiKey>,
}

/// Handle to the database; cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    engine: Engine,
    changes: Arc<Notify>,
    due: Arc<Notify>,
    sealer: Arc<Sealer>,
}

impl Store {
    /// Connects to `url` (`sqlite://PATH`, created if missing, or `postgres://…`).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let (engine, url) = normalize_url(url)?;
        if engine == Engine::Sqlite {
            create_private_file(&url)?;
        }
        // One direct attempt first: it reports the real cause (refused, auth, unknown database)
        // where the pool would only say that it timed out.
        let probe = tokio::time::timeout(ACQUIRE_TIMEOUT, AnyConnection::connect(&url))
            .await
            .map_err(|_| StoreError::Unavailable(sqlx::Error::PoolTimedOut))?
            .map_err(StoreError::Unavailable)?;
        let _ = probe.close().await;
        let pool = AnyPoolOptions::new()
            .max_connections(if engine == Engine::Sqlite { 4 } else { 10 })
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect(&url)
            .await
            .map_err(StoreError::Unavailable)?;
        if engine == Engine::Sqlite {
            // WAL lets readers go on while the outbox writes, and is kept in the file.
            sqlx::query("PRAGMA journal_mode=WAL")
                .execute(&pool)
                .await
                .map_err(StoreError::from)?;
        }
        Ok(Self {
            pool,
            engine,
            changes: Arc::new(Notify::new()),
            due: Arc::new(Notify::new()),
            sealer: Arc::new(Sealer::default()),
        })
    }

    /// This store with `sealer` sealing the secrets it writes and opening those it reads.
    pub fn with_sealer(mut self, sealer: Sealer) -> Self {
        self.sealer = Arc::new(sealer);
        self
    }

    /// Rewrites every stored secret that is not sealed with the current key (plaintext, or
    /// sealed with an old key) under the current key, in one transaction; returns how many
    /// values changed. Without a key nothing changes.
    pub async fn reseal_secrets(&self) -> Result<usize, StoreError> {
        if self.sealer.key_id().is_none() {
            return Ok(0);
        }
        let mut tx = self.begin().await?;
        let mut changed = self.reseal_webhooks(&mut tx).await?;
        changed += self.reseal_namespaces(&mut tx).await?;
        tx.commit().await?;
        Ok(changed)
    }

    /// Runs `work` while holding a lock that every process on this store shares (a Postgres
    /// advisory lock named `key`), so that nodes starting together do not both create what one
    /// should. SQLite needs none: its file has one bridge process.
    pub async fn exclusively<T>(
        &self,
        key: i64,
        work: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        if self.engine == Engine::Sqlite {
            return work.await;
        }
        let mut conn = self.pool.acquire().await?;
        // Selected through a subquery: pg_advisory_lock returns `void`, which Any cannot decode.
        sqlx::query("SELECT 1 AS locked FROM (SELECT pg_advisory_lock($1)) AS l")
            .bind(key)
            .execute(&mut *conn)
            .await?;
        let result = work.await;
        sqlx::query("SELECT 1 AS unlocked FROM (SELECT pg_advisory_unlock($1)) AS l")
            .bind(key)
            .execute(&mut *conn)
            .await?;
        result
    }

    /// Applies the embedded migrations of this engine.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let migrator = match self.engine {
            Engine::Postgres => &POSTGRES_MIGRATIONS,
            Engine::Sqlite => &SQLITE_MIGRATIONS,
        };
        let mut conn = self.pool.acquire().await?;
        if self.engine == Engine::Postgres {
            // Postgres sends a NOTICE for each `IF NOT EXISTS` that finds its object (sqlx's own
            // `_sqlx_migrations` on every start after the first), which sqlx logs at INFO. Only
            // warnings and errors are worth a line in the bridge's log.
            sqlx::query("SET client_min_messages TO warning")
                .execute(&mut *conn)
                .await?;
        }
        migrator.run_direct(None, &mut *conn, false).await?;
        if self.engine == Engine::Postgres {
            sqlx::query("RESET client_min_messages")
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }

    /// The engine behind this store.
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// Succeeds when the database answers a query.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The counter every admin write bumps.
    pub async fn catalog_version(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT version FROM catalog_version WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("version")?)
    }

    /// Woken after each write through this handle, so the local catalog reloads at once.
    pub fn changes(&self) -> Arc<Notify> {
        self.changes.clone()
    }

    /// Reads everything the data plane keeps in memory.
    pub async fn load_catalog(&self) -> Result<CatalogSnapshot, StoreError> {
        let version = self.catalog_version().await?;
        let namespaces = self.list_namespaces().await?;
        let webhooks = self.list_webhooks(None).await?;
        let api_keys = self
            .list_api_keys()
            .await?
            .into_iter()
            .filter(|key| key.revoked_at.is_none())
            .collect();
        Ok(CatalogSnapshot {
            version,
            namespaces,
            webhooks,
            api_keys,
        })
    }

    /// The row of `sql` (a `SELECT … WHERE id = $1`) decoded by `decode`, or `missing()`.
    async fn fetch_by_id<T>(
        &self,
        sql: &'static str,
        id: &str,
        decode: impl FnOnce(&AnyRow) -> Result<T, StoreError>,
        missing: impl FnOnce() -> StoreError,
    ) -> Result<T, StoreError> {
        let row = sqlx::query(sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(missing)?;
        decode(&row)
    }

    /// Runs `sql` (a `DELETE … WHERE id = $1`) as a catalog change, or `missing()` when no row matched.
    async fn delete_by_id(
        &self,
        sql: &'static str,
        id: &str,
        missing: impl FnOnce() -> StoreError,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(sql).bind(id).execute(&mut *tx).await?;
        if done.rows_affected() == 0 {
            return Err(missing());
        }
        self.commit_change(tx).await
    }

    /// A write transaction. On SQLite it takes the write lock at `BEGIN IMMEDIATE`, so that
    /// concurrent writers wait for each other (busy timeout) instead of failing with
    /// `database is locked` when a read transaction tries to become a write one.
    async fn begin(&self) -> Result<Transaction<'static, Any>, StoreError> {
        Ok(match self.engine {
            Engine::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Engine::Postgres => self.pool.begin().await?,
        })
    }

    /// The row `select` (plain, and with `FOR UPDATE`) reads by id inside `tx`, locked against
    /// concurrent writers until `tx` ends: `FOR UPDATE` on Postgres; on SQLite `BEGIN IMMEDIATE`
    /// already serializes writers.
    async fn locked_row(
        &self,
        tx: &mut Transaction<'static, Any>,
        (select, select_for_update): (&'static str, &'static str),
        id: &str,
    ) -> Result<Option<AnyRow>, StoreError> {
        let sql = match self.engine {
            Engine::Postgres => select_for_update,
            Engine::Sqlite => select,
        };
        Ok(sqlx::query(sql).bind(id).fetch_optional(&mut **tx).await?)
    }

    /// Bumps the catalog version inside `tx`, commits, and wakes the local catalog.
    async fn commit_change(&self, mut tx: Transaction<'static, Any>) -> Result<(), StoreError> {
        sqlx::query("UPDATE catalog_version SET version = version + 1 WHERE id = 1")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.changes.notify_one();
        Ok(())
    }
}

/// Picks the engine and makes a SQLite file be created when missing.
fn normalize_url(url: &str) -> Result<(Engine, String), StoreError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok((Engine::Postgres, url.to_owned()));
    }
    if url.starts_with("sqlite:") {
        if url.contains("mode=") {
            return Ok((Engine::Sqlite, url.to_owned()));
        }
        let sep = if url.contains('?') { '&' } else { '?' };
        return Ok((Engine::Sqlite, format!("{url}{sep}mode=rwc")));
    }
    Err(StoreError::BadUrl(redact_url(url)))
}

/// Creates a missing SQLite file readable by its owner only (0600), before SQLite creates it with
/// the umask's mode (usually 0644): it holds webhook and JWT secrets. SQLite gives its `-wal` and
/// `-shm` files the database file's mode.
fn create_private_file(url: &str) -> Result<(), StoreError> {
    let path = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:")
        .split('?')
        .next()
        .unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return Ok(());
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(err) => Err(StoreError::Unavailable(sqlx::Error::Io(err))),
    }
}

/// `url` with any password replaced by `***`, fit for logs.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

/// A unique-violation error becomes [`StoreError::Conflict`] with `message`.
fn conflict_on_unique(err: sqlx::Error, message: impl FnOnce() -> String) -> StoreError {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(message()),
        _ => err.into(),
    }
}

/// Decodes a JSON TEXT column.
fn json_column<T: serde::de::DeserializeOwned>(
    row: &AnyRow,
    column: &str,
) -> Result<T, StoreError> {
    let text: String = row.try_get(column)?;
    serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}

/// Encodes a value for a JSON TEXT column.
fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Decodes a 0/1 flag column.
fn flag_column(row: &AnyRow, column: &str) -> Result<bool, StoreError> {
    Ok(row.try_get::<i64, _>(column)? != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_get_create_mode() {
        let (engine, url) = normalize_url("sqlite://bridge.db").unwrap();
        assert_eq!(engine, Engine::Sqlite);
        assert_eq!(url, "sqlite://bridge.db?mode=rwc");
        let (_, url) = normalize_url("sqlite://x.db?mode=ro").unwrap();
        assert_eq!(url, "sqlite://x.db?mode=ro");
        assert!(matches!(
            normalize_url("mysql://x"),
            Err(StoreError::BadUrl(_))
        ));
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact_url("postgres://u:pw@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact_url("sqlite://a.db"), "sqlite://a.db");
    }
}
