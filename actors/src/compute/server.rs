//! `Server`: one Nova instance (stream `server-<uuid>`), with the state machine of Nova's `vm_state` and
//! `task_state`.
//!
//! The API starts actions (`Begin`, `Lock`, `StartMigration` ...); the conductor and the compute agent record
//! each step of the work (`Schedule`, `Spawned`, `FinishTask` ...). Every step names the task it belongs to, so
//! a step that arrives late or twice (after a restart, or after the user deleted the server meanwhile) is
//! refused with `Conflict` instead of corrupting the state: the flows are resumable and idempotent.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use strata_proto::compute as pb;
use strata_proto::ComputeEvent as E;

use crate::aggregate::{Aggregate, DomainError};

const KIND: &str = "server";

/// Nova's vm states.
pub mod vm {
    pub const BUILDING: &str = "building";
    pub const ACTIVE: &str = "active";
    pub const STOPPED: &str = "stopped";
    pub const PAUSED: &str = "paused";
    pub const SUSPENDED: &str = "suspended";
    pub const RESIZED: &str = "resized";
    pub const SHELVED: &str = "shelved";
    pub const SHELVED_OFFLOADED: &str = "shelved_offloaded";
    pub const ERROR: &str = "error";
    pub const DELETED: &str = "deleted";
}

/// Nova's power states.
pub mod power {
    pub const NOSTATE: i32 = 0;
    pub const RUNNING: i32 = 1;
    pub const PAUSED: i32 = 3;
    pub const SHUTDOWN: i32 = 4;
    pub const CRASHED: i32 = 6;
    pub const SUSPENDED: i32 = 7;
}

/// Nova's task states used here.
pub mod task {
    pub const SCHEDULING: &str = "scheduling";
    pub const SPAWNING: &str = "spawning";
    pub const POWERING_OFF: &str = "powering-off";
    pub const POWERING_ON: &str = "powering-on";
    pub const REBOOTING: &str = "rebooting";
    pub const REBOOTING_HARD: &str = "rebooting_hard";
    pub const PAUSING: &str = "pausing";
    pub const UNPAUSING: &str = "unpausing";
    pub const SUSPENDING: &str = "suspending";
    pub const RESUMING: &str = "resuming";
    pub const DELETING: &str = "deleting";
    pub const REBUILDING: &str = "rebuilding";
    pub const IMAGE_SNAPSHOT: &str = "image_snapshot";
    pub const SHELVING: &str = "shelving";
    pub const UNSHELVING: &str = "unshelving";
    pub const RESIZE_PREP: &str = "resize_prep";
    pub const RESIZE_MIGRATING: &str = "resize_migrating";
    pub const RESIZE_REVERTING: &str = "resize_reverting";
    pub const MIGRATING: &str = "migrating";
}

/// A flavor as a server holds it (a copy taken when the server got it).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FlavorSpec {
    pub id: String,
    pub name: String,
    pub vcpus: u32,
    pub ram_mb: u64,
    pub disk_gb: u64,
    pub ephemeral_gb: u64,
    pub swap_mb: u64,
    pub rxtx_factor: f64,
    pub extra_specs: BTreeMap<String, String>,
    pub description: String,
}

impl FlavorSpec {
    pub fn from_pb(f: &pb::FlavorSnapshot) -> Self {
        FlavorSpec {
            id: f.flavor_id.clone(),
            name: f.name.clone(),
            vcpus: f.vcpus,
            ram_mb: f.ram_mb,
            disk_gb: f.disk_gb,
            ephemeral_gb: f.ephemeral_gb,
            swap_mb: f.swap_mb,
            rxtx_factor: f.rxtx_factor,
            extra_specs: f.extra_specs.clone().into_iter().collect(),
            description: f.description.clone(),
        }
    }

    pub fn to_pb(&self) -> pb::FlavorSnapshot {
        pb::FlavorSnapshot {
            flavor_id: self.id.clone(),
            name: self.name.clone(),
            vcpus: self.vcpus,
            ram_mb: self.ram_mb,
            disk_gb: self.disk_gb,
            ephemeral_gb: self.ephemeral_gb,
            swap_mb: self.swap_mb,
            rxtx_factor: self.rxtx_factor,
            extra_specs: self.extra_specs.clone().into_iter().collect(),
            description: self.description.clone(),
        }
    }

    /// Disk a server of this flavor takes on its host (root + ephemeral + swap, GB rounded up).
    pub fn host_disk_gb(&self) -> u64 {
        self.disk_gb + self.ephemeral_gb + self.swap_mb.div_ceil(1024)
    }
}

/// A Cinder volume of the server's block device mapping (see `pb::BlockDevice`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockDevice {
    pub volume_id: String,
    /// volume | image | snapshot | blank
    pub source_type: String,
    pub source_id: String,
    pub size_gb: u64,
    /// 0 = the root disk, -1 = not bootable.
    pub boot_index: i32,
    pub delete_on_termination: bool,
    pub device_name: String,
}

impl BlockDevice {
    pub fn from_pb(b: &pb::BlockDevice) -> Self {
        BlockDevice {
            volume_id: b.volume_id.clone(),
            source_type: b.source_type.clone(),
            source_id: b.source_id.clone(),
            size_gb: b.size_gb,
            boot_index: b.boot_index,
            delete_on_termination: b.delete_on_termination,
            device_name: b.device_name.clone(),
        }
    }

    pub fn to_pb(&self) -> pb::BlockDevice {
        pb::BlockDevice {
            volume_id: self.volume_id.clone(),
            source_type: self.source_type.clone(),
            source_id: self.source_id.clone(),
            size_gb: self.size_gb,
            boot_index: self.boot_index,
            delete_on_termination: self.delete_on_termination,
            device_name: self.device_name.clone(),
        }
    }
}

