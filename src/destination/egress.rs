//! Egress safety: which addresses a destination may be reached at.
//!
//! Owns the special-use address classes refused by default (loopback, link-local with the
//! cloud metadata addresses, private, CGNAT, multicast, unspecified, broadcast,
//! documentation, benchmarking, reserved, and their IPv6 kin, IPv4-mapped addresses judged
//! by their IPv4 address), the operator's allowlist (`[egress] allow`: CIDRs and host
//! names), the check of a destination URL when it is saved, and [`Resolver`], the DNS
//! resolver of the delivery client that drops refused addresses at connect time, so a name
//! that later resolves somewhere internal (DNS rebinding) is refused too. Pure but for
//! the resolver's lookup. It must never let an address through that no rule allows.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper_util::client::legacy::connect::dns::Name;
use ipnet::IpNet;

/// Why an address or URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EgressError {
    /// The URL cannot be used.
    #[error("{0}")]
    Url(String),
    /// The address is in a special-use range the allowlist does not cover.
    #[error(
        "{host} is {why} ({addr}); destinations there are refused unless the operator allows them in [egress] allow (HOOKGATE_EGRESS_ALLOW)"
    )]
    Refused {
        /// The host as written.
        host: String,
        /// The address.
        addr: IpAddr,
        /// The range's name.
        why: &'static str,
    },
}

/// The operator's allowlist.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    nets: Vec<IpNet>,
    hosts: Vec<String>,
}

impl Policy {
    /// Builds the policy from `[egress] allow`: each entry a CIDR, a bare address, or a
    /// host name (matched exactly, without case).
    pub fn new(allow: &[String]) -> Result<Policy, String> {
        let mut p = Policy::default();
        for a in allow {
            let a = a.trim();
            if let Ok(net) = a.parse::<IpNet>() {
                p.nets.push(net);
            } else if let Ok(ip) = a.parse::<IpAddr>() {
                p.nets.push(IpNet::from(ip));
            } else if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
            {
                p.hosts.push(a.to_ascii_lowercase());
            } else {
                return Err(format!(
                    "egress.allow: {a:?} is neither a CIDR, an address nor a host name"
                ));
            }
        }
        Ok(p)
    }

    /// True when the operator allowed this host name.
    pub fn allows_host(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.hosts.contains(&host)
    }

    /// `Ok` when `addr`, reached as `host`, may be connected to.
    pub fn check(&self, host: &str, addr: IpAddr) -> Result<(), EgressError> {
        let Some(why) = special_use(addr) else {
            return Ok(());
        };
        if self.allows_host(host) || self.nets.iter().any(|n| n.contains(&addr)) {
            return Ok(());
        }
        Err(EgressError::Refused {
            host: host.to_owned(),
            addr,
            why,
        })
    }

    /// Checks a destination URL when it is saved: `http` or `https`, a host, no user
    /// information; an address literal is judged now, a host name at every connect.
    pub fn check_url(&self, url: &str) -> Result<Target, EgressError> {
        let target = Target::parse(url)?;
        if let Some(ip) = target.literal() {
            self.check(&target.host, ip)?;
        }
        Ok(target)
    }
}

/// A destination URL's parts that egress cares about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The host as written (brackets removed from an IPv6 literal).
    pub host: String,
}

impl Target {
    /// Parses a destination URL.
    pub fn parse(url: &str) -> Result<Target, EgressError> {
        let uri: hyper::Uri = url
            .parse()
            .map_err(|e| EgressError::Url(format!("{url:?} is not a URL: {e}")))?;
        match uri.scheme_str() {
            Some("http" | "https") => {}
            _ => {
                return Err(EgressError::Url(format!(
                    "{url:?} must start with https:// or http://"
                )));
            }
        }
        let Some(authority) = uri.authority() else {
            return Err(EgressError::Url(format!("{url:?} names no host")));
        };
        if authority.as_str().contains('@') {
            return Err(EgressError::Url(format!(
                "{url:?} carries user information; put credentials in the mapping or a header instead"
            )));
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        if host.is_empty() {
            return Err(EgressError::Url(format!("{url:?} names no host")));
        }
        Ok(Target {
            host: host.to_owned(),
        })
    }

    /// The host as an address, when it is one.
    pub fn literal(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }
}

/// The special-use class of an address, or `None` for a public one.
pub fn special_use(addr: IpAddr) -> Option<&'static str> {
    match addr {
        IpAddr::V4(a) => special_v4(a),
        IpAddr::V6(a) => special_v6(a),
    }
}

