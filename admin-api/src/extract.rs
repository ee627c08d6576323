//! A JSON body extractor whose rejections use SPEC 9's error shape and name the bad field.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Largest request body the REST APIs accept (SPEC 6: over 1 MiB is 413).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// `Json<T>` with typed, field-naming errors: 415 on a wrong content type, 413 on a huge body,
/// 400 with the JSON path on malformed or mistyped input.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(&req) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(body_rejection)?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// Parses `bytes` as `T`, naming the JSON path of the first error. Every body is a JSON object
/// (serde would otherwise read a struct from an array: `[null, null]` as a patch of nothing).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|b| *b != b'{') {
        return Err(ApiError::BadRequest(
            "the body must be a JSON object".into(),
        ));
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|err| path_error(err, ""))
}

/// Reads an already-parsed JSON value as `T`; error paths start with `prefix` (e.g. `messages[2]`).
pub fn from_value<T: DeserializeOwned>(
    value: serde_json::Value,
    prefix: &str,
) -> Result<T, ApiError> {
    if !value.is_object() {
        return Err(ApiError::invalid(prefix, "must be a JSON object"));
    }
    serde_path_to_error::deserialize(value).map_err(|err| path_error(err, prefix))
}

fn path_error(err: serde_path_to_error::Error<serde_json::Error>, prefix: &str) -> ApiError {
    let path = err.path().to_string();
    let inner = err.into_inner();
    let field = match (prefix, path.as_str()) {
        ("", p) => p.to_owned(),
        (pre, ".") => pre.to_owned(),
        (pre, p) => format!("{pre}.{p}"),
    };
    if inner.is_syntax() || inner.is_eof() {
        ApiError::BadRequest(format!("malformed JSON: {inner}"))
    } else if field == "." {
        ApiError::BadRequest(format!("invalid body: {inner}"))
    } else {
        ApiError::invalid(field, strip_position(&inner.to_string()))
    }
}

/// serde_json appends " at line 1 column 42"; the field path already says where.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(idx) => message[..idx].to_owned(),
        None => message.to_owned(),
    }
}

fn is_json(req: &Request) -> bool {
    let Some(value) = req.headers().get(header::CONTENT_TYPE) else {
        return false;
    };
    let Ok(value) = value.to_str() else {
        return false;
    };
    let mime = value.split(';').next().unwrap_or("").trim();
    mime.eq_ignore_ascii_case("application/json")
        || (mime.starts_with("application/") && mime.ends_with("+json"))
}

fn body_rejection(rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge(MAX_BODY_BYTES)
    } else {
        ApiError::BadRequest(format!("could not read body: {rejection}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Outer {
        inner: Inner,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        count: u32,
    }

    #[test]
    fn type_error_names_the_field_path() {
        let err = parse_json::<Outer>(br#"{"inner": {"count": "x"}}"#).unwrap_err();
        match err {
            ApiError::Invalid { field, message } => {
                assert_eq!(field, "inner.count");
                assert!(message.contains("expected u32"), "{message}");
                assert!(!message.contains("line"), "{message}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn value_errors_carry_the_prefix() {
        let err = from_value::<Outer>(serde_json::json!({"inner": {"count": -1}}), "messages[3]")
            .unwrap_err();
        assert!(
            err.to_string().starts_with("messages[3].inner.count:"),
            "{err}"
        );
        let err = from_value::<Outer>(serde_json::json!(5), "messages[0]").unwrap_err();
        assert!(err.to_string().starts_with("messages[0]:"), "{err}");
    }

    #[test]
    fn syntax_error_is_malformed_json() {
        let err = parse_json::<Outer>(b"{not json").unwrap_err();
        assert!(matches!(err, ApiError::BadRequest(m) if m.starts_with("malformed JSON")));
    }

    #[test]
    fn missing_field_is_reported() {
        let err = parse_json::<Outer>(br#"{"inner": {}}"#).unwrap_err();
        assert!(err.to_string().contains("missing field `count`"), "{err}");
    }
}
