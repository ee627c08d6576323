//! Engine.IO requests made to own their bytes before socketioxide sees them.
//!
//! hyper parses a request's URI and header values as slices of the connection's read buffer
//! (8 KiB at least), and socketioxide keeps the request's parts for the socket's lifetime: so
//! every idle WebSocket kept that whole buffer alive (8.1 KiB per connection, measured with
//! heaptrack; BENCHMARKS.md). Copying the URI and the header values lets it go.

use axum::extract::Request;
use axum::http::{HeaderValue, Uri};
use axum::middleware::Next;
use axum::response::Response;

/// Middleware: gives Engine.IO requests a URI and header values of their own.
pub async fn own_bytes(req: Request, next: Next) -> Response {
    if !req.uri().path().starts_with("/socket.io/") {
        return next.run(req).await;
    }
    let (mut parts, body) = req.into_parts();
    own_parts(&mut parts);
    next.run(Request::from_parts(parts, body)).await
}

/// Replaces the URI and header values of `parts` by copies of their own.
fn own_parts(parts: &mut axum::http::request::Parts) {
    parts.uri = owned_uri(&parts.uri);
    for value in parts.headers.values_mut() {
        *value = owned_value(value);
    }
}

/// `uri` in an allocation of its own (`Uri::try_from(String)` takes the string's bytes).
fn owned_uri(uri: &Uri) -> Uri {
    Uri::try_from(uri.to_string()).unwrap_or_else(|_| uri.clone())
}

/// `value` in an allocation of its own (`from_bytes` copies), as sensitive as it was.
fn owned_value(value: &HeaderValue) -> HeaderValue {
    match HeaderValue::from_bytes(value.as_bytes()) {
        Ok(mut copy) => {
            copy.set_sensitive(value.is_sensitive());
            copy
        }
        Err(_) => value.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_are_equal() {
        let uri: Uri = "/socket.io/?EIO=4&transport=websocket&t=abc"
            .parse()
            .unwrap();
        assert_eq!(owned_uri(&uri), uri);
        let mut value = HeaderValue::from_static("Bearer x");
        value.set_sensitive(true);
        let copy = owned_value(&value);
        assert_eq!(copy, value);
        assert!(copy.is_sensitive());
    }
}
