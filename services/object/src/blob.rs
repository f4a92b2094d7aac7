//! The blob store: where Swift object bytes live, apart from the object events (which only record a blob id,
//! its size and its MD5).
//!
//! Blobs are immutable files `<data_dir>/objects/<id[0..2]>/<id>`, where the id is a random UUID v4 in
//! simple form (32 lowercase hex characters). An upload:
//!
//! 1. [`BlobStore::begin`] creates a temporary file `<root>/.tmp-<uuid>` and returns a [`BlobWriter`];
//! 2. [`BlobWriter::write`] buffers the request-body chunks to [`WRITE_BUFFER`] bytes and, on a blocking
//!    thread, feeds each full buffer to MD5 and writes it to the file in the same pass (one syscall per
//!    buffer, not per network chunk, and no hashing on the async workers);
//! 3. [`BlobWriter::commit`] writes the rest, compares the MD5 with the client's ETag *before* anything is
//!    visible (a mismatch removes the temporary file), then fsyncs the file, renames it to its final name
//!    and fsyncs the directory. After a crash a blob is either complete or absent.
//!
//! An unfinished writer (aborted, over its limit, or dropped because the client went away) removes its
//! temporary file. Whatever a crash leaves behind (temporary files, blobs renamed into place whose object
//! event was never recorded) is removed by [`BlobStore::sweep`] at start-up.
//!
//! The 256 two-character directories are created (and made durable) once by [`BlobStore::open`], so a commit
//! only has to fsync its own directory.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;

use bytes::Bytes;
use futures::Stream;
use md5::{Digest, Md5};

/// Size of the chunks [`BlobStore::read`] yields (the last one may be shorter).
pub const READ_CHUNK: usize = 256 * 1024;

/// A writer collects this many bytes before it hashes and writes them.
pub const WRITE_BUFFER: usize = 256 * 1024;

/// Name prefix of the temporary files of unfinished uploads (directly under the root).
const TMP_PREFIX: &str = ".tmp-";

/// Length of a blob id: a UUID v4 in simple form.
const ID_LEN: usize = 32;

/// A stream of blob bytes.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, BlobError>> + Send + 'static>>;

/// Errors of the blob store.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The data's MD5 is not the one the client sent; nothing was stored.
    #[error("the data's MD5 {computed} does not match the expected ETag")]
    EtagMismatch { computed: String },
    /// No blob with this id.
    #[error("blob {0} not found")]
    NotFound(String),
    /// The upload went past the writer's limit; nothing was stored.
    #[error("the data is larger than {limit} bytes")]
    TooLarge { limit: u64 },
    /// The writer was used after one of its writes failed.
    #[error("the upload already failed")]
    Failed,
    #[error("blob store I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// A stored blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    /// 32 lowercase hex characters.
    pub id: String,
    pub size: u64,
    /// MD5 of the bytes, lowercase hex.
    pub md5: String,
}

/// What [`BlobStore::sweep`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Temporary files of unfinished uploads.
    pub temps: usize,
    /// Blob files whose id was not in the set to keep.
    pub orphans: usize,
}

/// The blob store: immutable files under `<data_dir>/objects`.
#[derive(Debug, Clone)]
pub struct BlobStore {
    /// Absolute path of `<data_dir>/objects`.
    root: PathBuf,
}

/// Whether `id` is a blob id: exactly 32 lowercase hex characters (so never a path separator, `..` or a
/// hidden name).
fn valid_id(id: &str) -> bool {
    id.len() == ID_LEN && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Whether `name` is one of the 256 two-character directory names.
fn valid_prefix(name: &str) -> bool {
    name.len() == 2 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The expected MD5 as a client sends it in an ETag: surrounding whitespace and quotes dropped.
fn normalize_etag(etag: &str) -> &str {
    let etag = etag.trim();
    etag.strip_prefix('"')
        .and_then(|e| e.strip_suffix('"'))
        .unwrap_or(etag)
        .trim()
}

/// fsync a directory, so the names created or renamed in it survive a crash.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Run blocking file work off the async workers.
async fn blocking<T, F>(f: F) -> std::io::Result<T>
where
    F: FnOnce() -> std::io::Result<T> + Send + 'static,
    T: Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => Err(std::io::Error::other(format!(
            "blob store task failed: {e}"
        ))),
    }
}

