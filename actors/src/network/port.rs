//! The `Port` aggregate (stream `port-<uuid>`): a Neutron port's own attributes. Its MAC and fixed IPs are
//! allocated on its network's stream first ([`super::Network`]) and recorded here as the port's record.

use serde::{Deserialize, Serialize};
use strata_proto::network as pb;
use strata_proto::NetworkEvent as E;

use super::net::revision_mismatch;
use crate::aggregate::{Aggregate, DomainError};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Binding {
    pub host_id: String,
    pub vnic_type: String,
    /// binding:profile as JSON text ("" = {}).
    pub profile: String,
    pub vif_type: String,
    /// binding:vif_details as JSON text ("" = {}).
    pub vif_details: String,
}

impl Binding {
    fn from_pb(b: &Option<pb::PortBinding>) -> Binding {
        b.as_ref()
            .map(|b| Binding {
                host_id: b.host_id.clone(),
                vnic_type: b.vnic_type.clone(),
                profile: b.profile_json.clone(),
                vif_type: b.vif_type.clone(),
                vif_details: b.vif_details_json.clone(),
            })
            .unwrap_or_default()
    }

    fn to_pb(&self) -> pb::PortBinding {
        pb::PortBinding {
            host_id: self.host_id.clone(),
            vnic_type: self.vnic_type.clone(),
            profile_json: self.profile.clone(),
            vif_type: self.vif_type.clone(),
            vif_details_json: self.vif_details.clone(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Port {
    pub exists: bool,
    pub deleted: bool,
    pub project_id: String,
    pub network_id: String,
    pub name: String,
    pub description: String,
    pub admin_state_up: bool,
    pub mac_address: String,
    /// (subnet id, address)
    pub fixed_ips: Vec<(String, String)>,
    pub device_id: String,
    pub device_owner: String,
    pub security_groups: Vec<String>,
    /// (ip_address or cidr, mac_address)
    pub allowed_address_pairs: Vec<(String, String)>,
    pub port_security_enabled: bool,
    pub binding: Binding,
    pub tags: Vec<String>,
    /// The stream's version: Neutron's revision_number.
    pub revision: u64,
}

impl Port {
    pub fn is_live(&self) -> bool {
        self.exists && !self.deleted
    }

    /// Neutron's port status: ACTIVE once a compute port is bound to a host and up, DOWN otherwise.
    pub fn status(&self) -> &'static str {
        if self.admin_state_up
            && !self.binding.host_id.is_empty()
            && self.device_owner.starts_with("compute:")
        {
            "ACTIVE"
        } else {
            "DOWN"
        }
    }
}

/// What a new port is; its MAC and fixed IPs come from the network's allocation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PortSpec {
    pub project_id: String,
    pub network_id: String,
    pub name: String,
    pub description: String,
    pub admin_state_up: bool,
    pub mac_address: String,
    pub fixed_ips: Vec<(String, String)>,
    pub device_id: String,
    pub device_owner: String,
    pub security_groups: Vec<String>,
    pub allowed_address_pairs: Vec<(String, String)>,
    pub port_security_enabled: bool,
    pub binding: Binding,
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct PortChanges {
    pub name: Option<String>,
    pub description: Option<String>,
    pub admin_state_up: Option<bool>,
    pub device_id: Option<String>,
    pub device_owner: Option<String>,
    pub security_groups: Option<Vec<String>>,
    pub allowed_address_pairs: Option<Vec<(String, String)>>,
    pub port_security_enabled: Option<bool>,
}

impl PortChanges {
    pub fn is_empty(&self) -> bool {
        *self == PortChanges::default()
    }
}

// A command is built once and moved to its actor: the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum PortCommand {
    Create(PortSpec),
    Update {
        changes: PortChanges,
        if_revision: Option<u64>,
    },
    SetFixedIps(Vec<(String, String)>),
    Bind(Binding),
    SetTags(Vec<String>),
    Delete,
}

fn pairs_pb(v: &[(String, String)]) -> Vec<pb::AddressPair> {
    v.iter()
        .map(|(ip, mac)| pb::AddressPair {
            ip_address: ip.clone(),
            mac_address: mac.clone(),
        })
        .collect()
}

fn fixed_pb(v: &[(String, String)]) -> Vec<pb::FixedIp> {
    v.iter()
        .map(|(s, a)| pb::FixedIp {
            subnet_id: s.clone(),
            ip_address: a.clone(),
        })
        .collect()
}

fn fixed_from(v: &[pb::FixedIp]) -> Vec<(String, String)> {
    v.iter()
        .map(|f| (f.subnet_id.clone(), f.ip_address.clone()))
        .collect()
}

fn pairs_from(v: &[pb::AddressPair]) -> Vec<(String, String)> {
    v.iter()
        .map(|p| (p.ip_address.clone(), p.mac_address.clone()))
        .collect()
}

impl Aggregate for Port {
    type Command = PortCommand;
    type Event = E;
    const KIND: &'static str = "port";

    fn decide(&self, cmd: &PortCommand) -> Result<Vec<E>, DomainError> {
        if !matches!(cmd, PortCommand::Create(_)) && !self.is_live() {
            return Err(DomainError::NotFound {
                kind: "port",
                id: String::new(),
            });
        }
        match cmd {
            PortCommand::Create(s) => {
                if self.exists {
                    return Err(DomainError::AlreadyExists {
                        kind: "port",
                        detail: "the port exists".into(),
                    });
                }
                Ok(vec![E::PortCreated(pb::PortCreated {
                    project_id: s.project_id.clone(),
                    network_id: s.network_id.clone(),
                    name: s.name.clone(),
                    description: s.description.clone(),
                    admin_state_up: s.admin_state_up,
                    mac_address: s.mac_address.clone(),
                    fixed_ips: fixed_pb(&s.fixed_ips),
                    device_id: s.device_id.clone(),
                    device_owner: s.device_owner.clone(),
                    security_groups: s.security_groups.clone(),
                    allowed_address_pairs: pairs_pb(&s.allowed_address_pairs),
                    port_security_enabled: s.port_security_enabled,
                    binding: Some(s.binding.to_pb()),
                    tags: s.tags.clone(),
                })])
            }
            PortCommand::Update {
                changes: c,
                if_revision,
            } => {
                if let Some(w) = if_revision {
                    if *w != self.revision {
                        return Err(revision_mismatch(self.revision, *w));
                    }
                }
                let text = |new: &Option<String>, old: &str| {
                    new.as_ref().filter(|n| n.as_str() != old).cloned()
                };
                let sg = c
                    .security_groups
                    .as_ref()
                    .filter(|g| **g != self.security_groups);
                let pairs = c
                    .allowed_address_pairs
                    .as_ref()
                    .filter(|p| **p != self.allowed_address_pairs);
                let e = pb::PortUpdated {
                    name: text(&c.name, &self.name),
                    description: text(&c.description, &self.description),
                    admin_state_up: c.admin_state_up.filter(|v| *v != self.admin_state_up),
                    device_id: text(&c.device_id, &self.device_id),
                    device_owner: text(&c.device_owner, &self.device_owner),
                    set_security_groups: sg.is_some(),
                    security_groups: sg.cloned().unwrap_or_default(),
                    set_allowed_address_pairs: pairs.is_some(),
                    allowed_address_pairs: pairs.map(|p| pairs_pb(p)).unwrap_or_default(),
                    port_security_enabled: c
                        .port_security_enabled
                        .filter(|v| *v != self.port_security_enabled),
                };
                if e == pb::PortUpdated::default() {
                    return Ok(vec![]);
                }
                Ok(vec![E::PortUpdated(e)])
            }
            PortCommand::SetFixedIps(ips) => {
                if *ips == self.fixed_ips {
                    return Ok(vec![]);
                }
                Ok(vec![E::PortFixedIpsChanged(pb::PortFixedIpsChanged {
                    fixed_ips: fixed_pb(ips),
                })])
            }
            PortCommand::Bind(b) => {
                if *b == self.binding {
                    return Ok(vec![]);
                }
                Ok(vec![E::PortBindingChanged(pb::PortBindingChanged {
                    binding: Some(b.to_pb()),
                })])
            }
            PortCommand::SetTags(tags) => {
                if *tags == self.tags {
                    return Ok(vec![]);
                }
                Ok(vec![E::TagsSet(pb::TagsSet { tags: tags.clone() })])
            }
            PortCommand::Delete => Ok(vec![E::PortDeleted(pb::PortDeleted {})]),
        }
    }

    fn apply(mut self, event: &E) -> Self {
        match event {
            E::PortCreated(c) => {
                self.exists = true;
                self.project_id = c.project_id.clone();
                self.network_id = c.network_id.clone();
                self.name = c.name.clone();
                self.description = c.description.clone();
                self.admin_state_up = c.admin_state_up;
                self.mac_address = c.mac_address.clone();
                self.fixed_ips = fixed_from(&c.fixed_ips);
                self.device_id = c.device_id.clone();
                self.device_owner = c.device_owner.clone();
                self.security_groups = c.security_groups.clone();
                self.allowed_address_pairs = pairs_from(&c.allowed_address_pairs);
                self.port_security_enabled = c.port_security_enabled;
                self.binding = Binding::from_pb(&c.binding);
                self.tags = c.tags.clone();
            }
            E::PortUpdated(u) => {
                if let Some(v) = &u.name {
                    self.name = v.clone();
                }
                if let Some(v) = &u.description {
                    self.description = v.clone();
                }
                if let Some(v) = u.admin_state_up {
                    self.admin_state_up = v;
                }
                if let Some(v) = &u.device_id {
                    self.device_id = v.clone();
                }
                if let Some(v) = &u.device_owner {
                    self.device_owner = v.clone();
                }
                if u.set_security_groups {
                    self.security_groups = u.security_groups.clone();
                }
                if u.set_allowed_address_pairs {
                    self.allowed_address_pairs = pairs_from(&u.allowed_address_pairs);
                }
                if let Some(v) = u.port_security_enabled {
                    self.port_security_enabled = v;
                }
            }
            E::PortFixedIpsChanged(f) => self.fixed_ips = fixed_from(&f.fixed_ips),
            E::PortBindingChanged(b) => self.binding = Binding::from_pb(&b.binding),
            E::TagsSet(t) => self.tags = t.tags.clone(),
            E::PortDeleted(_) => self.deleted = true,
            _ => return self,
        }
        self.revision += 1;
        self
    }
}
