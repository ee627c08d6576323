//! `/v1/*` handlers: selectors become socketioxide operators; no loop over sockets here
//! (room changes are applied socket by socket in `socket::rooms`).

use std::collections::HashSet;
use std::time::Duration;

use admin_api::ApiError;
use admin_api::extract::{JsonBody, from_value};
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use futures_util::StreamExt;
use socketioxide::adapter::Adapter;
use socketioxide::operators::BroadcastOperators;
use socketioxide::{BroadcastError, EmitWithAckError};

use super::EmitState;
use super::auth::Caller;
use super::model::{
    AckEntry, BatchRequest, BatchResponse, DisconnectRequest, EmitRequest, EmitResponse, MAX_BATCH,
    Member, MembersQuery, MembersResponse, OkResponse, RoomsQuery, RoomsRequest, RoomsResponse,
    SocketEntry, SocketsQuery, SocketsResponse, Targets, page_size,
};
use crate::cluster::bus::RoomOp;
use crate::cluster::{NODE_ROOM_PREFIX, is_node_room};
use crate::payload::{AckArgs, Args, message_size};
use crate::socket::session::INERT_ROOM;

/// Emit an event to sockets of a namespace.
#[utoipa::path(post, path = "/v1/emit", operation_id = "emitEvent", tag = "emit",
    request_body(content = EmitRequest, examples(
        ("room" = (summary = "One argument to a room", value = json!({"namespace": "/chat", "rooms": ["lobby"],
            "event": "chat:message", "data": {"from": "backend", "text": "hello"}}))),
        ("user" = (summary = "Several arguments to a user's sockets, but not in one room", value = json!({
            "namespace": "/chat", "users": ["alice"], "except": ["muted"], "event": "notice", "args": ["maintenance", 5]}))),
        ("acks" = (summary = "Wait for the clients' acknowledgements", value = json!({"namespace": "/chat",
            "sockets": ["Xv3Lx2ZyV0eXlWbeAAAB"], "event": "ping", "ack_timeout_ms": 2000}))),
    )),
    responses((status = 200, description = "Sent; with `ack_timeout_ms`, the acknowledgements", body = EmitResponse),
        (status = 413, description = "The request body, or the message to clients, is too large (`payload_too_large`)", body = admin_api::error::ErrorBody)),
    security(("api_key" = [])))]
pub async fn emit<A: Adapter>(
    State(state): State<EmitState<A>>,
    caller: Caller,
    JsonBody(req): JsonBody<EmitRequest>,
) -> Result<Json<EmitResponse>, ApiError> {
    Ok(Json(send(&state, &caller, req).await?))
}

/// Emit up to 100 messages in order; each gets its own result.
#[utoipa::path(post, path = "/v1/emit/batch", operation_id = "emitBatch", tag = "emit",
    request_body(content = BatchRequest, example = json!({"messages": [
        {"namespace": "/chat", "rooms": ["lobby"], "event": "chat:message", "data": {"text": "one"}},
        {"namespace": "/chat", "rooms": ["lobby"], "event": "chat:message", "data": {"text": "two"}}]})),
    responses((status = 200, description = "One result per message, in order", body = BatchResponse),
        (status = 400, description = "Not a list of at most 100 messages (`bad_request`, `invalid_field`)", body = admin_api::error::ErrorBody)),
    security(("api_key" = [])))]
pub async fn batch<A: Adapter>(
    State(state): State<EmitState<A>>,
    caller: Caller,
    JsonBody(req): JsonBody<BatchRequest>,
) -> Result<Json<BatchResponse>, ApiError> {
    if req.messages.len() > MAX_BATCH {
        return Err(ApiError::invalid(
            "messages",
            format!("at most {MAX_BATCH} messages"),
        ));
    }
    let mut results = Vec::with_capacity(req.messages.len());
    for (idx, message) in req.messages.into_iter().enumerate() {
        let outcome = match from_value::<EmitRequest>(message, &format!("messages[{idx}]")) {
            Ok(req) => send(&state, &caller, req).await,
            Err(err) => Err(err),
        };
        results.push(
            match outcome {
                Ok(answer) => serde_json::to_value(answer),
                Err(err) => serde_json::to_value(err.body()),
            }
            .unwrap_or_default(),
        );
    }
    Ok(Json(BatchResponse { results }))
}

