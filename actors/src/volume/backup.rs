//! `Backup`: a copy of a volume's content kept apart from its backend (stream `volume-backup-<uuid>`).
//!
//! Statuses: `creating` -> `available` | `error`; `available` -> `restoring` -> `available`;
//! `available` | `error` -> `deleting` -> `deleted` (or `error` when the data cannot be removed). An
//! incremental backup names its parent (`parent_id`); a restore names the volume it writes (`restore_volume_id`).
//! Where the bytes live and how long steps took are the volume service's and the projection's business.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use strata_proto::volume as pb;
use strata_proto::VolumeEvent as E;

use crate::aggregate::{Aggregate, DomainError};

/// Cinder's backup statuses.
pub mod backup_status {
    pub const CREATING: &str = "creating";
    pub const AVAILABLE: &str = "available";
    pub const ERROR: &str = "error";
    pub const RESTORING: &str = "restoring";
    pub const DELETING: &str = "deleting";
    pub const DELETED: &str = "deleted";
}

use backup_status as bs;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Backup {
    pub exists: bool,
    pub project_id: String,
    pub user_id: String,
    pub volume_id: String,
    /// The snapshot the data was read from ("" = the volume itself).
    pub snapshot_id: String,
    pub name: String,
    pub description: String,
    pub size_gb: u64,
    /// The backup this one only adds to ("" = a full backup).
    pub parent_id: String,
    pub container: String,
    pub availability_zone: String,
    pub metadata: BTreeMap<String, String>,
    pub status: String,
    pub fail_reason: String,
    /// Chunks and bytes stored by this backup itself (an incremental one stores only what changed).
    pub object_count: u64,
    pub stored_bytes: u64,
    /// Where the data is kept once available: "directory" ("" for backups made before targets were
    /// recorded) or "swift" (objects `<id>/...` in `container` of the project's account).
    #[serde(default)]
    pub target: String,
    /// While `restoring`: the volume being written.
    pub restore_volume_id: String,
    pub request_id: String,
}

impl Backup {
    pub fn is_incremental(&self) -> bool {
        !self.parent_id.is_empty()
    }

