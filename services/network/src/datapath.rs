//! The datapath agent: follows the log and keeps a [`NetworkDriver`] in step with what the networking view
//! says routers, floating IPs and security groups are, then records what only the datapath can tell (a
//! floating IP is ACTIVE once its NAT is in place, DOWN otherwise).
//!
//! Each batch of events marks what changed (a router, a floating IP, a port, a security group); the agent
//! waits until the view has the batch, computes the desired plumbing of what changed from the view, and
//! calls the driver only where it differs from what it applied last. At start it applies everything, so a
//! driver that lost its state (the fake, or a host after a reboot) is brought back; a restart never needs
//! anything but the log.
//!
//! Security groups reach the datapath as one filter per port (the union of its groups' rules; a rule with a
//! remote group names the group's address set) and one address set per group, changed incrementally as
//! ports come and go. It also cleans up after the core: a floating IP whose port is gone is disassociated,
//! as Neutron does when a port is deleted.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use strata_actors::network::driver::{
    AddressSetChange, FilterRule, NatRule, NetworkDriver, PortAddress, PortFilter, Remote,
    RouterPlumbing,
};
use strata_actors::network::ipam::Cidr;
use strata_actors::network::{
    protocol_number, FloatingIpCommand, RouterSubnet, STATUS_ACTIVE, STATUS_DOWN,
};
use strata_actors::{Reconcile, Reconciler};
use strata_events::{EventLog, Metadata, Position, RecordedEvent};
use strata_projections::network::{NetworkView, PortRow, RouterRow};

use super::Networks;

/// How long the agent waits for the view to reach a batch before acting on what it has.
pub const VIEW_WAIT: Duration = Duration::from_secs(10);

/// The one reconciler key of the agent: every change marks [`Datapath::pending`] and wakes it, so changes
/// that arrive during a run are handled together by the next.
pub const KEY: &str = "datapath";

/// What changed since the last reconcile.
#[derive(Debug, Default)]
pub struct Dirty {
    all: bool,
    routers: BTreeSet<String>,
    floating_ips: BTreeSet<String>,
    ports: BTreeSet<String>,
    groups: BTreeSet<String>,
}

/// What the driver was last told.
#[derive(Debug, Default)]
pub struct Applied {
    routers: BTreeMap<String, RouterPlumbing>,
    filters: BTreeMap<String, PortFilter>,
    /// Port -> (its groups, its addresses) as counted into the address sets.
    members: BTreeMap<String, (Vec<String>, Vec<String>)>,
    /// Group -> address -> how many of its ports hold it (two networks may reuse an address).
    sets: BTreeMap<String, BTreeMap<String, u32>>,
}

impl Applied {
    fn ports_in(&self, group: &str) -> Vec<String> {
        self.members
            .iter()
            .filter(|(_, (groups, _))| groups.iter().any(|g| g == group))
            .map(|(p, _)| p.clone())
            .collect()
    }
}

pub struct Datapath {
    networks: Arc<Networks>,
    driver: Arc<dyn NetworkDriver>,
    applied: Mutex<Applied>,
    /// What changed since the last run began.
    pending: Mutex<Dirty>,
}

impl Datapath {
    /// Start the agent on its own thread: apply everything the view holds, then follow the log.
    pub fn start(
        networks: Arc<Networks>,
        log: Arc<dyn EventLog>,
        driver: Arc<dyn NetworkDriver>,
    ) -> std::io::Result<Arc<Datapath>> {
        let me = Arc::new(Datapath {
            networks,
            driver,
            applied: Mutex::new(Applied::default()),
            pending: Mutex::new(Dirty::default()),
        });
        let agent = me.clone();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name("network-datapath".into())
            .spawn(move || rt.block_on(agent.run(log)))?;
        Ok(me)
    }

    pub fn driver(&self) -> &Arc<dyn NetworkDriver> {
        &self.driver
    }

