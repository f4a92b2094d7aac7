//! `Router`: a project's logical router (stream `router-<uuid>`): its external gateway (a port on an
//! external network, SNAT on or off), its interfaces (ports on internal subnets, one subnet each) and its
//! static routes. The addresses themselves are held by the networks' aggregates (the ports were allocated
//! there before the router records them); the router decides what only it can see: a subnet attached
//! twice, overlapping interface subnets, routes whose nexthop it cannot reach, and deletion while it still
//! has interfaces.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use strata_proto::network as pb;
use strata_proto::NetworkEvent as E;

use super::ipam::{parse_ip, Cidr};
use super::net::revision_mismatch;
use crate::aggregate::{Aggregate, DomainError};

/// The most static routes one router may hold (Neutron's `max_routes` default).
pub const MAX_ROUTES: usize = 30;

/// A subnet the router reaches through one of its ports, and its address there.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouterSubnet {
    pub subnet_id: String,
    pub ip_address: String,
    pub cidr: String,
}

impl RouterSubnet {
    fn to_pb(&self) -> pb::RouterSubnet {
        pb::RouterSubnet {
            subnet_id: self.subnet_id.clone(),
            ip_address: self.ip_address.clone(),
            cidr: self.cidr.clone(),
        }
    }

    fn from_pb(s: &pb::RouterSubnet) -> Self {
        RouterSubnet {
            subnet_id: s.subnet_id.clone(),
            ip_address: s.ip_address.clone(),
            cidr: s.cidr.clone(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gateway {
    pub network_id: String,
    pub enable_snat: bool,
    /// The gateway port (device_owner `network:router_gateway`).
    pub port_id: String,
    pub external_fixed_ips: Vec<RouterSubnet>,
}

impl Gateway {
    fn to_pb(&self) -> pb::RouterGatewaySet {
        pb::RouterGatewaySet {
            network_id: self.network_id.clone(),
            enable_snat: self.enable_snat,
            port_id: self.port_id.clone(),
            external_fixed_ips: self
                .external_fixed_ips
                .iter()
                .map(RouterSubnet::to_pb)
                .collect(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    pub port_id: String,
    pub network_id: String,
    pub subnets: Vec<RouterSubnet>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Route {
    pub destination: String,
    pub nexthop: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Router {
    pub exists: bool,
    pub deleted: bool,
    pub project_id: String,
    pub name: String,
    pub description: String,
    pub admin_state_up: bool,
    pub distributed: bool,
    pub ha: bool,
    pub availability_zone_hints: Vec<String>,
    pub tags: Vec<String>,
    pub gateway: Option<Gateway>,
    /// Port id -> interface.
    pub interfaces: BTreeMap<String, Interface>,
    pub routes: Vec<Route>,
    /// The stream's version: Neutron's revision_number.
    pub revision: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RouterCommand {
    Create {
        project_id: String,
        name: String,
        description: String,
        admin_state_up: bool,
        distributed: bool,
        ha: bool,
        availability_zone_hints: Vec<String>,
        tags: Vec<String>,
        gateway: Option<Gateway>,
    },
    Update {
        name: Option<String>,
        description: Option<String>,
        admin_state_up: Option<bool>,
        if_revision: Option<u64>,
    },
    /// Set (or replace) the external gateway; its port was allocated on the external network first.
    SetGateway(Gateway),
    ClearGateway,
    AddInterface(Interface),
    RemoveInterface {
        router_id: String,
        port_id: String,
    },
    /// Replace the static routes (checked against the router's subnets).
    SetRoutes(Vec<Route>),
    SetTags(Vec<String>),
    Delete {
        router_id: String,
    },
}

impl Router {
    pub fn is_live(&self) -> bool {
        self.exists && !self.deleted
    }

    /// Every subnet the router has a port on: interfaces, then the gateway's.
    pub fn subnets(&self) -> impl Iterator<Item = &RouterSubnet> {
        self.interfaces
            .values()
            .flat_map(|i| i.subnets.iter())
            .chain(
                self.gateway
                    .iter()
                    .flat_map(|g| g.external_fixed_ips.iter()),
            )
    }

    /// The interface on `subnet_id`, if any.
    pub fn interface_on(&self, subnet_id: &str) -> Option<&Interface> {
        self.interfaces
            .values()
            .find(|i| i.subnets.iter().any(|s| s.subnet_id == subnet_id))
    }

    /// Check routes as Neutron's extraroute does: destinations are CIDRs, each nexthop an address inside a
    /// subnet the router is attached to (`subnets`) and not one of the router's own addresses.
    pub fn check_routes(
        routes: &[Route],
        subnets: &[&RouterSubnet],
    ) -> Result<Vec<Route>, DomainError> {
        let invalid = |reason: String| {
            DomainError::Invalid(format!(
                "InvalidRoutes: Invalid format for routes: {}, {reason}",
                routes_text(routes)
            ))
        };
        if routes.len() > MAX_ROUTES {
            return Err(invalid(format!(
                "the number of routes exceeds the maximum {MAX_ROUTES}"
            )));
        }
        let mut out: Vec<Route> = Vec::new();
        for r in routes {
            let dest = Cidr::parse_loose(&r.destination).map_err(|_| {
                invalid(format!(
                    "the destination {} is not a valid CIDR",
                    r.destination
                ))
            })?;
            let (v6, hop) = parse_ip(&r.nexthop).ok_or_else(|| {
                invalid(format!(
                    "the nexthop {} is not a valid IP address",
                    r.nexthop
                ))
            })?;
            if v6 != dest.v6 {
                return Err(invalid(format!(
                    "the nexthop {} is not of the destination's IP version",
                    r.nexthop
                )));
            }
            if subnets
                .iter()
                .any(|s| parse_ip(&s.ip_address) == Some((v6, hop)))
            {
                return Err(invalid(format!(
                    "the nexthop {} is used by router",
                    r.nexthop
                )));
            }
            let reachable = subnets
                .iter()
                .any(|s| Cidr::parse_loose(&s.cidr).is_ok_and(|c| c.v6 == v6 && c.contains(hop)));
            if !reachable {
                return Err(invalid(format!(
                    "the nexthop {} is not connected with router",
                    r.nexthop
                )));
            }
            let route = Route {
                destination: dest.to_string(),
                nexthop: r
                    .nexthop
                    .trim()
                    .parse::<std::net::IpAddr>()
                    .map(|a| a.to_string())
                    .unwrap_or_default(),
            };
            if !out.contains(&route) {
                out.push(route);
            }
        }
        Ok(out)
    }

    /// The first route whose nexthop only `removed` reaches (among the router's subnets after removing it).
    fn route_needing(
        &self,
        removed: &[RouterSubnet],
        remaining: &[&RouterSubnet],
    ) -> Option<(&Route, String)> {
        let reaches =
            |s: &RouterSubnet, hop: &str| match (Cidr::parse_loose(&s.cidr), parse_ip(hop)) {
                (Ok(c), Some((v6, a))) => c.v6 == v6 && c.contains(a),
                _ => false,
            };
        self.routes.iter().find_map(|r| {
            let by = removed.iter().find(|s| reaches(s, &r.nexthop))?;
            (!remaining.iter().any(|s| reaches(s, &r.nexthop))).then(|| (r, by.subnet_id.clone()))
        })
    }
}

fn routes_text(routes: &[Route]) -> String {
    let items: Vec<String> = routes
        .iter()
        .map(|r| {
            format!(
                "{{'destination': '{}', 'nexthop': '{}'}}",
                r.destination, r.nexthop
            )
        })
        .collect();
    format!("[{}]", items.join(", "))
}

fn bad_router(message: String) -> DomainError {
    DomainError::Invalid(format!("BadRequest: Bad router request: {message}."))
}

impl Aggregate for Router {
    type Command = RouterCommand;
    type Event = E;
    const KIND: &'static str = "router";

    fn decide(&self, cmd: &RouterCommand) -> Result<Vec<E>, DomainError> {
        use RouterCommand as C;
        if let C::Create {
            project_id,
            name,
            description,
            admin_state_up,
            distributed,
            ha,
            availability_zone_hints,
            tags,
            gateway,
        } = cmd
        {
            if self.exists {
                return Err(DomainError::AlreadyExists {
                    kind: "router",
                    detail: "id already used".into(),
                });
            }
            let mut events = vec![E::RouterCreated(pb::RouterCreated {
                project_id: project_id.clone(),
                name: name.clone(),
                description: description.clone(),
                admin_state_up: *admin_state_up,
                distributed: *distributed,
                ha: *ha,
                availability_zone_hints: availability_zone_hints.clone(),
                tags: tags.clone(),
            })];
            if let Some(g) = gateway {
                events.push(E::RouterGatewaySet(g.to_pb()));
            }
            return Ok(events);
        }
        if !self.is_live() {
            return Err(DomainError::NotFound {
                kind: "router",
                id: String::new(),
            });
        }
        Ok(match cmd {
            C::Create { .. } => unreachable!("handled above"),
            C::Update {
                name,
                description,
                admin_state_up,
                if_revision,
            } => {
                if let Some(w) = if_revision.filter(|w| *w != self.revision) {
                    return Err(revision_mismatch(self.revision, w));
                }
                let ev = pb::RouterUpdated {
                    name: name.clone().filter(|n| *n != self.name),
                    description: description.clone().filter(|d| *d != self.description),
                    admin_state_up: admin_state_up.filter(|a| *a != self.admin_state_up),
                };
                if ev == pb::RouterUpdated::default() {
                    vec![]
                } else {
                    vec![E::RouterUpdated(ev)]
                }
            }
            C::SetGateway(g) => {
                if self.gateway.as_ref() == Some(g) {
                    return Ok(vec![]);
                }
                let remaining: Vec<&RouterSubnet> = self
                    .interfaces
                    .values()
                    .flat_map(|i| i.subnets.iter())
                    .chain(g.external_fixed_ips.iter())
                    .collect();
                let old = self
                    .gateway
                    .clone()
                    .map(|g| g.external_fixed_ips)
                    .unwrap_or_default();
                if let Some((_, subnet)) = self.route_needing(&old, &remaining) {
                    return Err(DomainError::Conflict(format!(
                        "RouterInterfaceInUseByRoute: Router gateway for subnet {subnet} cannot be changed, as it is required by one or more routes."
                    )));
                }
                vec![E::RouterGatewaySet(g.to_pb())]
            }
            C::ClearGateway => {
                let Some(g) = &self.gateway else {
                    return Ok(vec![]);
                };
                let remaining: Vec<&RouterSubnet> = self
                    .interfaces
                    .values()
                    .flat_map(|i| i.subnets.iter())
                    .collect();
                if let Some((_, subnet)) = self.route_needing(&g.external_fixed_ips, &remaining) {
                    return Err(DomainError::Conflict(format!(
                        "RouterInterfaceInUseByRoute: Router gateway for subnet {subnet} cannot be removed, as it is required by one or more routes."
                    )));
                }
                vec![E::RouterGatewayCleared(pb::RouterGatewayCleared {})]
            }
            C::AddInterface(i) => {
                if self.interfaces.contains_key(&i.port_id) {
                    return Err(DomainError::Conflict(format!(
                        "PortInUse: Port {} is already an interface of this router.",
                        i.port_id
                    )));
                }
                for new in &i.subnets {
                    if self.interface_on(&new.subnet_id).is_some() {
                        return Err(bad_router(format!(
                            "Router already has a port on subnet {}",
                            new.subnet_id
                        )));
                    }
                    let Ok(nc) = Cidr::parse_loose(&new.cidr) else {
                        return Err(bad_router(format!(
                            "Subnet {} has no valid cidr",
                            new.subnet_id
                        )));
                    };
                    for old in self.interfaces.values().flat_map(|i| i.subnets.iter()) {
                        if Cidr::parse_loose(&old.cidr).is_ok_and(|oc| oc.overlaps(&nc)) {
                            return Err(bad_router(format!(
                                "Cidr {} of subnet {} overlaps with cidr {} of subnet {}",
                                new.cidr, new.subnet_id, old.cidr, old.subnet_id
                            )));
                        }
                    }
                }
                vec![E::RouterInterfaceAdded(pb::RouterInterfaceAdded {
                    port_id: i.port_id.clone(),
                    network_id: i.network_id.clone(),
                    subnets: i.subnets.iter().map(RouterSubnet::to_pb).collect(),
                })]
            }
            C::RemoveInterface { router_id, port_id } => {
                let Some(i) = self.interfaces.get(port_id) else {
                    return Err(DomainError::NotFound {
                        kind: "router interface",
                        id: format!(
                            "Router {router_id} does not have an interface with id {port_id}"
                        ),
                    });
                };
                let remaining: Vec<&RouterSubnet> = self
                    .interfaces
                    .iter()
                    .filter(|(p, _)| *p != port_id)
                    .flat_map(|(_, i)| i.subnets.iter())
                    .chain(
                        self.gateway
                            .iter()
                            .flat_map(|g| g.external_fixed_ips.iter()),
                    )
                    .collect();
                if let Some((_, subnet)) = self.route_needing(&i.subnets, &remaining) {
                    return Err(DomainError::Conflict(format!(
                        "RouterInterfaceInUseByRoute: Router interface for subnet {subnet} on router {router_id} cannot be deleted, as it is required by one or more routes."
                    )));
                }
                vec![E::RouterInterfaceRemoved(pb::RouterInterfaceRemoved {
                    port_id: port_id.clone(),
                })]
            }
            C::SetRoutes(routes) => {
                let subnets: Vec<&RouterSubnet> = self.subnets().collect();
                let routes = Router::check_routes(routes, &subnets)?;
                if routes == self.routes {
                    return Ok(vec![]);
                }
                vec![E::RouterRoutesSet(pb::RouterRoutesSet {
                    routes: routes
                        .iter()
                        .map(|r| pb::HostRoute {
                            destination: r.destination.clone(),
                            nexthop: r.nexthop.clone(),
                        })
                        .collect(),
                })]
            }
            C::SetTags(tags) => {
                if *tags == self.tags {
                    vec![]
                } else {
                    vec![E::TagsSet(pb::TagsSet { tags: tags.clone() })]
                }
            }
            C::Delete { router_id } => {
                if !self.interfaces.is_empty() {
                    return Err(DomainError::Conflict(format!(
                        "RouterInUse: Router {router_id} still has ports"
                    )));
                }
                vec![E::RouterDeleted(pb::RouterDeleted {})]
            }
        })
    }

    fn apply(mut self, event: &E) -> Self {
        match event {
            E::RouterCreated(c) => {
                self = Router {
                    exists: true,
                    project_id: c.project_id.clone(),
                    name: c.name.clone(),
                    description: c.description.clone(),
                    admin_state_up: c.admin_state_up,
                    distributed: c.distributed,
                    ha: c.ha,
                    availability_zone_hints: c.availability_zone_hints.clone(),
                    tags: c.tags.clone(),
                    ..Default::default()
                };
            }
            E::RouterUpdated(u) => {
                if let Some(n) = &u.name {
                    self.name = n.clone();
                }
                if let Some(d) = &u.description {
                    self.description = d.clone();
                }
                if let Some(a) = u.admin_state_up {
                    self.admin_state_up = a;
                }
            }
            E::RouterGatewaySet(g) => {
                self.gateway = Some(Gateway {
                    network_id: g.network_id.clone(),
                    enable_snat: g.enable_snat,
                    port_id: g.port_id.clone(),
                    external_fixed_ips: g
                        .external_fixed_ips
                        .iter()
                        .map(RouterSubnet::from_pb)
                        .collect(),
                });
            }
            E::RouterGatewayCleared(_) => self.gateway = None,
            E::RouterInterfaceAdded(i) => {
                self.interfaces.insert(
                    i.port_id.clone(),
                    Interface {
                        port_id: i.port_id.clone(),
                        network_id: i.network_id.clone(),
                        subnets: i.subnets.iter().map(RouterSubnet::from_pb).collect(),
                    },
                );
            }
            E::RouterInterfaceRemoved(i) => {
                self.interfaces.remove(&i.port_id);
            }
            E::RouterRoutesSet(r) => {
                self.routes = r
                    .routes
                    .iter()
                    .map(|r| Route {
                        destination: r.destination.clone(),
                        nexthop: r.nexthop.clone(),
                    })
                    .collect();
            }
            E::TagsSet(t) => self.tags = t.tags.clone(),
            E::RouterDeleted(_) => {
                self.deleted = true;
                self.gateway = None;
                self.routes.clear();
            }
            _ => return self,
        }
        self.revision += 1;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gwt::given;

    fn sub(id: &str, ip: &str, cidr: &str) -> RouterSubnet {
        RouterSubnet {
            subnet_id: id.into(),
            ip_address: ip.into(),
            cidr: cidr.into(),
        }
    }

    fn created() -> E {
        E::RouterCreated(pb::RouterCreated {
            project_id: "p1".into(),
            name: "r1".into(),
            admin_state_up: true,
            ..Default::default()
        })
    }

    fn gateway() -> Gateway {
        Gateway {
            network_id: "public".into(),
            enable_snat: true,
            port_id: "gw-port".into(),
            external_fixed_ips: vec![sub("ext", "172.24.4.10", "172.24.4.0/24")],
        }
    }

    fn interface(port: &str, subnet: &str, ip: &str, cidr: &str) -> Interface {
        Interface {
            port_id: port.into(),
            network_id: format!("net-{subnet}"),
            subnets: vec![sub(subnet, ip, cidr)],
        }
    }

    fn with_interface() -> Vec<E> {
        let i = interface("p-a", "a", "10.0.0.1", "10.0.0.0/24");
        vec![
            created(),
            E::RouterInterfaceAdded(pb::RouterInterfaceAdded {
                port_id: i.port_id,
                network_id: i.network_id,
                subnets: i.subnets.iter().map(RouterSubnet::to_pb).collect(),
            }),
        ]
    }

    fn route(d: &str, n: &str) -> Route {
        Route {
            destination: d.into(),
            nexthop: n.into(),
        }
    }

    #[test]
    fn create_with_a_gateway_records_both() {
        let cmd = RouterCommand::Create {
            project_id: "p1".into(),
            name: "r1".into(),
            description: String::new(),
            admin_state_up: true,
            distributed: false,
            ha: false,
            availability_zone_hints: vec![],
            tags: vec![],
            gateway: Some(gateway()),
        };
        let s = given::<Router>([]).when(cmd).then_ok();
        assert_eq!(s.gateway, Some(gateway()));
        assert!(s.is_live());
    }

    #[test]
    fn a_subnet_is_attached_once_and_cidrs_may_not_overlap() {
        let s = given::<Router>(with_interface())
            .when(RouterCommand::AddInterface(interface(
                "p-b",
                "b",
                "10.1.0.1",
                "10.1.0.0/24",
            )))
            .then_ok();
        assert_eq!(s.interfaces.len(), 2);
        assert!(s.interface_on("b").is_some());
        given::<Router>(with_interface())
            .when(RouterCommand::AddInterface(interface("p-c", "a", "10.0.0.1", "10.0.0.0/24")))
            .then_err_where(|e| matches!(e, DomainError::Invalid(m) if m.contains("already has a port on subnet a")));
        given::<Router>(with_interface())
            .when(RouterCommand::AddInterface(interface(
                "p-d",
                "d",
                "10.0.0.129",
                "10.0.0.128/25",
            )))
            .then_err_where(|e| matches!(e, DomainError::Invalid(m) if m.contains("overlaps")));
    }

    #[test]
    fn routes_need_a_reachable_nexthop() {
        let s = given::<Router>(with_interface())
            .when(RouterCommand::SetRoutes(vec![
                route("192.168.0.5/16", "10.0.0.7"),
                route("192.168.0.0/16", "10.0.0.7"),
            ]))
            .then_ok();
        assert_eq!(
            s.routes,
            vec![route("192.168.0.0/16", "10.0.0.7")],
            "canonical and deduplicated"
        );
        for (bad, why) in [
            (
                route("192.168.0.0/16", "10.9.0.7"),
                "not connected with router",
            ),
            (route("192.168.0.0/16", "10.0.0.1"), "used by router"),
            (route("banana", "10.0.0.7"), "not a valid CIDR"),
            (route("192.168.0.0/16", "banana"), "not a valid IP"),
        ] {
            given::<Router>(with_interface())
                .when(RouterCommand::SetRoutes(vec![bad]))
                .then_err_where(|e| matches!(e, DomainError::Invalid(m) if m.starts_with("InvalidRoutes") && m.contains(why)));
        }
        let many: Vec<Route> = (0..31)
            .map(|i| route(&format!("192.168.{i}.0/24"), "10.0.0.7"))
            .collect();
        given::<Router>(with_interface())
            .when(RouterCommand::SetRoutes(many))
            .then_invalid();
    }

    #[test]
    fn an_interface_a_route_needs_stays() {
        let mut history = with_interface();
        history.push(E::RouterRoutesSet(pb::RouterRoutesSet {
            routes: vec![pb::HostRoute {
                destination: "192.168.0.0/16".into(),
                nexthop: "10.0.0.7".into(),
            }],
        }));
        let remove = RouterCommand::RemoveInterface {
            router_id: "R".into(),
            port_id: "p-a".into(),
        };
        given::<Router>(history.clone())
            .when(remove.clone())
            .then_err_where(|e| matches!(e, DomainError::Conflict(m) if m.starts_with("RouterInterfaceInUseByRoute")));
        history.push(E::RouterRoutesSet(pb::RouterRoutesSet { routes: vec![] }));
        let s = given::<Router>(history).when(remove).then_ok();
        assert!(s.interfaces.is_empty());
        given::<Router>(with_interface())
            .when(RouterCommand::RemoveInterface {
                router_id: "R".into(),
                port_id: "nope".into(),
            })
            .then_err_where(|e| matches!(e, DomainError::NotFound { .. }));
    }

    #[test]
    fn the_gateway_subnet_reaches_nexthops_too() {
        let mut history = with_interface();
        history.push(E::RouterGatewaySet(gateway().to_pb()));
        let s = given::<Router>(history)
            .when(RouterCommand::SetRoutes(vec![route(
                "8.8.0.0/16",
                "172.24.4.1",
            )]))
            .then_ok();
        assert_eq!(s.routes.len(), 1);
        let after = s.decide(&RouterCommand::ClearGateway).unwrap_err();
        assert!(matches!(after, DomainError::Conflict(_)));
    }

    #[test]
    fn delete_waits_for_the_interfaces_to_go() {
        given::<Router>(with_interface())
            .when(RouterCommand::Delete {
                router_id: "R".into(),
            })
            .then_err(DomainError::Conflict(
                "RouterInUse: Router R still has ports".into(),
            ));
        let s = given::<Router>([created(), E::RouterGatewaySet(gateway().to_pb())])
            .when(RouterCommand::Delete {
                router_id: "R".into(),
            })
            .then_ok();
        assert!(!s.is_live());
        given::<Router>([created(), E::RouterDeleted(pb::RouterDeleted {})])
            .when(RouterCommand::SetTags(vec![]))
            .then_err_where(|e| matches!(e, DomainError::NotFound { .. }));
    }

    #[test]
    fn updates_record_only_what_changed() {
        given::<Router>([created()])
            .when(RouterCommand::Update {
                name: Some("r1".into()),
                description: None,
                admin_state_up: Some(true),
                if_revision: None,
            })
            .then_nothing();
        let s = given::<Router>([created()])
            .when(RouterCommand::Update {
                name: Some("r2".into()),
                description: Some("d".into()),
                admin_state_up: Some(false),
                if_revision: None,
            })
            .then_ok();
        assert_eq!(
            (s.name.as_str(), s.description.as_str(), s.admin_state_up),
            ("r2", "d", false)
        );
        given::<Router>([created(), E::RouterGatewaySet(gateway().to_pb())])
            .when(RouterCommand::SetGateway(gateway()))
            .then_nothing();
    }
}
