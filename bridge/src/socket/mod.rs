//! The Socket.IO side (SPEC 4): namespaces from the catalog, authentication, forwarding.
//!
//! - [`Gateway`] owns the `SocketIo` handle, registers every namespace the store has (and
//!   removes deleted ones), and holds what the handlers share.
//! - [`connect`]: admission (JWT, the `$connect` gate), the `authenticate` flow, disconnects.
//! - [`forward`]: the catch-all handler that turns client events into webhook deliveries.
//! - [`rooms`]: room lifecycle deliveries (`$join`, `$leave`, occupancy).
//! - [`handover`]: a stopping node's clients closed at the transport so they reconnect elsewhere.
//! - [`session`]: per-socket state; [`auth`]: JWT checks; [`v2_compat`]: the v2 query fix.

pub mod ack;
pub mod auth;
pub mod connect;
pub mod forward;
pub mod handover;
pub mod owned_request;
pub mod rooms;
pub mod session;
pub mod v2_compat;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use socketioxide::adapter::Adapter;
use socketioxide::extract::{SocketRef, TryData};
use socketioxide::handler::ConnectHandler;
use socketioxide::layer::SocketIoLayer;
use socketioxide::{ParserConfig, SocketIo};
use socketioxide_core::adapter::DefinedAdapter;
use socketioxide_core::adapter::Spawnable;

/// Bytes tungstenite reads at a time on each WebSocket.
const WS_READ_BUFFER: usize = 1024;
/// Most attachments one binary packet may announce (socketioxide's default is 10,000).
const MAX_ATTACHMENTS: usize = 256;
/// Longest a catalog version waits for its new namespaces' adapters before counting as applied.
const SERVE_PATIENCE: Duration = Duration::from_secs(3);
/// Time a binary packet's attachments have to arrive; socketioxide checks it when the next
/// attachment arrives, so an idle client holds at most `BRIDGE_MAX_PAYLOAD` until it goes.
const ATTACHMENTS_TIMEOUT: Duration = Duration::from_secs(10);
use tokio::sync::watch;

use crate::catalog::{Catalog, CatalogData};
use crate::cluster::Cluster;
use crate::cluster::bus::{RoomBus, RoomNotice};
use crate::config::Config;
use crate::listener::Connections;
use crate::shutdown::Stopping;
use crate::stats::Counters;
use crate::webhook::Dispatcher;
use session::RateLimit;

/// What every socket handler shares; `A` is the adapter that links the nodes (chosen once at
/// start, so the one-node path runs on socketioxide's `LocalAdapter` with no indirection).
pub struct Gateway<A: Adapter> {
    /// The Socket.IO server handle (emits, rooms, namespaces).
    pub io: SocketIo<A>,
    /// The in-memory catalog.
    pub catalog: Catalog,
    /// Webhook deliveries.
    pub dispatcher: Arc<Dispatcher>,
    /// Live counters.
    pub counters: Arc<Counters>,
    /// Per-socket event rate limit.
    pub rate: RateLimit,
    /// Largest message clients accept (`BRIDGE_MAX_PAYLOAD`), bytes.
    pub max_payload: usize,
    /// This node and its adapter's health.
    pub cluster: Cluster,
    /// The public listener's open connections (to close one whose socket timed out).
    pub connections: Arc<Connections>,
    /// This node's sockets per application room, for the room lifecycle deliveries.
    pub rooms: rooms::RoomTracker,
    /// Tells the other nodes of room changes the emit API made to their sockets.
    pub bus: Option<Arc<dyn RoomBus>>,
    /// Namespace sockets per client connection, to know when a socket is its connection's only one.
    per_connection: Mutex<HashMap<SocketAddr, usize>>,
    registered: Mutex<HashSet<String>>,
    /// The catalog version whose namespaces are registered.
    applied: watch::Sender<i64>,
    /// Whether the store had `/` at the last catalog change.
    root_in_store: Mutex<bool>,
    /// Where a stop is: draining hands the sockets over, closed makes the emit API answer 503
    /// `shutting_down`.
    pub stopping: Arc<Stopping>,
}

/// What `build` needs besides the configuration.
pub struct Parts {
    /// The in-memory catalog.
    pub catalog: Catalog,
    /// Webhook deliveries.
    pub dispatcher: Arc<Dispatcher>,
    /// Live counters.
    pub counters: Arc<Counters>,
    /// This node.
    pub cluster: Cluster,
    /// The public listener's open connections.
    pub connections: Arc<Connections>,
    /// The other nodes, for room changes (none with one node).
    pub bus: Option<Arc<dyn RoomBus>>,
    /// Where a stop is.
    pub stopping: Arc<Stopping>,
}

impl<A: Adapter> Gateway<A> {
    /// Whether the node's sockets are all gone (the end of a stop).
    pub fn is_closing(&self) -> bool {
        self.stopping.is_closed()
    }