    async fn run(self: Arc<Self>, log: Arc<dyn EventLog>) {
        let start = self.networks.view.position();
        self.reconcile_dirty(Dirty {
            all: true,
            ..Default::default()
        })
        .await;
        tracing::info!(
            driver = self.driver.name(),
            "network datapath agent following the log"
        );
        let rt = tokio::runtime::Handle::current();
        let _reconciler = Reconciler::start("network-datapath", log, start + 1, self, rt);
        // The agent's runtime runs on this thread only while it is blocked here.
        std::future::pending::<()>().await;
    }

    /// Note what an event of `stream` may have changed; false when it is none of the datapath's business.
    fn mark(dirty: &mut Dirty, stream: &str) -> bool {
        let (set, id) = if let Some(id) = stream.strip_prefix("router-") {
            (&mut dirty.routers, id)
        } else if let Some(id) = stream.strip_prefix("floatingip-") {
            (&mut dirty.floating_ips, id)
        } else if let Some(id) = stream.strip_prefix("security-group-") {
            (&mut dirty.groups, id)
        } else if let Some(id) = stream.strip_prefix("port-") {
            (&mut dirty.ports, id)
        } else {
            return false;
        };
        set.insert(id.to_string());
        true
    }

    async fn reconcile_dirty(&self, mut dirty: Dirty) {
        let meta = Metadata::system("network-datapath");
        let (changed_routers, fips_to_check) = {
            let view = self.networks.view.snapshot();
            let mut applied = self.applied.lock();
            if dirty.all {
                dirty.ports.extend(view.ports.keys().cloned());
                dirty.ports.extend(applied.members.keys().cloned());
                dirty.ports.extend(applied.filters.keys().cloned());
                dirty.routers.extend(view.routers.keys().cloned());
                dirty.routers.extend(applied.routers.keys().cloned());
                dirty.floating_ips.extend(view.floating_ips.keys().cloned());
            }
            // Routers follow their ports (a gateway port's new address) and their floating IPs.
            for p in &dirty.ports {
                if let Some(row) = view.port(p) {
                    if row.state.device_owner.starts_with("network:router") {
                        dirty.routers.insert(row.state.device_id.clone());
                    }
                }
                for f in view.floating_ips.values() {
                    if f.state.port_id() == Some(p.as_str()) {
                        dirty.floating_ips.insert(f.id.clone());
                    }
                }
            }
            for f in &dirty.floating_ips {
                if let Some(a) = view
                    .floating_ip(f)
                    .and_then(|r| r.state.association.as_ref())
                {
                    dirty.routers.insert(a.router_id.clone());
                }
                for (r, p) in &applied.routers {
                    if p.nat.iter().any(|n| n.floating_ip_id == *f) {
                        dirty.routers.insert(r.clone());
                    }
                }
            }
            self.sync_ports(&view, &mut applied, &dirty);
            let changed = self.sync_routers(&view, &mut applied, &dirty.routers);
            let mut fips = dirty.floating_ips.clone();
            for f in view.floating_ips.values() {
                if f.state
                    .association
                    .as_ref()
                    .is_some_and(|a| changed.contains(&a.router_id))
                {
                    fips.insert(f.id.clone());
                }
            }
            (changed, fips)
        };
        let _ = changed_routers;
        for id in fips_to_check {
            self.check_floating_ip(&id, &meta).await;
        }
    }

