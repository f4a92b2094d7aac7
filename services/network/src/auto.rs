//! The project's default network for Nova's `networks: "auto"` (Neutron's auto-allocated topology, without
//! the router): a network `auto_allocated_network` with an IPv4 subnet, made once per project with ids
//! derived from the project, so every later "auto" boot finds the same one.

use serde_json::{json, Map};
use sha2::{Digest, Sha256};
use strata_actors::network::NetworkSpec;
use strata_events::Metadata;
use tokio::sync::Mutex;

use super::networks::{create_network, NetworkRequest};
use super::{NetworkError, Networks};

/// The auto network's name and its subnet's range.
pub const AUTO_NETWORK_NAME: &str = "auto_allocated_network";

pub const AUTO_SUBNET_CIDR: &str = "10.0.0.0/24";

/// One auto allocation at a time in this process: the second of two racing boots finds the first's network
/// instead of reserving quota for the same id.
pub static ALLOCATING: Mutex<()> = Mutex::const_new(());

/// A UUID-shaped id derived from `kind` and the project.
pub fn derived_id(kind: &str, project_id: &str) -> String {
    let h = hex::encode(Sha256::digest(format!("{kind}:{project_id}").as_bytes()));
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The network a server of `project_id` gets with `networks: "auto"`: the project's only own network (or,
/// having none, the only shared one); with none at all, the project's auto network, made now. Several
/// candidates: 409, as Nova answers.
pub async fn auto_network(
    networks: &Networks,
    project_id: &str,
    meta: &Metadata,
) -> Result<String, NetworkError> {
    let pick = |networks: &Networks| -> Result<Option<String>, NetworkError> {
        let view = networks.view.snapshot();
        let usable = |external: bool, deleted: bool| !external && !deleted;
        let own: Vec<&String> = view
            .networks
            .values()
            .filter(|n| {
                n.state.project_id == project_id && usable(n.state.external, n.state.deleted)
            })
            .map(|n| &n.id)
            .collect();
        let shared: Vec<&String> = view
            .networks
            .values()
            .filter(|n| {
                n.state.shared
                    && n.state.project_id != project_id
                    && usable(n.state.external, n.state.deleted)
            })
            .map(|n| &n.id)
            .collect();
        match (own.as_slice(), shared.as_slice()) {
            ([one], _) | ([], [one]) => Ok(Some((*one).clone())),
            ([], []) => Ok(None),
            _ => Err(NetworkError::conflict(
                "MultipleNetworks",
                "Multiple possible networks found, use a Network ID to be more specific.",
            )),
        }
    };
    if let Some(id) = pick(networks)? {
        return Ok(id);
    }
    let _one_at_a_time = ALLOCATING.lock().await;
    let id = derived_id("auto-network", project_id);
    let existing = networks.view.snapshot().network(&id).cloned();
    if existing.is_none() {
        if let Some(other) = pick(networks)? {
            return Ok(other);
        }
        let spec = NetworkSpec {
            project_id: project_id.to_string(),
            name: AUTO_NETWORK_NAME.into(),
            description: String::new(),
            admin_state_up: true,
            shared: false,
            external: false,
            mtu: super::networks::default_mtu("vxlan"),
            network_type: "vxlan".into(),
            physical_network: String::new(),
            segmentation_id: None,
            availability_zone_hints: vec![],
            port_security_enabled: true,
            tags: vec![],
        };
        let req = NetworkRequest {
            spec,
            needs_vni: true,
        };
        create_network(networks, meta, &id, req, &networks.sequences()).await?;
    }
    let row = networks
        .view
        .snapshot()
        .network(&id)
        .cloned()
        .ok_or_else(|| NetworkError::network_not_found(&id))?;
    if row.state.subnets.is_empty() {
        let mut m = Map::new();
        m.insert("name".into(), json!("auto_allocated_subnet"));
        m.insert("ip_version".into(), json!(4));
        m.insert("cidr".into(), json!(AUTO_SUBNET_CIDR));
        let spec = super::subnets::parse_subnet(&row, project_id, &m)?;
        let subnet_id = derived_id("auto-subnet", project_id);
        super::subnets::create_subnet(networks, meta, &id, &subnet_id, spec).await?;
    }
    Ok(id)
}
