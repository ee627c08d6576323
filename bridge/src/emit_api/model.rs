//! Request and answer bodies of the emit API (SPEC 6), and their validation.

use admin_api::ApiError;
use admin_api::model::RESERVED_EVENTS;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::cluster::bus::RoomOp;
use crate::payload::{Args, validate_binaries};
use crate::socket::rooms::{MAX_ROOM_NAME_BYTES, MAX_ROOMS_PER_SOCKET};

/// Most messages in one batch.
pub const MAX_BATCH: usize = 100;
/// Longest wait for client acknowledgements.
pub const MAX_ACK_TIMEOUT_MS: u64 = 60_000;

/// Which sockets of a namespace an operation reaches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Targets {
    /// Rooms.
    pub rooms: Vec<String>,
    /// Socket ids.
    pub sockets: Vec<String>,
    /// User ids (the `user:<id>` rooms).
    pub users: Vec<String>,
    /// Rooms left out.
    pub except: Vec<String>,
    /// Whether any of rooms, sockets or users was given (even empty): then only those are reached.
    pub selective: bool,
}

impl Targets {
    fn new(
        rooms: &Option<Vec<String>>,
        sockets: &Option<Vec<String>>,
        users: &Option<Vec<String>>,
        except: &Option<Vec<String>>,
    ) -> Self {
        Self {
            rooms: rooms.clone().unwrap_or_default(),
            sockets: sockets.clone().unwrap_or_default(),
            users: users.clone().unwrap_or_default(),
            except: except.clone().unwrap_or_default(),
            selective: rooms.is_some() || sockets.is_some() || users.is_some(),
        }
    }

    /// The rooms to reach: named rooms, socket-id rooms and `user:` rooms; empty means none.
    pub fn room_list(&self) -> Vec<String> {
        let sockets = self.sockets.iter().map(|sid| bare_sid(sid).to_owned());
        let users = self.users.iter().map(|user| format!("user:{user}"));
        self.rooms
            .iter()
            .cloned()
            .chain(sockets)
            .chain(users)
            .collect()
    }
}

/// A v2 client knows its id as `/chat#<sid>`; the bridge's id is the part after `#`.
pub fn bare_sid(sid: &str) -> &str {
    sid.rsplit_once('#').map_or(sid, |(_, id)| id)
}

/// `Some(value)` even for an explicit `null`, so `"data": null` differs from no `data`.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// Body of `POST /v1/emit` and of each batch message.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmitRequest {
    /// Namespace name, e.g. `/chat`.
    pub namespace: String,
    /// Event name.
    pub event: String,
    /// The one argument (any JSON, `null` included; `{"$binary": base64}` for binary).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Value)]
    pub data: Option<Value>,
    /// Several arguments, instead of `data`.
    pub args: Option<Vec<Value>>,
    /// Rooms to reach.
    pub rooms: Option<Vec<String>>,
    /// Socket ids to reach.
    pub sockets: Option<Vec<String>>,
    /// User ids to reach.
    pub users: Option<Vec<String>>,
    /// Rooms to leave out (at most 1,000 names of at most 256 bytes).
    pub except: Option<Vec<String>>,
    /// Wait this long for the clients' acknowledgements and return them.
    pub ack_timeout_ms: Option<u64>,
}

impl EmitRequest {
    /// Validates event, arguments and timeout; returns the arguments to send.
    pub fn validate(&self) -> Result<Args, ApiError> {
        validate_event(&self.event)?;
        let args = match (&self.data, &self.args) {
            (Some(_), Some(_)) => {
                return Err(ApiError::invalid(
                    "data",
                    "give either data or args, not both",
                ));
            }
            (Some(data), None) => Args(vec![data.clone()]),
            (None, Some(args)) => Args(args.clone()),
            (None, None) => Args::default(),
        };
        let field = if self.args.is_some() { "args" } else { "data" };
        let root = if self.args.is_some() {
            Value::Array(args.0.clone())
        } else {
            args.0.first().cloned().unwrap_or_default()
        };
        validate_binaries(&root, field).map_err(|msg| bad_field(&msg))?;
        if let Some(ms) = self.ack_timeout_ms
            && !(1..=MAX_ACK_TIMEOUT_MS).contains(&ms)
        {
            return Err(ApiError::invalid(
                "ack_timeout_ms",
                format!("must be between 1 and {MAX_ACK_TIMEOUT_MS}"),
            ));
        }
        validate_rooms("except", self.except.as_deref())?;
        Ok(args)
    }