    /// Port filters and group address sets for the dirty ports and the ports of dirty groups.
    fn sync_ports(&self, view: &NetworkView, applied: &mut Applied, dirty: &Dirty) {
        let mut filters: BTreeSet<String> = dirty.ports.clone();
        for g in &dirty.groups {
            filters.extend(applied.ports_in(g));
            filters.extend(
                view.ports
                    .values()
                    .filter(|p| p.state.security_groups.iter().any(|x| x == g))
                    .map(|p| p.id.clone()),
            );
        }
        // Membership: what each dirty port adds to and removes from its groups' sets.
        let mut changes: BTreeMap<String, AddressSetChange> = BTreeMap::new();
        for p in &dirty.ports {
            let now = view.port(p).map(membership).unwrap_or_default();
            let before = applied.members.remove(p).unwrap_or_default();
            if now == before {
                if !now.0.is_empty() {
                    applied.members.insert(p.clone(), now);
                }
                continue;
            }
            for g in &before.0 {
                let set = applied.sets.entry(g.clone()).or_default();
                for a in &before.1 {
                    if let Some(n) = set.get_mut(a) {
                        *n -= 1;
                        if *n == 0 {
                            set.remove(a);
                            change_of(&mut changes, g).removed.push(a.clone());
                        }
                    }
                }
            }
            for g in &now.0 {
                let set = applied.sets.entry(g.clone()).or_default();
                for a in &now.1 {
                    let n = set.entry(a.clone()).or_insert(0);
                    *n += 1;
                    if *n == 1 {
                        change_of(&mut changes, g).added.push(a.clone());
                    }
                }
            }
            if !now.0.is_empty() {
                applied.members.insert(p.clone(), now);
            }
        }
        applied.sets.retain(|_, s| !s.is_empty());
        for change in changes.values_mut() {
            // An address removed and added back in one batch is no change.
            let both: Vec<String> = change
                .added
                .iter()
                .filter(|a| change.removed.contains(a))
                .cloned()
                .collect();
            change.added.retain(|a| !both.contains(a));
            change.removed.retain(|a| !both.contains(a));
            if change.added.is_empty() && change.removed.is_empty() {
                continue;
            }
            if let Err(e) = self.driver.update_address_set(change) {
                tracing::error!(group = %change.group_id, error = %e, "updating a security group's address set failed");
            }
        }
        for p in filters {
            let desired = view.port(&p).and_then(|row| port_filter(view, row));
            if applied.filters.get(&p) == desired.as_ref() {
                continue;
            }
            let result = match &desired {
                Some(f) => self.driver.sync_port_filter(f),
                None => self.driver.remove_port_filter(&p),
            };
            match result {
                Ok(()) => match desired {
                    Some(f) => {
                        applied.filters.insert(p, f);
                    }
                    None => {
                        applied.filters.remove(&p);
                    }
                },
                Err(e) => tracing::error!(port = %p, error = %e, "plumbing a port's filter failed"),
            }
        }
    }

    /// Routers whose plumbing differs from what was applied; returns the ones the driver changed.
    fn sync_routers(
        &self,
        view: &NetworkView,
        applied: &mut Applied,
        routers: &BTreeSet<String>,
    ) -> BTreeSet<String> {
        let mut changed = BTreeSet::new();
        for id in routers {
            let desired = view.router(id).map(|r| router_plumbing(view, r));
            if applied.routers.get(id) == desired.as_ref() {
                continue;
            }
            let result = match &desired {
                Some(p) => self.driver.sync_router(p),
                None => self.driver.remove_router(id),
            };
            match result {
                Ok(()) => {
                    match desired {
                        Some(p) => {
                            applied.routers.insert(id.clone(), p);
                        }
                        None => {
                            applied.routers.remove(id);
                        }
                    }
                    changed.insert(id.clone());
                }
                Err(e) => tracing::error!(router = %id, error = %e, "plumbing a router failed"),
            }
        }
        changed
    }

    /// Record a floating IP's status as the datapath has it; disassociate it when its port is gone.
    async fn check_floating_ip(&self, id: &str, meta: &Metadata) {
        let cmd = {
            let view = self.networks.view.snapshot();
            let Some(row) = view.floating_ip(id) else {
                return;
            };
            let f = &row.state;
            match &f.association {
                Some(a) if view.port(&a.port_id).is_none() => FloatingIpCommand::Update {
                    association: Some(None),
                    description: None,
                    if_revision: None,
                },
                assoc => {
                    let plumbed = assoc.as_ref().is_some_and(|a| {
                        self.applied
                            .lock()
                            .routers
                            .get(&a.router_id)
                            .is_some_and(|r| r.nat.iter().any(|n| n.floating_ip_id == id))
                    });
                    let status = if plumbed { STATUS_ACTIVE } else { STATUS_DOWN };
                    if f.status == status {
                        return;
                    }
                    FloatingIpCommand::ReportStatus {
                        status: status.to_string(),
                        for_association: assoc.clone(),
                    }
                }
            }
        };
        if let Err(e) = self
            .networks
            .run(&self.networks.floating_ips, id, cmd, meta)
            .await
        {
            tracing::warn!(floating_ip = id, error = %e, "recording a floating IP's datapath state failed");
        }
    }
}

