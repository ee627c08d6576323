//! Works around a socketioxide 0.18.9 bug with socket.io-client v2 (Engine.IO 3).
//!
//! A v2 client puts its `query` into the CONNECT packet of a custom namespace
//! (`40/chat?token=abc,`), and socketioxide keeps `?token=abc` in the namespace name, so the
//! client never connects. The same query is also on the handshake URL, where the bridge reads it.
//! This middleware strips the query from CONNECT packets in Engine.IO 3 polling bodies before
//! socketioxide parses them. v2 clients send CONNECT over polling (before any upgrade), so
//! this covers them unless they are forced to `transports: ["websocket"]` (see the README).
//! The upstream fix: socketioxide's v4 parser should split the namespace at `?`.

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Largest polling body rewritten (the configured max payload).
#[derive(Debug, Clone, Copy)]
pub struct PayloadLimit(pub usize);

/// Middleware: rewrites CONNECT packets in Engine.IO 3 polling POST bodies, passes all else.
pub async fn fix_v2_connect(
    State(limit): State<PayloadLimit>,
    req: Request,
    next: Next,
) -> Response {
    if !is_eio3_polling_post(&req) {
        return next.run(req).await;
    }
    let (mut parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, limit.0).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, "payload too large").into_response();
    };
    let bytes = match std::str::from_utf8(&bytes).ok().and_then(rewrite_payload) {
        Some(fixed) => Bytes::from(fixed),
        None => bytes,
    };
    parts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

fn is_eio3_polling_post(req: &Request) -> bool {
    if req.method() != Method::POST || !req.uri().path().starts_with("/socket.io/") {
        return false;
    }
    let query = req.uri().query().unwrap_or("");
    let is_v3 = query.split('&').any(|kv| kv == "EIO=3");
    let binary = req
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/octet-stream"));
    is_v3 && !binary
}

/// Rewrites a string payload (`<utf16 length>:<packet>` frames); `None` when nothing changes or
/// the payload is not well-formed (then it is passed on untouched for socketioxide to judge).
fn rewrite_payload(payload: &str) -> Option<String> {
    let mut out = String::with_capacity(payload.len());
    let mut rest = payload;
    let mut changed = false;
    while !rest.is_empty() {
        let (len, after) = rest.split_once(':')?;
        let len: usize = len.parse().ok()?;
        let end = utf16_byte_offset(after, len)?;
        let (packet, tail) = after.split_at(end);
        let packet = match strip_connect_query(packet) {
            Some(fixed) => {
                changed = true;
                fixed
            }
            None => packet.to_owned(),
        };
        out.push_str(&packet.encode_utf16().count().to_string());
        out.push(':');
        out.push_str(&packet);
        rest = tail;
    }
    changed.then_some(out)
}

/// `40/chat?token=abc,` → `40/chat,`; `None` for any other packet.
fn strip_connect_query(packet: &str) -> Option<String> {
    let ns_and_rest = packet.strip_prefix("40/")?;
    let ns_end = ns_and_rest.find(',').unwrap_or(ns_and_rest.len());
    let (namespace, rest) = ns_and_rest.split_at(ns_end);
    let (path, _query) = namespace.split_once('?')?;
    Some(format!("40/{path}{rest}"))
}

/// Byte offset of the first `units` UTF-16 code units of `s`.
fn utf16_byte_offset(s: &str, units: usize) -> Option<usize> {
    let mut count = 0;
    for (idx, ch) in s.char_indices() {
        if count == units {
            return Some(idx);
        }
        count += ch.len_utf16();
    }
    (count == units).then_some(s.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_the_query_of_connect_packets() {
        assert_eq!(
            rewrite_payload("18:40/chat?token=abc,").as_deref(),
            Some("8:40/chat,")
        );
        assert_eq!(
            rewrite_payload("17:40/chat?token=abc").as_deref(),
            Some("7:40/chat")
        );
        assert_eq!(
            rewrite_payload("1:218:40/chat?token=abc,").as_deref(),
            Some("1:28:40/chat,")
        );
    }

    #[test]
    fn leaves_everything_else_alone() {
        assert_eq!(rewrite_payload("8:40/chat,"), None);
        assert_eq!(rewrite_payload("1:2"), None);
        assert_eq!(
            rewrite_payload("42:42/chat,[\"x\",\"?\"]"),
            None,
            "bad length: untouched"
        );
        assert_eq!(rewrite_payload("20:42/chat,[\"m\",\"a?b\"]"), None);
        assert_eq!(rewrite_payload("garbage"), None);
    }

    #[test]
    fn lengths_count_utf16_units() {
        // "é" is one UTF-16 unit, "𝕊" two.
        assert_eq!(rewrite_payload("11:42[\"é𝕊\",1]1:2"), None);
        assert_eq!(
            rewrite_payload("11:40/a?q=é𝕊,1:2").as_deref(),
            Some("5:40/a,1:2")
        );
    }
}
