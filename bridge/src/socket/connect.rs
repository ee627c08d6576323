//! Admission and the life of a socket: JWT checks, the `$connect` gate, the `authenticate`
//! flow for sockets that came without a token, and `$disconnect`.

use std::sync::Arc;
use std::time::Duration;

use admin_api::model::EventPattern;
use serde_json::{Value, json};
use socketioxide::ProtocolVersion;
use socketioxide::adapter::Adapter;
use socketioxide::extract::{SocketRef, TryData};
use socketioxide::handler::ConnectHandler;
use socketioxide::socket::{DisconnectReason, Socket};

use super::Gateway;
use super::auth::handshake_token;
use super::forward::{Forwarder, apply_reply, deliver_lifecycle, socket_info};
use super::handover::STOPPING_REASON;
use super::owned_request::SHOWN_HEADERS;
use super::rooms::USER_ROOM_PREFIX;
use super::session::{INERT_ROOM, Session};
use crate::catalog::NamespaceEntry;
use crate::cluster::bus::RoomOp;
use crate::jwt::Identity;
use crate::webhook::body::{Body, Handshake, Kind};
use crate::webhook::{Job, Message, Mode, Outcome, Reply, message_id};

/// Wait between a timed-out socket's last packets and the close of its connection.
const CLOSE_GRACE: Duration = Duration::from_millis(200);

/// Why a connection is refused; the client's `connect_error` carries this message.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// Bad or expired token.
    #[error("unauthorized")]
    Unauthorized,
    /// The `$connect` reply webhook said no (or could not be reached).
    #[error("forbidden")]
    Forbidden,
    /// The store has no such namespace.
    #[error("Invalid namespace")]
    InvalidNamespace,
}

/// Connect middleware: decides whether the socket may connect, before it joins the namespace.
pub async fn admit<A: Adapter>(
    gateway: Arc<Gateway<A>>,
    socket: SocketRef<A>,
    auth: Option<Value>,
) -> Result<(), Refusal> {
    let namespace = socket.ns().to_owned();
    let entry = gateway.catalog.namespace(&namespace);
    let jwt = entry.as_ref().is_some_and(|e| e.requires_jwt());
    let handshake = handshake(&socket, auth.as_ref(), jwt);
    let session = Session::new(&namespace, handshake, gateway.rate);
    let Some(entry) = entry else {
        // Only v2 clients (protocol 4) are admitted, inert, to a `/` the store lacks.
        if namespace == "/" && socket.protocol() == ProtocolVersion::V4 {
            socket.extensions.insert(session);
            return Ok(());
        }
        return Err(Refusal::InvalidNamespace);
    };
    if entry.requires_jwt() {
        match handshake_token(auth.as_ref(), socket.req_parts()) {
            Some(token) => set_identity(&session, verify(&entry, &token).await?),
            None => {
                // Admitted but inert until it emits `authenticate`.
                socket.extensions.insert(session);
                return Ok(());
            }
        }
    }
    connect_gate(&gateway, &entry, &socket, &session).await?;
    session.mark_ready();
    socket.extensions.insert(session);
    Ok(())
}

/// Type marker of the connect handler's `ConnectHandler` impl.
pub enum OnConnectKind {}

/// The connect handler. socketioxide spawns closure handlers after it has sent the CONNECT ack,
/// so a fast client's first events could arrive before the catch-all exists (and be dropped), and
/// emits could miss rooms not yet joined. This handler runs synchronously inside the connect.
pub struct OnConnect<A: Adapter>(pub Arc<Gateway<A>>);

impl<A: Adapter> Clone for OnConnect<A> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<A: Adapter> ConnectHandler<A, OnConnectKind> for OnConnect<A> {
    fn call(&self, socket: Arc<Socket<A>>, _auth: Option<socketioxide_core::Value>) {
        on_connect(self.0.clone(), SocketRef::from(socket));
    }
}

