//! Block storage (Cinder): volumes, snapshots, backups, volume types, backends (cinder-volume services with
//! capacity claims) and quotas, each a pure aggregate.
//!
//! Streams: `volume-<uuid>`, `volume-snapshot-<uuid>`, `volume-backup-<uuid>`, `volume-type-<uuid>`,
//! `volume-backend-<name>`, `volume-usage-<project>`, `volume-quota-<project>`.

mod backend;
mod backup;
mod quota;
mod snapshot;
mod vtype;

pub use backend::{Backend, BackendCommand};
pub use backup::{backup_status, Backup, BackupCommand};
pub use quota::{
    default_volume_limits, VolumeAmounts, VolumeQuota, VolumeQuotaCommand, VolumeUsage,
    VolumeUsageCommand, VOLUME_QUOTA_NAMES,
};
pub use snapshot::{Snapshot, SnapshotCommand};
pub use vtype::{VolumeType, VolumeTypeCommand};

/// Cinder's aggregate types, for generic readers (`crate::registry`).
pub const AGGREGATES: &[crate::registry::StateFolder] = &[
    crate::registry::folder::<Volume>(),
    crate::registry::folder::<Snapshot>(),
    crate::registry::folder::<Backup>(),
    crate::registry::folder::<VolumeType>(),
    crate::registry::folder::<Backend>(),
    crate::registry::folder::<VolumeUsage>(),
    crate::registry::folder::<VolumeQuota>(),
];

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use strata_proto::volume as pb;
use strata_proto::VolumeEvent as E;

use crate::aggregate::{Aggregate, DomainError};

/// Cinder's volume statuses used here.
pub mod status {
    pub const CREATING: &str = "creating";
    pub const AVAILABLE: &str = "available";
    pub const ATTACHING: &str = "attaching";
    pub const IN_USE: &str = "in-use";
    pub const DETACHING: &str = "detaching";
    pub const DELETING: &str = "deleting";
    pub const EXTENDING: &str = "extending";
    pub const RETYPING: &str = "retyping";
    pub const UPLOADING: &str = "uploading";
    pub const REVERTING: &str = "reverting";
    pub const BACKING_UP: &str = "backing-up";
    pub const RESTORING: &str = "restoring-backup";
    pub const ERROR: &str = "error";
    pub const ERROR_DELETING: &str = "error_deleting";
    pub const ERROR_EXTENDING: &str = "error_extending";
    pub const DELETED: &str = "deleted";
}

/// Longest volume name and description, metadata key and value (Cinder's limits).
pub const NAME_MAX: usize = 255;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Attachment {
    pub server_id: String,
    pub host: String,
    pub mountpoint: String,
    pub mode: String,
    /// false while reserved (attaching).
    pub attached: bool,
    /// Being detached (the volume shows `detaching`).
    #[serde(default)]
    pub detaching: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Volume {
    pub exists: bool,
    pub project_id: String,
    pub user_id: String,
    pub name: String,
    pub description: String,
    pub size_gb: u64,
    pub volume_type_id: String,
    pub availability_zone: String,
    pub source_image_id: String,
    pub source_snapshot_id: String,
    pub source_volume_id: String,
    pub backup_id: String,
    pub metadata: BTreeMap<String, String>,
    pub multiattach: bool,
    pub bootable: bool,
    pub readonly: bool,
    pub status: String,
    /// The backend ("host@backend#pool"), "" until scheduled.
    pub host: String,
    pub provider_location: String,
    pub image_metadata: BTreeMap<String, String>,
    pub attachments: BTreeMap<String, Attachment>,
    /// The status to return to after a task (available or in-use).
    pub resting_status: String,
    /// extending: the new size; retyping/uploading/reverting/...: the target id.
    pub task_size_gb: u64,
    pub task_target: String,
    pub request_id: String,
    pub fault: String,
}

impl Volume {
    pub fn attach_status(&self) -> &'static str {
        if self.attachments.values().any(|a| a.attached) {
            "attached"
        } else if self.attachments.is_empty() {
            "detached"
        } else {
            "attaching"
        }
    }

    pub fn is_deleted(&self) -> bool {
        self.status == status::DELETED
    }

    fn check_live(&self) -> Result<(), DomainError> {
        if !self.exists || self.is_deleted() {
            return Err(DomainError::NotFound {
                kind: "volume",
                id: self.name.clone(),
            });
        }
        Ok(())
    }

    fn rest(&self) -> &'static str {
        if self.attachments.is_empty() {
            status::AVAILABLE
        } else if self.attachments.values().any(|a| a.detaching) {
            status::DETACHING
        } else {
            status::IN_USE
        }
    }

    /// The attachment a detach step names, or the only one when it names none.
    fn attachment_for_detach(&self, attachment_id: &Option<String>) -> Result<String, DomainError> {
        match attachment_id {
            Some(a) if self.attachments.contains_key(a) => Ok(a.clone()),
            Some(a) => Err(DomainError::NotFound {
                kind: "attachment",
                id: a.clone(),
            }),
            None if self.attachments.len() == 1 => {
                Ok(self.attachments.keys().next().cloned().unwrap_or_default())
            }
            None => Err(DomainError::Invalid(
                "Invalid volume: Detach volume failed: More than one attachment, but no attachment_id provided.".into(),
            )),
        }
    }

    fn in_state(&self, what: &str, allowed: &[&str]) -> DomainError {
        DomainError::Invalid(format!(
            "Invalid volume: Volume status must be {} to {what}, but current status is: {}.",
            allowed.join(" or "),
            self.status
        ))
    }
}

