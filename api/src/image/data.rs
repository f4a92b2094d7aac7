//! Image data. `PUT /v2/images/{id}/file` streams the request body into the store while hashing it;
//! `GET /v2/images/{id}/file` streams it back (Range support, `Content-MD5`). Interoperable import:
//! `PUT /v2/images/{id}/stage` keeps the bytes aside, and `POST /v2/images/{id}/import` turns staged bytes
//! (`glance-direct`) or a loopback URL's body (`web-download`) into the image's data in the background.
//! The aggregate records every transition (queued -> saving/uploading/importing -> active, or back to queued
//! when a transfer fails), so a failed or aborted transfer leaves neither bytes nor a half-active image.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use std::sync::Arc;

use strata_actors::image::store::{Expect, ImageStore, StoreError, StoredImage};
use strata_actors::image::ImageCommand;
use strata_events::Metadata;

use super::{Caller, GlanceError, Images};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/v2/images/{id}/file")
            .route(web::put().to(upload))
            .route(web::get().to(download)),
    )
    .route("/v2/images/{id}/stage", web::put().to(stage))
    .route("/v2/images/{id}/import", web::post().to(import))
    .route(
        "/v2/stores/{store}/{id}",
        web::delete().to(delete_from_store),
    );
}

/// The header naming the store an upload or import goes to (Glance multi-store).
const STORE_HEADER: &str = "x-image-meta-store";

/// The enabled store called `name`, or Glance's 400.
fn named_store(images: &Images, name: &str) -> Result<Arc<dyn ImageStore>, GlanceError> {
    images
        .store
        .get(name)
        .cloned()
        .ok_or_else(|| GlanceError::bad_request(format!("Unknown scheme '{name}' found in URI")))
}

/// The store an upload goes to: the one `X-Image-Meta-Store` names, else the default.
fn upload_store(images: &Images, req: &HttpRequest) -> Result<Arc<dyn ImageStore>, GlanceError> {
    match req.headers().get(STORE_HEADER) {
        None => Ok(images.store.default_store().clone()),
        Some(v) => {
            let name = v.to_str().map_err(|_| {
                GlanceError::bad_request("The X-Image-Meta-Store header is not text")
            })?;
            named_store(images, name.trim())
        }
    }
}

/// The store an import goes to: `stores` (one store: Strata keeps an image's bytes in one place),
/// `all_stores` (allowed when only one store is enabled), else `X-Image-Meta-Store`, else the default.
fn import_store(
    images: &Images,
    req: &HttpRequest,
    body: &serde_json::Value,
) -> Result<Arc<dyn ImageStore>, GlanceError> {
    let one_place = || {
        GlanceError::bad_request(
            "Strata keeps an image's data in one store: name a single store in 'stores'",
        )
    };
    if body["all_stores"].as_bool() == Some(true) {
        if !body["stores"].is_null() {
            return Err(GlanceError::bad_request(
                "all_stores and stores are mutually exclusive",
            ));
        }
        if images.store.names().count() > 1 {
            return Err(one_place());
        }
        return Ok(images.store.default_store().clone());
    }
    match &body["stores"] {
        serde_json::Value::Null => upload_store(images, req),
        serde_json::Value::Array(names) => match names.as_slice() {
            [] => upload_store(images, req),
            [one] => {
                let name = one
                    .as_str()
                    .ok_or_else(|| GlanceError::bad_request("'stores' must list store ids"))?;
                named_store(images, name)
            }
            _ => Err(one_place()),
        },
        _ => Err(GlanceError::bad_request(
            "'stores' must be a list of store ids",
        )),
    }
}

