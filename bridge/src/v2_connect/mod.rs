//! The CONNECT query of socket.io-client v2 (Engine.IO 3), stripped so that socketioxide 0.18.9
//! reads the namespace's name: `40/chat?token=abc,` → `40/chat,` (the same query is on the
//! handshake URL, where the bridge reads it). The rule, and [`frames`], the rewriter the listener
//! runs on Engine.IO 3 WebSockets; `socket::v2_compat` applies it to polling bodies.

pub mod frames;

/// `40/chat?token=abc,` → `40/chat,`; `None` for any other packet.
pub fn strip_connect_query(packet: &str) -> Option<String> {
    let ns_and_rest = packet.strip_prefix("40/")?;
    let ns_end = ns_and_rest.find(',').unwrap_or(ns_and_rest.len());
    let (namespace, rest) = ns_and_rest.split_at(ns_end);
    let (path, _query) = namespace.split_once('?')?;
    Some(format!("40/{path}{rest}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_only_connect_queries() {
        assert_eq!(
            strip_connect_query("40/chat?token=abc,").as_deref(),
            Some("40/chat,")
        );
        assert_eq!(strip_connect_query("40/a/b?x=1").as_deref(), Some("40/a/b"));
        assert_eq!(strip_connect_query("40/chat,"), None);
        assert_eq!(strip_connect_query("42/chat,[\"a?b\"]"), None);
        assert_eq!(strip_connect_query("2probe"), None);
    }
}
