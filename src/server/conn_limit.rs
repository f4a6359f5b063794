//! Open connections per client IP address, so one client cannot hold every slot of a
//! listener's connection limit.
//!
//! Owns [`PerIp`]: a count per address and a guard that gives the slot back when the
//! connection ends. Addresses with no open connection are forgotten, so memory follows
//! the number of connected clients. It must never block: over the limit, the caller
//! closes the new connection at once.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

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
}
