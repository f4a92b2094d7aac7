//! The volume backend driver interface (what cinder-volume asks of a storage backend), and its drivers:
//!
//! - [`file::FileDriver`]: one raw or qcow2 file per volume in a directory, changed natively (raw) or with
//!   `qemu-img` (qcow2, conversions);
//! - [`fake::FakeDriver`]: metadata only, in memory, for scale tests.
//!
//! Backups are shared by both: [`backup`] defines the on-disk format (1 MiB chunks named by their SHA-256
//! plus a JSON manifest), so a backup made by one backend restores on any other.
//!
//! A driver knows nothing of the log, aggregates or projections: it is told what to do with which volume and
//! answers with the outcome. It keeps no state that the volume service relies on besides the stored data
//! itself (the fake driver's map stands for that data). Ids arrive as strings because they become file names;
//! every driver accepts only `[A-Za-z0-9_-]{1,255}` ids (UUIDs in practice) and refuses the rest.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub mod backup;
pub mod fake;
pub mod file;

#[cfg(test)]
mod tests;

pub use backup::{BackupInfo, BackupManifest, ChunkRef, CHUNK_SIZE, MANIFEST_FILE};
pub use fake::FakeDriver;
pub use file::FileDriver;

/// Cinder sizes are in GiB (`size` = 1 means 1 GiB).
pub const GIB: u64 = 1 << 30;

/// Capacity a backend reports to the scheduler, in GiB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendStats {
    pub total_gb: u64,
    pub free_gb: u64,
    /// The sum of the sizes of the backend's volumes (what was promised, not what is written).
    pub provisioned_gb: u64,
    pub thin: bool,
    pub capabilities: BTreeMap<String, String>,
}

/// How the file driver stores a volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VolumeFormat {
    Raw,
    Qcow2,
}

impl VolumeFormat {
    /// The name `qemu-img` (and Glance's `disk_format`) use.
    pub fn as_str(self) -> &'static str {
        match self {
            VolumeFormat::Raw => "raw",
            VolumeFormat::Qcow2 => "qcow2",
        }
    }
}

impl std::fmt::Display for VolumeFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for VolumeFormat {
    type Err = DriverError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "raw" => Ok(VolumeFormat::Raw),
            "qcow2" => Ok(VolumeFormat::Qcow2),
            other => Err(DriverError::Invalid(format!(
                "unknown volume format {other:?} (raw or qcow2)"
            ))),
        }
    }
}

/// What `os-initialize_connection` returns: how a host reaches the volume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectionInfo {
    pub driver_volume_type: String,
    pub data: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Error)]
pub enum DriverError {
    #[error("volume {0} not found on the backend")]
    VolumeNotFound(String),
    #[error("snapshot {0} not found on the backend")]
    SnapshotNotFound(String),
    #[error("{kind} {id} already exists on the backend")]
    AlreadyExists { kind: &'static str, id: String },
    /// The request cannot be carried out as asked (bad id, shrinking, image larger than the volume, ...).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// A backup's manifest or chunks are missing, malformed or do not match their hashes.
    #[error("backup {path}: {reason}")]
    BadBackup { path: String, reason: String },
    /// An external command (`qemu-img`) failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl DriverError {
    /// Domain errors are the caller's fault and are not worth retrying; the rest are the backend's.
    pub fn is_request_error(&self) -> bool {
        matches!(
            self,
            DriverError::VolumeNotFound(_)
                | DriverError::SnapshotNotFound(_)
                | DriverError::AlreadyExists { .. }
                | DriverError::Invalid(_)
        )
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        DriverError::Io {
            context: context.into(),
            source,
        }
    }
}

/// Attach a description of what was being done to an I/O error.
pub(crate) trait IoContext<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T, DriverError>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T, DriverError> {
        self.map_err(|e| DriverError::io(what(), e))
    }
}

