//! Glance's `swift` store on Strata's own object storage: image `<id>` is the object `<id>` in container
//! [`GLANCE_CONTAINER`] of a service account (Glance's single-tenant Swift store, `swift_store_container =
//! glance`).
//!
//! An upload streams into a new blob (the blob store's temp file) while [`ImageDigester`] computes what the
//! `file` store computes (size, MD5, SHA-512, qcow2 virtual size); commit checks the caller's [`Expect`],
//! makes the blob durable and records it as the object with [`ObjectService::store_with_blob`] (so the object
//! is an ordinary Swift object: listed, read and deleted through the Swift API and counted in the account).
//! An aborted or dropped writer leaves no blob (the blob writer removes its temp file); a crash between the
//! blob and the event leaves a blob no object names, which the object service's start-up sweep removes.
//! `open` reads the object's blob (ranges resolved like the `file` store's); `delete` deletes the object.
//!
//! The account is looked up on every call through an [`AccountResolver`] (the binary passes one that reads
//! the `service` project from the identity view), so the store works once bootstrap has made that project.
//! Images larger than Swift's 5 GiB object limit are kept as one object too (Glance would segment them).

use std::fmt;
use std::sync::Arc;

use futures::StreamExt;
use strata_actors::image::store::{
    resolve_range, valid_image_id, Expect, ImageDigester, ImageReader, ImageStore, ImageWriter,
    StoreError, StoredImage,
};
use strata_actors::object::ObjectRecord;
use strata_events::Metadata;

use crate::blob::{BlobError, BlobWriter};
use crate::service::{now_timestamp, ObjectError, ObjectService, PutObject};

/// The container holding the images (Glance's `swift_store_container` default).
pub const GLANCE_CONTAINER: &str = "glance";

/// The store's Glance name.
pub const SWIFT_STORE: &str = "swift";

/// The account (project id) images are kept in, or `None` while there is none yet.
pub type AccountResolver = Arc<dyn Fn() -> Option<String> + Send + Sync>;

/// Glance's `swift` store over [`ObjectService`].
pub struct SwiftImageStore {
    objects: Arc<ObjectService>,
    account: AccountResolver,
}

impl fmt::Debug for SwiftImageStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SwiftImageStore")
            .field("account", &(self.account)())
            .finish_non_exhaustive()
    }
}

fn io(what: &str, e: impl fmt::Display) -> StoreError {
    StoreError::Io(format!("{what}: {e}"))
}

/// The location recorded for an image: `swift+strata://AUTH_<account>/glance/<id>`.
pub fn location(account: &str, image_id: &str) -> String {
    format!("swift+strata://AUTH_{account}/{GLANCE_CONTAINER}/{image_id}")
}

fn meta(image_id: &str) -> Metadata {
    Metadata::system(format!("glance-swift-{image_id}"))
}

impl SwiftImageStore {
    pub fn new(objects: Arc<ObjectService>, account: AccountResolver) -> Self {
        SwiftImageStore { objects, account }
    }

    /// The account images live in now.
    pub fn account(&self) -> Option<String> {
        (self.account)()
    }

    fn require_account(&self) -> Result<String, StoreError> {
        self.account().ok_or_else(|| {
            StoreError::Io("the swift image store has no service account yet".into())
        })
    }

    fn record(&self, image_id: &str) -> Option<(String, ObjectRecord)> {
        let account = self.account()?;
        let record = self
            .objects
            .view
            .snapshot()
            .object(&account, GLANCE_CONTAINER, image_id)
            .cloned()?;
        Some((account, record))
    }
}

