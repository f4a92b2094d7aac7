//! `/v2.0/subnets`: create (IPv4 and IPv6; gateway, pools, DNS servers, host routes, DHCP, IPv6 modes),
//! list, show, update, delete. A subnet lives inside its network's aggregate, so its address plan, the
//! overlap check with its siblings and its allocations are decided on one stream.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};
use strata_actors::network::ipam::{self, Cidr};
use strata_actors::network::{NetworkCommand, Subnet, SubnetChanges};
use strata_projections::network::{NetworkRow, SubnetRef};

use super::list::{self, ListQuery};
use super::{body_object, new_id, opt_bool, opt_string, Caller, Networks, NeutronError};
use strata_network::networks::owner_of;
#[allow(unused_imports)]
use strata_network::subnets::*;

pub fn subnet_json(id: &str, s: &Subnet, net: &NetworkRow, r: &SubnetRef) -> Value {
    let null_if_empty = |v: &str| if v.is_empty() { Value::Null } else { json!(v) };
    json!({
        "id": id,
        "name": s.name,
        "description": s.description,
        "network_id": net.id,
        "tenant_id": s.project_id,
        "project_id": s.project_id,
        "ip_version": s.ip_version,
        "cidr": s.cidr,
        "gateway_ip": null_if_empty(&s.gateway_ip),
        "allocation_pools": s.allocation_pools.iter().map(|(a, b)| json!({"start": a, "end": b})).collect::<Vec<_>>(),
        "dns_nameservers": s.dns_nameservers,
        "host_routes": s.host_routes.iter().map(|(d, n)| json!({"destination": d, "nexthop": n})).collect::<Vec<_>>(),
        "enable_dhcp": s.enable_dhcp,
        "ipv6_ra_mode": null_if_empty(&s.ipv6_ra_mode),
        "ipv6_address_mode": null_if_empty(&s.ipv6_address_mode),
        "subnetpool_id": null,
        "segment_id": null,
        "service_types": [],
        "tags": s.tags,
        "created_at": r.created_at,
        "updated_at": r.updated_at,
        "revision_number": s.revision,
    })
}

async fn create(
    networks: web::Data<Networks>,
    caller: Caller,
    body: web::Bytes,
) -> Result<HttpResponse, NeutronError> {
    caller.enforce("create_subnet")?;
    let m = body_object(&body, "subnet")?;
    let network_id = match m.get("network_id") {
        Some(Value::String(s)) => s.clone(),
        _ => return Err(NeutronError::bad_request("network_id must be specified")),
    };
    let net = strata_network::networks::find(&networks, &caller, &network_id)?;
    let project_id = owner_of(&caller, &m)?;
    if !caller.is_admin && net.state.project_id != project_id {
        return Err(NeutronError::policy("create_subnet"));
    }
    let spec = parse_subnet(&net, &project_id, &m)?;
    let id = new_id();
    create_subnet(&networks, &caller.meta, &network_id, &id, spec).await?;
    let v = find(&networks, &caller, &id)?;
    Ok(HttpResponse::Created().json(json!({ "subnet": v })))
}

async fn list_subnets(
    req: HttpRequest,
    networks: web::Data<Networks>,
    caller: Caller,
) -> Result<HttpResponse, NeutronError> {
    let q = ListQuery::parse(&req)?;
    let rows: Vec<Value> = {
        let view = networks.view.snapshot();
        view.subnets
            .keys()
            .filter_map(|id| view.subnet(id).map(|(s, n, r)| (id, s, n, r)))
            .filter(|(_, s, n, _)| visible(&caller, s, n))
            .map(|(id, s, n, r)| subnet_json(id, s, n, r))
            .collect()
    };
    list::respond(&req, &q, "subnets", rows)
}

async fn show(
    req: HttpRequest,
    networks: web::Data<Networks>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, NeutronError> {
    Ok(list::show(&req, "subnet", find(&networks, &caller, &id)?))
}

const UPDATE_KEYS: &[&str] = &[
    "name",
    "description",
    "gateway_ip",
    "allocation_pools",
    "dns_nameservers",
    "host_routes",
    "enable_dhcp",
];

async fn update(
    req: HttpRequest,
    networks: web::Data<Networks>,
    caller: Caller,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, NeutronError> {
    let (if_revision, m) = list::update_request(&caller, "update_subnet", &req, &body, "subnet")?;
    let (network_id, s) = owned(&networks, &caller, &id, "update_subnet")?;
    list::check_updatable(&m, UPDATE_KEYS)?;
    let cidr = Cidr::parse(&s.cidr).map_err(NeutronError::invalid_input)?;
    let gateway_ip = match m.get("gateway_ip") {
        None => None,
        Some(Value::Null) => Some(String::new()),
        Some(v) => {
            let g = ip_of(v, cidr.v6, "gateway_ip")?;
            let a = ipam::parse_ip_of(&g, cidr.v6).unwrap_or_default();
            if !cidr.contains(a) || cidr.is_reserved(a) {
                return Err(NeutronError::invalid_input(format!(
                    "Gateway is not valid on subnet: {g} is not a usable address of {cidr}"
                )));
            }
            Some(g)
        }
    };
    let changes = SubnetChanges {
        name: opt_string(&m, "name", 255)?,
        description: opt_string(&m, "description", 255)?,
        gateway_ip,
        allocation_pools: list::replacement(&m, "allocation_pools", |v| parse_pools(v, cidr.v6))?,
        dns_nameservers: list::replacement(&m, "dns_nameservers", |v| parse_dns(v, cidr.v6))?,
        host_routes: list::replacement(&m, "host_routes", |v| parse_routes(v, cidr.v6))?,
        enable_dhcp: opt_bool(&m, "enable_dhcp")?,
    };
    networks
        .run(
            &networks.networks,
            &network_id,
            NetworkCommand::UpdateSubnet {
                subnet_id: id.to_string(),
                changes,
                if_revision,
            },
            &caller.meta,
        )
        .await?;
    let v = find(&networks, &caller, &id)?;
    Ok(HttpResponse::Ok().json(json!({ "subnet": v })))
}

async fn delete(
    networks: web::Data<Networks>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, NeutronError> {
    caller.enforce("delete_subnet")?;
    delete_subnet(&networks, &caller, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/v2.0/subnets")
            .route(web::get().to(list_subnets))
            .route(web::post().to(create)),
    )
    .service(
        web::resource("/v2.0/subnets/{id}")
            .route(web::get().to(show))
            .route(web::put().to(update))
            .route(web::delete().to(delete)),
    );
}

fn find(networks: &Networks, caller: &Caller, id: &str) -> Result<Value, NeutronError> {
    let view = networks.view.snapshot();
    view.subnet(id)
        .filter(|(s, net, _)| visible(caller, s, net))
        .map(|(s, net, r)| subnet_json(id, s, net, r))
        .ok_or_else(|| NeutronError::subnet_not_found(id))
}