    /// Its targets.
    pub fn targets(&self) -> Targets {
        Targets::new(&self.rooms, &self.sockets, &self.users, &self.except)
    }
}

/// `field: message` from [`validate_binaries`] as an invalid-field error.
fn bad_field(msg: &str) -> ApiError {
    match msg.split_once(": ") {
        Some((field, message)) => ApiError::invalid(field, message),
        None => ApiError::BadRequest(msg.to_owned()),
    }
}

fn validate_event(event: &str) -> Result<(), ApiError> {
    if event.is_empty() || event.len() > 256 {
        return Err(ApiError::invalid("event", "must be 1 to 256 characters"));
    }
    if RESERVED_EVENTS.contains(&event) {
        return Err(ApiError::invalid(
            "event",
            format!("{event:?} is reserved by Socket.IO"),
        ));
    }
    Ok(())
}

/// Room names of joins, leaves and excepts: `$`-names are the bridge's own; no more names
/// than a socket may be in, none longer than a room name may be.
fn validate_rooms(field: &str, rooms: Option<&[String]>) -> Result<(), ApiError> {
    let rooms = rooms.unwrap_or_default();
    if rooms.len() > MAX_ROOMS_PER_SOCKET {
        return Err(ApiError::invalid(
            field,
            format!("at most {MAX_ROOMS_PER_SOCKET} rooms"),
        ));
    }
    for (idx, room) in rooms.iter().enumerate() {
        if room.is_empty() || room.starts_with('$') {
            return Err(ApiError::invalid(
                format!("{field}[{idx}]"),
                "room names must be non-empty and not start with $",
            ));
        }
        if room.len() > MAX_ROOM_NAME_BYTES {
            return Err(ApiError::invalid(
                format!("{field}[{idx}]"),
                format!("room names must be at most {MAX_ROOM_NAME_BYTES} bytes"),
            ));
        }
    }
    Ok(())
}

/// One acknowledgement collected from a client.
#[derive(Debug, Serialize, ToSchema)]
pub struct AckEntry {
    /// The socket that answered.
    pub socket: String,
    /// Its acknowledgement arguments, any JSON (binaries as `{"$binary": base64}`).
    pub args: Vec<Value>,
}

/// Answer of an emit.
#[derive(Debug, Serialize, ToSchema)]
pub struct EmitResponse {
    /// Always true for a sent emit.
    pub ok: bool,
    /// Acknowledgements, with `ack_timeout_ms`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acks: Option<Vec<AckEntry>>,
    /// Sockets that did not answer in time, with `ack_timeout_ms`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timed_out: Option<usize>,
}

/// Body of `POST /v1/emit/batch`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// At most 100 emit bodies (each as `POST /v1/emit` takes), sent in order. Each is checked
    /// on its own: one that is not a valid emit gets its own error in `results`, the others are
    /// sent, so the schema of an item is any value.
    #[schema(value_type = Vec<serde_json::Value>, max_items = 100)]
    pub messages: Vec<Value>,
}

/// Answer of a batch: one result per message, in order (an emit answer or an error body).
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchResponse {
    /// Results in message order.
    #[schema(value_type = Vec<BatchResult>)]
    pub results: Vec<Value>,
}

