//! Socket.IO arguments as JSON: binary attachments travel as `{"$binary": "<base64>"}` (SPEC 5).
//!
//! Incoming packets hold `["event", …args]` with `{"_placeholder": true, "num": N}` where binary
//! attachments go; [`decode_event`] turns them into `$binary` objects. Outgoing, [`Args`]
//! serializes as a tuple (one Socket.IO argument per element) and turns `$binary` objects back
//! into bytes, which socketioxide's parser sends as attachments.

use std::collections::VecDeque;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use serde::de::{MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq, SerializeTuple};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// Key of the object that stands for a binary attachment.
pub const BINARY_KEY: &str = "$binary";

/// Why an incoming packet could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PayloadError {
    /// The packet is not a JSON array starting with an event name.
    #[error("packet is not [\"event\", ...args]")]
    NotAnEvent,
    /// The arguments are not JSON the bridge can read (for one, nested over 128 levels).
    #[error("unreadable arguments: {0}")]
    Unreadable(String),
    /// A placeholder points at a missing attachment.
    #[error("binary placeholder {0} has no attachment")]
    MissingAttachment(u64),
}

/// Bytes of an outgoing event as clients would receive it (JSON, binaries as base64: an upper
/// bound), to hold it against their `BRIDGE_MAX_PAYLOAD`.
pub fn message_size(event: &str, args: &Args) -> usize {
    serde_json::to_vec(&(event, &args.0)).map_or(0, |v| v.len())
}

/// Event name and arguments of an incoming packet, binaries as `$binary` objects.
pub fn decode_event(
    value: &socketioxide_core::Value,
) -> Result<(String, Vec<Value>), PayloadError> {
    let (text, binaries) = match value {
        socketioxide_core::Value::Str(text, binaries) => (&**text, binaries.as_ref()),
        socketioxide_core::Value::Bytes(_) => return Err(PayloadError::NotAnEvent),
    };
    let parsed: Value =
        serde_json::from_str(text).map_err(|e| PayloadError::Unreadable(e.to_string()))?;
    let Value::Array(mut items) = parsed else {
        return Err(PayloadError::NotAnEvent);
    };
    if items.is_empty() {
        return Err(PayloadError::NotAnEvent);
    }
    let Value::String(event) = items.remove(0) else {
        return Err(PayloadError::NotAnEvent);
    };
    let empty = VecDeque::new();
    let binaries = binaries.unwrap_or(&empty);
    let args = items
        .into_iter()
        .map(|arg| replace_placeholders(arg, binaries))
        .collect::<Result<_, _>>()?;
    Ok((event, args))
}

/// Arguments of an incoming acknowledgement, binaries as `$binary` objects.
pub fn decode_args(value: &socketioxide_core::Value) -> Result<Vec<Value>, PayloadError> {
    let (text, binaries) = match value {
        socketioxide_core::Value::Str(text, binaries) => (&**text, binaries.as_ref()),
        socketioxide_core::Value::Bytes(bytes) => return Ok(vec![binary_value(bytes)]),
    };
    let parsed: Value = serde_json::from_str(text).map_err(|_| PayloadError::NotAnEvent)?;
    let items = match parsed {
        Value::Array(items) => items,
        other => vec![other],
    };
    let empty = VecDeque::new();
    let binaries = binaries.unwrap_or(&empty);
    items
        .into_iter()
        .map(|arg| replace_placeholders(arg, binaries))
        .collect()
}

fn replace_placeholders(value: Value, binaries: &VecDeque<Bytes>) -> Result<Value, PayloadError> {
    match value {
        Value::Object(map) if is_placeholder(&map) => {
            let num = map.get("num").and_then(Value::as_u64).unwrap_or(u64::MAX);
            let bytes = usize::try_from(num)
                .ok()
                .and_then(|n| binaries.get(n))
                .ok_or(PayloadError::MissingAttachment(num))?;
            Ok(binary_value(bytes))
        }
        Value::Object(map) => Ok(Value::Object(
            map.into_iter()
                .map(|(k, v)| Ok((k, replace_placeholders(v, binaries)?)))
                .collect::<Result<_, PayloadError>>()?,
        )),
        Value::Array(items) => Ok(Value::Array(
            items
                .into_iter()
                .map(|v| replace_placeholders(v, binaries))
                .collect::<Result<_, _>>()?,
        )),
        other => Ok(other),
    }
}

fn is_placeholder(map: &serde_json::Map<String, Value>) -> bool {
    map.get("_placeholder") == Some(&Value::Bool(true)) && map.contains_key("num")
}

/// `{"$binary": "<base64>"}` for `bytes`.
pub fn binary_value(bytes: &[u8]) -> Value {
    serde_json::json!({ BINARY_KEY: BASE64.encode(bytes) })
}

/// The bytes of a `{"$binary": "<base64>"}` object, `None` for anything else.
fn as_binary(value: &Value) -> Option<Result<Vec<u8>, base64::DecodeError>> {
    let map = value.as_object()?;
    if map.len() != 1 {
        return None;
    }
    let encoded = map.get(BINARY_KEY)?.as_str()?;
    Some(BASE64.decode(encoded))
}

