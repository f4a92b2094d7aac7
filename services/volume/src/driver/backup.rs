//! The chunked backup format every driver writes and reads.
//!
//! A backup is a directory holding `manifest.json` ([`BackupManifest`]) and one file per stored chunk, named
//! by the lowercase hex SHA-256 of its bytes. The volume is cut into [`CHUNK_SIZE`] pieces (the last one may
//! be shorter); the manifest lists `(offset, sha256)` for every piece that is not all zeros, so sparse
//! volumes cost nothing and a piece missing from the list reads as zeros.
//!
//! An incremental backup lists every chunk too, but stores only those whose hash its parent's manifest does
//! not list; the others live in the directory of the parent or of one of its ancestors. Restoring therefore
//! takes the directories of the whole chain. Chunks are checked against their hashes when restored.
//!
//! A backup directory appears complete or not at all: it is written under a temporary name beside its
//! final place and renamed when every chunk and the manifest are on disk.

use std::collections::HashSet;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{exists, is_zero, read_full_at, DriverError, IoContext, TempPath};

/// Size of a backup chunk: 1 MiB.
pub const CHUNK_SIZE: u64 = 1 << 20;
/// The manifest's file name inside a backup directory.
pub const MANIFEST_FILE: &str = "manifest.json";
/// The manifest format this code writes and reads.
pub const MANIFEST_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupManifest {
    pub version: u32,
    /// The volume the backup was taken from (incremental backups must share it with their parent).
    pub volume_id: String,
    /// The volume's size in bytes when it was backed up.
    pub size_bytes: u64,
    pub chunk_size: u64,
    /// Non-zero chunks in increasing offset order.
    pub chunks: Vec<ChunkRef>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRef {
    pub offset: u64,
    pub sha256: String,
}

/// What a backup call wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupInfo {
    /// `<backup_dir>/manifest.json`.
    pub manifest: PathBuf,
    pub size_bytes: u64,
    /// Bytes of the chunks stored in this backup's directory (the manifest not counted).
    pub bytes_stored: u64,
    /// Chunks stored in this backup's directory.
    pub chunks_stored: u64,
    /// Non-zero chunks the manifest lists (stored here or in an ancestor).
    pub chunks_referenced: u64,
}

impl BackupManifest {
    /// Read and check a manifest. Blocking.
    pub fn read(path: &Path) -> Result<Self, DriverError> {
        let bad = |reason: String| DriverError::BadBackup {
            path: path.display().to_string(),
            reason,
        };
        let text = match std::fs::read(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(bad("manifest not found".into()))
            }
            Err(e) => {
                return Err(DriverError::io(
                    format!("cannot read {}", path.display()),
                    e,
                ))
            }
        };
        let manifest: BackupManifest =
            serde_json::from_slice(&text).map_err(|e| bad(format!("malformed manifest: {e}")))?;
        manifest.check().map_err(bad)?;
        Ok(manifest)
    }

    /// Everything restore relies on, so stored data never makes it misbehave.
    fn check(&self) -> Result<(), String> {
        if self.version != MANIFEST_VERSION {
            return Err(format!("unsupported manifest version {}", self.version));
        }
        if self.chunk_size != CHUNK_SIZE {
            return Err(format!("unsupported chunk size {}", self.chunk_size));
        }
        let mut next = 0;
        for chunk in &self.chunks {
            if chunk.offset < next
                || chunk.offset % CHUNK_SIZE != 0
                || chunk.offset >= self.size_bytes
            {
                return Err(format!("chunk offset {} out of place", chunk.offset));
            }
            if chunk.sha256.len() != 64
                || !chunk
                    .sha256
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            {
                return Err(format!("chunk name {:?} is not a SHA-256", chunk.sha256));
            }
            next = chunk.offset + CHUNK_SIZE;
        }
        Ok(())
    }

    /// Length of the chunk at `offset` (the last one may be short).
    fn chunk_len(&self, offset: u64) -> usize {
        // Bounded by CHUNK_SIZE, so the cast is lossless.
        (self.size_bytes - offset).min(CHUNK_SIZE) as usize
    }
}

/// Where a backup's bytes come from.
pub(crate) enum Source {
    /// A raw image of the volume.
    File(PathBuf),
    /// A volume of this many bytes that reads as zeros (the fake driver's volumes).
    Zeros(u64),
}