    /// Counts a namespace socket in (`+1`) or out (`-1`) of its client connection; returns how
    /// many the connection has now.
    pub fn count_socket(&self, remote: SocketAddr, change: isize) -> usize {
        let mut counts = self
            .per_connection
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let count = counts.entry(remote).or_insert(0);
        *count = count.saturating_add_signed(change);
        let now = *count;
        if now == 0 {
            counts.remove(&remote);
        }
        now
    }

    /// How many namespace sockets the client connection from `remote` has.
    pub fn sockets_on(&self, remote: SocketAddr) -> usize {
        let counts = self
            .per_connection
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        counts.get(&remote).copied().unwrap_or(0)
    }
}

impl<A: Adapter + DefinedAdapter> Gateway<A> {
    /// Builds the Socket.IO layer with the configured Engine.IO settings and adapter, and
    /// registers `/`.
    pub fn build(
        config: &Config,
        parts: Parts,
        adapter: A::State,
    ) -> (SocketIoLayer<A>, Arc<Self>) {
        let Parts {
            catalog,
            dispatcher,
            counters,
            cluster,
            connections,
            bus,
            stopping,
        } = parts;
        let max_payload = usize::try_from(config.max_payload).unwrap_or(usize::MAX);
        let (layer, io) = SocketIo::builder()
            .ping_interval(config.ping_interval)
            .ping_timeout(config.ping_timeout)
            .connect_timeout(config.connect_timeout)
            .max_payload(config.max_payload)
            // `max_payload` bounds polling bodies; WebSocket messages have their own limit.
            .ws_max_message_size(max_payload)
            // Read WebSocket frames 1 KiB at a time: client frames are small, and every idle
            // connection keeps this buffer (engineioxide's default is 4 KiB).
            .ws_read_buffer_size(WS_READ_BUFFER)
            // A binary packet's attachments together stay within the max payload too
            // (socketioxide's default: 10 MB whatever the max payload).
            .with_parser(
                ParserConfig::common()
                    .max_incoming_binary_buf_size(max_payload)
                    .max_incoming_binaries(MAX_ATTACHMENTS)
                    .packet_completion_timeout(ATTACHMENTS_TIMEOUT),
            )
            .with_adapter::<A>(adapter)
            .build_layer();
        let gateway = Arc::new(Self {
            io,
            catalog,
            dispatcher,
            counters,
            rate: config.event_rate,
            max_payload,
            cluster,
            connections,
            rooms: rooms::RoomTracker::default(),
            bus,
            per_connection: Mutex::new(HashMap::new()),
            registered: Mutex::new(HashSet::new()),
            applied: watch::Sender::new(0),
            root_in_store: Mutex::new(false),
            stopping,
        });
        // v2 clients always join `/`, so it is always registered (socketioxide cannot delete it);
        // without a `/` in the store its sockets stay inert.
        gateway.register("/");
        gateway.sync_namespaces();
        (layer, gateway)
    }

    /// Keeps the registered namespaces equal to the catalog's, now and on every change; a
    /// version counts as applied once its new namespaces are served (see [`Gateway::served`]).
    fn sync_namespaces(self: &Arc<Self>) {
        let mut rx = self.catalog.subscribe();
        let gateway = Arc::downgrade(self);
        let first = rx.borrow_and_update().clone();
        let mut pending = Some((first.version, self.apply_catalog(&first)));
        tokio::spawn(async move {
            loop {
                if let Some((version, added)) = pending.take() {
                    let Some(gateway) = gateway.upgrade() else {
                        return;
                    };
                    gateway.served(&added).await;
                    gateway.applied.send_replace(version);
                }
                if rx.changed().await.is_err() {
                    return;
                }
                let Some(gateway) = gateway.upgrade() else {
                    return;
                };
                let data = rx.borrow_and_update().clone();
                pending = Some((data.version, gateway.apply_catalog(&data)));
            }
        });
    }