/// The socket is in the namespace now: rooms, handlers, and forwarding or the wait for a token.
fn on_connect<A: Adapter>(gateway: Arc<Gateway<A>>, socket: SocketRef<A>) {
    let Some(session) = socket.extensions.get::<Session>() else {
        return;
    };
    if let Some(remote) = client_address(&socket) {
        gateway.count_socket(remote, 1);
    }
    socket.join(vec![socket.id.to_string(), gateway.cluster.node_room()]);
    socket.on_fallback(Forwarder(gateway.clone()));
    {
        let gateway = gateway.clone();
        socket.on_disconnect(move |socket: SocketRef<A>, reason: DisconnectReason| {
            on_disconnect(gateway.clone(), socket, reason)
        });
    }
    let entry = gateway.catalog.namespace(session.namespace());
    match entry {
        Some(entry) if session.is_ready() => activate(&gateway, &socket, &session, &entry),
        Some(entry) => await_authentication(gateway, socket, session, &entry),
        None => socket.join(INERT_ROOM),
    }
}

/// Joins the socket's rooms, applies a `$connect` reply, and starts forwarding its events.
fn activate<A: Adapter>(
    gateway: &Arc<Gateway<A>>,
    socket: &SocketRef<A>,
    session: &Session,
    entry: &NamespaceEntry,
) {
    if let Some(user_id) = session.user_id() {
        socket.join(format!("{USER_ROOM_PREFIX}{user_id}"));
    }
    gateway
        .rooms
        .change(gateway, socket, RoomOp::Join, session.claim_rooms());
    socket.leave(INERT_ROOM);
    // Its rooms, then its emits, before the `$connect` body below lists the rooms.
    if let Some(reply) = session.take_connect_reply() {
        apply_reply(gateway, socket, None, reply);
    }
    session.activate();
    if session.mark_counted() {
        gateway.counters.connected(session.namespace());
    }
    let gate = gate_subscription(entry).map(|sub| sub.webhook.id.clone());
    let body = Body::new(
        Kind::Connect {
            handshake: session.handshake().clone(),
        },
        session.namespace(),
        socket_info(&gateway.cluster, socket, session),
        0,
    );
    deliver_lifecycle(
        gateway,
        socket,
        session,
        entry,
        &EventPattern::Connect,
        &body,
        gate.as_deref(),
    );
}

/// A socket without a handshake token: it must emit `authenticate` in time.
fn await_authentication<A: Adapter>(
    gateway: Arc<Gateway<A>>,
    socket: SocketRef<A>,
    session: Session,
    entry: &NamespaceEntry,
) {
    socket.join(INERT_ROOM);
    let timeout = Duration::from_millis(entry.verifier.as_ref().map_or(10_000, |v| v.timeout_ms));
    {
        let gateway = gateway.clone();
        socket.on(
            "authenticate",
            move |socket: SocketRef<A>, TryData(data): TryData<Value>| {
                authenticate(gateway.clone(), socket, data.ok())
            },
        );
    }
    tokio::spawn(async move {
        tokio::time::sleep(timeout).await;
        if !session.is_active() && socket.connected() {
            tracing::debug!(sid = %socket.id, "authentication timed out");
            let _ = socket.emit(
                "authenticate_failed",
                &json!({"message": "authentication timed out"}),
            );
            close_after_timeout(&gateway, socket);
        }
    });
}

/// Disconnects a socket whose authentication timed out and, when it was the only socket of its
/// WebSocket connection, closes that connection too: socketioxide would keep the Engine.IO
/// connection (and whatever it buffers, such as a half-sent binary packet) open.
fn close_after_timeout<A: Adapter>(gateway: &Arc<Gateway<A>>, socket: SocketRef<A>) {
    let remote = client_address(&socket);
    let websocket = socket.transport_type() == socketioxide::TransportType::Websocket;
    let alone = remote.is_some_and(|r| gateway.sockets_on(r) == 1);
    let _ = socket.disconnect();
    if let (Some(remote), true, true) = (remote, websocket, alone) {
        let gateway = gateway.clone();
        tokio::spawn(async move {
            // Time for `authenticate_failed` and the DISCONNECT packet to go out first.
            tokio::time::sleep(CLOSE_GRACE).await;
            if gateway.connections.close(&remote) {
                tracing::debug!(%remote, "closed the connection of a socket that never authenticated");
            }
        });
    }
}