/// A task a user starts on a volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeTask {
    Extend {
        new_size_gb: u64,
        allow_in_use: bool,
    },
    Delete {
        force: bool,
    },
    Retype {
        volume_type_id: String,
    },
    UploadImage {
        image_id: String,
        force: bool,
    },
    Revert {
        snapshot_id: String,
    },
    Backup {
        force: bool,
    },
    Restore {
        backup_id: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum VolumeCommand {
    Create(Box<pb::VolumeCreated>),
    Schedule {
        host: String,
    },
    MadeAvailable {
        provider_location: String,
        bootable: bool,
        image_metadata: BTreeMap<String, String>,
    },
    /// The work of `expected` status failed: the volume shows `status` (error, error_extending ...).
    Fail {
        expected: String,
        status: String,
        message: String,
        backend_released: bool,
    },
    Begin {
        task: VolumeTask,
        request_id: String,
    },
    /// The task of status `expected` ended well.
    Finish {
        expected: String,
    },
    Extended {
        size_gb: u64,
    },
    Retyped {
        volume_type_id: String,
    },
    Rename(String),
    SetDescription(String),
    SetMetadata {
        items: BTreeMap<String, String>,
        replace: bool,
    },
    DeleteMetadataItem(String),
    SetBootable(bool),
    SetReadonly(bool),
    ResetStatus {
        status: String,
        attach_status: String,
    },
    Attach {
        attachment_id: String,
        server_id: String,
        host: String,
        mountpoint: String,
        mode: String,
        complete: bool,
    },
    CompleteAttachment {
        attachment_id: String,
        mountpoint: String,
    },
    Detach {
        attachment_id: String,
    },
    /// Detaching begins (`None`: the volume's only attachment).
    BeginDetaching {
        attachment_id: Option<String>,
    },
    /// The detach is given up: the detaching attachments are attached again.
    RollDetaching,
    /// The attached server now runs on compute host `host`.
    MoveAttachment {
        attachment_id: String,
        host: String,
    },
    Deleted,
}

fn check_text(field: &str, v: &str) -> Result<(), DomainError> {
    if v.chars().count() > NAME_MAX {
        return Err(DomainError::Invalid(format!(
            "Invalid input for field/attribute {field}. Value: {v}. is too long"
        )));
    }
    Ok(())
}

fn check_metadata(items: &BTreeMap<String, String>) -> Result<(), DomainError> {
    for (k, v) in items {
        if k.is_empty() {
            return Err(DomainError::Invalid(
                "Invalid input received: metadata keys must not be empty".into(),
            ));
        }
        check_text("metadata", k)?;
        check_text("metadata", v)?;
    }
    Ok(())
}

impl Aggregate for Volume {
    type Command = VolumeCommand;
    type Event = E;
    const KIND: &'static str = "volume";

    fn decide(&self, cmd: &VolumeCommand) -> Result<Vec<E>, DomainError> {
        use status as st;
        use VolumeCommand as C;
        if !matches!(cmd, C::Create(_)) {
            self.check_live()?;
        }
        let conflict = |m: &str| DomainError::Conflict(m.to_string());
        Ok(match cmd {
            C::Create(c) => {
                if self.exists {
                    return Err(DomainError::AlreadyExists {
                        kind: "volume",
                        detail: "id already used".into(),
                    });
                }
                if c.size_gb == 0 {
                    return Err(DomainError::Invalid(
                        "Invalid input received: Volume size must be an integer and greater than 0"
                            .into(),
                    ));
                }
                check_text("name", &c.name)?;
                check_text("description", &c.description)?;
                let metadata = c.metadata.clone().into_iter().collect();
                check_metadata(&metadata)?;
                vec![E::VolumeCreated((**c).clone())]
            }
            C::Schedule { host } => {
                if self.status != st::CREATING || !self.host.is_empty() {
                    return Err(conflict("the volume is not waiting for a backend"));
                }
                vec![E::VolumeScheduled(pb::VolumeScheduled {
                    host: host.clone(),
                })]
            }
            C::MadeAvailable {
                provider_location,
                bootable,
                image_metadata,
            } => {
                if self.status != st::CREATING || self.host.is_empty() {
                    return Err(conflict("the volume is not being created on a backend"));
                }
                vec![E::VolumeMadeAvailable(pb::VolumeMadeAvailable {
                    provider_location: provider_location.clone(),
                    bootable: *bootable,
                    image_metadata: image_metadata.clone().into_iter().collect(),
                })]
            }
            C::Fail {
                expected,
                status,
                message,
                backend_released,
            } => {
                if self.status != *expected {
                    return Err(conflict("the volume is no longer doing that work"));
                }
                vec![E::VolumeFailed(pb::VolumeFailed {
                    status: status.clone(),
                    message: message.clone(),
                    backend_released: *backend_released,
                })]
            }
            C::Begin { task, request_id } => {
                let (new_status, size, target) = match task {
                    VolumeTask::Extend {
                        new_size_gb,
                        allow_in_use,
                    } => {
                        let allowed: &[&str] = if *allow_in_use {
                            &[st::AVAILABLE, st::IN_USE]
                        } else {
                            &[st::AVAILABLE]
                        };
                        if !allowed.contains(&self.status.as_str()) {
                            return Err(self.in_state("extend", allowed));
                        }
                        if *new_size_gb <= self.size_gb {
                            return Err(DomainError::Invalid(format!(
                                "Invalid input received: New size for extend must be greater than current size. (current: {}, extended: {new_size_gb}).",
                                self.size_gb
                            )));
                        }
                        (st::EXTENDING, *new_size_gb, String::new())
                    }
                    VolumeTask::Delete { force } => {
                        if self.status == st::DELETING {
                            return Ok(vec![]);
                        }
                        if !self.attachments.is_empty() {
                            return Err(DomainError::Invalid(
                                "Invalid volume: Volume status must be available or error or error_restoring or error_extending or error_managing and must not be migrating, attached, belong to a group, have snapshots, awaiting a transfer, or be disassociated from snapshots after volume transfer.".into(),
                            ));
                        }
                        let allowed = [
                            st::AVAILABLE,
                            st::ERROR,
                            "error_restoring",
                            st::ERROR_EXTENDING,
                            st::ERROR_DELETING,
                            "error_managing",
                        ];
                        if !force && !allowed.contains(&self.status.as_str()) {
                            return Err(DomainError::Invalid(format!(
                                "Invalid volume: Volume status must be available or error or error_restoring or error_extending or error_managing and must not be migrating, attached, belong to a group, have snapshots, awaiting a transfer, or be disassociated from snapshots after volume transfer. (current status: {})",
                                self.status
                            )));
                        }
                        (st::DELETING, 0, String::new())
                    }
                    VolumeTask::Retype { volume_type_id } => {
                        let allowed = [st::AVAILABLE, st::IN_USE];
                        if !allowed.contains(&self.status.as_str()) {
                            return Err(self.in_state("retype", &allowed));
                        }
                        if *volume_type_id == self.volume_type_id {
                            return Err(DomainError::Invalid(
                                "Invalid input received: Retype requested with the same volume type."
                                    .into(),
                            ));
                        }
                        (st::RETYPING, 0, volume_type_id.clone())
                    }
                    VolumeTask::UploadImage { image_id, force } => {
                        let allowed: &[&str] = if *force {
                            &[st::AVAILABLE, st::IN_USE]
                        } else {
                            &[st::AVAILABLE]
                        };
                        if !allowed.contains(&self.status.as_str()) {
                            return Err(self.in_state("upload to image", allowed));
                        }
                        (st::UPLOADING, 0, image_id.clone())
                    }
                    VolumeTask::Revert { snapshot_id } => {
                        if self.status != st::AVAILABLE {
                            return Err(self.in_state("revert", &[st::AVAILABLE]));
                        }
                        (st::REVERTING, 0, snapshot_id.clone())
                    }
                    VolumeTask::Backup { force } => {
                        let allowed: &[&str] = if *force {
                            &[st::AVAILABLE, st::IN_USE]
                        } else {
                            &[st::AVAILABLE]
                        };
                        if !allowed.contains(&self.status.as_str()) {
                            return Err(self.in_state("back up", allowed));
                        }
                        (st::BACKING_UP, 0, String::new())
                    }
                    VolumeTask::Restore { backup_id } => {
                        if self.status != st::AVAILABLE {
                            return Err(self.in_state("restore a backup into", &[st::AVAILABLE]));
                        }
                        (st::RESTORING, 0, backup_id.clone())
                    }
                };
                vec![E::VolumeTaskStarted(pb::VolumeTaskStarted {
                    status: new_status.into(),
                    request_id: request_id.clone(),
                    new_size_gb: size,
                    target,
                })]
            }
            C::Finish { expected } => {
                if self.status != *expected {
                    return Err(conflict("the volume is no longer doing that work"));
                }
                vec![E::VolumeTaskFinished(pb::VolumeTaskFinished {
                    status: self.rest().into(),
                })]
            }
            C::Extended { size_gb } => {
                if self.status != st::EXTENDING {
                    return Err(conflict("the volume is not extending"));
                }
                vec![
                    E::VolumeExtended(pb::VolumeExtended { size_gb: *size_gb }),
                    E::VolumeTaskFinished(pb::VolumeTaskFinished {
                        status: self.rest().into(),
                    }),
                ]
            }
            C::Retyped { volume_type_id } => {
                if self.status != st::RETYPING {
                    return Err(conflict("the volume is not retyping"));
                }
                vec![
                    E::VolumeRetyped(pb::VolumeRetyped {
                        volume_type_id: volume_type_id.clone(),
                    }),
                    E::VolumeTaskFinished(pb::VolumeTaskFinished {
                        status: self.rest().into(),
                    }),
                ]
            }
            C::Rename(name) => {
                check_text("name", name)?;
                if *name == self.name {
                    return Ok(vec![]);
                }
                vec![E::VolumeRenamed(pb::VolumeRenamed { name: name.clone() })]
            }
            C::SetDescription(d) => {
                check_text("description", d)?;
                if *d == self.description {
                    return Ok(vec![]);
                }
                vec![E::VolumeDescriptionChanged(pb::VolumeDescriptionChanged {
                    description: d.clone(),
                })]
            }
            C::SetMetadata { items, replace } => {
                check_metadata(items)?;
                vec![E::VolumeMetadataSet(pb::VolumeMetadataSet {
                    items: items.clone().into_iter().collect(),
                    replace: *replace,
                })]
            }
            C::DeleteMetadataItem(key) => {
                if !self.metadata.contains_key(key) {
                    return Err(DomainError::NotFound {
                        kind: "metadata key",
                        id: key.clone(),
                    });
                }
                vec![E::VolumeMetadataItemDeleted(
                    pb::VolumeMetadataItemDeleted { key: key.clone() },
                )]
            }
            C::SetBootable(b) => vec![E::VolumeBootableSet(pb::VolumeBootableSet { bootable: *b })],
            C::SetReadonly(r) => vec![E::VolumeReadonlySet(pb::VolumeReadonlySet { readonly: *r })],
            C::ResetStatus {
                status,
                attach_status,
            } => vec![E::VolumeStatusReset(pb::VolumeStatusReset {
                status: status.clone(),
                attach_status: attach_status.clone(),
            })],
            C::Attach {
                attachment_id,
                server_id,
                host,
                mountpoint,
                mode,
                complete,
            } => {
                let ok = self.status == st::AVAILABLE
                    || (self.multiattach
                        && matches!(self.status.as_str(), st::IN_USE | st::ATTACHING));
                if !ok {
                    return Err(DomainError::Invalid(format!(
                        "Invalid volume: Volume {} status must be available or in-use (multiattach), but current status is: {}",
                        self.name, self.status
                    )));
                }
                if self.attachments.values().any(|a| a.server_id == *server_id) {
                    return Err(DomainError::Invalid(format!(
                        "Invalid volume: volume is already attached to server {server_id}"
                    )));
                }
                vec![E::VolumeAttachmentCreated(pb::VolumeAttachmentCreated {
                    attachment_id: attachment_id.clone(),
                    server_id: server_id.clone(),
                    host: host.clone(),
                    mountpoint: mountpoint.clone(),
                    mode: mode.clone(),
                    attached: *complete,
                })]
            }
            C::CompleteAttachment {
                attachment_id,
                mountpoint,
            } => {
                match self.attachments.get(attachment_id) {
                    None => {
                        return Err(DomainError::NotFound {
                            kind: "attachment",
                            id: attachment_id.clone(),
                        })
                    }
                    Some(a) if a.attached => return Ok(vec![]),
                    Some(_) => {}
                }
                vec![E::VolumeAttachmentCompleted(
                    pb::VolumeAttachmentCompleted {
                        attachment_id: attachment_id.clone(),
                        mountpoint: mountpoint.clone(),
                    },
                )]
            }
            C::Detach { attachment_id } => {
                if !self.attachments.contains_key(attachment_id) {
                    return Err(DomainError::NotFound {
                        kind: "attachment",
                        id: attachment_id.clone(),
                    });
                }
                vec![E::VolumeAttachmentDeleted(pb::VolumeAttachmentDeleted {
                    attachment_id: attachment_id.clone(),
                })]
            }
            C::BeginDetaching { attachment_id } => {
                let aid = self.attachment_for_detach(attachment_id)?;
                let a = &self.attachments[&aid];
                if a.detaching {
                    return Ok(vec![]);
                }
                if !a.attached || !matches!(self.status.as_str(), st::IN_USE | st::DETACHING) {
                    return Err(DomainError::Invalid(
                        "Invalid volume: Unable to detach volume. Volume status must be 'in-use' and attach_status must be 'attached' to detach.".into(),
                    ));
                }
                vec![E::VolumeDetachingStarted(pb::VolumeDetachingStarted {
                    attachment_id: aid,
                })]
            }
            C::RollDetaching => self
                .attachments
                .iter()
                .filter(|(_, a)| a.detaching)
                .map(|(aid, _)| {
                    E::VolumeDetachingRolledBack(pb::VolumeDetachingRolledBack {
                        attachment_id: aid.clone(),
                    })
                })
                .collect(),
            C::MoveAttachment {
                attachment_id,
                host,
            } => match self.attachments.get(attachment_id) {
                None => {
                    return Err(DomainError::NotFound {
                        kind: "attachment",
                        id: attachment_id.clone(),
                    })
                }
                Some(a) if a.host == *host => vec![],
                Some(_) => vec![E::VolumeAttachmentMoved(pb::VolumeAttachmentMoved {
                    attachment_id: attachment_id.clone(),
                    host: host.clone(),
                })],
            },
            C::Deleted => {
                if self.status != st::DELETING {
                    return Err(conflict("the volume is not being deleted"));
                }
                vec![E::VolumeDeleted(pb::VolumeDeleted {})]
            }
        })
    }

    fn apply(mut self, event: &E) -> Self {
        use status as st;
        match event {
            E::VolumeCreated(c) => {
                self = Volume {
                    exists: true,
                    project_id: c.project_id.clone(),
                    user_id: c.user_id.clone(),
                    name: c.name.clone(),
                    description: c.description.clone(),
                    size_gb: c.size_gb,
                    volume_type_id: c.volume_type_id.clone(),
                    availability_zone: c.availability_zone.clone(),
                    source_image_id: c.source_image_id.clone(),
                    source_snapshot_id: c.source_snapshot_id.clone(),
                    source_volume_id: c.source_volume_id.clone(),
                    backup_id: c.backup_id.clone(),
                    metadata: c.metadata.clone().into_iter().collect(),
                    multiattach: c.multiattach,
                    bootable: c.bootable,
                    status: st::CREATING.into(),
                    request_id: c.request_id.clone(),
                    ..Volume::default()
                };
            }
            E::VolumeScheduled(s) => self.host = s.host.clone(),
            E::VolumeMadeAvailable(a) => {
                self.status = st::AVAILABLE.into();
                self.provider_location = a.provider_location.clone();
                self.bootable = self.bootable || a.bootable;
                self.image_metadata = a.image_metadata.clone().into_iter().collect();
            }
            E::VolumeFailed(f) => {
                self.status = f.status.clone();
                self.fault = f.message.clone();
                if f.backend_released {
                    self.host.clear();
                }
                self.task_size_gb = 0;
                self.task_target.clear();
            }
            E::VolumeTaskStarted(t) => {
                self.resting_status = self.rest().into();
                self.status = t.status.clone();
                self.request_id = t.request_id.clone();
                self.task_size_gb = t.new_size_gb;
                self.task_target = t.target.clone();
            }
            E::VolumeTaskFinished(f) => {
                self.status = f.status.clone();
                self.task_size_gb = 0;
                self.task_target.clear();
            }
            E::VolumeExtended(x) => self.size_gb = x.size_gb,
            E::VolumeRetyped(r) => self.volume_type_id = r.volume_type_id.clone(),
            E::VolumeRenamed(r) => self.name = r.name.clone(),
            E::VolumeDescriptionChanged(d) => self.description = d.description.clone(),
            E::VolumeMetadataSet(m) => {
                if m.replace {
                    self.metadata.clear();
                }
                self.metadata
                    .extend(m.items.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            E::VolumeMetadataItemDeleted(d) => {
                self.metadata.remove(&d.key);
            }
            E::VolumeBootableSet(b) => self.bootable = b.bootable,
            E::VolumeReadonlySet(r) => self.readonly = r.readonly,
            E::VolumeStatusReset(r) => {
                self.status = r.status.clone();
                if r.attach_status == "detached" {
                    self.attachments.clear();
                }
            }
            E::VolumeAttachmentCreated(a) => {
                self.attachments.insert(
                    a.attachment_id.clone(),
                    Attachment {
                        server_id: a.server_id.clone(),
                        host: a.host.clone(),
                        mountpoint: a.mountpoint.clone(),
                        mode: a.mode.clone(),
                        attached: a.attached,
                        detaching: false,
                    },
                );
                self.status = if a.attached {
                    st::IN_USE.into()
                } else {
                    st::ATTACHING.into()
                };
            }
            E::VolumeAttachmentCompleted(c) => {
                if let Some(a) = self.attachments.get_mut(&c.attachment_id) {
                    a.attached = true;
                    if !c.mountpoint.is_empty() {
                        a.mountpoint = c.mountpoint.clone();
                    }
                }
                self.status = st::IN_USE.into();
            }
            E::VolumeAttachmentDeleted(d) => {
                self.attachments.remove(&d.attachment_id);
                self.status = self.rest().into();
            }
            E::VolumeDetachingStarted(d) => {
                if let Some(a) = self.attachments.get_mut(&d.attachment_id) {
                    a.detaching = true;
                }
                self.status = self.rest().into();
            }
            E::VolumeDetachingRolledBack(d) => {
                if let Some(a) = self.attachments.get_mut(&d.attachment_id) {
                    a.detaching = false;
                }
                self.status = self.rest().into();
            }
            E::VolumeAttachmentMoved(m) => {
                if let Some(a) = self.attachments.get_mut(&m.attachment_id) {
                    a.host = m.host.clone();
                }
            }
            E::VolumeDeleted(_) => self.status = st::DELETED.into(),
            _ => {}
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gwt::given;

    fn created(size: u64) -> E {
        E::VolumeCreated(pb::VolumeCreated {
            project_id: "p".into(),
            name: "v".into(),
            size_gb: size,
            ..Default::default()
        })
    }

    fn available() -> Vec<E> {
        vec![
            created(1),
            E::VolumeScheduled(pb::VolumeScheduled {
                host: "strata@file-1#file-1".into(),
            }),
            E::VolumeMadeAvailable(pb::VolumeMadeAvailable::default()),
        ]
    }

    fn begin(task: VolumeTask) -> VolumeCommand {
        VolumeCommand::Begin {
            task,
            request_id: "r".into(),
        }
    }

    #[test]
    fn create_schedule_available() {
        let s = given::<Volume>(available()).state();
        assert_eq!(
            (s.status.as_str(), s.attach_status()),
            ("available", "detached")
        );
        given::<Volume>([])
            .when(VolumeCommand::Create(Box::default()))
            .then_invalid();
    }

    #[test]
    fn extend_only_grows_and_records_the_size() {
        given::<Volume>(available())
            .when(begin(VolumeTask::Extend {
                new_size_gb: 1,
                allow_in_use: false,
            }))
            .then_invalid();
        let mut h = available();
        h.push(E::VolumeTaskStarted(pb::VolumeTaskStarted {
            status: "extending".into(),
            request_id: "r".into(),
            new_size_gb: 3,
            target: String::new(),
        }));
        let s = given::<Volume>(h)
            .when(VolumeCommand::Extended { size_gb: 3 })
            .then_ok();
        assert_eq!((s.size_gb, s.status.as_str()), (3, "available"));
    }

    #[test]
    fn attached_volumes_cannot_be_deleted_and_detach_makes_them_available() {
        let mut h = available();
        h.push(E::VolumeAttachmentCreated(pb::VolumeAttachmentCreated {
            attachment_id: "a1".into(),
            server_id: "s1".into(),
            attached: true,
            ..Default::default()
        }));
        let s = given::<Volume>(h.clone()).state();
        assert_eq!(
            (s.status.as_str(), s.attach_status()),
            ("in-use", "attached")
        );
        given::<Volume>(h.clone())
            .when(begin(VolumeTask::Delete { force: false }))
            .then_invalid();
        // Not multiattach: a second server is refused.
        given::<Volume>(h.clone())
            .when(VolumeCommand::Attach {
                attachment_id: "a2".into(),
                server_id: "s2".into(),
                host: String::new(),
                mountpoint: String::new(),
                mode: "rw".into(),
                complete: true,
            })
            .then_invalid();
        let moved = given::<Volume>(h.clone())
            .when(VolumeCommand::MoveAttachment {
                attachment_id: "a1".into(),
                host: "fake-1".into(),
            })
            .then_ok();
        assert_eq!(moved.attachments["a1"].host, "fake-1");
        given::<Volume>(h.clone())
            .when(VolumeCommand::MoveAttachment {
                attachment_id: "nope".into(),
                host: "fake-1".into(),
            })
            .then_err_where(|e| matches!(e, DomainError::NotFound { .. }));
        // in-use -> detaching -> rolled back to in-use, or detached to available.
        let detaching = given::<Volume>(h.clone())
            .when(VolumeCommand::BeginDetaching {
                attachment_id: None,
            })
            .then_ok();
        assert_eq!(detaching.status, "detaching");
        let mut hd = h.clone();
        hd.push(E::VolumeDetachingStarted(pb::VolumeDetachingStarted {
            attachment_id: "a1".into(),
        }));
        let rolled = given::<Volume>(hd.clone())
            .when(VolumeCommand::RollDetaching)
            .then_ok();
        assert_eq!(rolled.status, "in-use");
        let gone = given::<Volume>(hd)
            .when(VolumeCommand::Detach {
                attachment_id: "a1".into(),
            })
            .then_ok();
        assert_eq!(gone.status, "available");
        let s = given::<Volume>(h)
            .when(VolumeCommand::Detach {
                attachment_id: "a1".into(),
            })
            .then_ok();
        assert_eq!(s.status, "available");
    }

    #[test]
    fn steps_of_another_task_are_refused() {
        given::<Volume>(available())
            .when(VolumeCommand::Deleted)
            .then_conflict();
        given::<Volume>(available())
            .when(VolumeCommand::Schedule { host: "x".into() })
            .then_conflict();
    }
}
