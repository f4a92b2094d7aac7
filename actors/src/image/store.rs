//! Pluggable image stores for Glance (the image service): where image bytes live, separate from the image
//! aggregate (which only records metadata events such as size, checksum and location).
//!
//! An [`ImageStore`] turns an upload stream into an immutable stored object and serves it back:
//!
//! - [`ImageStore::begin`] returns an [`ImageWriter`]. The API streams request-body chunks into it with
//!   [`ImageWriter::write`]; the writer computes, while streaming and without ever holding the whole image in
//!   memory, the size, the MD5 hex digest (Glance `checksum`), the SHA-512 hex digest (`os_hash_value`,
//!   `os_hash_algo = "sha512"`) and, for qcow2 data, the virtual disk size from the qcow2 header.
//!   [`ImageWriter::commit`] verifies the caller's [`Expect`]ations and makes the bytes durable and visible
//!   atomically; [`ImageWriter::abort`] (or simply dropping the writer) leaves no bytes behind. A quota is
//!   enforced while streaming with [`ImageWriter::set_max_size`] (the write that crosses it fails with
//!   [`StoreError::TooLarge`]) and again at commit via [`Expect::max_size`].
//! - [`ImageStore::open`] streams a stored image (optionally an HTTP byte range) as a [`ByteStream`] of
//!   64 KiB–1 MiB chunks. This is also how compute hosts fetch image bytes: by image id, through `open`
//!   (the host image cache reads images this way and can verify them against the recorded checksum).
//! - [`ImageStore::delete`] is idempotent; [`ImageStore::exists`] is a cheap probe.
//!
//! [`FileStore`] (`name() == "file"`) keeps images under `<root>/images/<image_id>`. An upload goes to a
//! temporary file `<root>/images/.tmp-<image_id>-<uuid>`; commit is flush + fsync(file) + rename +
//! fsync(directory), so after a crash an image is either fully present or absent. Temporary files left
//! behind by a crash are removed by [`FileStore::sweep_orphans`] when the store is created.
//!
//! All I/O on the request path goes through `tokio::fs` / `tokio::io`; only the start-up sweep in
//! [`FileStore::new`] is synchronous, and a writer's `Drop` does a best-effort synchronous unlink.

use std::fmt;
use std::path::{Path, PathBuf};
use std::pin::Pin;

use bytes::{Bytes, BytesMut};
use futures::Stream;
use md5::{Digest, Md5};
use sha2::Sha512;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt, BufWriter};

/// The name of the only hash algorithm the stores compute for `os_hash_algo`.
pub const OS_HASH_ALGO: &str = "sha512";

/// Size of the chunks [`ImageStore::open`] yields (the last chunk of a read may be shorter).
pub const READ_CHUNK: usize = 256 * 1024;

/// Write buffer coalescing the (often small) request-body chunks into large file writes.
const WRITE_BUFFER: usize = 1024 * 1024;

/// The qcow2 header magic, `QFI\xfb`.
pub const QCOW2_MAGIC: [u8; 4] = *b"QFI\xfb";

/// Bytes of the qcow2 header needed to read the virtual size (big-endian u64 at offset 24).
const QCOW2_HEADER_NEEDED: usize = 32;

const TMP_PREFIX: &str = ".tmp-";

/// A stream of image bytes.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, StoreError>> + Send + 'static>>;

/// Errors of an image store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("image data not found")]
    NotFound,
    #[error("image size mismatch: expected {expected} bytes, got {actual}")]
    SizeMismatch { expected: u64, actual: u64 },
    #[error("image checksum mismatch: expected {expected}, got {actual}")]
    ChecksumMismatch { expected: String, actual: String },
    #[error("image exceeds the maximum size of {max} bytes")]
    TooLarge { max: u64 },
    #[error("requested range not satisfiable")]
    InvalidRange,
    #[error("image store I/O error: {0}")]
    Io(String),
}

impl From<std::io::Error> for StoreError {
    fn from(e: std::io::Error) -> Self {
        StoreError::Io(e.to_string())
    }
}

/// What the caller expects of an upload; checked by [`ImageWriter::commit`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expect {
    /// Exact size in bytes (e.g. the image's declared `size` or the request's Content-Length).
    pub size: Option<u64>,
    /// MD5 hex digest (compared case-insensitively).
    pub checksum: Option<String>,
    /// Upper bound on the size (quota). Also checked at commit; set it on the writer with
    /// [`ImageWriter::set_max_size`] to fail as soon as a write crosses it.
    pub max_size: Option<u64>,
}

