//! Putting bytes in a store and recording them as an image's data: uploads, imports (staged bytes or a
//! loopback web download, in the background), and the snapshots the compute and volume services hand over.
//! Every failure leaves no bytes behind and returns the image to `queued`.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use strata_actors::image::store::{Expect, ImageStore, StoredImage};
use strata_actors::image::ImageCommand;
use strata_events::Metadata;

use crate::{ImageError, Images};

/// The store key of an image's staged (not yet imported) bytes.
pub fn staging_key(id: &str) -> String {
    format!("staging-{id}")
}

/// Stream `chunks` into a new object `key`, at most `max` bytes; any failure leaves no bytes behind.
pub async fn store_stream<S>(
    store: &dyn ImageStore,
    key: &str,
    mut chunks: S,
    max: u64,
    expect: Expect,
) -> Result<StoredImage, ImageError>
where
    S: Stream<Item = Result<Bytes, ImageError>> + Unpin,
{
    let mut writer = store.begin(key).await?;
    writer.set_max_size(Some(max));
    while let Some(chunk) = chunks.next().await {
        let written = match chunk {
            Ok(bytes) => writer.write(&bytes).await.map_err(ImageError::from),
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            writer.abort().await;
            return Err(e);
        }
    }
    Ok(writer.commit(expect).await?)
}

/// Record stored bytes as the image's data; if the quota refuses or the image changed meanwhile (deleted,
/// say), drop the bytes.
pub async fn record_stored(
    images: &Images,
    store: &dyn ImageStore,
    owner: &str,
    id: &str,
    stored: StoredImage,
    meta: &Metadata,
) -> Result<(), ImageError> {
    // The quota reservation is the atomic check: concurrent uploads cannot both fit in the last bytes.
    if let Err(e) = images.take_bytes(owner, id, stored.size, meta).await {
        let _ = store.delete(id).await;
        return Err(e);
    }
    let cmd = ImageCommand::StoreData {
        size: stored.size,
        checksum: stored.checksum,
        os_hash_algo: stored.os_hash_algo,
        os_hash_value: stored.os_hash_value,
        virtual_size: stored.virtual_size,
        store: store.name().to_string(),
        location: stored.location,
    };
    if let Err(e) = images.run(id, cmd, meta).await {
        let _ = store.delete(id).await;
        return Err(e);
    }
    Ok(())
}

/// Return the image to `queued` after a failed transfer.
pub async fn abort_transfer(images: &Images, id: &str, reason: &str, meta: &Metadata) {
    let cmd = ImageCommand::AbortUpload {
        reason: reason.to_string(),
    };
    if let Err(err) = images.run(id, cmd, meta).await {
        tracing::error!(image = %id, error = %err, "could not return the image to queued after a failed transfer");
    }
}

/// Store `chunks` as the data of image `id` of `owner` (which must be `queued`): start the upload, stream
/// into `store` within the owner's byte quota, record the data; on any failure the image is `queued` again
/// and no bytes are left.
pub async fn upload<S>(
    images: &Images,
    store: &dyn ImageStore,
    owner: &str,
    id: &str,
    chunks: S,
    expect: Expect,
    meta: &Metadata,
) -> Result<(), ImageError>
where
    S: Stream<Item = Result<Bytes, ImageError>> + Unpin,
{
    images.run(id, ImageCommand::StartUpload, meta).await?;
    let left = images.bytes_left(owner).await;
    match store_stream(store, id, chunks, left, expect).await {
        Ok(stored) => record_stored(images, store, owner, id, stored, meta).await,
        Err(e) => {
            abort_transfer(images, id, &e.message(), meta).await;
            Err(e)
        }
    }
}

/// Keep bytes aside for a later `glance-direct` import of image `id` (`PUT /v2/images/{id}/stage`).
pub async fn stage<S>(
    images: &Images,
    owner: &str,
    id: &str,
    chunks: S,
    expect: Expect,
    meta: &Metadata,
) -> Result<(), ImageError>
where
    S: Stream<Item = Result<Bytes, ImageError>> + Unpin,
{
    let key = staging_key(id);
    let left = images.bytes_left(owner).await;
    let stored = store_stream(images.store.as_ref(), &key, chunks, left, expect).await?;
    if let Err(e) = images
        .run(id, ImageCommand::Stage { size: stored.size }, meta)
        .await
    {
        let _ = images.store.delete(&key).await;
        return Err(e);
    }
    Ok(())
}

/// Where an import takes its bytes from.
pub enum ImportSource {
    /// The bytes staged before (`glance-direct`).
    Staged,
    /// A URL on this machine's loopback (`web-download`; the caller checked that it is loopback).
    Download(String),
}

/// What an import checks the bytes against.
#[derive(Debug, Clone, Default)]
pub struct ImportChecks {
    pub expect: Expect,
    /// The SHA-512 the bytes must have (`validation_data.os_hash_value`).
    pub sha512: Option<String>,
}

/// An import of the data of image `id` of `owner` by `method` (`glance-direct` or `web-download`).
pub struct Import {
    pub owner: String,
    pub id: String,
    pub method: String,
    pub source: ImportSource,
    pub checks: ImportChecks,
}

