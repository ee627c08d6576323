//! The one LISTEN connection of a node's Postgres adapter, shared by every namespace.
//!
//! `socketioxide-postgres` asks its driver for a notification stream per namespace (three
//! channels each) and the room notices want one more. A connection per stream made a node hold
//! one Postgres connection per namespace: a hundred namespaces on two nodes were past a server's
//! default `max_connections` of 100. Here one task owns one `PgListener`, LISTENs on every
//! channel asked for, and hands each notification to the stream of its channel. After any loss
//! it connects again, LISTENs on every channel again, and tells [`Health`].
//!
//! A stream takes notifications in order, up to [`BUFFER`] ahead of its adapter. One that falls
//! further behind holds up the others until it catches up: its adapter handles requests in
//! order, fetching attachments through the query pool, so it does not wait on this task.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgNotification, PgPoolOptions};
use tokio::sync::{mpsc, oneshot};

use super::Health;

/// Notifications read ahead of each stream's adapter.
pub const BUFFER: usize = 1024;
/// Pause between two attempts to listen again.
const RETRY_EVERY: Duration = Duration::from_millis(250);
/// Longest wait for the listening connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// `listen` calls waiting for the task (namespaces being set up at once).
const COMMANDS: usize = 64;

/// Handle to the listening task; the task ends when every handle is dropped.
#[derive(Clone)]
pub struct Listening {
    commands: mpsc::Sender<Listen>,
}

/// A stream asks for `channels`.
struct Listen {
    channels: Vec<String>,
    tx: mpsc::Sender<PgNotification>,
    done: oneshot::Sender<sqlx::Result<()>>,
}

impl Listening {
    /// Starts the task; it connects at the first `listen`.
    pub fn start(options: PgConnectOptions, health: Arc<Health>) -> Self {
        let (commands, rx) = mpsc::channel(COMMANDS);
        tokio::spawn(run(rx, options, health));
        Self { commands }
    }

    /// The notifications of `channels`, once they are listened to. While the connection is
    /// down they are taken on and listened to when it is back.
    pub async fn listen(&self, channels: &[&str]) -> sqlx::Result<mpsc::Receiver<PgNotification>> {
        let (tx, rx) = mpsc::channel(BUFFER);
        let (done, answer) = oneshot::channel();
        let command = Listen {
            channels: channels.iter().map(|c| (*c).to_owned()).collect(),
            tx,
            done,
        };
        let gone = || sqlx::Error::Io(std::io::Error::other("the adapter's listener stopped"));
        self.commands.send(command).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())??;
        Ok(rx)
    }
}

/// Where the listening connection stands.
enum Conn {
    /// Nothing asked for yet.
    Idle,
    /// Listening.
    Up(PgListener),
    /// Lost; connecting again.
    Down,
}

/// What the connection did.
enum Event {
    Notification(PgNotification),
    Lost(String),
    Back(PgListener),
    Failed(String),
}

/// Each channel's stream (a namespace's three channels share one).
#[derive(Default)]
struct Routes(HashMap<String, mpsc::Sender<PgNotification>>);

impl Routes {
    fn add(&mut self, channels: Vec<String>, tx: &mpsc::Sender<PgNotification>) {
        for channel in channels {
            // A namespace made again replaces the stream of the one deleted.
            self.0.insert(channel, tx.clone());
        }
    }

    fn channels(&self) -> Vec<String> {
        self.0.keys().cloned().collect()
    }

    /// Forgets the streams that were dropped; returns their channels.
    fn prune(&mut self) -> Vec<String> {
        let closed: Vec<String> = self
            .0
            .iter()
            .filter(|(_, tx)| tx.is_closed())
            .map(|(channel, _)| channel.clone())
            .collect();
        for channel in &closed {
            self.0.remove(channel);
        }
        closed
    }

    /// Hands `notification` to its stream; returns its channel if that stream was dropped.
    async fn deliver(&mut self, notification: PgNotification) -> Option<String> {
        let tx = self.0.get(notification.channel())?;
        // The notification comes back with the error: no copy of its channel per delivery.
        let mpsc::error::SendError(returned) = tx.send(notification).await.err()?;
        let channel = returned.channel().to_owned();
        self.0.remove(&channel);
        Some(channel)
    }
}

