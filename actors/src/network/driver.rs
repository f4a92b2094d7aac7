//! The datapath seam: what routers, floating IPs and security groups look like once plumbed, the
//! [`NetworkDriver`] trait that plumbs them, and the `fake` driver that only records what it was asked to
//! do. A Linux datapath (a `qrouter-<id>` namespace per router with its gateway and interface devices,
//! routes, SNAT and 1:1 NAT rules; per-port filter chains built from security group rules) implements the
//! same trait later; the API and the aggregates do not change.
//!
//! Every call is a whole desired state for one object (idempotent, "make it look like this"), so the
//! agent that drives a driver can re-send everything after a restart.

use std::collections::{BTreeMap, BTreeSet};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// An address on a router port, with its subnet's prefix length (`10.0.0.1/24`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PortAddress {
    pub port_id: String,
    pub mac_address: String,
    /// `address/prefix` for each fixed IP.
    pub addresses: Vec<String>,
}

/// A floating IP's 1:1 NAT: traffic to `floating_ip` goes to `fixed_ip`, and `fixed_ip` leaves as
/// `floating_ip`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NatRule {
    pub floating_ip_id: String,
    pub floating_ip: String,
    pub fixed_ip: String,
}

/// A router as the datapath holds it (Linux: namespace `qrouter-<router_id>`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouterPlumbing {
    pub router_id: String,
    pub admin_state_up: bool,
    /// The external port (`qg-` device) and whether internal addresses leave SNATed to its address.
    pub gateway: Option<PortAddress>,
    pub enable_snat: bool,
    /// Internal ports (`qr-` devices).
    pub interfaces: Vec<PortAddress>,
    /// Static routes: (destination, nexthop).
    pub routes: Vec<(String, String)>,
    pub nat: Vec<NatRule>,
}

/// Where a filter rule's traffic may come from (ingress) or go to (egress).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Remote {
    Any,
    Prefix(String),
    /// The members of a security group: the addresses of its set (see [`AddressSetChange`]; Linux: an ipset per group, so
    /// a port joining a group changes one set, not every filter that names the group).
    Group(String),
}

/// A change to the addresses of the ports in a security group (Linux: `ipset add` / `ipset del`), so a
/// port joining a large group costs one address, not the whole set. A set left empty is gone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressSetChange {
    pub group_id: String,
    pub added: Vec<String>,
    pub removed: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FilterRule {
    pub direction: String,
    pub ethertype: String,
    /// IP protocol number; `None` = any.
    pub protocol: Option<u8>,
    pub port_range_min: Option<u32>,
    pub port_range_max: Option<u32>,
    pub remote: Remote,
}

/// A port's filter: the union of its security groups' rules (Linux: a chain per port and direction).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortFilter {
    pub port_id: String,
    pub mac_address: String,
    pub addresses: Vec<String>,
    /// Connection tracking on (every group stateful); stateless groups need both directions allowed.
    pub stateful: bool,
    pub rules: Vec<FilterRule>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("network driver: {0}")]
pub struct DriverError(pub String);

/// A datapath. Calls are whole desired states and idempotent.
pub trait NetworkDriver: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    /// Make router `plumbing.router_id` look exactly like `plumbing` (creating its namespace if needed).
    fn sync_router(&self, plumbing: &RouterPlumbing) -> Result<(), DriverError>;
    /// Remove a router's namespace and everything in it (nothing to do if it is absent).
    fn remove_router(&self, router_id: &str) -> Result<(), DriverError>;
    /// Make a port's filter exactly `filter`.
    fn sync_port_filter(&self, filter: &PortFilter) -> Result<(), DriverError>;
    /// Remove a port's filter (the port is gone or no longer filtered).
    fn remove_port_filter(&self, port_id: &str) -> Result<(), DriverError>;
    /// Add and remove addresses of a group's set (created on first use, removed when left empty).
    fn update_address_set(&self, change: &AddressSetChange) -> Result<(), DriverError>;
}

