//! `/v2.0/ports`, and the plain functions other services use: [`create_port`], [`update_port`],
//! [`bind_port`], [`delete_port`].
//!
//! A port create decides its MAC and fixed IPs against the network's current state first (refused: nothing
//! recorded), reserves the port quota (refused: nothing recorded), takes the addresses on the network's
//! stream (one append: a lost race is refused there and the quota given back), then records the port.

use actix_web::{web, HttpRequest, HttpResponse};
use rand::Rng;
use serde_json::{json, Map, Value};
use strata_actors::network::ipam::{self, Cidr};
use strata_actors::network::{
    Binding, IpRequest, NetworkCommand, PortChanges, PortCommand, PortSpec,
};
use strata_actors::Aggregate;
use strata_events::Metadata;
use strata_projections::network::PortRow;
use strata_proto::NetworkEvent;

use super::list::{self, ListQuery};
use super::networks::{self, owner_of};
use super::quotas::{check_quota, release_quota, reserve_quota};
use super::{
    body_object, check_keys, if_match_revision, new_id, opt_bool, opt_string, opt_strings,
    tags_value, Caller, Networks, NeutronError,
};

const VNIC_TYPES: &[&str] = &[
    "normal",
    "direct",
    "macvtap",
    "baremetal",
    "direct-physical",
    "virtio-forwarder",
    "smart-nic",
    "remote-managed",
    "vdpa",
];
const MAX_ADDRESS_PAIRS: usize = 10;

/// A binding asked for: binding:host_id, binding:vnic_type, binding:profile.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BindingRequest {
    pub host_id: Option<String>,
    pub vnic_type: Option<String>,
    pub profile: Option<Value>,
}

/// What a new port is. `Default` gives an up port with Neutron's defaults on `network_id`.
#[derive(Debug, Clone, PartialEq)]
pub struct NewPort {
    pub network_id: String,
    /// The owner; None = the caller's project (another project needs admin, or `skip_policy`).
    pub project_id: Option<String>,
    pub name: String,
    pub description: String,
    pub admin_state_up: bool,
    /// None = generated (fa:16:3e:xx:xx:xx, unique on the network).
    pub mac_address: Option<String>,
    /// None = Neutron's default choice (one IPv4 address, IPv6 addresses per subnet mode).
    pub fixed_ips: Option<Vec<IpRequest>>,
    pub device_id: String,
    pub device_owner: String,
    /// None = the project's default groups (when port security is on and a security group hook is set).
    pub security_groups: Option<Vec<String>>,
    /// (ip_address or cidr, mac_address or "" for the port's own)
    pub allowed_address_pairs: Vec<(String, String)>,
    /// None = the network's setting.
    pub port_security_enabled: Option<bool>,
    pub binding: BindingRequest,
    pub tags: Vec<String>,
    /// Set by services acting for a user (Nova binding, routers, floating IPs): the network need not be
    /// the caller's, and admin-only attributes may be given. HTTP requests never set it.
    pub skip_policy: bool,
}

impl Default for NewPort {
    fn default() -> Self {
        NewPort {
            network_id: String::new(),
            project_id: None,
            name: String::new(),
            description: String::new(),
            admin_state_up: true,
            mac_address: None,
            fixed_ips: None,
            device_id: String::new(),
            device_owner: String::new(),
            security_groups: None,
            allowed_address_pairs: vec![],
            port_security_enabled: None,
            binding: BindingRequest::default(),
            tags: vec![],
            skip_policy: false,
        }
    }
}

/// Changes to a port. Every `None` leaves the attribute as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PortUpdate {
    pub name: Option<String>,
    pub description: Option<String>,
    pub admin_state_up: Option<bool>,
    pub device_id: Option<String>,
    pub device_owner: Option<String>,
    pub fixed_ips: Option<Vec<IpRequest>>,
    pub security_groups: Option<Vec<String>>,
    pub allowed_address_pairs: Option<Vec<(String, String)>>,
    pub port_security_enabled: Option<bool>,
    pub mac_address: Option<String>,
    pub binding: BindingRequest,
    /// `If-Match: revision_number=N`.
    pub if_revision: Option<u64>,
    /// As in [`NewPort::skip_policy`].
    pub skip_policy: bool,
}

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

