//! `payload::decode_event` on any text and attachments: it never panics (deep nesting included),
//! and what it accepts has every placeholder replaced by its attachment.
#![no_main]

use std::collections::VecDeque;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use socketioxide_core::{Str, Value as Packet};

fuzz_target!(|data: &[u8]| {
    let Some((&count, rest)) = data.split_first() else {
        return;
    };
    // The first byte says how many attachments (0 to 4); they are the input's last 8-byte chunks.
    let count = usize::from(count % 5);
    let (text, tail) = rest.split_at(rest.len().saturating_sub(count * 8));
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let binaries: VecDeque<Bytes> = tail.chunks(8).map(Bytes::copy_from_slice).collect();
    let packet = Packet::Str(Str::from(text.to_owned()), (count > 0).then_some(binaries));
    if let Ok((_event, args)) = bridge::payload::decode_event(&packet) {
        for arg in &args {
            assert!(!has_placeholder(arg), "a placeholder survived: {arg}");
        }
    }
});

fn has_placeholder(value: &Value) -> bool {
    match value {
        Value::Object(map) => {
            (map.get("_placeholder") == Some(&Value::Bool(true)) && map.contains_key("num"))
                || map.values().any(has_placeholder)
        }
        Value::Array(items) => items.iter().any(has_placeholder),
        _ => false,
    }
}
