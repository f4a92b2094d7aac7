//! `/v2.0/routers`: create, list, show, update (name, description, admin_state_up, external gateway, static
//! routes), delete, `add_router_interface` / `remove_router_interface`; quota `router`.
//!
//! The ports a router uses are ordinary ports made through the core's port path ([`create_port`] with
//! `skip_policy`), so their addresses come from the networks' IPAM: the gateway port (device_owner
//! `network:router_gateway`) on the external network, one interface port (`network:router_interface`) per
//! attached subnet, holding the subnet's gateway address. A port is made first, then the router records it;
//! when the router refuses, the port goes again. Removing an interface or the gateway records it on the
//! router first, then deletes the port.

use std::sync::Arc;

use rand::Rng;
use serde_json::{json, Value};
use strata_actors::network::ipam::{self, Cidr};
use strata_actors::network::{
    Gateway, Interface, IpRequest, NetworkCommand, Route, Router, RouterCommand, RouterSubnet,
};
use strata_actors::Aggregate;
use strata_events::Metadata;
use strata_projections::network::{PortRow, RouterRow};

use super::ports::delete_port_unchecked;
use super::quotas::{release_quota, reserve_quota};
use super::{
    create_port, new_id, update_port, Caller, NetworkError, Networks, NewPort, PortUpdate,
};

pub const OWNER_GATEWAY: &str = "network:router_gateway";

pub const OWNER_INTERFACE: &str = "network:router_interface";

pub fn install(networks: &Networks) {
    networks.register_tags(Arc::new(router_tags()));
}

/// Tags of routers (their own streams).
pub fn router_tags() -> super::tags::StreamTags<strata_actors::network::Router> {
    super::tags::StreamTags {
        collection: "routers",
        find: |networks, caller, id| Ok(find(networks, caller, id)?.state.tags),
        repo: |networks| &networks.routers,
        command: RouterCommand::SetTags,
    }
}

pub fn router_not_found(id: &str) -> NetworkError {
    NetworkError::not_found("RouterNotFound", format!("Router {id} could not be found"))
}

pub fn bad_router(message: impl std::fmt::Display) -> NetworkError {
    NetworkError::invalid("BadRequest", format!("Bad router request: {message}."))
}

/// Router `id` if `caller` may see it (its project's, or any for admins): 404 otherwise.
pub fn find(networks: &Networks, caller: &Caller, id: &str) -> Result<RouterRow, NetworkError> {
    networks
        .view
        .snapshot()
        .router(id)
        .filter(|r| caller.owns(&r.state.project_id))
        .cloned()
        .ok_or_else(|| router_not_found(id))
}

/// The router's view of a port's addresses: (subnet, address, cidr) for each fixed IP.
pub fn port_subnets(networks: &Networks, port: &PortRow) -> Vec<RouterSubnet> {
    let view = networks.view.snapshot();
    port.state
        .fixed_ips
        .iter()
        .map(|(subnet_id, ip)| RouterSubnet {
            subnet_id: subnet_id.clone(),
            ip_address: ip.clone(),
            cidr: view
                .subnet(subnet_id)
                .map(|(s, _, _)| s.cidr.clone())
                .unwrap_or_default(),
        })
        .collect()
}

/// Check that `network_id` is an external network the caller may see (404 / 400 otherwise).
pub fn external_network(
    networks: &Networks,
    caller: &Caller,
    network_id: &str,
) -> Result<(), NetworkError> {
    let net = super::networks::find(networks, caller, network_id)?;
    if !net.state.external {
        return Err(bad_router(format!(
            "Network {network_id} is not an external network"
        )));
    }
    Ok(())
}

/// Make a gateway port on the external network for router `router_id` of `project_id`.
pub async fn gateway_port(
    networks: &Networks,
    caller: &Caller,
    router_id: &str,
    project_id: &str,
    req: &GatewayRequest,
) -> Result<Gateway, NetworkError> {
    external_network(networks, caller, &req.network_id)?;
    let port = create_port(
        networks,
        caller,
        NewPort {
            network_id: req.network_id.clone(),
            project_id: Some(project_id.to_string()),
            device_id: router_id.to_string(),
            device_owner: OWNER_GATEWAY.to_string(),
            fixed_ips: req.external_fixed_ips.clone(),
            security_groups: Some(vec![]),
            port_security_enabled: Some(false),
            skip_policy: true,
            ..Default::default()
        },
    )
    .await?;
    Ok(Gateway {
        network_id: req.network_id.clone(),
        enable_snat: req.enable_snat.unwrap_or(true),
        port_id: port.id.clone(),
        external_fixed_ips: port_subnets(networks, &port),
    })
}

