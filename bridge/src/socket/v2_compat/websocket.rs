//! Engine.IO 3 WebSockets: the client's connection ends here and is relayed to socketioxide over
//! an in-memory HTTP connection, so that CONNECT text frames can be rewritten on the way in.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message};
use tower::ServiceExt;

use super::{V2Compat, strip_connect_query};

/// Buffer of the in-memory connection between the relay and socketioxide (grown as needed).
const PIPE_BYTES: usize = 64 * 1024;
/// Bytes each of the relay's WebSocket stacks reads at a time (a larger message is read in
/// several; socketioxide's own stack reads 1 KiB at a time too). Kept by every idle connection.
const RELAY_READ_BUFFER: usize = 1024;

/// Whether `req` asks for a WebSocket upgrade.
pub fn is_upgrade(req: &Request) -> bool {
    req.headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// Answers the client's upgrade itself and relays the connection to socketioxide.
pub async fn relay(compat: V2Compat, mut req: Request) -> Response {
    let Some(key) = req.headers().get(header::SEC_WEBSOCKET_KEY).cloned() else {
        return (StatusCode::BAD_REQUEST, "missing Sec-WebSocket-Key").into_response();
    };
    // tungstenite's defaults allocate a 128 KiB read buffer per stack, two stacks per relayed
    // connection: most of a v2 connection's memory. Small frames, small buffers; writes go out
    // at once (a relay has nothing to batch).
    let config = WebSocketConfig::default()
        .max_message_size(Some(compat.limit))
        .max_frame_size(Some(compat.limit))
        .read_buffer_size(RELAY_READ_BUFFER)
        .write_buffer_size(0);
    let request = match inner_request(&req) {
        Ok(request) => request,
        Err(err) => return (StatusCode::BAD_REQUEST, err).into_response(),
    };
    // The relayed request keeps the client's address, as if it had come straight in.
    let connect_info = req.extensions().get::<ConnectInfo<SocketAddr>>().cloned();
    let inner = match connect_inner(&compat, request, connect_info, config).await {
        Ok(ws) => ws,
        Err(answer) => return answer,
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let outer = WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    Role::Server,
                    Some(config),
                )
                .await;
                pump(outer, inner).await;
            }
            Err(err) => tracing::debug!(%err, "v2 WebSocket upgrade failed"),
        }
    });
    switching_protocols(&key)
}

/// Opens a WebSocket to socketioxide with the client's own request (same URL and headers),
/// over an in-memory HTTP connection served by the inner router.
///
/// The upgrade goes through hyper's client rather than tungstenite's: tungstenite's client
/// handshake hands its 4 KiB read buffer to the WebSocket it makes, held for the connection's
/// lifetime (4.1 KiB per idle v2 connection, measured with heaptrack).
async fn connect_inner(
    compat: &V2Compat,
    request: axum::http::Request<Body>,
    connect_info: Option<ConnectInfo<SocketAddr>>,
    config: WebSocketConfig,
) -> Result<WebSocketStream<TokioIo<Upgraded>>, Response> {
    let (client_io, server_io) = tokio::io::duplex(PIPE_BYTES);
    let service = compat.inner.clone().map_request(
        move |inner_req: axum::http::Request<hyper::body::Incoming>| {
            // socketioxide keeps the request: not the inner connection's read buffer with it.
            let (mut parts, body) = inner_req.into_parts();
            if let Some(info) = connect_info {
                parts.extensions.insert(info);
            }
            crate::socket::owned_request::own_parts(&mut parts);
            axum::http::Request::from_parts(parts, Body::new(body))
        },
    );
    tokio::spawn(async move {
        let served = hyper::server::conn::http1::Builder::new()
            .max_buf_size(8192)
            .serve_connection(TokioIo::new(server_io), TowerToHyperService::new(service))
            .with_upgrades()
            .await;
        if let Err(err) = served {
            tracing::debug!(%err, "relayed v2 WebSocket connection ended");
        }
    });
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(client_io))
        .await
        .map_err(relay_failed)?;
    tokio::spawn(async move {
        if let Err(err) = connection.with_upgrades().await {
            tracing::debug!(%err, "v2 relay's inner client connection ended");
        }
    });
    let response = sender.send_request(request).await.map_err(relay_failed)?;
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        // socketioxide refused (unknown sid, bad transport): the client gets the same answer.
        let (parts, body) = response.into_parts();
        return Err(Response::from_parts(parts, Body::new(body)));
    }
    let upgraded = hyper::upgrade::on(response).await.map_err(relay_failed)?;
    Ok(WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Client, Some(config)).await)
}

fn relay_failed(err: impl std::fmt::Display) -> Response {
    (StatusCode::BAD_GATEWAY, format!("WebSocket relay: {err}")).into_response()
}

/// The client's upgrade request for the inner connection, without extension negotiation
/// (the relay speaks plain WebSocket on both sides).
fn inner_request(req: &Request) -> Result<axum::http::Request<Body>, String> {
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let mut request = axum::http::Request::builder()
        .uri(path)
        .body(Body::empty())
        .map_err(|e| e.to_string())?;
    let mut headers: HeaderMap = req.headers().clone();
    headers.remove(header::SEC_WEBSOCKET_EXTENSIONS);
    if !headers.contains_key(header::HOST) {
        headers.insert(header::HOST, HeaderValue::from_static("relay"));
    }
    *request.headers_mut() = headers;
    Ok(request)
}

fn switching_protocols(key: &HeaderValue) -> Response {
    let accept = derive_accept_key(key.as_bytes());
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(value) = HeaderValue::from_str(&accept) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, value);
    }
    response
}

/// Copies messages both ways until either side closes; CONNECT frames from the client are fixed.
async fn pump<O, I>(outer: O, inner: I)
where
    O: Stream<Item = Result<Message, tungstenite::Error>> + Sink<Message> + Unpin,
    I: Stream<Item = Result<Message, tungstenite::Error>> + Sink<Message> + Unpin,
{
    let (mut to_client, mut from_client) = outer.split();
    let (mut to_server, mut from_server) = inner.split();
    let upstream = async {
        while let Some(Ok(message)) = from_client.next().await {
            let message = match message {
                Message::Text(text) => match strip_connect_query(text.as_str()) {
                    Some(fixed) => Message::text(fixed),
                    None => Message::Text(text),
                },
                // Pings are answered by each side's own WebSocket stack.
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
                other => other,
            };
            if to_server.send(message).await.is_err() {
                break;
            }
        }
        let _ = to_server.close().await;
    };
    let downstream = async {
        while let Some(Ok(message)) = from_server.next().await {
            if matches!(
                message,
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_)
            ) {
                continue;
            }
            if to_client.send(message).await.is_err() {
                break;
            }
        }
        let _ = to_client.close().await;
    };
    tokio::join!(upstream, downstream);
}
