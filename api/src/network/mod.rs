//! Neutron (networking v2.0) over HTTP: version discovery, extensions, networks, subnets, ports, routers,
//! floating IPs, security groups, quotas and tags, with Neutron's list conventions (`fields`, filters,
//! `sort_key`/`sort_dir`, `limit`/`marker`/`page_reverse`), `If-Match: revision_number=N`, policy and fault
//! bodies. The behaviour is `strata-network`'s: handlers parse, check policy, call it and render.

mod error;
pub mod floating_ips;
pub mod list;
mod networks;
mod policy;
mod ports;
mod quotas;
pub mod routers;
pub mod security_groups;
mod subnets;
mod tags;

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

pub use error::NeutronError;
pub use networks::network_json;
pub use policy::POLICY;
pub use ports::port_json;
pub use strata_network::{
    auto, bind_port, bootstrap_public_network, check_quota, create_port, datapath, default_mtu,
    delete_port, new_id, release_quota, reserve_quota, sweep_leftovers, update_port,
    BindingRequest, IpRequest, Networks, NewPort, PortRow, PortUpdate, PublicNetwork, TagResource,
};

// ---------------------------------------------------------------------------------------------------------
// The caller

/// The authenticated caller of a networking request (project-scoped token): its token, for policy, and the
/// caller context the network service takes (`Deref`s to it).
pub type Caller = crate::common::ProjectCaller<Neutron>;

/// The Neutron API, as the shared extractors name it.
pub struct Neutron;

impl crate::common::CallerScope for Neutron {
    type Error = NeutronError;
    fn unscoped() -> NeutronError {
        NeutronError::forbidden("The networking API needs a project-scoped token.")
    }
}

impl Caller {
    /// Neutron's default policy for `action` in the caller's project (403 `PolicyNotAuthorized`). Which
    /// resources the caller may touch is decided by the lookups (404 for another project's, 403 for a
    /// visible one it may not change).
    pub fn enforce(&self, action: &str) -> Result<(), NeutronError> {
        POLICY.enforce(&self.auth, action, &self.project_id, NeutronError::policy)
    }
}

// ---------------------------------------------------------------------------------------------------------
// Request parsing shared by the handlers: Neutron's attribute rules are the network service's
// (`strata_network::input`); the `If-Match` header is HTTP.

pub(crate) use strata_network::input::{
    body_object, check_keys, check_tag, opt_bool, opt_string, opt_strings, tags_value,
};

/// `If-Match: revision_number=N` (several comma-separated constraints allowed; others ignored).
pub fn if_match_revision(req: &HttpRequest) -> Result<Option<u64>, NeutronError> {
    let Some(h) = req.headers().get("if-match") else {
        return Ok(None);
    };
    let text = h
        .to_str()
        .map_err(|_| NeutronError::bad_request("The If-Match header is not readable."))?;
    for part in text.split(',') {
        if let Some(n) = part.trim().strip_prefix("revision_number=") {
            return n.trim().parse::<u64>().map(Some).map_err(|_| {
                NeutronError::bad_request("If-Match revision_number must be a number.")
            });
        }
    }
    Ok(None)
}

// ---------------------------------------------------------------------------------------------------------
// Version discovery and extensions

fn version_doc(base: &str) -> Value {
    json!({
        "id": "v2.0",
        "status": "CURRENT",
        "links": [{ "rel": "self", "href": format!("{base}/v2.0/") }],
    })
}

/// `GET /`: the versions (Neutron answers 200 here).
async fn versions(req: HttpRequest) -> HttpResponse {
    let base = crate::common::base_url(&req);
    HttpResponse::Ok().json(json!({ "versions": [version_doc(&base)] }))
}

/// `GET /v2.0`: the resources of v2.0.
async fn version_v2(req: HttpRequest) -> HttpResponse {
    let base = crate::common::base_url(&req);
    let resources: Vec<Value> = ["network", "subnet", "port"]
        .iter()
        .map(|r| {
            json!({
                "name": r,
                "collection": format!("{r}s"),
                "links": [{ "rel": "self", "href": format!("{base}/v2.0/{r}s") }],
            })
        })
        .collect();
    HttpResponse::Ok().json(json!({ "resources": resources }))
}

