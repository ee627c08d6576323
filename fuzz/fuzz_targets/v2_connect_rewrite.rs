//! The v2 relay's CONNECT rewriting, on WebSocket frames and on Engine.IO 3 polling bodies: it
//! never panics, a rewritten frame has no query left, and rewriting is idempotent.
#![no_main]

use bridge::socket::v2_compat::{polling::rewrite_payload, strip_connect_query};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
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
