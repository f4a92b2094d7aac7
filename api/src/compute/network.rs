//! Nova with Neutron, the HTTP side: `networks` of a create request read as Nova does ("none", "auto" or a
//! list of network, port and fixed-IP requests), the security groups it names, `addresses` and security
//! groups as servers show them, `os-interface` (list, show, attach, detach) and the
//! addSecurityGroup/removeSecurityGroup actions, with Neutron's refusals worded as Nova's faults.
//!
//! The flows are the services': a server's ports are made by `strata_network::servers` (through Neutron's
//! own paths, so IPAM, MAC uniqueness, quotas and security groups are Neutron's) from the compute service's
//! boot flow and `strata_compute::service::attach_interface`; the conductor binds them to the server's host.

use actix_web::{web, HttpResponse};
use serde_json::{json, Map, Value};
use strata_actors::compute::ServerPort;
use strata_projections::compute::ServerRow;
use strata_projections::network::NetworkView;

use super::common::{check_settled, check_unlocked, hypervisor_failure, parse_json, server_row};
use super::{Caller, Compute, NovaError};
use crate::network::{self as neutron, Networks};
use strata_network::NetworkError;

pub use strata_network::servers::{Nic, Requested};

fn bad(message: impl Into<String>) -> NovaError {
    NovaError::bad_request(message)
}

fn is_uuid(s: &str) -> bool {
    uuid::Uuid::parse_str(s).is_ok()
}

/// Read `networks` as Nova does (required from 2.37; "auto" or "none" alone; uuids and IPs checked).
pub fn parse_networks(value: Option<&Value>, minor: u32) -> Result<Requested, NovaError> {
    let list = match value {
        None if minor >= 37 => {
            return Err(bad(
                "Invalid input for field/attribute server. 'networks' is a required property",
            ))
        }
        None => return Ok(Requested::Auto),
        Some(Value::String(s)) if s == "auto" => return Ok(Requested::Auto),
        Some(Value::String(s)) if s == "none" => return Ok(Requested::None),
        Some(Value::Array(list)) if list.is_empty() => return Ok(Requested::None),
        Some(Value::Array(list)) => list,
        Some(other) => {
            return Err(bad(format!(
                "Invalid input for field/attribute networks. Value: {other}. networks must be 'auto', 'none' or a list"
            )))
        }
    };
    let mut out = Vec::new();
    for entry in list {
        let m = entry.as_object().ok_or_else(|| {
            bad(format!(
                "Invalid input for field/attribute networks. Value: {entry}. is not of type 'object'"
            ))
        })?;
        let text = |k: &str| -> Result<Option<String>, NovaError> {
            match m.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(v) => Err(bad(format!(
                    "Invalid input for field/attribute {k}. Value: {v}. is not of type 'string'"
                ))),
            }
        };
        let nic = Nic {
            network_id: text("uuid")?,
            port_id: text("port")?,
            fixed_ip: text("fixed_ip")?,
        };
        if let Some(n) = &nic.network_id {
            if !is_uuid(n) {
                return Err(bad(format!(
                    "Bad networks format: network uuid is not in proper format ({n})"
                )));
            }
        }
        if let Some(p) = &nic.port_id {
            if !is_uuid(p) {
                return Err(bad(format!(
                    "Invalid input for field/attribute port. Value: {p}. '{p}' is not a 'uuid'"
                )));
            }
        }
        if let Some(ip) = &nic.fixed_ip {
            if ip.parse::<std::net::IpAddr>().is_err() {
                return Err(bad(format!("Invalid fixed IP address ({ip})")));
            }
        }
        if nic.network_id.is_none() && nic.port_id.is_none() {
            return Err(bad("Bad networks format: a network needs a uuid or a port"));
        }
        out.push(nic);
    }
    Ok(Requested::List(out))
}