    pub fn is_deleted(&self) -> bool {
        self.status == bs::DELETED
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum BackupCommand {
    Create(Box<pb::BackupCreated>),
    /// The data is stored, in `target` ("directory" or "swift"; `container` for swift).
    MadeAvailable {
        object_count: u64,
        stored_bytes: u64,
        target: String,
        container: String,
    },
    /// Creating or deleting failed: the backup is `error`.
    Fail {
        message: String,
    },
    /// Write the backup into `volume_id`.
    BeginRestore {
        volume_id: String,
    },
    /// The restore into `volume_id` ended (well or not: the backup itself is unchanged).
    FinishRestore {
        volume_id: String,
    },
    /// New name and description; the metadata is replaced when given.
    Update {
        name: String,
        description: String,
        metadata: Option<BTreeMap<String, String>>,
    },
    BeginDelete {
        force: bool,
    },
    Deleted,
    /// os-reset_status: `available` or `error`.
    ResetStatus {
        status: String,
    },
}

fn check_text(field: &str, v: &str) -> Result<(), DomainError> {
    if v.chars().count() > super::NAME_MAX {
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

impl Aggregate for Backup {
    type Command = BackupCommand;
    type Event = E;
    const KIND: &'static str = "volume-backup";

    fn decide(&self, cmd: &BackupCommand) -> Result<Vec<E>, DomainError> {
        use BackupCommand as C;
        if !matches!(cmd, C::Create(_)) && (!self.exists || self.is_deleted()) {
            return Err(DomainError::NotFound {
                kind: "backup",
                id: self.name.clone(),
            });
        }
        let conflict = |m: &str| DomainError::Conflict(m.to_string());
        Ok(match cmd {
            C::Create(c) => {
                if self.exists {
                    return Err(DomainError::AlreadyExists {
                        kind: "backup",
                        detail: "id already used".into(),
                    });
                }
                if c.volume_id.is_empty() || c.size_gb == 0 {
                    return Err(DomainError::Invalid(
                        "Invalid input received: a backup needs a volume and a size".into(),
                    ));
                }
                if c.incremental == c.parent_id.is_empty() {
                    return Err(DomainError::Invalid(
                        "Invalid backup: an incremental backup needs a parent, a full one has none"
                            .into(),
                    ));
                }
                check_text("name", &c.name)?;
                check_text("description", &c.description)?;
                check_text("container", &c.container)?;
                check_metadata(&c.metadata.clone().into_iter().collect())?;
                vec![E::BackupCreated((**c).clone())]
            }
            C::MadeAvailable {
                object_count,
                stored_bytes,
                target,
                container,
            } => {
                if self.status != bs::CREATING {
                    return Err(conflict("the backup is not being created"));
                }
                vec![E::BackupMadeAvailable(pb::BackupMadeAvailable {
                    object_count: *object_count,
                    stored_bytes: *stored_bytes,
                    target: target.clone(),
                    container: container.clone(),
                })]
            }
            C::Fail { message } => {
                if !matches!(self.status.as_str(), bs::CREATING | bs::DELETING) {
                    return Err(conflict("the backup is not being created or deleted"));
                }
                vec![E::BackupFailed(pb::BackupFailed {
                    message: message.clone(),
                })]
            }
            C::BeginRestore { volume_id } => {
                if self.status != bs::AVAILABLE {
                    return Err(DomainError::Invalid(
                        "Invalid backup: Backup status must be available".into(),
                    ));
                }
                vec![E::BackupTaskStarted(pb::BackupTaskStarted {
                    status: bs::RESTORING.into(),
                    target_volume_id: volume_id.clone(),
                })]
            }
            C::FinishRestore { volume_id } => {
                if self.status != bs::RESTORING || self.restore_volume_id != *volume_id {
                    return Err(conflict("the backup is not being restored to that volume"));
                }
                vec![E::BackupTaskFinished(pb::BackupTaskFinished {})]
            }
            C::Update {
                name,
                description,
                metadata,
            } => {
                check_text("name", name)?;
                check_text("description", description)?;
                if let Some(m) = metadata {
                    check_metadata(m)?;
                }
                let unchanged = *name == self.name
                    && *description == self.description
                    && metadata.as_ref().is_none_or(|m| *m == self.metadata);
                if unchanged {
                    return Ok(vec![]);
                }
                vec![E::BackupUpdated(pb::BackupUpdated {
                    name: name.clone(),
                    description: description.clone(),
                    metadata: metadata.clone().unwrap_or_default().into_iter().collect(),
                    metadata_set: metadata.is_some(),
                })]
            }
            C::BeginDelete { force } => {
                if self.status == bs::DELETING {
                    return Ok(vec![]);
                }
                // A restore reads the data until it ends, forced or not.
                if self.status == bs::RESTORING {
                    return Err(DomainError::Invalid(
                        "Invalid backup: Backup status must be available or error".into(),
                    ));
                }
                if !force && !matches!(self.status.as_str(), bs::AVAILABLE | bs::ERROR) {
                    return Err(DomainError::Invalid(
                        "Invalid backup: Backup status must be available or error".into(),
                    ));
                }
                vec![E::BackupTaskStarted(pb::BackupTaskStarted {
                    status: bs::DELETING.into(),
                    target_volume_id: String::new(),
                })]
            }
            C::Deleted => {
                if self.status != bs::DELETING {
                    return Err(conflict("the backup is not being deleted"));
                }
                vec![E::BackupDeleted(pb::BackupDeleted {})]
            }
            C::ResetStatus { status } => {
                if !matches!(status.as_str(), bs::AVAILABLE | bs::ERROR) {
                    return Err(DomainError::Invalid(format!(
                        "Invalid input received: Backup status: {status} is invalid, valid statuses are: ['available', 'error']."
                    )));
                }
                vec![E::BackupStatusReset(pb::BackupStatusReset {
                    status: status.clone(),
                })]
            }
        })
    }

    fn apply(mut self, event: &E) -> Self {
        match event {
            E::BackupCreated(c) => {
                self = Backup {
                    exists: true,
                    project_id: c.project_id.clone(),
                    user_id: c.user_id.clone(),
                    volume_id: c.volume_id.clone(),
                    snapshot_id: c.snapshot_id.clone(),
                    name: c.name.clone(),
                    description: c.description.clone(),
                    size_gb: c.size_gb,
                    parent_id: c.parent_id.clone(),
                    container: c.container.clone(),
                    availability_zone: c.availability_zone.clone(),
                    metadata: c.metadata.clone().into_iter().collect(),
                    status: bs::CREATING.into(),
                    request_id: c.request_id.clone(),
                    ..Backup::default()
                };
            }
            E::BackupMadeAvailable(a) => {
                self.status = bs::AVAILABLE.into();
                self.object_count = a.object_count;
                self.stored_bytes = a.stored_bytes;
                self.target = a.target.clone();
                if !a.container.is_empty() {
                    self.container = a.container.clone();
                }
                self.fail_reason.clear();
            }
            E::BackupFailed(f) => {
                self.status = bs::ERROR.into();
                self.fail_reason = f.message.clone();
            }
            E::BackupTaskStarted(t) => {
                self.status = t.status.clone();
                self.restore_volume_id = t.target_volume_id.clone();
            }
            E::BackupTaskFinished(_) => {
                self.status = bs::AVAILABLE.into();
                self.restore_volume_id.clear();
            }
            E::BackupUpdated(u) => {
                self.name = u.name.clone();
                self.description = u.description.clone();
                if u.metadata_set {
                    self.metadata = u.metadata.clone().into_iter().collect();
                }
            }
            E::BackupStatusReset(r) => {
                self.status = r.status.clone();
                self.restore_volume_id.clear();
            }
            E::BackupDeleted(_) => self.status = bs::DELETED.into(),
            _ => {}
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gwt::given;

    fn created(parent: &str) -> E {
        E::BackupCreated(pb::BackupCreated {
            project_id: "p".into(),
            volume_id: "v1".into(),
            name: "b".into(),
            size_gb: 1,
            incremental: !parent.is_empty(),
            parent_id: parent.into(),
            ..Default::default()
        })
    }

    fn available() -> Vec<E> {
        vec![
            created(""),
            E::BackupMadeAvailable(pb::BackupMadeAvailable {
                object_count: 3,
                stored_bytes: 3 << 20,
                ..Default::default()
            }),
        ]
    }

    #[test]
    fn create_then_available_records_what_was_stored() {
        let s = given::<Backup>([created("")])
            .when(BackupCommand::MadeAvailable {
                object_count: 2,
                stored_bytes: 5,
                target: "swift".into(),
                container: "volumebackups".into(),
            })
            .then_ok();
        assert_eq!(
            (s.status.as_str(), s.object_count, s.stored_bytes),
            ("available", 2, 5)
        );
        assert_eq!(
            (s.target.as_str(), s.container.as_str()),
            ("swift", "volumebackups")
        );
        assert!(!s.is_incremental());
        let s = given::<Backup>([created("b0")]).state();
        assert!(s.is_incremental());
        assert_eq!(s.parent_id, "b0");
        // An incremental backup without a parent, or a full one with one, is refused.
        given::<Backup>([])
            .when(BackupCommand::Create(Box::new(pb::BackupCreated {
                volume_id: "v1".into(),
                size_gb: 1,
                incremental: true,
                ..Default::default()
            })))
            .then_invalid();
        given::<Backup>([created("")])
            .when(BackupCommand::Create(Box::default()))
            .then_err_where(|e| matches!(e, DomainError::AlreadyExists { .. }));
    }

    #[test]
    fn a_failed_create_is_an_error_with_its_reason() {
        let s = given::<Backup>([created("")])
            .when(BackupCommand::Fail {
                message: "disk full".into(),
            })
            .then_ok();
        assert_eq!(
            (s.status.as_str(), s.fail_reason.as_str()),
            ("error", "disk full")
        );
        // Steps of a flow that is over are refused.
        given::<Backup>(available())
            .when(BackupCommand::MadeAvailable {
                object_count: 0,
                stored_bytes: 0,
                target: "directory".into(),
                container: String::new(),
            })
            .then_conflict();
        given::<Backup>(available())
            .when(BackupCommand::Fail {
                message: "late".into(),
            })
            .then_conflict();
    }

    #[test]
    fn restore_goes_back_to_available_and_only_for_its_volume() {
        given::<Backup>([created("")])
            .when(BackupCommand::BeginRestore {
                volume_id: "v2".into(),
            })
            .then_invalid();
        let s = given::<Backup>(available())
            .when(BackupCommand::BeginRestore {
                volume_id: "v2".into(),
            })
            .then_ok();
        assert_eq!(
            (s.status.as_str(), s.restore_volume_id.as_str()),
            ("restoring", "v2")
        );
        let mut h = available();
        h.push(E::BackupTaskStarted(pb::BackupTaskStarted {
            status: "restoring".into(),
            target_volume_id: "v2".into(),
        }));
        given::<Backup>(h.clone())
            .when(BackupCommand::FinishRestore {
                volume_id: "v3".into(),
            })
            .then_conflict();
        // A second restore waits for the first.
        given::<Backup>(h.clone())
            .when(BackupCommand::BeginRestore {
                volume_id: "v3".into(),
            })
            .then_invalid();
        given::<Backup>(h.clone())
            .when(BackupCommand::BeginDelete { force: false })
            .then_invalid();
        let s = given::<Backup>(h)
            .when(BackupCommand::FinishRestore {
                volume_id: "v2".into(),
            })
            .then_ok();
        assert_eq!(
            (s.status.as_str(), s.restore_volume_id.as_str()),
            ("available", "")
        );
    }

    #[test]
    fn delete_from_available_or_error_or_by_force() {
        given::<Backup>([created("")])
            .when(BackupCommand::BeginDelete { force: false })
            .then_invalid();
        given::<Backup>([created("")])
            .when(BackupCommand::BeginDelete { force: true })
            .then_ok();
        let failed = vec![
            created(""),
            E::BackupFailed(pb::BackupFailed {
                message: "x".into(),
            }),
        ];
        let s = given::<Backup>(failed)
            .when(BackupCommand::BeginDelete { force: false })
            .then_ok();
        assert_eq!(s.status, "deleting");
        given::<Backup>(available())
            .when(BackupCommand::Deleted)
            .then_conflict();
        let mut h = available();
        h.push(E::BackupTaskStarted(pb::BackupTaskStarted {
            status: "deleting".into(),
            target_volume_id: String::new(),
        }));
        // Asking again changes nothing.
        given::<Backup>(h.clone())
            .when(BackupCommand::BeginDelete { force: false })
            .then_nothing();
        let s = given::<Backup>(h.clone())
            .when(BackupCommand::Deleted)
            .then_ok();
        assert!(s.is_deleted());
        h.push(E::BackupDeleted(pb::BackupDeleted {}));
        given::<Backup>(h)
            .when(BackupCommand::ResetStatus {
                status: "available".into(),
            })
            .then_err_where(|e| matches!(e, DomainError::NotFound { .. }));
    }

    #[test]
    fn update_and_reset_status() {
        let s = given::<Backup>(available())
            .when(BackupCommand::Update {
                name: "n".into(),
                description: "d".into(),
                metadata: None,
            })
            .then_ok();
        assert_eq!((s.name.as_str(), s.description.as_str()), ("n", "d"));
        let meta: BTreeMap<String, String> = [("k".to_string(), "v".to_string())].into();
        let s = given::<Backup>(available())
            .when(BackupCommand::Update {
                name: "b".into(),
                description: String::new(),
                metadata: Some(meta.clone()),
            })
            .then_ok();
        assert_eq!(s.metadata, meta);
        given::<Backup>(available())
            .when(BackupCommand::Update {
                name: "b".into(),
                description: String::new(),
                metadata: None,
            })
            .then_nothing();
        given::<Backup>(available())
            .when(BackupCommand::Update {
                name: "x".repeat(256),
                description: String::new(),
                metadata: None,
            })
            .then_invalid();
        given::<Backup>(available())
            .when(BackupCommand::ResetStatus {
                status: "creating".into(),
            })
            .then_invalid();
        let s = given::<Backup>([created("")])
            .when(BackupCommand::ResetStatus {
                status: "error".into(),
            })
            .then_ok();
        assert_eq!(s.status, "error");
    }
}