pub fn change_of<'a>(
    changes: &'a mut BTreeMap<String, AddressSetChange>,
    group: &str,
) -> &'a mut AddressSetChange {
    changes
        .entry(group.to_string())
        .or_insert_with(|| AddressSetChange {
            group_id: group.to_string(),
            ..Default::default()
        })
}

/// A port's groups and addresses, as its groups' address sets count them.
pub fn membership(row: &PortRow) -> (Vec<String>, Vec<String>) {
    let p = &row.state;
    if p.security_groups.is_empty() {
        return (vec![], vec![]);
    }
    let mut groups = p.security_groups.clone();
    groups.sort();
    groups.dedup();
    let mut addresses: Vec<String> = p.fixed_ips.iter().map(|(_, ip)| ip.clone()).collect();
    addresses.sort();
    addresses.dedup();
    (groups, addresses)
}

/// An address with its subnet's prefix length (`10.0.0.1/24`).
pub fn with_prefix(s: &RouterSubnet) -> String {
    match Cidr::parse_loose(&s.cidr) {
        Ok(c) => format!("{}/{}", s.ip_address, c.prefix),
        Err(_) => s.ip_address.clone(),
    }
}

/// What a router looks like in the datapath.
pub fn router_plumbing(view: &NetworkView, row: &RouterRow) -> RouterPlumbing {
    let r = &row.state;
    let address = |port_id: &str, subnets: &[RouterSubnet]| PortAddress {
        port_id: port_id.to_string(),
        mac_address: view
            .port(port_id)
            .map(|p| p.state.mac_address.clone())
            .unwrap_or_default(),
        addresses: subnets.iter().map(with_prefix).collect(),
    };
    let mut nat: Vec<NatRule> = if r.gateway.is_some() {
        view.floating_ips
            .values()
            .filter_map(|f| {
                let a = f.state.association.as_ref()?;
                (a.router_id == row.id).then(|| NatRule {
                    floating_ip_id: f.id.clone(),
                    floating_ip: f.state.floating_ip_address.clone(),
                    fixed_ip: a.fixed_ip_address.clone(),
                })
            })
            .collect()
    } else {
        vec![]
    };
    nat.sort();
    RouterPlumbing {
        router_id: row.id.clone(),
        admin_state_up: r.admin_state_up,
        gateway: r
            .gateway
            .as_ref()
            .map(|g| address(&g.port_id, &g.external_fixed_ips)),
        enable_snat: r.gateway.as_ref().is_some_and(|g| g.enable_snat),
        interfaces: r
            .interfaces
            .values()
            .map(|i| address(&i.port_id, &i.subnets))
            .collect(),
        routes: r
            .routes
            .iter()
            .map(|x| (x.destination.clone(), x.nexthop.clone()))
            .collect(),
        nat,
    }
}

/// A port's filter: the rules of all its groups (None when the port is not filtered: port security off,
/// no groups, or a port of the network itself such as a router's).
pub fn port_filter(view: &NetworkView, row: &PortRow) -> Option<PortFilter> {
    let p = &row.state;
    if !p.port_security_enabled
        || p.security_groups.is_empty()
        || p.device_owner.starts_with("network:")
    {
        return None;
    }
    let groups: Vec<_> = p
        .security_groups
        .iter()
        .filter_map(|g| view.security_group(g))
        .collect();
    let mut rules: Vec<FilterRule> = groups
        .iter()
        .flat_map(|g| g.state.rules.values())
        .map(|r| FilterRule {
            direction: r.direction.clone(),
            ethertype: r.ethertype.clone(),
            protocol: r.protocol.as_deref().and_then(protocol_number),
            port_range_min: r.port_range_min,
            port_range_max: r.port_range_max,
            remote: match (&r.remote_ip_prefix, &r.remote_group_id) {
                (Some(prefix), _) => Remote::Prefix(prefix.clone()),
                (None, Some(group)) => Remote::Group(group.clone()),
                (None, None) => Remote::Any,
            },
        })
        .collect();
    rules.sort();
    rules.dedup();
    let mut addresses: Vec<String> = p.fixed_ips.iter().map(|(_, ip)| ip.clone()).collect();
    addresses.extend(p.allowed_address_pairs.iter().map(|(ip, _)| ip.clone()));
    Some(PortFilter {
        port_id: row.id.clone(),
        mac_address: p.mac_address.clone(),
        addresses,
        stateful: groups.iter().all(|g| g.state.stateful),
        rules,
    })
}