/// Whether `caller` may see the port: its own, one on its network, or any for admins.
fn visible(networks: &Networks, caller: &Caller, row: &PortRow) -> bool {
    caller.owns(&row.state.project_id)
        || networks
            .view
            .snapshot()
            .network(&row.state.network_id)
            .is_some_and(|n| caller.owns(&n.state.project_id))
}

fn find(networks: &Networks, caller: &Caller, id: &str) -> Result<PortRow, NeutronError> {
    let row = networks.view.snapshot().port(id).cloned();
    row.filter(|r| visible(networks, caller, r))
        .ok_or_else(|| NeutronError::port_not_found(id))
}

/// The binding a request asks for, with the VIF the (fake) datapath gives a bound port.
fn binding_of(old: &Binding, req: &BindingRequest) -> Binding {
    let mut b = old.clone();
    if let Some(h) = &req.host_id {
        b.host_id = h.clone();
    }
    if let Some(v) = &req.vnic_type {
        b.vnic_type = v.clone();
    }
    if let Some(p) = &req.profile {
        b.profile = if p.as_object().is_some_and(|o| o.is_empty()) || p.is_null() {
            String::new()
        } else {
            p.to_string()
        };
    }
    if b.host_id.is_empty() {
        b.vif_type = "unbound".into();
        b.vif_details = String::new();
    } else {
        b.vif_type = "ovs".into();
        b.vif_details = json!({"port_filter": true, "connectivity": "l2", "bridge_name": "br-int", "datapath_type": "system"}).to_string();
    }
    b
}

fn check_binding(req: &BindingRequest) -> Result<(), NeutronError> {
    if let Some(v) = &req.vnic_type {
        if !VNIC_TYPES.contains(&v.as_str()) {
            return Err(NeutronError::invalid_input(format!(
                "'{v}' is not in {VNIC_TYPES:?}"
            )));
        }
    }
    if let Some(p) = &req.profile {
        if !p.is_object() && !p.is_null() {
            return Err(NeutronError::invalid_input(format!(
                "'{p}' is not a dictionary"
            )));
        }
    }
    Ok(())
}

fn check_pairs(pairs: &[(String, String)]) -> Result<Vec<(String, String)>, NeutronError> {
    if pairs.len() > MAX_ADDRESS_PAIRS {
        return Err(NeutronError::bad_request(format!(
            "Exceeded maximum amount of allowed address pairs {MAX_ADDRESS_PAIRS}"
        )));
    }
    let mut out: Vec<(String, String)> = Vec::new();
    for (ip, mac) in pairs {
        let c = Cidr::parse_loose(ip).map_err(NeutronError::invalid_input)?;
        let ip = if c.prefix == c.bits() {
            ipam::fmt_ip(c.net, c.v6)
        } else {
            format!("{}/{}", ipam::fmt_ip(c.net, c.v6), c.prefix)
        };
        let mac = if mac.is_empty() {
            String::new()
        } else {
            ipam::canonical_mac(mac).ok_or_else(|| {
                NeutronError::invalid_input(format!("'{mac}' is not a valid MAC address"))
            })?
        };
        if out.contains(&(ip.clone(), mac.clone())) {
            return Err(NeutronError::bad_request(format!(
                "Request contains duplicate address pair: mac_address {mac} ip_address {ip}."
            )));
        }
        out.push((ip, mac));
    }
    Ok(out)
}

fn mac_candidates() -> Vec<String> {
    let mut rng = rand::thread_rng();
    (0..16).map(|_| ipam::generated_mac(rng.gen())).collect()
}

