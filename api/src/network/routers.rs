//! `/v2.0/routers`: create, list, show, update (name, description, admin_state_up, external gateway, static
//! routes), delete, `add_router_interface` / `remove_router_interface`; quota `router`.
//!
//! The ports a router uses are ordinary ports made through the core's port path ([`create_port`] with
//! `skip_policy`), so their addresses come from the networks' IPAM: the gateway port (device_owner
//! `network:router_gateway`) on the external network, one interface port (`network:router_interface`) per
//! attached subnet, holding the subnet's gateway address. A port is made first, then the router records it;
//! when the router refuses, the port goes again. Removing an interface or the gateway records it on the
//! router first, then deletes the port.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};
use strata_actors::network::{IpRequest, Route};
use strata_projections::network::RouterRow;

use super::list::{self, ListQuery};
use super::networks::parse_zones;
use super::{check_keys, opt_bool, opt_string, tags_value, Caller, Networks, NeutronError};
use strata_network::networks::owner_of;
#[allow(unused_imports)]
use strata_network::routers::*;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/v2.0/routers")
            .route(web::get().to(list_routers))
            .route(web::post().to(create)),
    )
    .service(
        web::resource("/v2.0/routers/{id}")
            .route(web::get().to(show))
            .route(web::put().to(update))
            .route(web::delete().to(delete)),
    )
    .service(
        web::resource("/v2.0/routers/{id}/add_router_interface")
            .route(web::put().to(add_interface)),
    )
    .service(
        web::resource("/v2.0/routers/{id}/remove_router_interface")
            .route(web::put().to(remove_interface)),
    );
}

pub fn router_json(row: &RouterRow, admin: bool, zones: &[String]) -> Value {
    let r = &row.state;
    let gateway = match &r.gateway {
        None => Value::Null,
        Some(g) => json!({
            "network_id": g.network_id,
            "enable_snat": g.enable_snat,
            "external_fixed_ips": g.external_fixed_ips.iter().map(|s| json!({
                "subnet_id": s.subnet_id,
                "ip_address": s.ip_address,
            })).collect::<Vec<_>>(),
        }),
    };
    let mut v = json!({
        "id": row.id,
        "name": r.name,
        "description": r.description,
        "tenant_id": r.project_id,
        "project_id": r.project_id,
        "admin_state_up": r.admin_state_up,
        "status": "ACTIVE",
        "external_gateway_info": gateway,
        "routes": r.routes.iter().map(|x| json!({
            "destination": x.destination,
            "nexthop": x.nexthop,
        })).collect::<Vec<_>>(),
        "availability_zone_hints": r.availability_zone_hints,
        "availability_zones": if r.availability_zone_hints.is_empty() { zones.to_vec() } else { r.availability_zone_hints.clone() },
        "flavor_id": null,
        "tags": r.tags,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "revision_number": r.revision,
    });
    if admin {
        v["distributed"] = json!(r.distributed);
        v["ha"] = json!(r.ha);
    }
    v
}

fn render(networks: &Networks, caller: &Caller, row: &RouterRow) -> Value {
    router_json(row, caller.is_admin, &networks.availability_zones)
}

// ---------------------------------------------------------------------------------------------------------
// Request parsing

