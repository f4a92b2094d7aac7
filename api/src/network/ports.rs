//! `/v2.0/ports`, and the plain functions other services use: [`create_port`], [`update_port`],
//! [`bind_port`], [`delete_port`].
//!
//! A port create decides its MAC and fixed IPs against the network's current state first (refused: nothing
//! recorded), reserves the port quota (refused: nothing recorded), takes the addresses on the network's
//! stream (one append: a lost race is refused there and the quota given back), then records the port.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};
use strata_actors::network::ipam::{self};
use strata_actors::network::IpRequest;
use strata_projections::network::PortRow;

use super::list::{self, ListQuery};
use super::{opt_bool, opt_string, opt_strings, tags_value, Caller, Networks, NeutronError};
use strata_network::networks::owner_of;
#[allow(unused_imports)]
use strata_network::ports::*;

pub fn port_json(row: &PortRow, admin: bool) -> Value {
    let p = &row.state;
    let parse_json = |s: &str| -> Value {
        if s.is_empty() {
            json!({})
        } else {
            serde_json::from_str(s).unwrap_or_else(|_| json!({}))
        }
    };
    let mut m = json!({
        "id": row.id,
        "name": p.name,
        "description": p.description,
        "network_id": p.network_id,
        "tenant_id": p.project_id,
        "project_id": p.project_id,
        "mac_address": p.mac_address,
        "admin_state_up": p.admin_state_up,
        "status": p.status(),
        "device_id": p.device_id,
        "device_owner": p.device_owner,
        "fixed_ips": p.fixed_ips.iter().map(|(s, a)| json!({"subnet_id": s, "ip_address": a})).collect::<Vec<_>>(),
        "allowed_address_pairs": p.allowed_address_pairs.iter().map(|(ip, mac)| json!({
            "ip_address": ip,
            "mac_address": if mac.is_empty() { &p.mac_address } else { mac },
        })).collect::<Vec<_>>(),
        "extra_dhcp_opts": [],
        "security_groups": p.security_groups,
        "port_security_enabled": p.port_security_enabled,
        "binding:vnic_type": if p.binding.vnic_type.is_empty() { "normal" } else { &p.binding.vnic_type },
        "ip_allocation": "immediate",
        "tags": p.tags,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "revision_number": p.revision,
    });
    if admin {
        m["binding:host_id"] = json!(p.binding.host_id);
        m["binding:profile"] = parse_json(&p.binding.profile);
        m["binding:vif_type"] = json!(if p.binding.vif_type.is_empty() {
            "unbound"
        } else {
            &p.binding.vif_type
        });
        m["binding:vif_details"] = parse_json(&p.binding.vif_details);
    }
    m
}

// ---------------------------------------------------------------------------------------------------------
// HTTP

fn fixed_ips_of(v: &Value) -> Result<Vec<IpRequest>, NeutronError> {
    let Value::Array(items) = v else {
        return Err(NeutronError::invalid_input(format!(
            "'{v}' is not a list of fixed IPs"
        )));
    };
    items
        .iter()
        .map(|item| {
            let Value::Object(o) = item else {
                return Err(NeutronError::invalid_input(format!(
                    "'{item}' is not a fixed IP"
                )));
            };
            for k in o.keys() {
                if !matches!(k.as_str(), "subnet_id" | "ip_address") {
                    return Err(NeutronError::invalid_input(format!(
                        "Invalid data format for fixed IP: '{k}' is not an attribute of a fixed IP"
                    )));
                }
            }
            let s = |k: &str| -> Result<Option<String>, NeutronError> {
                match o.get(k) {
                    None | Some(Value::Null) => Ok(None),
                    Some(Value::String(s)) => Ok(Some(s.clone())),
                    Some(v) => Err(NeutronError::invalid_input(format!(
                        "'{v}' is not a valid {k}"
                    ))),
                }
            };
            let r = IpRequest {
                subnet_id: s("subnet_id")?,
                ip_address: s("ip_address")?,
            };
            if let Some(ip) = &r.ip_address {
                if ipam::parse_ip(ip).is_none() {
                    return Err(NeutronError::invalid_input(format!(
                        "'{ip}' is not a valid IP address"
                    )));
                }
            }
            if r.subnet_id.is_none() && r.ip_address.is_none() {
                return Err(NeutronError::invalid_input(
                    "a fixed IP needs a subnet_id or an ip_address",
                ));
            }
            Ok(r)
        })
        .collect()
}

