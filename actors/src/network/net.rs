//! The `Network` aggregate (stream `network-<uuid>`): a Neutron network, its subnets, and every address it
//! hands out. A network's address space is one consistency boundary: subnets may not overlap, a port's MAC
//! is unique on the network, a fixed IP is held by one port, a subnet with addresses in use or a network
//! with ports cannot be removed. Deciding all of that on one stream makes each check and its effect one
//! append under optimistic concurrency: two requests can never take the same address, and a refused
//! request appends nothing.

use std::collections::{BTreeMap, BTreeSet};

use imbl::OrdMap;
use serde::{Deserialize, Serialize};
use strata_proto::network as pb;
use strata_proto::NetworkEvent as E;
use uuid::Uuid;

use super::ipam::{self, Cidr, Range};
use crate::aggregate::{Aggregate, DomainError};

/// Ports with these owners do not keep their network (or its subnets) alive: deleting the network deletes
/// them first.
pub const AUTO_DELETE_OWNERS: &[&str] = &["network:dhcp", "network:distributed"];

/// Owners that may hold a subnet's gateway address (router ports).
pub const GATEWAY_OWNERS: &[&str] = &[
    "network:router_interface",
    "network:router_interface_distributed",
    "network:ha_router_replicated_interface",
    "network:router_gateway",
];

pub fn is_auto_delete(owner: &str) -> bool {
    AUTO_DELETE_OWNERS.contains(&owner)
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Subnet {
    pub project_id: String,
    pub name: String,
    pub description: String,
    pub ip_version: u32,
    pub cidr: String,
    /// "" = no gateway.
    pub gateway_ip: String,
    pub allocation_pools: Vec<(String, String)>,
    pub dns_nameservers: Vec<String>,
    pub host_routes: Vec<(String, String)>,
    pub enable_dhcp: bool,
    pub ipv6_ra_mode: String,
    pub ipv6_address_mode: String,
    pub tags: Vec<String>,
    /// The subnet's revision_number: 1 when added, +1 per change.
    pub revision: u64,
    /// Order of addition on the network (the first IPv4 subnet serves ports that name none).
    pub seq: u64,
    /// Allocated addresses -> port id. Plain integers and UUIDs: the state of a network with thousands of
    /// ports is copied by the actor for every command, and this copies without a heap allocation per entry.
    pub allocations: OrdMap<u128, Uuid>,
}

impl Subnet {
    pub fn cidr(&self) -> Option<Cidr> {
        Cidr::parse(&self.cidr).ok()
    }

    fn gateway(&self, cidr: &Cidr) -> Option<u128> {
        ipam::parse_ip_of(&self.gateway_ip, cidr.v6)
    }

    fn pools(&self, cidr: &Cidr) -> Vec<Range> {
        ipam::parse_pools(cidr, &self.allocation_pools).unwrap_or_default()
    }

    /// Addresses derived from the MAC (SLAAC, DHCPv6-stateless): not allocated from pools.
    pub fn is_auto_address(&self) -> bool {
        self.ip_version == 6
            && matches!(
                self.ipv6_address_mode.as_str(),
                "slaac" | "dhcpv6-stateless"
            )
    }

    /// Number of addresses in the pools, and how many of them are allocated.
    pub fn pool_usage(&self) -> (u128, u128) {
        let Some(c) = self.cidr() else { return (0, 0) };
        let pools = self.pools(&c);
        let total = pools
            .iter()
            .map(|p| p.end - p.start + 1)
            .fold(0u128, u128::saturating_add);
        let used = self
            .allocations
            .keys()
            .filter(|a| pools.iter().any(|p| **a >= p.start && **a <= p.end))
            .count() as u128;
        (total, used)
    }

    /// The lowest free address of the pools (not allocated, not taken by this request, not the gateway).
    /// Walks the allocations in order, so it costs the number of addresses held below the first gap.
    fn first_free(&self, cidr: &Cidr, taken: &BTreeSet<u128>) -> Option<u128> {
        let mut pools = self.pools(cidr);
        pools.sort_by_key(|p| p.start);
        let gateway = self.gateway(cidr);
        for p in pools {
            let mut allocs = self
                .allocations
                .range(p.start..=p.end)
                .map(|(a, _)| *a)
                .peekable();
            let mut candidate = p.start;
            loop {
                while allocs.peek().is_some_and(|a| *a < candidate) {
                    allocs.next();
                }
                let busy = allocs.peek() == Some(&candidate)
                    || taken.contains(&candidate)
                    || Some(candidate) == gateway;
                if !busy {
                    return Some(candidate);
                }
                match candidate.checked_add(1) {
                    Some(c) if c <= p.end => candidate = c,
                    _ => break,
                }
            }
        }
        None
    }
}

/// What a port's owner means to its network.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum OwnerKind {
    #[default]
    Plain,
    /// DHCP and similar ports, deleted with their network ([`AUTO_DELETE_OWNERS`]).
    AutoDelete,
    /// Router ports, which may hold a subnet's gateway ([`GATEWAY_OWNERS`]).
    Router,
}