/// Remove a file; a missing file is fine.
fn remove_if_exists(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

impl BlobStore {
    /// Open (creating if needed) the store under `<data_dir>/objects`, with its 256 two-character
    /// directories. Synchronous: call it at start-up.
    pub fn open(data_dir: &Path) -> std::io::Result<Self> {
        let root = data_dir.join("objects");
        let created_root = !root.is_dir();
        std::fs::create_dir_all(&root)?;
        let root = std::fs::canonicalize(&root)?;
        let mut created = false;
        for prefix in 0..=255u8 {
            let dir = root.join(format!("{prefix:02x}"));
            match std::fs::create_dir(&dir) {
                Ok(()) => created = true,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => {}
                Err(e) => return Err(e),
            }
        }
        if created {
            sync_dir(&root)?;
        }
        if created_root {
            if let Some(parent) = root.parent() {
                sync_dir(parent)?;
            }
        }
        Ok(BlobStore { root })
    }

    /// The store's directory (`<data_dir>/objects`, absolute).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob `id` lives: `<root>/<id[0..2]>/<id>`; `None` if `id` is not a blob id.
    pub fn path_of(&self, id: &str) -> Option<PathBuf> {
        valid_id(id).then(|| self.root.join(&id[..2]).join(id))
    }

    /// Start an upload into a new temporary file. Nothing is visible until [`BlobWriter::commit`].
    pub async fn begin(&self) -> Result<BlobWriter, BlobError> {
        let tmp = self.root.join(format!("{TMP_PREFIX}{}", new_id()));
        let path = tmp.clone();
        let file = blocking(move || {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
        })
        .await?;
        Ok(BlobWriter {
            store: self.clone(),
            tmp,
            file: Some((file, Md5::new())),
            buf: Vec::new(),
            written: 0,
            limit: None,
            failed: false,
            done: false,
        })
    }

    /// Store `bytes` as a new blob.
    pub async fn write_all(&self, bytes: &[u8]) -> Result<Blob, BlobError> {
        let mut writer = self.begin().await?;
        writer.write(bytes).await?;
        writer.commit(None).await
    }

    /// Stream exactly `len` bytes of blob `id` from `offset`, in [`READ_CHUNK`] pieces. `NotFound` if there
    /// is no such blob; a file shorter than `offset + len` ends the stream with an error item.
    pub async fn read(&self, id: &str, offset: u64, len: u64) -> Result<ByteStream, BlobError> {
        let path = self
            .path_of(id)
            .ok_or_else(|| BlobError::NotFound(id.to_string()))?;
        let opened = blocking(move || {
            let mut file = File::open(&path)?;
            if offset > 0 {
                file.seek(SeekFrom::Start(offset))?;
            }
            Ok(file)
        })
        .await;
        let file = match opened {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(BlobError::NotFound(id.to_string()))
            }
            Err(e) => return Err(e.into()),
        };
        Ok(read_stream(file, len))
    }

    /// The whole blob in memory (for small things such as large-object manifests).
    pub async fn read_to_vec(&self, id: &str) -> Result<Vec<u8>, BlobError> {
        let path = self
            .path_of(id)
            .ok_or_else(|| BlobError::NotFound(id.to_string()))?;
        match tokio::fs::read(&path).await {
            Ok(bytes) => Ok(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(BlobError::NotFound(id.to_string()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Delete blob `id`; a missing blob (or an id no blob can have) is fine.
    pub async fn delete(&self, id: &str) -> Result<(), BlobError> {
        let Some(path) = self.path_of(id) else {
            return Ok(());
        };
        match tokio::fs::remove_file(&path).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// A new blob with the same bytes as blob `id` (for server-side copies): a hard link to the same
    /// immutable file, or a copy (temporary file, fsync, rename) where linking is not possible. Either way
    /// the new name is durable (its directory is fsynced) when this returns. Returns the new id.
    pub async fn link_copy(&self, id: &str) -> Result<String, BlobError> {
        let src = self
            .path_of(id)
            .ok_or_else(|| BlobError::NotFound(id.to_string()))?;
        let new = new_id();
        let dst = self.path_of(&new).expect("a new id is valid");
        let tmp = self.root.join(format!("{TMP_PREFIX}{}", new_id()));
        let root = self.root.clone();
        let result = blocking(move || {
            // Surface a missing source as NotFound, whatever linking would say.
            std::fs::metadata(&src)?;
            ensure_parent(&root, &dst)?;
            match std::fs::hard_link(&src, &dst) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(e),
                Err(e) => {
                    tracing::debug!(error = %e, "hard link failed; copying the blob instead");
                    if let Err(e) = copy_durably(&src, &tmp, &dst) {
                        let _ = remove_if_exists(&tmp);
                        return Err(e);
                    }
                }
            }
            sync_dir(dst.parent().expect("a blob path has a parent"))
        })
        .await;
        match result {
            Ok(()) => Ok(new),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(BlobError::NotFound(id.to_string()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Start-up clean-up: remove every temporary file of an unfinished upload and every blob whose id is not
    /// in `keep`. Only files directly under the root (temporaries) or in its two-character directories
    /// (blobs) are considered; symlinks, other names and anything outside the root are left alone. Run it
    /// before any upload starts. Synchronous.
    pub fn sweep(&self, keep: &BTreeSet<String>) -> std::io::Result<SweepReport> {
        let mut report = SweepReport::default();
        for entry in std::fs::read_dir(&self.root)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let kind = entry.file_type()?;
            if name.starts_with(TMP_PREFIX) && kind.is_file() {
                remove_if_exists(&entry.path())?;
                report.temps += 1;
            } else if valid_prefix(name) && kind.is_dir() {
                for blob in std::fs::read_dir(entry.path())? {
                    let blob = blob?;
                    let id = blob.file_name();
                    let Some(id) = id.to_str() else { continue };
                    if valid_id(id)
                        && id.starts_with(name)
                        && blob.file_type()?.is_file()
                        && !keep.contains(id)
                    {
                        remove_if_exists(&blob.path())?;
                        report.orphans += 1;
                    }
                }
            }
        }
        if report.temps > 0 || report.orphans > 0 {
            tracing::info!(
                temps = report.temps,
                orphans = report.orphans,
                root = %self.root.display(),
                "removed unfinished uploads and unreferenced object data"
            );
        }
        Ok(report)
    }
}

/// Make sure the two-character directory of `path` exists (it is created by [`BlobStore::open`]; this
/// only matters if it was removed since), durably.
fn ensure_parent(root: &Path, path: &Path) -> std::io::Result<()> {
    let dir = path.parent().expect("a blob path has a parent");
    if !dir.is_dir() {
        std::fs::create_dir_all(dir)?;
        sync_dir(root)?;
    }
    Ok(())
}

/// Copy `src` to `dst` through the temporary file `tmp`: copy, fsync, rename (the caller fsyncs the
/// directory).
fn copy_durably(src: &Path, tmp: &Path, dst: &Path) -> std::io::Result<()> {
    let mut from = File::open(src)?;
    let mut to = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(tmp)?;
    std::io::copy(&mut from, &mut to)?;
    to.sync_all()?;
    drop(to);
    std::fs::rename(tmp, dst)
}

/// Stream `remaining` bytes from the file's position, one blocking read of up to [`READ_CHUNK`] bytes per
/// item.
fn read_stream(file: File, remaining: u64) -> ByteStream {
    Box::pin(futures::stream::try_unfold(
        (file, remaining),
        |(file, remaining)| async move {
            if remaining == 0 {
                return Ok(None);
            }
            let want = remaining.min(READ_CHUNK as u64) as usize;
            let (file, chunk) = blocking(move || {
                let mut chunk = Vec::with_capacity(want);
                let mut file = file;
                (&mut file).take(want as u64).read_to_end(&mut chunk)?;
                Ok((file, chunk))
            })
            .await?;
            if chunk.len() < want {
                return Err(BlobError::Io(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "object data is shorter than its recorded size",
                )));
            }
            Ok(Some((Bytes::from(chunk), (file, remaining - want as u64))))
        },
    ))
}

/// An upload in progress. Dropping it without [`commit`](BlobWriter::commit) removes its temporary file.
pub struct BlobWriter {
    store: BlobStore,
    /// The temporary file's path.
    tmp: PathBuf,
    /// The open temporary file and the MD5 of everything written to it; `None` while a blocking write
    /// holds them (or after a cancelled one).
    file: Option<(File, Md5)>,
    /// Accepted bytes not yet hashed and written (at most [`WRITE_BUFFER`]).
    buf: Vec<u8>,
    /// Bytes accepted (written or buffered).
    written: u64,
    limit: Option<u64>,
    /// A write failed: the file no longer holds what was accepted.
    failed: bool,
    /// The temporary file is gone (renamed or removed): nothing for `Drop` to do.
    done: bool,
}

impl std::fmt::Debug for BlobWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobWriter")
            .field("tmp", &self.tmp)
            .field("written", &self.written)
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl BlobWriter {
    /// Fail the write that would take the size past `limit` bytes (with [`BlobError::TooLarge`], removing
    /// the temporary file); `None` for no limit.
    pub fn set_limit(&mut self, limit: Option<u64>) {
        self.limit = limit;
    }

    /// Append `chunk`.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), BlobError> {
        if self.failed || self.done {
            return Err(BlobError::Failed);
        }
        if let Some(limit) = self.limit {
            if self.written + chunk.len() as u64 > limit {
                self.discard().await;
                return Err(BlobError::TooLarge { limit });
            }
        }
        let mut rest = chunk;
        while !rest.is_empty() {
            if self.buf.capacity() == 0 {
                self.buf.reserve_exact(WRITE_BUFFER);
            }
            let n = rest.len().min(WRITE_BUFFER - self.buf.len());
            self.buf.extend_from_slice(&rest[..n]);
            self.written += n as u64;
            rest = &rest[n..];
            if self.buf.len() == WRITE_BUFFER {
                self.flush().await?;
            }
        }
        Ok(())
    }

    /// Bytes accepted so far.
    pub fn bytes_written(&self) -> u64 {
        self.written
    }

    /// Finish the upload. If `expected_md5` is given (an ETag: compared case-insensitively, surrounding
    /// quotes ignored) and differs from the data's MD5, the temporary file is removed and
    /// [`BlobError::EtagMismatch`] returned. Otherwise the file is fsynced, renamed to its blob path and the
    /// directory fsynced.
    pub async fn commit(mut self, expected_md5: Option<&str>) -> Result<Blob, BlobError> {
        if self.failed || self.done {
            return Err(BlobError::Failed);
        }
        let (file, md5) = self.file.take().ok_or(BlobError::Failed)?;
        let buf = std::mem::take(&mut self.buf);
        let expected = expected_md5.map(|e| normalize_etag(e).to_ascii_lowercase());
        let id = new_id();
        let dst = self.store.path_of(&id).expect("a new id is valid");
        let root = self.store.root.clone();
        let tmp = self.tmp.clone();
        let outcome = blocking(move || {
            let (mut file, mut md5) = (file, md5);
            if !buf.is_empty() {
                md5.update(&buf);
                file.write_all(&buf)?;
            }
            let computed = hex::encode(md5.finalize());
            if expected.as_deref().is_some_and(|e| e != computed) {
                drop(file);
                remove_if_exists(&tmp)?;
                return Ok(Err(computed));
            }
            file.sync_all()?;
            drop(file);
            ensure_parent(&root, &dst)?;
            std::fs::rename(&tmp, &dst)?;
            sync_dir(dst.parent().expect("a blob path has a parent"))?;
            Ok(Ok(computed))
        })
        .await;
        // Renamed, removed, or failed: in every case `Drop` removes whatever temporary file is left.
        match outcome {
            Ok(Ok(md5)) => {
                self.done = true;
                Ok(Blob {
                    id,
                    size: self.written,
                    md5,
                })
            }
            Ok(Err(computed)) => {
                self.done = true;
                Err(BlobError::EtagMismatch { computed })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Give up the upload, removing the temporary file.
    pub async fn abort(mut self) {
        self.discard().await;
    }

    /// Remove the temporary file and mark the writer finished.
    async fn discard(&mut self) {
        self.done = true;
        self.buf = Vec::new();
        let file = self.file.take();
        let tmp = self.tmp.clone();
        let removed = blocking(move || {
            drop(file);
            remove_if_exists(&tmp)
        })
        .await;
        if let Err(e) = removed {
            tracing::warn!(tmp = %self.tmp.display(), error = %e, "could not remove an unfinished upload");
        }
    }

    /// Hash and write the full buffer on a blocking thread.
    async fn flush(&mut self) -> Result<(), BlobError> {
        let Some((file, md5)) = self.file.take() else {
            self.failed = true;
            return Err(BlobError::Failed);
        };
        let buf = std::mem::take(&mut self.buf);
        let result = tokio::task::spawn_blocking(move || {
            let (mut file, mut md5, mut buf) = (file, md5, buf);
            md5.update(&buf);
            let written = file.write_all(&buf);
            buf.clear();
            (file, md5, buf, written)
        })
        .await;
        match result {
            Ok((file, md5, buf, written)) => {
                self.file = Some((file, md5));
                self.buf = buf;
                if let Err(e) = written {
                    self.failed = true;
                    return Err(e.into());
                }
                Ok(())
            }
            Err(e) => {
                self.failed = true;
                Err(std::io::Error::other(format!("blob write task failed: {e}")).into())
            }
        }
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if !self.done {
            self.file.take();
            if let Err(e) = remove_if_exists(&self.tmp) {
                tracing::warn!(tmp = %self.tmp.display(), error = %e, "could not remove an unfinished upload");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::TryStreamExt;

    const EMPTY_MD5: &str = "d41d8cd98f00b204e9800998ecf8427e";

    fn store() -> (tempfile::TempDir, BlobStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        (dir, store)
    }

    fn md5_hex(bytes: &[u8]) -> String {
        hex::encode(Md5::digest(bytes))
    }

    /// Every file under the root (temporaries and blobs), as paths relative to it.
    fn files(store: &BlobStore) -> Vec<String> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(store.root()).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                for inner in std::fs::read_dir(entry.path()).unwrap() {
                    let inner = inner.unwrap();
                    out.push(format!(
                        "{}/{}",
                        entry.file_name().to_string_lossy(),
                        inner.file_name().to_string_lossy()
                    ));
                }
            } else {
                out.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        out.sort();
        out
    }

    async fn read_all(store: &BlobStore, id: &str, offset: u64, len: u64) -> Vec<u8> {
        let chunks: Vec<Bytes> = store
            .read(id, offset, len)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        for c in &chunks {
            assert!(c.len() <= READ_CHUNK);
        }
        chunks.concat()
    }

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[tokio::test]
    async fn write_commit_and_read_back() {
        let (_dir, store) = store();
        let bytes = data(WRITE_BUFFER * 2 + 12_345);
        let mut w = store.begin().await.unwrap();
        // Odd-sized chunks that straddle the buffer boundary.
        for chunk in bytes.chunks(10_007) {
            w.write(chunk).await.unwrap();
        }
        assert_eq!(w.bytes_written(), bytes.len() as u64);
        let blob = w.commit(None).await.unwrap();
        assert_eq!(blob.size, bytes.len() as u64);
        assert_eq!(blob.md5, md5_hex(&bytes));
        assert!(valid_id(&blob.id));
        let path = store.path_of(&blob.id).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
        assert_eq!(
            files(&store),
            vec![format!("{}/{}", &blob.id[..2], blob.id)]
        );

        let len = bytes.len() as u64;
        assert_eq!(read_all(&store, &blob.id, 0, len).await, bytes);
        assert_eq!(store.read_to_vec(&blob.id).await.unwrap(), bytes);
        // Ranges: inside a chunk, across chunks, the tail, nothing.
        for (offset, n) in [
            (0u64, 1u64),
            (100, 1000),
            (READ_CHUNK as u64 - 10, 20),
            (5, READ_CHUNK as u64 * 2),
            (len - 7, 7),
            (42, 0),
        ] {
            let got = read_all(&store, &blob.id, offset, n).await;
            assert_eq!(got, &bytes[offset as usize..(offset + n) as usize]);
        }
        // Reading past the end: the stream ends with an error.
        let result: Result<Vec<Bytes>, _> = store
            .read(&blob.id, len - 5, 10)
            .await
            .unwrap()
            .try_collect()
            .await;
        assert!(matches!(result, Err(BlobError::Io(_))));
        // Missing and invalid ids.
        let missing = new_id();
        assert!(matches!(
            store.read(&missing, 0, 1).await,
            Err(BlobError::NotFound(_))
        ));
        assert!(matches!(
            store.read("../etc/passwd", 0, 1).await,
            Err(BlobError::NotFound(_))
        ));
        assert!(matches!(
            store.read_to_vec(&missing).await,
            Err(BlobError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn write_all_and_empty_blobs() {
        let (_dir, store) = store();
        let blob = store.write_all(b"hello").await.unwrap();
        assert_eq!(blob.size, 5);
        assert_eq!(blob.md5, "5d41402abc4b2a76b9719d911017c592");
        assert_eq!(store.read_to_vec(&blob.id).await.unwrap(), b"hello");

        let empty = store.write_all(b"").await.unwrap();
        assert_eq!(empty.size, 0);
        assert_eq!(empty.md5, EMPTY_MD5);
        assert!(store.path_of(&empty.id).unwrap().is_file());
        assert!(read_all(&store, &empty.id, 0, 0).await.is_empty());

        let w = store.begin().await.unwrap();
        let empty2 = w.commit(Some(EMPTY_MD5)).await.unwrap();
        assert_eq!(empty2.md5, EMPTY_MD5);
        assert_ne!(empty2.id, empty.id);
    }

    #[tokio::test]
    async fn etag_is_compared_before_anything_is_visible() {
        let (_dir, store) = store();
        let mut w = store.begin().await.unwrap();
        w.write(b"some data").await.unwrap();
        match w.commit(Some(EMPTY_MD5)).await {
            Err(BlobError::EtagMismatch { computed }) => {
                assert_eq!(computed, md5_hex(b"some data"))
            }
            other => panic!("expected a mismatch, got {other:?}"),
        }
        assert!(files(&store).is_empty(), "{:?}", files(&store));

        // Quotes and case do not matter.
        let etag = format!("\"{}\"", md5_hex(b"some data").to_uppercase());
        let mut w = store.begin().await.unwrap();
        w.write(b"some data").await.unwrap();
        let blob = w.commit(Some(&etag)).await.unwrap();
        assert_eq!(blob.md5, md5_hex(b"some data"));
    }

    #[tokio::test]
    async fn unfinished_writers_leave_nothing() {
        let (_dir, store) = store();
        {
            let mut w = store.begin().await.unwrap();
            w.write(&data(WRITE_BUFFER + 1)).await.unwrap();
            assert_eq!(files(&store).len(), 1);
        }
        assert!(files(&store).is_empty());

        let mut w = store.begin().await.unwrap();
        w.write(b"abc").await.unwrap();
        w.abort().await;
        assert!(files(&store).is_empty());

        // A writer dropped in the middle of a write (the request future is cancelled).
        let mut w = store.begin().await.unwrap();
        let big = data(WRITE_BUFFER * 4);
        {
            let mut fut = Box::pin(w.write(&big));
            let _ = futures::poll!(fut.as_mut());
        }
        drop(w);
        assert!(files(&store).is_empty());
    }

    #[tokio::test]
    async fn the_limit_is_enforced_while_writing() {
        let (_dir, store) = store();
        let mut w = store.begin().await.unwrap();
        w.set_limit(Some(10));
        w.write(b"0123456789").await.unwrap();
        assert!(matches!(
            w.write(b"x").await,
            Err(BlobError::TooLarge { limit: 10 })
        ));
        assert!(files(&store).is_empty());
        assert!(matches!(w.write(b"x").await, Err(BlobError::Failed)));
        assert!(matches!(w.commit(None).await, Err(BlobError::Failed)));
        assert!(files(&store).is_empty());

        // Exactly at the limit is fine.
        let mut w = store.begin().await.unwrap();
        w.set_limit(Some(3));
        w.write(b"abc").await.unwrap();
        assert_eq!(w.commit(None).await.unwrap().size, 3);
    }

    #[tokio::test]
    async fn link_copy_is_independent_of_the_original() {
        let (_dir, store) = store();
        let bytes = data(70_000);
        let original = store.write_all(&bytes).await.unwrap();
        let copy = store.link_copy(&original.id).await.unwrap();
        assert!(valid_id(&copy));
        assert_ne!(copy, original.id);
        store.delete(&original.id).await.unwrap();
        assert!(matches!(
            store.read_to_vec(&original.id).await,
            Err(BlobError::NotFound(_))
        ));
        assert_eq!(store.read_to_vec(&copy).await.unwrap(), bytes);
        assert_eq!(read_all(&store, &copy, 0, bytes.len() as u64).await, bytes);
        assert!(matches!(
            store.link_copy(&original.id).await,
            Err(BlobError::NotFound(_))
        ));
        assert!(matches!(
            store.link_copy("nope").await,
            Err(BlobError::NotFound(_))
        ));
        assert_eq!(files(&store), vec![format!("{}/{}", &copy[..2], copy)]);
    }

    #[tokio::test]
    async fn copy_fallback_is_durable_and_complete() {
        let (_dir, store) = store();
        let bytes = data(300_000);
        let original = store.write_all(&bytes).await.unwrap();
        let src = store.path_of(&original.id).unwrap();
        let new = new_id();
        let dst = store.path_of(&new).unwrap();
        let tmp = store.root().join(format!("{TMP_PREFIX}{}", new_id()));
        copy_durably(&src, &tmp, &dst).unwrap();
        assert!(!tmp.exists());
        assert_eq!(store.read_to_vec(&new).await.unwrap(), bytes);
    }

    #[tokio::test]
    async fn sweep_removes_temps_and_orphans_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let kept = store.write_all(b"kept").await.unwrap();
        let orphan = store.write_all(b"orphan").await.unwrap();
        let mut pending = store.begin().await.unwrap();
        pending.write(b"half an upload").await.unwrap();
        // A crash: the temporary file stays.
        pending.done = true;
        drop(pending);
        std::fs::write(store.root().join(".tmp-leftover"), b"x").unwrap();
        // Things that are not the store's: left alone.
        std::fs::write(store.root().join("README"), b"x").unwrap();
        std::fs::write(store.root().join("ab").join("not-a-blob"), b"x").unwrap();
        let outside = dir.path().join("outside");
        std::fs::write(&outside, b"x").unwrap();

        let keep: BTreeSet<String> = [kept.id.clone()].into();
        let report = store.sweep(&keep).unwrap();
        assert_eq!(
            report,
            SweepReport {
                temps: 2,
                orphans: 1
            }
        );
        assert_eq!(store.read_to_vec(&kept.id).await.unwrap(), b"kept");
        assert!(!store.path_of(&orphan.id).unwrap().exists());
        assert!(store.root().join("README").exists());
        assert!(store.root().join("ab").join("not-a-blob").exists());
        assert!(outside.exists());
        let mut expected = vec![
            "README".to_string(),
            "ab/not-a-blob".to_string(),
            format!("{}/{}", &kept.id[..2], kept.id),
        ];
        expected.sort();
        assert_eq!(files(&store), expected);

        // Nothing left to do the second time; reopening keeps everything.
        assert_eq!(store.sweep(&keep).unwrap(), SweepReport::default());
        let reopened = BlobStore::open(dir.path()).unwrap();
        assert_eq!(reopened.root(), store.root());
        assert_eq!(reopened.read_to_vec(&kept.id).await.unwrap(), b"kept");
    }

    #[test]
    fn path_of_accepts_only_blob_ids() {
        let (_dir, store) = store();
        let id = new_id();
        assert_eq!(
            store.path_of(&id).unwrap(),
            store.root().join(&id[..2]).join(&id)
        );
        for bad in [
            "",
            "../x",
            "..",
            "/etc/passwd",
            "ab/cdef",
            &id.to_uppercase(),
            &id[..31],
            &format!("{id}0"),
            "g0000000000000000000000000000000",
            "../00000000000000000000000000000",
            ".tmp-0000000000000000000000000000",
        ] {
            assert!(store.path_of(bad).is_none(), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn deleting_is_idempotent() {
        let (_dir, store) = store();
        store.delete(&new_id()).await.unwrap();
        store.delete("../x").await.unwrap();
        let blob = store.write_all(b"x").await.unwrap();
        store.delete(&blob.id).await.unwrap();
        store.delete(&blob.id).await.unwrap();
        assert!(files(&store).is_empty());
    }

    #[test]
    fn etags_are_normalized() {
        assert_eq!(normalize_etag("\"abc\""), "abc");
        assert_eq!(normalize_etag(" abc "), "abc");
        assert_eq!(normalize_etag("\"abc"), "\"abc");
    }
}