fn pairs_of(v: &Value) -> Result<Vec<(String, String)>, NeutronError> {
    match v {
        Value::Null => Ok(vec![]),
        Value::Array(items) => items
            .iter()
            .map(|p| {
                let ip = p.get("ip_address").and_then(Value::as_str).ok_or_else(|| {
                    NeutronError::bad_request("Allowed address pairs must contain ip_address")
                })?;
                let mac = match p.get("mac_address") {
                    None | Some(Value::Null) => String::new(),
                    Some(Value::String(m)) => m.clone(),
                    Some(v) => {
                        return Err(NeutronError::invalid_input(format!(
                            "'{v}' is not a valid MAC address"
                        )))
                    }
                };
                Ok((ip.to_string(), mac))
            })
            .collect(),
        other => Err(NeutronError::invalid_input(format!(
            "'{other}' is not a list of address pairs"
        ))),
    }
}

fn binding_request(m: &Map<String, Value>) -> Result<BindingRequest, NeutronError> {
    Ok(BindingRequest {
        host_id: match m.get("binding:host_id") {
            None => None,
            Some(Value::Null) => Some(String::new()),
            Some(Value::String(h)) => Some(h.clone()),
            Some(v) => {
                return Err(NeutronError::invalid_input(format!(
                    "'{v}' is not a valid host"
                )))
            }
        },
        vnic_type: opt_string(m, "binding:vnic_type", 64)?,
        profile: m.get("binding:profile").cloned(),
    })
}

const CREATE_KEYS: &[&str] = &[
    "network_id",
    "name",
    "description",
    "admin_state_up",
    "mac_address",
    "fixed_ips",
    "device_id",
    "device_owner",
    "security_groups",
    "allowed_address_pairs",
    "port_security_enabled",
    "binding:host_id",
    "binding:vnic_type",
    "binding:profile",
    "tags",
    "tenant_id",
    "project_id",
];

const UPDATE_KEYS: &[&str] = &[
    "name",
    "description",
    "admin_state_up",
    "mac_address",
    "fixed_ips",
    "device_id",
    "device_owner",
    "security_groups",
    "allowed_address_pairs",
    "port_security_enabled",
    "binding:host_id",
    "binding:vnic_type",
    "binding:profile",
];

async fn create(
    networks: web::Data<Networks>,
    caller: Caller,
    body: web::Bytes,
) -> Result<HttpResponse, NeutronError> {
    let m = list::create_request(&caller, "create_port", &body, "port", CREATE_KEYS)?;
    let network_id = match m.get("network_id") {
        Some(Value::String(s)) => s.clone(),
        _ => return Err(NeutronError::bad_request("network_id must be specified")),
    };
    let req = NewPort {
        network_id,
        project_id: Some(owner_of(&caller, &m)?),
        name: opt_string(&m, "name", 255)?.unwrap_or_default(),
        description: opt_string(&m, "description", 255)?.unwrap_or_default(),
        admin_state_up: opt_bool(&m, "admin_state_up")?.unwrap_or(true),
        mac_address: match m.get("mac_address") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(ipam::canonical_mac(s).ok_or_else(|| {
                NeutronError::invalid_input(format!("'{s}' is not a valid MAC address"))
            })?),
            Some(v) => {
                return Err(NeutronError::invalid_input(format!(
                    "'{v}' is not a valid MAC address"
                )))
            }
        },
        fixed_ips: match m.get("fixed_ips") {
            None | Some(Value::Null) => None,
            Some(v) => Some(fixed_ips_of(v)?),
        },
        device_id: opt_string(&m, "device_id", 255)?.unwrap_or_default(),
        device_owner: opt_string(&m, "device_owner", 255)?.unwrap_or_default(),
        security_groups: opt_strings(&m, "security_groups")?,
        allowed_address_pairs: match m.get("allowed_address_pairs") {
            None => vec![],
            Some(v) => pairs_of(v)?,
        },
        port_security_enabled: opt_bool(&m, "port_security_enabled")?,
        binding: binding_request(&m)?,
        tags: tags_value(&m)?,
        skip_policy: false,
    };
    let row = create_port(&networks, &caller, req).await?;
    Ok(HttpResponse::Created().json(json!({ "port": port_json(&row, caller.is_admin) })))
}