/// Neutron's refusal as Nova words it: unknown networks and ports are 400, over quota 403, a port in use
/// or no address left 409, the rest 400 with Neutron's message.
pub(crate) fn nova_error(e: NetworkError) -> NovaError {
    use actix_web::http::StatusCode;
    match &e {
        NetworkError::OverQuota { .. } => {
            NovaError::forbidden(format!("Quota exceeded: {}", e.message()))
        }
        NetworkError::Conflict { kind, .. } if kind == "OverQuota" => {
            NovaError::forbidden(format!("Quota exceeded: {}", e.message()))
        }
        NetworkError::Conflict { .. } => NovaError::conflict(e.message()),
        NetworkError::Unavailable => NovaError::new(StatusCode::INTERNAL_SERVER_ERROR, e.message()),
        _ => bad(e.message()),
    }
}

/// The ids of the security groups a create request names (by name or id, the caller's project); `None`
/// when it names none or only `default` (Neutron then gives the project's default group).
pub fn security_group_ids(
    networks: &Networks,
    caller: &Caller,
    server: &Map<String, Value>,
) -> Result<Option<Vec<String>>, NovaError> {
    let Some(list) = server.get("security_groups") else {
        return Ok(None);
    };
    let list = list.as_array().ok_or_else(|| {
        bad("Invalid input for field/attribute security_groups. is not of type 'array'")
    })?;
    let names: Vec<String> = list
        .iter()
        .filter_map(|g| g.get("name").and_then(Value::as_str).map(str::to_string))
        .collect();
    if names.iter().all(|n| n == "default") {
        return Ok(None);
    }
    let view = networks.view.snapshot();
    names
        .iter()
        .map(|n| {
            view.security_groups
                .values()
                .find(|g| {
                    !g.state.deleted
                        && (g.state.project_id == caller.project_id || caller.is_admin)
                        && (g.id == *n || g.state.name == *n)
                })
                .map(|g| g.id.clone())
                .ok_or_else(|| {
                    bad(format!(
                        "Security group {n} not found for project {}.",
                        caller.project_id
                    ))
                })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

// ---------------------------------------------------------------------------------------------------------
// How servers show their network side

/// `addresses`: per network name, the port's fixed IPs and the floating IPs associated with them.
pub fn addresses(view: &NetworkView, ports: &[ServerPort]) -> Value {
    let mut out = Map::new();
    for sp in ports {
        let Some(port) = view.port(&sp.port_id).filter(|p| p.state.is_live()) else {
            continue;
        };
        let net_name = view
            .network(&port.state.network_id)
            .map(|n| n.state.name.clone())
            .unwrap_or_else(|| port.state.network_id.clone());
        let entry = out.entry(net_name).or_insert_with(|| json!([]));
        let Value::Array(list) = entry else { continue };
        for (_, ip) in &port.state.fixed_ips {
            list.push(json!({
                "version": if ip.contains(':') { 6 } else { 4 },
                "addr": ip,
                "OS-EXT-IPS:type": "fixed",
                "OS-EXT-IPS-MAC:mac_addr": port.state.mac_address,
            }));
        }
        for fip in view.floating_ips.values() {
            let assoc = fip.state.association.as_ref();
            if !fip.state.deleted && assoc.is_some_and(|a| a.port_id == sp.port_id) {
                list.push(json!({
                    "version": if fip.state.floating_ip_address.contains(':') { 6 } else { 4 },
                    "addr": fip.state.floating_ip_address,
                    "OS-EXT-IPS:type": "floating",
                    "OS-EXT-IPS-MAC:mac_addr": port.state.mac_address,
                }));
            }
        }
    }
    Value::Object(out)
}

/// `security_groups`: the names of the groups on the server's ports (once each).
pub fn security_groups(view: &NetworkView, ports: &[ServerPort]) -> Value {
    let mut names: Vec<String> = Vec::new();
    for sp in ports {
        let Some(port) = view.port(&sp.port_id) else {
            continue;
        };
        for g in &port.state.security_groups {
            let name = view
                .security_groups
                .get(g)
                .map(|r| r.state.name.clone())
                .unwrap_or_else(|| g.clone());
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    Value::Array(names.into_iter().map(|n| json!({ "name": n })).collect())
}

// ---------------------------------------------------------------------------------------------------------
// os-interface

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/v2.1/servers/{id}/os-interface")
            .route(web::get().to(list_interfaces))
            .route(web::post().to(attach_interface)),
    )
    .service(
        web::resource("/v2.1/servers/{id}/os-interface/{port_id}")
            .route(web::get().to(show_interface))
            .route(web::delete().to(detach_interface)),
    );
}

fn interface_json(view: &NetworkView, sp: &ServerPort) -> Value {
    let port = view.port(&sp.port_id);
    json!({
        "port_id": sp.port_id,
        "net_id": sp.network_id,
        "mac_addr": port.map(|p| p.state.mac_address.clone()).unwrap_or_default(),
        "port_state": port.map(|p| p.state.status()).unwrap_or("DOWN"),
        "fixed_ips": port
            .map(|p| p.state.fixed_ips.iter().map(|(s, a)| json!({"subnet_id": s, "ip_address": a})).collect::<Vec<_>>())
            .unwrap_or_default(),
    })
}

async fn list_interfaces(
    compute: web::Data<Compute>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, NovaError> {
    let row = server_row(&compute, &caller, &path.into_inner())?;
    let view = compute.networks.view.snapshot();
    let list: Vec<Value> = row
        .state
        .ports
        .iter()
        .map(|p| interface_json(&view, p))
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "interfaceAttachments": list })))
}

