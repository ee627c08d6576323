//! The catch-all handler: every client event becomes one delivery per matching webhook.
//!
//! socketioxide spawns a task per message for closure handlers, which loses the order events
//! arrived in. [`Forwarder`] implements `MessageHandler` itself: its `call` runs synchronously
//! as each packet is read, so events enter each (socket, webhook) queue in the order sent.

use std::sync::Arc;

use admin_api::model::{EventPattern, is_reserved_event};
use serde_json::json;
use socketioxide::adapter::Adapter;
use socketioxide::extract::SocketRef;
use socketioxide::handler::MessageHandler;
use socketioxide::socket::Socket;

use super::Gateway;
use super::ack::Ack;
use super::session::{INERT_ROOM, Session};
use crate::catalog::{NamespaceEntry, Subscription};
use crate::cluster::bus::RoomOp;
use crate::cluster::{Cluster, is_node_room};
use crate::payload::{Args, decode_event, message_size};
use crate::webhook::body::{Body, Kind, SocketInfo};
use crate::webhook::outbox::{Receipt, Refused};
use crate::webhook::{Job, Message, Mode, OnDone, Outcome, Reply, message_id};

/// Type marker of the forwarder's `MessageHandler` impl.
pub enum ForwarderKind {}

/// The catch-all message handler of every socket.
pub struct Forwarder<A: Adapter>(pub Arc<Gateway<A>>);

impl<A: Adapter> MessageHandler<A, ForwarderKind> for Forwarder<A> {
    fn call(&self, socket: Arc<Socket<A>>, value: socketioxide_core::Value, ack_id: Option<i64>) {
        let ack = ack_id.map(|id| Ack::new(socket.clone(), id));
        forward(&self.0, SocketRef::from(socket), &value, ack);
    }
}

fn forward<A: Adapter>(
    gateway: &Arc<Gateway<A>>,
    socket: SocketRef<A>,
    value: &socketioxide_core::Value,
    ack: Option<Ack<A>>,
) {
    let Some(session) = socket.extensions.get::<Session>() else {
        return;
    };
    let (event, args) = match decode_event(value) {
        Ok(decoded) => decoded,
        Err(err) => {
            // Never forwarded; a client waiting for an answer hears why instead of nothing.
            tracing::debug!(sid = %socket.id, %err, "unreadable event refused");
            return answer(
                ack,
                json!({"error": "bad_event", "message": err.to_string()}),
            );
        }
    };
    if is_reserved_event(&event) {
        return answer(ack, json!({"error": "reserved_event"}));
    }
    if !session.is_active() {
        return answer(ack, json!({"error": "unauthenticated"}));
    }
    if !session.allow_event() {
        metrics::counter!(crate::metrics::WEBHOOK_DROPPED, "reason" => "rate_limited").increment(1);
        let _ = socket.emit(
            "rate_limited",
            &json!({"event": event, "message": "too many events; slow down"}),
        );
        return answer(ack, json!({"error": "rate_limited"}));
    }
    gateway.counters.event_in();
    metrics::counter!(crate::metrics::EVENTS_RECEIVED, "namespace" => session.namespace().to_owned()).increment(1);
    let Some(entry) = gateway.catalog.namespace(session.namespace()) else {
        return answer(ack, json!({"error": "Invalid namespace"}));
    };
    let subs: Vec<&Subscription> = entry
        .subscriptions
        .iter()
        .filter(|s| s.wants_event(&event))
        .collect();
    // The first matching reply webhook answers the client's acknowledgement.
    let reply_target = ack
        .as_ref()
        .and_then(|_| subs.iter().position(|s| s.webhook.reply));
    let body = Body::new(
        Kind::Event {
            event: event.clone(),
            args,
            ack: ack.is_some(),
        },
        session.namespace(),
        socket_info(&gateway.cluster, &socket, &session),
        session.next_seq(),
    );
    let bytes = bytes::Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
    let mut ack = ack;
    let mut refused = None;
    let mut receipts = Vec::new();
    for (idx, sub) in subs.iter().enumerate() {
        let targeted = Some(idx) == reply_target;
        let message = Message {
            id: message_id(),
            event: event.clone(),
            body: bytes.clone(),
        };
        let on_done = sub.webhook.reply.then(|| {
            let ack = if targeted { ack.take() } else { None };
            on_reply(gateway.clone(), socket.clone(), ack)
        });
        let job = Job {
            webhook: sub.webhook.clone(),
            message,
            mode: if targeted { Mode::Once } else { Mode::Retry },
            on_done,
            durable: None,
        };
        match enqueue(gateway, &socket, &session, job, body.seq) {
            Ok(Some(receipt)) => receipts.push(receipt),
            Ok(None) => {}
            Err(why) => {
                refused.get_or_insert(why);
            }
        }
    }
    match (ack, refused) {
        (ack, Some(why)) => answer(ack, refusal(why)),
        (Some(ack), None) if !receipts.is_empty() => {
            // Durable deliveries are accepted once written.
            tokio::spawn(async move {
                let written = futures_util::future::join_all(receipts).await;
                let why = written.into_iter().find_map(|r| match r {
                    Ok(Ok(())) => None,
                    Ok(Err(why)) => Some(why),
                    Err(_) => Some(Refused::StoreUnavailable),
                });
                ack.send(why.map_or_else(|| json!({"ok": true}), refusal));
            });
        }
        (ack, None) => answer(ack, json!({"ok": true})),
    }
}

