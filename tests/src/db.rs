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

/// Creates an empty database and returns its URL.
pub async fn fresh_database(engine: Engine) -> String {
    let name = format!("bridge_test_{}", uuid::Uuid::new_v4().simple());
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
