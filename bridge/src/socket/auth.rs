//! Where a socket's token is read (SPEC 4): the handshake's auth payload, the query, or an
//! `Authorization` header; [`crate::jwt`] checks it.

use serde_json::Value;

/// The handshake token, first found wins: auth payload `{"token"}`, query `token`, `Authorization: Bearer`.
pub fn handshake_token(auth: Option<&Value>, parts: &axum::http::request::Parts) -> Option<String> {
    if let Some(token) = auth.and_then(|a| a.get("token")).and_then(Value::as_str) {
        return Some(token.to_owned());
    }
    if let Some(token) = query_param(parts.uri.query().unwrap_or(""), "token") {
        return Some(token);
    }
    let header = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = header.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

/// The first value of `name` in a URL query string, percent-decoded.
pub fn query_param(query: &str, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn token_sources_in_order() {
        let parts = |uri: &str, header: Option<&str>| {
            let mut req = axum::http::Request::builder().uri(uri);
            if let Some(h) = header {
                req = req.header("authorization", h);
            }
            req.body(()).unwrap().into_parts().0
        };
        let auth = json!({"token": "from-auth"});
        let p = parts(
            "/socket.io/?EIO=4&token=from%20query",
            Some("Bearer from-header"),
        );
        assert_eq!(
            handshake_token(Some(&auth), &p).as_deref(),
            Some("from-auth")
        );
        assert_eq!(handshake_token(None, &p).as_deref(), Some("from query"));
        let p = parts("/socket.io/?EIO=4", Some("Bearer from-header"));
        assert_eq!(handshake_token(None, &p).as_deref(), Some("from-header"));
        assert_eq!(handshake_token(None, &parts("/", None)), None);
    }
}
