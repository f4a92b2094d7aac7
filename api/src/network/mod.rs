//! Neutron (networking v2.0): version discovery, extensions, networks, subnets, ports, quotas and tags, with
//! Neutron's list conventions (`fields`, filters, `sort_key`/`sort_dir`, `limit`/`marker`/`page_reverse`),
//! `If-Match: revision_number=N`, policy and fault bodies.
//!
//! A network's address space (subnets, IP and MAC allocations) is one aggregate (`network-<uuid>`), so every
//! address decision is one append under optimistic concurrency; ports are their own aggregates. Writes that
//! span streams (a port: quota, addresses, the port record) first decide the address allocation against the
//! network's current state without appending, so a request refused for its addresses or its quota appends
//! nothing; only the loser of a race undoes what it took.
//!
//! Plain functions ([`create_port`], [`update_port`], [`bind_port`], [`delete_port`], [`reserve_quota`],
//! [`release_quota`]) are what the HTTP handlers use and what other services (Nova, the L3 and security group
//! code) call.

pub mod auto;
pub mod datapath;
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

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, FromRequest, HttpMessage, HttpRequest, HttpResponse};
use futures::future::{ready, Ready};
use parking_lot::RwLock;
use serde_json::{json, Map, Value};
use strata_actors::compute::Sequence;
use strata_actors::network::{
    default_network_limits, Network, NetworkQuota, NetworkUsage, NetworkUsageCommand, Port,
};
use strata_actors::{Aggregate, CommandError, Outcome, Repository, Runtime};
use strata_events::Metadata;
use strata_projections::network::NetworkView;
use strata_projections::Live;

pub use error::NeutronError;
pub use networks::{bootstrap_public_network, default_mtu, network_json, PublicNetwork};
pub use policy::POLICY;
pub use ports::{
    bind_port, create_port, delete_port, port_json, sweep_leftovers, update_port, BindingRequest,
    NewPort, PortUpdate,
};
pub use quotas::{check_quota, release_quota, reserve_quota};
pub use strata_actors::network::IpRequest;
pub use strata_projections::network::PortRow;
pub use tags::TagResource;

use strata_actors::network::{FloatingIp, Router, SecurityGroup};

use crate::auth::AuthContext;

/// The Neutron service's state: the view, the repositories, and the hooks other networking code plugs in.
pub struct Networks {
    pub view: Live<NetworkView>,
    pub networks: Repository<Network>,
    pub ports: Repository<Port>,
    pub usage: Repository<NetworkUsage>,
    pub quotas: Repository<NetworkQuota>,
    /// Security groups, routers, floating IPs (`security_groups.rs`, `routers.rs`, `floating_ips.rs`).
    pub secgroups: Repository<SecurityGroup>,
    pub routers: Repository<Router>,
    pub floating_ips: Repository<FloatingIp>,
    /// Segmentation ids of tenant networks (`sequence-network-vni`).
    sequences: Repository<Sequence>,
    /// The limits of projects that set none (Neutron's quota defaults).
    pub default_limits: BTreeMap<String, i64>,
    /// The availability zones networks may be hinted to (the compute hosts' zone).
    pub availability_zones: Vec<String>,
    security_groups: RwLock<Option<Arc<dyn PortSecurityGroups>>>,
    tag_resources: RwLock<BTreeMap<String, Arc<dyn TagResource>>>,
}

const READ_YOUR_WRITES: Duration = Duration::from_secs(10);

/// What the security group code provides to ports. Without it, ports record the ids they are given and get
/// none by default.
#[async_trait::async_trait(?Send)]
pub trait PortSecurityGroups: Send + Sync {
    /// The groups a port of `project_id` gets when its request names none (Neutron: the project's
    /// `default` group, made on first use).
    async fn default_groups(
        &self,
        networks: &Networks,
        caller: &Caller,
        project_id: &str,
    ) -> Result<Vec<String>, NeutronError>;
    /// Refuse ids that are not groups `caller` may give a port of `project_id` (Neutron: 404
    /// SecurityGroupNotFound).
    async fn validate(
        &self,
        networks: &Networks,
        caller: &Caller,
        project_id: &str,
        ids: &[String],
    ) -> Result<(), NeutronError>;
}