async fn send<A: Adapter>(
    state: &EmitState<A>,
    caller: &Caller,
    req: EmitRequest,
) -> Result<EmitResponse, ApiError> {
    caller.require(&req.namespace)?;
    let args = req.validate()?;
    // Over the clients' limit a v2 client would be disconnected for it (and a v4 one may be).
    let (size, max) = (message_size(&req.event, &args), state.gateway.max_payload);
    if size > max {
        return Err(ApiError::MessageTooLarge(size, max));
    }
    let ops = operators(state, &req.namespace, &req.targets())?;
    let answer = match (ops, req.ack_timeout_ms) {
        (None, ack) => EmitResponse {
            ok: true,
            acks: ack.map(|_| Vec::new()),
            timed_out: ack.map(|_| 0),
        },
        (Some(ops), None) => {
            match ops.emit(&req.event, &args).await {
                Ok(()) => {}
                Err(BroadcastError::Adapter(err)) => return Err(emit_failed(err)),
                Err(err) => note_partial(&err),
            }
            EmitResponse {
                ok: true,
                acks: None,
                timed_out: None,
            }
        }
        (Some(ops), Some(ms)) => {
            collect_acks(ops, &req.event, &args, Duration::from_millis(ms)).await?
        }
    };
    state.gateway.counters.emitted();
    metrics::counter!(crate::metrics::EMITS, "outcome" => "sent").increment(1);
    Ok(answer)
}

/// Some sockets could not take the message (a full buffer, a closing socket): counted, not
/// fatal. (An emit the other nodes may have missed is an error instead: [`adapter_failed`].)
fn note_partial(err: &dyn std::fmt::Display) {
    metrics::counter!(crate::metrics::EMITS, "outcome" => "partial").increment(1);
    tracing::warn!(%err, "an emit did not reach every socket");
}

/// An adapter request (emit, join, leave, listing) that failed: the other nodes may not have
/// acted, so the caller hears it rather than a partial success.
fn adapter_failed(err: impl std::fmt::Display) -> ApiError {
    ApiError::AdapterUnavailable(err.to_string())
}

/// An emit the adapter could not pass to the other nodes: counted, and answered as such.
fn emit_failed(err: impl std::fmt::Display) -> ApiError {
    metrics::counter!(crate::metrics::EMITS, "outcome" => "adapter_unavailable").increment(1);
    adapter_failed(err)
}

async fn collect_acks<A: Adapter>(
    ops: BroadcastOperators<A>,
    event: &str,
    args: &Args,
    timeout: Duration,
) -> Result<EmitResponse, ApiError> {
    let stream = match ops
        .timeout(timeout)
        .emit_with_ack::<_, AckArgs>(event, args)
        .await
    {
        Ok(stream) => stream,
        Err(EmitWithAckError::Adapter(err)) => return Err(emit_failed(err)),
        Err(err) => {
            note_partial(&err);
            return Ok(EmitResponse {
                ok: true,
                acks: Some(Vec::new()),
                timed_out: Some(0),
            });
        }
    };
    let mut stream = std::pin::pin!(stream);
    let mut acks = Vec::new();
    let mut timed_out = 0;
    while let Some((sid, result)) = stream.next().await {
        match result {
            Ok(AckArgs(args)) => acks.push(AckEntry {
                socket: sid.to_string(),
                args,
            }),
            Err(err) => {
                tracing::debug!(%sid, %err, "no acknowledgement");
                timed_out += 1;
            }
        }
    }
    metrics::histogram!(crate::metrics::EMIT_SOCKETS_REACHED)
        .record((acks.len() + timed_out) as f64);
    Ok(EmitResponse {
        ok: true,
        acks: Some(acks),
        timed_out: Some(timed_out),
    })
}

