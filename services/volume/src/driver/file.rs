//! The `file` driver: every volume is one file in the backend's directory.
//!
//! | name | holds |
//! |---|---|
//! | `volume-<id>` | a volume: a sparse raw file or a qcow2 image, by the backend's [`VolumeFormat`] |
//! | `snapshot-<id>` | a snapshot: a full copy of its volume at the time, in the same format |
//! | `.tmp-*` | work in progress, renamed into place when complete; [`FileDriver::sweep_orphans`] removes what a crash left |
//!
//! Raw volumes are made, grown and copied natively (sparse: all-zero MiBs are skipped); qcow2 volumes and
//! every format conversion go through `qemu-img`, always with the source format given explicitly, so an
//! image's content never decides how it is read. Images with a backing file, an external data file or
//! extents in other files are refused: they would make `qemu-img` read files that are not the image.
//!
//! Operations on one volume or snapshot are serialised by an in-process lock per name; the volume service
//! must not run two backends on one directory. Extending changes the file in place (an attached volume
//! keeps its file); reverting and restoring replace it, which Cinder only allows on detached volumes.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::OwnedMutexGuard;

use super::backup::{self, BackupInfo, BackupManifest, Source};
use super::{
    base_capabilities, blocking, bytes_to_gib, check_id, exists, gib_to_bytes, is_zero,
    read_full_at, BackendStats, ConnectionInfo, DriverError, IoContext, TempPath, VolumeDriver,
    VolumeFormat, TMP_PREFIX,
};

pub const DRIVER_VERSION: &str = "1.0.0";

/// Copy buffer for native raw copies: also the granularity at which zeros become holes.
const COPY_BUF: usize = 1 << 20;
/// How much of a failed command's stderr an error keeps.
const STDERR_KEEP: usize = 4000;

pub struct FileDriver {
    name: String,
    dir: PathBuf,
    format: VolumeFormat,
    total_gb: u64,
    capabilities: BTreeMap<String, String>,
    qemu_img: PathBuf,
    locks: Locks,
}

impl std::fmt::Debug for FileDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileDriver")
            .field("name", &self.name)
            .field("dir", &self.dir)
            .field("format", &self.format)
            .field("total_gb", &self.total_gb)
            .finish()
    }
}

impl FileDriver {
    /// A backend keeping its volumes in `dir` (created if needed), reporting `total_gb` of capacity.
    /// `capabilities` are laid over the driver's own (see [`VolumeDriver::capabilities`]). Blocking: call it
    /// at start-up.
    pub fn new(
        name: impl Into<String>,
        dir: impl Into<PathBuf>,
        format: VolumeFormat,
        total_gb: u64,
        capabilities: BTreeMap<String, String>,
    ) -> Result<Self, DriverError> {
        let name = name.into();
        let dir = dir.into();
        std::fs::create_dir_all(&dir).context(|| format!("cannot create {}", dir.display()))?;
        let dir =
            std::fs::canonicalize(&dir).context(|| format!("cannot resolve {}", dir.display()))?;
        let mut caps = base_capabilities(&name, DRIVER_VERSION, "file");
        caps.insert("volume_format".into(), format.as_str().into());
        caps.extend(capabilities);
        Ok(FileDriver {
            name,
            dir,
            format,
            total_gb,
            capabilities: caps,
            qemu_img: PathBuf::from("qemu-img"),
            locks: Locks::default(),
        })
    }

    /// Run this program instead of the `qemu-img` found on `PATH`.
    pub fn with_qemu_img(mut self, program: impl Into<PathBuf>) -> Self {
        self.qemu_img = program.into();
        self
    }

