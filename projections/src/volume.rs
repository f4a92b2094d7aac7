//! `VolumeView`: every Cinder volume, snapshot, backup, volume type, backend, and the block storage quotas and
//! usage, as the API, the volume scheduler and the volume service read them. Rows keep the aggregates' own
//! state, folded with their own `apply`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use strata_actors::volume::{
    Backend, Backup, Snapshot, Volume, VolumeQuota, VolumeType, VolumeUsage,
};
use strata_actors::Aggregate;
use strata_events::RecordedEvent;
use strata_proto::VolumeEvent as E;

use crate::persistent::OrdMap;
use crate::Projection;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VolumeRow {
    pub id: String,
    pub state: Volume,
    pub created_at: String,
    pub updated_at: String,
    /// When each complete attachment was completed (the event's time).
    #[serde(default)]
    pub attached_at: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SnapshotRow {
    pub id: String,
    pub state: Snapshot,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BackupRow {
    pub id: String,
    pub state: Backup,
    pub created_at: String,
    pub updated_at: String,
    /// When the backed-up data was current: the snapshot's creation for a backup of a snapshot, else the
    /// backup's own creation (Cinder's `data_timestamp`).
    pub data_timestamp: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VolumeTypeRow {
    pub id: String,
    pub state: VolumeType,
    pub created_at: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BackendRow {
    pub name: String,
    pub state: Backend,
    pub created_at: String,
    /// The last heartbeat (or registration).
    pub updated_at: String,
    pub last_seen: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct VolumeView {
    /// Live volumes by id (deleted ones are dropped).
    pub volumes: OrdMap<String, VolumeRow>,
    pub snapshots: OrdMap<String, SnapshotRow>,
    /// Live backups by id (deleted ones are dropped).
    pub backups: OrdMap<String, BackupRow>,
    /// Live volume types by id.
    pub types: OrdMap<String, VolumeTypeRow>,
    /// Backends by name (`host@backend`).
    pub backends: OrdMap<String, BackendRow>,
    pub usage: OrdMap<String, VolumeUsage>,
    pub quotas: OrdMap<String, VolumeQuota>,
    pub undecodable: u64,
}

fn timestamp(e: &RecordedEvent) -> String {
    e.recorded_at.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
}

fn fold<A: Aggregate<Event = E>>(state: &mut A, ev: &E) {
    *state = std::mem::take(state).apply(ev);
}

impl Projection for VolumeView {
    const NAME: &'static str = "volume";
    const VERSION: u32 = 3;

    fn handle(&mut self, event: &RecordedEvent) {
        let Some(ev) =
            crate::runner::decode_service_event::<E>(event, "volume", &mut self.undecodable)
        else {
            return;
        };
        let now = timestamp(event);
        let s = event.stream_id.as_str();
        if let Some(id) = s.strip_prefix("volume-snapshot-") {
            let row = self
                .snapshots
                .entry(id.to_string())
                .or_insert_with(|| SnapshotRow {
                    id: id.to_string(),
                    created_at: now.clone(),
                    ..Default::default()
                });
            fold(&mut row.state, &ev);
            row.updated_at = now;
            if row.state.status == "deleted" {
                self.snapshots.remove(id);
            }
        } else if let Some(id) = s.strip_prefix("volume-backup-") {
            let data_timestamp = match &ev {
                E::BackupCreated(c) if !c.snapshot_id.is_empty() => self
                    .snapshots
                    .get(&c.snapshot_id)
                    .map(|snap| snap.created_at.clone())
                    .unwrap_or_else(|| now.clone()),
                _ => now.clone(),
            };
            let row = self
                .backups
                .entry(id.to_string())
                .or_insert_with(|| BackupRow {
                    id: id.to_string(),
                    created_at: now.clone(),
                    data_timestamp,
                    ..Default::default()
                });
            fold(&mut row.state, &ev);
            row.updated_at = now;
            if row.state.is_deleted() {
                self.backups.remove(id);
            }
        } else if let Some(id) = s.strip_prefix("volume-type-") {
            let row = self
                .types
                .entry(id.to_string())
                .or_insert_with(|| VolumeTypeRow {
                    id: id.to_string(),
                    created_at: now.clone(),
                    ..Default::default()
                });
            fold(&mut row.state, &ev);
            if row.state.deleted {
                self.types.remove(id);
            }
        } else if let Some(name) = s.strip_prefix("volume-backend-") {
            let row = self
                .backends
                .entry(name.to_string())
                .or_insert_with(|| BackendRow {
                    name: name.to_string(),
                    created_at: now.clone(),
                    ..Default::default()
                });
            fold(&mut row.state, &ev);
            if matches!(ev, E::BackendRegistered(_) | E::BackendHeartbeat(_)) {
                row.updated_at = now;
                row.last_seen = Some(event.recorded_at);
            }
        } else if let Some(p) = s.strip_prefix("volume-usage-") {
            fold(self.usage.entry(p.to_string()).or_default(), &ev);
        } else if let Some(p) = s.strip_prefix("volume-quota-") {
            fold(self.quotas.entry(p.to_string()).or_default(), &ev);
        } else if let Some(id) = s.strip_prefix("volume-") {
            let row = self
                .volumes
                .entry(id.to_string())
                .or_insert_with(|| VolumeRow {
                    id: id.to_string(),
                    created_at: now.clone(),
                    ..Default::default()
                });
            fold(&mut row.state, &ev);
            match &ev {
                E::VolumeAttachmentCreated(a) if a.attached => {
                    row.attached_at.insert(a.attachment_id.clone(), now.clone());
                }
                E::VolumeAttachmentCompleted(c) => {
                    row.attached_at.insert(c.attachment_id.clone(), now.clone());
                }
                E::VolumeAttachmentDeleted(d) => {
                    row.attached_at.remove(&d.attachment_id);
                }
                E::VolumeStatusReset(_) => {
                    let live = &row.state.attachments;
                    row.attached_at.retain(|aid, _| live.contains_key(aid));
                }
                _ => {}
            }
            row.updated_at = now;
            if row.state.is_deleted() {
                self.volumes.remove(id);
            }
        }
    }
}

impl VolumeView {
    pub fn volume(&self, id: &str) -> Option<&VolumeRow> {
        self.volumes.get(id)
    }

    /// A project's limits: the defaults overlaid with what was set for it.
    pub fn limits_of(
        &self,
        project_id: &str,
        defaults: &BTreeMap<String, i64>,
    ) -> BTreeMap<String, i64> {
        let mut limits = defaults.clone();
        if let Some(q) = self.quotas.get(project_id) {
            limits.extend(q.limits.iter().map(|(k, v)| (k.clone(), *v)));
        }
        limits
    }

    /// Live snapshots of a volume.
    pub fn snapshots_of<'a>(
        &'a self,
        volume_id: &'a str,
    ) -> impl Iterator<Item = &'a SnapshotRow> + 'a {
        self.snapshots
            .values()
            .filter(move |s| s.state.volume_id == volume_id)
    }

    /// Live backups of a volume.
    pub fn backups_of<'a>(
        &'a self,
        volume_id: &'a str,
    ) -> impl Iterator<Item = &'a BackupRow> + 'a {
        self.backups
            .values()
            .filter(move |b| b.state.volume_id == volume_id)
    }

    /// Live incremental backups made on top of backup `id`.
    pub fn backup_children<'a>(&'a self, id: &'a str) -> impl Iterator<Item = &'a BackupRow> + 'a {
        self.backups
            .values()
            .filter(move |b| b.state.parent_id == id)
    }

    /// The chain a backup's data needs, the backup first, then its parent, up to the full backup. Stops at a
    /// missing link (or a loop, which the log cannot make but stored data must not turn into a hang).
    pub fn backup_chain(&self, id: &str) -> Vec<&BackupRow> {
        let mut chain: Vec<&BackupRow> = Vec::new();
        let mut next = self.backups.get(id);
        while let Some(b) = next {
            if chain.iter().any(|c| c.id == b.id) {
                break;
            }
            chain.push(b);
            next = if b.state.parent_id.is_empty() {
                None
            } else {
                self.backups.get(&b.state.parent_id)
            };
        }
        chain
    }

    /// The volume type called `name_or_id` (by id first, then by name).
    pub fn volume_type(&self, name_or_id: &str) -> Option<&VolumeTypeRow> {
        self.types
            .get(name_or_id)
            .or_else(|| self.types.values().find(|t| t.state.name == name_or_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::put;
    use strata_events::{EventLog, MemoryLog};

    use strata_proto::volume as pb;

    #[tokio::test]
    async fn volumes_snapshots_types_and_backends_are_told_apart_by_stream() {
        let log = MemoryLog::new();
        put(
            &log,
            "volume-type-t1",
            E::VolumeTypeCreated(pb::VolumeTypeCreated {
                name: "ssd".into(),
                is_public: true,
                ..Default::default()
            }),
        )
        .await;
        put(
            &log,
            "volume-v1",
            E::VolumeCreated(pb::VolumeCreated {
                project_id: "p".into(),
                size_gb: 2,
                volume_type_id: "t1".into(),
                ..Default::default()
            }),
        )
        .await;
        put(
            &log,
            "volume-snapshot-s1",
            E::SnapshotCreated(pb::SnapshotCreated {
                volume_id: "v1".into(),
                size_gb: 2,
                ..Default::default()
            }),
        )
        .await;
        put(
            &log,
            "volume-backend-strata@file-1",
            E::BackendRegistered(pb::BackendRegistered {
                driver: "file".into(),
                total_gb: 100,
                max_over_subscription_ratio: 1.0,
                ..Default::default()
            }),
        )
        .await;
        put(
            &log,
            "volume-backup-b1",
            E::BackupCreated(pb::BackupCreated {
                volume_id: "v1".into(),
                size_gb: 2,
                ..Default::default()
            }),
        )
        .await;
        put(
            &log,
            "volume-backup-b2",
            E::BackupCreated(pb::BackupCreated {
                volume_id: "v1".into(),
                size_gb: 2,
                incremental: true,
                parent_id: "b1".into(),
                snapshot_id: "s1".into(),
                ..Default::default()
            }),
        )
        .await;
        let log: std::sync::Arc<dyn EventLog> = std::sync::Arc::new(log);
        let (view, _) = crate::runner::catch_up::<VolumeView>(&log).await.unwrap();
        assert_eq!(view.volume("v1").unwrap().state.size_gb, 2);
        // Backups are backups, not volumes whose id starts with "backup-".
        assert_eq!(view.volumes.len(), 1);
        assert_eq!(view.backups_of("v1").count(), 2);
        assert_eq!(view.backups["b1"].state.status, "creating");
        assert_eq!(view.backup_children("b1").count(), 1);
        let chain: Vec<&str> = view
            .backup_chain("b2")
            .iter()
            .map(|b| b.id.as_str())
            .collect();
        assert_eq!(chain, ["b2", "b1"]);
        // A backup of a snapshot holds the snapshot's data: its data timestamp is the snapshot's creation.
        assert_eq!(
            view.backups["b2"].data_timestamp,
            view.snapshots["s1"].created_at
        );
        assert_eq!(view.volume_type("ssd").unwrap().id, "t1");
        assert_eq!(view.snapshots_of("v1").count(), 1);
        assert_eq!(view.backends["strata@file-1"].state.total_gb, 100);
    }
}
