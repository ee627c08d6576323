//! Per-socket state, kept in the socket's extensions.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub use crate::rate::RateLimit;
use crate::rate::TokenBucket;

use crate::webhook::body::Handshake;
use crate::webhook::{Reply, SocketQueues};

/// Room every socket that is not (yet) authenticated is in; emits leave it out.
pub const INERT_ROOM: &str = "$inert";

/// Everything the bridge knows of one socket.
#[derive(Clone)]
pub struct Session(Arc<Inner>);

struct Inner {
    namespace: String,
    handshake: Handshake,
    user_id: Mutex<Option<String>>,
    claim_rooms: Mutex<Vec<String>>,
    active: AtomicBool,
    /// Admitted with its identity settled (no `authenticate` needed).
    ready: AtomicBool,
    /// Set once `connected` was counted, so `disconnected` is counted once too.
    counted: AtomicBool,
    connect_reply: Mutex<Option<Reply>>,
    limiter: Mutex<TokenBucket>,
    queues: SocketQueues,
    /// Sequence number of the last body about this socket (`connect` is 0).
    seq: AtomicU64,
    /// The application rooms it is in as the room tracker counts them; `None` once it left.
    rooms: Mutex<Option<HashSet<String>>>,
}

impl Session {
    /// A new, inactive session.
    pub fn new(namespace: &str, handshake: Handshake, rate: RateLimit) -> Self {
        Self(Arc::new(Inner {
            namespace: namespace.to_owned(),
            handshake,
            user_id: Mutex::new(None),
            claim_rooms: Mutex::new(Vec::new()),
            active: AtomicBool::new(false),
            ready: AtomicBool::new(false),
            counted: AtomicBool::new(false),
            connect_reply: Mutex::new(None),
            limiter: Mutex::new(TokenBucket::new(rate)),
            queues: SocketQueues::default(),
            seq: AtomicU64::new(0),
            rooms: Mutex::new(Some(HashSet::new())),
        }))
    }

    /// Namespace name.
    pub fn namespace(&self) -> &str {
        &self.0.namespace
    }

    /// What the client sent at the handshake.
    pub fn handshake(&self) -> &Handshake {
        &self.0.handshake
    }

    /// The user id, once known.
    pub fn user_id(&self) -> Option<String> {
        lock(&self.0.user_id).clone()
    }

    /// Sets the user id (from `sub`, or a `$connect` reply).
    pub fn set_user_id(&self, user_id: Option<String>) {
        *lock(&self.0.user_id) = user_id;
    }

    /// Rooms from the token's `rooms` claim.
    pub fn claim_rooms(&self) -> Vec<String> {
        lock(&self.0.claim_rooms).clone()
    }

    /// Records the token's `rooms` claim.
    pub fn set_claim_rooms(&self, rooms: Vec<String>) {
        *lock(&self.0.claim_rooms) = rooms;
    }

    /// Whether its events are forwarded and emits reach it.
    pub fn is_active(&self) -> bool {
        self.0.active.load(Ordering::Acquire)
    }

    /// Marks it admitted with its identity settled.
    pub fn mark_ready(&self) {
        self.0.ready.store(true, Ordering::Release);
    }

    /// Whether it was admitted with its identity settled.
    pub fn is_ready(&self) -> bool {
        self.0.ready.load(Ordering::Acquire)
    }

    /// Marks it active.
    pub fn activate(&self) {
        self.0.active.store(true, Ordering::Release);
    }

    /// True the first time only: whether this call should count the connection.
    pub fn mark_counted(&self) -> bool {
        !self.0.counted.swap(true, Ordering::AcqRel)
    }

    /// Whether the connection was counted.
    pub fn was_counted(&self) -> bool {
        self.0.counted.load(Ordering::Acquire)
    }

    /// Keeps a `$connect` reply to apply once the socket is connected.
    pub fn set_connect_reply(&self, reply: Reply) {
        *lock(&self.0.connect_reply) = Some(reply);
    }

    /// Takes the kept `$connect` reply.
    pub fn take_connect_reply(&self) -> Option<Reply> {
        lock(&self.0.connect_reply).take()
    }

    /// Takes one event from the rate limit; `false` when over it.
    pub fn allow_event(&self) -> bool {
        lock(&self.0.limiter).take(Instant::now())
    }

    /// The sequence number of the next event or `disconnect` body (1, 2, …).
    pub fn next_seq(&self) -> u64 {
        self.0.seq.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// Records that it joined `rooms`, up to `limit` rooms in all: which it was not in yet, and
    /// which are over the limit (none of either once it left).
    pub fn track_join(&self, rooms: impl IntoIterator<Item = String>, limit: usize) -> Joined {
        let mut tracked = lock(&self.0.rooms);
        let mut joined = Joined::default();
        let Some(current) = tracked.as_mut() else {
            return joined;
        };
        for room in rooms {
            if current.contains(&room) {
                continue;
            }
            if current.len() >= limit {
                joined.over_limit.insert(room);
                continue;
            }
            current.insert(room.clone());
            joined.added.push(room);
        }
        joined
    }

    /// Whether the room tracker counts it in `room`.
    pub fn tracks(&self, room: &str) -> bool {
        lock(&self.0.rooms)
            .as_ref()
            .is_some_and(|rooms| rooms.contains(room))
    }

    /// Records that it left `rooms`; returns those it was in.
    pub fn track_leave(&self, rooms: impl IntoIterator<Item = String>) -> Vec<String> {
        let mut tracked = lock(&self.0.rooms);
        let Some(current) = tracked.as_mut() else {
            return Vec::new();
        };
        rooms
            .into_iter()
            .filter(|room| current.remove(room))
            .collect()
    }

    /// Records that it left every room for good (it disconnected); returns them.
    pub fn track_close(&self) -> Vec<String> {
        lock(&self.0.rooms)
            .take()
            .map(|rooms| rooms.into_iter().collect())
            .unwrap_or_default()
    }

    /// This socket's delivery queues.
    pub fn queues(&self) -> &SocketQueues {
        &self.0.queues
    }
}

/// What [`Session::track_join`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Joined {
    /// Rooms it was not in yet, in the order asked.
    pub added: Vec<String>,
    /// Rooms refused: it was in as many as the limit.
    pub over_limit: HashSet<String>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> Session {
        let handshake = Handshake {
            auth: serde_json::Value::Null,
            query: Default::default(),
            headers: Default::default(),
            address: "127.0.0.1:1".into(),
        };
        let rate = RateLimit {
            per_second: 1.0,
            burst: 1.0,
        };
        Session::new("/", handshake, rate)
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn joins_stop_at_the_limit_and_rooms_already_in_cost_nothing() {
        let s = session();
        let first = s.track_join(names(&["a", "b", "a"]), 3);
        assert_eq!(first.added, names(&["a", "b"]));
        assert!(first.over_limit.is_empty());
        let second = s.track_join(names(&["b", "c", "d", "e"]), 3);
        assert_eq!(second.added, names(&["c"]));
        assert_eq!(
            second.over_limit,
            HashSet::from(["d".to_owned(), "e".to_owned()])
        );
        // Leaving makes room again.
        assert_eq!(s.track_leave(names(&["a", "zz", "a"])), names(&["a"]));
        assert_eq!(s.track_join(names(&["d"]), 3).added, names(&["d"]));
        assert!(s.tracks("d") && !s.tracks("a"));
        let mut left = s.track_close();
        left.sort();
        assert_eq!(left, names(&["b", "c", "d"]));
        assert_eq!(s.track_join(names(&["x"]), 3), Joined::default());
    }
}
