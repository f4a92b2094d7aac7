//! The `fake` driver: volumes and snapshots are entries in an in-memory map, for scale tests of the volume
//! service. Its volumes read as zeros: backups of them list no chunks (they are still real backup
//! directories, so backup flows run end to end), and exports are empty files, so tests move no bytes.
//! It answers deterministically and at once; it never reads an image file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use parking_lot::Mutex;

use super::backup::{self, BackupInfo, BackupManifest, Source};
use super::{
    base_capabilities, blocking, check_id, gib_to_bytes, BackendStats, ConnectionInfo, DriverError,
    IoContext, TempPath, VolumeDriver, GIB,
};

pub const DRIVER_VERSION: &str = "1.0.0";

#[derive(Debug)]
pub struct FakeDriver {
    name: String,
    total_gb: u64,
    capabilities: BTreeMap<String, String>,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    volumes: BTreeMap<String, FakeVolume>,
    snapshots: BTreeMap<String, FakeSnapshot>,
}

#[derive(Debug)]
struct FakeVolume {
    size_gb: u64,
    /// Hosts with a connection to the volume.
    hosts: BTreeSet<String>,
}

#[derive(Debug)]
struct FakeSnapshot {
    size_gb: u64,
}

impl FakeDriver {
    pub fn new(name: impl Into<String>, total_gb: u64) -> Self {
        let name = name.into();
        let capabilities = base_capabilities(&name, DRIVER_VERSION, "fake");
        FakeDriver {
            name,
            total_gb,
            capabilities,
            state: Mutex::new(State::default()),
        }
    }

    /// The size of a volume, `None` when it does not exist.
    pub fn volume_size(&self, id: &str) -> Option<u64> {
        self.state.lock().volumes.get(id).map(|v| v.size_gb)
    }

    /// How many volumes and snapshots the backend holds.
    pub fn counts(&self) -> (usize, usize) {
        let state = self.state.lock();
        (state.volumes.len(), state.snapshots.len())
    }