/// The addresses a `NetworkPortAllocated` gave.
fn allocated(events: &[NetworkEvent]) -> Option<(String, Vec<(String, String)>)> {
    events.iter().find_map(|e| match e {
        NetworkEvent::NetworkPortAllocated(a) => Some((
            a.mac_address.clone(),
            a.fixed_ips
                .iter()
                .map(|f| (f.subnet_id.clone(), f.ip_address.clone()))
                .collect(),
        )),
        _ => None,
    })
}

/// Create a port (the path of `POST /v2.0/ports`).
pub async fn create_port(
    networks: &Networks,
    caller: &Caller,
    req: NewPort,
) -> Result<PortRow, NeutronError> {
    let net = networks::facts(networks, caller, &req.network_id)?;
    let owns_network = caller.owns(&net.project_id);
    if !req.skip_policy && !owns_network && !net.shared {
        // Another project's external network: only its owner (or a router / floating IP) places ports.
        return Err(NeutronError::policy("create_port"));
    }
    let project_id = match &req.project_id {
        Some(p) if *p != caller.project_id && !caller.is_admin && !req.skip_policy => {
            return Err(NeutronError::bad_request(
                "Specifying 'project_id' or 'tenant_id' other than the authenticated project in request requires admin privileges",
            ))
        }
        Some(p) => p.clone(),
        None => caller.project_id.clone(),
    };
    let admin_fields = req.binding != BindingRequest::default();
    if admin_fields && !caller.is_admin && !req.skip_policy {
        return Err(NeutronError::policy("create_port:binding:host_id"));
    }
    check_binding(&req.binding)?;
    let pairs = check_pairs(&req.allowed_address_pairs)?;
    let port_security = req
        .port_security_enabled
        .unwrap_or(net.port_security_enabled);
    if !port_security && req.security_groups.as_ref().is_some_and(|g| !g.is_empty()) {
        return Err(NeutronError::bad_request(
            "Port security must be enabled and port must have an IP address in order to use security groups.",
        ));
    }
    if !port_security && !pairs.is_empty() {
        return Err(NeutronError::conflict(
            "AddressPairAndPortSecurityRequired",
            "Port Security must be enabled in order to have allowed address pairs on a port.",
        ));
    }
    let hook = networks.security_groups();
    if let (Some(h), Some(groups)) = (&hook, &req.security_groups) {
        if !groups.is_empty() {
            h.validate(networks, caller, &project_id, groups).await?;
        }
    }
    let port_id = new_id();
    let alloc = NetworkCommand::AllocatePort {
        port_id: port_id.clone(),
        mac: req.mac_address.clone(),
        mac_candidates: mac_candidates(),
        fixed_ips: req.fixed_ips.clone(),
        device_owner: req.device_owner.clone(),
    };
    // Decide against the network's and the usage's current state first: a refusal records nothing.
    let (state, _) = networks.networks.load(&req.network_id).await?;
    state
        .decide(&alloc)
        .map_err(|e| not_found_is_network(e.into(), &req.network_id))?;
    let holder = format!("port:{port_id}");
    check_quota(networks, &project_id, "port", &holder).await?;
    let security_groups = match (&req.security_groups, &hook) {
        (Some(g), _) => g.clone(),
        (None, Some(h)) if port_security => h.default_groups(networks, caller, &project_id).await?,
        (None, _) => vec![],
    };
    // The addresses, then the quota: a request that loses the race for the last addresses is refused by
    // the network's append and records nothing; one that loses the race for the last quota unit gives its
    // addresses back.
    let out = networks
        .networks
        .execute(&req.network_id, alloc, caller.meta.clone())
        .await
        .map_err(|e| not_found_is_network(e.into(), &req.network_id))?;
    if let Err(e) = reserve_quota(networks, &caller.meta, &project_id, "port", &holder).await {
        release_addresses(networks, &caller.meta, &req.network_id, &port_id).await;
        return Err(e);
    }
    let (mac, fixed_ips) = allocated(&out.events).unwrap_or_default();
    let spec = PortSpec {
        project_id: project_id.clone(),
        network_id: req.network_id.clone(),
        name: req.name,
        description: req.description,
        admin_state_up: req.admin_state_up,
        mac_address: mac,
        fixed_ips,
        device_id: req.device_id,
        device_owner: req.device_owner,
        security_groups,
        allowed_address_pairs: pairs,
        port_security_enabled: port_security,
        binding: binding_of(&Binding::default(), &req.binding),
        tags: req.tags,
    };
    if let Err(e) = networks
        .run(
            &networks.ports,
            &port_id,
            PortCommand::Create(spec),
            &caller.meta,
        )
        .await
    {
        release_addresses(networks, &caller.meta, &req.network_id, &port_id).await;
        networks
            .undo_quota(&project_id, &holder, &caller.meta)
            .await;
        return Err(e.into());
    }
    networks
        .view
        .snapshot()
        .port(&port_id)
        .cloned()
        .ok_or_else(|| NeutronError::port_not_found(&port_id))
}