fn store_error(e: StoreError) -> GlanceError {
    match e {
        StoreError::TooLarge { max } => GlanceError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("Image storage quota exceeded: at most {max} more bytes may be stored by this project."),
        ),
        StoreError::SizeMismatch { expected, actual } => {
            GlanceError::bad_request(format!("Image size mismatch: expected {expected} bytes, received {actual}."))
        }
        StoreError::ChecksumMismatch { expected, actual } => {
            GlanceError::bad_request(format!("Checksum verification failed: expected {expected}, computed {actual}."))
        }
        StoreError::NotFound => GlanceError::not_found("Image data could not be found."),
        StoreError::InvalidRange => GlanceError::new(StatusCode::RANGE_NOT_SATISFIABLE, "Requested range not satisfiable."),
        StoreError::Io(m) => {
            tracing::error!(error = %m, "image store failure");
            GlanceError::internal("The image store failed.")
        }
    }
}

/// The store key of an image's staged (not yet imported) bytes.
fn staging_key(id: &str) -> String {
    format!("staging-{id}")
}

/// Stream `chunks` into a new object `key`, at most `max` bytes; any failure leaves no bytes behind.
async fn store_stream<S>(
    store: &dyn ImageStore,
    key: &str,
    mut chunks: S,
    max: u64,
    expect: Expect,
) -> Result<StoredImage, GlanceError>
where
    S: Stream<Item = Result<Bytes, GlanceError>> + Unpin,
{
    let mut writer = store.begin(key).await.map_err(store_error)?;
    writer.set_max_size(Some(max));
    while let Some(chunk) = chunks.next().await {
        let written = match chunk {
            Ok(bytes) => writer.write(&bytes).await.map_err(store_error),
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            writer.abort().await;
            return Err(e);
        }
    }
    writer.commit(expect).await.map_err(store_error)
}

