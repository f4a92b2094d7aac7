//! `/v2.0/floatingips`: create (allocate from an external network, optionally associated at once), list,
//! show, update (associate / disassociate, description), delete; quota `floatingip`.
//!
//! The address is held by a port on the external network (device_owner `network:floatingip`, device_id the
//! floating IP's id) made through the core's port path, so it comes from the network's IPAM and is never
//! handed out twice. An association needs a router with a gateway on the floating IP's network and an
//! interface on the subnet of the fixed address (Neutron's "reachable" rule); that router is recorded with
//! the association. The status is DOWN until the datapath agent reports the NAT in place.
//!
//! Nova's `server add/remove floating ip` can use [`associate_floating_ip`] and
//! [`disassociate_floating_ip`].

use std::sync::Arc;

use strata_actors::network::ipam::{canonical_ip, Cidr};
use strata_actors::network::{Association, FloatingIpCommand, IpRequest};
use strata_projections::network::FloatingIpRow;

use super::ports::delete_port_unchecked;
use super::quotas::{release_quota, reserve_quota};
use super::routers::check_addresses;
use super::{create_port, new_id, Caller, NetworkError, Networks, NewPort};

pub const OWNER_FLOATINGIP: &str = "network:floatingip";

pub fn install(networks: &Networks) {
    networks.register_tags(Arc::new(floating_ip_tags()));
}

/// Tags of floatingips (their own streams).
pub fn floating_ip_tags() -> super::tags::StreamTags<strata_actors::network::FloatingIp> {
    super::tags::StreamTags {
        collection: "floatingips",
        find: |networks, caller, id| Ok(find(networks, caller, id)?.state.tags),
        repo: |networks| &networks.floating_ips,
        command: FloatingIpCommand::SetTags,
    }
}

pub fn floating_ip_not_found(id: &str) -> NetworkError {
    NetworkError::not_found(
        "FloatingIPNotFound",
        format!("Floating IP {id} could not be found"),
    )
}

pub fn bad_fip(message: impl std::fmt::Display) -> NetworkError {
    NetworkError::invalid("BadRequest", format!("Bad floatingip request: {message}."))
}

/// Floating IP `id` if `caller` may see it: 404 otherwise.
pub fn find(networks: &Networks, caller: &Caller, id: &str) -> Result<FloatingIpRow, NetworkError> {
    networks
        .view
        .snapshot()
        .floating_ip(id)
        .filter(|f| caller.owns(&f.state.project_id))
        .cloned()
        .ok_or_else(|| floating_ip_not_found(id))
}

/// The floating IP with id or address `id_or_address` that `caller` may see.
pub fn find_by_id_or_address(
    networks: &Networks,
    caller: &Caller,
    id_or_address: &str,
) -> Result<FloatingIpRow, NetworkError> {
    if let Ok(row) = find(networks, caller, id_or_address) {
        return Ok(row);
    }
    let address = canonical_ip(id_or_address).unwrap_or_else(|| id_or_address.to_string());
    networks
        .view
        .snapshot()
        .floating_ips
        .values()
        .find(|f| f.state.floating_ip_address == address && caller.owns(&f.state.project_id))
        .cloned()
        .ok_or_else(|| floating_ip_not_found(id_or_address))
}