/// The client's address as the listener saw it (it identifies the TCP connection).
fn client_address<A: Adapter>(socket: &SocketRef<A>) -> Option<std::net::SocketAddr> {
    socket
        .req_parts()
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|info| info.0)
}

/// The `authenticate` event: `{"token": "..."}`.
async fn authenticate<A: Adapter>(
    gateway: Arc<Gateway<A>>,
    socket: SocketRef<A>,
    data: Option<Value>,
) {
    let Some(session) = socket.extensions.get::<Session>() else {
        return;
    };
    if session.is_active() {
        return;
    }
    let Some(entry) = gateway.catalog.namespace(session.namespace()) else {
        return refuse_authentication(&socket, "Invalid namespace");
    };
    let token = data
        .as_ref()
        .and_then(|d| d.get("token"))
        .and_then(Value::as_str);
    let identity = match token {
        Some(token) => verify(&entry, token).await,
        None => Err(Refusal::Unauthorized),
    };
    let Ok(identity) = identity else {
        return refuse_authentication(&socket, "unauthorized");
    };
    set_identity(&session, identity);
    if connect_gate(&gateway, &entry, &socket, &session)
        .await
        .is_err()
    {
        return refuse_authentication(&socket, "forbidden");
    }
    activate(&gateway, &socket, &session, &entry);
    let _ = socket.emit("authenticated", &json!({"user_id": session.user_id()}));
}

fn refuse_authentication<A: Adapter>(socket: &SocketRef<A>, message: &str) {
    let _ = socket.emit("authenticate_failed", &json!({"message": message}));
    let _ = socket.clone().disconnect();
}

async fn on_disconnect<A: Adapter>(
    gateway: Arc<Gateway<A>>,
    socket: SocketRef<A>,
    reason: DisconnectReason,
) {
    if let Some(remote) = client_address(&socket) {
        gateway.count_socket(remote, -1);
    }
    let Some(session) = socket.extensions.get::<Session>() else {
        return;
    };
    if session.was_counted() {
        gateway.counters.disconnected(session.namespace());
    }
    let reason = disconnect_reason(&gateway, &socket, &reason);
    gateway
        .rooms
        .disconnect(&gateway, &socket, &session, &reason);
    if !session.is_active() {
        return;
    }
    let Some(entry) = gateway.catalog.namespace(session.namespace()) else {
        return;
    };
    let body = Body::new(
        Kind::Disconnect { reason },
        session.namespace(),
        socket_info(&gateway.cluster, &socket, &session),
        session.next_seq(),
    );
    deliver_lifecycle(
        &gateway,
        &socket,
        &session,
        &entry,
        &EventPattern::Disconnect,
        &body,
        None,
    );
}

/// The reason webhooks are told: a socket the hand-over closed says the node is stopping
/// (whatever socketioxide saw: a transport closed or failed, or a last-resort disconnect).
fn disconnect_reason<A: Adapter>(
    gateway: &Gateway<A>,
    socket: &SocketRef<A>,
    reason: &DisconnectReason,
) -> String {
    let by_client = matches!(reason, DisconnectReason::ClientNSDisconnect);
    if !by_client && gateway.stopping.was_handed_over(socket.id.as_str()) {
        STOPPING_REASON.to_owned()
    } else {
        reason.to_string()
    }
}

async fn verify(entry: &NamespaceEntry, token: &str) -> Result<Identity, Refusal> {
    let verifier = entry.verifier.as_ref().ok_or(Refusal::Unauthorized)?;
    verifier.verify(token).await.map_err(|err| {
        tracing::debug!(namespace = %entry.namespace.name, %err, "token refused");
        Refusal::Unauthorized
    })
}