/// The API extensions Strata implements: (alias, name, description). Clients change behaviour on these, so
/// only what works is listed.
pub const EXTENSIONS: &[(&str, &str, &str)] = &[
    (
        "allowed-address-pairs",
        "Allowed Address Pairs",
        "Ports accept allowed address pairs.",
    ),
    (
        "availability_zone",
        "Availability Zone",
        "Availability zones of network resources.",
    ),
    (
        "binding",
        "Port Binding",
        "Port binding attributes (admin only).",
    ),
    (
        "external-net",
        "Neutron external network",
        "router:external on networks.",
    ),
    (
        "network_availability_zone",
        "Network Availability Zone",
        "availability_zone_hints and availability_zones on networks.",
    ),
    ("net-mtu", "Network MTU", "The mtu attribute of networks."),
    (
        "net-mtu-writable",
        "Network MTU (writable)",
        "The mtu of a network may be changed.",
    ),
    (
        "pagination",
        "Pagination support",
        "limit, marker and page_reverse on lists.",
    ),
    (
        "port-security",
        "Port Security",
        "port_security_enabled on networks and ports.",
    ),
    (
        "project-id",
        "project_id field enabled",
        "project_id beside tenant_id.",
    ),
    (
        "provider",
        "Provider Network",
        "provider:network_type, provider:physical_network, provider:segmentation_id (admin only).",
    ),
    ("quotas", "Quota management support", "Per-project quotas."),
    (
        "quota_details",
        "Quota details management support",
        "Quota usage: used, limit, reserved.",
    ),
    (
        "revision-if-match",
        "If-Match constraints based on revision_number",
        "Compare-and-swap updates with If-Match: revision_number=N.",
    ),
    (
        "sorting",
        "Sorting support",
        "sort_key and sort_dir on lists.",
    ),
    (
        "standard-attr-description",
        "standard-attr-description",
        "description on every resource.",
    ),
    (
        "standard-attr-revisions",
        "Resource revision numbers",
        "revision_number on every resource.",
    ),
    (
        "standard-attr-tag",
        "Tag support for resources with standard attribute",
        "Tags on networks, subnets, ports and the other resources.",
    ),
    (
        "standard-attr-timestamp",
        "Resource timestamps",
        "created_at and updated_at on every resource.",
    ),
    (
        "tag-ext",
        "Tag support for resources: subnet, subnetpool, port, router",
        "Tags beyond networks.",
    ),
    (
        "tag-ports-during-bulk-creation",
        "Tag Ports During Bulk Creation",
        "Ports accept tags when created.",
    ),
    // Routers, floating IPs and security groups (routers.rs, floating_ips.rs, security_groups.rs).
    (
        "router",
        "Neutron L3 Router",
        "Routers with an external gateway, interfaces on subnets, and floating IPs.",
    ),
    (
        "ext-gw-mode",
        "Neutron L3 Configurable external gateway mode",
        "enable_snat in a router's external_gateway_info.",
    ),
    (
        "extraroute",
        "Neutron Extra Route",
        "Static routes on routers.",
    ),
    (
        "router_availability_zone",
        "Router Availability Zone",
        "availability_zone_hints and availability_zones on routers.",
    ),
    (
        "fip-port-details",
        "Floating IP Port Details Extension",
        "port_details on floating IPs.",
    ),
    (
        "security-group",
        "security-group",
        "Security groups and their rules.",
    ),
    (
        "stateful-security-group",
        "Stateful security group",
        "The stateful attribute of security groups.",
    ),
    (
        "security-groups-normalized-cidr",
        "Normalized CIDR field for security group rules",
        "normalized_cidr on security group rules.",
    ),
];

fn extension_json(alias: &str, name: &str, description: &str) -> Value {
    json!({
        "alias": alias,
        "name": name,
        "description": description,
        "updated": "2024-01-01T00:00:00-00:00",
        "links": [],
    })
}

fn served_extensions() -> impl Iterator<Item = &'static (&'static str, &'static str, &'static str)>
{
    EXTENSIONS.iter()
}

async fn list_extensions(_caller: Caller) -> HttpResponse {
    let all: Vec<Value> = served_extensions()
        .map(|(a, n, d)| extension_json(a, n, d))
        .collect();
    HttpResponse::Ok().json(json!({ "extensions": all }))
}

async fn show_extension(
    _caller: Caller,
    alias: web::Path<String>,
) -> Result<HttpResponse, NeutronError> {
    let alias = alias.into_inner();
    served_extensions()
        .find(|(a, _, _)| *a == alias)
        .map(|(a, n, d)| HttpResponse::Ok().json(json!({ "extension": extension_json(a, n, d) })))
        .ok_or_else(|| {
            NeutronError::not_found(
                "ExtensionNotFound",
                format!("Extension with alias {alias} does not exist"),
            )
        })
}

async fn not_found() -> Result<HttpResponse, NeutronError> {
    Err(NeutronError::not_found(
        "HTTPNotFound",
        "The resource could not be found.",
    ))
}

/// Register every Neutron route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(versions))
        .route("/v2.0", web::get().to(version_v2))
        .route("/v2.0/", web::get().to(version_v2))
        .route("/v2.0/extensions", web::get().to(list_extensions))
        .route("/v2.0/extensions/{alias}", web::get().to(show_extension));
    networks::configure(cfg);
    subnets::configure(cfg);
    ports::configure(cfg);
    quotas::configure(cfg);
    security_groups::configure(cfg);
    routers::configure(cfg);
    floating_ips::configure(cfg);
    tags::configure(cfg);
    cfg.default_service(web::to(not_found));
}
