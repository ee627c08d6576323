//! Room changes told to the other nodes.
//!
//! The emit API's `/v1/join` and `/v1/leave` reach other nodes' sockets through the adapter,
//! which changes their rooms without telling the bridge there. So the node that made the change
//! also publishes [`RoomNotice`]s naming those sockets, on the adapter's own service (a Redis
//! channel or a Postgres NOTIFY channel); each node hands the notices about its sockets to its
//! room tracker, which sends the `$join` / `$leave` / occupancy deliveries.

use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use futures_util::{FutureExt, StreamExt};
use serde::{Deserialize, Serialize};

use super::postgres::PgDriver;
use super::redis::RedisDriver;

/// The channel notices travel on (a Redis channel, or a Postgres NOTIFY channel).
pub const CHANNEL: &str = "bridge_rooms";
/// Largest notice, bytes: Postgres refuses NOTIFY payloads of 8000 bytes or more.
pub const MAX_NOTICE: usize = 7000;
/// Notices read ahead of the room tracker.
const BUFFER: usize = 1024;

/// Whether sockets joined or left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RoomOp {
    /// They joined the rooms.
    Join,
    /// They left the rooms.
    Leave,
}

/// Sockets that joined or left rooms by the emit API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomNotice {
    /// The node that made the change (it applied it to its own sockets already).
    pub from: String,
    /// Namespace name.
    pub namespace: String,
    /// Join or leave.
    pub op: RoomOp,
    /// The rooms.
    pub rooms: Vec<String>,
    /// Ids of the sockets.
    pub sockets: Vec<String>,
}

impl RoomNotice {
    /// The notices that together carry `rooms` for `sockets`, each small enough for NOTIFY
    /// (unless one room name alone is over half of [`MAX_NOTICE`]).
    pub fn split(
        from: &str,
        namespace: &str,
        op: RoomOp,
        rooms: &[String],
        sockets: &[String],
    ) -> Vec<RoomNotice> {
        let overhead = from.len() + namespace.len() + 64;
        let half = MAX_NOTICE.saturating_sub(overhead) / 2;
        let mut notices = Vec::new();
        for rooms in groups(rooms, half) {
            for sockets in groups(sockets, half) {
                notices.push(RoomNotice {
                    from: from.to_owned(),
                    namespace: namespace.to_owned(),
                    op,
                    rooms: rooms.to_vec(),
                    sockets: sockets.to_vec(),
                });
            }
        }
        notices
    }
}

/// `items` cut into runs whose JSON takes at most `budget` bytes (an item over it goes alone).
fn groups(items: &[String], budget: usize) -> Vec<&[String]> {
    let mut out = Vec::new();
    let (mut start, mut size) = (0, 0);
    for (idx, item) in items.iter().enumerate() {
        // Quotes, a comma, and room for escapes.
        let cost = item.len() + 3 + item.len() / 8;
        if idx > start && size + cost > budget {
            out.push(&items[start..idx]);
            (start, size) = (idx, 0);
        }
        size += cost;
    }
    if start < items.len() {
        out.push(&items[start..]);
    }
    out
}

/// Publishes room notices to every node.
pub trait RoomBus: Send + Sync {
    /// Sends `notice` to every node subscribed (this one included).
    fn publish(&self, notice: &RoomNotice) -> BoxFuture<'_, Result<(), String>>;
}

/// The notices published by every node, as they arrive.
pub type Notices = BoxStream<'static, RoomNotice>;

fn decode(bytes: &[u8]) -> Option<RoomNotice> {
    serde_json::from_slice(bytes)
        .inspect_err(|err| tracing::warn!(%err, "unreadable room notice ignored"))
        .ok()
}

impl RoomBus for RedisDriver {
    fn publish(&self, notice: &RoomNotice) -> BoxFuture<'_, Result<(), String>> {
        let bytes = serde_json::to_vec(notice).unwrap_or_default();
        async move {
            socketioxide_redis::drivers::Driver::publish(self, CHANNEL.to_owned(), bytes)
                .await
                .map_err(|e| e.to_string())
        }
        .boxed()
    }
}

impl RoomBus for PgDriver {
    fn publish(&self, notice: &RoomNotice) -> BoxFuture<'_, Result<(), String>> {
        let text = serde_json::to_string(notice).unwrap_or_default();
        async move {
            socketioxide_postgres::drivers::Driver::notify(self, CHANNEL, &text)
                .await
                .map_err(|e| e.to_string())
        }
        .boxed()
    }
}

/// Subscribes to the notices on Redis.
pub async fn redis_notices(driver: &RedisDriver) -> Result<Notices, String> {
    let stream = socketioxide_redis::drivers::Driver::subscribe(driver, CHANNEL.to_owned(), BUFFER)
        .await
        .map_err(|e| e.to_string())?;
    Ok(stream
        .filter_map(|(_, bytes)| std::future::ready(decode(&bytes)))
        .boxed())
}

/// Listens for the notices on Postgres.
pub async fn postgres_notices(driver: &PgDriver) -> Result<Notices, String> {
    let stream = socketioxide_postgres::drivers::Driver::listen(driver, &[CHANNEL])
        .await
        .map_err(|e| e.to_string())?;
    Ok(stream
        .filter_map(|n| std::future::ready(decode(n.payload().as_bytes())))
        .boxed())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(prefix: &str, n: usize) -> Vec<String> {
        (0..n).map(|i| format!("{prefix}{i:016}")).collect()
    }

    #[test]
    fn large_changes_are_split_into_notices_notify_accepts() {
        let rooms = names("room-", 300);
        let sockets = names("", 2000);
        let notices = RoomNotice::split("node-1", "/chat", RoomOp::Join, &rooms, &sockets);
        assert!(notices.len() > 1);
        for notice in &notices {
            assert!(serde_json::to_vec(notice).unwrap().len() < MAX_NOTICE);
        }
        // Every (room, socket) pair is carried exactly once.
        let pairs: usize = notices
            .iter()
            .map(|n| n.rooms.len() * n.sockets.len())
            .sum();
        assert_eq!(pairs, rooms.len() * sockets.len());
    }

    #[test]
    fn a_small_change_is_one_notice() {
        let notices = RoomNotice::split(
            "n",
            "/",
            RoomOp::Leave,
            &["a".into()],
            &["s1".into(), "s2".into()],
        );
        assert_eq!(notices.len(), 1);
        let json = serde_json::to_value(&notices[0]).unwrap();
        assert_eq!(json["op"], "leave");
    }
}