/// A Neutron port of the server (see `pb::ServerPort`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerPort {
    pub port_id: String,
    pub network_id: String,
    /// Made by Nova for this server (deleted with it); a port the user gave is only released.
    pub created: bool,
}

impl ServerPort {
    pub fn from_pb(p: &pb::ServerPort) -> Self {
        ServerPort {
            port_id: p.port_id.clone(),
            network_id: p.network_id.clone(),
            created: p.created,
        }
    }

    pub fn to_pb(&self) -> pb::ServerPort {
        pb::ServerPort {
            port_id: self.port_id.clone(),
            network_id: self.network_id.clone(),
            created: self.created,
        }
    }
}

/// A resize or move in progress (or awaiting confirmation).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Migration {
    pub id: String,
    /// resize | migration | live-migration | evacuation
    pub kind: String,
    pub source_host: String,
    pub dest_host: String,
    pub old_flavor: FlavorSpec,
    /// Equal to `old_flavor` for a move.
    pub new_flavor: FlavorSpec,
    /// Whether the destination was chosen and claimed (a destination named by the request is only a wish
    /// until then).
    #[serde(default)]
    pub scheduled: bool,
    /// The vm state to return to (active or stopped).
    pub prior_vm_state: String,
    pub prior_power_state: i32,
}