    /// The backend's directory (absolute).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn format(&self) -> VolumeFormat {
        self.format
    }

    pub fn volume_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("volume-{id}"))
    }

    pub fn snapshot_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("snapshot-{id}"))
    }

    /// Remove every `.tmp-*` entry of the directory and return how many were removed. Only call it when
    /// no operation is running (at start-up). Blocking.
    pub fn sweep_orphans(&self) -> Result<usize, DriverError> {
        let mut removed = 0;
        let entries = std::fs::read_dir(&self.dir)
            .context(|| format!("cannot list {}", self.dir.display()))?;
        for entry in entries {
            let entry = entry.context(|| format!("cannot list {}", self.dir.display()))?;
            let is_tmp = entry
                .file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(TMP_PREFIX));
            if !is_tmp {
                continue;
            }
            let path = entry.path();
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            let result = if is_dir {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            match result {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(DriverError::io(
                        format!("cannot remove {}", path.display()),
                        e,
                    ))
                }
            }
        }
        if removed > 0 {
            tracing::warn!(removed, dir = %self.dir.display(), "removed unfinished volume files");
        }
        Ok(removed)
    }

    fn location(&self, id: &str) -> String {
        self.volume_path(id).display().to_string()
    }

    async fn run_qemu_img(&self, args: Vec<OsString>) -> Result<Vec<u8>, DriverError> {
        let command = std::iter::once(self.qemu_img.as_os_str())
            .chain(args.iter().map(OsString::as_os_str))
            .map(OsStr::to_string_lossy)
            .collect::<Vec<_>>()
            .join(" ");
        tracing::debug!(%command, "running");
        let output = tokio::process::Command::new(&self.qemu_img)
            .args(&args)
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .context(|| format!("cannot run `{command}`"))?;
        if output.status.success() {
            return Ok(output.stdout);
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stderr = stderr.trim();
        let mut cut = stderr.len().min(STDERR_KEEP);
        while !stderr.is_char_boundary(cut) {
            cut -= 1;
        }
        Err(DriverError::Command {
            command,
            status: output.status.to_string(),
            stderr: stderr[..cut].to_string(),
        })
    }

    async fn image_info(&self, path: &Path, format: &str) -> Result<ImageInfo, DriverError> {
        let out = self
            .run_qemu_img(args(&[
                "info".as_ref(),
                "--output=json".as_ref(),
                "-f".as_ref(),
                format.as_ref(),
                path.as_os_str(),
            ]))
            .await?;
        ImageInfo::parse(&out).map_err(|reason| DriverError::Command {
            command: format!("qemu-img info {}", path.display()),
            status: "unexpected output".into(),
            stderr: reason,
        })
    }

    /// `qemu-img convert` from `src` (`src_format`) to a new file `dst` (`dst_format`).
    async fn convert(
        &self,
        src: &Path,
        src_format: &str,
        dst: &Path,
        dst_format: &str,
    ) -> Result<(), DriverError> {
        self.run_qemu_img(args(&[
            "convert".as_ref(),
            "-f".as_ref(),
            src_format.as_ref(),
            "-O".as_ref(),
            dst_format.as_ref(),
            src.as_os_str(),
            dst.as_os_str(),
        ]))
        .await
        .map(drop)
    }

    /// The virtual size of a volume or snapshot file of this backend, `None` when absent.
    async fn virtual_size(&self, path: &Path) -> Result<Option<u64>, DriverError> {
        let path = path.to_owned();
        let format = self.format;
        blocking(move || virtual_size(&path, format)).await
    }

    /// Copy a volume or snapshot file (in the backend's format) to the new file `dst`.
    async fn copy_same_format(&self, src: &Path, dst: &Path) -> Result<(), DriverError> {
        match self.format {
            VolumeFormat::Raw => {
                let (src, dst) = (src.to_owned(), dst.to_owned());
                blocking(move || sparse_copy(&src, &dst)).await
            }
            VolumeFormat::Qcow2 => self.convert(src, "qcow2", dst, "qcow2").await,
        }
    }

    /// Grow a file of the backend's format to `bytes`.
    async fn grow(&self, path: &Path, bytes: u64) -> Result<(), DriverError> {
        match self.format {
            VolumeFormat::Raw => {
                let path = path.to_owned();
                blocking(move || {
                    let file = std::fs::OpenOptions::new()
                        .write(true)
                        .open(&path)
                        .context(|| format!("cannot open {}", path.display()))?;
                    file.set_len(bytes)
                        .and_then(|()| file.sync_all())
                        .context(|| format!("cannot resize {} to {bytes} bytes", path.display()))
                })
                .await
            }
            VolumeFormat::Qcow2 => self
                .run_qemu_img(args(&[
                    "resize".as_ref(),
                    "-f".as_ref(),
                    "qcow2".as_ref(),
                    path.as_os_str(),
                    bytes.to_string().as_ref(),
                ]))
                .await
                .map(drop),
        }
    }

    /// A new volume `id` of `size_gb` with the content of `src`, a file of the backend's format.
    async fn copy_to_new_volume(
        &self,
        id: &str,
        src: &Path,
        missing: DriverError,
        size_gb: u64,
    ) -> Result<String, DriverError> {
        let size = gib_to_bytes(size_gb)?;
        let dst = self.volume_path(id);
        if exists(&dst)? {
            return Err(already("volume", id));
        }
        let Some(src_size) = self.virtual_size(src).await? else {
            return Err(missing);
        };
        if src_size > size {
            return Err(DriverError::Invalid(format!(
                "{size_gb} GiB is smaller than the source's {} GiB",
                bytes_to_gib(src_size)
            )));
        }
        let tmp = TempPath::new(&self.dir, &format!("volume-{id}"));
        self.copy_same_format(src, tmp.path()).await?;
        if src_size < size {
            self.grow(tmp.path(), size).await?;
        }
        persist(tmp, dst).await?;
        Ok(self.location(id))
    }
}