fn not_found_is_network(e: NeutronError, network_id: &str) -> NeutronError {
    if e.kind == "NetworkNotFound" {
        NeutronError::network_not_found(network_id)
    } else {
        e
    }
}

async fn release_addresses(networks: &Networks, meta: &Metadata, network_id: &str, port_id: &str) {
    let cmd = NetworkCommand::ReleasePort {
        port_id: port_id.to_string(),
    };
    if let Err(e) = networks
        .run(&networks.networks, network_id, cmd, meta)
        .await
    {
        // A deleted network has already let go of everything.
        if !matches!(
            e,
            strata_actors::CommandError::Domain(strata_actors::DomainError::NotFound { .. })
        ) {
            tracing::error!(port_id, network_id, error = %e, "releasing a port's addresses failed");
        }
    }
}

/// Update a port (the path of `PUT /v2.0/ports/{id}`).
pub async fn update_port(
    networks: &Networks,
    caller: &Caller,
    id: &str,
    u: PortUpdate,
) -> Result<PortRow, NeutronError> {
    let row = find(networks, caller, id)?;
    let p = &row.state;
    if u.binding != BindingRequest::default() && !caller.is_admin && !u.skip_policy {
        return Err(NeutronError::policy("update_port:binding:host_id"));
    }
    check_binding(&u.binding)?;
    if let Some(mac) = &u.mac_address {
        if ipam::canonical_mac(mac).as_deref() != Some(p.mac_address.as_str()) {
            return Err(NeutronError::bad_request(
                "Cannot update read-only attribute mac_address",
            ));
        }
    }
    let pairs = match &u.allowed_address_pairs {
        Some(v) => Some(check_pairs(v)?),
        None => None,
    };
    let port_security = u.port_security_enabled.unwrap_or(p.port_security_enabled);
    let groups_after = u.security_groups.clone().unwrap_or_else(|| {
        if u.port_security_enabled == Some(false) {
            vec![]
        } else {
            p.security_groups.clone()
        }
    });
    let pairs_after = pairs
        .clone()
        .unwrap_or_else(|| p.allowed_address_pairs.clone());
    if !port_security && u.security_groups.as_ref().is_some_and(|g| !g.is_empty()) {
        return Err(NeutronError::bad_request(
            "Port security must be enabled and port must have an IP address in order to use security groups.",
        ));
    }
    if !port_security && !pairs_after.is_empty() {
        return Err(NeutronError::conflict(
            "AddressPairAndPortSecurityRequired",
            "Port Security must be enabled in order to have allowed address pairs on a port.",
        ));
    }
    if let (Some(h), Some(groups)) = (networks.security_groups(), &u.security_groups) {
        if !groups.is_empty() {
            h.validate(networks, caller, &p.project_id, groups).await?;
        }
    }
    // Refuse a stale If-Match before anything is recorded.
    if let Some(w) = u.if_revision {
        if w != p.revision {
            return Err(NeutronError::from(
                strata_actors::DomainError::Conflict(format!(
                    "RevisionNumberConstraintFailed: the revision number is {}, not {w} as the request expects",
                    p.revision
                )),
            ));
        }
    }
    let realloc = u
        .fixed_ips
        .as_ref()
        .map(|ips| NetworkCommand::ReallocatePort {
            port_id: id.to_string(),
            fixed_ips: ips.clone(),
        });
    if let Some(cmd) = &realloc {
        let (state, _) = networks.networks.load(&p.network_id).await?;
        state.decide(cmd)?;
    }
    let changes = PortChanges {
        name: u.name.clone(),
        description: u.description.clone(),
        admin_state_up: u.admin_state_up,
        device_id: u.device_id.clone(),
        device_owner: u.device_owner.clone(),
        security_groups: (u.security_groups.is_some() || u.port_security_enabled == Some(false))
            .then_some(groups_after),
        allowed_address_pairs: pairs,
        port_security_enabled: u.port_security_enabled,
    };
    networks
        .run(
            &networks.ports,
            id,
            PortCommand::Update {
                changes,
                if_revision: u.if_revision,
            },
            &caller.meta,
        )
        .await?;
    if let Some(owner) = &u.device_owner {
        let cmd = NetworkCommand::SetPortOwner {
            port_id: id.to_string(),
            device_owner: owner.clone(),
        };
        networks
            .run(&networks.networks, &p.network_id, cmd, &caller.meta)
            .await?;
    }
    if let Some(cmd) = realloc {
        let out = networks
            .run(&networks.networks, &p.network_id, cmd, &caller.meta)
            .await?;
        let ips: Vec<(String, String)> = out
            .events
            .iter()
            .find_map(|e| match e {
                NetworkEvent::NetworkPortReallocated(r) => Some(
                    r.fixed_ips
                        .iter()
                        .map(|f| (f.subnet_id.clone(), f.ip_address.clone()))
                        .collect(),
                ),
                _ => None,
            })
            .unwrap_or_else(|| p.fixed_ips.clone());
        networks
            .run(
                &networks.ports,
                id,
                PortCommand::SetFixedIps(ips),
                &caller.meta,
            )
            .await?;
    }
    if u.binding != BindingRequest::default() {
        let b = binding_of(&p.binding, &u.binding);
        networks
            .run(&networks.ports, id, PortCommand::Bind(b), &caller.meta)
            .await?;
    }
    networks
        .view
        .snapshot()
        .port(id)
        .cloned()
        .ok_or_else(|| NeutronError::port_not_found(id))
}

