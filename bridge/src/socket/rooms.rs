//! Room lifecycle: which application rooms this node's sockets are in, and the `$join`,
//! `$leave`, `$room_occupied` and `$room_vacated` deliveries about them.
//!
//! Every join and leave of this node's sockets goes through [`RoomTracker`]: `$connect` rooms,
//! webhook replies, the emit API (for other nodes' sockets through a
//! [`RoomNotice`]) and disconnects. socketioxide's adapters
//! change rooms without telling anyone, so the tracker keeps its own count of this node's
//! sockets per room; occupancy is therefore per node (documented in `docs/webhooks.md`).
//!
//! A room's deliveries go through one of [`ROOM_QUEUES`] queues chosen by the room's name, so
//! each webhook receives a room's changes in the order they happened.

use std::collections::{HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Mutex, MutexGuard};

use admin_api::model::EventPattern;
use socketioxide::adapter::Adapter;
use socketioxide::extract::SocketRef;
use socketioxide_core::Sid;

use super::Gateway;
use super::forward::socket_info;
use super::session::{INERT_ROOM, Session};
use crate::cluster::bus::{RoomNotice, RoomOp};
use crate::cluster::is_node_room;
use crate::webhook::body::{RoomBody, RoomChange};
use crate::webhook::{Job, Message, Mode, SocketQueues, message_id};

/// Queues room deliveries are spread over (per webhook); a room always uses the same one.
pub const ROOM_QUEUES: usize = 64;
/// Prefix of the room each socket of a user is in (made by the bridge, not tracked).
pub const USER_ROOM_PREFIX: &str = "user:";
/// Longest room name in bytes (as for event names); a join of a longer one is refused. Room
/// changes travel between nodes in one `NOTIFY` of at most 8,000 bytes on Postgres.
pub const MAX_ROOM_NAME_BYTES: usize = 256;
/// Most application rooms a socket is in at once; joins past it are refused.
pub const MAX_ROOMS_PER_SOCKET: usize = 1_000;
/// Pauses before [`keep_out_later`] looks again (the second after the first).
const RECHECKS: [std::time::Duration; 2] = [
    std::time::Duration::from_millis(250),
    std::time::Duration::from_secs(2),
];

/// One room change of one socket, as announced.
struct Change<'a> {
    room: &'a str,
    /// Sockets of this node in the room after the change.
    node_sockets: usize,
    /// The socket's disconnect reason, when the change is its disconnect.
    disconnect: Option<&'a str>,
}

/// This node's sockets per application room, and the queues of the rooms' deliveries.
pub struct RoomTracker {
    /// (namespace, room) → sockets of this node in it; a room leaves the map when empty.
    occupancy: Mutex<HashMap<(String, String), usize>>,
    queues: Box<[SocketQueues]>,
}

impl Default for RoomTracker {
    fn default() -> Self {
        Self {
            occupancy: Mutex::default(),
            queues: (0..ROOM_QUEUES).map(|_| SocketQueues::default()).collect(),
        }
    }
}

/// Whether the bridge made `room` for `socket` itself: its id room, its user room, its node
/// room and the room of sockets not yet authenticated. Those are never tracked.
pub fn is_bridge_room(room: &str, socket_id: &str) -> bool {
    room == socket_id
        || room == INERT_ROOM
        || room.starts_with(USER_ROOM_PREFIX)
        || is_node_room(room)
}

impl RoomTracker {
    /// Makes `socket` join or leave `rooms`, and announces the application rooms it was not in
    /// yet (join) or was in (leave). Returns the rooms of a join refused for the socket's room
    /// limit.
    pub fn change<A: Adapter>(
        &self,
        gateway: &Gateway<A>,
        socket: &SocketRef<A>,
        op: RoomOp,
        rooms: Vec<String>,
    ) -> HashSet<String> {
        let mut rooms = rooms;
        if op == RoomOp::Join {
            let long = take_long_names(&mut rooms);
            refuse(socket, long, "name_too_long");
        }
        if rooms.is_empty() {
            return HashSet::new();
        }
        let Some(session) = socket.extensions.get::<Session>() else {
            match op {
                RoomOp::Join => socket.join(rooms),
                RoomOp::Leave => socket.leave(rooms),
            }
            return HashSet::new();
        };
        let occupancy = self.lock();
        let tracked = app_rooms(&rooms, socket);
        match op {
            RoomOp::Join => {
                let joined = session.track_join(tracked, MAX_ROOMS_PER_SOCKET);
                if !joined.over_limit.is_empty() {
                    rooms.retain(|room| !joined.over_limit.contains(room));
                }
                socket.join(rooms);
                refuse(socket, joined.over_limit.clone(), "socket_room_limit");
                self.joined(gateway, socket, &session, occupancy, joined.added);
                joined.over_limit
            }
            RoomOp::Leave => {
                let removed = session.track_leave(tracked);
                socket.leave(rooms);
                self.left(gateway, socket, &session, occupancy, removed, None);
                HashSet::new()
            }
        }
    }

