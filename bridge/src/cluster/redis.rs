//! The Redis driver of the `socketioxide-redis` adapter.
//!
//! The crate's own driver sits on one multiplexed connection that stays dead once Redis goes
//! away, so a node would leave the cluster for good. This one uses redis-rs's
//! `ConnectionManager`, which reconnects and subscribes again to every channel it had, and a
//! probe that pings once a second keeps [`Health`] true (and drives the reconnection).

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, PushInfo, PushKind};
use socketioxide_redis::drivers::{ChanItem, Driver, MessageStream};
use tokio::sync::mpsc;

use super::Health;

/// How often the probe pings.
const PROBE_EVERY: Duration = Duration::from_secs(1);
/// Longest wait for a connection, and for an answer.
const PATIENCE: Duration = Duration::from_secs(2);
/// Bytes of messages waiting for one adapter stream; more are dropped. (The adapter bounds the
/// count, 1,024; an emit can be 1 MiB, so the count alone allowed a gigabyte per namespace.)
pub const STREAM_BYTES: usize = 64 << 20;

type Handlers = Arc<RwLock<HashMap<String, Route>>>;

/// An adapter stream, and the messages handed to it that it may not have read yet.
struct Route {
    tx: mpsc::Sender<ChanItem>,
    budget: usize,
    unread: Mutex<Unread>,
}

/// Sizes of the messages handed over, oldest first, and their sum.
#[derive(Default)]
struct Unread {
    sizes: VecDeque<usize>,
    bytes: usize,
}

impl Route {
    fn new(tx: mpsc::Sender<ChanItem>, budget: usize) -> Self {
        Self {
            tx,
            budget,
            unread: Mutex::default(),
        }
    }

    /// Hands `item` over unless the stream is full, by count or by bytes, or gone.
    fn offer(&self, item: ChanItem) -> bool {
        let mut unread = self.unread.lock().unwrap_or_else(|e| e.into_inner());
        // The channel says how many wait; the oldest of those handed over were read.
        let waiting = self.tx.max_capacity() - self.tx.capacity();
        let read = unread.sizes.len().saturating_sub(waiting);
        let freed: usize = unread.sizes.drain(..read).sum();
        unread.bytes -= freed;
        let size = item.1.len();
        if unread.bytes + size > self.budget || self.tx.try_send(item).is_err() {
            return false;
        }
        unread.sizes.push_back(size);
        unread.bytes += size;
        true
    }
}

/// Publishes and subscribes over one reconnecting RESP3 connection.
#[derive(Clone)]
pub struct RedisDriver {
    conn: ConnectionManager,
    handlers: Handlers,
}

impl RedisDriver {
    /// Connects to `url` (RESP3 is required by the adapter and added when missing) and starts
    /// the probe that keeps `health` true.
    pub async fn connect(url: &str, health: Arc<Health>) -> redis::RedisResult<Self> {
        let client = redis::Client::open(with_resp3(url))?;
        let handlers: Handlers = Arc::default();
        let routes = handlers.clone();
        let config = ConnectionManagerConfig::new()
            .set_push_sender(move |push: PushInfo| {
                route(push, &routes);
                Ok::<(), Infallible>(())
            })
            .set_automatic_resubscription()
            .set_connection_timeout(Some(PATIENCE))
            .set_response_timeout(Some(PATIENCE))
            .set_number_of_retries(1)
            .set_max_delay(PATIENCE);
        let conn = client.get_connection_manager_with_config(config).await?;
        tokio::spawn(probe(conn.clone(), health));
        Ok(Self { conn, handlers })
    }
}

/// `url` with `protocol=resp3` unless it names a protocol already.
fn with_resp3(url: &str) -> String {
    if url.contains("protocol=") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&protocol=resp3")
    } else {
        format!("{url}?protocol=resp3")
    }
}

/// Hands a published message to the adapter stream subscribed to its channel.
fn route(push: PushInfo, handlers: &Handlers) {
    if push.kind != PushKind::Message {
        return;
    }
    let mut data = push.data.into_iter();
    let (Some(chan), Some(message)) = (data.next(), data.next()) else {
        return;
    };
    let (Ok(chan), Ok(message)) = (
        redis::from_redis_value::<String>(chan),
        redis::from_redis_value::<Vec<u8>>(message),
    ) else {
        return;
    };
    let handlers = handlers.read().unwrap_or_else(|e| e.into_inner());
    if let Some(route) = handlers.get(&chan)
        && !route.offer((chan, message))
    {
        // The adapter's stream is full or gone: dropping beats blocking the connection.
        tracing::warn!("adapter message dropped: its stream is full");
    }
}

/// Pings forever; the first failure marks the node down, the first answer after marks it up.
async fn probe(mut conn: ConnectionManager, health: Arc<Health>) {
    loop {
        let ping = redis::cmd("PING");
        match tokio::time::timeout(PATIENCE, ping.query_async::<String>(&mut conn)).await {
            Ok(Ok(_)) => health.up(),
            Ok(Err(err)) => health.down(format!("redis: {err}")),
            Err(_) => health.down("redis: no answer to PING within 2 s"),
        }
        tokio::time::sleep(PROBE_EVERY).await;
    }
}