/// Checks that every `$binary` object in `value` holds valid base64; `Err` names the path.
pub fn validate_binaries(value: &Value, path: &str) -> Result<(), String> {
    if let Some(decoded) = as_binary(value) {
        return decoded
            .map(|_| ())
            .map_err(|_| format!("{path}: {BINARY_KEY} must be base64"));
    }
    match value {
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, v)| validate_binaries(v, &format!("{path}[{i}]"))),
        Value::Object(map) => map
            .iter()
            .try_for_each(|(k, v)| validate_binaries(v, &format!("{path}.{k}"))),
        _ => Ok(()),
    }
}

/// One JSON value whose `$binary` objects serialize as bytes (binary attachments).
pub struct WithBinaries<'a>(pub &'a Value);

impl Serialize for WithBinaries<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if let Some(Ok(bytes)) = as_binary(self.0) {
            return serializer.serialize_bytes(&bytes);
        }
        match self.0 {
            Value::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(&WithBinaries(item))?;
                }
                seq.end()
            }
            Value::Object(map) => {
                let mut out = serializer.serialize_map(Some(map.len()))?;
                for (k, v) in map {
                    out.serialize_entry(k, &WithBinaries(v))?;
                }
                out.end()
            }
            other => other.serialize(serializer),
        }
    }
}

/// Socket.IO arguments: serialized as a tuple, so each element is one argument.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Args(pub Vec<Value>);

impl Serialize for Args {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut tuple = serializer.serialize_tuple(self.0.len())?;
        for arg in &self.0 {
            tuple.serialize_element(&WithBinaries(arg))?;
        }
        tuple.end()
    }
}

/// The arguments of a client's acknowledgement, as socketioxide's parser hands them over:
/// deserialized as a tuple (so every argument comes, not just the first), binaries as `$binary`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AckArgs(pub Vec<Value>);

impl<'de> Deserialize<'de> for AckArgs {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SeqVisitor;
        impl<'de> Visitor<'de> for SeqVisitor {
            type Value = AckArgs;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("acknowledgement arguments")
            }
            fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<AckArgs, S::Error> {
                let mut args = Vec::new();
                while let Some(BinJson(value)) = seq.next_element()? {
                    args.push(value);
                }
                Ok(AckArgs(args))
            }
        }
        // Asking for a tuple makes the parser hand over the whole argument list.
        deserializer.deserialize_tuple(usize::MAX, SeqVisitor)
    }
}

/// Any JSON value, where binary data (attachments) becomes `{"$binary": base64}`.
struct BinJson(Value);

impl<'de> Deserialize<'de> for BinJson {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(BinJsonVisitor).map(BinJson)
    }
}

struct BinJsonVisitor;

impl<'de> Visitor<'de> for BinJsonVisitor {
    type Value = Value;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value or binary data")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_bytes<E>(self, v: &[u8]) -> Result<Value, E> {
        Ok(binary_value(v))
    }
    fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Value, E> {
        Ok(binary_value(&v))
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(BinJsonVisitor)
    }
    fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Value, S::Error> {
        let mut items = Vec::new();
        while let Some(BinJson(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Value, M::Error> {
        let mut out = serde_json::Map::new();
        while let Some((key, BinJson(value))) = map.next_entry::<String, BinJson>()? {
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn packet(text: &str, bins: &[&[u8]]) -> socketioxide_core::Value {
        let bins =
            (!bins.is_empty()).then(|| bins.iter().map(|b| Bytes::copy_from_slice(b)).collect());
        socketioxide_core::Value::Str(text.to_owned().into(), bins)
    }

    #[test]
    fn placeholders_become_binary_objects() {
        let value = packet(
            r#"["up",{"a":{"_placeholder":true,"num":0}},[{"_placeholder":true,"num":1}],3]"#,
            &[b"hi", &[0, 255]],
        );
        let (event, args) = decode_event(&value).unwrap();
        assert_eq!(event, "up");
        assert_eq!(
            args,
            vec![
                json!({"a": {"$binary": "aGk="}}),
                json!([{"$binary": "AP8="}]),
                json!(3)
            ]
        );
    }

    #[test]
    fn bad_packets_are_refused() {
        assert_eq!(
            decode_event(&packet("{}", &[])),
            Err(PayloadError::NotAnEvent)
        );
        assert_eq!(
            decode_event(&packet("[1]", &[])),
            Err(PayloadError::NotAnEvent)
        );
        assert_eq!(
            decode_event(&packet(r#"["e",{"_placeholder":true,"num":4}]"#, &[])),
            Err(PayloadError::MissingAttachment(4))
        );
    }

    #[test]
    fn binary_objects_validate() {
        assert!(validate_binaries(&json!({"x": [{"$binary": "aGk="}]}), "data").is_ok());
        let err = validate_binaries(&json!({"x": [{"$binary": "***"}]}), "data").unwrap_err();
        assert_eq!(err, "data.x[0]: $binary must be base64");
        // Objects with more keys are plain JSON.
        assert!(validate_binaries(&json!({"$binary": "***", "y": 1}), "data").is_ok());
    }

    #[test]
    fn ack_args_read_every_argument() {
        let args: AckArgs = serde_json::from_str(r#"[1, {"a": [true, null]}, "x"]"#).unwrap();
        assert_eq!(
            args.0,
            vec![json!(1), json!({"a": [true, null]}), json!("x")]
        );
    }

    #[test]
    fn args_serialize_as_plain_json_without_binaries() {
        let args = Args(vec![json!(1), json!({"a": "b"})]);
        assert_eq!(serde_json::to_string(&args).unwrap(), r#"[1,{"a":"b"}]"#);
    }
}