fn in4(a: Ipv4Addr, net: [u8; 4], bits: u32) -> bool {
    let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
    u32::from(a) & mask == u32::from(Ipv4Addr::from(net)) & mask
}

fn special_v4(a: Ipv4Addr) -> Option<&'static str> {
    const RANGES: &[([u8; 4], u32, &str)] = &[
        (
            [0, 0, 0, 0],
            8,
            "an unspecified or \"this network\" address",
        ),
        ([127, 0, 0, 0], 8, "a loopback address"),
        (
            [169, 254, 0, 0],
            16,
            "a link-local address (cloud metadata lives here)",
        ),
        ([10, 0, 0, 0], 8, "a private address"),
        ([172, 16, 0, 0], 12, "a private address"),
        ([192, 168, 0, 0], 16, "a private address"),
        ([100, 64, 0, 0], 10, "a carrier-grade NAT address"),
        ([192, 0, 0, 0], 24, "an IETF protocol assignment"),
        ([192, 0, 2, 0], 24, "a documentation address"),
        ([198, 51, 100, 0], 24, "a documentation address"),
        ([203, 0, 113, 0], 24, "a documentation address"),
        ([198, 18, 0, 0], 15, "a benchmarking address"),
        ([192, 88, 99, 0], 24, "a deprecated relay address"),
        ([224, 0, 0, 0], 4, "a multicast address"),
        ([240, 0, 0, 0], 4, "a reserved address"),
    ];
    RANGES
        .iter()
        .find(|(net, bits, _)| in4(a, *net, *bits))
        .map(|(_, _, why)| *why)
}

fn special_v6(a: Ipv6Addr) -> Option<&'static str> {
    if let Some(v4) = a.to_ipv4_mapped() {
        return special_v4(v4);
    }
    let s = a.segments();
    if a.is_unspecified() {
        return Some("an unspecified address");
    }
    if a.is_loopback() {
        return Some("a loopback address");
    }
    let first = s[0];
    if first & 0xffc0 == 0xfe80 {
        return Some("a link-local address");
    }
    if first & 0xfe00 == 0xfc00 {
        return Some("a unique local (private) address (cloud metadata may live here)");
    }
    if first & 0xff00 == 0xff00 {
        return Some("a multicast address");
    }
    if first == 0x2001 && s[1] == 0x0db8 {
        return Some("a documentation address");
    }
    if first == 0x0064 && s[1] == 0xff9b {
        // NAT64: judged by the IPv4 address it carries.
        let v4 = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
        return special_v4(v4);
    }
    if first == 0x0100 && s[1] == 0 && s[2] == 0 && s[3] == 0 {
        return Some("a discard-only address");
    }
    if first == 0x2002 || (first == 0x2001 && s[1] < 0x0200) {
        return Some("a transition or IETF protocol address");
    }
    if s[0..6] == [0, 0, 0, 0, 0, 0] {
        return Some("an IPv4-compatible address");
    }
    None
}

/// The delivery client's resolver: resolves with the system's resolver, keeps only the
/// addresses the policy allows, and fails with the reason when none is left.
#[derive(Debug, Clone)]
pub struct Resolver {
    policy: Arc<Policy>,
}

impl Resolver {
    /// A resolver for this policy.
    pub fn new(policy: Arc<Policy>) -> Resolver {
        Resolver { policy }
    }
}