/// Decide a port's addresses on `network_id` against the network's current state without recording
/// anything, so a request that would fail for its addresses (a taken or foreign address, an exhausted
/// subnet) is refused before any quota is taken for it.
pub async fn check_addresses(
    networks: &Networks,
    network_id: &str,
    fixed_ips: Option<Vec<IpRequest>>,
    device_owner: &str,
) -> Result<(), NetworkError> {
    let cmd = {
        let mut rng = rand::thread_rng();
        NetworkCommand::AllocatePort {
            port_id: new_id(),
            mac: None,
            mac_candidates: (0..16).map(|_| ipam::generated_mac(rng.gen())).collect(),
            fixed_ips,
            device_owner: device_owner.to_string(),
        }
    };
    let (state, _) = networks.networks.load(network_id).await?;
    state.decide(&cmd).map(|_| ()).map_err(NetworkError::from)
}

/// Delete a port the router no longer records (best effort: logged when it fails).
pub async fn drop_port(networks: &Networks, meta: &Metadata, port_id: &str) {
    if let Err(e) = delete_port_unchecked(networks, meta, port_id).await {
        if !e.is_not_found() {
            tracing::error!(port_id, error = %e, "deleting a router port failed");
        }
    }
}

/// The floating IPs that go through router `router_id` (associated, with this router).
pub fn floating_ips_through(networks: &Networks, router_id: &str) -> Vec<(String, String)> {
    networks
        .view
        .snapshot()
        .floating_ips
        .values()
        .filter_map(|f| {
            let a = f.state.association.as_ref()?;
            (a.router_id == router_id).then(|| (f.id.clone(), a.fixed_ip_address.clone()))
        })
        .collect()
}

/// Set, change or remove the gateway of an existing router.
pub async fn change_gateway(
    networks: &Networks,
    caller: &Caller,
    row: &RouterRow,
    wanted: Option<GatewayRequest>,
) -> Result<(), NetworkError> {
    let id = &row.id;
    let current = row.state.gateway.clone();
    let leaving_network = match (&current, &wanted) {
        (Some(c), None) => Some(c.network_id.clone()),
        (Some(c), Some(w)) if c.network_id != w.network_id => Some(c.network_id.clone()),
        _ => None,
    };
    if let Some(net) = leaving_network {
        if !floating_ips_through(networks, id).is_empty() {
            return Err(NetworkError::conflict(
                "RouterExternalGatewayInUseByFloatingIp",
                format!("Gateway cannot be updated for router {id}, since a gateway to external network {net} is required by one or more floating IPs."),
            ));
        }
    }
    match (current, wanted) {
        (None, None) => Ok(()),
        (Some(old), None) => {
            networks
                .run(
                    &networks.routers,
                    id,
                    RouterCommand::ClearGateway,
                    &caller.meta,
                )
                .await?;
            drop_port(networks, &caller.meta, &old.port_id).await;
            Ok(())
        }
        (Some(old), Some(w)) if old.network_id == w.network_id => {
            // Same network: keep the port, change its addresses if asked.
            let mut gw = old.clone();
            if let Some(s) = w.enable_snat {
                gw.enable_snat = s;
            }
            if let Some(ips) = w.external_fixed_ips {
                let port = update_port(
                    networks,
                    caller,
                    &old.port_id,
                    PortUpdate {
                        fixed_ips: Some(ips),
                        skip_policy: true,
                        ..Default::default()
                    },
                )
                .await?;
                gw.external_fixed_ips = port_subnets(networks, &port);
            }
            networks
                .run(
                    &networks.routers,
                    id,
                    RouterCommand::SetGateway(gw),
                    &caller.meta,
                )
                .await?;
            Ok(())
        }
        (old, Some(w)) => {
            let gw = gateway_port(networks, caller, id, &row.state.project_id, &w).await?;
            let port = gw.port_id.clone();
            if let Err(e) = networks
                .run(
                    &networks.routers,
                    id,
                    RouterCommand::SetGateway(gw),
                    &caller.meta,
                )
                .await
            {
                drop_port(networks, &caller.meta, &port).await;
                return Err(e.into());
            }
            if let Some(old) = old {
                drop_port(networks, &caller.meta, &old.port_id).await;
            }
            Ok(())
        }
    }
}

