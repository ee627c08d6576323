//! Works around a socketioxide 0.18.9 bug with socket.io-client v2 (Engine.IO 3).
//!
//! A v2 client puts its `query` into the CONNECT packet of a custom namespace
//! (`40/chat?token=abc,`), and socketioxide keeps `?token=abc` in the namespace name, so the
//! client never connects. (The same query is on the handshake URL, where the bridge reads it.)
//! This middleware strips the query from CONNECT packets before socketioxide parses them:
//! - [`polling`]: in Engine.IO 3 polling POST bodies, rewritten in place;
//! - on Engine.IO 3 WebSockets, the client's CONNECT text frames, rewritten in the byte stream
//!   below socketioxide's WebSocket stack once the upgrade is answered (the listener's connection
//!   reads through a [`ConnectRewriter`](crate::v2_connect::frames::ConnectRewriter) from then on).
//!
//! Both apply [`strip_connect_query`](crate::v2_connect::strip_connect_query).
//!
//! Every other request (Engine.IO 4, v3/v4 clients) passes untouched. The upstream fix:
//! socketioxide's protocol-4 parser should split the namespace at `?`.

pub mod polling;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::listener::Connections;

/// What the middleware needs: the body limit, and the public listener's connections.
#[derive(Clone)]
pub struct V2Compat {
    /// Largest polling body accepted (the configured max payload).
    pub limit: usize,
    /// The public listener's open connections, told which ones became Engine.IO 3 WebSockets.
    pub connections: Arc<Connections>,
}

/// Middleware entry point.
pub async fn fix_v2_connect(State(compat): State<V2Compat>, req: Request, next: Next) -> Response {
    if !is_eio3(&req) {
        return next.run(req).await;
    }
    if is_upgrade(&req) {
        let remote = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0);
        let response = next.run(req).await;
        if response.status() == StatusCode::SWITCHING_PROTOCOLS {
            // Set before hyper sends the 101: the client's first frame comes after it.
            match remote {
                Some(remote) => compat.connections.rewrite_v2_connects(&remote),
                None => tracing::warn!("an Engine.IO 3 WebSocket without its client address"),
            }
        }
        return response;
    }
    if polling::is_eio3_polling_post(&req) {
        return polling::rewrite(compat.limit, req, next).await;
    }
    next.run(req).await
}

/// Whether `req` asks for a WebSocket upgrade.
pub(crate) fn is_upgrade(req: &Request) -> bool {
    req.headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

fn is_eio3(req: &Request) -> bool {
    req.uri().path().starts_with("/socket.io/")
        && req
            .uri()
            .query()
            .unwrap_or("")
            .split('&')
            .any(|kv| kv == "EIO=3")
}