/// A driver failure.
#[derive(Debug, thiserror::Error)]
#[error("redis: {0}")]
pub struct RedisError(#[from] redis::RedisError);

impl Driver for RedisDriver {
    type Error = RedisError;

    async fn publish(&self, chan: String, val: Vec<u8>) -> Result<(), Self::Error> {
        self.conn
            .clone()
            .publish::<_, _, redis::Value>(chan, val)
            .await?;
        Ok(())
    }

    async fn subscribe(
        &self,
        chan: String,
        size: usize,
    ) -> Result<MessageStream<ChanItem>, Self::Error> {
        let (tx, rx) = mpsc::channel(size);
        // The route first, so that nothing published right after SUBSCRIBE is missed.
        self.handlers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(chan.clone(), Route::new(tx, STREAM_BYTES));
        self.conn.clone().subscribe(chan.as_str()).await?;
        Ok(MessageStream::new(rx))
    }

    async fn unsubscribe(&self, chan: String) -> Result<(), Self::Error> {
        self.handlers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&chan);
        self.conn.clone().unsubscribe(chan).await?;
        Ok(())
    }

    async fn num_serv(&self, chan: &str) -> Result<u16, Self::Error> {
        let (_, count): (String, u16) = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(chan)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::{Route, mpsc, with_resp3};

    #[tokio::test]
    async fn a_stream_holds_at_most_its_bytes_and_gets_room_back_as_it_reads() {
        let (tx, mut rx) = mpsc::channel(8);
        let route = Route::new(tx, 10);
        let item = |n: usize| ("c".to_owned(), vec![0u8; n]);
        assert!(route.offer(item(4)));
        assert!(route.offer(item(4)));
        assert!(!route.offer(item(4)), "12 bytes would wait");
        assert!(route.offer(item(2)));
        assert_eq!(rx.recv().await.unwrap().1.len(), 4);
        assert!(
            route.offer(item(4)),
            "the read message's bytes are free again"
        );
        assert!(!route.offer(item(1)));
        drop(rx);
        assert!(!route.offer(item(0)), "a dropped stream takes nothing");
    }

    #[tokio::test]
    async fn a_stream_is_bounded_by_count_too() {
        let (tx, _rx) = mpsc::channel(2);
        let route = Route::new(tx, 1 << 20);
        assert!(route.offer(("c".into(), vec![1])));
        assert!(route.offer(("c".into(), vec![1])));
        assert!(!route.offer(("c".into(), vec![1])));
    }

    /// A redis-server of the test's own on a unix socket (no port to race for), killed on drop.
    struct OwnRedis {
        child: std::process::Child,
        dir: std::path::PathBuf,
    }

    impl OwnRedis {
        async fn start() -> Self {
            let dir = std::env::temp_dir()
                .join(format!("bridge-redis-{}", uuid::Uuid::new_v4().simple()));
            std::fs::create_dir_all(&dir).unwrap();
            let child = std::process::Command::new("redis-server")
                .args([
                    "--port",
                    "0",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--unixsocket",
                ])
                .arg(dir.join("redis.sock"))
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("redis-server must be installed for the tests (see README)");
            for _ in 0..100 {
                if dir.join("redis.sock").exists() {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Self { child, dir }
        }

        fn url(&self) -> String {
            format!("redis+unix://{}", self.dir.join("redis.sock").display())
        }
    }

    impl Drop for OwnRedis {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    /// Through a real Redis: a subscribed stream that is never read keeps the first 64 MiB of
    /// 1 MiB messages and drops the rest.
    #[tokio::test]
    async fn a_subscribed_stream_keeps_at_most_stream_bytes_unread() {
        use futures_util::{FutureExt, StreamExt};
        use socketioxide_redis::drivers::Driver;

        let redis = OwnRedis::start().await;
        let health = std::sync::Arc::new(super::Health::default());
        let driver = super::RedisDriver::connect(&redis.url(), health)
            .await
            .expect("connect to the test's redis-server");
        let chan = "bridge-test".to_owned();
        let mut stream = driver.subscribe(chan.clone(), 1024).await.unwrap();
        let message = vec![7u8; 1 << 20];
        for _ in 0..70 {
            driver.publish(chan.clone(), message.clone()).await.unwrap();
        }
        // Redis writes each message to the subscription before the PUBLISH's answer on the same
        // connection, so all 70 were routed once the last answer came.
        let mut kept = 0;
        while let Some(Some((_, got))) = stream.next().now_or_never() {
            assert_eq!(got.len(), 1 << 20);
            kept += 1;
        }
        assert_eq!(
            kept,
            super::STREAM_BYTES >> 20,
            "64 MiB kept, the rest dropped"
        );
        driver.unsubscribe(chan).await.unwrap();
    }

    #[test]
    fn resp3_is_added_unless_a_protocol_is_named() {
        assert_eq!(
            with_resp3("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379?protocol=resp3"
        );
        assert_eq!(
            with_resp3("redis://h/0?timeout=1"),
            "redis://h/0?timeout=1&protocol=resp3"
        );
        assert_eq!(
            with_resp3("redis://h?protocol=resp3"),
            "redis://h?protocol=resp3"
        );
    }
}
