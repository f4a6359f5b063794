//! The IP allowlist: for providers that sign nothing (M-Pesa Daraja, Africa's Talking), the
//! networks their callbacks come from.
//!
//! Owns the compiled [`IpAllowlist`] and which address is the client's: the connection's
//! peer, or, only when that peer is one of the account's trusted proxies, the address in
//! `X-Forwarded-For` just before the trusted ones. It must never believe `X-Forwarded-For`
//! from a peer that is not a trusted proxy, and never let an address it cannot parse pass.

use std::net::IpAddr;

use ipnet::IpNet;

use super::{Rejection, RequestView};
use crate::account::{IpAllowlistSpec, SpecError};
use crate::event::Reason;

/// A compiled allowlist.
#[derive(Debug)]
pub struct IpAllowlist {
    allow: Vec<IpNet>,
    trusted_proxies: Vec<IpNet>,
}

impl IpAllowlist {
    /// Compiles a spec; every entry is a CIDR or a single address.
    pub fn compile(spec: &IpAllowlistSpec) -> Result<Self, SpecError> {
        if spec.allow.is_empty() {
            return Err(SpecError::new(
                "ip_allowlist.allow",
                "name at least one network; an empty allowlist would refuse every request",
            ));
        }
        Ok(IpAllowlist {
            allow: nets("ip_allowlist.allow", &spec.allow)?,
            trusted_proxies: nets("ip_allowlist.trusted_proxies", &spec.trusted_proxies)?,
        })
    }

    /// Refuses a request whose client address is not in the allowlist.
    pub fn check(&self, req: &RequestView<'_>) -> Result<(), Rejection> {
        let Some(client) = self.client(req) else {
            return Err(Rejection::new(
                Reason::BadAuth,
                "the client's address is not known (a trusted proxy sent no valid X-Forwarded-For)",
            ));
        };
        if self.allow.iter().any(|n| n.contains(&client)) {
            return Ok(());
        }
        Err(Rejection::new(
            Reason::BadAuth,
            format!("{client} is not in the account's IP allowlist"),
        ))
    }

    /// The client's address: the peer, unless the peer is a trusted proxy; then the last
    /// address of `X-Forwarded-For` that is not itself a trusted proxy (each proxy appends
    /// the address it received from, so the entries before that one are the client's word).
    fn client(&self, req: &RequestView<'_>) -> Option<IpAddr> {
        let peer = req.origin.peer?.to_canonical();
        if !self.trusted(peer) {
            return Some(peer);
        }
        let mut chain: Vec<IpAddr> = Vec::new();
        for value in req.headers.get_all("x-forwarded-for") {
            let text = value.to_str().ok()?;
            for entry in text.split(',') {
                chain.push(entry.trim().parse::<IpAddr>().ok()?.to_canonical());
            }
        }
        chain.into_iter().rev().find(|a| !self.trusted(*a))
    }

    fn trusted(&self, addr: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|n| n.contains(&addr))
    }
}

fn nets(field: &str, entries: &[String]) -> Result<Vec<IpNet>, SpecError> {
    entries
        .iter()
        .map(|e| {
            let e = e.trim();
            e.parse::<IpNet>()
                .or_else(|_| e.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    SpecError::new(field, format!("{e:?} is neither a CIDR nor an address"))
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::Origin;
    use bytes::Bytes;
    use hyper::HeaderMap;

    fn list(allow: &[&str], proxies: &[&str]) -> IpAllowlist {
        IpAllowlist::compile(&IpAllowlistSpec {
            allow: allow.iter().map(|s| s.to_string()).collect(),
            trusted_proxies: proxies.iter().map(|s| s.to_string()).collect(),
        })
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn run(l: &IpAllowlist, peer: &str, xff: &[&str]) -> Result<(), Rejection> {
        let mut headers = HeaderMap::new();
        for v in xff {
            if let Ok(v) = v.parse() {
                headers.append("x-forwarded-for", v);
            }
        }
        let body = Bytes::new();
        l.check(&RequestView {
            method: "POST",
            headers: &headers,
            query: None,
            body: &body,
            url: "u",
            origin: Origin {
                path_token: None,
                peer: peer.parse().ok(),
            },
        })
    }

    #[test]
    fn the_peer_is_the_client_unless_it_is_a_trusted_proxy() {
        let l = list(&["196.201.214.0/24", "196.201.213.44"], &[]);
        assert!(run(&l, "196.201.214.200", &[]).is_ok());
        assert!(run(&l, "196.201.213.44", &[]).is_ok());
        assert!(
            run(&l, "::ffff:196.201.213.44", &[]).is_ok(),
            "a mapped IPv4 peer"
        );
        assert!(
            run(&l, "10.0.0.1", &["196.201.214.200"]).is_err(),
            "untrusted XFF is ignored"
        );
        let behind = list(&["196.201.214.0/24"], &["10.0.0.0/8"]);
        assert!(run(&behind, "10.0.0.1", &["196.201.214.200"]).is_ok());
        assert!(
            run(&behind, "10.0.0.1", &["196.201.214.200, 203.0.113.9"]).is_err(),
            "the address the proxy saw is the last one, not the first"
        );
        assert!(
            run(
                &behind,
                "10.0.0.1",
                &["203.0.113.9, 196.201.214.200", "10.0.0.2"]
            )
            .is_ok(),
            "proxies in the chain are skipped"
        );
        assert!(
            run(&behind, "10.0.0.1", &[]).is_err(),
            "a proxy that names no client"
        );
        assert!(run(&behind, "10.0.0.1", &["not-an-ip"]).is_err());
    }

    #[test]
    fn compile_refuses_empty_and_malformed_entries() {
        let spec = |allow: &[&str]| IpAllowlistSpec {
            allow: allow.iter().map(|s| s.to_string()).collect(),
            trusted_proxies: Vec::new(),
        };
        assert!(IpAllowlist::compile(&spec(&[])).is_err());
        let err = IpAllowlist::compile(&spec(&["196.201.214.0/33"])).err();
        assert_eq!(err.map(|e| e.field), Some("ip_allowlist.allow".into()));
    }
}
