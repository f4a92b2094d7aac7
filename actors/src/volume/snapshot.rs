//! `Snapshot`: a point-in-time copy of a volume (stream `volume-snapshot-<uuid>`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use strata_proto::volume as pb;
use strata_proto::VolumeEvent as E;

use crate::aggregate::{Aggregate, DomainError};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub exists: bool,
    pub project_id: String,
    pub user_id: String,
    pub volume_id: String,
    pub name: String,
    pub description: String,
    pub size_gb: u64,
    pub metadata: BTreeMap<String, String>,
    /// creating | available | deleting | error | deleted
    pub status: String,
    pub request_id: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SnapshotCommand {
    Create(Box<pb::SnapshotCreated>),
    MadeAvailable,
    Fail {
        message: String,
    },
    Update {
        name: String,
        description: String,
    },
    SetMetadata {
        items: BTreeMap<String, String>,
        replace: bool,
    },
    BeginDelete,
    Deleted,
}

impl Aggregate for Snapshot {
    type Command = SnapshotCommand;
    type Event = E;
    const KIND: &'static str = "volume-snapshot";

    fn decide(&self, cmd: &SnapshotCommand) -> Result<Vec<E>, DomainError> {
        use SnapshotCommand as C;
        if !matches!(cmd, C::Create(_)) && (!self.exists || self.status == "deleted") {
            return Err(DomainError::NotFound {
                kind: "snapshot",
                id: self.name.clone(),
            });
        }
        let conflict = |m: &str| DomainError::Conflict(m.to_string());
        Ok(match cmd {
            C::Create(c) => {
                if self.exists {
                    return Err(DomainError::AlreadyExists {
                        kind: "snapshot",
                        detail: "id already used".into(),
                    });
                }
                vec![E::SnapshotCreated((**c).clone())]
            }
            C::MadeAvailable => {
                if self.status != "creating" {
                    return Err(conflict("the snapshot is not being created"));
                }
                vec![E::SnapshotMadeAvailable(pb::SnapshotMadeAvailable {})]
            }
            C::Fail { message } => {
                if !matches!(self.status.as_str(), "creating" | "deleting") {
                    return Err(conflict("the snapshot is not busy"));
                }
                vec![E::SnapshotFailed(pb::SnapshotFailed {
                    message: message.clone(),
                })]
            }
            C::Update { name, description } => {
                if name.chars().count() > super::NAME_MAX
                    || description.chars().count() > super::NAME_MAX
                {
                    return Err(DomainError::Invalid(
                        "Invalid input received: name and description are at most 255 characters"
                            .into(),
                    ));
                }
                vec![E::SnapshotUpdated(pb::SnapshotUpdated {
                    name: name.clone(),
                    description: description.clone(),
                })]
            }
            C::SetMetadata { items, replace } => {
                vec![E::SnapshotMetadataSet(pb::SnapshotMetadataSet {
                    items: items.clone().into_iter().collect(),
                    replace: *replace,
                })]
            }
            C::BeginDelete => {
                if self.status == "deleting" {
                    return Ok(vec![]);
                }
                if !matches!(self.status.as_str(), "available" | "error") {
                    return Err(DomainError::Invalid(format!(
                        "Invalid snapshot: Volume Snapshot status must be available or error, but current status is: {}",
                        self.status
                    )));
                }
                vec![E::SnapshotDeleting(pb::SnapshotDeleting {})]
            }
            C::Deleted => {
                if self.status != "deleting" {
                    return Err(conflict("the snapshot is not being deleted"));
                }
                vec![E::SnapshotDeleted(pb::SnapshotDeleted {})]
            }
        })
    }

    fn apply(mut self, event: &E) -> Self {
        match event {
            E::SnapshotCreated(c) => {
                self = Snapshot {
                    exists: true,
                    project_id: c.project_id.clone(),
                    user_id: c.user_id.clone(),
                    volume_id: c.volume_id.clone(),
                    name: c.name.clone(),
                    description: c.description.clone(),
                    size_gb: c.size_gb,
                    metadata: c.metadata.clone().into_iter().collect(),
                    status: "creating".into(),
                    request_id: c.request_id.clone(),
                };
            }
            E::SnapshotMadeAvailable(_) => self.status = "available".into(),
            E::SnapshotFailed(_) => self.status = "error".into(),
            E::SnapshotUpdated(u) => {
                self.name = u.name.clone();
                self.description = u.description.clone();
            }
            E::SnapshotMetadataSet(m) => {
                if m.replace {
                    self.metadata.clear();
                }
                self.metadata
                    .extend(m.items.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            E::SnapshotDeleting(_) => self.status = "deleting".into(),
            E::SnapshotDeleted(_) => self.status = "deleted".into(),
            _ => {}
        }
        self
    }
}