/// Bind a port to a compute host for a server (Nova's step): `binding:host_id`, `device_id`,
/// `device_owner` (`compute:<zone>`) in one call; the port becomes ACTIVE. An empty `host_id` unbinds it
/// (and clears the device when `device_id` is empty too).
pub async fn bind_port(
    networks: &Networks,
    caller: &Caller,
    port_id: &str,
    host_id: &str,
    device_id: &str,
    device_owner: &str,
) -> Result<PortRow, NeutronError> {
    update_port(
        networks,
        caller,
        port_id,
        PortUpdate {
            device_id: Some(device_id.to_string()),
            device_owner: Some(device_owner.to_string()),
            binding: BindingRequest {
                host_id: Some(host_id.to_string()),
                ..Default::default()
            },
            skip_policy: true,
            ..Default::default()
        },
    )
    .await
}

/// Delete a port `caller` may see (the path of `DELETE /v2.0/ports/{id}`): the port record, then its
/// addresses, then its quota.
pub async fn delete_port(
    networks: &Networks,
    caller: &Caller,
    id: &str,
) -> Result<(), NeutronError> {
    find(networks, caller, id)?;
    delete_port_unchecked(networks, &caller.meta, id).await
}

/// Delete a port without a policy check (network delete removing its DHCP ports; other services).
pub(super) async fn delete_port_unchecked(
    networks: &Networks,
    meta: &Metadata,
    id: &str,
) -> Result<(), NeutronError> {
    let out = networks
        .run(&networks.ports, id, PortCommand::Delete, meta)
        .await
        .map_err(|e| match NeutronError::from(e) {
            e if e.status == actix_web::http::StatusCode::NOT_FOUND => {
                NeutronError::port_not_found(id)
            }
            e => e,
        })?;
    let p = out.state;
    release_addresses(networks, meta, &p.network_id, id).await;
    release_quota(networks, meta, &p.project_id, &format!("port:{id}")).await;
    Ok(())
}