impl OwnerKind {
    pub fn of(device_owner: &str) -> OwnerKind {
        if is_auto_delete(device_owner) {
            OwnerKind::AutoDelete
        } else if GATEWAY_OWNERS.contains(&device_owner) {
            OwnerKind::Router
        } else {
            OwnerKind::Plain
        }
    }
}

/// A port's place on the network: its MAC (as an integer) and what its owner means here. Its fixed IPs are
/// the subnets' allocations held by it ([`Network::fixed_ips_of`]). Plain values only, so the map of a
/// network's ports copies without a heap allocation per port.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PortPlace {
    pub mac: u64,
    pub owner: OwnerKind,
}

impl PortPlace {
    pub fn mac_address(&self) -> String {
        let b = self.mac.to_be_bytes();
        ipam::fmt_mac([b[2], b[3], b[4], b[5], b[6], b[7]])
    }
}

/// A MAC in Neutron's text form as an integer.
pub fn mac_number(mac: &str) -> Option<u64> {
    let canonical = ipam::canonical_mac(mac)?;
    u64::from_str_radix(&canonical.replace(':', ""), 16).ok()
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Network {
    pub exists: bool,
    pub deleted: bool,
    pub project_id: String,
    pub name: String,
    pub description: String,
    pub admin_state_up: bool,
    pub shared: bool,
    pub external: bool,
    pub mtu: u32,
    pub network_type: String,
    pub physical_network: String,
    pub segmentation_id: Option<u32>,
    pub availability_zone_hints: Vec<String>,
    pub port_security_enabled: bool,
    pub tags: Vec<String>,
    /// The network's revision_number: bumped by its own changes and by subnets coming and going, not by
    /// ports taking addresses.
    pub revision: u64,
    pub subnets: OrdMap<String, Subnet>,
    pub next_seq: u64,
    pub ports: OrdMap<Uuid, PortPlace>,
    /// MAC -> port id.
    pub macs: OrdMap<u64, Uuid>,
}

/// What a new network is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NetworkSpec {
    pub project_id: String,
    pub name: String,
    pub description: String,
    pub admin_state_up: bool,
    pub shared: bool,
    pub external: bool,
    pub mtu: u32,
    pub network_type: String,
    pub physical_network: String,
    pub segmentation_id: Option<u32>,
    pub availability_zone_hints: Vec<String>,
    pub port_security_enabled: bool,
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct NetworkChanges {
    pub name: Option<String>,
    pub description: Option<String>,
    pub admin_state_up: Option<bool>,
    pub shared: Option<bool>,
    pub external: Option<bool>,
    pub mtu: Option<u32>,
    pub port_security_enabled: Option<bool>,
}

/// What a new subnet is; the API has filled in the defaults (gateway, pools).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SubnetSpec {
    pub project_id: String,
    pub name: String,
    pub description: String,
    pub cidr: String,
    /// None = no gateway.
    pub gateway_ip: Option<String>,
    pub allocation_pools: Vec<(String, String)>,
    pub dns_nameservers: Vec<String>,
    pub host_routes: Vec<(String, String)>,
    pub enable_dhcp: bool,
    pub ipv6_ra_mode: String,
    pub ipv6_address_mode: String,
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct SubnetChanges {
    pub name: Option<String>,
    pub description: Option<String>,
    /// Some("") removes the gateway.
    pub gateway_ip: Option<String>,
    pub allocation_pools: Option<Vec<(String, String)>>,
    pub dns_nameservers: Option<Vec<String>>,
    pub host_routes: Option<Vec<(String, String)>>,
    pub enable_dhcp: Option<bool>,
}

/// One requested fixed IP: a subnet, an address, or both.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IpRequest {
    pub subnet_id: Option<String>,
    pub ip_address: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum NetworkCommand {
    Create(NetworkSpec),
    Update {
        changes: NetworkChanges,
        if_revision: Option<u64>,
    },
    SetTags(Vec<String>),
    Delete,
    AddSubnet {
        subnet_id: String,
        spec: SubnetSpec,
    },
    UpdateSubnet {
        subnet_id: String,
        changes: SubnetChanges,
        if_revision: Option<u64>,
    },
    SetSubnetTags {
        subnet_id: String,
        tags: Vec<String>,
    },
    RemoveSubnet {
        subnet_id: String,
    },
    /// Give port `port_id` a MAC (`mac`, or the first free of `mac_candidates`) and fixed IPs (`fixed_ips`,
    /// or Neutron's default choice when None).
    AllocatePort {
        port_id: String,
        mac: Option<String>,
        mac_candidates: Vec<String>,
        fixed_ips: Option<Vec<IpRequest>>,
        device_owner: String,
    },
    /// Replace a port's fixed IPs (addresses it already holds and names again are kept).
    ReallocatePort {
        port_id: String,
        fixed_ips: Vec<IpRequest>,
    },
    SetPortOwner {
        port_id: String,
        device_owner: String,
    },
    ReleasePort {
        port_id: String,
    },
}

fn invalid(ty: &str, msg: impl std::fmt::Display) -> DomainError {
    DomainError::Invalid(format!("{ty}: {msg}"))
}

fn conflict(ty: &str, msg: impl std::fmt::Display) -> DomainError {
    DomainError::Conflict(format!("{ty}: {msg}"))
}

/// The refusal of an update whose `If-Match` revision is not the current one (412).
pub fn revision_mismatch(current: u64, wanted: u64) -> DomainError {
    conflict(
        "RevisionNumberConstraintFailed",
        format!("the revision number is {current}, not {wanted} as the request expects"),
    )
}

fn check_revision(current: u64, wanted: Option<u64>) -> Result<(), DomainError> {
    match wanted {
        Some(w) if w != current => Err(revision_mismatch(current, w)),
        _ => Ok(()),
    }
}

fn fixed(v: &[(String, String)]) -> Vec<pb::FixedIp> {
    v.iter()
        .map(|(s, a)| pb::FixedIp {
            subnet_id: s.clone(),
            ip_address: a.clone(),
        })
        .collect()
}

fn pools_pb(v: &[(String, String)]) -> Vec<pb::AllocationPool> {
    v.iter()
        .map(|(s, e)| pb::AllocationPool {
            start: s.clone(),
            end: e.clone(),
        })
        .collect()
}

fn routes_pb(v: &[(String, String)]) -> Vec<pb::HostRoute> {
    v.iter()
        .map(|(d, n)| pb::HostRoute {
            destination: d.clone(),
            nexthop: n.clone(),
        })
        .collect()
}

impl Network {
    pub fn is_live(&self) -> bool {
        self.exists && !self.deleted
    }

    fn check_live(&self) -> Result<(), DomainError> {
        if !self.is_live() {
            return Err(DomainError::NotFound {
                kind: "network",
                id: String::new(),
            });
        }
        Ok(())
    }

    fn subnet(&self, id: &str) -> Result<&Subnet, DomainError> {
        self.subnets.get(id).ok_or_else(|| DomainError::NotFound {
            kind: "subnet",
            id: id.to_string(),
        })
    }

    /// Ports that keep the network from being deleted.
    pub fn ports_in_use(&self) -> impl Iterator<Item = (&Uuid, &PortPlace)> {
        self.ports
            .iter()
            .filter(|(_, p)| p.owner != OwnerKind::AutoDelete)
    }

    /// Port `id`'s place, if it has one.
    pub fn port(&self, id: &str) -> Option<&PortPlace> {
        Uuid::parse_str(id).ok().and_then(|u| self.ports.get(&u))
    }

    /// Check a subnet's address plan: its own consistency, and no overlap with the network's other subnets.
    fn check_plan(
        &self,
        subnet_id: &str,
        cidr: &Cidr,
        gateway: &Option<String>,
        pools: &[(String, String)],
    ) -> Result<(), DomainError> {
        let gw = match gateway {
            None => None,
            Some(g) => Some(ipam::parse_ip_of(g, cidr.v6).ok_or_else(|| {
                invalid(
                    "InvalidInput",
                    format!(
                        "the gateway '{g}' is not an IPv{} address",
                        cidr.ip_version()
                    ),
                )
            })?),
        };
        let pools = ipam::parse_pools(cidr, pools).map_err(plan_error)?;
        ipam::validate_plan(cidr, &pools, gw).map_err(plan_error)?;
        for (id, s) in &self.subnets {
            if id == subnet_id {
                continue;
            }
            if s.cidr().is_some_and(|other| other.overlaps(cidr)) {
                return Err(invalid(
                    "InvalidInput",
                    format!(
                        "the subnet {cidr} overlaps subnet {id} ({}) of this network",
                        s.cidr
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Decide the fixed IPs for `requests` (or Neutron's default choice), for port `port_id` whose MAC is
    /// `mac`, keeping what `keep` (the port's current addresses) already holds.
    fn choose_ips(
        &self,
        port_id: &str,
        mac: &str,
        requests: &Option<Vec<IpRequest>>,
        keep: &[(String, String)],
        device_owner: &str,
    ) -> Result<Vec<(String, String)>, DomainError> {
        // Addresses this request takes (per subnet), so two entries cannot take one address.
        let mut taken: BTreeMap<String, BTreeSet<u128>> = BTreeMap::new();
        let none = BTreeSet::new();
        let is_taken = |taken: &BTreeMap<String, BTreeSet<u128>>, sid: &str, a: u128| {
            taken.get(sid).is_some_and(|t| t.contains(&a))
        };
        let mut out: Vec<(String, String)> = Vec::new();
        let me = Uuid::parse_str(port_id).ok();
        let held_by_other =
            |subnet: &Subnet, a: u128| subnet.allocations.get(&a).is_some_and(|p| Some(*p) != me);
        let mut ordered: Vec<(&String, &Subnet)> = self.subnets.iter().collect();
        ordered.sort_by_key(|(_, s)| s.seq);
        let Some(requests) = requests else {
            // Neutron's default: one address from the first IPv4 subnet with room, the MAC-derived address on
            // every auto-address IPv6 subnet, one address from the first stateful IPv6 subnet.
            let mut v4_exhausted = false;
            let mut v4_done = false;
            let mut v6_done = false;
            for (id, s) in ordered {
                let Some(c) = s.cidr() else { continue };
                if s.is_auto_address() {
                    if let Some(a) = ipam::eui64(&c, mac) {
                        if held_by_other(s, a) {
                            return Err(conflict(
                                "IpAddressAlreadyAllocated",
                                format!(
                                    "the address {} is already allocated in subnet {id}",
                                    ipam::fmt_ip(a, true)
                                ),
                            ));
                        }
                        out.push((id.clone(), ipam::fmt_ip(a, true)));
                    }
                    continue;
                }
                if (c.v6 && v6_done) || (!c.v6 && v4_done) {
                    continue;
                }
                match s.first_free(&c, taken.get(id.as_str()).unwrap_or(&none)) {
                    Some(a) => {
                        taken.entry(id.clone()).or_default().insert(a);
                        out.push((id.clone(), ipam::fmt_ip(a, c.v6)));
                        if c.v6 {
                            v6_done = true;
                        } else {
                            v4_done = true;
                        }
                    }
                    None if !c.v6 => v4_exhausted = true,
                    None => {}
                }
            }
            if v4_exhausted && !v4_done {
                return Err(conflict(
                    "IpAddressGenerationFailure",
                    "no more IP addresses are available on this network",
                ));
            }
            return Ok(out);
        };
        for r in requests {
            let ip = match &r.ip_address {
                None => None,
                Some(text) => Some(ipam::parse_ip(text).ok_or_else(|| {
                    invalid(
                        "InvalidInput",
                        format!("'{text}' is not a valid IP address"),
                    )
                })?),
            };
            let subnet_id = match (&r.subnet_id, ip) {
                (Some(s), _) => {
                    if !self.subnets.contains_key(s) {
                        return Err(invalid(
                            "InvalidInput",
                            format!("subnet {s} is not a subnet of this network"),
                        ));
                    }
                    s.clone()
                }
                (None, Some((v6, a))) => self
                    .subnets
                    .iter()
                    .find(|(_, s)| s.cidr().is_some_and(|c| c.v6 == v6 && c.contains(a)))
                    .map(|(id, _)| id.clone())
                    .ok_or_else(|| {
                        invalid(
                            "InvalidIpForNetwork",
                            format!(
                                "the address {} is not in any subnet of this network",
                                ipam::fmt_ip(a, v6)
                            ),
                        )
                    })?,
                (None, None) => {
                    return Err(invalid(
                        "InvalidInput",
                        "a fixed IP needs a subnet_id or an ip_address",
                    ))
                }
            };
            let s = &self.subnets[&subnet_id];
            let Some(c) = s.cidr() else { continue };
            match ip {
                Some((v6, a)) => {
                    let text = ipam::fmt_ip(a, v6);
                    if v6 != c.v6 || !c.contains(a) || c.is_reserved(a) {
                        return Err(invalid(
                            "InvalidIpForSubnet",
                            format!(
                                "the address {text} is not a valid address of subnet {subnet_id}"
                            ),
                        ));
                    }
                    let is_gateway = s.gateway(&c) == Some(a);
                    let mine = keep
                        .iter()
                        .any(|(sid, ip)| sid == &subnet_id && ip == &text);
                    if held_by_other(s, a)
                        || is_taken(&taken, &subnet_id, a)
                        || (is_gateway && !mine && !GATEWAY_OWNERS.contains(&device_owner))
                    {
                        return Err(conflict(
                            "IpAddressAlreadyAllocated",
                            format!(
                                "the address {text} is already allocated in subnet {subnet_id}"
                            ),
                        ));
                    }
                    taken.entry(subnet_id.clone()).or_default().insert(a);
                    out.push((subnet_id, text));
                }
                None => {
                    // The port's current address on this subnet, if it has one not named by another entry.
                    let current = keep.iter().find(|(sid, ip)| {
                        sid == &subnet_id
                            && ipam::parse_ip(ip)
                                .is_some_and(|(_, a)| !is_taken(&taken, &subnet_id, a))
                            && !requests
                                .iter()
                                .any(|o| o.ip_address.as_deref() == Some(ip.as_str()))
                    });
                    if let Some((_, ip)) = current {
                        if let Some((_, a)) = ipam::parse_ip(ip) {
                            taken.entry(subnet_id.clone()).or_default().insert(a);
                        }
                        out.push((subnet_id.clone(), ip.clone()));
                        continue;
                    }
                    let a = if s.is_auto_address() {
                        ipam::eui64(&c, mac)
                            .filter(|a| !held_by_other(s, *a) && !is_taken(&taken, &subnet_id, *a))
                    } else {
                        s.first_free(&c, taken.get(&subnet_id).unwrap_or(&none))
                    };
                    let Some(a) = a else {
                        return Err(conflict(
                            "IpAddressGenerationFailure",
                            format!("no more IP addresses are available on subnet {subnet_id}"),
                        ));
                    };
                    taken.entry(subnet_id.clone()).or_default().insert(a);
                    out.push((subnet_id, ipam::fmt_ip(a, c.v6)));
                }
            }
        }
        Ok(out)
    }
}

fn plan_error(e: ipam::PlanError) -> DomainError {
    if e.is_conflict() {
        DomainError::Conflict(e.typed())
    } else {
        DomainError::Invalid(e.typed())
    }
}

impl Aggregate for Network {
    type Command = NetworkCommand;
    type Event = E;
    const KIND: &'static str = "network";
    /// 2: ports, MACs and allocations as plain values (ids as UUIDs, addresses and MACs as integers).
    const SNAPSHOT_SCHEMA: u32 = 2;

    fn decide(&self, cmd: &NetworkCommand) -> Result<Vec<E>, DomainError> {
        use NetworkCommand as C;
        if !matches!(cmd, C::Create(_)) {
            self.check_live()?;
        }
        match cmd {
            C::Create(s) => {
                if self.exists {
                    return Err(DomainError::AlreadyExists {
                        kind: "network",
                        detail: "the network exists".into(),
                    });
                }
                Ok(vec![E::NetworkCreated(pb::NetworkCreated {
                    project_id: s.project_id.clone(),
                    name: s.name.clone(),
                    description: s.description.clone(),
                    admin_state_up: s.admin_state_up,
                    shared: s.shared,
                    external: s.external,
                    mtu: s.mtu,
                    network_type: s.network_type.clone(),
                    physical_network: s.physical_network.clone(),
                    segmentation_id: s.segmentation_id,
                    availability_zone_hints: s.availability_zone_hints.clone(),
                    port_security_enabled: s.port_security_enabled,
                    tags: s.tags.clone(),
                })])
            }
            C::Update {
                changes: c,
                if_revision,
            } => {
                check_revision(self.revision, *if_revision)?;
                let changed = |new: &Option<String>, old: &str| {
                    new.as_ref().filter(|n| n.as_str() != old).cloned()
                };
                let flag = |new: Option<bool>, old: bool| new.filter(|n| *n != old);
                let e = pb::NetworkUpdated {
                    name: changed(&c.name, &self.name),
                    description: changed(&c.description, &self.description),
                    admin_state_up: flag(c.admin_state_up, self.admin_state_up),
                    shared: flag(c.shared, self.shared),
                    external: flag(c.external, self.external),
                    mtu: c.mtu.filter(|m| *m != self.mtu),
                    port_security_enabled: flag(
                        c.port_security_enabled,
                        self.port_security_enabled,
                    ),
                };
                if e == pb::NetworkUpdated::default() {
                    return Ok(vec![]);
                }
                Ok(vec![E::NetworkUpdated(e)])
            }
            C::SetTags(tags) => {
                if *tags == self.tags {
                    return Ok(vec![]);
                }
                Ok(vec![E::TagsSet(pb::TagsSet { tags: tags.clone() })])
            }
            C::Delete => {
                if let Some((id, _)) = self.ports_in_use().next() {
                    return Err(conflict(
                        "NetworkInUse",
                        format!("the network has ports in use (port {id} among them)"),
                    ));
                }
                Ok(vec![E::NetworkDeleted(pb::NetworkDeleted {})])
            }
            C::AddSubnet { subnet_id, spec } => {
                if self.subnets.contains_key(subnet_id) {
                    return Err(DomainError::AlreadyExists {
                        kind: "subnet",
                        detail: subnet_id.clone(),
                    });
                }
                let cidr = Cidr::parse(&spec.cidr).map_err(|m| invalid("InvalidInput", m))?;
                self.check_plan(subnet_id, &cidr, &spec.gateway_ip, &spec.allocation_pools)?;
                Ok(vec![E::SubnetAdded(pb::SubnetAdded {
                    subnet_id: subnet_id.clone(),
                    project_id: spec.project_id.clone(),
                    name: spec.name.clone(),
                    description: spec.description.clone(),
                    ip_version: cidr.ip_version(),
                    cidr: cidr.to_string(),
                    gateway_ip: spec
                        .gateway_ip
                        .as_deref()
                        .and_then(ipam::canonical_ip)
                        .unwrap_or_default(),
                    allocation_pools: pools_pb(&spec.allocation_pools),
                    dns_nameservers: spec.dns_nameservers.clone(),
                    host_routes: routes_pb(&spec.host_routes),
                    enable_dhcp: spec.enable_dhcp,
                    ipv6_ra_mode: spec.ipv6_ra_mode.clone(),
                    ipv6_address_mode: spec.ipv6_address_mode.clone(),
                    tags: spec.tags.clone(),
                })])
            }
            C::UpdateSubnet {
                subnet_id,
                changes: c,
                if_revision,
            } => {
                let s = self.subnet(subnet_id)?;
                check_revision(s.revision, *if_revision)?;
                let cidr = s
                    .cidr()
                    .ok_or_else(|| invalid("InvalidInput", "the subnet's cidr is unreadable"))?;
                let gateway = match &c.gateway_ip {
                    Some(g) if g.is_empty() => None,
                    Some(g) => Some(g.clone()),
                    None if s.gateway_ip.is_empty() => None,
                    None => Some(s.gateway_ip.clone()),
                };
                let pools = c
                    .allocation_pools
                    .clone()
                    .unwrap_or_else(|| s.allocation_pools.clone());
                if c.gateway_ip.is_some() || c.allocation_pools.is_some() {
                    self.check_plan(subnet_id, &cidr, &gateway, &pools)?;
                }
                if let Some(g) = gateway
                    .as_deref()
                    .and_then(|g| ipam::parse_ip_of(g, cidr.v6))
                {
                    if let Some(holder) = s.allocations.get(&g) {
                        if Some(g) != s.gateway(&cidr) {
                            return Err(conflict(
                                "GatewayIpInUse",
                                format!(
                                    "the address {} is held by port {holder}",
                                    ipam::fmt_ip(g, cidr.v6)
                                ),
                            ));
                        }
                    }
                }
                let new_gw = c.gateway_ip.as_ref().map(|g| {
                    if g.is_empty() {
                        String::new()
                    } else {
                        ipam::canonical_ip(g).unwrap_or_default()
                    }
                });
                let e = pb::SubnetUpdated {
                    subnet_id: subnet_id.clone(),
                    name: c.name.clone().filter(|n| *n != s.name),
                    description: c.description.clone().filter(|d| *d != s.description),
                    gateway_ip: new_gw.filter(|g| *g != s.gateway_ip),
                    set_allocation_pools: c
                        .allocation_pools
                        .as_ref()
                        .is_some_and(|p| *p != s.allocation_pools),
                    allocation_pools: c
                        .allocation_pools
                        .as_deref()
                        .map(pools_pb)
                        .unwrap_or_default(),
                    set_dns_nameservers: c
                        .dns_nameservers
                        .as_ref()
                        .is_some_and(|d| *d != s.dns_nameservers),
                    dns_nameservers: c.dns_nameservers.clone().unwrap_or_default(),
                    set_host_routes: c.host_routes.as_ref().is_some_and(|r| *r != s.host_routes),
                    host_routes: c.host_routes.as_deref().map(routes_pb).unwrap_or_default(),
                    enable_dhcp: c.enable_dhcp.filter(|d| *d != s.enable_dhcp),
                };
                let nothing = e.name.is_none()
                    && e.description.is_none()
                    && e.gateway_ip.is_none()
                    && !e.set_allocation_pools
                    && !e.set_dns_nameservers
                    && !e.set_host_routes
                    && e.enable_dhcp.is_none();
                if nothing {
                    return Ok(vec![]);
                }
                Ok(vec![E::SubnetUpdated(e)])
            }
            C::SetSubnetTags { subnet_id, tags } => {
                let s = self.subnet(subnet_id)?;
                if *tags == s.tags {
                    return Ok(vec![]);
                }
                Ok(vec![E::SubnetTagsSet(pb::SubnetTagsSet {
                    subnet_id: subnet_id.clone(),
                    tags: tags.clone(),
                })])
            }
            C::RemoveSubnet { subnet_id } => {
                let s = self.subnet(subnet_id)?;
                if let Some(port) = s.allocations.values().next() {
                    return Err(conflict(
                        "SubnetInUse",
                        format!("the subnet has addresses in use (port {port} among them)"),
                    ));
                }
                Ok(vec![E::SubnetRemoved(pb::SubnetRemoved {
                    subnet_id: subnet_id.clone(),
                })])
            }
            C::AllocatePort {
                port_id,
                mac,
                mac_candidates,
                fixed_ips,
                device_owner,
            } => {
                let Ok(port_uuid) = Uuid::parse_str(port_id) else {
                    return Err(invalid(
                        "InvalidInput",
                        format!("'{port_id}' is not a port id"),
                    ));
                };
                if self.ports.contains_key(&port_uuid) {
                    return Err(DomainError::AlreadyExists {
                        kind: "port",
                        detail: port_id.clone(),
                    });
                }
                let mac = match mac {
                    Some(m) => {
                        let m = ipam::canonical_mac(m).ok_or_else(|| {
                            invalid("InvalidInput", format!("'{m}' is not a valid MAC address"))
                        })?;
                        if mac_number(&m).is_some_and(|n| self.macs.contains_key(&n)) {
                            return Err(conflict(
                                "MacAddressInUse",
                                format!("the MAC address {m} is in use on this network"),
                            ));
                        }
                        m
                    }
                    None => mac_candidates
                        .iter()
                        .filter_map(|m| ipam::canonical_mac(m))
                        .find(|m| mac_number(m).is_some_and(|n| !self.macs.contains_key(&n)))
                        .ok_or_else(|| {
                            conflict(
                                "MacAddressGenerationFailure",
                                "no free MAC address could be generated",
                            )
                        })?,
                };
                let ips = self.choose_ips(port_id, &mac, fixed_ips, &[], device_owner)?;
                Ok(vec![E::NetworkPortAllocated(pb::NetworkPortAllocated {
                    port_id: port_id.clone(),
                    mac_address: mac,
                    fixed_ips: fixed(&ips),
                    device_owner: device_owner.clone(),
                })])
            }
            C::ReallocatePort { port_id, fixed_ips } => {
                let place = self.port(port_id).ok_or_else(|| DomainError::NotFound {
                    kind: "port",
                    id: port_id.clone(),
                })?;
                let current = self.fixed_ips_of(port_id);
                let owner = match place.owner {
                    OwnerKind::Router => GATEWAY_OWNERS[0],
                    _ => "",
                };
                let ips = self.choose_ips(
                    port_id,
                    &place.mac_address(),
                    &Some(fixed_ips.clone()),
                    &current,
                    owner,
                )?;
                let mut sorted = ips.clone();
                sorted.sort();
                if sorted == current {
                    return Ok(vec![]);
                }
                Ok(vec![E::NetworkPortReallocated(
                    pb::NetworkPortReallocated {
                        port_id: port_id.clone(),
                        fixed_ips: fixed(&ips),
                    },
                )])
            }
            C::SetPortOwner {
                port_id,
                device_owner,
            } => {
                let place = self.port(port_id).ok_or_else(|| DomainError::NotFound {
                    kind: "port",
                    id: port_id.clone(),
                })?;
                if place.owner == OwnerKind::of(device_owner) {
                    return Ok(vec![]);
                }
                Ok(vec![E::NetworkPortOwnerChanged(
                    pb::NetworkPortOwnerChanged {
                        port_id: port_id.clone(),
                        device_owner: device_owner.clone(),
                    },
                )])
            }
            C::ReleasePort { port_id } => {
                if self.port(port_id).is_none() {
                    return Ok(vec![]);
                }
                Ok(vec![E::NetworkPortReleased(pb::NetworkPortReleased {
                    port_id: port_id.clone(),
                })])
            }
        }
    }

    fn apply(mut self, event: &E) -> Self {
        match event {
            E::NetworkCreated(c) => {
                self.exists = true;
                self.project_id = c.project_id.clone();
                self.name = c.name.clone();
                self.description = c.description.clone();
                self.admin_state_up = c.admin_state_up;
                self.shared = c.shared;
                self.external = c.external;
                self.mtu = c.mtu;
                self.network_type = c.network_type.clone();
                self.physical_network = c.physical_network.clone();
                self.segmentation_id = c.segmentation_id;
                self.availability_zone_hints = c.availability_zone_hints.clone();
                self.port_security_enabled = c.port_security_enabled;
                self.tags = c.tags.clone();
                self.revision = 1;
            }
            E::NetworkUpdated(u) => {
                if let Some(v) = &u.name {
                    self.name = v.clone();
                }
                if let Some(v) = &u.description {
                    self.description = v.clone();
                }
                if let Some(v) = u.admin_state_up {
                    self.admin_state_up = v;
                }
                if let Some(v) = u.shared {
                    self.shared = v;
                }
                if let Some(v) = u.external {
                    self.external = v;
                }
                if let Some(v) = u.mtu {
                    self.mtu = v;
                }
                if let Some(v) = u.port_security_enabled {
                    self.port_security_enabled = v;
                }
                self.revision += 1;
            }
            E::TagsSet(t) => {
                self.tags = t.tags.clone();
                self.revision += 1;
            }
            E::NetworkDeleted(_) => {
                self.deleted = true;
                self.revision += 1;
            }
            E::SubnetAdded(a) => {
                self.next_seq += 1;
                self.subnets.insert(
                    a.subnet_id.clone(),
                    Subnet {
                        project_id: a.project_id.clone(),
                        name: a.name.clone(),
                        description: a.description.clone(),
                        ip_version: a.ip_version,
                        cidr: a.cidr.clone(),
                        gateway_ip: a.gateway_ip.clone(),
                        allocation_pools: a
                            .allocation_pools
                            .iter()
                            .map(|p| (p.start.clone(), p.end.clone()))
                            .collect(),
                        dns_nameservers: a.dns_nameservers.clone(),
                        host_routes: a
                            .host_routes
                            .iter()
                            .map(|r| (r.destination.clone(), r.nexthop.clone()))
                            .collect(),
                        enable_dhcp: a.enable_dhcp,
                        ipv6_ra_mode: a.ipv6_ra_mode.clone(),
                        ipv6_address_mode: a.ipv6_address_mode.clone(),
                        tags: a.tags.clone(),
                        revision: 1,
                        seq: self.next_seq,
                        allocations: OrdMap::new(),
                    },
                );
                self.revision += 1;
            }
            E::SubnetUpdated(u) => {
                if let Some(s) = self.subnets.get_mut(&u.subnet_id) {
                    if let Some(v) = &u.name {
                        s.name = v.clone();
                    }
                    if let Some(v) = &u.description {
                        s.description = v.clone();
                    }
                    if let Some(v) = &u.gateway_ip {
                        s.gateway_ip = v.clone();
                    }
                    if u.set_allocation_pools {
                        s.allocation_pools = u
                            .allocation_pools
                            .iter()
                            .map(|p| (p.start.clone(), p.end.clone()))
                            .collect();
                    }
                    if u.set_dns_nameservers {
                        s.dns_nameservers = u.dns_nameservers.clone();
                    }
                    if u.set_host_routes {
                        s.host_routes = u
                            .host_routes
                            .iter()
                            .map(|r| (r.destination.clone(), r.nexthop.clone()))
                            .collect();
                    }
                    if let Some(v) = u.enable_dhcp {
                        s.enable_dhcp = v;
                    }
                    s.revision += 1;
                }
            }
            E::SubnetTagsSet(t) => {
                if let Some(s) = self.subnets.get_mut(&t.subnet_id) {
                    s.tags = t.tags.clone();
                    s.revision += 1;
                }
            }
            E::SubnetRemoved(r) => {
                self.subnets.remove(&r.subnet_id);
                self.revision += 1;
            }
            E::NetworkPortAllocated(a) => {
                // Ids and MACs the API made: a value that does not parse cannot have been recorded by it.
                let (Ok(port), Some(mac)) =
                    (Uuid::parse_str(&a.port_id), mac_number(&a.mac_address))
                else {
                    return self;
                };
                self.hold(port, &a.fixed_ips);
                self.macs.insert(mac, port);
                self.ports.insert(
                    port,
                    PortPlace {
                        mac,
                        owner: OwnerKind::of(&a.device_owner),
                    },
                );
            }
            E::NetworkPortReallocated(r) => {
                let Ok(port) = Uuid::parse_str(&r.port_id) else {
                    return self;
                };
                self.unhold(port);
                self.hold(port, &r.fixed_ips);
            }
            E::NetworkPortOwnerChanged(o) => {
                if let Some(p) = Uuid::parse_str(&o.port_id)
                    .ok()
                    .and_then(|u| self.ports.get_mut(&u))
                {
                    p.owner = OwnerKind::of(&o.device_owner);
                }
            }
            E::NetworkPortReleased(r) => {
                let Ok(port) = Uuid::parse_str(&r.port_id) else {
                    return self;
                };
                if let Some(p) = self.ports.remove(&port) {
                    self.unhold(port);
                    if self.macs.get(&p.mac) == Some(&port) {
                        self.macs.remove(&p.mac);
                    }
                }
            }
            _ => {}
        }
        self
    }
}

impl Network {
    /// Port `port_id`'s fixed IPs as (subnet id, address), ordered by subnet id and address.
    pub fn fixed_ips_of(&self, port_id: &str) -> Vec<(String, String)> {
        let Ok(port) = Uuid::parse_str(port_id) else {
            return vec![];
        };
        let mut out = Vec::new();
        for (sid, s) in &self.subnets {
            let v6 = s.ip_version == 6;
            for (a, p) in &s.allocations {
                if *p == port {
                    out.push((sid.clone(), ipam::fmt_ip(*a, v6)));
                }
            }
        }
        out.sort();
        out
    }

    fn hold(&mut self, port: Uuid, ips: &[pb::FixedIp]) {
        for f in ips {
            if let (Some(s), Some((_, a))) = (
                self.subnets.get_mut(&f.subnet_id),
                ipam::parse_ip(&f.ip_address),
            ) {
                s.allocations.insert(a, port);
            }
        }
    }

    /// Free every address `port` holds (a scan of the allocations: releases are rarer than the copies a
    /// per-port list of addresses would cost).
    fn unhold(&mut self, port: Uuid) {
        let held: Vec<(String, Vec<u128>)> = self
            .subnets
            .iter()
            .map(|(id, s)| {
                let addresses = s
                    .allocations
                    .iter()
                    .filter(|(_, p)| **p == port)
                    .map(|(a, _)| *a)
                    .collect::<Vec<_>>();
                (id.clone(), addresses)
            })
            .filter(|(_, a)| !a.is_empty())
            .collect();
        for (id, addresses) in held {
            if let Some(s) = self.subnets.get_mut(&id) {
                for a in addresses {
                    s.allocations.remove(&a);
                }
            }
        }
    }
}
