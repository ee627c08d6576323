//! Engine.IO requests made to own their bytes before socketioxide sees them.
//!
//! hyper parses a request's URI and header values as slices of the connection's read buffer
//! (8 KiB at least), and socketioxide keeps the request's parts for the socket's lifetime: so
//! every idle WebSocket kept that whole buffer alive (8.1 KiB per connection, measured with
//! heaptrack; BENCHMARKS.md). Copying the URI and the header values lets it go.
//!
//! For the same reason a GET (the handshake, the WebSocket upgrade) keeps only the headers the
//! bridge and socketioxide read: a browser's cookies and `accept-*` headers would otherwise stay
//! in memory for as long as the socket lives.

use axum::extract::Request;
use axum::http::header::{
    AUTHORIZATION, CONNECTION, CONTENT_TYPE, HOST, ORIGIN, SEC_WEBSOCKET_KEY,
    SEC_WEBSOCKET_PROTOCOL, SEC_WEBSOCKET_VERSION, UPGRADE, USER_AGENT,
};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
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

/// The handshake headers the `$connect` webhook shows (`socket::connect` reads them from here).
pub const SHOWN_HEADERS: [HeaderName; 2] = [ORIGIN, USER_AGENT];

/// The other headers a GET keeps: the token (`authorization`, read by `socket::auth`, checked by `jwt`) and what
/// the upgrade and the polling transport read.
const READ_HEADERS: [HeaderName; 8] = [
    AUTHORIZATION,
    HOST,
    CONNECTION,
    UPGRADE,
    SEC_WEBSOCKET_KEY,
    SEC_WEBSOCKET_VERSION,
    SEC_WEBSOCKET_PROTOCOL,
    CONTENT_TYPE,
];

/// Whether a GET keeps the header `name`.
fn is_kept(name: &HeaderName) -> bool {
    SHOWN_HEADERS.contains(name) || READ_HEADERS.contains(name)
}

/// Replaces the URI and header values of `parts` by copies of their own; a GET keeps only the
/// headers [`is_kept`] names.
fn own_parts(parts: &mut axum::http::request::Parts) {
    parts.uri = owned_uri(&parts.uri);
    if parts.method != Method::GET {
        for value in parts.headers.values_mut() {
            *value = owned_value(value);
        }
        return;
    }
    // Sized to what is kept: the map lives as long as the socket.
    let count = parts.headers.keys().filter(|n| is_kept(n)).count();
    let mut kept = HeaderMap::with_capacity(count);
    for (name, value) in &parts.headers {
        if is_kept(name) {
            kept.append(name.clone(), owned_value(value));
        }
    }
    parts.headers = kept;
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

    fn parts(method: Method) -> axum::http::request::Parts {
        let (parts, ()) = Request::builder()
            .method(method)
            .uri("/socket.io/?EIO=4&transport=websocket")
            .header("authorization", "Bearer t")
            .header("origin", "https://app.example.com")
            .header("user-agent", "test")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            .header("cookie", "session=abc")
            .header("accept-language", "en")
            .header("x-custom", "1")
            .body(())
            .unwrap()
            .into_parts();
        parts
    }

    #[test]
    fn a_get_keeps_only_the_headers_read() {
        let mut get = parts(Method::GET);
        own_parts(&mut get);
        let names: Vec<&str> = get.headers.keys().map(HeaderName::as_str).collect();
        assert_eq!(
            names,
            ["authorization", "origin", "user-agent", "sec-websocket-key"]
        );
        assert_eq!(get.headers["authorization"], "Bearer t");
    }

    #[test]
    fn a_post_keeps_every_header() {
        let mut post = parts(Method::POST);
        own_parts(&mut post);
        assert_eq!(post.headers.len(), 7);
        assert_eq!(post.headers["cookie"], "session=abc");
    }
}