impl Migration {
    /// The claim id this move's destination resources are held under.
    pub fn dest_claim(&self, server_id: &str) -> String {
        format!("{server_id}/{}", self.id)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Fault {
    pub code: i32,
    pub message: String,
    pub details: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Server {
    pub exists: bool,
    pub project_id: String,
    pub user_id: String,
    pub name: String,
    pub description: String,
    pub flavor: FlavorSpec,
    pub image_id: String,
    pub key_name: String,
    pub key_data: String,
    pub metadata: BTreeMap<String, String>,
    pub user_data: String,
    pub requested_az: String,
    pub group_id: String,
    pub same_host: Vec<String>,
    pub different_host: Vec<String>,
    pub reservation_id: String,
    pub launch_index: u32,
    pub hostname: String,
    pub requested_host: String,
    pub vm_state: String,
    /// "" = none.
    pub task_state: String,
    pub power_state: i32,
    /// "" while not on a host.
    pub host: String,
    pub node: String,
    pub availability_zone: String,
    pub locked: bool,
    pub locked_reason: String,
    pub locked_by: String,
    pub fault: Option<Fault>,
    /// The request that started the current (or last) action; conductor and agent steps carry it on.
    pub request_id: String,
    /// The current action ("create", "stop", ...).
    pub action: String,
    /// The image a createImage / rebuild task works on.
    pub task_image: String,
    pub migration: Option<Migration>,
    /// Whether the server ever ran (Nova's launched_at is set).
    pub launched: bool,
    /// Volumes from the block device mapping the server was created with (boot volume first).
    pub block_devices: Vec<BlockDevice>,
    /// Neutron ports plugged in (at boot and through os-interface).
    #[serde(default)]
    pub ports: Vec<ServerPort>,
}

/// An action a user starts on a server through the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Stop,
    Start,
    Reboot { hard: bool },
    Pause,
    Unpause,
    Suspend,
    Resume,
    Delete,
    Rebuild { image_id: String },
    CreateImage { image_id: String },
    Shelve,
    Unshelve,
}

impl Action {
    /// (action name, task state, vm states it may start from).
    fn rule(&self) -> (&'static str, &'static str, &'static [&'static str]) {
        use vm::*;
        match self {
            Action::Stop => ("stop", task::POWERING_OFF, &[ACTIVE, ERROR]),
            Action::Start => ("start", task::POWERING_ON, &[STOPPED]),
            Action::Reboot { hard: false } => ("reboot", task::REBOOTING, &[ACTIVE]),
            Action::Reboot { hard: true } => (
                "reboot",
                task::REBOOTING_HARD,
                &[ACTIVE, STOPPED, PAUSED, SUSPENDED, ERROR],
            ),
            Action::Pause => ("pause", task::PAUSING, &[ACTIVE]),
            Action::Unpause => ("unpause", task::UNPAUSING, &[PAUSED]),
            Action::Suspend => ("suspend", task::SUSPENDING, &[ACTIVE]),
            Action::Resume => ("resume", task::RESUMING, &[SUSPENDED]),
            Action::Delete => ("delete", task::DELETING, &[]),
            Action::Rebuild { .. } => ("rebuild", task::REBUILDING, &[ACTIVE, STOPPED, ERROR]),
            Action::CreateImage { .. } => (
                "createImage",
                task::IMAGE_SNAPSHOT,
                &[ACTIVE, STOPPED, PAUSED, SUSPENDED],
            ),
            Action::Shelve => (
                "shelve",
                task::SHELVING,
                &[ACTIVE, STOPPED, PAUSED, SUSPENDED],
            ),
            Action::Unshelve => ("unshelve", task::UNSHELVING, &[SHELVED, SHELVED_OFFLOADED]),
        }
    }

    pub fn name(&self) -> &'static str {
        self.rule().0
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ServerCommand {
    Create(Box<pb::ServerCreated>),
    /// A user action; `admin` callers may act on a locked server.
    Begin {
        action: Action,
        request_id: String,
        admin: bool,
    },
    Rename {
        name: String,
        admin: bool,
    },
    /// Plug a port in (os-interface).
    AttachInterface {
        port: ServerPort,
        admin: bool,
    },
    /// Unplug a port (os-interface).
    DetachInterface {
        port_id: String,
        admin: bool,
    },
    SetDescription {
        description: String,
        admin: bool,
    },
    SetMetadata {
        items: BTreeMap<String, String>,
        replace: bool,
        admin: bool,
    },
    DeleteMetadataItem {
        key: String,
        admin: bool,
    },
    Lock {
        reason: String,
        admin: bool,
        request_id: String,
    },
    Unlock {
        admin: bool,
        request_id: String,
    },
    /// resize (with a new flavor), migrate, live-migration or evacuate.
    StartMigration {
        migration_id: String,
        kind: String,
        dest_host: String,
        new_flavor: Option<FlavorSpec>,
        request_id: String,
        admin: bool,
    },
    ConfirmResize {
        request_id: String,
        admin: bool,
    },
    RevertResize {
        request_id: String,
        admin: bool,
    },
    // ---- steps recorded by the conductor and the compute agents ----
    /// The scheduler claimed `host` for a boot or unshelve.
    Schedule {
        host: String,
        node: String,
        availability_zone: String,
    },
    /// The driver spawned the server on its host.
    Spawned {
        power_state: i32,
    },
    /// The task `task` ended well, leaving these states.
    FinishTask {
        task: String,
        vm_state: String,
        power_state: i32,
    },
    /// The task `task` failed; the server keeps its vm state.
    FailTask {
        task: String,
        message: String,
    },
    /// The server broke while doing `task` ("" = whatever it was doing): ERROR with a fault.
    Fault {
        task: String,
        code: i32,
        message: String,
        details: String,
        host_released: bool,
    },
    /// The periodic power-state sync found the hypervisor disagreeing.
    SyncPower {
        power_state: i32,
    },
    MigrationScheduled {
        dest_host: String,
    },
    MigrationFinished,
    MigrationFailed {
        message: String,
    },
    ResizeReverted,
    Rebuilt,
    Shelved {
        offloaded: bool,
    },
    /// The delete task is done: the server is gone.
    Deleted,
}

fn conflict(msg: impl Into<String>) -> DomainError {
    DomainError::Conflict(msg.into())
}

impl Server {
    /// Whether the root disk is a Cinder volume (then the server has no image of its own).
    pub fn boots_from_volume(&self) -> bool {
        self.block_devices.iter().any(|b| b.boot_index == 0)
    }

    fn not_found(&self) -> DomainError {
        DomainError::NotFound {
            kind: KIND,
            id: self.name.clone(),
        }
    }

    pub fn is_deleted(&self) -> bool {
        self.vm_state == vm::DELETED
    }

    fn check_live(&self) -> Result<(), DomainError> {
        if !self.exists || self.is_deleted() {
            return Err(self.not_found());
        }
        Ok(())
    }

    fn check_lock(&self, admin: bool) -> Result<(), DomainError> {
        if self.locked && !admin {
            return Err(conflict(format!(
                "Instance {} is locked",
                if self.name.is_empty() { "" } else { &self.name }
            )));
        }
        Ok(())
    }

    fn in_state(&self, action: &str) -> DomainError {
        conflict(format!(
            "Cannot '{action}' instance while it is in vm_state {}{}",
            self.vm_state,
            if self.task_state.is_empty() {
                String::new()
            } else {
                format!(" / task_state {}", self.task_state)
            }
        ))
    }

    /// A step of `expected` task: refused unless the server is doing exactly that.
    fn check_task(&self, expected: &[&str]) -> Result<(), DomainError> {
        self.check_live()?;
        if !expected.contains(&self.task_state.as_str()) {
            return Err(conflict(format!(
                "server is in task_state '{}', not {:?}",
                self.task_state, expected
            )));
        }
        Ok(())
    }

    /// Nova's status for the API, from vm_state and task_state.
    pub fn status(&self) -> &'static str {
        status(&self.vm_state, &self.task_state)
    }
}

/// Nova's server status from its vm state and task state.
pub fn status(vm_state: &str, task_state: &str) -> &'static str {
    match (vm_state, task_state) {
        (vm::BUILDING, _) => "BUILD",
        (_, task::REBUILDING) if vm_state != vm::SHELVED_OFFLOADED => "REBUILD",
        (vm::ACTIVE | vm::STOPPED, task::RESIZE_PREP | task::RESIZE_MIGRATING) => "RESIZE",
        (vm::ACTIVE | vm::PAUSED, task::MIGRATING) => "MIGRATING",
        (vm::ACTIVE, task::REBOOTING) => "REBOOT",
        (vm::ACTIVE, task::REBOOTING_HARD) => "HARD_REBOOT",
        (vm::RESIZED, task::RESIZE_REVERTING) => "REVERT_RESIZE",
        (vm::ACTIVE, _) => "ACTIVE",
        (vm::STOPPED, _) => "SHUTOFF",
        (vm::PAUSED, _) => "PAUSED",
        (vm::SUSPENDED, _) => "SUSPENDED",
        (vm::RESIZED, _) => "VERIFY_RESIZE",
        (vm::SHELVED, _) => "SHELVED",
        (vm::SHELVED_OFFLOADED, _) => "SHELVED_OFFLOADED",
        (vm::ERROR, _) => "ERROR",
        (vm::DELETED, _) => "DELETED",
        _ => "UNKNOWN",
    }
}

/// The Nova instance action a task state belongs to (for steps that do not name one).
fn task_started(task_state: &str, action: &str, request_id: &str, image_id: &str) -> E {
    E::ServerTaskStarted(pb::ServerTaskStarted {
        task_state: task_state.into(),
        action: action.into(),
        request_id: request_id.into(),
        image_id: image_id.into(),
    })
}

impl Aggregate for Server {
    type Command = ServerCommand;
    type Event = E;
    const KIND: &'static str = KIND;