#[async_trait::async_trait]
impl VolumeDriver for FileDriver {
    fn name(&self) -> &str {
        &self.name
    }

    fn driver_name(&self) -> &'static str {
        "file"
    }

    fn capabilities(&self) -> BTreeMap<String, String> {
        self.capabilities.clone()
    }

    async fn stats(&self) -> Result<BackendStats, DriverError> {
        let dir = self.dir.clone();
        let format = self.format;
        let provisioned_gb = blocking(move || {
            let mut total = 0u64;
            let entries =
                std::fs::read_dir(&dir).context(|| format!("cannot list {}", dir.display()))?;
            for entry in entries {
                let entry = entry.context(|| format!("cannot list {}", dir.display()))?;
                let name = entry.file_name();
                if !name.to_str().is_some_and(|n| n.starts_with("volume-")) {
                    continue;
                }
                // A volume deleted meanwhile is simply not counted; one whose size cannot be read
                // counts with its file's length rather than stopping the report.
                let path = entry.path();
                let size = match virtual_size(&path, format) {
                    Ok(size) => size,
                    Err(e) => {
                        tracing::warn!(path = %path.display(), error = %e, "cannot read a volume's size");
                        entry.metadata().ok().map(|m| m.len())
                    }
                };
                total = total.saturating_add(bytes_to_gib(size.unwrap_or(0)));
            }
            Ok(total)
        })
        .await?;
        Ok(BackendStats {
            total_gb: self.total_gb,
            free_gb: self.total_gb.saturating_sub(provisioned_gb),
            provisioned_gb,
            thin: true,
            capabilities: self.capabilities(),
        })
    }

    async fn create_volume(&self, id: &str, size_gb: u64) -> Result<String, DriverError> {
        check_id("volume", id)?;
        let size = gib_to_bytes(size_gb)?;
        let _guard = self.locks.lock(&[volume_key(id)]).await;
        let dst = self.volume_path(id);
        if exists(&dst)? {
            return Err(already("volume", id));
        }
        let tmp = TempPath::new(&self.dir, &format!("volume-{id}"));
        match self.format {
            VolumeFormat::Raw => {
                let path = tmp.path().to_owned();
                blocking(move || {
                    std::fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .open(&path)
                        .and_then(|f| f.set_len(size))
                        .context(|| format!("cannot create {}", path.display()))
                })
                .await?;
            }
            VolumeFormat::Qcow2 => {
                self.run_qemu_img(args(&[
                    "create".as_ref(),
                    "-q".as_ref(),
                    "-f".as_ref(),
                    "qcow2".as_ref(),
                    tmp.path().as_os_str(),
                    size.to_string().as_ref(),
                ]))
                .await?;
            }
        }
        persist(tmp, dst).await?;
        tracing::info!(backend = %self.name, volume = id, size_gb, "volume created");
        Ok(self.location(id))
    }

    async fn delete_volume(&self, id: &str) -> Result<(), DriverError> {
        check_id("volume", id)?;
        let _guard = self.locks.lock(&[volume_key(id)]).await;
        remove_if_present(self.volume_path(id)).await
    }

    async fn extend_volume(&self, id: &str, new_size_gb: u64) -> Result<(), DriverError> {
        check_id("volume", id)?;
        let size = gib_to_bytes(new_size_gb)?;
        let _guard = self.locks.lock(&[volume_key(id)]).await;
        let path = self.volume_path(id);
        let Some(current) = self.virtual_size(&path).await? else {
            return Err(DriverError::VolumeNotFound(id.into()));
        };
        if size < current {
            return Err(DriverError::Invalid(format!(
                "volume {id} is {} GiB; volumes cannot shrink to {new_size_gb} GiB",
                bytes_to_gib(current)
            )));
        }
        if size > current {
            // In place: an attached volume keeps its file.
            self.grow(&path, size).await?;
        }
        Ok(())
    }

    async fn create_snapshot(&self, volume_id: &str, snapshot_id: &str) -> Result<(), DriverError> {
        check_id("volume", volume_id)?;
        check_id("snapshot", snapshot_id)?;
        let _guard = self
            .locks
            .lock(&[volume_key(volume_id), snapshot_key(snapshot_id)])
            .await;
        let src = self.volume_path(volume_id);
        let dst = self.snapshot_path(snapshot_id);
        if !exists(&src)? {
            return Err(DriverError::VolumeNotFound(volume_id.into()));
        }
        if exists(&dst)? {
            return Err(already("snapshot", snapshot_id));
        }
        let tmp = TempPath::new(&self.dir, &format!("snapshot-{snapshot_id}"));
        self.copy_same_format(&src, tmp.path()).await?;
        persist(tmp, dst).await
    }

    async fn delete_snapshot(&self, volume_id: &str, snapshot_id: &str) -> Result<(), DriverError> {
        check_id("volume", volume_id)?;
        check_id("snapshot", snapshot_id)?;
        let _guard = self.locks.lock(&[snapshot_key(snapshot_id)]).await;
        remove_if_present(self.snapshot_path(snapshot_id)).await
    }

    async fn create_volume_from_snapshot(
        &self,
        id: &str,
        volume_id: &str,
        snapshot_id: &str,
        size_gb: u64,
    ) -> Result<String, DriverError> {
        check_id("volume", id)?;
        check_id("volume", volume_id)?;
        check_id("snapshot", snapshot_id)?;
        let _guard = self
            .locks
            .lock(&[volume_key(id), snapshot_key(snapshot_id)])
            .await;
        let src = self.snapshot_path(snapshot_id);
        let missing = DriverError::SnapshotNotFound(snapshot_id.into());
        self.copy_to_new_volume(id, &src, missing, size_gb).await
    }

    async fn revert_to_snapshot(
        &self,
        volume_id: &str,
        snapshot_id: &str,
    ) -> Result<(), DriverError> {
        check_id("volume", volume_id)?;
        check_id("snapshot", snapshot_id)?;
        let _guard = self
            .locks
            .lock(&[volume_key(volume_id), snapshot_key(snapshot_id)])
            .await;
        let dst = self.volume_path(volume_id);
        let src = self.snapshot_path(snapshot_id);
        let Some(current) = self.virtual_size(&dst).await? else {
            return Err(DriverError::VolumeNotFound(volume_id.into()));
        };
        let Some(snap_size) = self.virtual_size(&src).await? else {
            return Err(DriverError::SnapshotNotFound(snapshot_id.into()));
        };
        let tmp = TempPath::new(&self.dir, &format!("volume-{volume_id}"));
        self.copy_same_format(&src, tmp.path()).await?;
        if snap_size < current {
            self.grow(tmp.path(), current).await?;
        }
        persist(tmp, dst).await
    }

    async fn clone_volume(
        &self,
        id: &str,
        source_id: &str,
        size_gb: u64,
    ) -> Result<String, DriverError> {
        check_id("volume", id)?;
        check_id("volume", source_id)?;
        if id == source_id {
            return Err(already("volume", id));
        }
        let _guard = self
            .locks
            .lock(&[volume_key(id), volume_key(source_id)])
            .await;
        let src = self.volume_path(source_id);
        let missing = DriverError::VolumeNotFound(source_id.into());
        self.copy_to_new_volume(id, &src, missing, size_gb).await
    }

    async fn create_volume_from_image(
        &self,
        id: &str,
        image: &Path,
        image_format: &str,
        size_gb: u64,
    ) -> Result<String, DriverError> {
        check_id("volume", id)?;
        let size = gib_to_bytes(size_gb)?;
        let src_format = qemu_format(image_format)?;
        let _guard = self.locks.lock(&[volume_key(id)]).await;
        let dst = self.volume_path(id);
        if exists(&dst)? {
            return Err(already("volume", id));
        }
        if !exists(image)? {
            return Err(DriverError::Invalid(format!(
                "image file {} not found",
                image.display()
            )));
        }
        let info = self.image_info(image, src_format).await?;
        info.check_self_contained(image)?;
        if info.virtual_size > size {
            return Err(DriverError::Invalid(format!(
                "the image's virtual size ({} bytes) is larger than the volume ({size_gb} GiB)",
                info.virtual_size
            )));
        }
        let tmp = TempPath::new(&self.dir, &format!("volume-{id}"));
        self.convert(image, src_format, tmp.path(), self.format.as_str())
            .await?;
        match self.virtual_size(tmp.path()).await? {
            Some(converted) if converted < size => self.grow(tmp.path(), size).await?,
            Some(_) => {}
            None => {
                return Err(DriverError::io(
                    format!("qemu-img convert made no {}", tmp.path().display()),
                    std::io::ErrorKind::NotFound.into(),
                ))
            }
        }
        persist(tmp, dst).await?;
        tracing::info!(backend = %self.name, volume = id, image = %image.display(), "volume created from image");
        Ok(self.location(id))
    }

    async fn export_volume(
        &self,
        id: &str,
        format: &str,
        dir: &Path,
    ) -> Result<PathBuf, DriverError> {
        check_id("volume", id)?;
        let dst_format = export_format(format)?;
        let _guard = self.locks.lock(&[volume_key(id)]).await;
        let src = self.volume_path(id);
        if !exists(&src)? {
            return Err(DriverError::VolumeNotFound(id.into()));
        }
        let owned_dir = dir.to_owned();
        blocking(move || {
            std::fs::create_dir_all(&owned_dir)
                .context(|| format!("cannot create {}", owned_dir.display()))
        })
        .await?;
        let out = dir.join(format!("volume-{id}.{format}"));
        let tmp = TempPath::new(dir, &format!("export-{id}"));
        if dst_format == self.format.as_str() {
            self.copy_same_format(&src, tmp.path()).await?;
        } else {
            self.convert(&src, self.format.as_str(), tmp.path(), dst_format)
                .await?;
        }
        persist(tmp, out.clone()).await?;
        Ok(out)
    }

    async fn backup_volume(
        &self,
        volume_id: &str,
        backup_dir: &Path,
        parent_manifest: Option<&Path>,
    ) -> Result<BackupInfo, DriverError> {
        check_id("volume", volume_id)?;
        let _guard = self.locks.lock(&[volume_key(volume_id)]).await;
        let src = self.volume_path(volume_id);
        if !exists(&src)? {
            return Err(DriverError::VolumeNotFound(volume_id.into()));
        }
        // Backups read raw bytes: a qcow2 volume is first expanded into a (sparse) raw copy.
        let raw_copy = match self.format {
            VolumeFormat::Raw => None,
            VolumeFormat::Qcow2 => {
                let tmp = TempPath::new(&self.dir, &format!("backup-{volume_id}"));
                self.convert(&src, "qcow2", tmp.path(), "raw").await?;
                Some(tmp)
            }
        };
        let source = Source::File(raw_copy.as_ref().map_or(src, |t| t.path().to_owned()));
        let (id, dir) = (volume_id.to_owned(), backup_dir.to_owned());
        let parent = parent_manifest.map(Path::to_owned);
        let info = blocking(move || backup::create(source, &id, &dir, parent.as_deref())).await?;
        drop(raw_copy);
        tracing::info!(
            backend = %self.name,
            volume = volume_id,
            bytes_stored = info.bytes_stored,
            chunks_stored = info.chunks_stored,
            "volume backed up"
        );
        Ok(info)
    }

    async fn restore_backup(
        &self,
        backup_manifest: &Path,
        chunk_dirs: &[PathBuf],
        volume_id: &str,
    ) -> Result<(), DriverError> {
        check_id("volume", volume_id)?;
        let _guard = self.locks.lock(&[volume_key(volume_id)]).await;
        let dst = self.volume_path(volume_id);
        let Some(size) = self.virtual_size(&dst).await? else {
            return Err(DriverError::VolumeNotFound(volume_id.into()));
        };
        let manifest_path = backup_manifest.to_owned();
        let manifest = blocking(move || BackupManifest::read(&manifest_path)).await?;
        if manifest.size_bytes > size {
            return Err(DriverError::Invalid(format!(
                "the backup ({} bytes) does not fit volume {volume_id} ({size} bytes)",
                manifest.size_bytes
            )));
        }
        let raw = TempPath::new(&self.dir, &format!("restore-{volume_id}"));
        {
            let (path, manifest_path) = (raw.path().to_owned(), backup_manifest.to_owned());
            let chunk_dirs = chunk_dirs.to_vec();
            blocking(move || {
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&path)
                    .and_then(|f| f.set_len(size))
                    .context(|| format!("cannot create {}", path.display()))?;
                backup::restore(&manifest, &manifest_path, &chunk_dirs, &path)
            })
            .await?;
        }
        match self.format {
            VolumeFormat::Raw => persist(raw, dst).await,
            VolumeFormat::Qcow2 => {
                let tmp = TempPath::new(&self.dir, &format!("volume-{volume_id}"));
                self.convert(raw.path(), "raw", tmp.path(), "qcow2").await?;
                drop(raw);
                persist(tmp, dst).await
            }
        }
    }

    async fn attach(
        &self,
        volume_id: &str,
        connector_host: &str,
    ) -> Result<ConnectionInfo, DriverError> {
        check_id("volume", volume_id)?;
        let path = self.volume_path(volume_id);
        if !exists(&path)? {
            return Err(DriverError::VolumeNotFound(volume_id.into()));
        }
        tracing::debug!(backend = %self.name, volume = volume_id, host = connector_host, "connection initialised");
        let data = [
            ("path", path.display().to_string()),
            ("format", self.format.as_str().to_string()),
            ("volume_id", volume_id.to_string()),
            ("access_mode", "rw".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), serde_json::Value::String(v)))
        .collect();
        Ok(ConnectionInfo {
            driver_volume_type: "file".into(),
            data,
        })
    }

    async fn detach(&self, volume_id: &str, connector_host: &str) -> Result<(), DriverError> {
        check_id("volume", volume_id)?;
        tracing::debug!(backend = %self.name, volume = volume_id, host = connector_host, "connection terminated");
        Ok(())
    }
}