/// Delete a router: refused while it has interfaces (409 RouterInUse); its gateway port and quota go too.
pub async fn delete_router(
    networks: &Networks,
    caller: &Caller,
    id: &str,
) -> Result<(), NetworkError> {
    let row = find(networks, caller, id)?;
    networks
        .run(
            &networks.routers,
            id,
            RouterCommand::Delete {
                router_id: id.to_string(),
            },
            &caller.meta,
        )
        .await?;
    if let Some(g) = &row.state.gateway {
        drop_port(networks, &caller.meta, &g.port_id).await;
    }
    release_quota(
        networks,
        &caller.meta,
        &row.state.project_id,
        &format!("router:{id}"),
    )
    .await;
    Ok(())
}

/// Attach a subnet (a new port holding its gateway address) or an existing unbound port to router `id`.
/// Returns Neutron's interface info (router id, port id, subnet ids, network id).
pub async fn add_router_interface(
    networks: &Networks,
    caller: &Caller,
    id: &str,
    subnet_id: Option<String>,
    port_id: Option<String>,
) -> Result<Value, NetworkError> {
    let row = find(networks, caller, id)?;
    match (subnet_id, port_id) {
        (Some(_), Some(_)) => Err(bad_router("Cannot specify both subnet-id and port-id")),
        (None, None) => Err(bad_router("Either subnet_id or port_id must be specified")),
        (Some(subnet_id), None) => {
            let (network_id, gateway_ip, cidr) = {
                let view = networks.view.snapshot();
                let (s, net, _) = view
                    .subnet(&subnet_id)
                    .filter(|(s, net, _)| {
                        caller.owns(&s.project_id)
                            || caller.owns(&net.state.project_id)
                            || net.state.shared
                    })
                    .ok_or_else(|| NetworkError::subnet_not_found(&subnet_id))?;
                (net.id.clone(), s.gateway_ip.clone(), s.cidr.clone())
            };
            if gateway_ip.is_empty() {
                return Err(bad_router(
                    "Subnet for router interface must have a gateway IP",
                ));
            }
            let subnets = vec![RouterSubnet {
                subnet_id: subnet_id.clone(),
                ip_address: gateway_ip.clone(),
                cidr,
            }];
            // Decide on the router's current state first, so a refused attach makes no port.
            let candidate = Interface {
                port_id: String::new(),
                network_id: network_id.clone(),
                subnets,
            };
            row.state
                .decide(&RouterCommand::AddInterface(candidate))
                .map_err(NetworkError::from)?;
            let port = create_port(
                networks,
                caller,
                NewPort {
                    network_id: network_id.clone(),
                    project_id: Some(row.state.project_id.clone()),
                    device_id: id.to_string(),
                    device_owner: OWNER_INTERFACE.to_string(),
                    fixed_ips: Some(vec![IpRequest {
                        subnet_id: Some(subnet_id.clone()),
                        ip_address: Some(gateway_ip),
                    }]),
                    security_groups: Some(vec![]),
                    port_security_enabled: Some(false),
                    skip_policy: true,
                    ..Default::default()
                },
            )
            .await?;
            let subnets = port_subnets(networks, &port);
            let cmd = RouterCommand::AddInterface(Interface {
                port_id: port.id.clone(),
                network_id: network_id.clone(),
                subnets: subnets.clone(),
            });
            if let Err(e) = networks.run(&networks.routers, id, cmd, &caller.meta).await {
                drop_port(networks, &caller.meta, &port.id).await;
                return Err(e.into());
            }
            Ok(interface_info(&row, &port.id, &network_id, &subnets))
        }
        (None, Some(port_id)) => {
            let port = networks
                .view
                .snapshot()
                .port(&port_id)
                .filter(|p| caller.owns(&p.state.project_id))
                .cloned()
                .ok_or_else(|| NetworkError::port_not_found(&port_id))?;
            if !port.state.device_id.is_empty() || !port.state.device_owner.is_empty() {
                return Err(NetworkError::conflict(
                    "PortInUse",
                    format!(
                        "Unable to complete operation on port {port_id} for network {}. Port already has an attached device {}.",
                        port.state.network_id, port.state.device_id
                    ),
                ));
            }
            let subnets = port_subnets(networks, &port);
            if subnets.is_empty() {
                return Err(bad_router("Router port must have at least one fixed IP"));
            }
            let v4 = subnets
                .iter()
                .filter(|s| Cidr::parse_loose(&s.cidr).is_ok_and(|c| !c.v6))
                .count();
            if v4 > 1 {
                return Err(bad_router(
                    "Cannot have multiple IPv4 subnets on router port",
                ));
            }
            let cmd = RouterCommand::AddInterface(Interface {
                port_id: port_id.clone(),
                network_id: port.state.network_id.clone(),
                subnets: subnets.clone(),
            });
            row.state.decide(&cmd).map_err(NetworkError::from)?;
            update_port(
                networks,
                caller,
                &port_id,
                PortUpdate {
                    device_id: Some(id.to_string()),
                    device_owner: Some(OWNER_INTERFACE.to_string()),
                    skip_policy: true,
                    ..Default::default()
                },
            )
            .await?;
            if let Err(e) = networks.run(&networks.routers, id, cmd, &caller.meta).await {
                let undo = PortUpdate {
                    device_id: Some(String::new()),
                    device_owner: Some(String::new()),
                    skip_policy: true,
                    ..Default::default()
                };
                if let Err(u) = update_port(networks, caller, &port_id, undo).await {
                    tracing::error!(port_id, error = %u, "giving a port back after a refused router attach failed");
                }
                return Err(e.into());
            }
            Ok(interface_info(
                &row,
                &port_id,
                &port.state.network_id,
                &subnets,
            ))
        }
    }
}

