//! The Postgres driver of the `socketioxide-postgres` adapter.
//!
//! The crate's sqlx driver turns its `PgListener` into a stream that ends at the first error
//! (a `pg_terminate_backend`, a failover), after which the namespace hears nothing from the other
//! nodes again. This driver keeps the crate's NOTIFY and attachment queries and replaces the
//! listening side: a task that reconnects and listens again after any loss, and tells [`Health`].

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use socketioxide_postgres::drivers::Driver;
use socketioxide_postgres::drivers::sqlx::SqlxDriver;
use sqlx::postgres::{PgConnectOptions, PgListener, PgNotification, PgPoolOptions};
use tokio::sync::mpsc;

use super::Health;

/// Notifications read ahead of the adapter.
const BUFFER: usize = 1024;
/// Pause between two attempts to listen again.
const RETRY_EVERY: Duration = Duration::from_millis(250);
/// Connections for NOTIFY, heartbeats and attachments (each listener has one of its own).
const POOL_SIZE: u32 = 4;
/// Longest wait for a connection, from the pool or for a listener.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// NOTIFY through a small pool; LISTEN on connections that come back.
#[derive(Clone)]
pub struct PgDriver {
    queries: SqlxDriver,
    listen_options: PgConnectOptions,
    health: Arc<Health>,
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
            .connect_with(options.clone())
            .await?;
        Ok(Self {
            queries: SqlxDriver::new(pool),
            listen_options: options,
            health,
        })
    }
}

/// A listener on a connection of its own (a pool of one, as `PgListener::connect` makes). A
/// listener holds its connection for as long as it listens: taken from the shared pool, a few
/// namespaces' listeners would leave NOTIFY no connection at all.
async fn listener(options: &PgConnectOptions, channels: &[String]) -> sqlx::Result<PgListener> {
    let own = PgPoolOptions::new()
        .max_connections(1)
        .max_lifetime(None)
        .idle_timeout(None)
        .acquire_timeout(CONNECT_TIMEOUT)
        .connect_with(options.clone())
        .await?;
    let mut listener = PgListener::connect_with(&own).await?;
    listener
        .listen_all(channels.iter().map(String::as_str))
        .await?;
    Ok(listener)
}

/// Forwards notifications to the adapter until it goes away; listens again after any loss.
async fn pump(
    mut listener: PgListener,
    options: PgConnectOptions,
    channels: Vec<String>,
    tx: mpsc::Sender<PgNotification>,
    health: Arc<Health>,
) {
    loop {
        let received = tokio::select! {
            () = tx.closed() => return,
            received = listener.try_recv() => received,
        };
        let reason = match received {
            Ok(Some(notification)) => {
                if tx.send(notification).await.is_err() {
                    return;
                }
                continue;
            }
            Ok(None) => "the listening connection was closed".to_owned(),
            Err(err) => err.to_string(),
        };
        health.listener_lost(format!("postgres adapter: {reason}"));
        listener = loop {
            if tx.is_closed() {
                health.listener_back();
                return;
            }
            match self::listener(&options, &channels).await {
                Ok(listener) => break listener,
                Err(err) => health.down(format!("postgres adapter: {err}")),
            }
            tokio::time::sleep(RETRY_EVERY).await;
        };
        health.listener_back();
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
        let channels: Vec<String> = channels.iter().map(|c| (*c).to_owned()).collect();
        let first = listener(&self.listen_options, &channels).await?;
        let (tx, rx) = mpsc::channel(BUFFER);
        tokio::spawn(pump(
            first,
            self.listen_options.clone(),
            channels,
            tx,
            self.health.clone(),
        ));
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
        // Each `listen` has its own connection, closed when the adapter drops its stream.
        Ok(())
    }
}