/// The operator reaching `targets` in `namespace` (never the inert sockets); `None` when the
/// targets name no one (an explicit empty list reaches nobody, never everybody).
fn operators<A: Adapter>(
    state: &EmitState<A>,
    namespace: &str,
    targets: &Targets,
) -> Result<Option<BroadcastOperators<A>>, ApiError> {
    if state.gateway.is_closing() {
        return Err(ApiError::ShuttingDown);
    }
    let not_found = || ApiError::NotFound(format!("namespace {namespace} not found"));
    if state.gateway.catalog.namespace(namespace).is_none() {
        return Err(not_found());
    }
    // Refused up front rather than reaching this node's sockets only.
    state
        .gateway
        .cluster
        .health
        .check()
        .map_err(ApiError::AdapterUnavailable)?;
    let ops = state.gateway.io.of(namespace).ok_or_else(not_found)?;
    let rooms = targets.room_list();
    let ops = match (targets.selective, rooms.is_empty()) {
        (true, true) => return Ok(None),
        (true, false) => ops.to(rooms),
        (false, _) => ops.broadcast(),
    };
    let mut except = targets.except.clone();
    except.push(INERT_ROOM.to_owned());
    Ok(Some(ops.except(except)))
}

/// Make sockets join rooms.
#[utoipa::path(post, path = "/v1/join", operation_id = "joinRooms", tag = "rooms",
    request_body(content = RoomsRequest, example = json!({"namespace": "/chat", "users": ["alice"], "join": ["team-1"]})),
    responses((status = 200, description = "The sockets joined", body = OkResponse)),
    security(("api_key" = [])))]
pub async fn join<A: Adapter>(
    State(state): State<EmitState<A>>,
    caller: Caller,
    JsonBody(req): JsonBody<RoomsRequest>,
) -> Result<Json<OkResponse>, ApiError> {
    change_rooms(&state, &caller, &req, RoomOp::Join).await
}

/// Make sockets leave rooms.
#[utoipa::path(post, path = "/v1/leave", operation_id = "leaveRooms", tag = "rooms",
    request_body(content = RoomsRequest, example = json!({"namespace": "/chat", "rooms": ["team-1"], "leave": ["team-1"]})),
    responses((status = 200, description = "The sockets left", body = OkResponse)),
    security(("api_key" = [])))]
pub async fn leave<A: Adapter>(
    State(state): State<EmitState<A>>,
    caller: Caller,
    JsonBody(req): JsonBody<RoomsRequest>,
) -> Result<Json<OkResponse>, ApiError> {
    change_rooms(&state, &caller, &req, RoomOp::Leave).await
}

async fn change_rooms<A: Adapter>(
    state: &EmitState<A>,
    caller: &Caller,
    req: &RoomsRequest,
    op: RoomOp,
) -> Result<Json<OkResponse>, ApiError> {
    caller.require(&req.namespace)?;
    let rooms = req.rooms_of(op)?;
    if let Some(ops) = operators(state, &req.namespace, &req.targets())? {
        // Socket by socket, so that each node's room tracker sees whom the change reached.
        let sockets = ops.fetch_sockets().await.map_err(adapter_failed)?;
        let ids = sockets.iter().map(|s| s.data().id).collect();
        state
            .gateway
            .change_rooms(&req.namespace, op, rooms, ids)
            .await
            .map_err(adapter_failed)?;
    }
    Ok(Json(OkResponse { ok: true }))
}

/// Disconnect sockets.
#[utoipa::path(post, path = "/v1/disconnect", operation_id = "disconnectSockets", tag = "rooms",
    request_body(content = DisconnectRequest, example = json!({"namespace": "/chat", "users": ["mallory"]})),
    responses((status = 200, description = "The sockets are disconnected", body = OkResponse)),
    security(("api_key" = [])))]
