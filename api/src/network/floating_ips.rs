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

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};
use strata_actors::network::ipam::canonical_ip;
use strata_projections::network::{FloatingIpRow, NetworkView};

use super::list::{self, ListQuery};
use super::{opt_string, tags_value, Caller, Networks, NeutronError};
#[allow(unused_imports)]
use strata_network::floating_ips::*;
use strata_network::networks::owner_of;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/v2.0/floatingips")
            .route(web::get().to(list_fips))
            .route(web::post().to(create)),
    )
    .service(
        web::resource("/v2.0/floatingips/{id}")
            .route(web::get().to(show))
            .route(web::put().to(update))
            .route(web::delete().to(delete)),
    );
}

pub fn floating_ip_json(view: &NetworkView, row: &FloatingIpRow) -> Value {
    let f = &row.state;
    let a = f.association.as_ref();
    let port_details = a
        .and_then(|a| view.port(&a.port_id))
        .map(|p| {
            json!({
                "name": p.state.name,
                "network_id": p.state.network_id,
                "mac_address": p.state.mac_address,
                "admin_state_up": p.state.admin_state_up,
                "status": p.state.status(),
                "device_id": p.state.device_id,
                "device_owner": p.state.device_owner,
            })
        })
        .unwrap_or(Value::Null);
    json!({
        "id": row.id,
        "tenant_id": f.project_id,
        "project_id": f.project_id,
        "floating_network_id": f.floating_network_id,
        "floating_ip_address": f.floating_ip_address,
        "fixed_ip_address": a.map(|a| json!(a.fixed_ip_address)).unwrap_or(Value::Null),
        "port_id": a.map(|a| json!(a.port_id)).unwrap_or(Value::Null),
        "router_id": a.map(|a| json!(a.router_id)).unwrap_or(Value::Null),
        "status": f.status,
        "description": f.description,
        "port_details": port_details,
        "port_forwardings": [],
        "qos_policy_id": null,
        "tags": f.tags,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "revision_number": f.revision,
    })
}

fn render(networks: &Networks, row: &FloatingIpRow) -> Value {
    floating_ip_json(&networks.view.snapshot(), row)
}

/// `port_id` / `fixed_ip_address` of a create or update body: None = not asked.
fn parse_association(m: &Map<String, Value>) -> Result<Option<AssociationRequest>, NeutronError> {
    let text = |k: &str| -> Result<Option<String>, NeutronError> {
        match m.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
            Some(v) => Err(NeutronError::invalid_input(format!(
                "'{v}' is not a valid value for {k}"
            ))),
        }
    };
    let fixed = text("fixed_ip_address")?;
    if !m.contains_key("port_id") {
        if fixed.is_some() {
            return Err(bad_fip("fixed_ip_address cannot be specified without a port_id").into());
        }
        return Ok(None);
    }
    match text("port_id")? {
        Some(p) => Ok(Some((Some(p), fixed))),
        None => Ok(Some((None, None))),
    }
}

async fn list_fips(
    req: HttpRequest,
    networks: web::Data<Networks>,
    caller: Caller,
) -> Result<HttpResponse, NeutronError> {
    let q = ListQuery::parse(&req)?;
    let rows: Vec<Value> = {
        let view = networks.view.snapshot();
        view.floating_ips
            .values()
            .filter(|f| caller.owns(&f.state.project_id))
            .map(|f| {
                let mut v = floating_ip_json(&view, f);
                // Filterable, not shown (Neutron filters on the subnet the address came from).
                v["subnet_id"] = json!(f.state.subnet_id);
                v
            })
            .collect()
    };
    let mut body = list::page(
        &q,
        "floatingips",
        rows,
        &format!("{}{}", crate::common::base_url(&req), req.path()),
    )?;
    if let Some(items) = body["floatingips"].as_array_mut() {
        for it in items {
            if let Some(o) = it.as_object_mut() {
                if !q.fields.iter().any(|f| f == "subnet_id") {
                    o.remove("subnet_id");
                }
            }
        }
    }
    Ok(HttpResponse::Ok().json(body))
}

async fn show(
    req: HttpRequest,
    networks: web::Data<Networks>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, NeutronError> {
    let row = find(&networks, &caller, &id)?;
    Ok(list::show(&req, "floatingip", render(&networks, &row)))
}

const CREATE_KEYS: &[&str] = &[
    "floating_network_id",
    "floating_ip_address",
    "subnet_id",
    "port_id",
    "fixed_ip_address",
    "description",
    "tags",
    "tenant_id",
    "project_id",
    "qos_policy_id",
    "dns_name",
    "dns_domain",
];

async fn create(
    networks: web::Data<Networks>,
    caller: Caller,
    body: web::Bytes,
) -> Result<HttpResponse, NeutronError> {
    let m = list::create_request(
        &caller,
        "create_floatingip",
        &body,
        "floatingip",
        CREATE_KEYS,
    )?;
    for k in ["qos_policy_id", "dns_name", "dns_domain"] {
        if m.get(k).is_some_and(|v| !v.is_null() && v != "") {
            return Err(NeutronError::bad_request(format!(
                "{k} is not supported by this deployment"
            )));
        }
    }
    let project = owner_of(&caller, &m)?;
    let network_id =
        match m.get("floating_network_id") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => return Err(NeutronError::bad_request(
                "Failed to parse request. Required attribute 'floating_network_id' not specified",
            )),
        };
    let address = match m.get("floating_ip_address") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => {
            if !caller.is_admin {
                return Err(NeutronError::policy(
                    "create_floatingip:floating_ip_address",
                ));
            }
            Some(
                canonical_ip(s)
                    .filter(|a| !a.contains(':'))
                    .ok_or_else(|| {
                        NeutronError::invalid_input(format!("'{s}' is not a valid IP address"))
                    })?,
            )
        }
        Some(v) => {
            return Err(NeutronError::invalid_input(format!(
                "'{v}' is not a valid IP address"
            )))
        }
    };
    let subnet_id = match m.get("subnet_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(v) => {
            return Err(NeutronError::invalid_input(format!(
                "'{v}' is not a valid UUID for subnet_id"
            )))
        }
    };
    let description = opt_string(&m, "description", 255)?.unwrap_or_default();
    let tags = tags_value(&m)?;
    let assoc_req = parse_association(&m)?;

    let row = create_floating_ip(
        &networks,
        &caller,
        NewFloatingIp {
            project_id: project,
            network_id,
            address,
            subnet_id,
            description,
            tags,
            association: assoc_req,
        },
    )
    .await?;
    Ok(HttpResponse::Created().json(json!({ "floatingip": render(&networks, &row) })))
}

async fn update(
    req: HttpRequest,
    networks: web::Data<Networks>,
    caller: Caller,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, NeutronError> {
    let (if_revision, m) =
        list::update_request(&caller, "update_floatingip", &req, &body, "floatingip")?;
    find(&networks, &caller, &id)?;
    list::check_updatable(&m, &["port_id", "fixed_ip_address", "description"])?;
    let association = parse_association(&m)?;
    let description = opt_string(&m, "description", 255)?;
    let row = update_floating_ip(
        &networks,
        &caller,
        &id,
        association,
        description,
        if_revision,
    )
    .await?;
    Ok(HttpResponse::Ok().json(json!({ "floatingip": render(&networks, &row) })))
}

async fn delete(
    networks: web::Data<Networks>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, NeutronError> {
    caller.enforce("delete_floatingip")?;
    delete_floating_ip(&networks, &caller, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}
