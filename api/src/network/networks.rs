//! `/v2.0/networks`: create, list, show, update, delete; the admin bootstrap of the external network `public`.
//!
//! Tenant networks are `vxlan` with a segmentation id from the `sequence-network-vni` counter (never
//! reused) and an MTU of 1450 (1500 less the 50 bytes of VXLAN encapsulation, as Neutron computes it for
//! its default tunnel type); `flat` and `vlan` networks given by admins get 1500.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};
use strata_actors::network::{NetworkChanges, NetworkCommand, NetworkSpec};
use strata_projections::network::NetworkRow;

use super::list::{self, ListQuery};
use super::{
    body_object, check_keys, new_id, opt_bool, opt_string, opt_strings, tags_value, Caller,
    Networks, NeutronError,
};
#[allow(unused_imports)]
use strata_network::networks::*;

pub fn network_json(row: &NetworkRow, admin: bool, zones: &[String]) -> Value {
    let n = &row.state;
    let mut subnets: Vec<(&u64, &String)> = n.subnets.iter().map(|(id, s)| (&s.seq, id)).collect();
    subnets.sort();
    let mut m = json!({
        "id": row.id,
        "name": n.name,
        "description": n.description,
        "tenant_id": n.project_id,
        "project_id": n.project_id,
        "admin_state_up": n.admin_state_up,
        "status": "ACTIVE",
        "subnets": subnets.iter().map(|(_, id)| id).collect::<Vec<_>>(),
        "shared": n.shared,
        "router:external": n.external,
        "mtu": n.mtu,
        "availability_zone_hints": n.availability_zone_hints,
        "availability_zones": if n.availability_zone_hints.is_empty() { zones.to_vec() } else { n.availability_zone_hints.clone() },
        "ipv4_address_scope": null,
        "ipv6_address_scope": null,
        "port_security_enabled": n.port_security_enabled,
        "is_default": false,
        "l2_adjacency": true,
        "tags": n.tags,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "revision_number": n.revision,
    });
    if admin {
        m["provider:network_type"] = json!(n.network_type);
        m["provider:physical_network"] = if n.physical_network.is_empty() {
            Value::Null
        } else {
            json!(n.physical_network)
        };
        m["provider:segmentation_id"] = json!(n.segmentation_id);
    }
    m
}

fn render(networks: &Networks, caller: &Caller, row: &NetworkRow) -> Value {
    network_json(row, caller.is_admin, &networks.availability_zones)
}

const CREATE_KEYS: &[&str] = &[
    "name",
    "description",
    "admin_state_up",
    "shared",
    "router:external",
    "mtu",
    "provider:network_type",
    "provider:physical_network",
    "provider:segmentation_id",
    "availability_zone_hints",
    "port_security_enabled",
    "tags",
    "tenant_id",
    "project_id",
    "is_default",
];

const UPDATE_KEYS: &[&str] = &[
    "name",
    "description",
    "admin_state_up",
    "shared",
    "router:external",
    "mtu",
    "port_security_enabled",
];

fn parse_mtu(m: &Map<String, Value>, max: u32) -> Result<Option<u32>, NeutronError> {
    match m.get("mtu") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => {
            let n = v
                .as_u64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                .ok_or_else(|| NeutronError::invalid_input(format!("'{v}' is not an integer")))?;
            if n < 68 {
                return Err(NeutronError::invalid_input(format!(
                    "'{n}' is too small - must be at least '68'"
                )));
            }
            if n > u64::from(max) {
                return Err(NeutronError::invalid_input(format!(
                    "Requested MTU is too big, maximum is {max}"
                )));
            }
            Ok(Some(n as u32))
        }
    }
}

/// `availability_zone_hints` of a create body: each must be one of the `known` zones (404 otherwise).
pub(super) fn parse_zones(
    m: &Map<String, Value>,
    known: &[String],
) -> Result<Vec<String>, NeutronError> {
    let zones = opt_strings(m, "availability_zone_hints")?.unwrap_or_default();
    for z in &zones {
        if !known.contains(z) {
            return Err(NeutronError::not_found(
                "AvailabilityZoneNotFound",
                format!("AvailabilityZone {z} could not be found."),
            ));
        }
    }
    Ok(zones)
}