pub async fn disconnect<A: Adapter>(
    State(state): State<EmitState<A>>,
    caller: Caller,
    JsonBody(req): JsonBody<DisconnectRequest>,
) -> Result<Json<OkResponse>, ApiError> {
    caller.require(&req.namespace)?;
    if let Some(ops) = operators(&state, &req.namespace, &req.targets())? {
        match ops.disconnect().await {
            Ok(()) => {}
            Err(err @ BroadcastError::Adapter(_)) => return Err(adapter_failed(err)),
            // A socket that was closing anyway.
            Err(err) => tracing::debug!(%err, "disconnect did not reach every socket"),
        }
    }
    Ok(Json(OkResponse { ok: true }))
}

/// List the sockets of a namespace, optionally in a room and/or of a user, a page at a time.
#[utoipa::path(get, path = "/v1/sockets", operation_id = "listSockets", tag = "rooms", params(SocketsQuery),
    responses((status = 200, description = "A page of sockets, by id", body = SocketsResponse)),
    security(("api_key" = [])))]
pub async fn sockets<A: Adapter>(
    State(state): State<EmitState<A>>,
    caller: Caller,
    query: Result<Query<SocketsQuery>, QueryRejection>,
) -> Result<Json<SocketsResponse>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let namespace = permitted_namespace(&caller, query.namespace.as_deref())?;
    let limit = page_size(query.limit)?;
    let user_room = query.user.as_ref().map(|u| format!("user:{u}"));
    let base = query.room.clone().or_else(|| user_room.clone());
    let targets = Targets {
        rooms: base.into_iter().collect(),
        selective: query.room.is_some() || query.user.is_some(),
        ..Targets::default()
    };
    let Some(ops) = operators(&state, namespace, &targets)? else {
        return Ok(Json(SocketsResponse {
            sockets: Vec::new(),
            next_cursor: None,
        }));
    };
    let mut found = ops.fetch_sockets().await.map_err(adapter_failed)?;
    found.sort_by_cached_key(|s| s.data().id.to_string());
    let after = query.cursor.as_deref().unwrap_or("");
    let mut candidates = found
        .into_iter()
        .filter(|s| s.data().id.as_str() > after)
        .peekable();
    let mut sockets = Vec::new();
    // Rooms are asked for the page's sockets only (a request to the holding node for a remote
    // one), a few at a time, until the page is full.
    while sockets.len() < limit && candidates.peek().is_some() {
        let batch: Vec<_> = candidates
            .by_ref()
            .take((limit - sockets.len()).min(ROOMS_AT_ONCE))
            .collect();
        let entries = futures_util::future::join_all(batch.iter().map(|s| socket_entry(s))).await;
        for entry in entries {
            let entry = entry?;
            if user_room.as_ref().is_none_or(|u| entry.rooms.contains(u)) {
                sockets.push(entry);
            }
        }
    }
    let next_cursor = match (candidates.peek(), sockets.last()) {
        (Some(_), Some(last)) => Some(last.id.clone()),
        _ => None,
    };
    Ok(Json(SocketsResponse {
        sockets,
        next_cursor,
    }))
}

/// Remote sockets asked for their rooms at once while listing.
const ROOMS_AT_ONCE: usize = 32;

/// One listed socket: its rooms (node and inert rooms left out), user and node.
async fn socket_entry<A: Adapter>(
    socket: &socketioxide::socket::RemoteSocket<A>,
) -> Result<SocketEntry, ApiError> {
    let all: Vec<String> = socket
        .rooms()
        .await
        .map_err(adapter_failed)?
        .into_iter()
        .map(|r| r.to_string())
        .collect();
    let node = all
        .iter()
        .find_map(|r| r.strip_prefix(NODE_ROOM_PREFIX))
        .unwrap_or_default()
        .to_owned();
    let rooms: Vec<String> = all
        .into_iter()
        .filter(|r| r != INERT_ROOM && !is_node_room(r))
        .collect();
    let user_id = rooms
        .iter()
        .find_map(|r| r.strip_prefix("user:"))
        .map(str::to_owned);
    Ok(SocketEntry {
        id: socket.data().id.to_string(),
        user_id,
        rooms,
        node,
    })
}

/// List the rooms of a namespace (socket-id rooms left out), a page at a time.
#[utoipa::path(get, path = "/v1/rooms", operation_id = "listRooms", tag = "rooms", params(RoomsQuery),
    responses((status = 200, description = "A page of room names, sorted", body = RoomsResponse)),
    security(("api_key" = [])))]