/// What cinder-volume asks of a backend. Every call names the volumes and snapshots it touches; a driver
/// never decides on its own to touch another.
///
/// Calls that create something (`create_*`, `clone_volume`, `create_snapshot`) fail with
/// [`DriverError::AlreadyExists`] when the target exists, and leave nothing behind when they fail. Deletes
/// of something absent succeed. Sizes are GiB.
#[async_trait::async_trait]
pub trait VolumeDriver: Send + Sync + 'static {
    /// The backend's name (`volume_backend_name`, the `host@backend` suffix), e.g. `file-1`.
    fn name(&self) -> &str;
    /// Which driver this is: `file` or `fake`.
    fn driver_name(&self) -> &'static str;
    /// Capabilities the scheduler matches volume types' extra specs against.
    fn capabilities(&self) -> BTreeMap<String, String>;
    async fn stats(&self) -> Result<BackendStats, DriverError>;
    /// Create an empty volume and return its `provider_location`.
    async fn create_volume(&self, id: &str, size_gb: u64) -> Result<String, DriverError>;
    async fn delete_volume(&self, id: &str) -> Result<(), DriverError>;
    /// Grow a volume; shrinking is refused, the same size is a no-op.
    async fn extend_volume(&self, id: &str, new_size_gb: u64) -> Result<(), DriverError>;
    async fn create_snapshot(&self, volume_id: &str, snapshot_id: &str) -> Result<(), DriverError>;
    async fn delete_snapshot(&self, volume_id: &str, snapshot_id: &str) -> Result<(), DriverError>;
    /// A new volume `id` with the snapshot's content, grown to `size_gb` (at least the snapshot's size).
    async fn create_volume_from_snapshot(
        &self,
        id: &str,
        volume_id: &str,
        snapshot_id: &str,
        size_gb: u64,
    ) -> Result<String, DriverError>;
    /// Give the volume the snapshot's content again. The volume keeps its current size when it was extended
    /// after the snapshot.
    async fn revert_to_snapshot(
        &self,
        volume_id: &str,
        snapshot_id: &str,
    ) -> Result<(), DriverError>;
    /// A new volume `id` with `source_id`'s content, grown to `size_gb` (at least the source's size).
    async fn clone_volume(
        &self,
        id: &str,
        source_id: &str,
        size_gb: u64,
    ) -> Result<String, DriverError>;
    /// Write the image file at `image` (format `image_format`: raw|qcow2|...) into the new volume `id` of
    /// `size_gb` (converted with `qemu-img convert`). An image larger than `size_gb` is refused.
    async fn create_volume_from_image(
        &self,
        id: &str,
        image: &Path,
        image_format: &str,
        size_gb: u64,
    ) -> Result<String, DriverError>;
    /// The volume's content as a file of `format` under `dir` (for upload-to-image); returns the path.
    async fn export_volume(
        &self,
        id: &str,
        format: &str,
        dir: &Path,
    ) -> Result<PathBuf, DriverError>;
    /// A full (`parent_manifest` = `None`) or incremental backup into `backup_dir`, which must not exist
    /// or be empty. See [`backup`] for the format.
    async fn backup_volume(
        &self,
        volume_id: &str,
        backup_dir: &Path,
        parent_manifest: Option<&Path>,
    ) -> Result<BackupInfo, DriverError>;
    /// Replace the content of volume `volume_id` (at least as large as the backup) with the backup whose
    /// manifest is `backup_manifest`; chunks are looked up in `chunk_dirs` (the backup directories of the
    /// backup and of all its ancestors). The volume keeps its size; bytes past the backup's end read as zero.
    async fn restore_backup(
        &self,
        backup_manifest: &Path,
        chunk_dirs: &[PathBuf],
        volume_id: &str,
    ) -> Result<(), DriverError>;
    async fn attach(
        &self,
        volume_id: &str,
        connector_host: &str,
    ) -> Result<ConnectionInfo, DriverError>;
    async fn detach(&self, volume_id: &str, connector_host: &str) -> Result<(), DriverError>;
}

/// Ids become file names: accept only non-empty `[A-Za-z0-9_-]` strings of at most 255 bytes. This rules
/// out path separators, `..` and hidden (`.tmp-`) names.
pub(crate) fn check_id(kind: &str, id: &str) -> Result<(), DriverError> {
    let ok = !id.is_empty()
        && id.len() <= 255
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(DriverError::Invalid(format!("invalid {kind} id {id:?}")))
    }
}

