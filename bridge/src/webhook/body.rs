//! The JSON body of a delivery (SPEC 5).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// Which socket a delivery is about.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SocketInfo {
    /// Socket id.
    pub id: String,
    /// `sub` of its token, or the id a `$connect` reply gave; null when it has none.
    #[schema(required = true)]
    pub user_id: Option<String>,
    /// Rooms it is in.
    pub rooms: Vec<String>,
    /// Id of the node that holds it.
    pub node: String,
}

/// What the client sent at the handshake, for `$connect`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Handshake {
    /// The auth payload of a v3/v4 client (any JSON; `token` is `"[redacted]"` in a JWT
    /// namespace), or null.
    pub auth: Value,
    /// Query parameters of the handshake request.
    pub query: BTreeMap<String, String>,
    /// `origin` and `user-agent`, when the client sent them.
    pub headers: BTreeMap<String, String>,
    /// `ip:port` of the client.
    pub address: String,
}

/// `type`-specific part of a body.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Kind {
    /// A client event.
    Event {
        /// Event name.
        event: String,
        /// All arguments, binaries as `$binary`.
        args: Vec<Value>,
        /// Whether the client waits for an acknowledgement.
        ack: bool,
    },
    /// A socket connected.
    Connect {
        /// Its handshake.
        handshake: Handshake,
    },
    /// A socket went away.
    Disconnect {
        /// Why, as socketioxide names it.
        reason: String,
    },
}

/// A whole delivery body.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Body {
    /// The kind and its fields.
    #[serde(flatten)]
    pub kind: Kind,
    /// Namespace name.
    pub namespace: String,
    /// The socket.
    pub socket: SocketInfo,
    /// Per-socket sequence number: 0 for `connect`, then 1, 2, … for its events and its
    /// `disconnect`, so a backend can restore order or see a gap.
    pub seq: u64,
    /// When the bridge saw it (RFC 3339, ms).
    #[schema(format = DateTime)]
    pub timestamp: String,
}

impl Body {
    /// A body stamped now.
    pub fn new(kind: Kind, namespace: &str, socket: SocketInfo, seq: u64) -> Self {
        Self {
            kind,
            namespace: namespace.to_owned(),
            socket,
            seq,
            timestamp: admin_api::model::Timestamp::now().to_rfc3339(),
        }
    }

    /// The event name deliveries record: the client event, `$connect` or `$disconnect`.
    pub fn event_name(&self) -> &str {
        match &self.kind {
            Kind::Event { event, .. } => event,
            Kind::Connect { .. } => "$connect",
            Kind::Disconnect { .. } => "$disconnect",
        }
    }
}

/// What happened to a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RoomChange {
    /// The room got its first socket on the node.
    RoomOccupied,
    /// The room lost its last socket on the node.
    RoomVacated,
    /// A socket joined the room.
    Join,
    /// A socket left the room.
    Leave,
}

impl RoomChange {
    /// The event name webhooks subscribe to and deliveries record.
    pub fn event_name(self) -> &'static str {
        match self {
            Self::RoomOccupied => "$room_occupied",
            Self::RoomVacated => "$room_vacated",
            Self::Join => "$join",
            Self::Leave => "$leave",
        }
    }
}

/// The body of a room lifecycle delivery.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RoomBody {
    /// What happened.
    #[serde(rename = "type")]
    pub change: RoomChange,
    /// Namespace name.
    pub namespace: String,
    /// The room.
    pub room: String,
    /// The node whose sockets it is about.
    pub node: String,
    /// Sockets of that node in the room after the change.
    pub node_sockets: usize,
    /// The socket that joined or left (for `join` and `leave`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub socket: Option<SocketInfo>,
    /// Why, for a `leave` or `room_vacated` caused by a socket's disconnect: its `$disconnect`
    /// reason (`server shutting down` when its node stops).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When the bridge saw it (RFC 3339, ms).
    #[schema(format = DateTime)]
    pub timestamp: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn event_body_has_the_spec_fields() {
        let socket = SocketInfo {
            id: "s1".into(),
            user_id: Some("u1".into()),
            rooms: vec!["r".into()],
            node: "n1".into(),
        };
        let body = Body::new(
            Kind::Event {
                event: "message".into(),
                args: vec![json!("hi")],
                ack: true,
            },
            "/chat",
            socket,
            7,
        );
        let v = serde_json::to_value(&body).unwrap();
        assert_eq!(v["type"], "event");
        assert_eq!(v["namespace"], "/chat");
        assert_eq!(v["event"], "message");
        assert_eq!(v["args"], json!(["hi"]));
        assert_eq!(v["ack"], true);
        assert_eq!(
            v["socket"],
            json!({"id": "s1", "user_id": "u1", "rooms": ["r"], "node": "n1"})
        );
        assert_eq!(v["seq"], 7);
        assert!(v["timestamp"].as_str().unwrap().ends_with('Z'));
        let d = serde_json::to_value(Body::new(
            Kind::Disconnect {
                reason: "client namespace disconnect".into(),
            },
            "/chat",
            body.socket.clone(),
            8,
        ))
        .unwrap();
        assert_eq!(d["type"], "disconnect");
        assert!(d.get("event").is_none() && d.get("args").is_none());
    }
}
