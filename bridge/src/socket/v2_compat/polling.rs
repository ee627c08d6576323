//! Engine.IO 3 polling bodies: `<utf16 length>:<packet>` frames, rewritten in place.

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::v2_connect::strip_connect_query;

/// Whether `req` is an Engine.IO 3 polling POST with a string payload.
pub fn is_eio3_polling_post(req: &Request) -> bool {
    if req.method() != Method::POST {
        return false;
    }
    let binary = req
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/octet-stream"));
    !binary
}

/// Rewrites the CONNECT packets of the body, then passes the request on.
pub async fn rewrite(limit: usize, req: Request, next: Next) -> Response {
    let (mut parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, limit).await else {
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

/// Rewrites a string payload (`<utf16 length>:<packet>` frames); `None` when nothing changes or
/// the payload is not well-formed (then it is passed on untouched for socketioxide to judge).
pub fn rewrite_payload(payload: &str) -> Option<String> {
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
