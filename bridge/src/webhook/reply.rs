//! What a reply webhook's 2xx answer may ask for (SPEC 5).

use serde_json::Value;

use crate::payload::Args;

/// The parsed answer of a reply webhook; every part optional.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reply {
    /// Arguments for the client's acknowledgement callback, when given.
    pub ack: Option<Args>,
    /// Rooms to join.
    pub join: Vec<String>,
    /// Rooms to leave.
    pub leave: Vec<String>,
    /// Events to send to the socket, in order, after the ack.
    pub emit: Vec<(String, Args)>,
    /// User id given by a `$connect` reply.
    pub user_id: Option<String>,
}

/// A reply body that is neither empty nor a JSON object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("reply body is not a JSON object")]
pub struct BadReply;

impl Reply {
    /// Reads a response body: empty (or blank) is an empty reply, a JSON object is read, anything
    /// else is refused.
    pub fn parse(body: &[u8]) -> Result<Self, BadReply> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self::default());
        }
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(map)) => Ok(Self::from_object(&map)),
            _ => Err(BadReply),
        }
    }

    fn from_object(map: &serde_json::Map<String, Value>) -> Self {
        let ack = match (map.get("ack_args"), map.get("ack")) {
            (Some(Value::Array(args)), _) => Some(Args(args.clone())),
            (_, Some(value)) => Some(Args(vec![value.clone()])),
            _ => None,
        };
        Self {
            ack,
            join: strings(map.get("join")),
            leave: strings(map.get("leave")),
            emit: map
                .get("emit")
                .and_then(Value::as_array)
                .map(|items| items.iter().filter_map(emit_item).collect())
                .unwrap_or_default(),
            user_id: match map.get("user_id") {
                Some(Value::String(s)) => Some(s.clone()),
                Some(Value::Number(n)) => Some(n.to_string()),
                _ => None,
            },
        }
    }
}

/// Room names usable by a reply: `$`-names are the bridge's own.
fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .filter(|room| !room.is_empty() && !room.starts_with('$'))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// `{"event", "data"}` (one argument) or `{"event", "args": [...]}`.
fn emit_item(item: &Value) -> Option<(String, Args)> {
    let event = item.get("event")?.as_str()?.to_owned();
    let args = match (item.get("args"), item.get("data")) {
        (Some(Value::Array(args)), _) => Args(args.clone()),
        (_, Some(data)) => Args(vec![data.clone()]),
        _ => Args::default(),
    };
    Some((event, args))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_every_part() {
        let reply = Reply::parse(
            json!({
                "ack_args": [1, {"$binary": "aGk="}],
                "ack": "ignored when ack_args is given",
                "join": ["a", "$inert", ""],
                "leave": ["b"],
                "emit": [{"event": "x", "data": 1}, {"event": "y", "args": [1, 2]}, {"nope": 1}],
                "user_id": 42
            })
            .to_string()
            .as_bytes(),
        )
        .unwrap();
        assert_eq!(
            reply.ack,
            Some(Args(vec![json!(1), json!({"$binary": "aGk="})]))
        );
        assert_eq!(reply.join, ["a"]);
        assert_eq!(reply.leave, ["b"]);
        assert_eq!(
            reply.emit,
            vec![
                ("x".into(), Args(vec![json!(1)])),
                ("y".into(), Args(vec![json!(1), json!(2)]))
            ]
        );
        assert_eq!(reply.user_id.as_deref(), Some("42"));
    }

    #[test]
    fn ack_null_is_an_argument_empty_is_nothing_and_junk_is_refused() {
        assert_eq!(
            Reply::parse(br#"{"ack": null}"#).unwrap().ack,
            Some(Args(vec![Value::Null]))
        );
        assert_eq!(Reply::parse(b""), Ok(Reply::default()));
        assert_eq!(Reply::parse(b" \n"), Ok(Reply::default()));
        assert_eq!(Reply::parse(b"not json"), Err(BadReply));
        assert_eq!(Reply::parse(b"[1]"), Err(BadReply));
        assert_eq!(Reply::parse(b"{\"ack\": 1"), Err(BadReply));
    }
}