impl Networks {
    pub fn new(runtime: Arc<Runtime>, view: Live<NetworkView>) -> Self {
        let n = Networks {
            view,
            networks: Repository::new(runtime.clone()),
            ports: Repository::new(runtime.clone()),
            usage: Repository::new(runtime.clone()),
            quotas: Repository::new(runtime.clone()),
            secgroups: Repository::new(runtime.clone()),
            routers: Repository::new(runtime.clone()),
            floating_ips: Repository::new(runtime.clone()),
            sequences: Repository::new(runtime),
            default_limits: default_network_limits(),
            availability_zones: vec!["nova".to_string()],
            security_groups: RwLock::new(None),
            tag_resources: RwLock::new(BTreeMap::new()),
        };
        tags::register_core(&n);
        security_groups::install(&n);
        routers::install(&n);
        floating_ips::install(&n);
        n
    }

    fn sequences(&self) -> Repository<Sequence> {
        self.sequences.clone()
    }

    /// Plug in the security group code (see [`PortSecurityGroups`]).
    pub fn set_security_groups(&self, hook: Arc<dyn PortSecurityGroups>) {
        *self.security_groups.write() = Some(hook);
    }

    pub fn security_groups(&self) -> Option<Arc<dyn PortSecurityGroups>> {
        self.security_groups.read().clone()
    }

    /// Make `/v2.0/<collection>/{id}/tags` work for another resource kind.
    pub fn register_tags(&self, resource: Arc<dyn TagResource>) {
        self.tag_resources
            .write()
            .insert(resource.collection().to_string(), resource);
    }

    fn tag_resource(&self, collection: &str) -> Option<Arc<dyn TagResource>> {
        self.tag_resources.read().get(collection).cloned()
    }

    /// Run a command and wait until the network view shows it.
    pub async fn run<A: Aggregate>(
        &self,
        repo: &Repository<A>,
        id: &str,
        cmd: A::Command,
        meta: &Metadata,
    ) -> Result<Outcome<A>, CommandError> {
        let out = repo.execute(id, cmd, meta.clone()).await?;
        self.wait(&out).await;
        Ok(out)
    }

    /// Wait until the view has applied an outcome's events.
    pub async fn wait<A: Aggregate>(&self, out: &Outcome<A>) {
        if let Some(p) = out.position {
            if !self.view.wait_for(p, READ_YOUR_WRITES).await {
                tracing::warn!(
                    position = p,
                    "network view did not reach the write's position in time"
                );
            }
        }
    }

    /// A project's quota limits: the defaults overlaid with what was set for it.
    pub fn limits(&self, project_id: &str) -> BTreeMap<String, i64> {
        self.view
            .snapshot()
            .limits_of(project_id, &self.default_limits)
    }

    /// Give back a quota reservation (best effort: a failure is logged, the audit can find it).
    async fn undo_quota(&self, project_id: &str, holder: &str, meta: &Metadata) {
        let cmd = NetworkUsageCommand::Release {
            holder: holder.to_string(),
        };
        if let Err(e) = self.run(&self.usage, project_id, cmd, meta).await {
            tracing::error!(holder, error = %e, "releasing a network quota reservation failed");
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// The caller

/// The authenticated caller of a networking request (project-scoped token).
pub struct Caller {
    pub auth: AuthContext,
    pub project_id: String,
    pub user_id: String,
    pub is_admin: bool,
    pub meta: Metadata,
}

impl Caller {
    /// Neutron's default policy for `action` in the caller's project (403 `PolicyNotAuthorized`). Which
    /// resources the caller may touch is decided by the lookups (404 for another project's, 403 for a
    /// visible one it may not change).
    pub fn enforce(&self, action: &str) -> Result<(), NeutronError> {
        POLICY.enforce(&self.auth, action, &self.project_id, NeutronError::policy)
    }

    /// Whether the caller may see a resource of `project_id`.
    pub fn owns(&self, project_id: &str) -> bool {
        self.is_admin || self.project_id == project_id
    }
}

impl FromRequest for Caller {
    type Error = NeutronError;
    type Future = Ready<Result<Self, NeutronError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let result = crate::auth::authenticate(req)
            .map_err(NeutronError::from)
            .and_then(|auth| {
                let project_id = auth.project_id().map(str::to_string).ok_or_else(|| {
                    NeutronError::forbidden("The networking API needs a project-scoped token.")
                })?;
                let rid = req
                    .extensions()
                    .get::<crate::common::RequestId>()
                    .cloned()
                    .unwrap_or_else(|| {
                        crate::common::RequestId(format!("req-{}", uuid::Uuid::new_v4()))
                    });
                let meta = rid.metadata(auth.principal());
                Ok(Caller {
                    is_admin: auth.is_admin(),
                    user_id: auth.user_id.clone(),
                    project_id,
                    auth,
                    meta,
                })
            });
        ready(result)
    }
}

// ---------------------------------------------------------------------------------------------------------
// Request parsing shared by the handlers

/// The JSON body, which must be an object holding `key` as an object.
fn body_object(body: &[u8], key: &str) -> Result<Map<String, Value>, NeutronError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|_| NeutronError::bad_request("The request body could not be parsed as JSON."))?;
    match v {
        Value::Object(mut m) => match m.remove(key) {
            Some(Value::Object(inner)) => Ok(inner),
            Some(_) => Err(NeutronError::bad_request(format!(
                "The '{key}' of the request body must be an object."
            ))),
            None => Err(NeutronError::bad_request(format!(
                "Resource body required: the request body needs a '{key}' object."
            ))),
        },
        _ => Err(NeutronError::bad_request(
            "The request body must be a JSON object.",
        )),
    }
}