/// `size_gb` in bytes; zero and sizes that overflow are refused.
pub(crate) fn gib_to_bytes(size_gb: u64) -> Result<u64, DriverError> {
    if size_gb == 0 {
        return Err(DriverError::Invalid("size must be at least 1 GiB".into()));
    }
    size_gb
        .checked_mul(GIB)
        .filter(|b| *b <= i64::MAX as u64)
        .ok_or_else(|| DriverError::Invalid(format!("size {size_gb} GiB is too large")))
}

/// A byte size rounded up to whole GiB.
pub(crate) fn bytes_to_gib(bytes: u64) -> u64 {
    bytes.div_ceil(GIB)
}

/// The capabilities every driver reports, before its configured ones are laid over them. Booleans are
/// spelled `True`/`False`, as Cinder renders them and as extra specs (`<is> True`) compare them.
pub(crate) fn base_capabilities(
    backend_name: &str,
    driver_version: &str,
    storage_protocol: &str,
) -> BTreeMap<String, String> {
    [
        ("volume_backend_name", backend_name),
        ("vendor_name", "Strata"),
        ("driver_version", driver_version),
        ("storage_protocol", storage_protocol),
        ("thin_provisioning_support", "True"),
        ("thick_provisioning_support", "False"),
        ("multiattach", "True"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

static ZEROS: [u8; CHUNK_SIZE as usize] = [0; CHUNK_SIZE as usize];

/// Whether a buffer holds only zero bytes; a slice comparison, so it runs as `memcmp`.
pub(crate) fn is_zero(buf: &[u8]) -> bool {
    buf.chunks(ZEROS.len())
        .all(|piece| piece == &ZEROS[..piece.len()])
}

/// Run blocking file work off the async workers.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T, DriverError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, DriverError> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(e) => Err(DriverError::io(
            "blocking file task did not finish",
            std::io::Error::other(e.to_string()),
        )),
    }
}

/// A file or directory under a hidden temporary name (`.tmp-...`) that becomes visible only through
/// [`TempPath::persist`]; dropped before that, it is removed, so a failed call leaves nothing visible.
pub(crate) struct TempPath {
    path: PathBuf,
    armed: bool,
}

/// Prefix of every temporary name a driver makes; `sweep_orphans` removes what a crash left behind.
pub(crate) const TMP_PREFIX: &str = ".tmp-";

impl TempPath {
    /// A fresh name `<dir>/.tmp-<what>-<uuid>`; nothing is created.
    pub(crate) fn new(dir: &Path, what: &str) -> Self {
        TempPath {
            path: dir.join(format!("{TMP_PREFIX}{what}-{}", uuid::Uuid::new_v4())),
            armed: true,
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Flush the content to disk, rename it to `dst` (replacing a file there, or an empty directory) and
    /// flush the directory entry. Blocking.
    pub(crate) fn persist(mut self, dst: &Path) -> Result<(), DriverError> {
        sync_path(&self.path)?;
        std::fs::rename(&self.path, dst)
            .context(|| format!("cannot rename {} to {}", self.path.display(), dst.display()))?;
        self.armed = false;
        if let Some(parent) = dst.parent() {
            sync_path(parent)?;
        }
        Ok(())
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let result = match std::fs::symlink_metadata(&self.path) {
            Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(&self.path),
            Ok(_) => std::fs::remove_file(&self.path),
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot remove temporary file");
            }
        }
    }
}

/// fsync a file or a directory (Linux lets a read-only descriptor be synced).
pub(crate) fn sync_path(path: &Path) -> Result<(), DriverError> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .context(|| format!("cannot sync {}", path.display()))
}

/// Read until `buf` is full or the file ends; returns how many bytes were read.
pub(crate) fn read_full_at(
    file: &std::fs::File,
    buf: &mut [u8],
    offset: u64,
) -> std::io::Result<usize> {
    use std::os::unix::fs::FileExt;
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// Whether something exists at `path` (without following a final symlink).
pub(crate) fn exists(path: &Path) -> Result<bool, DriverError> {
    match std::fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(DriverError::io(
            format!("cannot stat {}", path.display()),
            e,
        )),
    }
}
