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

use actix_web::{web, HttpRequest, HttpResponse};
use rand::Rng;
use serde_json::{json, Map, Value};
use strata_actors::network::ipam::{self, Cidr};
use strata_actors::network::{
    Gateway, Interface, IpRequest, NetworkCommand, Route, Router, RouterCommand, RouterSubnet,
};
use strata_actors::Aggregate;
use strata_events::Metadata;
use strata_projections::network::{PortRow, RouterRow};

use super::list::{self, ListQuery};
use super::networks::owner_of;
use super::ports::delete_port_unchecked;
use super::quotas::{release_quota, reserve_quota};
use super::{
    body_object, check_keys, create_port, if_match_revision, new_id, opt_bool, opt_string,
    opt_strings, tags_value, update_port, Caller, Networks, NeutronError, NewPort, PortUpdate,
};

pub const OWNER_GATEWAY: &str = "network:router_gateway";
pub const OWNER_INTERFACE: &str = "network:router_interface";

pub fn install(networks: &Networks) {
    networks.register_tags(Arc::new(router_tags()));
}

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

/// Tags of routers (their own streams).
pub(super) fn router_tags() -> super::tags::StreamTags<strata_actors::network::Router> {
    super::tags::StreamTags {
        collection: "routers",
        find: |networks, caller, id| Ok(find(networks, caller, id)?.state.tags),
        repo: |networks| &networks.routers,
        command: RouterCommand::SetTags,
    }
}

pub fn router_not_found(id: &str) -> NeutronError {
    NeutronError::not_found("RouterNotFound", format!("Router {id} could not be found"))
}

fn bad_router(message: impl std::fmt::Display) -> NeutronError {
    NeutronError::new(
        actix_web::http::StatusCode::BAD_REQUEST,
        "BadRequest",
        format!("Bad router request: {message}."),
    )
}

/// Router `id` if `caller` may see it (its project's, or any for admins): 404 otherwise.
pub fn find(networks: &Networks, caller: &Caller, id: &str) -> Result<RouterRow, NeutronError> {
    networks
        .view
        .snapshot()
        .router(id)
        .filter(|r| caller.owns(&r.state.project_id))
        .cloned()
        .ok_or_else(|| router_not_found(id))
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

/// `external_gateway_info` as asked: None = not in the request; Some(None) = remove the gateway.
#[derive(Debug, Clone, PartialEq)]
struct GatewayRequest {
    network_id: String,
    enable_snat: Option<bool>,
    external_fixed_ips: Option<Vec<IpRequest>>,
}

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
                )));
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------
// The gateway