fn volume_key(id: &str) -> String {
    format!("volume-{id}")
}

fn snapshot_key(id: &str) -> String {
    format!("snapshot-{id}")
}

fn already(kind: &'static str, id: &str) -> DriverError {
    DriverError::AlreadyExists {
        kind,
        id: id.to_string(),
    }
}

fn args(parts: &[&OsStr]) -> Vec<OsString> {
    parts.iter().map(|p| p.to_os_string()).collect()
}

async fn persist(tmp: TempPath, dst: PathBuf) -> Result<(), DriverError> {
    blocking(move || tmp.persist(&dst)).await
}

async fn remove_if_present(path: PathBuf) -> Result<(), DriverError> {
    match tokio::fs::remove_file(&path).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(DriverError::io(
            format!("cannot remove {}", path.display()),
            e,
        )),
    }
}

/// Glance `disk_format`s a volume can be made from, as `qemu-img` names them.
fn qemu_format(disk_format: &str) -> Result<&'static str, DriverError> {
    Ok(match disk_format {
        "raw" | "iso" => "raw",
        "qcow2" => "qcow2",
        "vmdk" => "vmdk",
        "vdi" => "vdi",
        "vhd" | "vpc" => "vpc",
        "vhdx" => "vhdx",
        other => {
            return Err(DriverError::Invalid(format!(
                "cannot read images of disk format {other:?}"
            )))
        }
    })
}