    /// Waits (at most [`SERVE_PATIENCE`]) until socketioxide serves every namespace of `names`:
    /// with an adapter it adds a namespace only once the adapter's asynchronous init succeeded,
    /// and until then a client gets `Invalid namespace` and the emit API a 404.
    async fn served(&self, names: &[String]) {
        let deadline = tokio::time::Instant::now() + SERVE_PATIENCE;
        for name in names {
            while self.io.of(name.as_str()).is_none() {
                if tokio::time::Instant::now() >= deadline {
                    tracing::warn!(namespace = %name, "namespace not served yet (its adapter has not subscribed)");
                    return;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }

    /// Registers and removes namespaces to match `data`; returns the ones registered.
    fn apply_catalog(self: &Arc<Self>, data: &CatalogData) -> Vec<String> {
        let live_hooks = data
            .namespaces
            .values()
            .flat_map(|entry| entry.subscriptions.iter().map(|s| s.webhook.id.as_str()))
            .collect();
        self.dispatcher.retain_webhooks(&live_hooks);
        let names: HashSet<String> = data.namespaces.keys().cloned().collect();
        let names = &names;
        let registered = self
            .registered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let added: Vec<String> = names.difference(&registered).cloned().collect();
        for name in &added {
            self.register(name);
        }
        for name in registered.difference(names).filter(|n| *n != "/") {
            self.unregister(name);
        }
        let has_root = names.contains("/");
        let had_root = std::mem::replace(
            &mut *self.root_in_store.lock().unwrap_or_else(|e| e.into_inner()),
            has_root,
        );
        if had_root && !has_root {
            self.disconnect_root();
        }
        if has_root && !had_root {
            tracing::info!(namespace = "/", "namespace registered");
        }
        added
    }

    /// Tells the catalog version whose namespaces this node serves, each time it changes.
    pub fn applied(&self) -> watch::Receiver<i64> {
        self.applied.subscribe()
    }

    /// Applies the room changes other nodes made to this node's sockets, as they arrive.
    pub fn follow_notices(self: &Arc<Self>, mut notices: crate::cluster::bus::Notices) {
        let gateway = Arc::downgrade(self);
        tokio::spawn(async move {
            while let Some(notice) = futures_util::StreamExt::next(&mut notices).await {
                let Some(gateway) = gateway.upgrade() else {
                    return;
                };
                gateway.apply_notice(notice);
            }
        });
    }

    /// Makes this node's sockets named in `notice` join or leave its rooms, through the room
    /// tracker (the adapter may have changed their rooms already; doing it again is harmless).
    fn apply_notice(&self, notice: RoomNotice) {
        if *notice.from == *self.cluster.node_id {
            return;
        }
        let Some(ops) = self.io.of(notice.namespace.as_str()) else {
            return;
        };
        for id in &notice.sockets {
            let Some(socket) = id.parse().ok().and_then(|sid| ops.get_socket(sid)) else {
                continue;
            };
            let refused = self
                .rooms
                .change(self, &socket, notice.op, notice.rooms.clone());
            if !refused.is_empty() {
                rooms::keep_out_later(socket, refused);
            }
        }
    }

    fn register(self: &Arc<Self>, name: &str) {
        let mut registered = self.registered.lock().unwrap_or_else(|e| e.into_inner());
        if !registered.insert(name.to_owned()) {
            return;
        }
        let on_connect = connect::OnConnect(self.clone());
        let admit = {
            let gateway = self.clone();
            move |socket: SocketRef<A>, TryData(auth): TryData<serde_json::Value>| {
                connect::admit(gateway.clone(), socket, auth.ok())
            }
        };
        // With a remote adapter this subscribes to the namespace's channels in the background
        // (errors are logged by the adapter).
        self.io.ns(name.to_owned(), on_connect.with(admit)).spawn();
        if name == "/" {
            // Registered at start whatever the store says (v2 clients always join it); it is
            // announced once the store declares it (`apply_catalog`).
            tracing::debug!("namespace / registered for v2 clients, inert unless the store has it");
        } else {
            tracing::info!(namespace = name, "namespace registered");
        }
    }

    /// The end of a stop, once [`Gateway::hand_over`] closed the clients' transports: the emit
    /// API answers 503 from now, and the server closes (socketioxide's `close` would run no
    /// disconnect handler: it takes the namespaces away before closing the transports, which is
    /// why the hand-over closes them first).
    pub async fn close(&self) {
        self.stopping.close();
        self.io.close().await;
    }

    /// `/` left the store: it stays registered for v2 clients, but its sockets are disconnected.
    fn disconnect_root(&self) {
        let io = self.io.clone();
        tokio::spawn(async move { disconnect_all(&io, "/").await });
    }

    /// Removes a namespace the store no longer has, disconnecting its sockets.
    fn unregister(&self, name: &str) {
        self.registered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        // socketioxide's `delete_ns` polls the namespace's close only once (`now_or_never`), so
        // its sockets may stay connected: disconnect them first, then delete. New connections
        // are refused meanwhile, since the catalog no longer has the namespace.
        let io = self.io.clone();
        let name = name.to_owned();
        tokio::spawn(async move {
            disconnect_all(&io, &name).await;
            io.delete_ns(&name);
            tracing::info!(namespace = %name, "namespace removed; its sockets were disconnected");
        });
    }
}

/// Disconnects every socket of `namespace` on this node (`broadcast()` is what makes "no room"
/// mean "all"; `local()` keeps the other nodes' sockets, which their own nodes handle).
async fn disconnect_all<A: Adapter>(io: &SocketIo<A>, namespace: &str) {
    if let Some(ops) = io.of(namespace)
        && let Err(err) = ops.local().broadcast().disconnect().await
    {
        tracing::warn!(namespace, %err, "could not disconnect every socket");
    }
}
