//! `ComputeHost`: one nova-compute service and its hypervisor (stream `compute-host-<host name>`): inventory
//! with allocation ratios, the resource claims of the servers placed on it, the service's enabled/forced-down
//! state and heartbeats, and the image cache.
//!
//! A claim is accepted only when it fits the inventory times its allocation ratio beside every claim already
//! held; the runtime appends with the expected stream version, so concurrent schedulers racing for the last
//! resources of a host can never overcommit it (the loser re-decides against the winner's claim).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use strata_proto::compute as pb;
use strata_proto::ComputeEvent as E;

use crate::aggregate::{Aggregate, DomainError};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Claim {
    pub server_id: String,
    pub vcpus: u32,
    pub ram_mb: u64,
    pub disk_gb: u64,
}

/// What a host offers before allocation ratios.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Inventory {
    pub vcpus: u32,
    pub ram_mb: u64,
    pub disk_gb: u64,
    pub cpu_allocation_ratio: f64,
    pub ram_allocation_ratio: f64,
    pub disk_allocation_ratio: f64,
}

impl Inventory {
    pub fn vcpus_capacity(&self) -> u64 {
        (self.vcpus as f64 * self.cpu_allocation_ratio).floor() as u64
    }
    pub fn ram_capacity(&self) -> u64 {
        (self.ram_mb as f64 * self.ram_allocation_ratio).floor() as u64
    }
    pub fn disk_capacity(&self) -> u64 {
        (self.disk_gb as f64 * self.disk_allocation_ratio).floor() as u64
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ComputeHost {
    pub exists: bool,
    pub hypervisor_id: String,
    pub service_id: String,
    pub hypervisor_type: String,
    pub host_ip: String,
    pub inventory: Inventory,
    pub claims: BTreeMap<String, Claim>,
    pub disabled: bool,
    pub disabled_reason: String,
    pub forced_down: bool,
    /// image id -> size in bytes.
    pub cached_images: BTreeMap<String, u64>,
    /// The sum of `claims` (vCPUs, MB RAM, GB disk), kept as claims come and go so the scheduler does not
    /// re-add every claim of every host for each decision.
    pub claimed: (u64, u64, u64),
}

impl ComputeHost {
    /// (vCPUs, MB RAM, GB disk) claimed.
    pub fn used(&self) -> (u64, u64, u64) {
        self.claimed
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum HostCommand {
    /// The agent started: record the host the first time, and its inventory when it changed.
    Register {
        hypervisor_type: String,
        host_ip: String,
        inventory: Inventory,
        hypervisor_id: String,
        service_id: String,
    },
    Heartbeat,
    Claim {
        claim_id: String,
        server_id: String,
        vcpus: u32,
        ram_mb: u64,
        disk_gb: u64,
    },
    /// Give a claim back (nothing happens when it is not held).
    Release {
        claim_id: String,
    },
    Disable {
        reason: String,
    },
    Enable,
    SetForcedDown(bool),
    ImageCached {
        image_id: String,
        size: u64,
    },
    CacheHit {
        image_id: String,
    },
    Evict {
        image_id: String,
    },
}

fn not_found() -> DomainError {
    DomainError::NotFound {
        kind: "compute host",
        id: String::new(),
    }
}

impl Aggregate for ComputeHost {
    type Command = HostCommand;
    type Event = E;
    const KIND: &'static str = "compute-host";
    /// 2: `claimed` totals.
    const SNAPSHOT_SCHEMA: u32 = 2;

    fn decide(&self, cmd: &HostCommand) -> Result<Vec<E>, DomainError> {
        use HostCommand as C;
        if !self.exists && !matches!(cmd, C::Register { .. }) {
            return Err(not_found());
        }
        Ok(match cmd {
            C::Register {
                hypervisor_type,
                host_ip,
                inventory,
                hypervisor_id,
                service_id,
            } => {
                if !self.exists {
                    vec![E::HostRegistered(pb::HostRegistered {
                        hypervisor_id: hypervisor_id.clone(),
                        service_id: service_id.clone(),
                        hypervisor_type: hypervisor_type.clone(),
                        vcpus: inventory.vcpus,
                        ram_mb: inventory.ram_mb,
                        disk_gb: inventory.disk_gb,
                        cpu_allocation_ratio: inventory.cpu_allocation_ratio,
                        ram_allocation_ratio: inventory.ram_allocation_ratio,
                        disk_allocation_ratio: inventory.disk_allocation_ratio,
                        host_ip: host_ip.clone(),
                    })]
                } else if (inventory.vcpus, inventory.ram_mb, inventory.disk_gb)
                    != (
                        self.inventory.vcpus,
                        self.inventory.ram_mb,
                        self.inventory.disk_gb,
                    )
                {
                    vec![E::HostInventoryChanged(pb::HostInventoryChanged {
                        vcpus: inventory.vcpus,
                        ram_mb: inventory.ram_mb,
                        disk_gb: inventory.disk_gb,
                    })]
                } else {
                    vec![]
                }
            }
            C::Heartbeat => vec![E::HostHeartbeat(pb::HostHeartbeat {})],
            C::Claim {
                claim_id,
                server_id,
                vcpus,
                ram_mb,
                disk_gb,
            } => {
                if self.claims.contains_key(claim_id) {
                    return Ok(vec![]);
                }
                let (c, r, d) = self.used();
                let inv = &self.inventory;
                let short = if c + *vcpus as u64 > inv.vcpus_capacity() {
                    Some("vcpus")
                } else if r + ram_mb > inv.ram_capacity() {
                    Some("ram")
                } else if d + disk_gb > inv.disk_capacity() {
                    Some("disk")
                } else {
                    None
                };
                if let Some(what) = short {
                    return Err(DomainError::Conflict(format!(
                        "insufficient {what} on the host for the claim"
                    )));
                }
                vec![E::HostClaimed(pb::HostClaimed {
                    claim_id: claim_id.clone(),
                    server_id: server_id.clone(),
                    vcpus: *vcpus,
                    ram_mb: *ram_mb,
                    disk_gb: *disk_gb,
                })]
            }
            C::Release { claim_id } => {
                if !self.claims.contains_key(claim_id) {
                    return Ok(vec![]);
                }
                vec![E::HostClaimReleased(pb::HostClaimReleased {
                    claim_id: claim_id.clone(),
                })]
            }
            C::Disable { reason } => {
                if self.disabled && self.disabled_reason == *reason {
                    return Ok(vec![]);
                }
                vec![E::HostServiceDisabled(pb::HostServiceDisabled {
                    reason: reason.clone(),
                })]
            }
            C::Enable => {
                if !self.disabled {
                    return Ok(vec![]);
                }
                vec![E::HostServiceEnabled(pb::HostServiceEnabled {})]
            }
            C::SetForcedDown(down) => {
                if self.forced_down == *down {
                    return Ok(vec![]);
                }
                vec![E::HostForcedDownChanged(pb::HostForcedDownChanged {
                    forced_down: *down,
                })]
            }
            C::ImageCached { image_id, size } => {
                if self.cached_images.contains_key(image_id) {
                    return Ok(vec![]);
                }
                vec![E::HostImageCached(pb::HostImageCached {
                    image_id: image_id.clone(),
                    size: *size,
                })]
            }
            C::CacheHit { image_id } => vec![E::HostImageCacheHit(pb::HostImageCacheHit {
                image_id: image_id.clone(),
            })],
            C::Evict { image_id } => {
                if !self.cached_images.contains_key(image_id) {
                    return Ok(vec![]);
                }
                vec![E::HostImageEvicted(pb::HostImageEvicted {
                    image_id: image_id.clone(),
                })]
            }
        })
    }

    fn apply(mut self, event: &E) -> Self {
        match event {
            E::HostRegistered(r) => {
                self.exists = true;
                self.hypervisor_id = r.hypervisor_id.clone();
                self.service_id = r.service_id.clone();
                self.hypervisor_type = r.hypervisor_type.clone();
                self.host_ip = r.host_ip.clone();
                self.inventory = Inventory {
                    vcpus: r.vcpus,
                    ram_mb: r.ram_mb,
                    disk_gb: r.disk_gb,
                    cpu_allocation_ratio: r.cpu_allocation_ratio,
                    ram_allocation_ratio: r.ram_allocation_ratio,
                    disk_allocation_ratio: r.disk_allocation_ratio,
                };
            }
            E::HostInventoryChanged(i) => {
                self.inventory.vcpus = i.vcpus;
                self.inventory.ram_mb = i.ram_mb;
                self.inventory.disk_gb = i.disk_gb;
            }
            E::HostClaimed(c) => {
                if let Some(old) = self.claims.get(&c.claim_id) {
                    self.claimed.0 -= old.vcpus as u64;
                    self.claimed.1 -= old.ram_mb;
                    self.claimed.2 -= old.disk_gb;
                }
                self.claimed.0 += c.vcpus as u64;
                self.claimed.1 += c.ram_mb;
                self.claimed.2 += c.disk_gb;
                self.claims.insert(
                    c.claim_id.clone(),
                    Claim {
                        server_id: c.server_id.clone(),
                        vcpus: c.vcpus,
                        ram_mb: c.ram_mb,
                        disk_gb: c.disk_gb,
                    },
                );
            }
            E::HostClaimReleased(r) => {
                if let Some(old) = self.claims.remove(&r.claim_id) {
                    self.claimed.0 -= old.vcpus as u64;
                    self.claimed.1 -= old.ram_mb;
                    self.claimed.2 -= old.disk_gb;
                }
            }
            E::HostServiceDisabled(d) => {
                self.disabled = true;
                self.disabled_reason = d.reason.clone();
            }
            E::HostServiceEnabled(_) => {
                self.disabled = false;
                self.disabled_reason.clear();
            }
            E::HostForcedDownChanged(f) => self.forced_down = f.forced_down,
            E::HostImageCached(c) => {
                self.cached_images.insert(c.image_id.clone(), c.size);
            }
            E::HostImageEvicted(e) => {
                self.cached_images.remove(&e.image_id);
            }
            _ => {}
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gwt::given;

    fn registered() -> E {
        E::HostRegistered(pb::HostRegistered {
            hypervisor_id: "h".into(),
            service_id: "s".into(),
            hypervisor_type: "fake".into(),
            vcpus: 4,
            ram_mb: 4096,
            disk_gb: 100,
            cpu_allocation_ratio: 2.0,
            ram_allocation_ratio: 1.0,
            disk_allocation_ratio: 1.0,
            host_ip: "127.0.0.1".into(),
        })
    }

    fn claim(id: &str, vcpus: u32, ram_mb: u64) -> HostCommand {
        HostCommand::Claim {
            claim_id: id.into(),
            server_id: id.into(),
            vcpus,
            ram_mb,
            disk_gb: 1,
        }
    }

    fn claimed(id: &str, vcpus: u32, ram_mb: u64) -> E {
        E::HostClaimed(pb::HostClaimed {
            claim_id: id.into(),
            server_id: id.into(),
            vcpus,
            ram_mb,
            disk_gb: 1,
        })
    }

    #[test]
    fn claims_fit_the_inventory_times_the_ratio() {
        // 4 vCPUs at ratio 2.0: 8 fit, a 9th does not.
        let s = given::<ComputeHost>([registered(), claimed("a", 6, 512)])
            .when(claim("b", 2, 512))
            .then(vec![claimed("b", 2, 512)]);
        assert_eq!(s.used(), (8, 1024, 2));
        given::<ComputeHost>([registered(), claimed("a", 6, 512), claimed("b", 2, 512)])
            .when(claim("c", 1, 1))
            .then_err_where(|e| matches!(e, DomainError::Conflict(m) if m.contains("vcpus")));
        // RAM at ratio 1.0.
        given::<ComputeHost>([registered()])
            .when(claim("c", 1, 4097))
            .then_err_where(|e| matches!(e, DomainError::Conflict(m) if m.contains("ram")));
    }

    #[test]
    fn claims_and_releases_are_idempotent() {
        given::<ComputeHost>([registered(), claimed("a", 1, 1)])
            .when(claim("a", 1, 1))
            .then_nothing();
        given::<ComputeHost>([registered()])
            .when(HostCommand::Release {
                claim_id: "a".into(),
            })
            .then_nothing();
    }

    #[test]
    fn re_registering_records_only_a_changed_inventory() {
        let inv = |vcpus| Inventory {
            vcpus,
            ram_mb: 4096,
            disk_gb: 100,
            cpu_allocation_ratio: 2.0,
            ram_allocation_ratio: 1.0,
            disk_allocation_ratio: 1.0,
        };
        let register = |vcpus| HostCommand::Register {
            hypervisor_type: "fake".into(),
            host_ip: "127.0.0.1".into(),
            inventory: inv(vcpus),
            hypervisor_id: "other".into(),
            service_id: "other".into(),
        };
        given::<ComputeHost>([registered()])
            .when(register(4))
            .then_nothing();
        let s = given::<ComputeHost>([registered()])
            .when(register(8))
            .then(vec![E::HostInventoryChanged(pb::HostInventoryChanged {
                vcpus: 8,
                ram_mb: 4096,
                disk_gb: 100,
            })]);
        assert_eq!(s.hypervisor_id, "h");
    }
}