/// Glance `disk_format`s a volume can be uploaded as.
fn export_format(disk_format: &str) -> Result<&'static str, DriverError> {
    match disk_format {
        "iso" => Err(DriverError::Invalid(
            "cannot upload a volume as an iso image".into(),
        )),
        other => qemu_format(other),
    }
}

/// The virtual size of a file of `format`, `None` when absent. Raw: the file's length; qcow2: read from the
/// header (big-endian u64 at byte 24, after the `QFI\xfb` magic), so `stats` runs no process. Blocking.
fn virtual_size(path: &Path, format: VolumeFormat) -> Result<Option<u64>, DriverError> {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(DriverError::io(
                format!("cannot open {}", path.display()),
                e,
            ))
        }
    };
    match format {
        VolumeFormat::Raw => file
            .metadata()
            .map(|m| Some(m.len()))
            .context(|| format!("cannot stat {}", path.display())),
        VolumeFormat::Qcow2 => {
            let mut header = [0u8; 32];
            let got = read_full_at(&file, &mut header, 0)
                .context(|| format!("cannot read {}", path.display()))?;
            if got < header.len() || header[..4] != *b"QFI\xfb" {
                return Err(DriverError::io(
                    format!("{} is not a qcow2 image", path.display()),
                    std::io::ErrorKind::InvalidData.into(),
                ));
            }
            let mut size = [0u8; 8];
            size.copy_from_slice(&header[24..32]);
            Ok(Some(u64::from_be_bytes(size)))
        }
    }
}