/// Work out the association of floating IP `fip_id` (of `project_id`, on `floating_network_id`) with port
/// `port_id`: the fixed address (the given one, or the port's only IPv4 address), and the router that
/// connects the address's subnet to the floating IP's network.
pub fn association_for(
    networks: &Networks,
    caller: &Caller,
    fip_id: &str,
    project_id: &str,
    floating_network_id: &str,
    port_id: &str,
    fixed_ip_address: Option<&str>,
) -> Result<Association, NetworkError> {
    let view = networks.view.snapshot();
    let port = view
        .port(port_id)
        .filter(|p| caller.owns(&p.state.project_id))
        .ok_or_else(|| NetworkError::port_not_found(port_id))?;
    if port.state.project_id != project_id {
        return Err(bad_fip(format!(
            "Cannot create floating IP and bind it to Port {port_id}, since that port is owned by a different tenant"
        )));
    }
    let is_v4 = |ip: &str| canonical_ip(ip).is_some_and(|c| !c.contains(':'));
    let (subnet_id, fixed) = match fixed_ip_address {
        Some(want) => {
            let want = canonical_ip(want).ok_or_else(|| {
                NetworkError::invalid_input(format!("'{want}' is not a valid IP address"))
            })?;
            let found = port.state.fixed_ips.iter().find(|(_, ip)| *ip == want);
            match found {
                Some((s, ip)) if is_v4(ip) => (s.clone(), ip.clone()),
                Some(_) => {
                    return Err(bad_fip(format!(
                        "Cannot process floating IP association with {want}, since that is not an IPv4 address"
                    )))
                }
                None => {
                    return Err(bad_fip(format!(
                        "Port {port_id} does not have fixed ip {want}"
                    )))
                }
            }
        }
        None => {
            let v4: Vec<&(String, String)> = port
                .state
                .fixed_ips
                .iter()
                .filter(|(_, ip)| is_v4(ip))
                .collect();
            match v4.as_slice() {
                [one] => (one.0.clone(), one.1.clone()),
                [] => {
                    return Err(bad_fip(format!(
                        "No IPv4 addresses found on port {port_id}"
                    )))
                }
                _ => {
                    return Err(bad_fip(format!(
                        "Port {port_id} has multiple fixed IPv4 addresses.  Must provide a specific IPv4 address when assigning a floating IP"
                    )))
                }
            }
        }
    };
    // The router: a gateway on the floating IP's network and an interface on the address's subnet.
    let router = view
        .routers
        .values()
        .filter(|r| {
            r.state
                .gateway
                .as_ref()
                .is_some_and(|g| g.network_id == floating_network_id)
                && r.state.interface_on(&subnet_id).is_some()
        })
        .map(|r| r.id.clone())
        .min()
        .ok_or_else(|| {
            NetworkError::not_found(
                "ExternalGatewayForFloatingIPNotFound",
                format!("External network {floating_network_id} is not reachable from subnet {subnet_id}.  Therefore, cannot associate Port {port_id} with a Floating IP."),
            )
        })?;
    if let Some(other) = view.floating_ips.values().find(|f| {
        f.id != fip_id
            && f.state
                .association
                .as_ref()
                .is_some_and(|a| a.port_id == port_id && a.fixed_ip_address == fixed)
    }) {
        return Err(NetworkError::conflict(
            "FloatingIPPortAlreadyAssociated",
            format!(
                "Cannot associate floating IP {} ({}) with port {port_id} using fixed IP {fixed}, as that fixed IP already has a floating IP on external network {}.",
                other.state.floating_ip_address, other.id, other.state.floating_network_id
            ),
        ));
    }
    Ok(Association {
        port_id: port_id.to_string(),
        fixed_ip_address: fixed,
        router_id: router,
    })
}

/// An association asked for: (port id, fixed address); no port = disassociate.
pub type AssociationRequest = (Option<String>, Option<String>);

/// Associate floating IP `id_or_address` with `port_id` (at `fixed_ip_address`, or the port's only IPv4
/// address), as `PUT /v2.0/floatingips/{id}` with a `port_id` does.
pub async fn associate_floating_ip(
    networks: &Networks,
    caller: &Caller,
    id_or_address: &str,
    port_id: &str,
    fixed_ip_address: Option<&str>,
) -> Result<FloatingIpRow, NetworkError> {
    let row = find_by_id_or_address(networks, caller, id_or_address)?;
    update_floating_ip(
        networks,
        caller,
        &row.id,
        Some((
            Some(port_id.to_string()),
            fixed_ip_address.map(str::to_string),
        )),
        None,
        None,
    )
    .await
}

/// Take floating IP `id_or_address` off its port (nothing to do when it has none).
pub async fn disassociate_floating_ip(
    networks: &Networks,
    caller: &Caller,
    id_or_address: &str,
) -> Result<FloatingIpRow, NetworkError> {
    let row = find_by_id_or_address(networks, caller, id_or_address)?;
    update_floating_ip(networks, caller, &row.id, Some((None, None)), None, None).await
}

pub async fn update_floating_ip(
    networks: &Networks,
    caller: &Caller,
    id: &str,
    association: Option<AssociationRequest>,
    description: Option<String>,
    if_revision: Option<u64>,
) -> Result<FloatingIpRow, NetworkError> {
    let row = find(networks, caller, id)?;
    let f = &row.state;
    let association = match association {
        None => None,
        Some((None, _)) => Some(None),
        Some((Some(port), fixed)) => Some(Some(association_for(
            networks,
            caller,
            id,
            &f.project_id,
            &f.floating_network_id,
            &port,
            fixed.as_deref(),
        )?)),
    };
    let cmd = FloatingIpCommand::Update {
        association,
        description,
        if_revision,
    };
    networks
        .run(&networks.floating_ips, id, cmd, &caller.meta)
        .await?;
    find(networks, caller, id)
}

/// Release a floating IP: its record, its address (the external port) and its quota.
pub async fn delete_floating_ip(
    networks: &Networks,
    caller: &Caller,
    id: &str,
) -> Result<(), NetworkError> {
    let row = find(networks, caller, id)?;
    networks
        .run(
            &networks.floating_ips,
            id,
            FloatingIpCommand::Delete,
            &caller.meta,
        )
        .await?;
    if let Err(e) = delete_port_unchecked(networks, &caller.meta, &row.state.floating_port_id).await
    {
        if !e.is_not_found() {
            tracing::error!(id, error = %e, "releasing a floating IP's address failed");
        }
    }
    release_quota(
        networks,
        &caller.meta,
        &row.state.project_id,
        &format!("floatingip:{id}"),
    )
    .await;
    Ok(())
}