/// What the fake datapath holds: every router and port filter it was last told about.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FakePlumbing {
    pub routers: BTreeMap<String, RouterPlumbing>,
    pub port_filters: BTreeMap<String, PortFilter>,
    /// Group id -> addresses of its members.
    pub address_sets: BTreeMap<String, BTreeSet<String>>,
    /// Driver calls made so far (a cheap way for tests to see that nothing was re-plumbed needlessly).
    pub calls: u64,
}

/// The in-memory datapath: records plumbing, changes nothing on the host.
#[derive(Debug, Default)]
pub struct FakeNetworkDriver {
    state: Mutex<FakePlumbing>,
}

impl FakeNetworkDriver {
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of everything plumbed so far.
    pub fn plumbing(&self) -> FakePlumbing {
        self.state.lock().clone()
    }
}

impl NetworkDriver for FakeNetworkDriver {
    fn name(&self) -> &'static str {
        "fake"
    }

    fn sync_router(&self, plumbing: &RouterPlumbing) -> Result<(), DriverError> {
        let mut s = self.state.lock();
        s.calls += 1;
        s.routers
            .insert(plumbing.router_id.clone(), plumbing.clone());
        Ok(())
    }

    fn remove_router(&self, router_id: &str) -> Result<(), DriverError> {
        let mut s = self.state.lock();
        s.calls += 1;
        s.routers.remove(router_id);
        Ok(())
    }

    fn sync_port_filter(&self, filter: &PortFilter) -> Result<(), DriverError> {
        let mut s = self.state.lock();
        s.calls += 1;
        s.port_filters
            .insert(filter.port_id.clone(), filter.clone());
        Ok(())
    }

    fn remove_port_filter(&self, port_id: &str) -> Result<(), DriverError> {
        let mut s = self.state.lock();
        s.calls += 1;
        s.port_filters.remove(port_id);
        Ok(())
    }

    fn update_address_set(&self, change: &AddressSetChange) -> Result<(), DriverError> {
        let mut s = self.state.lock();
        s.calls += 1;
        let set = s.address_sets.entry(change.group_id.clone()).or_default();
        for a in &change.removed {
            set.remove(a);
        }
        set.extend(change.added.iter().cloned());
        if set.is_empty() {
            s.address_sets.remove(&change.group_id);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fake_keeps_the_last_desired_state() {
        let d = FakeNetworkDriver::new();
        let mut r = RouterPlumbing {
            router_id: "r1".into(),
            admin_state_up: true,
            ..Default::default()
        };
        d.sync_router(&r).unwrap();
        r.nat.push(NatRule {
            floating_ip_id: "f".into(),
            floating_ip: "172.24.4.9".into(),
            fixed_ip: "10.0.0.5".into(),
        });
        d.sync_router(&r).unwrap();
        assert_eq!(d.plumbing().routers["r1"], r);
        d.remove_router("r1").unwrap();
        d.remove_router("r1").unwrap();
        let p = d.plumbing();
        assert!(p.routers.is_empty());
        assert_eq!(p.calls, 4);
        let f = PortFilter {
            port_id: "p".into(),
            stateful: true,
            ..Default::default()
        };
        d.sync_port_filter(&f).unwrap();
        assert_eq!(d.plumbing().port_filters["p"], f);
        d.remove_port_filter("p").unwrap();
        assert!(d.plumbing().port_filters.is_empty());
        let change = |added: &[&str], removed: &[&str]| AddressSetChange {
            group_id: "g".into(),
            added: added.iter().map(|a| a.to_string()).collect(),
            removed: removed.iter().map(|a| a.to_string()).collect(),
        };
        d.update_address_set(&change(&["10.0.0.5", "10.0.0.6"], &[]))
            .unwrap();
        d.update_address_set(&change(&[], &["10.0.0.5"])).unwrap();
        assert_eq!(
            d.plumbing().address_sets["g"].iter().collect::<Vec<_>>(),
            ["10.0.0.6"]
        );
        d.update_address_set(&change(&[], &["10.0.0.6"])).unwrap();
        assert!(d.plumbing().address_sets.is_empty());
    }
}