/// Queues `job` behind the socket's earlier messages to the same webhook.
fn enqueue<A: Adapter>(
    gateway: &Gateway<A>,
    socket: &SocketRef<A>,
    session: &Session,
    job: Job,
    seq: u64,
) -> Result<Option<Receipt>, Refused> {
    gateway
        .dispatcher
        .submit(session.queues(), job, Some(socket.id.as_str()), Some(seq))
}

fn refusal(why: Refused) -> serde_json::Value {
    json!({"ok": false, "error": why.code()})
}

/// Sends `value` as the one argument of an acknowledgement, when one is awaited.
fn answer<A: Adapter>(ack: Option<Ack<A>>, value: serde_json::Value) {
    if let Some(ack) = ack {
        ack.send(value);
    }
}

/// What to do with a reply webhook's answer: ack (when it answers one), rooms, emits.
fn on_reply<A: Adapter>(
    gateway: Arc<Gateway<A>>,
    socket: SocketRef<A>,
    ack: Option<Ack<A>>,
) -> OnDone {
    Box::new(move |outcome| match outcome {
        // The sender let only well-formed replies through.
        Outcome::Delivered(answer) => apply_reply(
            &gateway,
            &socket,
            ack,
            Reply::parse(&answer).unwrap_or_default(),
        ),
        Outcome::Failed(status) => {
            answer(ack, json!({"error": "webhook_failed", "status": status}))
        }
        Outcome::Refused(why) => answer(ack, refusal(why)),
    })
}

/// Applies a reply: the ack first, then joins and leaves, then the emits in order.
pub fn apply_reply<A: Adapter>(
    gateway: &Gateway<A>,
    socket: &SocketRef<A>,
    ack: Option<Ack<A>>,
    reply: Reply,
) {
    if let Some(ack) = ack {
        ack.send(reply.ack.unwrap_or_default());
    }
    let rooms = &gateway.rooms;
    rooms.change(gateway, socket, RoomOp::Join, reply.join);
    rooms.change(gateway, socket, RoomOp::Leave, reply.leave);
    for (event, args) in reply.emit {
        send(socket, event, &args, gateway.max_payload);
    }
}

/// Emits a reply's event to its socket; one larger than the clients' limit is dropped (a v2
/// client would be disconnected for it), counted and logged, as the emit API refuses it.
fn send<A: Adapter>(socket: &SocketRef<A>, event: String, args: &Args, max_payload: usize) {
    let size = message_size(&event, args);
    if size > max_payload {
        metrics::counter!(crate::metrics::EMITS, "outcome" => "too_large").increment(1);
        tracing::warn!(sid = %socket.id, %event, size, max_payload, "reply emit over BRIDGE_MAX_PAYLOAD dropped");
        return;
    }
    if let Err(err) = socket.emit(event, args) {
        metrics::counter!(crate::metrics::EMITS, "outcome" => "dropped").increment(1);
        tracing::debug!(sid = %socket.id, %err, "emit to socket failed");
    }
}

/// Queues a `$connect` or `$disconnect` body for every webhook that asked for it, but `skip`.
pub fn deliver_lifecycle<A: Adapter>(
    gateway: &Arc<Gateway<A>>,
    socket: &SocketRef<A>,
    session: &Session,
    entry: &NamespaceEntry,
    pattern: &EventPattern,
    body: &Body,
    skip: Option<&str>,
) {
    let bytes = bytes::Bytes::from(serde_json::to_vec(body).unwrap_or_default());
    for sub in entry
        .subscriptions
        .iter()
        .filter(|s| s.wants_lifecycle(pattern))
    {
        if Some(sub.webhook.id.as_str()) == skip {
            continue;
        }
        let job = Job {
            webhook: sub.webhook.clone(),
            message: Message {
                id: message_id(),
                event: body.event_name().to_owned(),
                body: bytes.clone(),
            },
            mode: Mode::Retry,
            on_done: sub
                .webhook
                .reply
                .then(|| on_reply(gateway.clone(), socket.clone(), None)),
            durable: None,
        };
        if let Err(why) = enqueue(gateway, socket, session, job, body.seq) {
            tracing::warn!(sid = %socket.id, webhook = %sub.webhook.id, event = body.event_name(), %why, "lifecycle delivery refused");
        }
    }
}

/// The socket as webhook bodies show it (the bridge's own rooms left out).
pub fn socket_info<A: Adapter>(
    cluster: &Cluster,
    socket: &SocketRef<A>,
    session: &Session,
) -> SocketInfo {
    SocketInfo {
        id: socket.id.to_string(),
        user_id: session.user_id(),
        rooms: socket
            .rooms()
            .into_iter()
            .filter(|room| room != INERT_ROOM && !is_node_room(room))
            .map(|room| room.to_string())
            .collect(),
        node: cluster.node_id.to_string(),
    }
}
