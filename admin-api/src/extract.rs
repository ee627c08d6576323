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

/// Parses `bytes` as `T`, naming the JSON path of the first error.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            ApiError::BadRequest(format!("malformed JSON: {inner}"))
        } else if path == "." {
            ApiError::BadRequest(format!("invalid body: {inner}"))
        } else {
            ApiError::invalid(path, strip_position(&inner.to_string()))
        }
    })
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
