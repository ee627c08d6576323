//! Outgoing requests (webhooks, JWKS) under the URL policy: the client they are made with
//! (redirects never followed, DNS resolution that keeps only the addresses the policy allows, so
//! a host name cannot lead a request to a metadata service or, when denied, a private address),
//! and the check of IP-literal hosts, which are never resolved.

use std::net::SocketAddr;

use admin_api::model::UrlPolicy;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// A client builder for the bridge's own requests: a redirect is never followed (it could lead
/// where the policy refuses), and host names resolve through the policy.
pub fn client(policy: UrlPolicy) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .dns_resolver(PolicyResolver(policy))
}

/// `Err(why)` when `url`'s host is an IP address the policy refuses (the resolver never sees
/// those); the reason as deliveries and logs record it.
pub fn check_literal(policy: UrlPolicy, url: &url::Url) -> Result<(), String> {
    policy
        .check_url(url)
        .map_err(|why| format!("destination not allowed: {why}"))
}

/// A host name that resolves only to refused addresses.
#[derive(Debug, thiserror::Error)]
#[error("destination not allowed: {host} resolves to {why}")]
pub struct Denied {
    host: String,
    why: String,
}

impl Denied {
    /// The denial somewhere in `err`'s chain of sources, if that is why it failed.
    pub fn find<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a Denied> {
        let mut current = Some(err);
        while let Some(err) = current {
            if let Some(denied) = err.downcast_ref::<Denied>() {
                return Some(denied);
            }
            current = err.source();
        }
        None
    }
}

/// The system resolver, filtered by the policy.
#[derive(Debug, Clone, Copy)]
pub struct PolicyResolver(pub UrlPolicy);

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.0;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut why = None;
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|addr| match policy.check_ip(addr.ip()) {
                    Ok(()) => true,
                    Err(err) => {
                        why.get_or_insert(err);
                        false
                    }
                })
                .collect();
            if allowed.is_empty()
                && let Some(why) = why
            {
                return Err(Box::new(Denied { host, why }) as _);
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}
