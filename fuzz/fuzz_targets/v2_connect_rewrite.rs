//! The v2 CONNECT rewriting, on WebSocket byte streams and on Engine.IO 3 polling bodies: it
//! never panics, a rewritten frame has no query left, rewriting is idempotent, and the
//! WebSocket filter's output does not depend on how the stream was cut into reads.
#![no_main]

use bridge::socket::v2_compat::polling::rewrite_payload;
use bridge::v2_connect::frames::ConnectRewriter;
use bridge::v2_connect::strip_connect_query;
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;

/// The filter's output for `data` read `chunk` bytes at a time.
fn filtered(data: &[u8], chunk: usize) -> BytesMut {
    let mut rewriter = ConnectRewriter::default();
    let mut out = BytesMut::new();
    for piece in data.chunks(chunk.max(1)) {
        rewriter.feed(piece, &mut out);
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let whole = filtered(data, data.len());
    for chunk in [1, 3, 64] {
        assert_eq!(filtered(data, chunk), whole, "chunks of {chunk}");
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(fixed) = strip_connect_query(text) {
        let namespace = fixed["40".len()..].split(',').next().unwrap_or("");
        assert!(!namespace.contains('?'), "{text:?} -> {fixed:?}");
        assert_eq!(strip_connect_query(&fixed), None, "{text:?} -> {fixed:?}");
    }
    if let Some(fixed) = rewrite_payload(text) {
        assert_eq!(rewrite_payload(&fixed), None, "{text:?} -> {fixed:?}");
    }
});