#[async_trait::async_trait]
impl ImageStore for SwiftImageStore {
    fn name(&self) -> &'static str {
        SWIFT_STORE
    }

    async fn begin(&self, image_id: &str) -> Result<Box<dyn ImageWriter>, StoreError> {
        if !valid_image_id(image_id) {
            return Err(StoreError::Io(format!("invalid image id {image_id:?}")));
        }
        let account = self.require_account()?;
        let exists = self
            .objects
            .view
            .snapshot()
            .container(&account, GLANCE_CONTAINER)
            .is_some();
        if !exists {
            self.objects
                .put_container(
                    &account,
                    GLANCE_CONTAINER,
                    Default::default(),
                    Vec::new(),
                    meta(image_id),
                )
                .await
                .map_err(|e| io("creating the glance container", e))?;
        }
        let blob = self
            .objects
            .blobs
            .begin()
            .await
            .map_err(|e| io("object data", e))?;
        Ok(Box::new(SwiftWriter {
            objects: self.objects.clone(),
            account,
            image_id: image_id.to_string(),
            blob: Some(blob),
            digests: ImageDigester::new(),
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
        let Some((_, record)) = self.record(image_id) else {
            return Err(StoreError::NotFound);
        };
        let size = record.size;
        let (start, remaining, resolved) = resolve_range(size, range)?;
        let stream = self
            .objects
            .read_blob(&record, start, remaining)
            .await
            .map_err(|e| match e {
                ObjectError::NotFound(_) => StoreError::NotFound,
                other => io("reading the image object", other),
            })?;
        Ok(ImageReader {
            size,
            range: resolved,
            stream: Box::pin(stream.map(|c| c.map_err(|e| io("reading the image object", e)))),
        })
    }

    async fn delete(&self, image_id: &str) -> Result<(), StoreError> {
        if !valid_image_id(image_id) {
            return Ok(());
        }
        let Some((account, _)) = self.record(image_id) else {
            return Ok(());
        };
        match self
            .objects
            .delete_object(
                &account,
                GLANCE_CONTAINER,
                image_id,
                "image deleted",
                None,
                meta(image_id),
            )
            .await
        {
            Ok(()) | Err(ObjectError::NotFound(_)) => Ok(()),
            Err(e) => Err(io("deleting the image object", e)),
        }
    }

    async fn exists(&self, image_id: &str) -> bool {
        valid_image_id(image_id) && self.record(image_id).is_some()
    }
}

/// An upload into a new blob that becomes the image's object at commit.
struct SwiftWriter {
    objects: Arc<ObjectService>,
    account: String,
    image_id: String,
    /// `None` once committed or aborted (dropping a blob writer removes its temp file).
    blob: Option<BlobWriter>,
    digests: ImageDigester,
}

impl SwiftWriter {
    async fn discard(&mut self) {
        if let Some(blob) = self.blob.take() {
            blob.abort().await;
        }
    }
}

#[async_trait::async_trait]
impl ImageWriter for SwiftWriter {
    fn set_max_size(&mut self, max: Option<u64>) {
        self.digests.set_max_size(max);
    }

    fn bytes_written(&self) -> u64 {
        self.digests.size()
    }

    async fn write(&mut self, chunk: &[u8]) -> Result<(), StoreError> {
        self.digests.admit(chunk.len())?;
        let Some(blob) = self.blob.as_mut() else {
            return Err(StoreError::Io("image writer already closed".into()));
        };
        if let Err(e) = blob.write(chunk).await {
            self.digests.poison();
            return Err(io("writing the image object", e));
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
        let blob = self
            .blob
            .take()
            .ok_or_else(|| StoreError::Io("image writer already closed".into()))?;
        let blob = blob
            .commit(Some(&digests.checksum))
            .await
            .map_err(|e| match e {
                BlobError::EtagMismatch { computed } => StoreError::ChecksumMismatch {
                    expected: digests.checksum.clone(),
                    actual: computed,
                },
                other => io("storing the image object", other),
            })?;
        let put = PutObject {
            account: self.account.clone(),
            container: GLANCE_CONTAINER.to_string(),
            name: self.image_id.clone(),
            content_type: "application/octet-stream".into(),
            content_length: Some(blob.size),
            ..Default::default()
        };
        let record = ObjectRecord {
            size: blob.size,
            etag: blob.md5.clone(),
            content_type: put.content_type.clone(),
            timestamp: now_timestamp(),
            blob: blob.id.clone(),
            blob_size: blob.size,
            blob_md5: blob.md5.clone(),
            headers: Default::default(),
            static_large_object: false,
        };
        // A refused record deletes the blob.
        self.objects
            .store_with_blob(&put, record, &blob, meta(&self.image_id))
            .await
            .map_err(|e| io("recording the image object", e))?;
        Ok(digests.stored_at(location(&self.account, &self.image_id)))
    }

    async fn abort(mut self: Box<Self>) {
        self.discard().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use futures::TryStreamExt;
    use md5::{Digest, Md5};
    use strata_actors::image::store::QCOW2_MAGIC;
    use strata_actors::{Runtime, RuntimeConfig};
    use strata_events::{EventLog, MemoryLog};
    use strata_projections::object::ObjectView;
    use strata_projections::Live;

    const ID: &str = "6f1c2d9e-8a3b-4c5d-9e0f-112233445566";
    const ACCOUNT: &str = "svc";

    async fn store(dir: &std::path::Path) -> (Arc<ObjectService>, SwiftImageStore) {
        let log: Arc<dyn EventLog> = Arc::new(MemoryLog::new());
        let runtime = Runtime::start(log.clone(), RuntimeConfig::default());
        let view = Live::<ObjectView>::start(log, Default::default())
            .await
            .unwrap();
        let blobs = crate::blob::BlobStore::open(dir).unwrap();
        let objects = Arc::new(ObjectService::new(runtime, view, blobs));
        let store = SwiftImageStore::new(objects.clone(), Arc::new(|| Some(ACCOUNT.to_string())));
        (objects, store)
    }

    async fn upload(
        store: &SwiftImageStore,
        id: &str,
        bytes: &[u8],
        expect: Expect,
    ) -> Result<StoredImage, StoreError> {
        let mut w = store.begin(id).await?;
        for c in bytes.chunks(7000) {
            w.write(c).await?;
        }
        w.commit(expect).await
    }

    async fn read(store: &SwiftImageStore, id: &str, range: Option<(u64, Option<u64>)>) -> Vec<u8> {
        let r = store.open(id, range).await.unwrap();
        let chunks: Vec<Bytes> = r.stream.try_collect().await.unwrap();
        chunks.concat()
    }

    /// Blob files under `objects/` (inside the 256 prefix directories), temporary files included.
    fn blob_count(dir: &std::path::Path) -> usize {
        std::fs::read_dir(dir.join("objects"))
            .unwrap()
            .map(|e| e.unwrap())
            .map(|e| {
                if e.file_type().unwrap().is_dir() {
                    std::fs::read_dir(e.path()).unwrap().count()
                } else {
                    1
                }
            })
            .sum()
    }

    #[tokio::test]
    async fn images_are_objects_in_the_glance_container() {
        let dir = tempfile::tempdir().unwrap();
        let (objects, store) = store(dir.path()).await;
        assert_eq!(store.name(), "swift");
        let mut bytes = vec![0u8; 300_000];
        bytes[..4].copy_from_slice(&QCOW2_MAGIC);
        bytes[24..32].copy_from_slice(&(5u64 << 30).to_be_bytes());
        for (i, b) in bytes.iter_mut().enumerate().skip(32) {
            *b = (i * 31 % 251) as u8;
        }
        let md5 = hex::encode(Md5::digest(&bytes));
        let stored = upload(
            &store,
            ID,
            &bytes,
            Expect {
                size: Some(bytes.len() as u64),
                checksum: Some(md5.to_uppercase()),
                max_size: None,
            },
        )
        .await
        .unwrap();
        assert_eq!(stored.size, bytes.len() as u64);
        assert_eq!(stored.checksum, md5);
        assert_eq!(stored.os_hash_algo, "sha512");
        assert_eq!(stored.virtual_size, Some(5 << 30));
        assert_eq!(
            stored.location,
            format!("swift+strata://AUTH_svc/glance/{ID}")
        );
        let record = objects
            .view
            .snapshot()
            .object(ACCOUNT, GLANCE_CONTAINER, ID)
            .cloned()
            .unwrap();
        assert_eq!(
            (record.size, record.etag.as_str()),
            (stored.size, md5.as_str())
        );
        assert!(store.exists(ID).await);
        assert_eq!(blob_count(dir.path()), 1, "one blob holds the image");
        assert_eq!(read(&store, ID, None).await, bytes);
        assert_eq!(
            read(&store, ID, Some((10, Some(99)))).await,
            &bytes[10..100]
        );
        assert_eq!(
            store
                .open(ID, Some((bytes.len() as u64, None)))
                .await
                .unwrap_err(),
            StoreError::InvalidRange
        );

        store.delete(ID).await.unwrap();
        store.delete(ID).await.unwrap();
        assert!(!store.exists(ID).await);
        assert_eq!(
            store.open(ID, None).await.unwrap_err(),
            StoreError::NotFound
        );
        assert_eq!(blob_count(dir.path()), 0, "the image's blob went with it");
    }

    #[tokio::test]
    async fn refused_uploads_leave_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (objects, store) = store(dir.path()).await;
        let err = upload(
            &store,
            ID,
            b"hello",
            Expect {
                size: Some(4),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
        assert_eq!(
            err,
            StoreError::SizeMismatch {
                expected: 4,
                actual: 5
            }
        );
        let mut w = store.begin(ID).await.unwrap();
        w.set_max_size(Some(3));
        assert_eq!(
            w.write(b"hello").await.unwrap_err(),
            StoreError::TooLarge { max: 3 }
        );
        drop(w);
        let mut w = store.begin(ID).await.unwrap();
        w.write(b"bye").await.unwrap();
        w.abort().await;
        assert!(objects
            .view
            .snapshot()
            .object(ACCOUNT, GLANCE_CONTAINER, ID)
            .is_none());
        assert_eq!(blob_count(dir.path()), 0, "no blob left by refused uploads");
        assert!(store.begin("../x").await.is_err());

        let none = SwiftImageStore::new(objects, Arc::new(|| None));
        assert!(none.begin(ID).await.is_err());
        assert_eq!(none.open(ID, None).await.unwrap_err(), StoreError::NotFound);
    }
}