fn set_identity(session: &Session, identity: Identity) {
    session.set_user_id(Some(identity.user_id));
    session.set_claim_rooms(identity.rooms);
}

/// The first enabled `reply: true` webhook that asked for `$connect`: it may refuse connections.
fn gate_subscription(entry: &NamespaceEntry) -> Option<&crate::catalog::Subscription> {
    entry
        .subscriptions
        .iter()
        .find(|sub| sub.webhook.reply && sub.wants_lifecycle(&EventPattern::Connect))
}

/// Asks the `$connect` reply webhook, if any; anything but a 2xx refuses with `forbidden`.
async fn connect_gate<A: Adapter>(
    gateway: &Gateway<A>,
    entry: &NamespaceEntry,
    socket: &SocketRef<A>,
    session: &Session,
) -> Result<(), Refusal> {
    let Some(sub) = gate_subscription(entry) else {
        return Ok(());
    };
    let mut info = socket_info(&gateway.cluster, socket, session);
    info.rooms = expected_rooms(socket, session);
    let body = Body::new(
        Kind::Connect {
            handshake: session.handshake().clone(),
        },
        session.namespace(),
        info,
        0,
    );
    let job = Job {
        webhook: sub.webhook.clone(),
        message: Message {
            id: message_id(),
            event: "$connect".into(),
            body: serde_json::to_vec(&body).unwrap_or_default().into(),
        },
        mode: Mode::Once,
        on_done: None,
        durable: None,
    };
    match gateway.dispatcher.deliver(&job).await {
        Outcome::Delivered(answer) => {
            // The sender let only well-formed replies through.
            let reply = Reply::parse(&answer).unwrap_or_default();
            if let Some(user_id) = reply.user_id.clone() {
                session.set_user_id(Some(user_id));
            }
            session.set_connect_reply(reply);
            Ok(())
        }
        Outcome::Failed(_) | Outcome::Refused(_) => Err(Refusal::Forbidden),
    }
}

/// Rooms the socket will be in once connected (it is not in the namespace yet).
fn expected_rooms<A: Adapter>(socket: &SocketRef<A>, session: &Session) -> Vec<String> {
    let mut rooms = vec![socket.id.to_string()];
    rooms.extend(session.user_id().map(|u| format!("{USER_ROOM_PREFIX}{u}")));
    rooms.extend(session.claim_rooms());
    rooms
}

/// What a token the bridge verified looks like in webhook bodies (and so in stored deliveries):
/// backends get the verified user id instead, and a leaked body leaks no credential.
pub const REDACTED: &str = "[redacted]";

/// What the client sent at the handshake: auth payload, query, origin, user agent, address. In a
/// JWT namespace the token (`auth.token`, `query.token`) is the bridge's to check: it is redacted.
fn handshake<A: Adapter>(socket: &SocketRef<A>, auth: Option<&Value>, jwt: bool) -> Handshake {
    let parts = socket.req_parts();
    let query = url::form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
        .filter(|(k, _)| !matches!(k.as_ref(), "EIO" | "transport" | "t" | "sid" | "b64" | "j"))
        .map(|(k, v)| {
            let v = if jwt && k == "token" {
                REDACTED.to_owned()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    let mut auth = auth.cloned().unwrap_or(Value::Null);
    if jwt && let Some(token) = auth.get_mut("token") {
        *token = Value::from(REDACTED);
    }
    let headers = SHOWN_HEADERS
        .iter()
        .filter_map(|name| {
            let value = parts.headers.get(name)?.to_str().ok()?;
            Some((name.as_str().to_owned(), value.to_owned()))
        })
        .collect();
    let address = client_address(socket)
        .map(|a| a.to_string())
        .unwrap_or_default();
    Handshake {
        auth,
        query,
        headers,
        address,
    }
}