/// A floating IP to allocate (the parsed `POST /v2.0/floatingips`).
#[derive(Debug, Clone, Default)]
pub struct NewFloatingIp {
    pub project_id: String,
    pub network_id: String,
    /// A specific address (admins only: the API checks).
    pub address: Option<String>,
    pub subnet_id: Option<String>,
    pub description: String,
    pub tags: Vec<String>,
    /// (port, fixed address) to associate at once.
    pub association: Option<AssociationRequest>,
}

/// Allocate a floating IP on an external network: its address (asked for, or the first free one of the
/// subnet), the quota, its port on the external network, the record; undone in reverse when a later step
/// refuses.
pub async fn create_floating_ip(
    networks: &Networks,
    caller: &Caller,
    req: NewFloatingIp,
) -> Result<FloatingIpRow, NetworkError> {
    let NewFloatingIp {
        project_id: project,
        network_id,
        address,
        subnet_id,
        description,
        tags,
        association: assoc_req,
    } = req;
    let net = super::networks::find(networks, caller, &network_id)?;
    if !net.state.external {
        return Err(bad_fip(format!(
            "Network {network_id} is not a valid external network"
        )));
    }
    // The subnet the address comes from: the one asked for, the one holding the asked address, or the
    // network's first IPv4 subnet.
    let subnet_id = {
        let v4: Vec<(u64, String, Cidr)> = net
            .state
            .subnets
            .iter()
            .filter_map(|(id, s)| Some((s.seq, id.clone(), s.cidr().filter(|c| !c.v6)?)))
            .collect();
        match (&subnet_id, &address) {
            (Some(s), _) => {
                if !v4.iter().any(|(_, id, _)| id == s) {
                    return Err(bad_fip(format!(
                        "Subnet {s} is not an IPv4 subnet of network {network_id}"
                    )));
                }
                s.clone()
            }
            (None, Some(a)) => {
                let ip = strata_actors::network::ipam::parse_ip_of(a, false).unwrap_or_default();
                v4.iter()
                    .find(|(_, _, c)| c.contains(ip))
                    .map(|(_, id, _)| id.clone())
                    .ok_or_else(|| {
                        bad_fip(format!(
                            "Floating IP address {a} is not in any subnet of network {network_id}"
                        ))
                    })?
            }
            (None, None) => v4
                .iter()
                .min_by_key(|(seq, _, _)| *seq)
                .map(|(_, id, _)| id.clone())
                .ok_or_else(|| {
                    bad_fip(format!(
                        "Network {network_id} has no IPv4 subnet to allocate a floating IP from"
                    ))
                })?,
        }
    };
    let id = new_id();
    let association = match &assoc_req {
        Some((Some(port), fixed)) => Some(association_for(
            networks,
            caller,
            &id,
            &project,
            &network_id,
            port,
            fixed.as_deref(),
        )?),
        _ => None,
    };

    let wanted = vec![IpRequest {
        subnet_id: Some(subnet_id.clone()),
        ip_address: address,
    }];
    check_addresses(
        networks,
        &network_id,
        Some(wanted.clone()),
        OWNER_FLOATINGIP,
    )
    .await?;
    let holder = format!("floatingip:{id}");
    reserve_quota(networks, &caller.meta, &project, "floatingip", &holder).await?;
    let port = match create_port(
        networks,
        caller,
        NewPort {
            network_id: network_id.clone(),
            project_id: Some(project.clone()),
            device_id: id.clone(),
            device_owner: OWNER_FLOATINGIP.to_string(),
            fixed_ips: Some(wanted),
            security_groups: Some(vec![]),
            port_security_enabled: Some(false),
            skip_policy: true,
            ..Default::default()
        },
    )
    .await
    {
        Ok(p) => p,
        Err(e) => {
            release_quota(networks, &caller.meta, &project, &holder).await;
            return Err(e);
        }
    };
    let floating_ip_address = port
        .state
        .fixed_ips
        .iter()
        .find(|(s, _)| *s == subnet_id)
        .map(|(_, ip)| ip.clone())
        .unwrap_or_default();
    let cmd = FloatingIpCommand::Create {
        project_id: project.clone(),
        floating_network_id: network_id,
        subnet_id,
        floating_ip_address,
        floating_port_id: port.id.clone(),
        description,
        tags,
        association,
    };
    if let Err(e) = networks
        .run(&networks.floating_ips, &id, cmd, &caller.meta)
        .await
    {
        if let Err(d) = delete_port_unchecked(networks, &caller.meta, &port.id).await {
            tracing::error!(port = %port.id, error = %d, "deleting the port of a refused floating IP failed");
        }
        release_quota(networks, &caller.meta, &project, &holder).await;
        return Err(e.into());
    }
    find(networks, caller, &id)
}