/// Detach an interface, named by its subnet or its port (both: they must agree); the port is deleted.
pub async fn remove_router_interface(
    networks: &Networks,
    caller: &Caller,
    id: &str,
    subnet_id: Option<String>,
    port_id: Option<String>,
) -> Result<Value, NetworkError> {
    let row = find(networks, caller, id)?;
    let iface = match (&subnet_id, &port_id) {
        (None, None) => return Err(bad_router("Either subnet_id or port_id must be specified")),
        (_, Some(p)) => {
            let i = row.state.interfaces.get(p).cloned().ok_or_else(|| {
                NetworkError::not_found(
                    "RouterInterfaceNotFound",
                    format!("Router {id} does not have an interface with id {p}"),
                )
            })?;
            if let Some(s) = &subnet_id {
                if !i.subnets.iter().any(|x| x.subnet_id == *s) {
                    return Err(NetworkError::conflict(
                        "SubnetMismatchForPort",
                        format!("Subnet on port {p} does not match the requested subnet {s}."),
                    ));
                }
            }
            i
        }
        (Some(s), None) => row.state.interface_on(s).cloned().ok_or_else(|| {
            NetworkError::not_found(
                "RouterInterfaceNotFoundForSubnet",
                format!("Router {id} has no interface on subnet {s}"),
            )
        })?,
    };
    // Floating IPs reach their ports through this interface's subnets.
    let used = {
        let view = networks.view.snapshot();
        view.floating_ips.values().find_map(|f| {
            let a = f.state.association.as_ref().filter(|a| a.router_id == id)?;
            let port = view.port(&a.port_id)?;
            let (subnet, _) = port
                .state
                .fixed_ips
                .iter()
                .find(|(_, ip)| *ip == a.fixed_ip_address)?;
            iface
                .subnets
                .iter()
                .any(|s| s.subnet_id == *subnet)
                .then(|| subnet.clone())
        })
    };
    if let Some(subnet) = used {
        return Err(NetworkError::conflict(
            "RouterInterfaceInUseByFloatingIP",
            format!("Router interface for subnet {subnet} on router {id} cannot be deleted, as it is required by one or more floating IPs."),
        ));
    }
    networks
        .run(
            &networks.routers,
            id,
            RouterCommand::RemoveInterface {
                router_id: id.to_string(),
                port_id: iface.port_id.clone(),
            },
            &caller.meta,
        )
        .await?;
    drop_port(networks, &caller.meta, &iface.port_id).await;
    Ok(interface_info(
        &row,
        &iface.port_id,
        &iface.network_id,
        &iface.subnets,
    ))
}

