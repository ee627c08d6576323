//! A fresh database per test: a new SQLite file, or a new Postgres database.

use sqlx::{Connection, Executor, PgConnection};

/// Which store engine a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// A new SQLite file in the temp directory.
    Sqlite,
    /// A new database on the local Postgres (`TEST_POSTGRES_URL`).
    Postgres,
}

/// Server URL the Postgres test databases are created on.
pub fn postgres_server_url() -> String {
    std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// The run's tag in database names: `BRIDGE_TEST_RUN` (scripts/test sets `<epoch>_<pid>`), else this
/// process's own, so that a run drops only its own databases and never another run's.
fn run_tag() -> String {
    std::env::var("BRIDGE_TEST_RUN").unwrap_or_else(|_| {
        let epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        format!("{epoch}_{}", std::process::id())
    })
}

/// Creates an empty database and returns its URL.
pub async fn fresh_database(engine: Engine) -> String {
    let unique = uuid::Uuid::new_v4().simple().to_string();
    let name = format!("bridge_test_{}_{}", run_tag(), &unique[..16]);
    match engine {
        Engine::Sqlite => {
            let path = std::env::temp_dir().join(format!("{name}.db"));
            format!("sqlite://{}", path.display())
        }
        Engine::Postgres => {
            let server = postgres_server_url();
            let mut conn = PgConnection::connect(&server)
                .await
                .expect("Postgres must be running for the tests (see README)");
            conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .await
                .expect("create test database");
            let base = server.rsplit_once('/').map_or(server.as_str(), |(b, _)| b);
            format!("{base}/{name}")
        }
    }
}