    fn decide(&self, cmd: &ServerCommand) -> Result<Vec<E>, DomainError> {
        use ServerCommand as C;
        match cmd {
            C::Create(c) => {
                if self.exists {
                    return Err(DomainError::AlreadyExists {
                        kind: KIND,
                        detail: "server id already used".into(),
                    });
                }
                if c.flavor.is_none() {
                    return Err(DomainError::Invalid("a server needs a flavor".into()));
                }
                super::check_len("name", &c.name, super::NAME_MAX)?;
                Ok(vec![E::ServerCreated((**c).clone())])
            }
            C::Begin {
                action,
                request_id,
                admin,
            } => {
                self.check_live()?;
                let (name, task_state, from) = action.rule();
                if *action == Action::Delete {
                    // Deleting is allowed in every state, also while another task runs (Nova too);
                    // a second delete changes nothing.
                    if self.task_state == task::DELETING {
                        return Ok(vec![]);
                    }
                    self.check_lock(*admin)?;
                    return Ok(vec![task_started(task_state, name, request_id, "")]);
                }
                self.check_lock(*admin)?;
                if !self.task_state.is_empty() || !from.contains(&self.vm_state.as_str()) {
                    return Err(self.in_state(name));
                }
                let image = match action {
                    Action::Rebuild { image_id } | Action::CreateImage { image_id } => {
                        image_id.as_str()
                    }
                    _ => "",
                };
                Ok(vec![task_started(task_state, name, request_id, image)])
            }
            C::Rename { name, admin } => {
                self.check_live()?;
                self.check_lock(*admin)?;
                super::check_len("name", name, super::NAME_MAX)?;
                if *name == self.name {
                    return Ok(vec![]);
                }
                Ok(vec![E::ServerRenamed(pb::ServerRenamed {
                    name: name.clone(),
                })])
            }
            C::AttachInterface { port, admin } => {
                self.check_live()?;
                self.check_lock(*admin)?;
                if self.ports.iter().any(|p| p.port_id == port.port_id) {
                    return Ok(vec![]);
                }
                Ok(vec![E::ServerInterfaceAttached(
                    pb::ServerInterfaceAttached {
                        port: Some(port.to_pb()),
                    },
                )])
            }
            C::DetachInterface { port_id, admin } => {
                self.check_live()?;
                self.check_lock(*admin)?;
                if !self.ports.iter().any(|p| p.port_id == *port_id) {
                    return Err(DomainError::NotFound {
                        kind: "port",
                        id: port_id.clone(),
                    });
                }
                Ok(vec![E::ServerInterfaceDetached(
                    pb::ServerInterfaceDetached {
                        port_id: port_id.clone(),
                    },
                )])
            }
            C::SetDescription { description, admin } => {
                self.check_live()?;
                self.check_lock(*admin)?;
                if description.chars().count() > super::NAME_MAX {
                    return Err(super::invalid(
                        "description",
                        "must be at most 255 characters long",
                    ));
                }
                if *description == self.description {
                    return Ok(vec![]);
                }
                Ok(vec![E::ServerDescriptionChanged(
                    pb::ServerDescriptionChanged {
                        description: description.clone(),
                    },
                )])
            }
            C::SetMetadata {
                items,
                replace,
                admin,
            } => {
                self.check_live()?;
                self.check_lock(*admin)?;
                for (k, v) in items {
                    super::check_len("metadata key", k, super::NAME_MAX)?;
                    if v.chars().count() > super::NAME_MAX {
                        return Err(super::invalid(
                            "metadata value",
                            "must be at most 255 characters long",
                        ));
                    }
                }
                Ok(vec![E::ServerMetadataSet(pb::ServerMetadataSet {
                    items: items.clone().into_iter().collect(),
                    replace: *replace,
                })])
            }
            C::DeleteMetadataItem { key, admin } => {
                self.check_live()?;
                self.check_lock(*admin)?;
                if !self.metadata.contains_key(key) {
                    return Err(DomainError::NotFound {
                        kind: "metadata item",
                        id: key.clone(),
                    });
                }
                Ok(vec![E::ServerMetadataItemDeleted(
                    pb::ServerMetadataItemDeleted { key: key.clone() },
                )])
            }
            C::Lock {
                reason,
                admin,
                request_id,
            } => {
                self.check_live()?;
                if reason.chars().count() > super::NAME_MAX {
                    return Err(super::invalid(
                        "locked_reason",
                        "must be at most 255 characters long",
                    ));
                }
                Ok(vec![E::ServerLocked(pb::ServerLocked {
                    reason: reason.clone(),
                    by: if *admin { "admin" } else { "owner" }.into(),
                    request_id: request_id.clone(),
                })])
            }
            C::Unlock { admin, request_id } => {
                self.check_live()?;
                if self.locked && self.locked_by == "admin" && !admin {
                    return Err(DomainError::Forbidden(
                        "Policy doesn't allow os_compute_api:os-lock-server:unlock:unlock_override to be performed.".into(),
                    ));
                }
                Ok(vec![E::ServerUnlocked(pb::ServerUnlocked {
                    request_id: request_id.clone(),
                })])
            }
            C::StartMigration {
                migration_id,
                kind,
                dest_host,
                new_flavor,
                request_id,
                admin,
            } => {
                self.check_live()?;
                self.check_lock(*admin)?;
                let (action, from): (&str, &[&str]) = match kind.as_str() {
                    "resize" => ("resize", &[vm::ACTIVE, vm::STOPPED]),
                    "migration" => ("migrate", &[vm::ACTIVE, vm::STOPPED]),
                    "live-migration" => ("os-migrateLive", &[vm::ACTIVE, vm::PAUSED]),
                    "evacuation" => ("evacuate", &[vm::ACTIVE, vm::STOPPED, vm::ERROR]),
                    other => {
                        return Err(DomainError::Invalid(format!(
                            "unknown migration type {other}"
                        )))
                    }
                };
                if !self.task_state.is_empty()
                    || !from.contains(&self.vm_state.as_str())
                    || self.host.is_empty()
                {
                    return Err(self.in_state(action));
                }
                if kind == "resize" {
                    let Some(f) = new_flavor else {
                        return Err(DomainError::Invalid("resize needs a flavor".into()));
                    };
                    if f.id == self.flavor.id {
                        return Err(DomainError::Invalid(
                            "When resizing, instances must change flavor!".into(),
                        ));
                    }
                    if f.disk_gb < self.flavor.disk_gb {
                        return Err(DomainError::Invalid(
                            "Resize error: Unable to resize disk down.".into(),
                        ));
                    }
                }
                if !dest_host.is_empty() && *dest_host == self.host {
                    return Err(DomainError::Invalid(format!(
                        "The target host can't be the same one: {dest_host}"
                    )));
                }
                let action = match kind.as_str() {
                    "live-migration" => "live-migration",
                    "migration" => "migrate",
                    other => other,
                };
                let action = if kind == "evacuation" {
                    "evacuate"
                } else {
                    action
                };
                Ok(vec![E::ServerMigrationStarted(
                    pb::ServerMigrationStarted {
                        migration_id: migration_id.clone(),
                        migration_type: kind.clone(),
                        source_host: self.host.clone(),
                        dest_host: dest_host.clone(),
                        new_flavor: new_flavor.as_ref().map(FlavorSpec::to_pb),
                        request_id: request_id.clone(),
                        action: action.into(),
                    },
                )])
            }
            C::ConfirmResize { request_id, admin } => {
                self.check_live()?;
                self.check_lock(*admin)?;
                if self.vm_state != vm::RESIZED || !self.task_state.is_empty() {
                    return Err(self.in_state("confirmResize"));
                }
                Ok(vec![E::ServerResizeConfirmed(pb::ServerResizeConfirmed {
                    request_id: request_id.clone(),
                })])
            }
            C::RevertResize { request_id, admin } => {
                self.check_live()?;
                self.check_lock(*admin)?;
                if self.vm_state != vm::RESIZED || !self.task_state.is_empty() {
                    return Err(self.in_state("revertResize"));
                }
                Ok(vec![task_started(
                    task::RESIZE_REVERTING,
                    "revertResize",
                    request_id,
                    "",
                )])
            }
            C::Schedule {
                host,
                node,
                availability_zone,
            } => {
                self.check_task(&[task::SCHEDULING, task::UNSHELVING])?;
                if !self.host.is_empty() {
                    return Err(conflict("server already has a host"));
                }
                Ok(vec![E::ServerScheduled(pb::ServerScheduled {
                    host: host.clone(),
                    node: node.clone(),
                    availability_zone: availability_zone.clone(),
                })])
            }
            C::Spawned { power_state } => {
                self.check_task(&[task::SPAWNING])?;
                Ok(vec![E::ServerSpawned(pb::ServerSpawned {
                    power_state: *power_state,
                })])
            }
            C::FinishTask {
                task,
                vm_state,
                power_state,
            } => {
                self.check_task(&[task.as_str()])?;
                Ok(vec![E::ServerTaskFinished(pb::ServerTaskFinished {
                    vm_state: vm_state.clone(),
                    power_state: *power_state,
                })])
            }
            C::FailTask { task, message } => {
                self.check_task(&[task.as_str()])?;
                Ok(vec![E::ServerTaskFailed(pb::ServerTaskFailed {
                    message: message.clone(),
                })])
            }
            C::Fault {
                task,
                code,
                message,
                details,
                host_released,
            } => {
                self.check_live()?;
                if !task.is_empty() && self.task_state != *task {
                    return Err(conflict(format!(
                        "server is in task_state '{}', not '{task}'",
                        self.task_state
                    )));
                }
                Ok(vec![E::ServerFaulted(pb::ServerFaulted {
                    code: *code,
                    message: message.clone(),
                    details: details.clone(),
                    host_released: *host_released,
                })])
            }
            C::SyncPower { power_state } => {
                self.check_live()?;
                if !self.task_state.is_empty() || self.power_state == *power_state {
                    return Ok(vec![]);
                }
                // Nova's sync: a VM found stopped (or crashed) while it should run is recorded stopped.
                let vm_state = match *power_state {
                    power::SHUTDOWN | power::CRASHED | power::NOSTATE
                        if matches!(
                            self.vm_state.as_str(),
                            vm::ACTIVE | vm::PAUSED | vm::SUSPENDED
                        ) =>
                    {
                        vm::STOPPED
                    }
                    _ => self.vm_state.as_str(),
                };
                Ok(vec![E::ServerPowerSynced(pb::ServerPowerSynced {
                    vm_state: vm_state.into(),
                    power_state: *power_state,
                })])
            }
            C::MigrationScheduled { dest_host } => {
                self.check_task(&[task::RESIZE_PREP, task::MIGRATING, task::REBUILDING])?;
                let Some(m) = &self.migration else {
                    return Err(conflict("no migration in progress"));
                };
                if m.scheduled || (!m.dest_host.is_empty() && m.dest_host != *dest_host) {
                    return Err(conflict("the migration already has a destination"));
                }
                Ok(vec![E::ServerMigrationScheduled(
                    pb::ServerMigrationScheduled {
                        dest_host: dest_host.clone(),
                    },
                )])
            }
            C::MigrationFinished => {
                self.check_task(&[task::RESIZE_MIGRATING, task::MIGRATING, task::REBUILDING])?;
                let Some(m) = &self.migration else {
                    return Err(conflict("no migration in progress"));
                };
                if !m.scheduled {
                    return Err(conflict("the migration has no destination yet"));
                }
                Ok(vec![E::ServerMigrationFinished(
                    pb::ServerMigrationFinished {
                        needs_confirm: matches!(m.kind.as_str(), "resize" | "migration"),
                    },
                )])
            }
            C::MigrationFailed { message } => {
                self.check_task(&[
                    task::RESIZE_PREP,
                    task::RESIZE_MIGRATING,
                    task::MIGRATING,
                    task::REBUILDING,
                ])?;
                if self.migration.is_none() {
                    return Err(conflict("no migration in progress"));
                }
                Ok(vec![E::ServerMigrationFailed(pb::ServerMigrationFailed {
                    message: message.clone(),
                })])
            }
            C::ResizeReverted => {
                self.check_task(&[task::RESIZE_REVERTING])?;
                Ok(vec![E::ServerResizeReverted(pb::ServerResizeReverted {})])
            }
            C::Rebuilt => {
                self.check_task(&[task::REBUILDING])?;
                if self.migration.is_some() {
                    return Err(conflict("an evacuation is in progress"));
                }
                Ok(vec![E::ServerRebuilt(pb::ServerRebuilt {
                    image_id: self.task_image.clone(),
                })])
            }
            C::Shelved { offloaded } => {
                self.check_task(&[task::SHELVING])?;
                Ok(vec![E::ServerShelved(pb::ServerShelved {
                    offloaded: *offloaded,
                })])
            }
            C::Deleted => {
                self.check_task(&[task::DELETING])?;
                Ok(vec![E::ServerDeleted(pb::ServerDeleted {})])
            }
        }
    }

