//! The `webhooks` section of the OpenAPI document: every request the bridge sends to a webhook
//! URL, its Standard Webhooks headers, and the answer a `reply` webhook may give.
//!
//! The body schemas are those of [`Body`] and [`RoomBody`] themselves, each kind of [`Kind`]
//! made a named schema (`EventBody`, `ConnectBody`, `DisconnectBody`), so the document cannot
//! drift from what is sent. `WebhookBody` is their discriminated union, for a backend that takes
//! every delivery at one URL.

use admin_api::routes::{discriminated_union, merge_object, pascal_case, tagged_variants};
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::{
    ContentBuilder, OpenApi, PathItem, Paths, Ref, RefOr, Required, ResponseBuilder,
    ResponsesBuilder,
};
use utoipa::{Modify, PartialSchema, ToSchema};

use super::body::{Body, Handshake, Kind, RoomBody, RoomChange, SocketInfo};

/// The 2xx answer of a `reply` webhook: empty, or this JSON object, every part optional (at
/// most 1 MiB, within the webhook's `timeout_ms`). Anything else is a failed attempt.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"ack": {"saved": true}, "join": ["lobby"],
    "emit": [{"event": "welcome", "data": {"text": "hi"}}]}))]
pub struct WebhookReply {
    /// The argument of the client's acknowledgement callback (any JSON, `null` included), for
    /// an event sent with one.
    #[schema(value_type = Value, required = false)]
    pub ack: Option<Value>,
    /// The acknowledgement's arguments, several; `ack` is ignored when given.
    pub ack_args: Option<Vec<Value>>,
    /// Rooms for the socket to join (names starting with `$`, and empty ones, are ignored).
    pub join: Option<Vec<String>>,
    /// Rooms for the socket to leave.
    pub leave: Option<Vec<String>>,
    /// Events to send to the socket, in order, after the acknowledgement.
    pub emit: Option<Vec<ReplyEmit>>,
    /// For `$connect`: the user the socket belongs to (joins `user:<id>`; a number is read as
    /// its decimal text).
    pub user_id: Option<ReplyUserId>,
}

/// One event a reply sends to its socket: one argument (`data`) or several (`args`).
#[derive(Serialize, ToSchema)]
pub struct ReplyEmit {
    /// Event name.
    pub event: String,
    /// The one argument (any JSON; `{"$binary": base64}` for binary).
    #[schema(value_type = Value, required = false)]
    pub data: Option<Value>,
    /// Several arguments, instead of `data` (which is then ignored).
    pub args: Option<Vec<Value>>,
}

/// A user id given by a `$connect` reply: text, or a number.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum ReplyUserId {
    /// The id.
    Text(String),
    /// A numeric id, read as its decimal text.
    Number(f64),
}

/// Adds the `webhooks` section and its schemas to the document.
pub struct Webhooks;

/// One entry of the `webhooks` section: what is subscribed to, and what the answer does.
struct Hook {
    /// The key in `webhooks`: the event pattern that subscribes to it.
    key: &'static str,
    operation_id: &'static str,
    summary: &'static str,
    description: &'static str,
    schema: &'static str,
    example: Value,
    /// What a 2xx answer does (and whether its body is a [`WebhookReply`]).
    accepted: &'static str,
    reply: bool,
    /// What any other answer does.
    refused: &'static str,
}

const RETRIED: &str = "A failed attempt (so are a timeout and a network error): retried on \
    408, 429 and 5xx (after `Retry-After`, if given), final on other statuses; redirects are \
    not followed. Recorded in `/admin/deliveries` when it fails for good.";