    /// Hosts connected to a volume.
    pub fn connected_hosts(&self, id: &str) -> Vec<String> {
        self.state
            .lock()
            .volumes
            .get(id)
            .map(|v| v.hosts.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn location(&self, id: &str) -> String {
        format!("fake://{}/volume-{id}", self.name)
    }

    /// Add a volume of `size_gb`; `size_of_source` reads what it copies (under the same lock).
    fn add_volume(
        &self,
        id: &str,
        size_gb: u64,
        size_of_source: impl FnOnce(&State) -> Result<u64, DriverError>,
    ) -> Result<String, DriverError> {
        check_id("volume", id)?;
        gib_to_bytes(size_gb)?;
        let mut state = self.state.lock();
        if state.volumes.contains_key(id) {
            return Err(already("volume", id));
        }
        let source = size_of_source(&state)?;
        if source > size_gb {
            return Err(DriverError::Invalid(format!(
                "{size_gb} GiB is smaller than the source's {source} GiB"
            )));
        }
        state.volumes.insert(
            id.to_string(),
            FakeVolume {
                size_gb,
                hosts: BTreeSet::new(),
            },
        );
        Ok(self.location(id))
    }
}

fn already(kind: &'static str, id: &str) -> DriverError {
    DriverError::AlreadyExists {
        kind,
        id: id.to_string(),
    }
}

#[async_trait::async_trait]
impl VolumeDriver for FakeDriver {
    fn name(&self) -> &str {
        &self.name
    }

    fn driver_name(&self) -> &'static str {
        "fake"
    }

    fn capabilities(&self) -> BTreeMap<String, String> {
        self.capabilities.clone()
    }

    async fn stats(&self) -> Result<BackendStats, DriverError> {
        let provisioned_gb = self
            .state
            .lock()
            .volumes
            .values()
            .fold(0u64, |sum, v| sum.saturating_add(v.size_gb));
        Ok(BackendStats {
            total_gb: self.total_gb,
            free_gb: self.total_gb.saturating_sub(provisioned_gb),
            provisioned_gb,
            thin: true,
            capabilities: self.capabilities(),
        })
    }

    async fn create_volume(&self, id: &str, size_gb: u64) -> Result<String, DriverError> {
        self.add_volume(id, size_gb, |_| Ok(0))
    }

    async fn delete_volume(&self, id: &str) -> Result<(), DriverError> {
        check_id("volume", id)?;
        self.state.lock().volumes.remove(id);
        Ok(())
    }

    async fn extend_volume(&self, id: &str, new_size_gb: u64) -> Result<(), DriverError> {
        check_id("volume", id)?;
        gib_to_bytes(new_size_gb)?;
        let mut state = self.state.lock();
        let volume = state
            .volumes
            .get_mut(id)
            .ok_or_else(|| DriverError::VolumeNotFound(id.into()))?;
        if new_size_gb < volume.size_gb {
            return Err(DriverError::Invalid(format!(
                "volume {id} is {} GiB; volumes cannot shrink to {new_size_gb} GiB",
                volume.size_gb
            )));
        }
        volume.size_gb = new_size_gb;
        Ok(())
    }

    async fn create_snapshot(&self, volume_id: &str, snapshot_id: &str) -> Result<(), DriverError> {
        check_id("volume", volume_id)?;
        check_id("snapshot", snapshot_id)?;
        let mut state = self.state.lock();
        let size_gb = state
            .volumes
            .get(volume_id)
            .ok_or_else(|| DriverError::VolumeNotFound(volume_id.into()))?
            .size_gb;
        if state.snapshots.contains_key(snapshot_id) {
            return Err(already("snapshot", snapshot_id));
        }
        state
            .snapshots
            .insert(snapshot_id.to_string(), FakeSnapshot { size_gb });
        Ok(())
    }

    async fn delete_snapshot(&self, volume_id: &str, snapshot_id: &str) -> Result<(), DriverError> {
        check_id("volume", volume_id)?;
        check_id("snapshot", snapshot_id)?;
        self.state.lock().snapshots.remove(snapshot_id);
        Ok(())
    }

    async fn create_volume_from_snapshot(
        &self,
        id: &str,
        volume_id: &str,
        snapshot_id: &str,
        size_gb: u64,
    ) -> Result<String, DriverError> {
        check_id("volume", volume_id)?;
        check_id("snapshot", snapshot_id)?;
        self.add_volume(id, size_gb, |state| {
            state
                .snapshots
                .get(snapshot_id)
                .map(|s| s.size_gb)
                .ok_or_else(|| DriverError::SnapshotNotFound(snapshot_id.into()))
        })
    }

    async fn revert_to_snapshot(
        &self,
        volume_id: &str,
        snapshot_id: &str,
    ) -> Result<(), DriverError> {
        check_id("volume", volume_id)?;
        check_id("snapshot", snapshot_id)?;
        let state = self.state.lock();
        if !state.volumes.contains_key(volume_id) {
            return Err(DriverError::VolumeNotFound(volume_id.into()));
        }
        if !state.snapshots.contains_key(snapshot_id) {
            return Err(DriverError::SnapshotNotFound(snapshot_id.into()));
        }
        // Zeros reverted to zeros; the volume keeps its size.
        Ok(())
    }

    async fn clone_volume(
        &self,
        id: &str,
        source_id: &str,
        size_gb: u64,
    ) -> Result<String, DriverError> {
        check_id("volume", source_id)?;
        self.add_volume(id, size_gb, |state| {
            state
                .volumes
                .get(source_id)
                .map(|v| v.size_gb)
                .ok_or_else(|| DriverError::VolumeNotFound(source_id.into()))
        })
    }

    async fn create_volume_from_image(
        &self,
        id: &str,
        _image: &Path,
        _image_format: &str,
        size_gb: u64,
    ) -> Result<String, DriverError> {
        self.add_volume(id, size_gb, |_| Ok(0))
    }

    async fn export_volume(
        &self,
        id: &str,
        format: &str,
        dir: &Path,
    ) -> Result<PathBuf, DriverError> {
        check_id("volume", id)?;
        if !matches!(format, "raw" | "qcow2" | "vmdk" | "vdi" | "vhd" | "vhdx") {
            return Err(DriverError::Invalid(format!(
                "cannot upload a volume as {format:?}"
            )));
        }
        if !self.state.lock().volumes.contains_key(id) {
            return Err(DriverError::VolumeNotFound(id.into()));
        }
        let dir = dir.to_owned();
        let out = dir.join(format!("volume-{id}.{format}"));
        let what = format!("export-{id}");
        let dst = out.clone();
        blocking(move || {
            std::fs::create_dir_all(&dir).context(|| format!("cannot create {}", dir.display()))?;
            let tmp = TempPath::new(&dir, &what);
            std::fs::File::create(tmp.path())
                .context(|| format!("cannot create {}", tmp.path().display()))?;
            tmp.persist(&dst)
        })
        .await?;
        Ok(out)
    }

    async fn backup_volume(
        &self,
        volume_id: &str,
        backup_dir: &Path,
        parent_manifest: Option<&Path>,
    ) -> Result<BackupInfo, DriverError> {
        check_id("volume", volume_id)?;
        let size_gb = self
            .volume_size(volume_id)
            .ok_or_else(|| DriverError::VolumeNotFound(volume_id.into()))?;
        let (id, dir) = (volume_id.to_owned(), backup_dir.to_owned());
        let parent = parent_manifest.map(Path::to_owned);
        blocking(move || backup::create(Source::Zeros(size_gb * GIB), &id, &dir, parent.as_deref()))
            .await
    }

    async fn restore_backup(
        &self,
        backup_manifest: &Path,
        _chunk_dirs: &[PathBuf],
        volume_id: &str,
    ) -> Result<(), DriverError> {
        check_id("volume", volume_id)?;
        let path = backup_manifest.to_owned();
        let manifest = blocking(move || BackupManifest::read(&path)).await?;
        let size_gb = self
            .volume_size(volume_id)
            .ok_or_else(|| DriverError::VolumeNotFound(volume_id.into()))?;
        if manifest.size_bytes > size_gb * GIB {
            return Err(DriverError::Invalid(format!(
                "the backup ({} bytes) does not fit volume {volume_id} ({size_gb} GiB)",
                manifest.size_bytes
            )));
        }
        Ok(())
    }

    async fn attach(
        &self,
        volume_id: &str,
        connector_host: &str,
    ) -> Result<ConnectionInfo, DriverError> {
        check_id("volume", volume_id)?;
        let mut state = self.state.lock();
        let volume = state
            .volumes
            .get_mut(volume_id)
            .ok_or_else(|| DriverError::VolumeNotFound(volume_id.into()))?;
        volume.hosts.insert(connector_host.to_string());
        let data = [
            ("volume_id", volume_id.to_string()),
            ("access_mode", "rw".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), serde_json::Value::String(v)))
        .collect();
        Ok(ConnectionInfo {
            driver_volume_type: "fake".into(),
            data,
        })
    }

    async fn detach(&self, volume_id: &str, connector_host: &str) -> Result<(), DriverError> {
        check_id("volume", volume_id)?;
        if let Some(volume) = self.state.lock().volumes.get_mut(volume_id) {
            volume.hosts.remove(connector_host);
        }
        Ok(())
    }
}