/// The result of a committed upload: what the image aggregate records.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredImage {
    pub size: u64,
    /// MD5 hex digest (lowercase).
    pub checksum: String,
    /// Always `"sha512"`.
    pub os_hash_algo: String,
    /// SHA-512 hex digest (lowercase).
    pub os_hash_value: String,
    /// The qcow2 virtual size when the data is qcow2; `None` otherwise (for raw, use `size`).
    pub virtual_size: Option<u64>,
    /// Where the store keeps the bytes, e.g. `file:///var/lib/strata/images/<id>`.
    pub location: String,
}

/// A stored image opened for reading.
pub struct ImageReader {
    /// Total size of the stored image in bytes (for `Content-Range: bytes a-b/<size>`).
    pub size: u64,
    /// The resolved inclusive byte range being streamed when a range was requested (its end clamped to
    /// `size - 1`); `None` means the whole image.
    pub range: Option<(u64, u64)>,
    /// The bytes (of the range, or of the whole image).
    pub stream: ByteStream,
}

impl ImageReader {
    /// Number of bytes `stream` yields (the response's Content-Length).
    pub fn content_length(&self) -> u64 {
        match self.range {
            Some((start, end)) => end - start + 1,
            None => self.size,
        }
    }
}

impl fmt::Debug for ImageReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImageReader")
            .field("size", &self.size)
            .field("range", &self.range)
            .finish_non_exhaustive()
    }
}

/// An in-progress upload. Dropping it without [`commit`](ImageWriter::commit) discards the bytes.
#[async_trait::async_trait]
pub trait ImageWriter: Send {
    /// Fail writes (with [`StoreError::TooLarge`]) as soon as the running size would exceed `max`.
    fn set_max_size(&mut self, max: Option<u64>);

    /// Bytes accepted so far.
    fn bytes_written(&self) -> u64;

    /// Append a chunk. After any error the writer is poisoned: further writes and commit fail.
    async fn write(&mut self, chunk: &[u8]) -> Result<(), StoreError>;

    /// Verify `expect`, make the bytes durable and visible under the image id. On a mismatch the
    /// temporary data is deleted and the error returned.
    async fn commit(self: Box<Self>, expect: Expect) -> Result<StoredImage, StoreError>;

    /// Discard the upload.
    async fn abort(self: Box<Self>);
}

/// A backend that keeps image bytes.
#[async_trait::async_trait]
pub trait ImageStore: Send + Sync + 'static {
    /// The store's Glance name (`"file"`).
    fn name(&self) -> &'static str;

    /// Start an upload for `image_id`. Nothing is visible until the writer commits.
    async fn begin(&self, image_id: &str) -> Result<Box<dyn ImageWriter>, StoreError>;

    /// Stream a stored image, or the inclusive byte range `(start, end)` of it (an `end` past the image is
    /// clamped; `None` means to the end). `NotFound` when absent, `InvalidRange` when `start >= size` or
    /// `end < start`.
    async fn open(
        &self,
        image_id: &str,
        range: Option<(u64, Option<u64>)>,
    ) -> Result<ImageReader, StoreError>;

    /// Delete a stored image; deleting an absent image succeeds.
    async fn delete(&self, image_id: &str) -> Result<(), StoreError>;

    /// Whether committed bytes exist for `image_id`.
    async fn exists(&self, image_id: &str) -> bool;
}