fn hooks() -> Vec<Hook> {
    let socket = json!({"id": "Xv3Lx2ZyV0eXlWbeAAAB", "user_id": "alice",
        "rooms": ["Xv3Lx2ZyV0eXlWbeAAAB", "user:alice"], "node": "node-3fa9c2d1"});
    let at = "2026-11-25T22:47:05.123Z";
    let room = |kind: &str, sockets: u64, with_socket: bool| {
        let mut body = json!({"type": kind, "namespace": "/chat", "room": "lobby",
            "node": "node-3fa9c2d1", "node_sockets": sockets, "timestamp": at});
        if with_socket {
            body["socket"] = socket.clone();
        }
        body
    };
    vec![
        Hook {
            key: "event",
            operation_id: "clientEvent",
            summary: "A client event",
            description: "A client emitted an event the webhook's patterns match (an exact \
                name, `*` or `prefix*`). With `ack: true` the client waits for an \
                acknowledgement: the first enabled matching `reply` webhook gives it.",
            schema: "EventBody",
            example: json!({"type": "event", "namespace": "/chat", "event": "chat:message",
                "args": ["hello", {"x": 1}], "ack": true, "socket": socket, "seq": 4, "timestamp": at}),
            accepted: "Received. For a `reply` webhook the body (empty, or a JSON object) \
                answers the client: its acknowledgement, rooms to join or leave, events to send.",
            reply: true,
            refused: "A failed attempt. For a `reply` webhook answering an acknowledgement the \
                client gets `{\"error\": \"webhook_failed\", \"status\": <code or null>}` (tried \
                once); otherwise retried on 408, 429 and 5xx (after `Retry-After`, if given), \
                final on other statuses. Recorded in `/admin/deliveries` when it fails for good.",
        },
        Hook {
            key: "$connect",
            operation_id: "socketConnected",
            summary: "A socket connected",
            description: "A socket connected to the namespace, with its handshake (a verified \
                token is replaced by `\"[redacted]\"`). A `reply` webhook subscribed to \
                `$connect` gates connections: the socket is admitted only on its 2xx.",
            schema: "ConnectBody",
            example: json!({"type": "connect", "namespace": "/chat", "handshake": {
                "auth": {"name": "alice"}, "query": {"EIO": "4", "transport": "websocket"},
                "headers": {"origin": "https://app.example.com", "user-agent": "Mozilla/5.0"},
                "address": "203.0.113.7:52114"}, "socket": socket, "seq": 0, "timestamp": at}),
            accepted: "Admitted. For a `reply` webhook the body may give the socket's \
                `user_id`, rooms to join or leave, and events to send.",
            reply: true,
            refused: "For a `reply` webhook, the connection is refused (`connect_error` \
                `{\"message\": \"forbidden\"}`), as on a timeout. Otherwise a failed attempt, \
                retried on 408, 429 and 5xx.",
        },
        Hook {
            key: "$disconnect",
            operation_id: "socketDisconnected",
            summary: "A socket went away",
            description: "A socket disconnected; `reason` is Socket.IO's (`transport close`, \
                `client namespace disconnect`, …, `server shutting down` when its node stops).",
            schema: "DisconnectBody",
            example: json!({"type": "disconnect", "namespace": "/chat",
                "reason": "client namespace disconnect", "socket": socket, "seq": 5, "timestamp": at}),
            accepted: "Received (the body is not read).",
            reply: false,
            refused: RETRIED,
        },
        Hook {
            key: "$room_occupied",
            operation_id: "roomOccupied",
            summary: "A room got its first socket on a node",
            description: "A room got its first socket on the node named by `node` (occupancy \
                is per node).",
            schema: "RoomBody",
            example: room("room_occupied", 1, false),
            accepted: "Received (the body is not read).",
            reply: false,
            refused: RETRIED,
        },
        Hook {
            key: "$join",
            operation_id: "socketJoined",
            summary: "A socket joined a room",
            description: "A socket joined a room; `socket` has its rooms after the join.",
            schema: "RoomBody",
            example: room("join", 1, true),
            accepted: "Received (the body is not read).",
            reply: false,
            refused: RETRIED,
        },
        Hook {
            key: "$leave",
            operation_id: "socketLeft",
            summary: "A socket left a room",
            description: "A socket left a room, or disconnected while in it (then with \
                `reason`); `socket` has its rooms before it went.",
            schema: "RoomBody",
            example: room("leave", 0, true),
            accepted: "Received (the body is not read).",
            reply: false,
            refused: RETRIED,
        },
        Hook {
            key: "$room_vacated",
            operation_id: "roomVacated",
            summary: "A room lost its last socket on a node",
            description: "A room lost its last socket on the node named by `node` (with \
                `reason` when a disconnect caused it).",
            schema: "RoomBody",
            example: room("room_vacated", 0, false),
            accepted: "Received (the body is not read).",
            reply: false,
            refused: RETRIED,
        },
        Hook {
            key: "batch",
            operation_id: "batch",
            summary: "Deliveries of a batched webhook, several in one request",
            description: "A webhook with `batch` set receives every delivery (client events and \
                the lifecycle events it subscribes to) grouped: up to `batch.max_events` bodies \
                and `batch.max_bytes` bytes of them per request, sent at most \
                `batch.max_wait_ms` after the first arrived; a body larger than `max_bytes` goes \
                alone. A node sends at most `batch.max_in_flight` of a webhook's batches at once \
                (1 by default), a socket's deliveries always in the same lane, so they arrive in \
                order (by `seq`) within and across batches. Each entry has its own `id`, \
                stable across retries (deduplicate on it); `webhook-id` is the batch's, the same \
                on every retry of the same deliveries.",
            schema: "BatchBody",
            example: json!({"type": "batch", "deliveries": [
                {"id": "msg_0193b1c2d3e47f6a8b9c0d1e2f3a4b5c", "body": {"type": "event",
                    "namespace": "/chat", "event": "chat:message", "args": ["hello"],
                    "ack": false, "socket": socket, "seq": 4, "timestamp": at}},
                {"id": "msg_0193b1c2d3e47f6a8b9c0d1e2f3a4b5d", "body": {"type": "disconnect",
                    "namespace": "/chat", "reason": "transport close", "socket": socket,
                    "seq": 5, "timestamp": at}}]}),
            accepted: "Every delivery in it received (the body is not read).",
            reply: false,
            refused: "A failed attempt of every delivery in it: retried whole on 408, 429 and \
                5xx (after `Retry-After`, if given), final on other statuses. For a durable \
                webhook each delivery is recorded in `/admin/deliveries` and retried on the \
                outbox's schedule, due ones together in one batch.",
        },
    ]
}