/// The result of one batch message: its emit answer, or the error it would have had alone.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum BatchResult {
    /// Sent.
    Sent(EmitResponse),
    /// Not sent: the error `POST /v1/emit` would answer (`forbidden`, `not_found`,
    /// `invalid_field`, …).
    Failed(admin_api::error::ErrorBody),
}

/// Body of `POST /v1/join` and `POST /v1/leave`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoomsRequest {
    /// Namespace name.
    pub namespace: String,
    /// Rooms to reach.
    pub rooms: Option<Vec<String>>,
    /// Socket ids to reach.
    pub sockets: Option<Vec<String>>,
    /// User ids to reach.
    pub users: Option<Vec<String>>,
    /// Rooms to leave out (at most 1,000 names of at most 256 bytes).
    pub except: Option<Vec<String>>,
    /// Rooms to join (`/v1/join`; at most 1,000 names of at most 256 bytes).
    pub join: Option<Vec<String>>,
    /// Rooms to leave (`/v1/leave`; at most 1,000 names of at most 256 bytes).
    pub leave: Option<Vec<String>>,
}

impl RoomsRequest {
    /// Validates and returns the rooms of `field` (`join` or `leave`).
    pub fn rooms_of(&self, op: RoomOp) -> Result<Vec<String>, ApiError> {
        let (field, given, other) = match op {
            RoomOp::Join => ("join", &self.join, &self.leave),
            RoomOp::Leave => ("leave", &self.leave, &self.join),
        };
        if other.is_some() {
            return Err(ApiError::invalid(
                if field == "join" { "leave" } else { "join" },
                format!("not allowed here; this endpoint takes {field}"),
            ));
        }
        let rooms = given
            .clone()
            .ok_or_else(|| ApiError::invalid(field, "required: a list of room names"))?;
        if rooms.is_empty() {
            return Err(ApiError::invalid(field, "at least one room"));
        }
        validate_rooms(field, Some(&rooms))?;
        validate_rooms("except", self.except.as_deref())?;
        Ok(rooms)
    }

    /// Its targets.
    pub fn targets(&self) -> Targets {
        Targets::new(&self.rooms, &self.sockets, &self.users, &self.except)
    }
}

/// Body of `POST /v1/disconnect`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DisconnectRequest {
    /// Namespace name.
    pub namespace: String,
    /// Rooms to reach.
    pub rooms: Option<Vec<String>>,
    /// Socket ids to reach.
    pub sockets: Option<Vec<String>>,
    /// User ids to reach.
    pub users: Option<Vec<String>>,
    /// Rooms to leave out.
    pub except: Option<Vec<String>>,
}

impl DisconnectRequest {
    /// Its targets.
    pub fn targets(&self) -> Targets {
        Targets::new(&self.rooms, &self.sockets, &self.users, &self.except)
    }
}

/// Answer of join, leave and disconnect.
#[derive(Debug, Serialize, ToSchema)]
pub struct OkResponse {
    /// Always true.
    pub ok: bool,
}

/// Longest page of a listing, and the default.
pub const MAX_PAGE: usize = 1000;

/// Query of `GET /v1/sockets`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SocketsQuery {
    /// Namespace name (required).
    #[param(required = true, value_type = String, example = "/chat")]
    pub namespace: Option<String>,
    /// Only sockets in this room.
    pub room: Option<String>,
    /// Only sockets of this user.
    pub user: Option<String>,
    /// Page size, 1 to 1000 [default: 1000].
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    /// The previous page's `next_cursor`: sockets after this id.
    pub cursor: Option<String>,
}

/// Query of `GET /v1/rooms`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RoomsQuery {
    /// Namespace name (required).
    #[param(required = true, value_type = String, example = "/chat")]
    pub namespace: Option<String>,
    /// Page size, 1 to 1000 [default: 1000].
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    /// The previous page's `next_cursor`: rooms after this name.
    pub cursor: Option<String>,
}