/// Image ids become file (and object) names: accept only non-empty `[A-Za-z0-9_-]` strings of at most 255
/// bytes (Glance ids are UUIDs). This rules out path separators, `..` and hidden (`.tmp-`) names.
pub fn valid_image_id(image_id: &str) -> bool {
    !image_id.is_empty()
        && image_id.len() <= 255
        && image_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The `file` store: one file per image under `<root>/images`.
#[derive(Debug, Clone)]
pub struct FileStore {
    /// Absolute path of `<root>/images`.
    dir: PathBuf,
}

impl FileStore {
    /// Create `<root>/images` if needed and remove orphaned temporary files left by a crash. Synchronous:
    /// call it at start-up (or inside `spawn_blocking`).
    pub fn new(root: PathBuf) -> std::io::Result<Self> {
        let dir = root.join("images");
        std::fs::create_dir_all(&dir)?;
        let dir = std::fs::canonicalize(&dir)?;
        let store = FileStore { dir };
        let removed = store.sweep_orphans()?;
        if removed > 0 {
            tracing::warn!(removed, dir = %store.dir.display(), "removed orphaned image upload files");
        }
        Ok(store)
    }

    /// The directory holding the images (`<root>/images`, absolute).
    pub fn images_dir(&self) -> &Path {
        &self.dir
    }

    /// Remove every `.tmp-*` file in the images directory and return how many were removed. Only call it
    /// when no upload is in progress (it is called by [`FileStore::new`]).
    pub fn sweep_orphans(&self) -> std::io::Result<usize> {
        let mut removed = 0;
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if !name.starts_with(TMP_PREFIX) || !entry.file_type()?.is_file() {
                continue;
            }
            match std::fs::remove_file(entry.path()) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(removed)
    }

    fn path_of(&self, image_id: &str) -> PathBuf {
        self.dir.join(image_id)
    }
}

#[async_trait::async_trait]
impl ImageStore for FileStore {
    fn name(&self) -> &'static str {
        "file"
    }

    async fn begin(&self, image_id: &str) -> Result<Box<dyn ImageWriter>, StoreError> {
        if !valid_image_id(image_id) {
            return Err(StoreError::Io(format!("invalid image id {image_id:?}")));
        }
        let tmp_path = self
            .dir
            .join(format!("{TMP_PREFIX}{image_id}-{}", uuid::Uuid::new_v4()));
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp_path)
            .await?;
        Ok(Box::new(FileWriter {
            file: Some(BufWriter::with_capacity(WRITE_BUFFER, file)),
            tmp_path,
            final_path: self.path_of(image_id),
            dir: self.dir.clone(),
            digests: ImageDigester::new(),
            finished: false,
        }))
    }

    async fn open(
        &self,
        image_id: &str,
        range: Option<(u64, Option<u64>)>,
    ) -> Result<ImageReader, StoreError> {
        if !valid_image_id(image_id) {
            return Err(StoreError::NotFound);
        }
        let mut file = match tokio::fs::File::open(self.path_of(image_id)).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(StoreError::NotFound),
            Err(e) => return Err(e.into()),
        };
        let meta = file.metadata().await?;
        if !meta.is_file() {
            return Err(StoreError::NotFound);
        }
        let size = meta.len();
        let (start, remaining, resolved) = resolve_range(size, range)?;
        if start > 0 {
            file.seek(std::io::SeekFrom::Start(start)).await?;
        }
        Ok(ImageReader {
            size,
            range: resolved,
            stream: read_stream(file, remaining),
        })
    }

    async fn delete(&self, image_id: &str) -> Result<(), StoreError> {
        if !valid_image_id(image_id) {
            return Ok(());
        }
        match tokio::fs::remove_file(self.path_of(image_id)).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn exists(&self, image_id: &str) -> bool {
        valid_image_id(image_id)
            && tokio::fs::metadata(self.path_of(image_id))
                .await
                .map(|m| m.is_file())
                .unwrap_or(false)
    }
}

/// Glance's multi-store: the enabled stores, one of them the default. Uploads name a store (or take the
/// default); reads and deletes need no name, since an image's bytes are in exactly one store and each store
/// answers `NotFound` for images it does not hold. As an [`ImageStore`] itself it writes to the default
/// store and reads from whichever store holds the image, so the compute image cache and the volume service
/// read images wherever they were uploaded.
pub struct ImageStores {
    /// (store, description), in the order `/v2/info/stores` lists them.
    stores: Vec<(std::sync::Arc<dyn ImageStore>, String)>,
    default: usize,
}

impl fmt::Debug for ImageStores {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImageStores")
            .field("stores", &self.names().collect::<Vec<_>>())
            .field("default", &self.default_store().name())
            .finish()
    }
}

impl ImageStores {
    /// A multi-store with one store, the default.
    pub fn new(store: std::sync::Arc<dyn ImageStore>, description: &str) -> Self {
        ImageStores {
            stores: vec![(store, description.to_string())],
            default: 0,
        }
    }

    /// Enable another store (its name must be new).
    pub fn with(mut self, store: std::sync::Arc<dyn ImageStore>, description: &str) -> Self {
        debug_assert!(self.get(store.name()).is_none(), "store names are unique");
        self.stores.push((store, description.to_string()));
        self
    }

    /// Make the store named `name` the default; `Err` names the enabled stores when there is none.
    pub fn set_default(&mut self, name: &str) -> Result<(), String> {
        match self.stores.iter().position(|(s, _)| s.name() == name) {
            Some(i) => {
                self.default = i;
                Ok(())
            }
            None => Err(format!(
                "unknown image store {name:?}; enabled: {}",
                self.names().collect::<Vec<_>>().join(", ")
            )),
        }
    }

    pub fn get(&self, name: &str) -> Option<&std::sync::Arc<dyn ImageStore>> {
        self.stores
            .iter()
            .find(|(s, _)| s.name() == name)
            .map(|(s, _)| s)
    }

