//! Which addresses the bridge's own requests (webhooks, a namespace's JWKS) may go to.
//!
//! Link-local addresses (where cloud metadata services answer), unspecified, broadcast and
//! multicast addresses are never a webhook backend or an identity provider. Private and loopback
//! addresses usually are (backends live next to the bridge), so they are allowed unless the
//! operator denies them. The check runs on an IP-literal URL when a webhook or a namespace is
//! saved, and on every resolved address when a request is made (a host name may resolve
//! anywhere, and change).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::error::ApiError;
use crate::model::{JwtAuth, NamespaceAuth};

/// AWS's IPv6 instance metadata address (a unique-local one, so the private rule alone misses it).
const AWS_METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);

/// The operator's choice about private and loopback destinations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UrlPolicy {
    /// Refuse private (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7) and loopback addresses.
    pub deny_private: bool,
}

impl UrlPolicy {
    /// `Err(why)` when `ip` may not receive the bridge's requests.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), String> {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        if ip.is_unspecified() {
            return Err(format!("{ip} is an unspecified address"));
        }
        if ip.is_multicast() || ip == IpAddr::V4(Ipv4Addr::BROADCAST) {
            return Err(format!("{ip} is a broadcast or multicast address"));
        }
        if is_link_local(ip) || ip == IpAddr::V6(AWS_METADATA_V6) {
            return Err(format!(
                "{ip} is a link-local address, where cloud metadata services answer"
            ));
        }
        if self.deny_private && (ip.is_loopback() || is_private(ip)) {
            return Err(format!(
                "{ip} is a private or loopback address (BRIDGE_WEBHOOK_DENY_PRIVATE is set)"
            ));
        }
        Ok(())
    }

    /// The `url` field of a webhook being saved: 400 when its IP-literal host is refused.
    pub fn check_webhook_url(&self, url: &str) -> Result<(), ApiError> {
        self.check_saved("url", url)
    }

    /// The JWKS address of a namespace's auth being saved, checked as webhook URLs are: the
    /// bridge fetches it, so it must not lead to a metadata service either.
    pub fn check_namespace_auth(&self, auth: &NamespaceAuth) -> Result<(), ApiError> {
        match auth {
            NamespaceAuth::Jwt(JwtAuth {
                jwks_url: Some(url),
                ..
            }) => self.check_saved("auth.jwks_url", url),
            _ => Ok(()),
        }
    }

    /// A URL being saved in `field`: 400 when its IP-literal host is refused.
    fn check_saved(&self, field: &str, url: &str) -> Result<(), ApiError> {
        let Ok(parsed) = url::Url::parse(url) else {
            return Ok(()); // reported by the model's own validation
        };
        self.check_url(&parsed)
            .map_err(|why| ApiError::invalid(field, format!("destination not allowed: {why}")))
    }

    /// Checks a URL whose host is an IP address (numeric forms such as `2130706433` are read as
    /// the address they mean); a host name is checked when it is resolved.
    pub fn check_url(&self, url: &url::Url) -> Result<(), String> {
        match url.host() {
            Some(url::Host::Ipv4(v4)) => self.check_ip(IpAddr::V4(v4)),
            Some(url::Host::Ipv6(v6)) => self.check_ip(IpAddr::V6(v6)),
            _ => Ok(()),
        }
    }
}

fn is_link_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    }
}

fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_private() || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => (v6.segments()[0] & 0xfe00) == 0xfc00,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(policy: UrlPolicy, url: &str) -> Result<(), String> {
        policy.check_url(&url::Url::parse(url).unwrap())
    }

    #[test]
    fn metadata_unspecified_and_multicast_are_always_refused() {
        let open = UrlPolicy::default();
        for url in [
            "http://169.254.169.254/latest/meta-data",
            "http://[fd00:ec2::254]/",
            "http://[fe80::1]/",
            "http://0.0.0.0:3000/",
            "http://[::]/",
            "http://[::ffff:169.254.169.254]/",
            "http://224.0.0.1/",
            "http://255.255.255.255/",
        ] {
            assert!(check(open, url).is_err(), "{url}");
        }
    }

    #[test]
    fn loopback_and_private_are_allowed_unless_denied() {
        let open = UrlPolicy::default();
        let closed = UrlPolicy { deny_private: true };
        for url in [
            "http://127.0.0.1:8080/",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://[::1]/",
            "http://10.1.2.3/",
            "http://192.168.0.10/",
            "http://100.64.0.1/",
            "http://[fd12::1]/",
        ] {
            assert!(check(open, url).is_ok(), "{url}");
            assert!(check(closed, url).is_err(), "{url}");
        }
        for url in ["https://api.example.com/hook", "http://93.184.216.34/"] {
            assert!(check(closed, url).is_ok(), "{url}");
        }
    }
}