/// Resolves a name and keeps the allowed addresses.
pub async fn resolve(policy: &Policy, host: &str) -> Result<Vec<SocketAddr>, std::io::Error> {
    let found: Vec<SocketAddr> = tokio::net::lookup_host((host, 0)).await?.collect();
    let mut refused = None;
    let kept: Vec<SocketAddr> = found
        .into_iter()
        .filter(|a| match policy.check(host, a.ip()) {
            Ok(()) => true,
            Err(e) => {
                refused = Some(e);
                false
            }
        })
        .collect();
    match (kept.is_empty(), refused) {
        (true, Some(e)) => Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!("egress refused: {e}"),
        )),
        (true, None) => Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{host} resolves to no address"),
        )),
        _ => Ok(kept),
    }
}

impl tower_service::Service<Name> for Resolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let policy = Arc::clone(&self.policy);
        Box::pin(async move { resolve(&policy, name.as_str()).await.map(|v| v.into_iter()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(p: &Policy, url: &str) -> bool {
        matches!(p.check_url(url), Err(EgressError::Refused { .. }))
    }

    #[test]
    fn special_use_addresses_are_refused_by_default() {
        let p = Policy::default();
        for url in [
            "http://127.0.0.1/",
            "http://127.9.9.9:8080/x",
            "http://169.254.169.254/latest/meta-data",
            "http://10.1.2.3/",
            "http://172.20.0.1/",
            "http://192.168.1.1/",
            "http://100.100.100.200/",
            "http://0.0.0.0/",
            "http://224.0.0.1/",
            "http://255.255.255.255/",
            "http://198.18.0.1/",
            "http://[::1]/",
            "http://[::]/",
            "http://[fe80::1]/",
            "http://[fd00:ec2::254]/",
            "http://[fc00::1]/",
            "http://[ff02::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:169.254.169.254]/",
            "http://[64:ff9b::a9fe:a9fe]/",
            "http://[2001:db8::1]/",
        ] {
            assert!(refused(&p, url), "{url}");
        }
        for url in [
            "https://93.184.215.14/",
            "https://[2606:4700::1111]/",
            "https://hooks.example.com/x",
            "http://localhost:9/",
        ] {
            assert!(p.check_url(url).is_ok(), "{url}");
        }
    }

    #[test]
    fn the_allowlist_opens_ranges_and_names() {
        let p = Policy::new(&[
            "127.0.0.0/8".into(),
            "fd00::/8".into(),
            "Internal.Example".into(),
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(p.check_url("http://127.0.0.1:1/").is_ok());
        assert!(p.check_url("http://[fd00::5]/").is_ok());
        assert!(refused(&p, "http://10.0.0.1/"));
        let ip: IpAddr = "10.0.0.1".parse().unwrap_or_else(|e| panic!("{e}"));
        assert!(p.check("internal.example.", ip).is_ok());
        assert!(p.check("other.example", ip).is_err());
        assert!(Policy::new(&["not a host!".into()]).is_err());
    }

    #[test]
    fn unusable_urls_are_named() {
        let p = Policy::default();
        for (url, says) in [
            ("ftp://a.example/", "https://"),
            ("https://user:pw@a.example/", "user information"),
            ("not a url", "not a URL"),
            ("/relative", "https://"),
        ] {
            let e = p
                .check_url(url)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(e.contains(says), "{url}: {e}");
        }
        let e = p
            .check_url("http://127.0.0.1/")
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some(
                "127.0.0.1 is a loopback address (127.0.0.1); destinations there are refused unless the operator allows them in [egress] allow (HOOKGATE_EGRESS_ALLOW)"
            )
        );
    }

    #[tokio::test]
    async fn the_resolver_refuses_a_name_that_resolves_to_loopback() {
        let e = resolve(&Policy::default(), "localhost").await.err();
        assert!(e.is_some_and(|e| e.to_string().contains("egress refused")));
        let p = Policy::new(&["127.0.0.0/8".into(), "::1/128".into()])
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(resolve(&p, "localhost").await.is_ok_and(|a| !a.is_empty()));
    }
}