/// `BatchBody`: the deliveries of one batch, each body (a `WebhookBody`) beside its own id.
fn batch_body() -> Schema {
    let id = ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some("^msg_[0-9a-f]{32}$"))
        .description(Some("The delivery's own id, the same on every retry"))
        .build();
    let entry = ObjectBuilder::new()
        .property("id", id)
        .required("id")
        .property("body", schema_ref("WebhookBody"))
        .required("body")
        .build();
    let kind = ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(["batch"]))
        .build();
    Schema::Object(
        ObjectBuilder::new()
            .description(Some(
                "One request of a batched webhook: its deliveries in the order they were queued.",
            ))
            .property("type", kind)
            .required("type")
            .property(
                "deliveries",
                utoipa::openapi::schema::ArrayBuilder::new()
                    .items(entry)
                    .min_items(Some(1))
                    .build(),
            )
            .required("deliveries")
            .build(),
    )
}

/// The Standard Webhooks headers (and the user agent) of every delivery.
fn headers() -> Vec<utoipa::openapi::path::Parameter> {
    let string = |pattern: &str, example: &str| {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(pattern))
            .examples([json!(example)])
            .build()
    };
    [
        (
            "webhook-id",
            "The delivery's id, the same on every retry: deduplicate on it",
            string("^msg_[0-9a-f]{32}$", "msg_0193b1c2d3e47f6a8b9c0d1e2f3a4b5c"),
        ),
        (
            "webhook-timestamp",
            "Unix seconds of this attempt; reject one too far from now (5 minutes)",
            string("^[0-9]+$", "1795733225"),
        ),
        (
            "webhook-signature",
            "`v1,<base64 HMAC-SHA256 of \"{webhook-id}.{webhook-timestamp}.{body}\">` keyed \
             with the secret (`whsec_<base64 key>`); two, space-separated, for 24 hours after \
             `rotate-secret`",
            string(
                "^v1,[A-Za-z0-9+/]+={0,2}( v1,[A-Za-z0-9+/]+={0,2})*$",
                "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            ),
        ),
        (
            "user-agent",
            "`bridge/<version>`",
            string("^bridge/", concat!("bridge/", env!("CARGO_PKG_VERSION"))),
        ),
    ]
    .into_iter()
    .map(|(name, description, schema)| {
        ParameterBuilder::new()
            .name(name)
            .parameter_in(ParameterIn::Header)
            .required(Required::True)
            .description(Some(description))
            .schema(Some(schema))
            .build()
    })
    .collect()
}

