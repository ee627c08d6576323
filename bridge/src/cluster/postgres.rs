//! The Postgres driver of the `socketioxide-postgres` adapter.
//!
//! The crate's sqlx driver turns its `PgListener` into a stream that ends at the first error
//! (a `pg_terminate_backend`, a failover), after which the namespace hears nothing from the other
//! nodes again, and holds a connection per namespace. This driver keeps the crate's NOTIFY and
//! attachment queries and replaces the listening side with [`Listening`]: one connection for
//! every namespace, listened again after any loss.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use socketioxide_postgres::drivers::Driver;
use socketioxide_postgres::drivers::sqlx::SqlxDriver;
use sqlx::postgres::{PgConnectOptions, PgNotification, PgPoolOptions};

use super::Health;
use super::pg_listener::Listening;

/// Connections for NOTIFY, heartbeats and attachments (the listener has one of its own).
const POOL_SIZE: u32 = 4;
/// Longest wait for a connection from the pool.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// NOTIFY through a small pool; LISTEN on one connection that comes back.
#[derive(Clone)]
pub struct PgDriver {
    queries: SqlxDriver,
    listening: Listening,
}

impl PgDriver {
    /// Connects to `url`; the connections are named `bridge adapter <node>` in
    /// `pg_stat_activity`.
    pub async fn connect(url: &str, node_id: &str, health: Arc<Health>) -> sqlx::Result<Self> {
        let options =
            PgConnectOptions::from_str(url)?.application_name(&format!("bridge adapter {node_id}"));
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .acquire_timeout(CONNECT_TIMEOUT)
            // The crate's `CREATE TABLE IF NOT EXISTS` of its attachments table makes Postgres
            // send a NOTICE on every node start after the first, which sqlx logs at INFO.
            .after_connect(|conn, _| {
                Box::pin(async move {
                    sqlx::Executor::execute(conn, "SET client_min_messages TO warning").await?;
                    Ok(())
                })
            })
            .connect_with(options.clone())
            .await?;
        Ok(Self {
            queries: SqlxDriver::new(pool),
            listening: Listening::start(options, health),
        })
    }
}

impl Driver for PgDriver {
    type Error = sqlx::Error;
    type Notification = PgNotification;
    type NotificationStream = BoxStream<'static, PgNotification>;

    async fn init(&self, table: &str) -> Result<(), Self::Error> {
        self.queries.init(table).await
    }

    async fn listen(&self, channels: &[&str]) -> Result<Self::NotificationStream, Self::Error> {
        let rx = self.listening.listen(channels).await?;
        let stream =
            futures_util::stream::unfold(
                rx,
                |mut rx| async move { rx.recv().await.map(|n| (n, rx)) },
            );
        Ok(stream.boxed())
    }

    async fn notify(&self, channel: &str, message: &str) -> Result<(), Self::Error> {
        // A failure reaches the caller (an emit answers 503); health follows the listeners.
        self.queries.notify(channel, message).await
    }

    async fn push_attachment(&self, table: &str, attachment: &[u8]) -> Result<i64, Self::Error> {
        self.queries.push_attachment(table, attachment).await
    }

    async fn get_attachment(&self, table: &str, id: i64) -> Result<Vec<u8>, Self::Error> {
        self.queries.get_attachment(table, id).await
    }

    async fn cleanup_attachments(
        &self,
        table: &str,
        interval: Duration,
    ) -> Result<(), Self::Error> {
        self.queries.cleanup_attachments(table, interval).await
    }

    async fn close(&self, _channels: &[&str]) -> Result<(), Self::Error> {
        // The listener stops listening to a channel once the adapter has dropped its stream.
        Ok(())
    }
}