pub(super) fn parse_create(
    networks: &Networks,
    caller: &Caller,
    m: &Map<String, Value>,
) -> Result<NetworkRequest, NeutronError> {
    check_keys(m, CREATE_KEYS)?;
    let project_id = owner_of(caller, m)?;
    let shared = opt_bool(m, "shared")?.unwrap_or(false);
    let external = opt_bool(m, "router:external")?.unwrap_or(false);
    if shared {
        caller.enforce("create_network:shared")?;
    }
    if external {
        caller.enforce("create_network:router:external")?;
    }
    let provider_given = [
        "provider:network_type",
        "provider:physical_network",
        "provider:segmentation_id",
    ]
    .iter()
    .any(|k| m.get(*k).is_some_and(|v| !v.is_null()));
    if provider_given {
        caller.enforce("create_network:provider:network_type")?;
    }
    if opt_bool(m, "is_default")? == Some(true) {
        return Err(NeutronError::invalid_input(
            "default external networks (auto-allocated topology) are not supported",
        ));
    }
    let network_type = match m.get("provider:network_type") {
        None | Some(Value::Null) => "vxlan".to_string(),
        Some(Value::String(t)) if NETWORK_TYPES.contains(&t.as_str()) => t.clone(),
        Some(v) => {
            return Err(NeutronError::invalid_input(format!(
                "network_type value '{v}' not supported"
            )))
        }
    };
    let physical_network = opt_string(m, "provider:physical_network", 64)?.unwrap_or_default();
    let segmentation_id = match m.get("provider:segmentation_id") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                .filter(|n| *n > 0 && *n < (1 << 24))
                .ok_or_else(|| {
                    NeutronError::invalid_input(format!("'{v}' is not a valid segmentation id"))
                })? as u32,
        ),
    };
    match network_type.as_str() {
        "flat" if segmentation_id.is_some() => {
            return Err(NeutronError::invalid_input(
                "segmentation_id specified for flat provider network",
            ))
        }
        "flat" | "vlan" if physical_network.is_empty() => {
            return Err(NeutronError::invalid_input(format!(
                "physical_network required for {network_type} provider network"
            )))
        }
        "vlan" if segmentation_id.is_some_and(|s| s > 4094) => {
            return Err(NeutronError::invalid_input(
                "segmentation_id out of range (1 through 4094)",
            ))
        }
        "vxlan" | "geneve" | "gre" | "local" if !physical_network.is_empty() => {
            return Err(NeutronError::invalid_input(format!(
                "provider:physical_network specified for {network_type} network"
            )))
        }
        _ => {}
    }
    let max_mtu = default_mtu(&network_type);
    let mtu = parse_mtu(m, max_mtu)?.unwrap_or(max_mtu);
    let needs_vni =
        segmentation_id.is_none() && matches!(network_type.as_str(), "vxlan" | "geneve" | "gre");
    Ok(NetworkRequest {
        spec: NetworkSpec {
            project_id,
            name: opt_string(m, "name", 255)?.unwrap_or_default(),
            description: opt_string(m, "description", 255)?.unwrap_or_default(),
            admin_state_up: opt_bool(m, "admin_state_up")?.unwrap_or(true),
            shared,
            external,
            mtu,
            network_type,
            physical_network,
            segmentation_id,
            availability_zone_hints: parse_zones(m, &networks.availability_zones)?,
            port_security_enabled: opt_bool(m, "port_security_enabled")?.unwrap_or(true),
            tags: tags_value(m)?,
        },
        needs_vni,
    })
}

async fn create(
    networks: web::Data<Networks>,
    caller: Caller,
    body: web::Bytes,
) -> Result<HttpResponse, NeutronError> {
    caller.enforce("create_network")?;
    let m = body_object(&body, "network")?;
    let req = parse_create(&networks, &caller, &m)?;
    let id = new_id();
    let vni = networks.sequences();
    let row = create_network(&networks, &caller.meta, &id, req, &vni).await?;
    Ok(HttpResponse::Created().json(json!({ "network": render(&networks, &caller, &row) })))
}

async fn list_networks(
    req: HttpRequest,
    networks: web::Data<Networks>,
    caller: Caller,
) -> Result<HttpResponse, NeutronError> {
    let q = ListQuery::parse(&req)?;
    let rows: Vec<Value> = {
        let view = networks.view.snapshot();
        view.networks
            .values()
            .filter(|r| visible(&caller, r))
            .map(|r| render(&networks, &caller, r))
            .collect()
    };
    list::respond(&req, &q, "networks", rows)
}

async fn show(
    req: HttpRequest,
    networks: web::Data<Networks>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, NeutronError> {
    let row = find(&networks, &caller, &id)?;
    Ok(list::show(
        &req,
        "network",
        render(&networks, &caller, &row),
    ))
}

async fn update(
    req: HttpRequest,
    networks: web::Data<Networks>,
    caller: Caller,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, NeutronError> {
    let (if_revision, m) = list::update_request(&caller, "update_network", &req, &body, "network")?;
    let row = owned(&networks, &caller, &id, "update_network")?;
    list::check_updatable(&m, UPDATE_KEYS)?;
    let shared = opt_bool(&m, "shared")?;
    let external = opt_bool(&m, "router:external")?;
    if shared.is_some_and(|s| s != row.state.shared) {
        caller.enforce("update_network:shared")?;
    }
    if external.is_some_and(|e| e != row.state.external) {
        caller.enforce("update_network:router:external")?;
    }
    let changes = NetworkChanges {
        name: opt_string(&m, "name", 255)?,
        description: opt_string(&m, "description", 255)?,
        admin_state_up: opt_bool(&m, "admin_state_up")?,
        shared,
        external,
        mtu: parse_mtu(&m, default_mtu(&row.state.network_type))?,
        port_security_enabled: opt_bool(&m, "port_security_enabled")?,
    };
    networks
        .run(
            &networks.networks,
            &id,
            NetworkCommand::Update {
                changes,
                if_revision,
            },
            &caller.meta,
        )
        .await?;
    let row = find(&networks, &caller, &id)?;
    Ok(HttpResponse::Ok().json(json!({ "network": render(&networks, &caller, &row) })))
}

async fn delete(
    networks: web::Data<Networks>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, NeutronError> {
    caller.enforce("delete_network")?;
    delete_network(&networks, &caller, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/v2.0/networks")
            .route(web::get().to(list_networks))
            .route(web::post().to(create)),
    )
    .service(
        web::resource("/v2.0/networks/{id}")
            .route(web::get().to(show))
            .route(web::put().to(update))
            .route(web::delete().to(delete)),
    );
}