fn schema_ref(name: &str) -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name(name))
}

impl Modify for Webhooks {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for (name, schema) in [
            (SocketInfo::name(), SocketInfo::schema()),
            (Handshake::name(), Handshake::schema()),
            (RoomChange::name(), RoomChange::schema()),
            (RoomBody::name(), RoomBody::schema()),
            (WebhookReply::name(), WebhookReply::schema()),
            (ReplyEmit::name(), ReplyEmit::schema()),
            (ReplyUserId::name(), ReplyUserId::schema()),
        ] {
            components.schemas.insert(name.into_owned(), schema);
        }
        // `Body` is the `allOf` of `Kind` (flattened) and the fields every kind has: each kind
        // becomes one object with those fields.
        let mut common = ObjectBuilder::new().build();
        if let RefOr::T(Schema::AllOf(all_of)) = Body::schema() {
            for part in &all_of.items {
                if let RefOr::T(Schema::Object(object)) = part {
                    merge_object(&mut common, object);
                }
            }
        }
        let RefOr::T(kind) = Kind::schema() else {
            return;
        };
        let mut union = Vec::new();
        for (kind, mut object) in tagged_variants(&kind, "type", components) {
            merge_object(&mut object, &common);
            let name = format!("{}Body", pascal_case(&kind));
            components
                .schemas
                .insert(name.clone(), RefOr::T(Schema::Object(object)));
            union.push((kind, name));
        }
        for change in [
            RoomChange::RoomOccupied,
            RoomChange::RoomVacated,
            RoomChange::Join,
            RoomChange::Leave,
        ] {
            let kind = change.event_name().trim_start_matches('$').to_owned();
            union.push((kind, RoomBody::name().into_owned()));
        }
        components.schemas.insert(
            "WebhookBody".into(),
            RefOr::T(discriminated_union(
                "type",
                "Any body the bridge sends, by `type`: for a backend that takes every delivery at one URL.",
                &union,
            )),
        );

        components
            .schemas
            .insert("BatchBody".into(), RefOr::T(batch_body()));

        let mut paths = Paths::new();
        for hook in hooks() {
            let reply_content = ContentBuilder::new()
                .schema(Some(schema_ref(&WebhookReply::name())))
                .build();
            let mut accepted = ResponseBuilder::new().description(hook.accepted);
            if hook.reply {
                accepted = accepted.content("application/json", reply_content);
            }
            let responses = ResponsesBuilder::new()
                .response("2XX", accepted.build())
                .response(
                    "default",
                    ResponseBuilder::new().description(hook.refused).build(),
                )
                .build();
            let body = RequestBodyBuilder::new()
                .description(Some(format!(
                    "`content-type: application/json`; verify the signature over these bytes \
                     before parsing. Schema `{}`.",
                    hook.schema
                )))
                .required(Some(Required::True))
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(schema_ref(hook.schema)))
                        .example(Some(hook.example))
                        .build(),
                )
                .build();
            let operation = OperationBuilder::new()
                .operation_id(Some(hook.operation_id))
                .summary(Some(hook.summary))
                .description(Some(hook.description))
                .tag("webhooks")
                .parameters(Some(headers()))
                .request_body(Some(body))
                .responses(responses)
                .build();
            paths.paths.insert(
                hook.key.to_owned(),
                PathItem::new(HttpMethod::Post, operation),
            );
        }
        openapi.webhooks.get_or_insert_with(Paths::new).merge(paths);
    }
}
