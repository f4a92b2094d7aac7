//! `/v2.0/networks`: create, list, show, update, delete; the admin bootstrap of the external network `public`.
//!
//! Tenant networks are `vxlan` with a segmentation id from the `sequence-network-vni` counter (never
//! reused) and an MTU of 1450 (1500 less the 50 bytes of VXLAN encapsulation, as Neutron computes it for
//! its default tunnel type); `flat` and `vlan` networks given by admins get 1500.

use serde_json::{json, Map, Value};
use strata_actors::compute::{Next, Sequence};
use strata_actors::network::{NetworkCommand, NetworkSpec, OwnerKind};
use strata_actors::Repository;
use strata_events::Metadata;
use strata_projections::network::{NetworkRow, BOOTSTRAP_CORRELATION};

use super::quotas::{release_quota, reserve_quota};
use super::{new_id, Caller, NetworkError, Networks};

/// The MTU of a network of `network_type` (Neutron: the 1500-byte physical MTU less the encapsulation).
pub fn default_mtu(network_type: &str) -> u32 {
    match network_type {
        "vxlan" => 1450,
        "geneve" => 1442,
        "gre" => 1458,
        _ => 1500,
    }
}

pub const NETWORK_TYPES: &[&str] = &["flat", "vlan", "vxlan", "geneve", "gre", "local"];

/// Whether `caller` may see the network: its own, shared, external, or any for admins.
pub fn visible(caller: &Caller, row: &NetworkRow) -> bool {
    caller.owns(&row.state.project_id) || row.state.shared || row.state.external
}

/// The network `id` as `caller` may see it (404 otherwise).
pub fn find(networks: &Networks, caller: &Caller, id: &str) -> Result<NetworkRow, NetworkError> {
    networks
        .view
        .snapshot()
        .network(id)
        .filter(|r| visible(caller, r))
        .cloned()
        .ok_or_else(|| NetworkError::network_not_found(id))
}

/// What a port create needs of its network, without copying the network's allocations.
pub struct NetworkFacts {
    pub project_id: String,
    pub shared: bool,
    pub port_security_enabled: bool,
}

/// [`NetworkFacts`] of network `id` as `caller` may see it (404 otherwise).
pub fn facts(networks: &Networks, caller: &Caller, id: &str) -> Result<NetworkFacts, NetworkError> {
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
        .ok_or_else(|| NetworkError::network_not_found(id))
}

/// The network `id` if `caller` may change it: 404 when invisible, 403 when visible but not its own.
pub fn owned(
    networks: &Networks,
    caller: &Caller,
    id: &str,
    action: &str,
) -> Result<NetworkRow, NetworkError> {
    let row = find(networks, caller, id)?;
    if !caller.owns(&row.state.project_id) {
        return Err(NetworkError::policy(action));
    }
    Ok(row)
}

/// Who a new resource belongs to: the caller's project, or (admins only) the `project_id`/`tenant_id` given.
pub fn owner_of(caller: &Caller, m: &Map<String, Value>) -> Result<String, NetworkError> {
    let given = match (m.get("project_id"), m.get("tenant_id")) {
        (Some(Value::String(a)), Some(Value::String(b))) if a != b => {
            return Err(NetworkError::bad_request(
                "'project_id' and 'tenant_id' do not match",
            ))
        }
        (Some(Value::String(a)), _) | (None, Some(Value::String(a))) => Some(a.clone()),
        (None, None) => None,
        (Some(v), _) | (_, Some(v)) => {
            return Err(NetworkError::invalid_input(format!(
                "'{v}' is not a valid project id"
            )))
        }
    };
    match given {
        Some(p) if p != caller.project_id && !caller.is_admin => Err(NetworkError::bad_request(
            "Specifying 'project_id' or 'tenant_id' other than the authenticated project in request requires admin privileges",
        )),
        Some(p) if p.is_empty() => Err(NetworkError::invalid_input("'' is not a valid project id")),
        Some(p) => Ok(p),
        None => Ok(caller.project_id.clone()),
    }
}

/// What a network create asks, validated (nothing recorded yet).
pub struct NetworkRequest {
    pub spec: NetworkSpec,
    /// A tenant vxlan network: its segmentation id is drawn at create time.
    pub needs_vni: bool,
}

/// Record a validated network: quota first (refused: nothing recorded), then the segmentation id, then
/// the network.
pub async fn create_network(
    networks: &Networks,
    meta: &Metadata,
    id: &str,
    mut req: NetworkRequest,
    vni: &Repository<Sequence>,
) -> Result<NetworkRow, NetworkError> {
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
        .ok_or_else(|| NetworkError::network_not_found(id))
}

/// Delete a network: its auto-deletable ports (DHCP) first, then the network itself (refused while other
/// ports are on it), then its quota and its subnets' quota.
pub async fn delete_network(
    networks: &Networks,
    caller: &Caller,
    id: &str,
) -> Result<(), NetworkError> {
    let row = owned(networks, caller, id, "delete_network")?;
    if let Some((port, _)) = row.state.ports_in_use().next() {
        return Err(NetworkError::conflict(
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
            let e = NetworkError::from(e);
            if e.kind() == "NetworkInUse" {
                NetworkError::conflict(
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
) -> Result<String, NetworkError> {
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
    let row = row.ok_or_else(|| NetworkError::network_not_found(&id))?;
    let spec = super::subnets::parse_subnet(&row, admin_project, &sm)?;
    super::subnets::create_subnet(networks, &meta, &id, &new_id(), spec).await?;
    Ok(id)
}
