//! `/v2.0/networks`: create, list, show, update, delete; the admin bootstrap of the external network `public`.
//!
//! Tenant networks are `vxlan` with a segmentation id from the `sequence-network-vni` counter (never
//! reused) and an MTU of 1450 (1500 less the 50 bytes of VXLAN encapsulation, as Neutron computes it for
//! its default tunnel type); `flat` and `vlan` networks given by admins get 1500.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};
use strata_actors::compute::{Next, Sequence};
use strata_actors::network::{NetworkChanges, NetworkCommand, NetworkSpec, OwnerKind};
use strata_actors::Repository;
use strata_events::Metadata;
use strata_projections::network::{NetworkRow, BOOTSTRAP_CORRELATION};

use super::list::{self, ListQuery};
use super::quotas::{release_quota, reserve_quota};
use super::{
    body_object, check_keys, if_match_revision, new_id, opt_bool, opt_string, opt_strings,
    tags_value, Caller, Networks, NeutronError,
};

/// The MTU of a network of `network_type` (Neutron: the 1500-byte physical MTU less the encapsulation).
pub fn default_mtu(network_type: &str) -> u32 {
    match network_type {
        "vxlan" => 1450,
        "geneve" => 1442,
        "gre" => 1458,
        _ => 1500,
    }
}

const NETWORK_TYPES: &[&str] = &["flat", "vlan", "vxlan", "geneve", "gre", "local"];

/// Whether `caller` may see the network: its own, shared, external, or any for admins.
pub(super) fn visible(caller: &Caller, row: &NetworkRow) -> bool {
    caller.owns(&row.state.project_id) || row.state.shared || row.state.external
}

/// The network `id` as `caller` may see it (404 otherwise).
pub(super) fn find(
    networks: &Networks,
    caller: &Caller,
    id: &str,
) -> Result<NetworkRow, NeutronError> {
    networks
        .view
        .snapshot()
        .network(id)
        .filter(|r| visible(caller, r))
        .cloned()
        .ok_or_else(|| NeutronError::network_not_found(id))
}

/// What a port create needs of its network, without copying the network's allocations.
pub(super) struct NetworkFacts {
    pub project_id: String,
    pub shared: bool,
    pub port_security_enabled: bool,
}

/// [`NetworkFacts`] of network `id` as `caller` may see it (404 otherwise).
pub(super) fn facts(
    networks: &Networks,
    caller: &Caller,
    id: &str,
) -> Result<NetworkFacts, NeutronError> {
    networks
        .view
        .snapshot()
        .network(id)
        .filter(|r| visible(caller, r))
        .map(|r| NetworkFacts {
            project_id: r.state.project_id.clone(),
            shared: r.state.shared,
            port_security_enabled: r.state.port_security_enabled,
        })
        .ok_or_else(|| NeutronError::network_not_found(id))
}

/// The network `id` if `caller` may change it: 404 when invisible, 403 when visible but not its own.
pub(super) fn owned(
    networks: &Networks,
    caller: &Caller,
    id: &str,
    action: &str,
) -> Result<NetworkRow, NeutronError> {
    let row = find(networks, caller, id)?;
    if !caller.owns(&row.state.project_id) {
        return Err(NeutronError::policy(action));
    }
    Ok(row)
}

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