async fn run(mut commands: mpsc::Receiver<Listen>, options: PgConnectOptions, health: Arc<Health>) {
    let mut routes = Routes::default();
    let mut conn = Conn::Idle;
    loop {
        tokio::select! {
            command = commands.recv() => {
                let Some(command) = command else { return };
                conn = on_listen(conn, &mut routes, command, &options, &health).await;
            }
            event = next(&mut conn, &routes, &options) => {
                conn = on_event(conn, &mut routes, event, &health).await;
            }
        }
    }
}

/// Waits for what the connection does next (cancel-safe: sqlx's `try_recv` keeps a partly read
/// message in its buffer, and an attempt to connect is simply made again).
async fn next(conn: &mut Conn, routes: &Routes, options: &PgConnectOptions) -> Event {
    match conn {
        Conn::Idle => std::future::pending().await,
        Conn::Up(listener) => match listener.try_recv().await {
            Ok(Some(notification)) => Event::Notification(notification),
            Ok(None) => Event::Lost("the listening connection was closed".to_owned()),
            Err(err) => Event::Lost(err.to_string()),
        },
        Conn::Down => {
            tokio::time::sleep(RETRY_EVERY).await;
            match connect(options, &routes.channels()).await {
                Ok(listener) => Event::Back(listener),
                Err(err) => Event::Failed(err.to_string()),
            }
        }
    }
}

async fn on_event(conn: Conn, routes: &mut Routes, event: Event, health: &Health) -> Conn {
    match event {
        Event::Notification(notification) => {
            let mut conn = conn;
            if let Some(dropped) = routes.deliver(notification).await {
                unlisten(&mut conn, &[dropped]).await;
            }
            conn
        }
        Event::Lost(reason) | Event::Failed(reason) => {
            health.down(format!("postgres adapter: {reason}"));
            Conn::Down
        }
        Event::Back(listener) => {
            health.up();
            Conn::Up(listener)
        }
    }
}

async fn on_listen(
    mut conn: Conn,
    routes: &mut Routes,
    command: Listen,
    options: &PgConnectOptions,
    health: &Health,
) -> Conn {
    let gone = routes.prune();
    unlisten(&mut conn, &gone).await;
    let Listen { channels, tx, done } = command;
    let (conn, result) = match conn {
        Conn::Idle => match connect(options, &channels).await {
            Ok(listener) => (Conn::Up(listener), Ok(())),
            Err(err) => (Conn::Idle, Err(err)),
        },
        Conn::Up(mut listener) => {
            match listener
                .listen_all(channels.iter().map(String::as_str))
                .await
            {
                Ok(()) => (Conn::Up(listener), Ok(())),
                Err(err) => {
                    health.down(format!("postgres adapter: {err}"));
                    // Taken on: listened to with the others once the connection is back.
                    (Conn::Down, Ok(()))
                }
            }
        }
        Conn::Down => (Conn::Down, Ok(())),
    };
    if result.is_ok() {
        routes.add(channels, &tx);
    }
    let _ = done.send(result);
    conn
}

/// Stops listening to channels no stream wants; a failure shows on the next read.
async fn unlisten(conn: &mut Conn, channels: &[String]) {
    if let Conn::Up(listener) = conn {
        for channel in channels {
            let _ = listener.unlisten(channel).await;
        }
    }
}

/// A listener on a connection of its own (a pool of one, as `PgListener::connect` makes): held
/// for as long as it listens, it must not come from the pool NOTIFY uses.
async fn connect(options: &PgConnectOptions, channels: &[String]) -> sqlx::Result<PgListener> {
    let own = PgPoolOptions::new()
        .max_connections(1)
        .max_lifetime(None)
        .idle_timeout(None)
        .acquire_timeout(CONNECT_TIMEOUT)
        .connect_with(options.clone())
        .await?;
    let mut listener = PgListener::connect_with(&own).await?;
    // A lost connection is replaced by `next`; sqlx's own reconnection would only be dropped.
    listener.eager_reconnect(false);
    listener
        .listen_all(channels.iter().map(String::as_str))
        .await?;
    Ok(listener)
}