/// Start importing the data of an image into `store`: records the import's start, then moves
/// the bytes in the background (clients poll the image's status). A failure returns the image to `queued`.
pub async fn import(
    images: Arc<Images>,
    store: Arc<dyn ImageStore>,
    request: Import,
    meta: Metadata,
) -> Result<(), ImageError> {
    let Import {
        owner,
        id,
        method,
        source,
        checks,
    } = request;
    images
        .run(
            &id,
            ImageCommand::StartImport {
                method: method.clone(),
            },
            &meta,
        )
        .await?;
    let max = images.bytes_left(&owner).await;
    tokio::spawn(async move {
        let key = staging_key(&id);
        let expect = checks.expect;
        let stored = match source {
            ImportSource::Staged => match images.store.open(&key, None).await {
                Ok(reader) => {
                    let chunks = reader.stream.map(|c| c.map_err(ImageError::from));
                    store_stream(store.as_ref(), &id, chunks, max, expect).await
                }
                Err(e) => Err(e.into()),
            },
            ImportSource::Download(uri) => {
                store_stream(store.as_ref(), &id, download_stream(uri), max, expect).await
            }
        };
        let stored = match (stored, checks.sha512) {
            (Ok(s), Some(h)) if s.os_hash_value != h => {
                let _ = store.delete(&id).await;
                Err(ImageError::Invalid(format!(
                    "os_hash_value mismatch: expected {h}, computed {}",
                    s.os_hash_value
                )))
            }
            (other, _) => other,
        };
        let outcome = match stored {
            Ok(s) => record_stored(&images, store.as_ref(), &owner, &id, s, &meta).await,
            Err(e) => Err(e),
        };
        if let Err(e) = outcome {
            tracing::warn!(image = %id, method, error = %e, "import failed");
            abort_transfer(&images, &id, &e.message(), &meta).await;
        }
        let _ = images.store.delete(&key).await;
    });
    Ok(())
}

/// The body of `uri`, read on a blocking thread and handed over in chunks.
fn download_stream(uri: String) -> impl Stream<Item = Result<Bytes, ImageError>> + Unpin {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, ImageError>>(8);
    std::thread::spawn(move || {
        use std::io::Read;
        let fail = |m: String| Err(ImageError::Invalid(m));
        let resp = match ureq::AgentBuilder::new()
            .redirects(0)
            .timeout_connect(std::time::Duration::from_secs(10))
            .build()
            .get(&uri)
            .call()
        {
            Ok(r) => r,
            Err(e) => {
                let _ = tx.blocking_send(fail(format!("web-download of {uri} failed: {e}")));
                return;
            }
        };
        let mut reader = resp.into_reader();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            match reader.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    if tx
                        .blocking_send(Ok(Bytes::copy_from_slice(&buf[..n])))
                        .is_err()
                    {
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(fail(format!("web-download of {uri} broke off: {e}")));
                    return;
                }
            }
        }
    });
    Box::pin(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

/// Where the compute service puts server snapshots (createImage) and the volume service exported volumes
/// (os-volume_upload_image): the data of an image the API created, or the image's removal on failure.
#[async_trait::async_trait]
pub trait ImageSink: Send + Sync + 'static {
    /// Upload the file at `source` as the data of (queued) image `image_id`.
    async fn store(
        &self,
        image_id: &str,
        source: PathBuf,
        meta: &Metadata,
    ) -> Result<(), ImageError>;
    /// The snapshot or export failed: remove the image.
    async fn discard(&self, image_id: &str, meta: &Metadata);
}

/// The image service as an [`ImageSink`]: stores into the default store, within the owner's quota.
pub struct SnapshotStore {
    images: Arc<Images>,
}

impl SnapshotStore {
    pub fn new(images: Arc<Images>) -> Self {
        SnapshotStore { images }
    }
}

/// The file's bytes as upload chunks.
fn file_chunks(file: tokio::fs::File) -> impl Stream<Item = Result<Bytes, ImageError>> + Unpin {
    futures::stream::unfold(file, |mut file| async move {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; 1 << 20];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Bytes::from(buf)), file))
            }
            Err(e) => Some((
                Err(ImageError::Internal(format!("reading the snapshot: {e}"))),
                file,
            )),
        }
    })
    .boxed()
}

#[async_trait::async_trait]
impl ImageSink for SnapshotStore {
    async fn store(
        &self,
        image_id: &str,
        source: PathBuf,
        meta: &Metadata,
    ) -> Result<(), ImageError> {
        let images = &self.images;
        let owner = images
            .view
            .snapshot()
            .image(image_id)
            .map(|row| row.owner.clone())
            .ok_or_else(|| ImageError::image_not_found(image_id))?;
        let file = tokio::fs::File::open(&source)
            .await
            .map_err(|e| ImageError::Internal(format!("opening {}: {e}", source.display())))?;
        let store = images.store.default_store().clone();
        upload(
            images,
            store.as_ref(),
            &owner,
            image_id,
            file_chunks(file),
            Expect::default(),
            meta,
        )
        .await
    }

    async fn discard(&self, image_id: &str, meta: &Metadata) {
        let owner = self
            .images
            .view
            .snapshot()
            .image(image_id)
            .map(|row| row.owner.clone());
        if let Some(owner) = owner {
            self.images.discard_record(&owner, image_id, meta).await;
        }
    }
}