/// Give back what interrupted requests left behind (run at start, before the API listens): addresses held
/// for ports that do not exist (a crash between the allocation and `PortCreated`, or between `PortDeleted`
/// and the release), and port, network and subnet quota held for resources that do not exist. Returns how
/// many were released.
pub async fn sweep_leftovers(networks: &Networks) -> Result<usize, NeutronError> {
    let meta = Metadata::system(format!("sweep-{}", uuid::Uuid::new_v4()));
    let (orphans, holders) = {
        let view = networks.view.snapshot();
        let orphans: Vec<(String, String)> = view
            .networks
            .values()
            .flat_map(|n| {
                n.state
                    .ports
                    .keys()
                    .map(|p| p.to_string())
                    .filter(|p| view.port(p).is_none())
                    .map(|p| (n.id.clone(), p))
                    .collect::<Vec<_>>()
            })
            .collect();
        let holders: Vec<(String, String)> = view
            .usage
            .iter()
            .flat_map(|(project, u)| {
                u.holders
                    .keys()
                    .filter(|h| match h.split_once(':') {
                        Some(("port", id)) => view.port(id).is_none(),
                        Some(("network", id)) => view.network(id).is_none(),
                        Some(("subnet", id)) => view.subnet(id).is_none(),
                        _ => false,
                    })
                    .map(|h| (project.clone(), h.clone()))
                    .collect::<Vec<_>>()
            })
            .collect();
        (orphans, holders)
    };
    for (network_id, port_id) in &orphans {
        tracing::warn!(
            network_id,
            port_id,
            "releasing the addresses of a port that does not exist"
        );
        release_addresses(networks, &meta, network_id, port_id).await;
    }
    for (project, holder) in &holders {
        tracing::warn!(project, holder, "releasing network quota held for nothing");
        release_quota(networks, &meta, project, holder).await;
    }
    Ok(orphans.len() + holders.len())
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
    caller.enforce("create_port")?;
    let m = body_object(&body, "port")?;
    check_keys(&m, CREATE_KEYS)?;
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
    let v = list::select_fields(port_json(&row, caller.is_admin), &list::fields_of(&req));
    Ok(HttpResponse::Ok().json(json!({ "port": v })))
}

async fn update(
    req: HttpRequest,
    networks: web::Data<Networks>,
    caller: Caller,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, NeutronError> {
    caller.enforce("update_port")?;
    let if_revision = if_match_revision(&req)?;
    let m = body_object(&body, "port")?;
    find(&networks, &caller, &id)?;
    for k in m.keys() {
        if !UPDATE_KEYS.contains(&k.as_str()) {
            return Err(NeutronError::bad_request(format!(
                "Cannot update read-only attribute {k}"
            )));
        }
    }
    let u = PortUpdate {
        name: opt_string(&m, "name", 255)?,
        description: opt_string(&m, "description", 255)?,
        admin_state_up: opt_bool(&m, "admin_state_up")?,
        device_id: opt_string(&m, "device_id", 255)?,
        device_owner: opt_string(&m, "device_owner", 255)?,
        fixed_ips: match m.get("fixed_ips") {
            None => None,
            Some(Value::Null) => Some(vec![]),
            Some(v) => Some(fixed_ips_of(v)?),
        },
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

/// Tags of ports (their own streams).
pub(super) fn port_tags() -> super::tags::StreamTags<strata_actors::network::Port> {
    super::tags::StreamTags {
        collection: "ports",
        find: |networks, caller, id| Ok(find(networks, caller, id)?.state.tags),
        repo: |networks| &networks.ports,
        command: PortCommand::SetTags,
    }
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
