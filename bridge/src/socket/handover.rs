//! Handing a stopping node's clients over to the other nodes.
//!
//! - [`route_sessions`], a middleware in front of socketioxide: while the node drains, a new
//!   Engine.IO session (a request without `sid`) is refused with 503, so that the client or its
//!   load balancer goes to another node; a request for a session this node does not hold answers
//!   404 where engineioxide answers 400, so that a load balancer may try the next node (nginx's
//!   `proxy_next_upstream http_404`: a 404 never marks a node as failed); a WebSocket upgrade of
//!   a polling session is recorded with its connection, which the drain closes.
//! - [`Gateway::hand_over`] closes every client's transport, never with a Socket.IO DISCONNECT
//!   (the official clients take one as final and stop reconnecting): polling sessions first, all
//!   at once (their next request would otherwise reach another node once a load balancer marks
//!   this one down), then WebSockets one after another over the drain window, so that the other
//!   nodes see a ramp rather than a storm. While it drains, sessions do not upgrade to WebSocket.
//!   A socket whose transport cannot be closed in time is disconnected with a DISCONNECT packet
//!   at the end, so that its webhooks are still told.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use admin_api::ApiError;
use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use socketioxide::adapter::Adapter;
use socketioxide::extract::SocketRef;
use socketioxide::{ProtocolVersion, TransportType};
use tokio::time::Instant;
use tower::ServiceExt;

use super::Gateway;
use super::v2_compat::is_upgrade;
use crate::listener::Connections;
use crate::shutdown::Stopping;

/// The reason `$disconnect`, `$leave` and `$room_vacated` bodies give for the sockets of a
/// stopping node (Socket.IO's own name for it).
pub const STOPPING_REASON: &str = "server shutting down";
/// Longest wait, after the last close, for the closed sockets to be gone.
const SETTLE: Duration = Duration::from_secs(2);
/// engineioxide's answer to a request for a session it does not hold (400).
const UNKNOWN_SESSION: &[u8] = br#"{"code":"1","message":"Session ID unknown"}"#;

/// What [`route_sessions`] reads.
#[derive(Clone)]
pub struct Handover {
    /// Whether the node is stopping, and the polling sessions its drain closed.
    pub stopping: Arc<Stopping>,
    /// The public listener's connections, told which session each upgraded one carries.
    pub connections: Arc<Connections>,
}

/// Middleware on the Engine.IO path: see the module documentation.
pub async fn route_sessions(
    State(handover): State<Handover>,
    req: Request,
    next: Next,
) -> Response {
    if !is_engine_path(req.uri().path()) {
        return next.run(req).await;
    }
    let Some(sid) = query_value(req.uri().query(), "sid").map(str::to_owned) else {
        if handover.stopping.is_draining() {
            return ApiError::Draining.into_response();
        }
        return next.run(req).await;
    };
    if let Some(protocol) = handover.stopping.closed_polling(&sid) {
        // A poll learns that its session is closed; data sent after the close is refused as
        // such (410), not as a session this node never held (404, which a balancer retries).
        return if req.method() == Method::GET {
            close_packet(protocol)
        } else {
            StatusCode::GONE.into_response()
        };
    }
    let upgrade = is_upgrade(&req);
    if upgrade && handover.stopping.is_draining() {
        // A session does not move to a WebSocket the drain would have to find again; its client
        // stays on polling until the hand-over closes it.
        return bad_request();
    }
    let upgrade = upgrade.then(|| {
        req.extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0)
    });
    let response = next.run(req).await;
    match response.status() {
        StatusCode::SWITCHING_PROTOCOLS => {
            if let Some(Some(remote)) = upgrade {
                handover.connections.name_session(&remote, &sid);
            }
            response
        }
        StatusCode::BAD_REQUEST => not_here(response).await,
        _ => response,
    }
}

/// Whether `path` is socketioxide's (engineioxide takes `/socket.io` and anything below it).
fn is_engine_path(path: &str) -> bool {
    path == "/socket.io" || path.starts_with("/socket.io/")
}

/// engineioxide's own answer to a request it cannot take.
fn bad_request() -> Response {
    (
        StatusCode::BAD_REQUEST,
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"code":"3","message":"Bad request"}"#,
    )
        .into_response()
}

/// The value of `name` in a query string (Engine.IO ids need no decoding).
fn query_value<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?
        .split('&')
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
        .filter(|value| !value.is_empty())
}

/// engineioxide's 400 for an unknown session becomes a 404 (same body); other 400s pass.
async fn not_here(response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 1024).await else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    if bytes.as_ref() == UNKNOWN_SESSION {
        parts.status = StatusCode::NOT_FOUND;
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// An Engine.IO close packet as a polling answer: the client reconnects ("transport close").
fn close_packet(protocol: ProtocolVersion) -> Response {
    let packet = match protocol {
        ProtocolVersion::V4 => "1:1",
        _ => "1",
    };
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; charset=UTF-8")],
        packet,
    )
        .into_response()
}

/// One client's Engine.IO session, as the drain closes it.
struct ClientSession {
    sid: String,
    protocol: ProtocolVersion,
    /// Its address when the session began on a WebSocket (the handshake is that connection).
    websocket_handshake: Option<SocketAddr>,
}