/// The router's view of a port's addresses: (subnet, address, cidr) for each fixed IP.
fn port_subnets(networks: &Networks, port: &PortRow) -> Vec<RouterSubnet> {
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
fn external_network(
    networks: &Networks,
    caller: &Caller,
    network_id: &str,
) -> Result<(), NeutronError> {
    let net = super::networks::find(networks, caller, network_id)?;
    if !net.state.external {
        return Err(bad_router(format!(
            "Network {network_id} is not an external network"
        )));
    }
    Ok(())
}

/// Make a gateway port on the external network for router `router_id` of `project_id`.
async fn gateway_port(
    networks: &Networks,
    caller: &Caller,
    router_id: &str,
    project_id: &str,
    req: &GatewayRequest,
) -> Result<Gateway, NeutronError> {
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
pub(super) async fn check_addresses(
    networks: &Networks,
    network_id: &str,
    fixed_ips: Option<Vec<IpRequest>>,
    device_owner: &str,
) -> Result<(), NeutronError> {
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
    state.decide(&cmd).map(|_| ()).map_err(NeutronError::from)
}

/// Delete a port the router no longer records (best effort: logged when it fails).
async fn drop_port(networks: &Networks, meta: &Metadata, port_id: &str) {
    if let Err(e) = delete_port_unchecked(networks, meta, port_id).await {
        if e.status != actix_web::http::StatusCode::NOT_FOUND {
            tracing::error!(port_id, error = %e, "deleting a router port failed");
        }
    }
}

/// The floating IPs that go through router `router_id` (associated, with this router).
fn floating_ips_through(networks: &Networks, router_id: &str) -> Vec<(String, String)> {
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
async fn change_gateway(
    networks: &Networks,
    caller: &Caller,
    row: &RouterRow,
    wanted: Option<GatewayRequest>,
) -> Result<(), NeutronError> {
    let id = &row.id;
    let current = row.state.gateway.clone();
    let leaving_network = match (&current, &wanted) {
        (Some(c), None) => Some(c.network_id.clone()),
        (Some(c), Some(w)) if c.network_id != w.network_id => Some(c.network_id.clone()),
        _ => None,
    };
    if let Some(net) = leaving_network {
        if !floating_ips_through(networks, id).is_empty() {
            return Err(NeutronError::conflict(
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
    let v = list::select_fields(render(&networks, &caller, &row), &list::fields_of(&req));
    Ok(HttpResponse::Ok().json(json!({ "router": v })))
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

fn parse_zones(networks: &Networks, m: &Map<String, Value>) -> Result<Vec<String>, NeutronError> {
    let zones = opt_strings(m, "availability_zone_hints")?.unwrap_or_default();
    for z in &zones {
        if !networks.availability_zones.contains(z) {
            return Err(NeutronError::not_found(
                "AvailabilityZoneNotFound",
                format!("AvailabilityZone {z} could not be found."),
            ));
        }
    }
    Ok(zones)
}

async fn create(
    networks: web::Data<Networks>,
    caller: Caller,
    body: web::Bytes,
) -> Result<HttpResponse, NeutronError> {
    caller.enforce("create_router")?;
    let m = body_object(&body, "router")?;
    check_keys(&m, CREATE_KEYS)?;
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
    let zones = parse_zones(&networks, &m)?;
    let tags = tags_value(&m)?;
    let gateway = parse_gateway(&caller, &m, "create_router")?.flatten();
    if let Some(g) = &gateway {
        external_network(&networks, &caller, &g.network_id)?;
        check_addresses(
            &networks,
            &g.network_id,
            g.external_fixed_ips.clone(),
            OWNER_GATEWAY,
        )
        .await?;
    }

    let id = new_id();
    let holder = format!("router:{id}");
    reserve_quota(&networks, &caller.meta, &project, "router", &holder).await?;
    let gw = match &gateway {
        None => None,
        Some(g) => match gateway_port(&networks, &caller, &id, &project, g).await {
            Ok(gw) => Some(gw),
            Err(e) => {
                release_quota(&networks, &caller.meta, &project, &holder).await;
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
            drop_port(&networks, &caller.meta, &p).await;
        }
        release_quota(&networks, &caller.meta, &project, &holder).await;
        return Err(e.into());
    }
    let row = find(&networks, &caller, &id)?;
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
    caller.enforce("update_router")?;
    let if_revision = if_match_revision(&req)?;
    let m = body_object(&body, "router")?;
    let row = find(&networks, &caller, &id)?;
    for k in m.keys() {
        if !UPDATE_KEYS.contains(&k.as_str()) {
            return Err(NeutronError::bad_request(format!(
                "Cannot update read-only attribute {k}"
            )));
        }
    }
    check_router_flags(&caller, &m, "update_router")?;
    let name = opt_string(&m, "name", 255)?;
    let description = opt_string(&m, "description", 255)?;
    let admin_state_up = opt_bool(&m, "admin_state_up")?;
    let gateway = parse_gateway(&caller, &m, "update_router")?;
    let routes = parse_routes(&m)?;
    if let Some(w) = if_revision.filter(|w| *w != row.state.revision) {
        return Err(NeutronError::from(
            strata_actors::DomainError::Conflict(format!(
                "RevisionNumberConstraintFailed: the revision number is {}, not {w} as the request expects",
                row.state.revision
            )),
        ));
    }
    if let Some(Some(g)) = &gateway {
        external_network(&networks, &caller, &g.network_id)?;
    }
    // Routes are checked against the subnets the router will have (so a gateway and its routes may come in
    // one request), before anything is recorded.
    if let Some(r) = &routes {
        let mut after = row.state.clone();
        if let Some(None) = &gateway {
            after.gateway = None;
        }
        let subnets: Vec<&RouterSubnet> = after.subnets().collect();
        Router::check_routes(r, &subnets).map_err(NeutronError::from)?;
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
        let row = find(&networks, &caller, &id)?;
        change_gateway(&networks, &caller, &row, g).await?;
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
    let row = find(&networks, &caller, &id)?;
    Ok(HttpResponse::Ok().json(json!({ "router": render(&networks, &caller, &row) })))
}

/// Delete a router: refused while it has interfaces (409 RouterInUse); its gateway port and quota go too.
pub async fn delete_router(
    networks: &Networks,
    caller: &Caller,
    id: &str,
) -> Result<(), NeutronError> {
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

fn interface_info(
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

/// Attach a subnet (a new port holding its gateway address) or an existing unbound port to router `id`.
/// Returns Neutron's interface info (router id, port id, subnet ids, network id).
pub async fn add_router_interface(
    networks: &Networks,
    caller: &Caller,
    id: &str,
    subnet_id: Option<String>,
    port_id: Option<String>,
) -> Result<Value, NeutronError> {
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
                    .ok_or_else(|| NeutronError::subnet_not_found(&subnet_id))?;
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
                .map_err(NeutronError::from)?;
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
                .ok_or_else(|| NeutronError::port_not_found(&port_id))?;
            if !port.state.device_id.is_empty() || !port.state.device_owner.is_empty() {
                return Err(NeutronError::conflict(
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
            row.state.decide(&cmd).map_err(NeutronError::from)?;
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
) -> Result<Value, NeutronError> {
    let row = find(networks, caller, id)?;
    let iface = match (&subnet_id, &port_id) {
        (None, None) => return Err(bad_router("Either subnet_id or port_id must be specified")),
        (_, Some(p)) => {
            let i = row.state.interfaces.get(p).cloned().ok_or_else(|| {
                NeutronError::not_found(
                    "RouterInterfaceNotFound",
                    format!("Router {id} does not have an interface with id {p}"),
                )
            })?;
            if let Some(s) = &subnet_id {
                if !i.subnets.iter().any(|x| x.subnet_id == *s) {
                    return Err(NeutronError::conflict(
                        "SubnetMismatchForPort",
                        format!("Subnet on port {p} does not match the requested subnet {s}."),
                    ));
                }
            }
            i
        }
        (Some(s), None) => row.state.interface_on(s).cloned().ok_or_else(|| {
            NeutronError::not_found(
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
        return Err(NeutronError::conflict(
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

/// Give back what a crash between two steps of a router, floating IP or security group request left held
/// for nothing: quota reservations of resources that were never recorded (or are gone), and gateway,
/// floating IP and interface ports no router or floating IP records. An unrecorded interface port is only
/// deleted when it holds its subnet's gateway address (a port made by `add_router_interface` for a subnet);
/// one attached by port id was the caller's own and is only reported. Run at start, before the APIs
/// listen.
pub async fn sweep_l3_leftovers(networks: &Networks) -> Result<usize, NeutronError> {
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