/// Copy a raw file to the new file `dst`, leaving holes where the source has all-zero MiBs. Blocking.
fn sparse_copy(src: &Path, dst: &Path) -> Result<(), DriverError> {
    use std::os::unix::fs::FileExt;
    let input = std::fs::File::open(src).context(|| format!("cannot open {}", src.display()))?;
    let len = input
        .metadata()
        .context(|| format!("cannot stat {}", src.display()))?
        .len();
    let output = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(dst)
        .context(|| format!("cannot create {}", dst.display()))?;
    let mut buf = vec![0u8; COPY_BUF];
    let mut offset = 0u64;
    while offset < len {
        let got = read_full_at(&input, &mut buf, offset)
            .context(|| format!("cannot read {} at {offset}", src.display()))?;
        if got == 0 {
            break;
        }
        let data = &buf[..got];
        if !is_zero(data) {
            output
                .write_all_at(data, offset)
                .context(|| format!("cannot write {} at {offset}", dst.display()))?;
        }
        offset += got as u64;
    }
    output
        .set_len(len)
        .context(|| format!("cannot resize {}", dst.display()))
}

/// What `qemu-img info --output=json` says about an image.
#[derive(Debug)]
struct ImageInfo {
    virtual_size: u64,
    backing_file: Option<String>,
    data_file: Option<String>,
    vmdk_create_type: Option<String>,
    format: String,
}