    pub fn default_store(&self) -> &std::sync::Arc<dyn ImageStore> {
        &self.stores[self.default].0
    }

    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.stores.iter().map(|(s, _)| s.name())
    }

    /// (name, description, is default) of every enabled store.
    pub fn list(&self) -> impl Iterator<Item = (&'static str, &str, bool)> + '_ {
        self.stores
            .iter()
            .enumerate()
            .map(|(i, (s, d))| (s.name(), d.as_str(), i == self.default))
    }

    /// The store holding committed bytes for `image_id`.
    pub async fn holding(&self, image_id: &str) -> Option<&std::sync::Arc<dyn ImageStore>> {
        for (store, _) in &self.stores {
            if store.exists(image_id).await {
                return Some(store);
            }
        }
        None
    }
}

#[async_trait::async_trait]
impl ImageStore for ImageStores {
    fn name(&self) -> &'static str {
        self.default_store().name()
    }

    async fn begin(&self, image_id: &str) -> Result<Box<dyn ImageWriter>, StoreError> {
        self.default_store().begin(image_id).await
    }

    async fn open(
        &self,
        image_id: &str,
        range: Option<(u64, Option<u64>)>,
    ) -> Result<ImageReader, StoreError> {
        for (store, _) in &self.stores {
            match store.open(image_id, range).await {
                Err(StoreError::NotFound) => continue,
                other => return other,
            }
        }
        Err(StoreError::NotFound)
    }

    async fn delete(&self, image_id: &str) -> Result<(), StoreError> {
        for (store, _) in &self.stores {
            store.delete(image_id).await?;
        }
        Ok(())
    }

    async fn exists(&self, image_id: &str) -> bool {
        self.holding(image_id).await.is_some()
    }
}

/// What [`ImageStore::open`] reads: (first byte, byte count, the resolved inclusive range or `None` for the
/// whole image).
pub type ResolvedRange = (u64, u64, Option<(u64, u64)>);

/// What [`ImageStore::open`] reads of an image of `size` bytes for `range`. An `end` past the image is
/// clamped; `InvalidRange` when `start >= size` or `end < start`. Every store resolves ranges this way.
pub fn resolve_range(
    size: u64,
    range: Option<(u64, Option<u64>)>,
) -> Result<ResolvedRange, StoreError> {
    match range {
        None => Ok((0, size, None)),
        Some((start, end)) => {
            if start >= size {
                return Err(StoreError::InvalidRange);
            }
            let end = end.map_or(size - 1, |e| e.min(size - 1));
            if end < start {
                return Err(StoreError::InvalidRange);
            }
            Ok((start, end - start + 1, Some((start, end))))
        }
    }
}

/// Stream `remaining` bytes from the file's current position in [`READ_CHUNK`] pieces. A file shorter than
/// promised (it cannot be: committed images are immutable, and an unlinked file stays readable through
/// the open handle) ends the stream with an I/O error.
fn read_stream(file: tokio::fs::File, remaining: u64) -> ByteStream {
    Box::pin(futures::stream::try_unfold(
        (file, remaining),
        |(mut file, remaining)| async move {
            if remaining == 0 {
                return Ok(None);
            }
            let want = remaining.min(READ_CHUNK as u64) as usize;
            let mut buf = BytesMut::with_capacity(want);
            while buf.len() < want {
                let mut limited = (&mut file).take((want - buf.len()) as u64);
                let n = limited.read_buf(&mut buf).await?;
                if n == 0 {
                    return Err(StoreError::Io(
                        "image file is shorter than its recorded size".into(),
                    ));
                }
            }
            Ok(Some((buf.freeze(), (file, remaining - want as u64))))
        },
    ))
}

/// One digest computed on its own thread beside the upload, so MD5 and SHA-512 run in parallel with each
/// other and with receiving and writing the bytes. The bounded channel is the back-pressure.
struct HashThread {
    tx: Option<tokio::sync::mpsc::Sender<Bytes>>,
    handle: Option<std::thread::JoinHandle<String>>,
}

impl HashThread {
    fn start<D: Digest + Send + 'static>() -> Self {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(16);
        let handle = std::thread::Builder::new()
            .name("strata-image-hash".into())
            .spawn(move || {
                let mut d = D::new();
                while let Some(chunk) = rx.blocking_recv() {
                    d.update(&chunk);
                }
                hex::encode(d.finalize())
            })
            .ok();
        HashThread {
            tx: Some(tx),
            handle,
        }
    }

    async fn feed(&self, chunk: Bytes) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(chunk).await;
        }
    }

    /// Close the input and return the hex digest of everything fed.
    async fn finish(&mut self) -> Result<String, StoreError> {
        self.tx = None;
        let handle = self
            .handle
            .take()
            .ok_or_else(|| StoreError::Io("hash thread did not start".into()))?;
        tokio::task::spawn_blocking(move || handle.join())
            .await
            .map_err(|e| StoreError::Io(format!("hash thread: {e}")))?
            .map_err(|_| StoreError::Io("hash thread panicked".into()))
    }
}