impl<A: Adapter> Gateway<A> {
    /// Closes the transport of every client of this node: polling sessions at once, WebSockets
    /// spread evenly over `window`; then waits (at most 2 s) for their sockets to be gone.
    /// `router` is the public router, through which polling sessions are closed as if their
    /// client had sent an Engine.IO close packet.
    pub async fn hand_over(&self, window: Duration, router: &Router) {
        let (polling, _) = self.client_sessions();
        for session in &polling {
            self.close_polling(session, router).await;
        }
        // Listed after: a session that finished its upgrade meanwhile is a WebSocket now.
        let (_, websockets) = self.client_sessions();
        tracing::info!(
            polling = polling.len(),
            websockets = websockets.len(),
            window_ms = window.as_millis(),
            "handing clients over to the other nodes"
        );
        let start = Instant::now();
        let count = u32::try_from(websockets.len()).unwrap_or(u32::MAX);
        for (i, session) in (0..count).zip(&websockets) {
            tokio::time::sleep_until(start + window / count * i).await;
            self.close_websocket(session);
        }
        self.settle(router).await;
    }

    /// Waits for the closed sockets to be gone, closing again whatever is still there (a
    /// namespace joined over a session during the drain); gives up after [`SETTLE`].
    async fn settle(&self, router: &Router) {
        let deadline = Instant::now() + SETTLE;
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let (polling, websockets) = self.client_sessions();
            if polling.is_empty() && websockets.is_empty() {
                return;
            }
            if Instant::now() >= deadline {
                self.disconnect_stragglers(polling.iter().chain(&websockets))
                    .await;
                return;
            }
            for session in &polling {
                self.close_polling(session, router).await;
            }
            for session in &websockets {
                self.close_websocket(session);
            }
        }
    }

    /// Sockets whose transport could not be closed are disconnected the Socket.IO way, so that
    /// their `$disconnect` and room deliveries still go out (socketioxide's `close` would run no
    /// disconnect handler); their clients take it as final, which is why it is the last resort.
    async fn disconnect_stragglers<'a>(&self, left: impl Iterator<Item = &'a ClientSession>) {
        let sids: Vec<&str> = left.map(|s| s.sid.as_str()).collect();
        tracing::warn!(
            ?sids,
            "sockets still open after the drain; disconnecting them"
        );
        for sid in &sids {
            self.stopping.hand_over(sid, None);
        }
        for name in self.registered_names() {
            super::disconnect_all(&self.io, &name).await;
        }
    }

    /// The namespaces registered now.
    fn registered_names(&self) -> Vec<String> {
        let registered = self.registered.lock().unwrap_or_else(|e| e.into_inner());
        registered.iter().cloned().collect()
    }

    /// Closes a WebSocket session's connection.
    fn close_websocket(&self, session: &ClientSession) {
        self.stopping.hand_over(&session.sid, None);
        if !self
            .connections
            .close_session(&session.sid, session.websocket_handshake)
        {
            tracing::debug!(sid = %session.sid, "no open connection for this WebSocket session");
        }
    }

    /// This node's client sessions (one per Engine.IO connection, whatever its namespaces):
    /// polling ones, then WebSocket ones.
    fn client_sessions(&self) -> (Vec<ClientSession>, Vec<ClientSession>) {
        let names = self.registered_names();
        let mut seen = HashSet::new();
        let (mut polling, mut websockets) = (Vec::new(), Vec::new());
        for name in names {
            let Some(ops) = self.io.of(name.as_str()) else {
                continue;
            };
            for socket in ops.local().broadcast().sockets() {
                if !seen.insert(socket.id) {
                    continue;
                }
                let session = client_session(&socket);
                match socket.transport_type() {
                    TransportType::Polling => polling.push(session),
                    TransportType::Websocket => websockets.push(session),
                }
            }
        }
        (polling, websockets)
    }

    /// Ends a polling session as its client's Engine.IO close packet would (engineioxide runs
    /// the disconnect handlers at once); its next poll is answered with a close packet.
    async fn close_polling(&self, session: &ClientSession, router: &Router) {
        // Recorded first, so that its disconnect reason says why; the POST itself passes
        // `route_sessions` (only GETs of a closed session get the close packet).
        self.stopping
            .hand_over(&session.sid, Some(session.protocol));
        let (eio, packet) = match session.protocol {
            ProtocolVersion::V4 => ("3", "1:1"),
            _ => ("4", "1"),
        };
        let request = Request::post(format!(
            "/socket.io/?EIO={eio}&transport=polling&sid={}",
            session.sid
        ))
        .header(header::CONTENT_TYPE, "text/plain;charset=UTF-8")
        .body(Body::from(packet));
        let Ok(request) = request else {
            return;
        };
        // The session's own pending poll is answered by engineioxide; this only closes it.
        let Ok(response) = router.clone().oneshot(request).await;
        if !response.status().is_success() {
            // Gone, or upgraded meanwhile (a 400): the WebSocket phase closes it then.
            tracing::debug!(sid = %session.sid, status = %response.status(), "polling session not closed");
        }
    }
}

fn client_session<A: Adapter>(socket: &SocketRef<A>) -> ClientSession {
    let parts = socket.req_parts();
    let began_on_websocket = query_value(parts.uri.query(), "transport") == Some("websocket");
    ClientSession {
        sid: socket.id.to_string(),
        protocol: socket.protocol(),
        websocket_handshake: began_on_websocket
            .then(|| {
                parts
                    .extensions
                    .get::<ConnectInfo<SocketAddr>>()
                    .map(|c| c.0)
            })
            .flatten(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_query_values() {
        let q = Some("EIO=4&transport=polling&sid=abc-_1&t=x");
        assert_eq!(query_value(q, "sid"), Some("abc-_1"));
        assert_eq!(query_value(q, "transport"), Some("polling"));
        assert_eq!(query_value(Some("EIO=4&sid="), "sid"), None);
        assert_eq!(query_value(Some("xsid=1"), "sid"), None);
        assert_eq!(query_value(None, "sid"), None);
    }
}