impl ImageInfo {
    fn parse(json: &[u8]) -> Result<Self, String> {
        let v: serde_json::Value =
            serde_json::from_slice(json).map_err(|e| format!("not JSON: {e}"))?;
        let text = |value: &serde_json::Value| value.as_str().map(str::to_string);
        let specific = &v["format-specific"]["data"];
        Ok(ImageInfo {
            virtual_size: v["virtual-size"]
                .as_u64()
                .ok_or("no virtual-size in qemu-img info")?,
            backing_file: text(&v["backing-filename"]),
            data_file: text(&specific["data-file"]),
            vmdk_create_type: text(&specific["create-type"]),
            format: text(&v["format"]).unwrap_or_default(),
        })
    }

    /// Refuse images that make `qemu-img` open other files.
    fn check_self_contained(&self, image: &Path) -> Result<(), DriverError> {
        let refuse = |why: String| {
            Err(DriverError::Invalid(format!(
                "image {} is refused: {why}",
                image.display()
            )))
        };
        if let Some(backing) = &self.backing_file {
            return refuse(format!("it has a backing file ({backing})"));
        }
        if let Some(data_file) = &self.data_file {
            return refuse(format!("it has an external data file ({data_file})"));
        }
        if self.format == "vmdk" {
            let create_type = self.vmdk_create_type.as_deref().unwrap_or("unknown");
            if !matches!(create_type, "monolithicSparse" | "streamOptimized") {
                return refuse(format!(
                    "vmdk create type {create_type} keeps data in other files"
                ));
            }
        }
        Ok(())
    }
}

/// One async mutex per volume or snapshot name, created on demand and dropped when unused.
#[derive(Default)]
struct Locks(Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

impl Locks {
    /// Take the locks of all `keys`, always in sorted order so two calls never wait for each other.
    async fn lock(&self, keys: &[String]) -> Vec<OwnedMutexGuard<()>> {
        let mut keys = keys.to_vec();
        keys.sort();
        keys.dedup();
        let mutexes: Vec<_> = {
            let mut map = self.0.lock();
            // Only the map holds an unused entry (guards and waiters hold clones).
            map.retain(|_, m| Arc::strong_count(m) > 1);
            keys.into_iter()
                .map(|k| map.entry(k).or_default().clone())
                .collect()
        };
        let mut guards = Vec::with_capacity(mutexes.len());
        for mutex in mutexes {
            guards.push(mutex.lock_owned().await);
        }
        guards
    }
}