#[async_trait::async_trait]
impl Reconcile for Datapath {
    fn wakes(&self, event: &RecordedEvent) -> Option<String> {
        Self::mark(&mut self.pending.lock(), &event.stream_id).then(|| KEY.to_string())
    }

    async fn caught_up(&self, position: Position) {
        if !self.networks.view.wait_for(position, VIEW_WAIT).await {
            tracing::warn!(position, "network view is behind the datapath agent");
        }
    }

    async fn reconcile(&self, _key: &str) {
        let dirty = std::mem::take(&mut *self.pending.lock());
        self.reconcile_dirty(dirty).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_actors::network::{initial_rules, Rule};
    use strata_events::{ExpectedVersion, MemoryLog, NewEvent};
    use strata_projections::Projection;
    use strata_proto::codec::DomainEvent;
    use strata_proto::network as pb;
    use strata_proto::NetworkEvent as E;

    fn fold(events: Vec<(&str, E)>) -> NetworkView {
        let log = MemoryLog::new();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            for (stream, e) in events {
                log.append(
                    stream,
                    ExpectedVersion::Any,
                    vec![NewEvent::new(e.event_type(), e.encode())],
                    Metadata::system("t"),
                )
                .await
                .unwrap();
            }
            let mut view = NetworkView::default();
            for e in log.read_all(1, usize::MAX).await.unwrap() {
                view.handle(&e);
            }
            view
        })
    }

    fn rule_pb(r: &Rule) -> pb::SecurityGroupRule {
        pb::SecurityGroupRule {
            rule_id: r.id.clone(),
            direction: r.direction.clone(),
            ethertype: r.ethertype.clone(),
            protocol: r.protocol.clone().unwrap_or_default(),
            port_range_min: r.port_range_min,
            port_range_max: r.port_range_max,
            remote_ip_prefix: r.remote_ip_prefix.clone().unwrap_or_default(),
            remote_group_id: r.remote_group_id.clone().unwrap_or_default(),
            description: String::new(),
        }
    }

    fn port(network: &str, ip: &str, groups: &[&str], owner: &str) -> E {
        E::PortCreated(pb::PortCreated {
            project_id: "p".into(),
            network_id: network.into(),
            mac_address: "fa:16:3e:00:00:01".into(),
            fixed_ips: vec![pb::FixedIp {
                subnet_id: "s".into(),
                ip_address: ip.into(),
            }],
            device_owner: owner.into(),
            device_id: "r1".into(),
            security_groups: groups.iter().map(|g| g.to_string()).collect(),
            port_security_enabled: true,
            ..Default::default()
        })
    }

    #[test]
    fn routers_plumb_their_ports_routes_and_floating_ips() {
        let sub = |id: &str, ip: &str, cidr: &str| pb::RouterSubnet {
            subnet_id: id.into(),
            ip_address: ip.into(),
            cidr: cidr.into(),
        };
        let view = fold(vec![
            (
                "port-gw",
                port("public", "172.24.4.10", &[], "network:router_gateway"),
            ),
            (
                "port-if",
                port("n1", "10.0.0.1", &[], "network:router_interface"),
            ),
            (
                "router-r1",
                E::RouterCreated(pb::RouterCreated {
                    project_id: "p".into(),
                    admin_state_up: true,
                    ..Default::default()
                }),
            ),
            (
                "router-r1",
                E::RouterGatewaySet(pb::RouterGatewaySet {
                    network_id: "public".into(),
                    enable_snat: true,
                    port_id: "gw".into(),
                    external_fixed_ips: vec![sub("ext", "172.24.4.10", "172.24.4.0/24")],
                }),
            ),
            (
                "router-r1",
                E::RouterInterfaceAdded(pb::RouterInterfaceAdded {
                    port_id: "if".into(),
                    network_id: "n1".into(),
                    subnets: vec![sub("s", "10.0.0.1", "10.0.0.0/24")],
                }),
            ),
            (
                "floatingip-f1",
                E::FloatingIpCreated(pb::FloatingIpCreated {
                    project_id: "p".into(),
                    floating_network_id: "public".into(),
                    floating_ip_address: "172.24.4.20".into(),
                    ..Default::default()
                }),
            ),
            (
                "floatingip-f1",
                E::FloatingIpAssociated(pb::FloatingIpAssociated {
                    port_id: "vm".into(),
                    fixed_ip_address: "10.0.0.5".into(),
                    router_id: "r1".into(),
                }),
            ),
        ]);
        let p = router_plumbing(&view, view.router("r1").unwrap());
        assert_eq!(p.gateway.unwrap().addresses, ["172.24.4.10/24"]);
        assert!(p.enable_snat);
        assert_eq!(p.interfaces[0].addresses, ["10.0.0.1/24"]);
        assert_eq!(p.interfaces[0].mac_address, "fa:16:3e:00:00:01");
        assert_eq!(
            p.nat,
            [NatRule {
                floating_ip_id: "f1".into(),
                floating_ip: "172.24.4.20".into(),
                fixed_ip: "10.0.0.5".into(),
            }]
        );
    }

    #[test]
    fn port_filters_are_the_union_of_their_groups() {
        let ids: Vec<String> = (0..4).map(|i| format!("r{i}")).collect();
        let rules = initial_rules("g1", true, &ids);
        let ssh = Rule {
            id: "ssh".into(),
            direction: "ingress".into(),
            ethertype: "IPv4".into(),
            protocol: Some("tcp".into()),
            port_range_min: Some(22),
            port_range_max: Some(22),
            remote_ip_prefix: Some("0.0.0.0/0".into()),
            ..Default::default()
        };
        let view = fold(vec![
            (
                "security-group-g1",
                E::SecurityGroupCreated(pb::SecurityGroupCreated {
                    project_id: "p".into(),
                    name: "default".into(),
                    stateful: true,
                    is_default: true,
                    rules: rules.iter().map(rule_pb).collect(),
                    ..Default::default()
                }),
            ),
            (
                "security-group-g2",
                E::SecurityGroupCreated(pb::SecurityGroupCreated {
                    project_id: "p".into(),
                    name: "ssh".into(),
                    stateful: true,
                    rules: vec![rule_pb(&ssh)],
                    ..Default::default()
                }),
            ),
            (
                "port-vm",
                port("n1", "10.0.0.5", &["g1", "g2"], "compute:nova"),
            ),
            (
                "port-rt",
                port("n1", "10.0.0.1", &["g1"], "network:router_interface"),
            ),
            ("port-off", port("n1", "10.0.0.6", &[], "compute:nova")),
        ]);
        let f = port_filter(&view, view.port("vm").unwrap()).unwrap();
        assert_eq!(f.rules.len(), 5);
        assert!(f.stateful);
        assert!(f.rules.iter().any(|r| r.protocol == Some(6)
            && r.port_range_min == Some(22)
            && r.remote == Remote::Prefix("0.0.0.0/0".into())));
        assert!(f
            .rules
            .iter()
            .any(|r| r.direction == "ingress" && r.remote == Remote::Group("g1".into())));
        assert_eq!(port_filter(&view, view.port("rt").unwrap()), None);
        assert_eq!(port_filter(&view, view.port("off").unwrap()), None);
        assert_eq!(
            membership(view.port("vm").unwrap()),
            (
                vec!["g1".to_string(), "g2".to_string()],
                vec!["10.0.0.5".to_string()]
            )
        );
    }
}