    /// Announces that a disconnecting socket left every room it was in; later joins of it are
    /// ignored.
    pub fn disconnect<A: Adapter>(
        &self,
        gateway: &Gateway<A>,
        socket: &SocketRef<A>,
        session: &Session,
        reason: &str,
    ) {
        let occupancy = self.lock();
        let removed = session.track_close();
        self.left(gateway, socket, session, occupancy, removed, Some(reason));
    }

    fn joined<A: Adapter>(
        &self,
        gateway: &Gateway<A>,
        socket: &SocketRef<A>,
        session: &Session,
        mut occupancy: MutexGuard<'_, HashMap<(String, String), usize>>,
        added: Vec<String>,
    ) {
        for room in added {
            let count = occupancy
                .entry((session.namespace().to_owned(), room.clone()))
                .or_insert(0);
            *count += 1;
            let count = *count;
            let change = Change {
                room: &room,
                node_sockets: count,
                disconnect: None,
            };
            if count == 1 {
                self.announce(gateway, socket, session, RoomChange::RoomOccupied, &change);
            }
            self.announce(gateway, socket, session, RoomChange::Join, &change);
        }
    }

    fn left<A: Adapter>(
        &self,
        gateway: &Gateway<A>,
        socket: &SocketRef<A>,
        session: &Session,
        mut occupancy: MutexGuard<'_, HashMap<(String, String), usize>>,
        removed: Vec<String>,
        disconnect: Option<&str>,
    ) {
        for room in removed {
            let key = (session.namespace().to_owned(), room);
            let count = occupancy.get_mut(&key).map_or(0, |count| {
                *count = count.saturating_sub(1);
                *count
            });
            if count == 0 {
                occupancy.remove(&key);
            }
            let room = key.1;
            let change = Change {
                room: &room,
                node_sockets: count,
                disconnect,
            };
            self.announce(gateway, socket, session, RoomChange::Leave, &change);
            if count == 0 {
                self.announce(gateway, socket, session, RoomChange::RoomVacated, &change);
            }
        }
    }