/// What every store computes of an upload while it streams: the size (against an optional limit), the MD5
/// and SHA-512 hex digests (each on its own thread) and the qcow2 virtual size from the header. A store's
/// writer calls [`admit`](ImageDigester::admit) before it keeps a chunk, [`record`](ImageDigester::record)
/// once it has, and [`finish`](ImageDigester::finish) at commit, which checks the caller's [`Expect`].
pub struct ImageDigester {
    size: u64,
    max_size: Option<u64>,
    md5: HashThread,
    sha512: HashThread,
    /// The first bytes of the data, up to the part of the qcow2 header we need.
    header: Vec<u8>,
    poisoned: bool,
}

/// The digests of a finished upload; [`Digests::stored_at`] makes them the [`StoredImage`] of a location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    pub size: u64,
    /// MD5 hex digest (lowercase).
    pub checksum: String,
    /// SHA-512 hex digest (lowercase).
    pub os_hash_value: String,
    pub virtual_size: Option<u64>,
}

impl Digests {
    pub fn stored_at(self, location: String) -> StoredImage {
        StoredImage {
            size: self.size,
            checksum: self.checksum,
            os_hash_algo: OS_HASH_ALGO.to_string(),
            os_hash_value: self.os_hash_value,
            virtual_size: self.virtual_size,
            location,
        }
    }
}

impl Default for ImageDigester {
    fn default() -> Self {
        Self::new()
    }
}

impl ImageDigester {
    pub fn new() -> Self {
        ImageDigester {
            size: 0,
            max_size: None,
            md5: HashThread::start::<Md5>(),
            sha512: HashThread::start::<Sha512>(),
            header: Vec::with_capacity(QCOW2_HEADER_NEEDED),
            poisoned: false,
        }
    }

    pub fn set_max_size(&mut self, max: Option<u64>) {
        self.max_size = max;
    }

    /// Bytes recorded so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    /// Mark the upload failed (a store's write failed): later chunks and `finish` are refused.
    pub fn poison(&mut self) {
        self.poisoned = true;
    }

    /// May a chunk of `len` bytes be kept? Fails (and poisons) past the limit, or after an earlier failure.
    pub fn admit(&mut self, len: usize) -> Result<(), StoreError> {
        if self.poisoned {
            return Err(StoreError::Io("image writer failed earlier".into()));
        }
        if let Some(max) = self.max_size {
            if self.size + len as u64 > max {
                self.poisoned = true;
                return Err(StoreError::TooLarge { max });
            }
        }
        Ok(())
    }

    /// Count and hash a chunk the store has kept.
    pub async fn record(&mut self, chunk: &[u8]) {
        if self.header.len() < QCOW2_HEADER_NEEDED {
            let take = (QCOW2_HEADER_NEEDED - self.header.len()).min(chunk.len());
            self.header.extend_from_slice(&chunk[..take]);
        }
        let shared = Bytes::copy_from_slice(chunk);
        self.md5.feed(shared.clone()).await;
        self.sha512.feed(shared).await;
        self.size += chunk.len() as u64;
    }

    /// The qcow2 virtual size, when the data seen so far starts with a qcow2 header.
    pub fn virtual_size(&self) -> Option<u64> {
        if self.header.len() < QCOW2_HEADER_NEEDED || self.header[..4] != QCOW2_MAGIC {
            return None;
        }
        let field: [u8; 8] = self.header[24..32].try_into().ok()?;
        Some(u64::from_be_bytes(field))
    }

    /// Close the digests and check `expect` (limit, then size, then checksum).
    pub async fn finish(&mut self, expect: &Expect) -> Result<Digests, StoreError> {
        if self.poisoned {
            return Err(StoreError::Io("image writer failed earlier".into()));
        }
        let size = self.size;
        let checksum = self.md5.finish().await?;
        let os_hash_value = self.sha512.finish().await?;
        if let Some(max) = expect.max_size.filter(|&max| size > max) {
            return Err(StoreError::TooLarge { max });
        }
        if let Some(expected) = expect.size.filter(|&s| s != size) {
            return Err(StoreError::SizeMismatch {
                expected,
                actual: size,
            });
        }
        if let Some(expected) = expect
            .checksum
            .as_ref()
            .filter(|c| !c.eq_ignore_ascii_case(&checksum))
        {
            return Err(StoreError::ChecksumMismatch {
                expected: expected.clone(),
                actual: checksum,
            });
        }
        Ok(Digests {
            size,
            checksum,
            os_hash_value,
            virtual_size: self.virtual_size(),
        })
    }
}