async fn show_interface(
    compute: web::Data<Compute>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, NovaError> {
    let (id, port_id) = path.into_inner();
    let row = server_row(&compute, &caller, &id)?;
    let sp = row
        .state
        .ports
        .iter()
        .find(|p| p.port_id == port_id)
        .ok_or_else(|| {
            NovaError::not_found(format!("Port {port_id} is not attached to instance {id}"))
        })?;
    let view = compute.networks.view.snapshot();
    Ok(HttpResponse::Ok().json(json!({ "interfaceAttachment": interface_json(&view, sp) })))
}

/// A port can be plugged or unplugged only on an unlocked (or admin's) server that is settled.
fn check_pluggable(row: &ServerRow, caller: &Caller, what: &str) -> Result<(), NovaError> {
    check_unlocked(row, caller)?;
    check_settled(row, what)
}

async fn attach_interface(
    compute: web::Data<Compute>,
    caller: Caller,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, NovaError> {
    let id = path.into_inner();
    let row = server_row(&compute, &caller, &id)?;
    caller.enforce(
        "os_compute_api:os-attach-interfaces:create",
        &row.state.project_id,
    )?;
    check_pluggable(&row, &caller, "attach_interface")?;
    let v = parse_json(&body)?;
    let a = v
        .get("interfaceAttachment")
        .and_then(Value::as_object)
        .ok_or_else(|| bad("Invalid input for field/attribute interfaceAttachment. 'interfaceAttachment' is a required property"))?;
    let text = |k: &str| a.get(k).and_then(Value::as_str).map(str::to_string);
    let fixed_ip = a
        .get("fixed_ips")
        .and_then(Value::as_array)
        .and_then(|l| l.first())
        .and_then(|f| f.get("ip_address"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let nic = Nic {
        network_id: text("net_id"),
        port_id: text("port_id"),
        fixed_ip,
    };
    if nic.port_id.is_some() && nic.network_id.is_some() {
        return Err(bad("Specify either port_id or net_id, not both."));
    }
    let nic = if nic.port_id.is_none() && nic.network_id.is_none() {
        // Nova picks the network as for "auto".
        let net = neutron::auto::auto_network(&compute.networks, &caller.project_id, &caller.meta)
            .await
            .map_err(nova_error)?;
        Nic {
            network_id: Some(net),
            ..nic
        }
    } else {
        nic
    };
    let sp = strata_compute::service::attach_interface(&compute, &caller, &row, &nic)
        .await
        .map_err(|e| match e {
            strata_compute::ComputeError::AttachFailed(cause) => NovaError::new(
                actix_web::http::StatusCode::INTERNAL_SERVER_ERROR,
                format!(
                    "Failed to attach network adapter device to {id}: {}",
                    NovaError::from(*cause).message
                ),
            ),
            other => other.into(),
        })?;
    let view = compute.networks.view.snapshot();
    Ok(HttpResponse::Ok().json(json!({ "interfaceAttachment": interface_json(&view, &sp) })))
}

async fn detach_interface(
    compute: web::Data<Compute>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, NovaError> {
    let (id, port_id) = path.into_inner();
    let row = server_row(&compute, &caller, &id)?;
    caller.enforce(
        "os_compute_api:os-attach-interfaces:delete",
        &row.state.project_id,
    )?;
    check_pluggable(&row, &caller, "detach_interface")?;
    let sp = row
        .state
        .ports
        .iter()
        .find(|p| p.port_id == port_id)
        .cloned()
        .ok_or_else(|| {
            NovaError::not_found(format!("Port {port_id} is not attached to instance {id}"))
        })?;
    strata_compute::service::detach_interface(&compute, &caller, &row, &sp)
        .await
        .map_err(hypervisor_failure(format!(
            "Failed to detach network adapter device from {id}"
        )))?;
    Ok(HttpResponse::Accepted().finish())
}

// ---------------------------------------------------------------------------------------------------------
// addSecurityGroup / removeSecurityGroup

/// Add (or remove) the security group `name` on every port of the server.
pub async fn change_security_group(
    compute: &Compute,
    caller: &Caller,
    row: &ServerRow,
    arg: &Value,
    add: bool,
) -> Result<HttpResponse, NovaError> {
    let name = arg
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| bad("Security group name cannot be empty"))?
        .to_string();
    let mut body = Map::new();
    body.insert("security_groups".into(), json!([{ "name": name }]));
    let group = match security_group_ids(&compute.networks, caller, &body)? {
        Some(ids) => ids.into_iter().next().unwrap_or_default(),
        None => {
            // "default": the project's default group.
            let view = compute.networks.view.snapshot();
            view.security_groups
                .values()
                .find(|g| {
                    !g.state.deleted
                        && g.state.name == "default"
                        && g.state.project_id == row.state.project_id
                })
                .map(|g| g.id.clone())
                .ok_or_else(|| {
                    NovaError::not_found(format!(
                        "Security group {name} not found for project {}.",
                        row.state.project_id
                    ))
                })?
        }
    };
    if row.state.ports.is_empty() {
        return Err(bad(format!(
            "Instance {} has no network ports to apply a security group to.",
            row.id
        )));
    }
    for sp in &row.state.ports {
        let current = compute
            .networks
            .view
            .snapshot()
            .port(&sp.port_id)
            .map(|p| p.state.security_groups.clone())
            .unwrap_or_default();
        let has = current.contains(&group);
        if add && has {
            return Err(bad(format!(
                "Security group {name} is already associated with the instance {}",
                row.id
            )));
        }
        if !add && !has {
            return Err(bad(format!(
                "Security group {name} not associated with the instance {}",
                row.id
            )));
        }
        let groups: Vec<String> = if add {
            current.into_iter().chain([group.clone()]).collect()
        } else {
            current.into_iter().filter(|g| *g != group).collect()
        };
        let update = neutron::PortUpdate {
            security_groups: Some(groups),
            ..Default::default()
        };
        neutron::update_port(&compute.networks, caller, &sp.port_id, update)
            .await
            .map_err(nova_error)?;
    }
    Ok(HttpResponse::Accepted().finish())
}