/// Give back what a crash between two steps of a router, floating IP or security group request left held
/// for nothing: quota reservations of resources that were never recorded (or are gone), and gateway,
/// floating IP and interface ports no router or floating IP records. An unrecorded interface port is only
/// deleted when it holds its subnet's gateway address (a port made by `add_router_interface` for a subnet);
/// one attached by port id was the caller's own and is only reported. Run at start, before the APIs
/// listen.
pub async fn sweep_l3_leftovers(networks: &Networks) -> Result<usize, NetworkError> {
    let meta = Metadata::system(format!("sweep-l3-{}", uuid::Uuid::new_v4()));
    let (holders, drop, kept) = {
        let view = networks.view.snapshot();
        let holders: Vec<(String, String)> = view
            .usage
            .iter()
            .flat_map(|(project, u)| {
                u.holders
                    .keys()
                    .filter(|h| match h.split_once(':') {
                        Some(("router", id)) => view.router(id).is_none(),
                        Some(("floatingip", id)) => view.floating_ip(id).is_none(),
                        Some(("security_group", id)) => view.security_group(id).is_none(),
                        Some(("security_group_rule", id)) => view.security_group_rule(id).is_none(),
                        _ => false,
                    })
                    .map(|h| (project.clone(), h.clone()))
                    .collect::<Vec<_>>()
            })
            .collect();
        let recorded = |p: &PortRow| -> bool {
            let s = &p.state;
            match s.device_owner.as_str() {
                OWNER_GATEWAY => view
                    .router(&s.device_id)
                    .is_some_and(|r| r.state.gateway.as_ref().is_some_and(|g| g.port_id == p.id)),
                OWNER_INTERFACE => view
                    .router(&s.device_id)
                    .is_some_and(|r| r.state.interfaces.contains_key(&p.id)),
                super::floating_ips::OWNER_FLOATINGIP => view
                    .floating_ip(&s.device_id)
                    .is_some_and(|f| f.state.floating_port_id == p.id),
                _ => true,
            }
        };
        let stray: Vec<&PortRow> = view.ports.values().filter(|p| !recorded(p)).collect();
        let made_for_subnet = |p: &PortRow| {
            p.state.fixed_ips.iter().any(|(subnet, ip)| {
                view.subnet(subnet)
                    .is_some_and(|(s, _, _)| s.gateway_ip == *ip)
            })
        };
        let (drop, kept): (Vec<&PortRow>, Vec<&PortRow>) = stray
            .into_iter()
            .partition(|p| p.state.device_owner != OWNER_INTERFACE || made_for_subnet(p));
        let ids = |v: Vec<&PortRow>| v.iter().map(|p| p.id.clone()).collect::<Vec<_>>();
        (holders, ids(drop), ids(kept))
    };
    for port in &drop {
        tracing::warn!(
            port,
            "deleting a router or floating IP port nothing records"
        );
        drop_port(networks, &meta, port).await;
    }
    for port in &kept {
        tracing::warn!(
            port,
            "a port attached to a router that does not record it; update its device_owner to free it"
        );
    }
    for (project, holder) in &holders {
        tracing::warn!(project, holder, "releasing network quota held for nothing");
        release_quota(networks, &meta, project, holder).await;
    }
    Ok(holders.len() + drop.len())
}

/// `external_gateway_info` as asked: None = not in the request; Some(None) = remove the gateway.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayRequest {
    pub network_id: String,
    pub enable_snat: Option<bool>,
    pub external_fixed_ips: Option<Vec<IpRequest>>,
}

/// A router to create (the parsed `POST /v2.0/routers`).
#[derive(Debug, Clone, Default)]
pub struct NewRouter {
    pub project_id: String,
    pub name: String,
    pub description: String,
    pub admin_state_up: bool,
    pub availability_zone_hints: Vec<String>,
    pub tags: Vec<String>,
    pub gateway: Option<GatewayRequest>,
}

