//! Open connections per client IP address, so one client cannot hold every slot of a
//! listener's connection limit, and what is trusted to name a client.
//!
//! Owns [`PerIp`]: a count per address and a guard that gives the slot back when the
//! connection (or, behind a trusted proxy, the request) ends. Addresses with no open
//! connection are forgotten, so memory follows the number of connected clients. Owns
//! [`Proxies`]: the trusted proxies' networks, and the one reading of `X-Forwarded-For`
//! (the rightmost address no trusted proxy owns), believed only from a trusted peer; and
//! [`listener_capacity`], which keeps a listener's connection limit under the process's
//! open-file limit, so the limits here hold before `accept` runs out of descriptors. It
//! must never block: over the limit, the caller refuses at once.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use hyper::HeaderMap;
use ipnet::IpNet;

/// Connection counts per client address; a limit of 0 means no limit.
#[derive(Debug)]
pub struct PerIp {
    limit: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One open connection's slot; dropping it frees the slot.
#[derive(Debug)]
pub struct Slot {
    owner: Arc<PerIp>,
    ip: IpAddr,
}

impl PerIp {
    /// A counter allowing `limit` connections per address (0: unlimited).
    pub fn new(limit: usize) -> Arc<PerIp> {
        Arc::new(PerIp {
            limit,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// Takes a slot for `ip`, or `None` when it already has `limit` connections open.
    pub fn acquire(self: &Arc<Self>, ip: IpAddr) -> Option<Slot> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(ip).or_insert(0);
        if self.limit > 0 && *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(Slot {
            owner: Arc::clone(self),
            ip,
        })
    }
}

/// The proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default)]
pub struct Proxies {
    nets: Vec<IpNet>,
}

impl Proxies {
    /// The proxies in `nets` (none: nobody's `X-Forwarded-For` is believed).
    pub fn new(nets: &[IpNet]) -> Proxies {
        Proxies {
            nets: nets.to_vec(),
        }
    }

    /// Whether `ip` is a trusted proxy. An IPv4 address mapped into IPv6 is compared as
    /// the IPv4 address it is.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.nets.iter().any(|n| n.contains(&ip))
    }

    /// The client a request names: for a request from a trusted proxy, the rightmost
    /// address of its `X-Forwarded-For` headers (in order) that is not itself a trusted
    /// proxy; `peer` when the peer is not trusted, when there is no such header, or when
    /// the entry in question is not an address. Entries left of the client are whatever
    /// the client sent and are never read.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let mut entries: Vec<&str> = Vec::new();
        for value in headers.get_all("x-forwarded-for") {
            let Ok(text) = value.to_str() else {
                return peer;
            };
            entries.extend(text.split(','));
        }
        for entry in entries.iter().rev() {
            let Some(ip) = parse_entry(entry) else {
                return peer;
            };
            if !self.trusts(ip) {
                return ip;
            }
        }
        peer
    }
}

/// One `X-Forwarded-For` entry: an address, or an address with a port.
fn parse_entry(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .map(|ip| ip.to_canonical())
}

/// Descriptors kept for everything but client connections: the database and its WAL,
/// logs, outgoing deliveries, the runtime's own.
const RESERVED_FILES: u64 = 128;

/// How many connections a listener may hold: `configured`, or less when the process may
/// not open that many files (`open_files`, its soft limit), so that the connection limit
/// is reached, and the per-address limit applied, before `accept` fails for want of a
/// descriptor. The two listeners share the limit; each gets half of what is not reserved.
pub fn listener_capacity(configured: usize, open_files: Option<u64>) -> usize {
    let Some(files) = open_files else {
        return configured;
    };
    let share = files.saturating_sub(RESERVED_FILES) / 2;
    configured
        .min(usize::try_from(share).unwrap_or(usize::MAX))
        .max(1)
}

/// The process's soft limit on open files, from `/proc/self/limits` (`None` when it is
/// unknown or unlimited).
pub fn open_files_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    parse_open_files(&text)
}

fn parse_open_files(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.strip_prefix("Max open files")?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.owner.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_per_address_are_counted_and_given_back() {
        let limits = PerIp::new(2);
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let s1 = limits.acquire(a);
        let s2 = limits.acquire(a);
        assert!(s1.is_some() && s2.is_some());
        assert!(limits.acquire(a).is_none());
        assert!(
            limits.acquire(b).is_some(),
            "another address is not affected"
        );
        drop(s1);
        assert!(limits.acquire(a).is_some());
        drop(s2);
        let empty = limits.open.lock().map(|m| m.len()).unwrap_or(usize::MAX);
        assert_eq!(empty, 0, "idle addresses are forgotten");
        let unlimited = PerIp::new(0);
        let slots: Vec<_> = (0..1000).filter_map(|_| unlimited.acquire(a)).collect();
        assert_eq!(slots.len(), 1000);
    }

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            if let Ok(v) = v.parse() {
                h.append("x-forwarded-for", v);
            }
        }
        h
    }

    #[test]
    fn only_a_trusted_proxy_names_the_client_and_only_by_its_own_entry() {
        let nets: Vec<IpNet> = ["10.0.0.0/8", "192.0.2.7/32"]
            .iter()
            .filter_map(|n| n.parse().ok())
            .collect();
        let proxies = Proxies::new(&nets);
        let lb: IpAddr = [10, 1, 2, 3].into();
        let stranger: IpAddr = [198, 51, 100, 4].into();
        let client: IpAddr = [203, 0, 113, 9].into();
        // A stranger's header is not believed.
        assert_eq!(
            proxies.client(stranger, &forwarded(&["203.0.113.9"])),
            stranger
        );
        // The proxy's own entry is the rightmost; what the client put left of it is not read.
        let h = forwarded(&["1.1.1.1, 203.0.113.9"]);
        assert_eq!(proxies.client(lb, &h), client);
        // A chain of trusted proxies is walked through, across repeated headers too.
        let h = forwarded(&["6.6.6.6, 203.0.113.9", "192.0.2.7,10.9.9.9"]);
        assert_eq!(proxies.client(lb, &h), client);
        // With a port, and IPv4 mapped into IPv6.
        assert_eq!(
            proxies.client(lb, &forwarded(&["203.0.113.9:4711"])),
            client
        );
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap_or(stranger);
        assert!(proxies.trusts(mapped));
        // No header, garbage where the client should be, or only proxies: the peer itself.
        assert_eq!(proxies.client(lb, &HeaderMap::new()), lb);
        assert_eq!(
            proxies.client(lb, &forwarded(&["203.0.113.9, nonsense"])),
            lb
        );
        assert_eq!(proxies.client(lb, &forwarded(&["10.0.0.1"])), lb);
        // Nobody is trusted by default.
        assert_eq!(Proxies::default().client(lb, &h), lb);
    }

    #[test]
    fn a_listener_holds_fewer_connections_than_the_process_may_open_files() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max processes             63413                63413                processes\n\
                      Max open files            1024                 524288               files\n";
        assert_eq!(parse_open_files(limits), Some(1024));
        assert_eq!(
            parse_open_files("Max open files  unlimited  unlimited  files"),
            None
        );
        assert_eq!(listener_capacity(1024, Some(1024)), 448);
        assert_eq!(listener_capacity(1024, Some(65536)), 1024);
        assert_eq!(listener_capacity(1024, None), 1024);
        assert_eq!(listener_capacity(1024, Some(10)), 1, "never zero");
    }
}