pub async fn rooms<A: Adapter>(
    State(state): State<EmitState<A>>,
    caller: Caller,
    query: Result<Query<RoomsQuery>, QueryRejection>,
) -> Result<Json<RoomsResponse>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let namespace = permitted_namespace(&caller, query.namespace.as_deref())?;
    let limit = page_size(query.limit)?;
    let all = Targets::default();
    // Two operators: both queries consume one, and `BroadcastOperators` is not `Clone`.
    let (Some(for_rooms), Some(for_ids)) = (
        operators(&state, namespace, &all)?,
        operators(&state, namespace, &all)?,
    ) else {
        return Ok(Json(RoomsResponse {
            rooms: Vec::new(),
            next_cursor: None,
        }));
    };
    let ids: HashSet<String> = for_ids
        .fetch_sockets()
        .await
        .map_err(adapter_failed)?
        .iter()
        .map(|s| s.data().id.to_string())
        .collect();
    let after = query.cursor.as_deref().unwrap_or("");
    let mut rooms: Vec<String> = for_rooms
        .rooms()
        .await
        .map_err(adapter_failed)?
        .into_iter()
        .map(|r| r.to_string())
        .filter(|r| r.as_str() > after && r != INERT_ROOM && !is_node_room(r) && !ids.contains(r))
        .collect();
    rooms.sort();
    let next_cursor = (rooms.len() > limit).then(|| rooms[limit - 1].clone());
    rooms.truncate(limit);
    Ok(Json(RoomsResponse { rooms, next_cursor }))
}

/// Presence: the distinct users in a room, with how many of their sockets are in it.
#[utoipa::path(get, path = "/v1/rooms/{room}/members", operation_id = "listRoomMembers", tag = "rooms",
    params(("room" = String, Path, description = "Room name"), MembersQuery),
    responses((status = 200, description = "A page of the room's users, by id", body = MembersResponse)),
    security(("api_key" = [])))]
pub async fn members<A: Adapter>(
    State(state): State<EmitState<A>>,
    caller: Caller,
    Path(room): Path<String>,
    query: Result<Query<MembersQuery>, QueryRejection>,
) -> Result<Json<MembersResponse>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let namespace = permitted_namespace(&caller, query.namespace.as_deref())?;
    let limit = page_size(query.limit)?;
    let targets = Targets {
        rooms: vec![room],
        selective: true,
        ..Targets::default()
    };
    let mut counts: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
    let mut anonymous_sockets = 0;
    if let Some(ops) = operators(&state, namespace, &targets)? {
        let found = ops.fetch_sockets().await.map_err(adapter_failed)?;
        // Rooms are asked a few sockets at a time (a request to the holding node for remote ones).
        for batch in found.chunks(ROOMS_AT_ONCE) {
            for entry in futures_util::future::join_all(batch.iter().map(|s| socket_entry(s))).await
            {
                match entry?.user_id {
                    Some(user) => *counts.entry(user).or_default() += 1,
                    None => anonymous_sockets += 1,
                }
            }
        }
    }
    let after = query.cursor.as_deref().unwrap_or("");
    let mut members: Vec<Member> = counts
        .into_iter()
        .filter(|(user_id, _)| user_id.as_str() > after)
        .take(limit + 1)
        .map(|(user_id, sockets)| Member { user_id, sockets })
        .collect();
    let next_cursor = (members.len() > limit).then(|| members[limit - 1].user_id.clone());
    members.truncate(limit);
    Ok(Json(MembersResponse {
        members,
        anonymous_sockets,
        next_cursor,
    }))
}

/// The `namespace` query parameter: required, and one the caller's key may act on.
fn permitted_namespace<'a>(
    caller: &Caller,
    namespace: Option<&'a str>,
) -> Result<&'a str, ApiError> {
    let namespace = namespace
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::invalid("namespace", "required query parameter"))?;
    caller.require(namespace)?;
    Ok(namespace)
}