fn parse_zones(m: &Map<String, Value>, known: &[String]) -> Result<Vec<String>, NeutronError> {
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

/// Who a new resource belongs to: the caller's project, or (admins only) the `project_id`/`tenant_id` given.
pub(super) fn owner_of(caller: &Caller, m: &Map<String, Value>) -> Result<String, NeutronError> {
    let given = match (m.get("project_id"), m.get("tenant_id")) {
        (Some(Value::String(a)), Some(Value::String(b))) if a != b => {
            return Err(NeutronError::bad_request(
                "'project_id' and 'tenant_id' do not match",
            ))
        }
        (Some(Value::String(a)), _) | (None, Some(Value::String(a))) => Some(a.clone()),
        (None, None) => None,
        (Some(v), _) | (_, Some(v)) => {
            return Err(NeutronError::invalid_input(format!(
                "'{v}' is not a valid project id"
            )))
        }
    };
    match given {
        Some(p) if p != caller.project_id && !caller.is_admin => Err(NeutronError::bad_request(
            "Specifying 'project_id' or 'tenant_id' other than the authenticated project in request requires admin privileges",
        )),
        Some(p) if p.is_empty() => Err(NeutronError::invalid_input("'' is not a valid project id")),
        Some(p) => Ok(p),
        None => Ok(caller.project_id.clone()),
    }
}

/// What a network create asks, validated (nothing recorded yet).
pub(super) struct NetworkRequest {
    pub spec: NetworkSpec,
    /// A tenant vxlan network: its segmentation id is drawn at create time.
    pub needs_vni: bool,
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

/// Record a validated network: quota first (refused: nothing recorded), then the segmentation id, then
/// the network.
pub(super) async fn create_network(
    networks: &Networks,
    meta: &Metadata,
    id: &str,
    mut req: NetworkRequest,
    vni: &Repository<Sequence>,
) -> Result<NetworkRow, NeutronError> {
    let project = req.spec.project_id.clone();
    let holder = format!("network:{id}");
    reserve_quota(networks, meta, &project, "network", &holder).await?;
    if req.needs_vni {
        match vni.execute("network-vni", Next, meta.clone()).await {
            Ok(out) => req.spec.segmentation_id = Some(out.state.value as u32),
            Err(e) => {
                networks.undo_quota(&project, &holder, meta).await;
                return Err(e.into());
            }
        }
    }
    if let Err(e) = networks
        .run(
            &networks.networks,
            id,
            NetworkCommand::Create(req.spec),
            meta,
        )
        .await
    {
        networks.undo_quota(&project, &holder, meta).await;
        return Err(e.into());
    }
    networks
        .view
        .snapshot()
        .network(id)
        .cloned()
        .ok_or_else(|| NeutronError::network_not_found(id))
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
    let v = list::select_fields(render(&networks, &caller, &row), &list::fields_of(&req));
    Ok(HttpResponse::Ok().json(json!({ "network": v })))
}

async fn update(
    req: HttpRequest,
    networks: web::Data<Networks>,
    caller: Caller,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, NeutronError> {
    caller.enforce("update_network")?;
    let if_revision = if_match_revision(&req)?;
    let m = body_object(&body, "network")?;
    let row = owned(&networks, &caller, &id, "update_network")?;
    for k in m.keys() {
        if !UPDATE_KEYS.contains(&k.as_str()) {
            return Err(NeutronError::bad_request(format!(
                "Cannot update read-only attribute {k}"
            )));
        }
    }
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

/// Delete a network: its auto-deletable ports (DHCP) first, then the network itself (refused while other
/// ports are on it), then its quota and its subnets' quota.
pub(super) async fn delete_network(
    networks: &Networks,
    caller: &Caller,
    id: &str,
) -> Result<(), NeutronError> {
    let row = owned(networks, caller, id, "delete_network")?;
    if let Some((port, _)) = row.state.ports_in_use().next() {
        return Err(NeutronError::conflict(
            "NetworkInUse",
            format!(
                "Unable to complete operation on network {id}. There are one or more ports still in use on the network (port {port} among them)."
            ),
        ));
    }
    let auto: Vec<String> = row
        .state
        .ports
        .iter()
        .filter(|(_, p)| p.owner == OwnerKind::AutoDelete)
        .map(|(pid, _)| pid.to_string())
        .collect();
    for pid in auto {
        super::ports::delete_port_unchecked(networks, &caller.meta, &pid).await?;
    }
    let out = networks
        .run(&networks.networks, id, NetworkCommand::Delete, &caller.meta)
        .await
        .map_err(|e| {
            let e = NeutronError::from(e);
            if e.kind == "NetworkInUse" {
                NeutronError::conflict(
                    "NetworkInUse",
                    format!("Unable to complete operation on network {id}. There are one or more ports still in use on the network."),
                )
            } else {
                e
            }
        })?;
    let project = row.state.project_id.clone();
    for sid in out.state.subnets.keys() {
        release_quota(networks, &caller.meta, &project, &format!("subnet:{sid}")).await;
    }
    release_quota(networks, &caller.meta, &project, &format!("network:{id}")).await;
    Ok(())
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

/// The external network `public` made at first start: its name, its subnet's CIDR.
pub struct PublicNetwork {
    pub name: String,
    pub cidr: String,
}

/// Make the external network `public` (flat, `router:external`, not shared, owned by `admin_project`) with
/// a subnet, once per deployment: a network made by an earlier start is never made again (even if it was
/// deleted since), and one left without its subnet by an interrupted start gets it. Returns its id.
pub async fn bootstrap_public_network(
    networks: &Networks,
    admin_project: &str,
    public: &PublicNetwork,
) -> Result<String, NeutronError> {
    let meta = Metadata::system(BOOTSTRAP_CORRELATION);
    let made = networks.view.snapshot().bootstrap_network.clone();
    let id = match made {
        Some(id) => {
            let row = networks.view.snapshot().network(&id).cloned();
            match row {
                Some(r) if r.state.subnets.is_empty() => id,
                _ => return Ok(id),
            }
        }
        None => {
            let spec = NetworkSpec {
                project_id: admin_project.to_string(),
                name: public.name.clone(),
                description: String::new(),
                admin_state_up: true,
                shared: false,
                external: true,
                mtu: 1500,
                network_type: "flat".into(),
                physical_network: "public".into(),
                segmentation_id: None,
                availability_zone_hints: vec![],
                port_security_enabled: true,
                tags: vec![],
            };
            let id = new_id();
            let vni = networks.sequences();
            let req = NetworkRequest {
                spec,
                needs_vni: false,
            };
            create_network(networks, &meta, &id, req, &vni).await?;
            id
        }
    };
    let mut sm = Map::new();
    sm.insert("name".into(), json!(format!("{}-subnet", public.name)));
    sm.insert(
        "ip_version".into(),
        json!(if public.cidr.contains(':') { 6 } else { 4 }),
    );
    sm.insert("cidr".into(), json!(public.cidr));
    sm.insert("enable_dhcp".into(), json!(false));
    let row = networks.view.snapshot().network(&id).cloned();
    let row = row.ok_or_else(|| NeutronError::network_not_found(&id))?;
    let spec = super::subnets::parse_subnet(&row, admin_project, &sm)?;
    super::subnets::create_subnet(networks, &meta, &id, &new_id(), spec).await?;
    Ok(id)
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