fn parse_gateway(
    caller: &Caller,
    m: &Map<String, Value>,
    action: &str,
) -> Result<Option<Option<GatewayRequest>>, NeutronError> {
    let g = match m.get("external_gateway_info") {
        None => return Ok(None),
        Some(Value::Null) => return Ok(Some(None)),
        Some(Value::Object(g)) if g.is_empty() => return Ok(Some(None)),
        Some(Value::Object(g)) => g,
        Some(v) => {
            return Err(NeutronError::invalid_input(format!(
                "'{v}' is not a dictionary for external_gateway_info"
            )))
        }
    };
    check_keys(
        g,
        &[
            "network_id",
            "enable_snat",
            "external_fixed_ips",
            "qos_policy_id",
        ],
    )?;
    if g.get("qos_policy_id").is_some_and(|v| !v.is_null()) {
        return Err(NeutronError::bad_request("QoS policies are not supported."));
    }
    let network_id = match g.get("network_id") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => {
            return Err(NeutronError::invalid_input(
                "Validation of dictionary's keys failed. Expected keys: {'network_id'}",
            ))
        }
    };
    let enable_snat = opt_bool(g, "enable_snat")?;
    if enable_snat.is_some() && !caller.is_admin {
        return Err(NeutronError::policy(&format!(
            "{action}:external_gateway_info:enable_snat"
        )));
    }
    let external_fixed_ips = match g.get("external_fixed_ips") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => {
            if !caller.is_admin {
                return Err(NeutronError::policy(&format!(
                    "{action}:external_gateway_info:external_fixed_ips"
                )));
            }
            let mut out = Vec::new();
            for it in items {
                let Value::Object(o) = it else {
                    return Err(NeutronError::invalid_input(format!(
                        "'{it}' is not a dictionary for external_fixed_ips"
                    )));
                };
                check_keys(o, &["subnet_id", "ip_address"])?;
                out.push(IpRequest {
                    subnet_id: o
                        .get("subnet_id")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    ip_address: o
                        .get("ip_address")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                });
            }
            Some(out)
        }
        Some(v) => {
            return Err(NeutronError::invalid_input(format!(
                "'{v}' is not a list for external_fixed_ips"
            )))
        }
    };
    Ok(Some(Some(GatewayRequest {
        network_id,
        enable_snat,
        external_fixed_ips,
    })))
}

fn parse_routes(m: &Map<String, Value>) -> Result<Option<Vec<Route>>, NeutronError> {
    match m.get("routes") {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(vec![])),
        Some(Value::Array(items)) => {
            let mut out = Vec::new();
            for it in items {
                let (Some(d), Some(n)) = (
                    it.get("destination").and_then(Value::as_str),
                    it.get("nexthop").and_then(Value::as_str),
                ) else {
                    return Err(NeutronError::invalid_input(format!(
                        "Validation of dictionary's keys failed. Expected keys: {{'destination', 'nexthop'}} Provided keys: {it}"
                    )));
                };
                if it.as_object().is_some_and(|o| o.len() != 2) {
                    return Err(NeutronError::invalid_input(format!(
                        "Unrecognized keys in route {it}"
                    )));
                }
                out.push(Route {
                    destination: d.to_string(),
                    nexthop: n.to_string(),
                });
            }
            Ok(Some(out))
        }
        Some(v) => Err(NeutronError::invalid_input(format!(
            "'{v}' is not a list for routes"
        ))),
    }
}