/// Write a backup of `source` into `backup_dir`. Blocking.
pub(crate) fn create(
    source: Source,
    volume_id: &str,
    backup_dir: &Path,
    parent_manifest: Option<&Path>,
) -> Result<BackupInfo, DriverError> {
    let parent = parent_manifest.map(BackupManifest::read).transpose()?;
    if let Some(parent) = &parent {
        if parent.volume_id != volume_id {
            return Err(DriverError::Invalid(format!(
                "the parent backup is of volume {}, not {volume_id}",
                parent.volume_id
            )));
        }
    }
    let known: HashSet<&str> = parent
        .iter()
        .flat_map(|p| p.chunks.iter().map(|c| c.sha256.as_str()))
        .collect();

    let (Some(place), Some(name)) = (backup_dir.parent(), backup_dir.file_name()) else {
        return Err(DriverError::Invalid(format!(
            "backup directory {} has no parent",
            backup_dir.display()
        )));
    };
    if exists(backup_dir)? {
        let empty = std::fs::read_dir(backup_dir)
            .context(|| format!("cannot list {}", backup_dir.display()))?
            .next()
            .is_none();
        if !empty {
            return Err(DriverError::AlreadyExists {
                kind: "backup",
                id: backup_dir.display().to_string(),
            });
        }
    }
    std::fs::create_dir_all(place).context(|| format!("cannot create {}", place.display()))?;
    let tmp = TempPath::new(place, &format!("backup-{}", name.to_string_lossy()));
    std::fs::create_dir(tmp.path())
        .context(|| format!("cannot create {}", tmp.path().display()))?;

    let mut manifest = BackupManifest {
        version: MANIFEST_VERSION,
        volume_id: volume_id.to_string(),
        size_bytes: 0,
        chunk_size: CHUNK_SIZE,
        chunks: Vec::new(),
    };
    let mut info = BackupInfo {
        manifest: backup_dir.join(MANIFEST_FILE),
        size_bytes: 0,
        bytes_stored: 0,
        chunks_stored: 0,
        chunks_referenced: 0,
    };
    match source {
        Source::Zeros(size) => manifest.size_bytes = size,
        Source::File(path) => {
            let file =
                std::fs::File::open(&path).context(|| format!("cannot open {}", path.display()))?;
            let size = file
                .metadata()
                .context(|| format!("cannot stat {}", path.display()))?
                .len();
            manifest.size_bytes = size;
            let mut stored: HashSet<String> = HashSet::new();
            let mut buf = vec![0u8; CHUNK_SIZE as usize];
            let mut offset = 0;
            while offset < size {
                let want = manifest.chunk_len(offset);
                let data = &mut buf[..want];
                let got = read_full_at(&file, data, offset)
                    .context(|| format!("cannot read {} at {offset}", path.display()))?;
                if got < want {
                    return Err(DriverError::io(
                        format!("{} shrank while being backed up", path.display()),
                        std::io::ErrorKind::UnexpectedEof.into(),
                    ));
                }
                if !is_zero(data) {
                    let sha256 = hex::encode(Sha256::digest(&*data));
                    if !known.contains(sha256.as_str()) && !stored.contains(&sha256) {
                        write_synced(&tmp.path().join(&sha256), data)?;
                        info.bytes_stored += want as u64;
                        info.chunks_stored += 1;
                        stored.insert(sha256.clone());
                    }
                    manifest.chunks.push(ChunkRef { offset, sha256 });
                }
                offset += want as u64;
            }
        }
    }
    info.size_bytes = manifest.size_bytes;
    info.chunks_referenced = manifest.chunks.len() as u64;

    let json = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| DriverError::io("cannot encode the manifest", std::io::Error::other(e)))?;
    write_synced(&tmp.path().join(MANIFEST_FILE), &json)?;
    tmp.persist(backup_dir).map_err(|e| match e {
        // Someone filled the directory since it was checked.
        DriverError::Io { source, .. }
            if matches!(
                source.kind(),
                std::io::ErrorKind::DirectoryNotEmpty | std::io::ErrorKind::AlreadyExists
            ) =>
        {
            DriverError::AlreadyExists {
                kind: "backup",
                id: backup_dir.display().to_string(),
            }
        }
        other => other,
    })?;
    Ok(info)
}

/// Write the backup's chunks into `target`, a file at least `manifest.size_bytes` long that reads as zeros.
/// Blocking.
pub(crate) fn restore(
    manifest: &BackupManifest,
    manifest_path: &Path,
    chunk_dirs: &[PathBuf],
    target: &Path,
) -> Result<(), DriverError> {
    let bad = |reason: String| DriverError::BadBackup {
        path: manifest_path.display().to_string(),
        reason,
    };
    let out = std::fs::OpenOptions::new()
        .write(true)
        .open(target)
        .context(|| format!("cannot open {}", target.display()))?;
    for chunk in &manifest.chunks {
        let mut found = None;
        for dir in chunk_dirs {
            let path = dir.join(&chunk.sha256);
            match std::fs::read(&path) {
                Ok(data) => {
                    found = Some((path, data));
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(DriverError::io(
                        format!("cannot read {}", path.display()),
                        e,
                    ))
                }
            }
        }
        let Some((path, data)) = found else {
            return Err(bad(format!(
                "chunk {} (offset {}) is in none of the backup directories",
                chunk.sha256, chunk.offset
            )));
        };
        if data.len() != manifest.chunk_len(chunk.offset)
            || hex::encode(Sha256::digest(&data)) != chunk.sha256
        {
            return Err(bad(format!(
                "chunk {} does not match its hash",
                path.display()
            )));
        }
        out.write_all_at(&data, chunk.offset)
            .context(|| format!("cannot write {} at {}", target.display(), chunk.offset))?;
    }
    out.sync_all()
        .context(|| format!("cannot sync {}", target.display()))
}

fn write_synced(path: &Path, data: &[u8]) -> Result<(), DriverError> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .context(|| format!("cannot create {}", path.display()))?;
    file.write_all_at(data, 0)
        .and_then(|()| file.sync_all())
        .context(|| format!("cannot write {}", path.display()))?;
    // The directory entries are flushed once, when the backup directory is persisted.
    Ok(())
}