/// Create a router: the quota, its gateway port on the external network when it has a gateway, the record;
/// undone in reverse when a later step refuses.
pub async fn create_router(
    networks: &Networks,
    caller: &Caller,
    req: NewRouter,
) -> Result<RouterRow, NetworkError> {
    let NewRouter {
        project_id: project,
        name,
        description,
        admin_state_up,
        availability_zone_hints: zones,
        tags,
        gateway,
    } = req;
    if let Some(g) = &gateway {
        external_network(networks, caller, &g.network_id)?;
        check_addresses(
            networks,
            &g.network_id,
            g.external_fixed_ips.clone(),
            OWNER_GATEWAY,
        )
        .await?;
    }

    let id = new_id();
    let holder = format!("router:{id}");
    reserve_quota(networks, &caller.meta, &project, "router", &holder).await?;
    let gw = match &gateway {
        None => None,
        Some(g) => match gateway_port(networks, caller, &id, &project, g).await {
            Ok(gw) => Some(gw),
            Err(e) => {
                release_quota(networks, &caller.meta, &project, &holder).await;
                return Err(e);
            }
        },
    };
    let gw_port = gw.as_ref().map(|g| g.port_id.clone());
    let cmd = RouterCommand::Create {
        project_id: project.clone(),
        name,
        description,
        admin_state_up,
        distributed: false,
        ha: false,
        availability_zone_hints: zones,
        tags,
        gateway: gw,
    };
    if let Err(e) = networks
        .run(&networks.routers, &id, cmd, &caller.meta)
        .await
    {
        if let Some(p) = gw_port {
            drop_port(networks, &caller.meta, &p).await;
        }
        release_quota(networks, &caller.meta, &project, &holder).await;
        return Err(e.into());
    }
    find(networks, caller, &id)
}

/// Changes to a router (the parsed `PUT /v2.0/routers/{id}`); `None` leaves a field as it is, a gateway of
/// `Some(None)` removes it.
#[derive(Debug, Clone, Default)]
pub struct RouterUpdate {
    pub name: Option<String>,
    pub description: Option<String>,
    pub admin_state_up: Option<bool>,
    pub gateway: Option<Option<GatewayRequest>>,
    pub routes: Option<Vec<Route>>,
    pub if_revision: Option<u64>,
}

/// Update router `row`: its attributes, then its gateway, then its routes (checked against the subnets it
/// will have before anything is recorded).
pub async fn update_router(
    networks: &Networks,
    caller: &Caller,
    row: &RouterRow,
    u: RouterUpdate,
) -> Result<RouterRow, NetworkError> {
    let RouterUpdate {
        name,
        description,
        admin_state_up,
        gateway,
        routes,
        if_revision,
    } = u;
    let id = row.id.clone();
    if let Some(w) = if_revision.filter(|w| *w != row.state.revision) {
        return Err(NetworkError::from(
            strata_actors::DomainError::Conflict(format!(
                "RevisionNumberConstraintFailed: the revision number is {}, not {w} as the request expects",
                row.state.revision
            )),
        ));
    }
    if let Some(Some(g)) = &gateway {
        external_network(networks, caller, &g.network_id)?;
    }
    // Routes are checked against the subnets the router will have (so a gateway and its routes may come in
    // one request), before anything is recorded.
    if let Some(r) = &routes {
        let mut after = row.state.clone();
        if let Some(None) = &gateway {
            after.gateway = None;
        }
        let subnets: Vec<&RouterSubnet> = after.subnets().collect();
        Router::check_routes(r, &subnets).map_err(NetworkError::from)?;
    }
    networks
        .run(
            &networks.routers,
            &id,
            RouterCommand::Update {
                name,
                description,
                admin_state_up,
                if_revision,
            },
            &caller.meta,
        )
        .await?;
    if let Some(g) = gateway {
        let row = find(networks, caller, &id)?;
        change_gateway(networks, caller, &row, g).await?;
    }
    if let Some(r) = routes {
        networks
            .run(
                &networks.routers,
                &id,
                RouterCommand::SetRoutes(r),
                &caller.meta,
            )
            .await?;
    }
    find(networks, caller, &id)
}

pub fn interface_info(
    row: &RouterRow,
    port_id: &str,
    network_id: &str,
    subnets: &[RouterSubnet],
) -> Value {
    let ids: Vec<&str> = subnets.iter().map(|s| s.subnet_id.as_str()).collect();
    json!({
        "id": row.id,
        "tenant_id": row.state.project_id,
        "project_id": row.state.project_id,
        "port_id": port_id,
        "network_id": network_id,
        "subnet_id": ids.first().copied().unwrap_or_default(),
        "subnet_ids": ids,
    })
}