    fn apply(mut self, event: &E) -> Self {
        match event {
            E::ServerCreated(c) => {
                self = Server {
                    exists: true,
                    project_id: c.project_id.clone(),
                    user_id: c.user_id.clone(),
                    name: c.name.clone(),
                    description: c.description.clone(),
                    flavor: c
                        .flavor
                        .as_ref()
                        .map(FlavorSpec::from_pb)
                        .unwrap_or_default(),
                    image_id: c.image_id.clone(),
                    key_name: c.key_name.clone(),
                    key_data: c.key_data.clone(),
                    metadata: c.metadata.clone().into_iter().collect(),
                    user_data: c.user_data.clone(),
                    requested_az: c.availability_zone.clone(),
                    group_id: c.group_id.clone(),
                    same_host: c.same_host.clone(),
                    different_host: c.different_host.clone(),
                    reservation_id: c.reservation_id.clone(),
                    launch_index: c.launch_index,
                    hostname: c.hostname.clone(),
                    requested_host: c.requested_host.clone(),
                    vm_state: vm::BUILDING.into(),
                    task_state: task::SCHEDULING.into(),
                    power_state: power::NOSTATE,
                    request_id: c.request_id.clone(),
                    action: "create".into(),
                    block_devices: c.block_devices.iter().map(BlockDevice::from_pb).collect(),
                    ports: c.ports.iter().map(ServerPort::from_pb).collect(),
                    ..Server::default()
                };
            }
            E::ServerScheduled(s) => {
                self.host = s.host.clone();
                self.node = s.node.clone();
                self.availability_zone = s.availability_zone.clone();
                self.task_state = task::SPAWNING.into();
            }
            E::ServerSpawned(s) => {
                self.vm_state = vm::ACTIVE.into();
                self.task_state.clear();
                self.power_state = s.power_state;
                self.launched = true;
                self.fault = None;
            }
            E::ServerTaskStarted(t) => {
                self.task_state = t.task_state.clone();
                self.action = t.action.clone();
                self.request_id = t.request_id.clone();
                self.task_image = t.image_id.clone();
                if t.task_state == task::UNSHELVING && self.vm_state == vm::SHELVED_OFFLOADED {
                    self.host.clear();
                    self.node.clear();
                }
            }
            E::ServerTaskFinished(f) => {
                self.vm_state = f.vm_state.clone();
                self.power_state = f.power_state;
                self.task_state.clear();
                self.task_image.clear();
            }
            E::ServerPowerSynced(p) => {
                self.vm_state = p.vm_state.clone();
                self.power_state = p.power_state;
            }
            E::ServerFaulted(f) => {
                self.vm_state = vm::ERROR.into();
                self.task_state.clear();
                self.fault = Some(Fault {
                    code: f.code,
                    message: f.message.clone(),
                    details: f.details.clone(),
                });
                if f.host_released {
                    self.host.clear();
                    self.node.clear();
                }
                self.migration = None;
            }
            E::ServerTaskFailed(_) => {
                self.task_state.clear();
                self.task_image.clear();
            }
            E::ServerRenamed(r) => self.name = r.name.clone(),
            E::ServerInterfaceAttached(a) => {
                if let Some(p) = &a.port {
                    self.ports.push(ServerPort::from_pb(p));
                }
            }
            E::ServerInterfaceDetached(d) => self.ports.retain(|p| p.port_id != d.port_id),
            E::ServerDescriptionChanged(d) => self.description = d.description.clone(),
            E::ServerMetadataSet(m) => {
                if m.replace {
                    self.metadata.clear();
                }
                self.metadata
                    .extend(m.items.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            E::ServerMetadataItemDeleted(d) => {
                self.metadata.remove(&d.key);
            }
            E::ServerLocked(l) => {
                self.locked = true;
                self.locked_reason = l.reason.clone();
                self.locked_by = l.by.clone();
            }
            E::ServerUnlocked(_) => {
                self.locked = false;
                self.locked_reason.clear();
                self.locked_by.clear();
            }
            E::ServerMigrationStarted(m) => {
                let new_flavor = m
                    .new_flavor
                    .as_ref()
                    .map(FlavorSpec::from_pb)
                    .unwrap_or_else(|| self.flavor.clone());
                self.migration = Some(Migration {
                    id: m.migration_id.clone(),
                    kind: m.migration_type.clone(),
                    source_host: m.source_host.clone(),
                    dest_host: m.dest_host.clone(),
                    old_flavor: self.flavor.clone(),
                    new_flavor,
                    scheduled: false,
                    prior_vm_state: self.vm_state.clone(),
                    prior_power_state: self.power_state,
                });
                self.task_state = match m.migration_type.as_str() {
                    "live-migration" => task::MIGRATING,
                    "evacuation" => task::REBUILDING,
                    _ => task::RESIZE_PREP,
                }
                .into();
                self.action = m.action.clone();
                self.request_id = m.request_id.clone();
            }
            E::ServerMigrationScheduled(s) => {
                if let Some(m) = &mut self.migration {
                    m.dest_host = s.dest_host.clone();
                    m.scheduled = true;
                }
                if self.task_state == task::RESIZE_PREP {
                    self.task_state = task::RESIZE_MIGRATING.into();
                }
            }
            E::ServerMigrationFinished(f) => {
                if let Some(m) = &self.migration {
                    self.host = m.dest_host.clone();
                    self.node = m.dest_host.clone();
                    self.flavor = m.new_flavor.clone();
                    if f.needs_confirm {
                        self.vm_state = vm::RESIZED.into();
                    } else {
                        // Live migration keeps the state; evacuation rebuilds the server running.
                        if m.kind == "evacuation" {
                            self.vm_state = vm::ACTIVE.into();
                            self.power_state = power::RUNNING;
                        }
                        self.migration = None;
                    }
                }
                self.task_state.clear();
            }
            E::ServerResizeConfirmed(c) => {
                if let Some(m) = self.migration.take() {
                    self.vm_state = m.prior_vm_state;
                    self.power_state = m.prior_power_state;
                }
                self.action = "confirmResize".into();
                self.request_id = c.request_id.clone();
            }
            E::ServerResizeReverted(_) => {
                if let Some(m) = self.migration.take() {
                    self.host = m.source_host.clone();
                    self.node = m.source_host;
                    self.flavor = m.old_flavor;
                    self.vm_state = m.prior_vm_state;
                    self.power_state = m.prior_power_state;
                }
                self.task_state.clear();
            }
            E::ServerMigrationFailed(_) => {
                self.migration = None;
                self.task_state.clear();
            }
            E::ServerRebuilt(r) => {
                if !r.image_id.is_empty() {
                    self.image_id = r.image_id.clone();
                }
                self.vm_state = vm::ACTIVE.into();
                self.power_state = power::RUNNING;
                self.task_state.clear();
                self.task_image.clear();
                self.fault = None;
            }
            E::ServerShelved(s) => {
                self.task_state.clear();
                self.power_state = power::SHUTDOWN;
                if s.offloaded {
                    self.vm_state = vm::SHELVED_OFFLOADED.into();
                    self.host.clear();
                    self.node.clear();
                } else {
                    self.vm_state = vm::SHELVED.into();
                }
            }
            E::ServerDeleted(_) => {
                self.vm_state = vm::DELETED.into();
                self.task_state.clear();
                self.power_state = power::NOSTATE;
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

    fn flavor(id: &str, vcpus: u32) -> pb::FlavorSnapshot {
        pb::FlavorSnapshot {
            flavor_id: id.into(),
            name: format!("f{id}"),
            vcpus,
            ram_mb: 512,
            disk_gb: 1,
            ..Default::default()
        }
    }

    fn created() -> E {
        E::ServerCreated(pb::ServerCreated {
            project_id: "p".into(),
            user_id: "u".into(),
            name: "vm".into(),
            flavor: Some(flavor("1", 1)),
            image_id: "img".into(),
            request_id: "req-1".into(),
            networks: "none".into(),
            ..Default::default()
        })
    }

    fn scheduled() -> E {
        E::ServerScheduled(pb::ServerScheduled {
            host: "h1".into(),
            node: "h1".into(),
            availability_zone: "nova".into(),
        })
    }

    fn spawned() -> E {
        E::ServerSpawned(pb::ServerSpawned {
            power_state: power::RUNNING,
        })
    }

    fn begin(action: Action) -> ServerCommand {
        ServerCommand::Begin {
            action,
            request_id: "req-2".into(),
            admin: false,
        }
    }

    #[test]
    fn boot_goes_build_then_active() {
        let s = given::<Server>([created()]).state();
        assert_eq!((s.status(), s.task_state.as_str()), ("BUILD", "scheduling"));
        let s = given::<Server>([created(), scheduled()]).state();
        assert_eq!((s.status(), s.task_state.as_str()), ("BUILD", "spawning"));
        let s = given::<Server>([created(), scheduled(), spawned()]).state();
        assert_eq!(
            (s.status(), s.power_state, s.host.as_str()),
            ("ACTIVE", 1, "h1")
        );
    }

    #[test]
    fn interfaces_attach_once_and_detach() {
        let port = ServerPort {
            port_id: "p1".into(),
            network_id: "n1".into(),
            created: true,
        };
        let attach = || ServerCommand::AttachInterface {
            port: port.clone(),
            admin: false,
        };
        let s = given::<Server>([created(), scheduled(), spawned()])
            .when(attach())
            .then_ok();
        assert_eq!(s.ports, vec![port.clone()]);
        let attached = E::ServerInterfaceAttached(pb::ServerInterfaceAttached {
            port: Some(port.to_pb()),
        });
        let h = [created(), scheduled(), spawned(), attached];
        assert!(
            given::<Server>(h.clone())
                .when(attach())
                .then_ok()
                .ports
                .len()
                == 1
        );
        let s = given::<Server>(h.clone())
            .when(ServerCommand::DetachInterface {
                port_id: "p1".into(),
                admin: false,
            })
            .then_ok();
        assert!(s.ports.is_empty());
        given::<Server>(h)
            .when(ServerCommand::DetachInterface {
                port_id: "nope".into(),
                admin: false,
            })
            .then_err_where(|e| matches!(e, DomainError::NotFound { .. }));
    }

    #[test]
    fn late_or_repeated_steps_are_refused() {
        // A second schedule after the first, a spawn before scheduling, a finish of another task.
        given::<Server>([created(), scheduled()])
            .when(ServerCommand::Schedule {
                host: "h2".into(),
                node: "h2".into(),
                availability_zone: "nova".into(),
            })
            .then_err_where(|e| matches!(e, DomainError::Conflict(_)));
        given::<Server>([created()])
            .when(ServerCommand::Spawned { power_state: 1 })
            .then_err_where(|e| matches!(e, DomainError::Conflict(_)));
        given::<Server>([created(), scheduled(), spawned()])
            .when(ServerCommand::FinishTask {
                task: task::POWERING_OFF.into(),
                vm_state: vm::STOPPED.into(),
                power_state: power::SHUTDOWN,
            })
            .then_err_where(|e| matches!(e, DomainError::Conflict(_)));
    }

    #[test]
    fn actions_follow_novas_state_rules() {
        let active = [created(), scheduled(), spawned()];
        // Start of a running server is a 409, stop works.
        given::<Server>(active.clone())
            .when(begin(Action::Start))
            .then_err_where(
                |e| matches!(e, DomainError::Conflict(m) if m.contains("vm_state active")),
            );
        let s = given::<Server>(active.clone())
            .when(begin(Action::Stop))
            .then(vec![task_started(task::POWERING_OFF, "stop", "req-2", "")]);
        assert_eq!(s.status(), "ACTIVE");
        // While a task runs, other actions wait (409), delete does not.
        let stopping = {
            let mut h = active.to_vec();
            h.push(task_started(task::POWERING_OFF, "stop", "req-2", ""));
            h
        };
        given::<Server>(stopping.clone())
            .when(begin(Action::Pause))
            .then_err_where(|e| matches!(e, DomainError::Conflict(_)));
        given::<Server>(stopping)
            .when(begin(Action::Delete))
            .then(vec![task_started(task::DELETING, "delete", "req-2", "")]);
    }

    #[test]
    fn locked_server_refuses_owner_actions_but_not_admin() {
        let locked = [
            created(),
            scheduled(),
            spawned(),
            E::ServerLocked(pb::ServerLocked {
                reason: "maint".into(),
                by: "admin".into(),
                request_id: "r".into(),
            }),
        ];
        given::<Server>(locked.clone())
            .when(begin(Action::Stop))
            .then_err_where(|e| matches!(e, DomainError::Conflict(m) if m.contains("locked")));
        given::<Server>(locked.clone())
            .when(ServerCommand::Unlock {
                admin: false,
                request_id: "r".into(),
            })
            .then_err_where(|e| matches!(e, DomainError::Forbidden(_)));
        given::<Server>(locked)
            .when(ServerCommand::Begin {
                action: Action::Stop,
                request_id: "r".into(),
                admin: true,
            })
            .then(vec![task_started(task::POWERING_OFF, "stop", "r", "")]);
    }

    #[test]
    fn resize_then_revert_restores_host_and_flavor() {
        let mut h = vec![created(), scheduled(), spawned()];
        h.push(E::ServerMigrationStarted(pb::ServerMigrationStarted {
            migration_id: "m1".into(),
            migration_type: "resize".into(),
            source_host: "h1".into(),
            new_flavor: Some(flavor("2", 4)),
            request_id: "r".into(),
            action: "resize".into(),
            ..Default::default()
        }));
        assert_eq!(given::<Server>(h.clone()).state().status(), "RESIZE");
        h.push(E::ServerMigrationScheduled(pb::ServerMigrationScheduled {
            dest_host: "h2".into(),
        }));
        h.push(E::ServerMigrationFinished(pb::ServerMigrationFinished {
            needs_confirm: true,
        }));
        let s = given::<Server>(h.clone()).state();
        assert_eq!(
            (s.status(), s.host.as_str(), s.flavor.vcpus),
            ("VERIFY_RESIZE", "h2", 4)
        );
        h.push(task_started(
            task::RESIZE_REVERTING,
            "revertResize",
            "r2",
            "",
        ));
        assert_eq!(given::<Server>(h.clone()).state().status(), "REVERT_RESIZE");
        h.push(E::ServerResizeReverted(pb::ServerResizeReverted {}));
        let s = given::<Server>(h).state();
        assert_eq!(
            (s.status(), s.host.as_str(), s.flavor.vcpus),
            ("ACTIVE", "h1", 1)
        );
        assert!(s.migration.is_none());
    }

    #[test]
    fn resize_to_same_flavor_or_smaller_disk_is_refused() {
        let active = [created(), scheduled(), spawned()];
        let mut smaller = FlavorSpec::from_pb(&flavor("3", 1));
        smaller.disk_gb = 0;
        for f in [FlavorSpec::from_pb(&flavor("1", 1)), smaller] {
            given::<Server>(active.clone())
                .when(ServerCommand::StartMigration {
                    migration_id: "m".into(),
                    kind: "resize".into(),
                    dest_host: String::new(),
                    new_flavor: Some(f),
                    request_id: "r".into(),
                    admin: false,
                })
                .then_err_where(|e| matches!(e, DomainError::Invalid(_)));
        }
    }

    #[test]
    fn power_sync_records_a_stopped_vm() {
        let s = given::<Server>([created(), scheduled(), spawned()])
            .when(ServerCommand::SyncPower {
                power_state: power::SHUTDOWN,
            })
            .then(vec![E::ServerPowerSynced(pb::ServerPowerSynced {
                vm_state: vm::STOPPED.into(),
                power_state: power::SHUTDOWN,
            })]);
        assert_eq!(s.status(), "SHUTOFF");
    }

    #[test]
    fn shelve_offload_drops_the_host_and_unshelve_reschedules() {
        let mut h = vec![created(), scheduled(), spawned()];
        h.push(task_started(task::SHELVING, "shelve", "r", ""));
        h.push(E::ServerShelved(pb::ServerShelved { offloaded: true }));
        let s = given::<Server>(h.clone()).state();
        assert_eq!((s.status(), s.host.as_str()), ("SHELVED_OFFLOADED", ""));
        h.push(task_started(task::UNSHELVING, "unshelve", "r", ""));
        given::<Server>(h)
            .when(ServerCommand::Schedule {
                host: "h3".into(),
                node: "h3".into(),
                availability_zone: "nova".into(),
            })
            .then(vec![E::ServerScheduled(pb::ServerScheduled {
                host: "h3".into(),
                node: "h3".into(),
                availability_zone: "nova".into(),
            })]);
    }
}