/// `distributed` and `ha` may be read and set by admins only, and only to false (no DVR or HA routers here).
fn check_router_flags(
    caller: &Caller,
    m: &Map<String, Value>,
    action: &str,
) -> Result<(), NeutronError> {
    for key in ["distributed", "ha"] {
        if let Some(v) = opt_bool(m, key)? {
            if !caller.is_admin {
                return Err(NeutronError::policy(&format!("{action}:{key}")));
            }
            if v {
                return Err(bad_router(format!(
                    "{key} routers are not supported by this deployment"
                ))
                .into());
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------
// The gateway

// ---------------------------------------------------------------------------------------------------------
// Handlers

async fn list_routers(
    req: HttpRequest,
    networks: web::Data<Networks>,
    caller: Caller,
) -> Result<HttpResponse, NeutronError> {
    let q = ListQuery::parse(&req)?;
    let rows: Vec<Value> = {
        let view = networks.view.snapshot();
        view.routers
            .values()
            .filter(|r| caller.owns(&r.state.project_id))
            .map(|r| render(&networks, &caller, r))
            .collect()
    };
    list::respond(&req, &q, "routers", rows)
}

async fn show(
    req: HttpRequest,
    networks: web::Data<Networks>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, NeutronError> {
    let row = find(&networks, &caller, &id)?;
    Ok(list::show(&req, "router", render(&networks, &caller, &row)))
}

const CREATE_KEYS: &[&str] = &[
    "name",
    "description",
    "admin_state_up",
    "external_gateway_info",
    "distributed",
    "ha",
    "availability_zone_hints",
    "flavor_id",
    "tags",
    "tenant_id",
    "project_id",
];

async fn create(
    networks: web::Data<Networks>,
    caller: Caller,
    body: web::Bytes,
) -> Result<HttpResponse, NeutronError> {
    let m = list::create_request(&caller, "create_router", &body, "router", CREATE_KEYS)?;
    if m.get("flavor_id").is_some_and(|v| !v.is_null()) {
        return Err(NeutronError::bad_request(
            "Router flavors are not supported.",
        ));
    }
    check_router_flags(&caller, &m, "create_router")?;
    let project = owner_of(&caller, &m)?;
    let name = opt_string(&m, "name", 255)?.unwrap_or_default();
    let description = opt_string(&m, "description", 255)?.unwrap_or_default();
    let admin_state_up = opt_bool(&m, "admin_state_up")?.unwrap_or(true);
    let zones = parse_zones(&m, &networks.availability_zones)?;
    let tags = tags_value(&m)?;
    let gateway = parse_gateway(&caller, &m, "create_router")?.flatten();
    let row = create_router(
        &networks,
        &caller,
        NewRouter {
            project_id: project,
            name,
            description,
            admin_state_up,
            availability_zone_hints: zones,
            tags,
            gateway,
        },
    )
    .await?;
    Ok(HttpResponse::Created().json(json!({ "router": render(&networks, &caller, &row) })))
}

const UPDATE_KEYS: &[&str] = &[
    "name",
    "description",
    "admin_state_up",
    "external_gateway_info",
    "routes",
    "distributed",
    "ha",
];

async fn update(
    req: HttpRequest,
    networks: web::Data<Networks>,
    caller: Caller,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, NeutronError> {
    let (if_revision, m) = list::update_request(&caller, "update_router", &req, &body, "router")?;
    let row = find(&networks, &caller, &id)?;
    list::check_updatable(&m, UPDATE_KEYS)?;
    check_router_flags(&caller, &m, "update_router")?;
    let name = opt_string(&m, "name", 255)?;
    let description = opt_string(&m, "description", 255)?;
    let admin_state_up = opt_bool(&m, "admin_state_up")?;
    let gateway = parse_gateway(&caller, &m, "update_router")?;
    let routes = parse_routes(&m)?;
    let row = update_router(
        &networks,
        &caller,
        &row,
        RouterUpdate {
            name,
            description,
            admin_state_up,
            gateway,
            routes,
            if_revision,
        },
    )
    .await?;
    Ok(HttpResponse::Ok().json(json!({ "router": render(&networks, &caller, &row) })))
}

async fn delete(
    networks: web::Data<Networks>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, NeutronError> {
    caller.enforce("delete_router")?;
    delete_router(&networks, &caller, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}

// ---------------------------------------------------------------------------------------------------------
// Interfaces

/// `{"subnet_id": ..., "port_id": ...}` of an interface request.
fn interface_request(body: &[u8]) -> Result<(Option<String>, Option<String>), NeutronError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|_| NeutronError::bad_request("The request body could not be parsed as JSON."))?;
    let Value::Object(m) = v else {
        return Err(NeutronError::bad_request(
            "The request body must be a JSON object.",
        ));
    };
    let text = |k: &str| -> Result<Option<String>, NeutronError> {
        match m.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
            Some(v) => Err(NeutronError::invalid_input(format!(
                "'{v}' is not a valid UUID for {k}"
            ))),
        }
    };
    Ok((text("subnet_id")?, text("port_id")?))
}

async fn add_interface(
    networks: web::Data<Networks>,
    caller: Caller,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, NeutronError> {
    caller.enforce("add_router_interface")?;
    let (subnet_id, port_id) = interface_request(&body)?;
    let info = add_router_interface(&networks, &caller, &id, subnet_id, port_id).await?;
    Ok(HttpResponse::Ok().json(info))
}

async fn remove_interface(
    networks: web::Data<Networks>,
    caller: Caller,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, NeutronError> {
    caller.enforce("remove_router_interface")?;
    let (subnet_id, port_id) = interface_request(&body)?;
    let info = remove_router_interface(&networks, &caller, &id, subnet_id, port_id).await?;
    Ok(HttpResponse::Ok().json(info))
}

// ---------------------------------------------------------------------------------------------------------
// Crash leftovers