/// Query of `GET /v1/rooms/{room}/members`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MembersQuery {
    /// Namespace name (required).
    #[param(required = true, value_type = String, example = "/chat")]
    pub namespace: Option<String>,
    /// Page size, 1 to 1000 [default: 1000].
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    /// The previous page's `next_cursor`: users after this id.
    pub cursor: Option<String>,
}

/// One user present in a room.
#[derive(Debug, Serialize, ToSchema, PartialEq, Eq)]
pub struct Member {
    /// The user id (`sub` of its token, or the `$connect` reply's `user_id`).
    pub user_id: String,
    /// How many of its sockets are in the room, on every node.
    pub sockets: u64,
}

/// Answer of `GET /v1/rooms/{room}/members`.
#[derive(Debug, Serialize, ToSchema)]
pub struct MembersResponse {
    /// The distinct users in the room, by user id, a page at a time.
    pub members: Vec<Member>,
    /// Sockets in the room without a user id (the whole room, on every page).
    pub anonymous_sockets: u64,
    /// Pass as `cursor` for the next page; null on the last one.
    pub next_cursor: Option<String>,
}

/// A listing's page size: `limit` checked against 1..=1000.
pub fn page_size(limit: Option<usize>) -> Result<usize, ApiError> {
    match limit {
        None => Ok(MAX_PAGE),
        Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::invalid("limit", "must be 1 to 1000")),
    }
}

/// One socket in a listing.
#[derive(Debug, Serialize, ToSchema)]
pub struct SocketEntry {
    /// Socket id.
    pub id: String,
    /// Its user id, if authenticated.
    pub user_id: Option<String>,
    /// Its rooms.
    pub rooms: Vec<String>,
    /// Id of the node that holds it.
    pub node: String,
}

/// Answer of `GET /v1/sockets`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SocketsResponse {
    /// The sockets, by id.
    pub sockets: Vec<SocketEntry>,
    /// Pass as `cursor` for the next page; null on the last one.
    pub next_cursor: Option<String>,
}

/// Answer of `GET /v1/rooms`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoomsResponse {
    /// Room names, sorted (socket-id rooms left out).
    pub rooms: Vec<String>,
    /// Pass as `cursor` for the next page; null on the last one.
    pub next_cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn emit(body: Value) -> EmitRequest {
        serde_json::from_value(body).unwrap()
    }

    #[test]
    fn data_null_is_one_argument_and_both_are_refused() {
        let req = emit(json!({"namespace": "/", "event": "e", "data": null}));
        assert_eq!(req.validate().unwrap(), Args(vec![Value::Null]));
        let req = emit(json!({"namespace": "/", "event": "e"}));
        assert_eq!(req.validate().unwrap(), Args::default());
        let req = emit(json!({"namespace": "/", "event": "e", "data": 1, "args": [1]}));
        assert!(req.validate().unwrap_err().to_string().starts_with("data:"));
    }

    #[test]
    fn reserved_events_and_bad_binaries_are_refused() {
        let err = emit(json!({"namespace": "/", "event": "disconnect"}))
            .validate()
            .unwrap_err();
        assert!(err.to_string().starts_with("event:"), "{err}");
        let err = emit(json!({"namespace": "/", "event": "e", "args": [1, {"$binary": "%%"}]}))
            .validate()
            .unwrap_err();
        assert_eq!(err.to_string(), "args[1]: $binary must be base64");
    }

    #[test]
    fn targets_map_to_rooms() {
        let req = emit(
            json!({"namespace": "/", "event": "e", "rooms": ["r"], "sockets": ["/chat#abc"], "users": ["u1"]}),
        );
        let t = req.targets();
        assert!(t.selective);
        assert_eq!(t.room_list(), ["r", "abc", "user:u1"]);
        let none = emit(json!({"namespace": "/", "event": "e", "rooms": []})).targets();
        assert!(none.selective && none.room_list().is_empty());
        assert!(
            !emit(json!({"namespace": "/", "event": "e"}))
                .targets()
                .selective
        );
    }
}
