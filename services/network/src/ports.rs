//! `/v2.0/ports`, and the plain functions other services use: [`create_port`], [`update_port`],
//! [`bind_port`], [`delete_port`].
//!
//! A port create decides its MAC and fixed IPs against the network's current state first (refused: nothing
//! recorded), reserves the port quota (refused: nothing recorded), takes the addresses on the network's
//! stream (one append: a lost race is refused there and the quota given back), then records the port.

use rand::Rng;
use serde_json::{json, Value};
use strata_actors::network::ipam::{self, Cidr};
use strata_actors::network::{
    Binding, IpRequest, NetworkCommand, PortChanges, PortCommand, PortSpec,
};
use strata_actors::Aggregate;
use strata_events::Metadata;
use strata_projections::network::PortRow;
use strata_proto::NetworkEvent;

use super::networks::{self};
use super::quotas::{check_quota, release_quota, reserve_quota};
use super::{new_id, Caller, NetworkError, Networks};

pub const VNIC_TYPES: &[&str] = &[
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

pub const MAX_ADDRESS_PAIRS: usize = 10;

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

/// Whether `caller` may see the port: its own, one on its network, or any for admins.
pub fn visible(networks: &Networks, caller: &Caller, row: &PortRow) -> bool {
    caller.owns(&row.state.project_id)
        || networks
            .view
            .snapshot()
            .network(&row.state.network_id)
            .is_some_and(|n| caller.owns(&n.state.project_id))
}

pub fn find(networks: &Networks, caller: &Caller, id: &str) -> Result<PortRow, NetworkError> {
    let row = networks.view.snapshot().port(id).cloned();
    row.filter(|r| visible(networks, caller, r))
        .ok_or_else(|| NetworkError::port_not_found(id))
}

/// The binding a request asks for, with the VIF the (fake) datapath gives a bound port.
pub fn binding_of(old: &Binding, req: &BindingRequest) -> Binding {
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

pub fn check_binding(req: &BindingRequest) -> Result<(), NetworkError> {
    if let Some(v) = &req.vnic_type {
        if !VNIC_TYPES.contains(&v.as_str()) {
            return Err(NetworkError::invalid_input(format!(
                "'{v}' is not in {VNIC_TYPES:?}"
            )));
        }
    }
    if let Some(p) = &req.profile {
        if !p.is_object() && !p.is_null() {
            return Err(NetworkError::invalid_input(format!(
                "'{p}' is not a dictionary"
            )));
        }
    }
    Ok(())
}

pub fn check_pairs(pairs: &[(String, String)]) -> Result<Vec<(String, String)>, NetworkError> {
    if pairs.len() > MAX_ADDRESS_PAIRS {
        return Err(NetworkError::bad_request(format!(
            "Exceeded maximum amount of allowed address pairs {MAX_ADDRESS_PAIRS}"
        )));
    }
    let mut out: Vec<(String, String)> = Vec::new();
    for (ip, mac) in pairs {
        let c = Cidr::parse_loose(ip).map_err(NetworkError::invalid_input)?;
        let ip = if c.prefix == c.bits() {
            ipam::fmt_ip(c.net, c.v6)
        } else {
            format!("{}/{}", ipam::fmt_ip(c.net, c.v6), c.prefix)
        };
        let mac = if mac.is_empty() {
            String::new()
        } else {
            ipam::canonical_mac(mac).ok_or_else(|| {
                NetworkError::invalid_input(format!("'{mac}' is not a valid MAC address"))
            })?
        };
        if out.contains(&(ip.clone(), mac.clone())) {
            return Err(NetworkError::bad_request(format!(
                "Request contains duplicate address pair: mac_address {mac} ip_address {ip}."
            )));
        }
        out.push((ip, mac));
    }
    Ok(out)
}

pub fn mac_candidates() -> Vec<String> {
    let mut rng = rand::thread_rng();
    (0..16).map(|_| ipam::generated_mac(rng.gen())).collect()
}

/// The addresses a `NetworkPortAllocated` gave.
pub fn allocated(events: &[NetworkEvent]) -> Option<(String, Vec<(String, String)>)> {
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
) -> Result<PortRow, NetworkError> {
    let net = networks::facts(networks, caller, &req.network_id)?;
    let owns_network = caller.owns(&net.project_id);
    if !req.skip_policy && !owns_network && !net.shared {
        // Another project's external network: only its owner (or a router / floating IP) places ports.
        return Err(NetworkError::policy("create_port"));
    }
    let project_id = match &req.project_id {
        Some(p) if *p != caller.project_id && !caller.is_admin && !req.skip_policy => {
            return Err(NetworkError::bad_request(
                "Specifying 'project_id' or 'tenant_id' other than the authenticated project in request requires admin privileges",
            ))
        }
        Some(p) => p.clone(),
        None => caller.project_id.clone(),
    };
    let admin_fields = req.binding != BindingRequest::default();
    if admin_fields && !caller.is_admin && !req.skip_policy {
        return Err(NetworkError::policy("create_port:binding:host_id"));
    }
    check_binding(&req.binding)?;
    let pairs = check_pairs(&req.allowed_address_pairs)?;
    let port_security = req
        .port_security_enabled
        .unwrap_or(net.port_security_enabled);
    if !port_security && req.security_groups.as_ref().is_some_and(|g| !g.is_empty()) {
        return Err(NetworkError::bad_request(
            "Port security must be enabled and port must have an IP address in order to use security groups.",
        ));
    }
    if !port_security && !pairs.is_empty() {
        return Err(NetworkError::conflict(
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
        .ok_or_else(|| NetworkError::port_not_found(&port_id))
}

pub fn not_found_is_network(e: NetworkError, network_id: &str) -> NetworkError {
    if e.kind() == "NetworkNotFound" {
        NetworkError::network_not_found(network_id)
    } else {
        e
    }
}

pub async fn release_addresses(
    networks: &Networks,
    meta: &Metadata,
    network_id: &str,
    port_id: &str,
) {
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
) -> Result<PortRow, NetworkError> {
    let row = find(networks, caller, id)?;
    let p = &row.state;
    if u.binding != BindingRequest::default() && !caller.is_admin && !u.skip_policy {
        return Err(NetworkError::policy("update_port:binding:host_id"));
    }
    check_binding(&u.binding)?;
    if let Some(mac) = &u.mac_address {
        if ipam::canonical_mac(mac).as_deref() != Some(p.mac_address.as_str()) {
            return Err(NetworkError::bad_request(
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
        return Err(NetworkError::bad_request(
            "Port security must be enabled and port must have an IP address in order to use security groups.",
        ));
    }
    if !port_security && !pairs_after.is_empty() {
        return Err(NetworkError::conflict(
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
            return Err(NetworkError::from(
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
        .ok_or_else(|| NetworkError::port_not_found(id))
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
) -> Result<PortRow, NetworkError> {
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
) -> Result<(), NetworkError> {
    find(networks, caller, id)?;
    delete_port_unchecked(networks, &caller.meta, id).await
}

/// Delete a port without a policy check (network delete removing its DHCP ports; other services).
pub async fn delete_port_unchecked(
    networks: &Networks,
    meta: &Metadata,
    id: &str,
) -> Result<(), NetworkError> {
    let out = networks
        .run(&networks.ports, id, PortCommand::Delete, meta)
        .await
        .map_err(|e| match NetworkError::from(e) {
            e if e.is_not_found() => NetworkError::port_not_found(id),
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
pub async fn sweep_leftovers(networks: &Networks) -> Result<usize, NetworkError> {
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

/// Tags of ports (their own streams).
pub fn port_tags() -> super::tags::StreamTags<strata_actors::network::Port> {
    super::tags::StreamTags {
        collection: "ports",
        find: |networks, caller, id| Ok(find(networks, caller, id)?.state.tags),
        repo: |networks| &networks.ports,
        command: PortCommand::SetTags,
    }
}