async fn list_ports(
    req: HttpRequest,
    networks: web::Data<Networks>,
    caller: Caller,
) -> Result<HttpResponse, NeutronError> {
    let q = ListQuery::parse(&req)?;
    let view = networks.view.snapshot();
    // Narrow early by the filters clients use most (Nova lists ports by device_id).
    let device = q.filter("device_id");
    let network = q.filter("network_id");
    let rows: Vec<&PortRow> = view
        .ports
        .values()
        .filter(|r| device.is_none_or(|d| r.state.device_id == d))
        .filter(|r| network.is_none_or(|n| r.state.network_id == n))
        .filter(|r| {
            caller.owns(&r.state.project_id)
                || view
                    .network(&r.state.network_id)
                    .is_some_and(|n| caller.owns(&n.state.project_id))
        })
        .collect();
    list::respond_rows(
        &req,
        &q,
        "ports",
        rows,
        |r| r.id.as_str(),
        |r| port_json(r, caller.is_admin),
    )
}

async fn show(
    req: HttpRequest,
    networks: web::Data<Networks>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, NeutronError> {
    let row = find(&networks, &caller, &id)?;
    Ok(list::show(&req, "port", port_json(&row, caller.is_admin)))
}

async fn update(
    req: HttpRequest,
    networks: web::Data<Networks>,
    caller: Caller,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, NeutronError> {
    let (if_revision, m) = list::update_request(&caller, "update_port", &req, &body, "port")?;
    find(&networks, &caller, &id)?;
    list::check_updatable(&m, UPDATE_KEYS)?;
    let u = PortUpdate {
        name: opt_string(&m, "name", 255)?,
        description: opt_string(&m, "description", 255)?,
        admin_state_up: opt_bool(&m, "admin_state_up")?,
        device_id: opt_string(&m, "device_id", 255)?,
        device_owner: opt_string(&m, "device_owner", 255)?,
        fixed_ips: list::replacement(&m, "fixed_ips", fixed_ips_of)?,
        security_groups: opt_strings(&m, "security_groups")?,
        allowed_address_pairs: match m.get("allowed_address_pairs") {
            None => None,
            Some(v) => Some(pairs_of(v)?),
        },
        port_security_enabled: opt_bool(&m, "port_security_enabled")?,
        mac_address: opt_string(&m, "mac_address", 32)?,
        binding: binding_request(&m)?,
        if_revision,
        skip_policy: false,
    };
    let row = update_port(&networks, &caller, &id, u).await?;
    Ok(HttpResponse::Ok().json(json!({ "port": port_json(&row, caller.is_admin) })))
}

async fn delete(
    networks: web::Data<Networks>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, NeutronError> {
    caller.enforce("delete_port")?;
    // Router and floating IP ports go with their router or floating IP, never on their own.
    let owner = find(&networks, &caller, &id)?.state.device_owner;
    if matches!(
        owner.as_str(),
        "network:router_interface" | "network:router_gateway" | "network:floatingip"
    ) {
        return Err(NeutronError::conflict(
            "L3PortInUse",
            format!(
                "Port {} cannot be deleted directly via the port API: has device owner {owner}.",
                id.as_str()
            ),
        ));
    }
    delete_port(&networks, &caller, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/v2.0/ports")
            .route(web::get().to(list_ports))
            .route(web::post().to(create)),
    )
    .service(
        web::resource("/v2.0/ports/{id}")
            .route(web::get().to(show))
            .route(web::put().to(update))
            .route(web::delete().to(delete)),
    );
}