/// Refuse attributes the resource does not have, or that the request may not set.
fn check_keys(m: &Map<String, Value>, allowed: &[&str]) -> Result<(), NeutronError> {
    for k in m.keys() {
        if !allowed.contains(&k.as_str()) {
            return Err(NeutronError::bad_request(format!(
                "Unrecognized attribute(s) '{k}'"
            )));
        }
    }
    Ok(())
}

fn invalid_value(key: &str, v: &Value, why: &str) -> NeutronError {
    NeutronError::invalid_input(format!("'{v}' is not {why} for {key}"))
}

/// An optional string attribute (name, description, ...) of at most `max` characters.
fn opt_string(
    m: &Map<String, Value>,
    key: &str,
    max: usize,
) -> Result<Option<String>, NeutronError> {
    match m.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => {
            if s.chars().count() > max {
                return Err(NeutronError::invalid_input(format!(
                    "'{s}' exceeds maximum length of {max}"
                )));
            }
            Ok(Some(s.clone()))
        }
        Some(Value::Null) if key == "description" => Ok(Some(String::new())),
        Some(v) => Err(invalid_value(key, v, "a valid string")),
    }
}

/// A boolean attribute: JSON true/false, or Neutron's accepted strings.
fn opt_bool(m: &Map<String, Value>, key: &str) -> Result<Option<bool>, NeutronError> {
    match m.get(key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) => match s.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(Some(true)),
            "false" | "0" | "no" | "off" => Ok(Some(false)),
            _ => Err(invalid_value(key, &json!(s), "a valid boolean")),
        },
        Some(Value::Number(n)) if n.as_u64() == Some(0) || n.as_u64() == Some(1) => {
            Ok(Some(n.as_u64() == Some(1)))
        }
        Some(v) => Err(invalid_value(key, v, "a valid boolean")),
    }
}

/// A list of strings attribute.
fn opt_strings(m: &Map<String, Value>, key: &str) -> Result<Option<Vec<String>>, NeutronError> {
    match m.get(key) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(vec![])),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                other => Err(invalid_value(key, other, "a list of strings")),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(v) => Err(invalid_value(key, v, "a list")),
    }
}

/// Tags: at most 60 characters each, no commas or slashes (they cannot be filtered or addressed).
fn check_tag(tag: &str) -> Result<(), NeutronError> {
    if tag.is_empty() || tag.chars().count() > 60 || tag.contains(',') || tag.contains('/') {
        return Err(NeutronError::invalid_input(format!(
            "'{tag}' is not a valid tag"
        )));
    }
    Ok(())
}

fn tags_value(m: &Map<String, Value>) -> Result<Vec<String>, NeutronError> {
    let mut tags = opt_strings(m, "tags")?.unwrap_or_default();
    for t in &tags {
        check_tag(t)?;
    }
    tags.sort();
    tags.dedup();
    Ok(tags)
}

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

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
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