struct FileWriter {
    /// `None` once the file handle was closed (commit/abort).
    file: Option<BufWriter<tokio::fs::File>>,
    tmp_path: PathBuf,
    final_path: PathBuf,
    dir: PathBuf,
    digests: ImageDigester,
    /// Set once the temporary file was renamed or removed, so `Drop` has nothing to do.
    finished: bool,
}

impl FileWriter {
    /// Close and remove the temporary file.
    async fn discard(&mut self) {
        self.file = None;
        if let Err(e) = tokio::fs::remove_file(&self.tmp_path).await {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(path = %self.tmp_path.display(), error = %e, "failed to remove image upload file");
                // Leave `finished` unset so Drop retries; the start-up sweep is the last resort.
                return;
            }
        }
        self.finished = true;
    }

    async fn make_durable(&mut self) -> Result<(), StoreError> {
        let mut file = self
            .file
            .take()
            .ok_or_else(|| StoreError::Io("image writer already closed".into()))?;
        file.flush().await?;
        file.get_mut().sync_all().await?;
        drop(file);
        tokio::fs::rename(&self.tmp_path, &self.final_path).await?;
        self.finished = true;
        let synced = async { tokio::fs::File::open(&self.dir).await?.sync_all().await };
        if let Err(e) = synced.await {
            // The rename may not survive a crash: do not report an upload we cannot vouch for.
            let _ = tokio::fs::remove_file(&self.final_path).await;
            return Err(e.into());
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl ImageWriter for FileWriter {
    fn set_max_size(&mut self, max: Option<u64>) {
        self.digests.set_max_size(max);
    }

    fn bytes_written(&self) -> u64 {
        self.digests.size()
    }

    async fn write(&mut self, chunk: &[u8]) -> Result<(), StoreError> {
        self.digests.admit(chunk.len())?;
        let Some(file) = self.file.as_mut() else {
            return Err(StoreError::Io("image writer already closed".into()));
        };
        if let Err(e) = file.write_all(chunk).await {
            self.digests.poison();
            return Err(e.into());
        }
        self.digests.record(chunk).await;
        Ok(())
    }

    async fn commit(mut self: Box<Self>, expect: Expect) -> Result<StoredImage, StoreError> {
        let digests = match self.digests.finish(&expect).await {
            Ok(d) => d,
            Err(e) => {
                self.discard().await;
                return Err(e);
            }
        };
        if let Err(e) = self.make_durable().await {
            if !self.finished {
                self.discard().await;
            }
            return Err(e);
        }
        Ok(digests.stored_at(format!("file://{}", self.final_path.display())))
    }

    async fn abort(mut self: Box<Self>) {
        self.discard().await;
    }
}

impl Drop for FileWriter {
    fn drop(&mut self) {
        if !self.finished {
            self.file = None;
            let _ = std::fs::remove_file(&self.tmp_path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::TryStreamExt;

    /// A unique scratch directory removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new() -> Self {
            let p =
                std::env::temp_dir().join(format!("strata-image-store-{}", uuid::Uuid::new_v4()));
            std::fs::create_dir_all(&p).unwrap();
            Scratch(p)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn store() -> (Scratch, FileStore) {
        let s = Scratch::new();
        let store = FileStore::new(s.0.clone()).unwrap();
        (s, store)
    }

    fn entries(store: &FileStore) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(store.images_dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    async fn upload(
        store: &FileStore,
        id: &str,
        bytes: &[u8],
        chunk: usize,
        expect: Expect,
    ) -> Result<StoredImage, StoreError> {
        let mut w = store.begin(id).await?;
        for c in bytes.chunks(chunk) {
            w.write(c).await?;
        }
        w.commit(expect).await
    }

    async fn read_all(
        store: &FileStore,
        id: &str,
        range: Option<(u64, Option<u64>)>,
    ) -> (ImageReader, Vec<u8>) {
        let mut r = store.open(id, range).await.unwrap();
        let stream = std::mem::replace(&mut r.stream, Box::pin(futures::stream::empty()));
        let chunks: Vec<Bytes> = stream.try_collect().await.unwrap();
        for c in &chunks[..chunks.len().saturating_sub(1)] {
            assert_eq!(c.len(), READ_CHUNK, "all chunks but the last are full");
        }
        (r, chunks.concat())
    }

    const ID: &str = "6f1c2d9e-8a3b-4c5d-9e0f-112233445566";

    #[tokio::test]
    async fn round_trip_multi_chunk_with_digests() {
        let (_s, store) = store();
        assert_eq!(store.name(), "file");
        let bytes = data(3 * READ_CHUNK + 12_345);
        let md5 = hex::encode(Md5::digest(&bytes));
        let sha = hex::encode(Sha512::digest(&bytes));
        let stored = upload(
            &store,
            ID,
            &bytes,
            8191,
            Expect {
                size: Some(bytes.len() as u64),
                checksum: Some(md5.to_uppercase()),
                max_size: Some(1 << 30),
            },
        )
        .await
        .unwrap();
        assert_eq!(stored.size, bytes.len() as u64);
        assert_eq!(stored.checksum, md5);
        assert_eq!(stored.os_hash_algo, "sha512");
        assert_eq!(stored.os_hash_value, sha);
        assert_eq!(stored.virtual_size, None);
        let path = store.images_dir().join(ID);
        assert!(path.is_absolute());
        assert_eq!(stored.location, format!("file://{}", path.display()));
        assert_eq!(entries(&store), vec![ID.to_string()]);
        assert!(store.exists(ID).await);

        let (r, back) = read_all(&store, ID, None).await;
        assert_eq!(r.size, bytes.len() as u64);
        assert_eq!(r.range, None);
        assert_eq!(r.content_length(), bytes.len() as u64);
        assert_eq!(back, bytes);
    }

    #[tokio::test]
    async fn empty_image() {
        let (_s, store) = store();
        let stored = upload(
            &store,
            ID,
            &[],
            1,
            Expect {
                size: Some(0),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(stored.size, 0);
        assert_eq!(stored.checksum, hex::encode(Md5::digest(b"")));
        let (r, back) = read_all(&store, ID, None).await;
        assert_eq!((r.size, back.len()), (0, 0));
        assert_eq!(
            store.open(ID, Some((0, None))).await.unwrap_err(),
            StoreError::InvalidRange
        );
    }

    #[tokio::test]
    async fn qcow2_virtual_size() {
        let (_s, store) = store();
        let mut header = vec![0u8; 512];
        header[..4].copy_from_slice(&QCOW2_MAGIC);
        header[4..8].copy_from_slice(&3u32.to_be_bytes());
        let vsize: u64 = 10 * 1024 * 1024 * 1024 + 4096;
        header[24..32].copy_from_slice(&vsize.to_be_bytes());
        // Chunks smaller than the header fields, to exercise header assembly across writes.
        let stored = upload(&store, ID, &header, 5, Expect::default())
            .await
            .unwrap();
        assert_eq!(stored.virtual_size, Some(vsize));
        assert_eq!(stored.size, 512);

        // Not qcow2: no virtual size; too short to hold the field: none either.
        let stored = upload(&store, "raw", &data(512), 512, Expect::default())
            .await
            .unwrap();
        assert_eq!(stored.virtual_size, None);
        let stored = upload(&store, "short", &header[..20], 20, Expect::default())
            .await
            .unwrap();
        assert_eq!(stored.virtual_size, None);
    }

    #[tokio::test]
    async fn size_mismatch_leaves_nothing() {
        let (_s, store) = store();
        let err = upload(
            &store,
            ID,
            &data(1000),
            100,
            Expect {
                size: Some(999),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
        assert_eq!(
            err,
            StoreError::SizeMismatch {
                expected: 999,
                actual: 1000
            }
        );
        assert!(entries(&store).is_empty());
        assert!(!store.exists(ID).await);
    }

    #[tokio::test]
    async fn checksum_mismatch_leaves_nothing() {
        let (_s, store) = store();
        let bytes = data(1000);
        let wrong = "0".repeat(32);
        let err = upload(
            &store,
            ID,
            &bytes,
            100,
            Expect {
                checksum: Some(wrong.clone()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
        assert_eq!(
            err,
            StoreError::ChecksumMismatch {
                expected: wrong,
                actual: hex::encode(Md5::digest(&bytes))
            }
        );
        assert!(entries(&store).is_empty());
    }

    #[tokio::test]
    async fn abort_and_drop_leave_nothing() {
        let (_s, store) = store();
        let mut w = store.begin(ID).await.unwrap();
        w.write(&data(5000)).await.unwrap();
        assert_eq!(
            entries(&store).len(),
            1,
            "the temporary file exists while uploading"
        );
        assert!(!store.exists(ID).await, "nothing is visible before commit");
        w.abort().await;
        assert!(entries(&store).is_empty());

        let mut w = store.begin(ID).await.unwrap();
        w.write(&data(5000)).await.unwrap();
        drop(w);
        assert!(entries(&store).is_empty());
    }

    #[tokio::test]
    async fn max_size_fails_the_crossing_write() {
        let (_s, store) = store();
        let mut w = store.begin(ID).await.unwrap();
        w.set_max_size(Some(250));
        w.write(&data(100)).await.unwrap();
        w.write(&data(150)).await.unwrap();
        assert_eq!(w.bytes_written(), 250);
        assert_eq!(
            w.write(&[1]).await.unwrap_err(),
            StoreError::TooLarge { max: 250 }
        );
        assert!(w.write(&[1]).await.is_err(), "poisoned after an error");
        assert!(w.commit(Expect::default()).await.is_err());
        assert!(entries(&store).is_empty());

        // The limit in Expect is enforced at commit too.
        let err = upload(
            &store,
            ID,
            &data(300),
            100,
            Expect {
                max_size: Some(299),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
        assert_eq!(err, StoreError::TooLarge { max: 299 });
        assert!(entries(&store).is_empty());
    }

    #[tokio::test]
    async fn range_reads() {
        let (_s, store) = store();
        let bytes = data(2 * READ_CHUNK + 777);
        let len = bytes.len() as u64;
        upload(&store, ID, &bytes, 65536, Expect::default())
            .await
            .unwrap();

        let (r, back) = read_all(&store, ID, Some((1000, None))).await;
        assert_eq!((r.size, r.range), (len, Some((1000, len - 1))));
        assert_eq!(r.content_length(), len - 1000);
        assert_eq!(back, &bytes[1000..]);

        let (r, back) = read_all(&store, ID, Some((10, Some(READ_CHUNK as u64 + 20)))).await;
        assert_eq!(r.range, Some((10, READ_CHUNK as u64 + 20)));
        assert_eq!(back, &bytes[10..=READ_CHUNK + 20]);

        let (_, back) = read_all(&store, ID, Some((len - 1, Some(len - 1)))).await;
        assert_eq!(back, &bytes[bytes.len() - 1..]);

        // An end past the image is clamped.
        let (r, back) = read_all(&store, ID, Some((5, Some(len + 100)))).await;
        assert_eq!(r.range, Some((5, len - 1)));
        assert_eq!(back, &bytes[5..]);

        assert_eq!(
            store.open(ID, Some((len, None))).await.unwrap_err(),
            StoreError::InvalidRange
        );
        assert_eq!(
            store
                .open(ID, Some((len + 5, Some(len + 9))))
                .await
                .unwrap_err(),
            StoreError::InvalidRange
        );
        assert_eq!(
            store.open(ID, Some((10, Some(9)))).await.unwrap_err(),
            StoreError::InvalidRange
        );
        assert_eq!(
            store.open("missing", None).await.unwrap_err(),
            StoreError::NotFound
        );
    }

    #[tokio::test]
    async fn delete_is_idempotent() {
        let (_s, store) = store();
        upload(&store, ID, &data(10), 10, Expect::default())
            .await
            .unwrap();
        assert!(store.exists(ID).await);
        store.delete(ID).await.unwrap();
        assert!(!store.exists(ID).await);
        store.delete(ID).await.unwrap();
        assert_eq!(
            store.open(ID, None).await.unwrap_err(),
            StoreError::NotFound
        );
        assert!(entries(&store).is_empty());
    }

    #[tokio::test]
    async fn unsafe_ids_are_rejected() {
        let (_s, store) = store();
        for id in ["", "../x", "a/b", ".tmp-x", "..", "a b"] {
            assert!(store.begin(id).await.is_err(), "{id:?}");
            assert_eq!(
                store.open(id, None).await.unwrap_err(),
                StoreError::NotFound
            );
            assert!(!store.exists(id).await);
            store.delete(id).await.unwrap();
        }
        assert!(entries(&store).is_empty());
    }

    #[tokio::test]
    async fn orphans_are_swept_on_start() {
        let s = Scratch::new();
        let store = FileStore::new(s.0.clone()).unwrap();
        upload(&store, ID, &data(10), 10, Expect::default())
            .await
            .unwrap();
        // Simulate a crash mid-upload: the writer's temp file survives (forget skips Drop).
        let mut w = store.begin("other").await.unwrap();
        w.write(&data(100)).await.unwrap();
        std::mem::forget(w);
        std::fs::write(
            store
                .images_dir()
                .join(format!(".tmp-{ID}-{}", uuid::Uuid::new_v4())),
            b"x",
        )
        .unwrap();
        assert_eq!(entries(&store).len(), 3);

        let store = FileStore::new(s.0.clone()).unwrap();
        assert_eq!(entries(&store), vec![ID.to_string()]);
        assert_eq!(store.sweep_orphans().unwrap(), 0);
        let (_, back) = read_all(&store, ID, None).await;
        assert_eq!(back, data(10));
    }

    #[tokio::test]
    async fn store_is_object_safe() {
        let (_s, store) = store();
        let store: std::sync::Arc<dyn ImageStore> = std::sync::Arc::new(store);
        let mut w = store.begin(ID).await.unwrap();
        w.write(b"hello").await.unwrap();
        let stored = w
            .commit(Expect {
                size: Some(5),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(stored.checksum, hex::encode(Md5::digest(b"hello")));
        assert!(store.exists(ID).await);
    }
}