    /// Queues a delivery of `change` to every webhook of the namespace that asked for it.
    /// Called with the occupancy lock held, so a room's deliveries are queued in order.
    fn announce<A: Adapter>(
        &self,
        gateway: &Gateway<A>,
        socket: &SocketRef<A>,
        session: &Session,
        kind: RoomChange,
        change: &Change<'_>,
    ) {
        let Some(entry) = gateway.catalog.namespace(session.namespace()) else {
            return;
        };
        let pattern = pattern_of(kind);
        let mut subs = entry
            .subscriptions
            .iter()
            .filter(|sub| sub.wants_lifecycle(&pattern))
            .peekable();
        if subs.peek().is_none() {
            return;
        }
        let about_socket = matches!(kind, RoomChange::Join | RoomChange::Leave);
        let body = RoomBody {
            change: kind,
            namespace: session.namespace().to_owned(),
            room: change.room.to_owned(),
            node: gateway.cluster.node_id.to_string(),
            node_sockets: change.node_sockets,
            socket: about_socket.then(|| socket_info(&gateway.cluster, socket, session)),
            reason: change.disconnect.map(str::to_owned),
            timestamp: admin_api::model::Timestamp::now().to_rfc3339(),
        };
        let bytes = bytes::Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
        let room = change.room;
        let queues = &self.queues[queue_of(session.namespace(), room)];
        for sub in subs {
            let job = Job {
                webhook: sub.webhook.clone(),
                message: Message {
                    id: message_id(),
                    event: kind.event_name().to_owned(),
                    body: bytes.clone(),
                },
                mode: Mode::Retry,
                on_done: None,
                durable: None,
            };
            let socket_id = about_socket.then_some(socket.id.as_str());
            if let Err(why) = gateway.dispatcher.submit(queues, job, socket_id, None) {
                tracing::warn!(room, webhook = %sub.webhook.id, event = kind.event_name(), %why, "room delivery refused");
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<(String, String), usize>> {
        self.occupancy.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<A: Adapter> Gateway<A> {
    /// Makes the sockets `ids` of `namespace` (on any node) join or leave `rooms`: this node's
    /// through the tracker; the others' through the adapter (so the change stays in order with
    /// later emits) and a [`RoomNotice`] for their trackers.
    pub async fn change_rooms(
        &self,
        namespace: &str,
        op: RoomOp,
        rooms: Vec<String>,
        ids: Vec<Sid>,
    ) -> Result<(), String> {
        let Some(ops) = self.io.of(namespace) else {
            return Ok(());
        };
        let mut remote = Vec::new();
        for sid in ids {
            match ops.get_socket(sid) {
                Some(socket) => {
                    self.rooms.change(self, &socket, op, rooms.clone());
                }
                None => remote.push(sid.to_string()),
            }
        }
        if remote.is_empty() {
            return Ok(());
        }
        let targets = ops.to(remote.clone());
        match op {
            RoomOp::Join => targets.join(rooms.clone()).await,
            RoomOp::Leave => targets.leave(rooms.clone()).await,
        }
        .map_err(|err| err.to_string())?;
        if let Some(bus) = &self.bus {
            let from = &self.cluster.node_id;
            for notice in RoomNotice::split(from, namespace, op, &rooms, &remote) {
                bus.publish(&notice).await?;
            }
        }
        Ok(())
    }
}

/// The rooms of `rooms` the tracker counts (not the bridge's own); the session drops repeats.
fn app_rooms<A: Adapter>(rooms: &[String], socket: &SocketRef<A>) -> Vec<String> {
    let id = socket.id.as_str();
    rooms
        .iter()
        .filter(|room| !is_bridge_room(room, id))
        .cloned()
        .collect()
}

/// Keeps `socket` out of `rooms` (refused for its room limit when another node's join was
/// announced) a while longer: that node's adapter joins the socket on a channel of its own and
/// may do so after the announcement was handled here. A room the socket has joined since (it
/// left others) is tracked, and kept.
pub fn keep_out_later<A: Adapter>(socket: SocketRef<A>, rooms: HashSet<String>) {
    tokio::spawn(async move {
        for wait in RECHECKS {
            tokio::time::sleep(wait).await;
            let Some(session) = socket.extensions.get::<Session>() else {
                return;
            };
            let untracked: Vec<String> = rooms
                .iter()
                .filter(|room| !session.tracks(room))
                .cloned()
                .collect();
            if !untracked.is_empty() {
                socket.leave(untracked);
            }
        }
    });
}

/// Takes the names over [`MAX_ROOM_NAME_BYTES`] out of `rooms`.
fn take_long_names(rooms: &mut Vec<String>) -> HashSet<String> {
    let mut long = HashSet::new();
    rooms.retain(|room| {
        let fits = room.len() <= MAX_ROOM_NAME_BYTES;
        if !fits {
            long.insert(room.clone());
        }
        fits
    });
    long
}

/// Keeps `socket` out of `refused` rooms and says so. It may be in them already: a join made on
/// another node goes through the adapter before its notice reaches this node's tracker.
fn refuse<A: Adapter>(socket: &SocketRef<A>, refused: HashSet<String>, reason: &'static str) {
    if refused.is_empty() {
        return;
    }
    let count = refused.len();
    socket.leave(refused.into_iter().collect::<Vec<_>>());
    metrics::counter!(crate::metrics::ROOM_JOINS_REFUSED, "reason" => reason)
        .increment(count as u64);
    tracing::warn!(
        socket = %socket.id,
        namespace = socket.ns(),
        refused = count,
        reason,
        "room joins refused (names of at most {MAX_ROOM_NAME_BYTES} bytes, at most {MAX_ROOMS_PER_SOCKET} rooms per socket)"
    );
}

fn pattern_of(change: RoomChange) -> EventPattern {
    match change {
        RoomChange::RoomOccupied => EventPattern::RoomOccupied,
        RoomChange::RoomVacated => EventPattern::RoomVacated,
        RoomChange::Join => EventPattern::Join,
        RoomChange::Leave => EventPattern::Leave,
    }
}

/// The queue of a room's deliveries.
fn queue_of(namespace: &str, room: &str) -> usize {
    let mut hasher = DefaultHasher::new();
    (namespace, room).hash(&mut hasher);
    (hasher.finish() % ROOM_QUEUES as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bridge_rooms_are_not_tracked() {
        assert!(is_bridge_room("abc", "abc"));
        assert!(is_bridge_room("user:alice", "abc"));
        assert!(is_bridge_room("node:n1", "abc"));
        assert!(is_bridge_room(INERT_ROOM, "abc"));
        assert!(!is_bridge_room("lobby", "abc"));
        assert!(!is_bridge_room("other-socket-id", "abc"));
    }

    #[test]
    fn long_names_are_taken_out() {
        let fits = "r".repeat(MAX_ROOM_NAME_BYTES);
        let long = "r".repeat(MAX_ROOM_NAME_BYTES + 1);
        let mut rooms = vec![fits.clone(), long.clone(), "a".into()];
        assert_eq!(take_long_names(&mut rooms), HashSet::from([long]));
        assert_eq!(rooms, vec![fits, "a".to_owned()]);
    }

    #[test]
    fn a_room_always_uses_the_same_queue() {
        assert_eq!(queue_of("/chat", "lobby"), queue_of("/chat", "lobby"));
        assert!(queue_of("/chat", "lobby") < ROOM_QUEUES);
    }
}