fn declared_length(req: &HttpRequest) -> Option<u64> {
    req.headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

fn body_stream(payload: web::Payload) -> impl Stream<Item = Result<Bytes, GlanceError>> + Unpin {
    payload.map(|c| {
        c.map_err(|e| GlanceError::bad_request(format!("The upload was interrupted: {e}")))
    })
}

/// Bytes this image's owner may still store.
async fn quota_left(images: &Images, owner: &str) -> u64 {
    images.bytes_left(owner).await
}

/// Record stored bytes as the image's data; if the image changed meanwhile (deleted, say), drop the bytes.
async fn record_stored(
    images: &Images,
    store: &dyn ImageStore,
    owner: &str,
    id: &str,
    stored: StoredImage,
    meta: &Metadata,
) -> Result<(), GlanceError> {
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
async fn abort(images: &Images, id: &str, reason: &str, meta: &Metadata) {
    let cmd = ImageCommand::AbortUpload {
        reason: reason.to_string(),
    };
    if let Err(err) = images.run(id, cmd, meta).await {
        tracing::error!(image = %id, error = %err, "could not return the image to queued after a failed transfer");
    }
}

async fn upload(
    images: web::Data<Images>,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, GlanceError> {
    caller.enforce("upload_image")?;
    let id = path.into_inner();
    let row = images.owned(&caller, &id)?;
    if row.status != "queued" {
        return Err(GlanceError::conflict(format!(
            "Image status transition from {} to saving is not allowed",
            row.status
        )));
    }
    let store = upload_store(&images, &req)?;
    let meta = caller.metadata(&req);
    images.run(&id, ImageCommand::StartUpload, &meta).await?;
    let expect = Expect {
        size: declared_length(&req),
        ..Default::default()
    };
    let stored = store_stream(
        store.as_ref(),
        &id,
        body_stream(payload),
        quota_left(&images, &row.owner).await,
        expect,
    )
    .await;
    match stored {
        Ok(s) => record_stored(&images, store.as_ref(), &row.owner, &id, s, &meta).await?,
        Err(e) => {
            abort(&images, &id, &e.message, &meta).await;
            return Err(e);
        }
    }
    Ok(HttpResponse::NoContent().finish())
}

/// `PUT /v2/images/{id}/stage`: keep the bytes aside for a later `glance-direct` import.
async fn stage(
    images: web::Data<Images>,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, GlanceError> {
    caller.enforce("modify_image")?;
    let id = path.into_inner();
    let row = images.owned(&caller, &id)?;
    if row.status != "queued" {
        return Err(GlanceError::conflict(format!(
            "Image status transition from {} to uploading is not allowed",
            row.status
        )));
    }
    let key = staging_key(&id);
    let expect = Expect {
        size: declared_length(&req),
        ..Default::default()
    };
    let stored = store_stream(
        images.store.as_ref(),
        &key,
        body_stream(payload),
        quota_left(&images, &row.owner).await,
        expect,
    )
    .await?;
    if let Err(e) = images
        .run(
            &id,
            ImageCommand::Stage { size: stored.size },
            &caller.metadata(&req),
        )
        .await
    {
        let _ = images.store.delete(&key).await;
        return Err(e);
    }
    Ok(HttpResponse::NoContent().finish())
}

/// A `web-download` source must be an http(s) URL on this machine's loopback.
fn loopback_url(uri: &str) -> Result<String, GlanceError> {
    let rest = uri
        .strip_prefix("http://")
        .or_else(|| uri.strip_prefix("https://"))
        .ok_or_else(|| GlanceError::bad_request("web-download needs an http or https URI"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default().to_string(),
        None => authority
            .rsplit_once(':')
            .map(|(h, _)| h)
            .unwrap_or(authority)
            .to_string(),
    };
    let allowed = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !allowed {
        return Err(GlanceError::bad_request(
            "web-download accepts only loopback URLs (127.0.0.0/8, ::1, localhost)",
        ));
    }
    Ok(uri.to_string())
}

/// The body of `uri`, read on a blocking thread and handed over in chunks.
fn download_stream(uri: String) -> impl Stream<Item = Result<Bytes, GlanceError>> + Unpin {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, GlanceError>>(8);
    std::thread::spawn(move || {
        use std::io::Read;
        let fail = |m: String| Err(GlanceError::bad_request(m));
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

/// `POST /v2/images/{id}/import`: answers 202 and moves the data in the background; clients poll the status.
async fn import(
    images: web::Data<Images>,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, GlanceError> {
    caller.enforce("modify_image")?;
    let id = path.into_inner();
    let row = images.owned(&caller, &id)?;
    let v: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| GlanceError::bad_request(format!("Malformed JSON in request body: {e}")))?;
    let method = v["method"]["name"].as_str().unwrap_or_default().to_string();
    let source = match method.as_str() {
        "glance-direct" => None,
        "web-download" => Some(loopback_url(
            v["method"]["uri"].as_str().unwrap_or_default(),
        )?),
        "" => {
            return Err(GlanceError::bad_request(
                "Import request requires a 'method' with a 'name'",
            ))
        }
        other => {
            return Err(GlanceError::bad_request(format!(
                "Import method {other} is not supported; use glance-direct or web-download"
            )))
        }
    };
    // Optional `validation_data` (Glance's web-download contract): the bytes must match, or the import fails.
    let validation = &v["method"]["validation_data"];
    let expect = Expect {
        checksum: validation["checksum"].as_str().map(str::to_string),
        ..Default::default()
    };
    let expect_sha512 = match (
        validation["os_hash_algo"].as_str(),
        validation["os_hash_value"].as_str(),
    ) {
        (Some("sha512") | None, Some(h)) => Some(h.to_lowercase()),
        (Some(other), Some(_)) => {
            return Err(GlanceError::bad_request(format!(
                "Unsupported os_hash_algo {other}; this store computes sha512"
            )))
        }
        _ => None,
    };
    let store = import_store(&images, &req, &v)?;
    let meta = caller.metadata(&req);
    images
        .run(
            &id,
            ImageCommand::StartImport {
                method: method.clone(),
            },
            &meta,
        )
        .await?;
    let max = quota_left(&images, &row.owner).await;
    let owner = row.owner.clone();
    let images = images.into_inner();
    tokio::spawn(async move {
        let key = staging_key(&id);
        let stored = match source {
            None => match images.store.open(&key, None).await {
                Ok(reader) => {
                    let chunks = reader.stream.map(|c| c.map_err(store_error));
                    store_stream(store.as_ref(), &id, chunks, max, expect).await
                }
                Err(e) => Err(store_error(e)),
            },
            Some(uri) => store_stream(store.as_ref(), &id, download_stream(uri), max, expect).await,
        };
        let stored = match (stored, expect_sha512) {
            (Ok(s), Some(h)) if s.os_hash_value != h => {
                let _ = store.delete(&id).await;
                Err(GlanceError::bad_request(format!(
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
            tracing::warn!(image = %id, method, error = %e.message, "import failed");
            abort(&images, &id, &e.message, &meta).await;
        }
        let _ = images.store.delete(&key).await;
    });
    Ok(HttpResponse::Accepted().finish())
}

/// `DELETE /v2/stores/{store}/{id}`: remove an image's data from one of its stores. Strata keeps an image's
/// data in one store, so this is always the last copy: Glance's 409 (delete the image instead). 404 when the
/// store is unknown or does not hold the image.
async fn delete_from_store(
    images: web::Data<Images>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, GlanceError> {
    caller.enforce("delete_image_location")?;
    let (store_name, id) = path.into_inner();
    let row = images.owned(&caller, &id)?;
    if images.store.get(&store_name).is_none() {
        return Err(GlanceError::not_found(format!(
            "The selected store {store_name} is not available on this node."
        )));
    }
    if row.store != store_name {
        return Err(GlanceError::not_found(format!(
            "Image {id} is not present in store {store_name}."
        )));
    }
    Err(GlanceError::conflict(
        "Cannot delete image data from the only store containing it. Consider deleting the image instead.",
    ))
}

/// `bytes=START-END`, `bytes=START-` or `bytes=-LAST` (a single range) of an image of `size` bytes, as
/// (start, inclusive end).
fn parse_range(header: &str, size: u64) -> Option<(u64, Option<u64>)> {
    let spec = header.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (start, end) = spec.split_once('-')?;
    if start.trim().is_empty() {
        let last: u64 = end.trim().parse().ok().filter(|n| *n > 0)?;
        return Some((size.saturating_sub(last), None));
    }
    let start: u64 = start.trim().parse().ok()?;
    let end = match end.trim() {
        "" => None,
        e => Some(e.parse().ok()?),
    };
    Some((start, end))
}

async fn download(
    images: web::Data<Images>,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, GlanceError> {
    caller.enforce("download_image")?;
    let id = path.into_inner();
    let row = images.readable(&caller, &id)?;
    match row.status.as_str() {
        "active" => {}
        "deactivated" if !caller.is_admin => {
            return Err(GlanceError::forbidden(
                "The requested image has been deactivated. Image data download is forbidden.",
            ))
        }
        "deactivated" => {}
        // Glance answers 204 for an image that has no data yet.
        _ => return Ok(HttpResponse::NoContent().finish()),
    }
    let range = match req.headers().get("range").and_then(|v| v.to_str().ok()) {
        Some(h) => Some(parse_range(h, row.size.unwrap_or(0)).ok_or_else(|| {
            GlanceError::new(StatusCode::RANGE_NOT_SATISFIABLE, "Invalid Range header")
        })?),
        None => None,
    };
    let reader = images.store.open(&id, range).await.map_err(store_error)?;
    let length = reader.content_length();
    let mut resp = match reader.range {
        Some((start, end)) if range.is_some() => {
            let mut r = HttpResponse::PartialContent();
            r.insert_header((
                "Content-Range",
                format!("bytes {start}-{end}/{}", reader.size),
            ));
            r
        }
        _ => {
            let mut r = HttpResponse::Ok();
            if !row.checksum.is_empty() {
                r.insert_header(("Content-MD5", row.checksum.clone()));
            }
            r
        }
    };
    resp.insert_header(("Content-Type", "application/octet-stream"));
    resp.no_chunking(length);
    Ok(resp.streaming(
        reader
            .stream
            .map(|c| c.map_err(|e| actix_web::error::ErrorInternalServerError(e.to_string()))),
    ))
}

/// Stores server snapshots (Nova's createImage) as the data of images the compute API created.
pub struct SnapshotStore {
    images: web::Data<Images>,
}

impl SnapshotStore {
    pub fn new(images: web::Data<Images>) -> Self {
        SnapshotStore { images }
    }
}

/// The file's bytes as upload chunks.
fn file_chunks(file: tokio::fs::File) -> impl Stream<Item = Result<Bytes, GlanceError>> + Unpin {
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
                Err(GlanceError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("reading the snapshot: {e}"),
                )),
                file,
            )),
        }
    })
    .boxed()
}

#[async_trait::async_trait]
impl strata_compute::SnapshotSink for SnapshotStore {
    async fn store(
        &self,
        image_id: &str,
        source: std::path::PathBuf,
        meta: &Metadata,
    ) -> Result<(), String> {
        let images = &self.images;
        let owner = images
            .view
            .snapshot()
            .image(image_id)
            .map(|row| row.owner.clone())
            .ok_or_else(|| format!("snapshot image {image_id} is gone"))?;
        let file = tokio::fs::File::open(&source)
            .await
            .map_err(|e| format!("opening {}: {e}", source.display()))?;
        images
            .run(image_id, ImageCommand::StartUpload, meta)
            .await
            .map_err(|e| e.message.clone())?;
        let left = quota_left(images, &owner).await;
        let store = images.store.default_store().clone();
        match store_stream(
            store.as_ref(),
            image_id,
            file_chunks(file),
            left,
            Expect::default(),
        )
        .await
        {
            Ok(stored) => record_stored(images, store.as_ref(), &owner, image_id, stored, meta)
                .await
                .map_err(|e| e.message),
            Err(e) => {
                abort(images, image_id, &e.message, meta).await;
                Err(e.message)
            }
        }
    }

    async fn discard(&self, image_id: &str, meta: &Metadata) {
        let owner = self
            .images
            .view
            .snapshot()
            .image(image_id)
            .map(|row| row.owner.clone());
        if let Some(owner) = owner {
            if self
                .images
                .run(image_id, ImageCommand::Delete, meta)
                .await
                .is_ok()
            {
                self.images.free(&owner, image_id, meta).await;
            }
        }
    }
}

/// Volumes uploaded to images (os-volume_upload_image) go the same way as server snapshots.
#[async_trait::async_trait]
impl strata_volume::ImageSink for SnapshotStore {
    async fn store(
        &self,
        image_id: &str,
        source: std::path::PathBuf,
        meta: &Metadata,
    ) -> Result<(), String> {
        strata_compute::SnapshotSink::store(self, image_id, source, meta).await
    }

    async fn discard(&self, image_id: &str, meta: &Metadata) {
        strata_compute::SnapshotSink::discard(self, image_id, meta).await
    }
}

#[cfg(test)]
mod tests {
    use super::{loopback_url, parse_range};

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Some((0, Some(9))));
        assert_eq!(parse_range("bytes=5-", 100), Some((5, None)));
        assert_eq!(parse_range("bytes=-5", 100), Some((95, None)));
        assert_eq!(parse_range("bytes=-500", 100), Some((0, None)));
        assert_eq!(parse_range("bytes=-0", 100), None);
        assert_eq!(parse_range("bytes=a-b", 100), None);
        assert_eq!(parse_range("bytes=0-1,4-5", 100), None);
        assert_eq!(parse_range("items=0-1", 100), None);
    }

    #[test]
    fn web_download_only_from_loopback() {
        assert!(loopback_url("http://127.0.0.1:8000/x.img").is_ok());
        assert!(loopback_url("http://localhost/x").is_ok());
        assert!(loopback_url("http://[::1]:80/x").is_ok());
        assert!(loopback_url("http://10.0.0.1/x").is_err());
        assert!(loopback_url("http://example.com/x").is_err());
        assert!(loopback_url("ftp://127.0.0.1/x").is_err());
        assert!(loopback_url("http://127.0.0.1.example.com/x").is_err());
    }
}
