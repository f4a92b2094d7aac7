//! Image data: `PUT /v2/images/{id}/file` streams the request body into the store while hashing it, and
//! `GET /v2/images/{id}/file` streams it back (with Range support and `Content-MD5`). The aggregate records
//! every transition (queued -> saving -> active, or back to queued when an upload fails), so a failed or
//! aborted upload leaves neither bytes nor a half-active image.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use futures::StreamExt;
use strata_actors::image::store::{Expect, StoreError};
use strata_actors::image::ImageCommand;

use super::{Caller, GlanceError, Images};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/v2/images/{id}/file")
            .route(web::put().to(upload))
            .route(web::get().to(download)),
    );
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

async fn upload(
    images: web::Data<Images>,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<String>,
    mut payload: web::Payload,
) -> Result<HttpResponse, GlanceError> {
    let id = path.into_inner();
    let row = images.owned(&caller, &id)?;
    if matches!(
        row.status.as_str(),
        "active" | "saving" | "importing" | "deactivated"
    ) {
        return Err(GlanceError::conflict(format!(
            "Image status transition from {} to saving is not allowed",
            row.status
        )));
    }
    let meta = caller.metadata(&req);
    images.run(&id, ImageCommand::StartUpload, &meta).await?;
    let (_, used) = images.view.read().usage(&row.owner);
    let declared = req
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let result: Result<_, GlanceError> = async {
        let mut writer = images.store.begin(&id).await.map_err(store_error)?;
        writer.set_max_size(Some(images.quota.bytes.saturating_sub(used)));
        while let Some(chunk) = payload.next().await {
            match chunk {
                Ok(bytes) => {
                    if let Err(e) = writer.write(&bytes).await {
                        writer.abort().await;
                        return Err(store_error(e));
                    }
                }
                Err(e) => {
                    writer.abort().await;
                    return Err(GlanceError::bad_request(format!(
                        "The upload was interrupted: {e}"
                    )));
                }
            }
        }
        writer
            .commit(Expect {
                size: declared,
                checksum: None,
                max_size: None,
            })
            .await
            .map_err(store_error)
    }
    .await;
    let stored = match result {
        Ok(s) => s,
        Err(e) => {
            let abort = ImageCommand::AbortUpload {
                reason: e.message.clone(),
            };
            if let Err(err) = images.run(&id, abort, &meta).await {
                tracing::error!(image = %id, error = %err, "could not return the image to queued after a failed upload");
            }
            return Err(e);
        }
    };
    let cmd = ImageCommand::StoreData {
        size: stored.size,
        checksum: stored.checksum,
        os_hash_algo: stored.os_hash_algo,
        os_hash_value: stored.os_hash_value,
        virtual_size: stored.virtual_size,
        store: images.store.name().to_string(),
        location: stored.location,
    };
    if let Err(e) = images.run(&id, cmd, &meta).await {
        // The image changed under the upload (deleted, say): its bytes must not outlive it.
        let _ = images.store.delete(&id).await;
        return Err(e);
    }
    Ok(HttpResponse::NoContent().finish())
}

/// `bytes=START-END` or `bytes=START-` (a single range).
fn parse_range(header: &str) -> Option<(u64, Option<u64>)> {
    let spec = header.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (start, end) = spec.split_once('-')?;
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
        Some(h) => Some(parse_range(h).ok_or_else(|| {
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

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9"), Some((0, Some(9))));
        assert_eq!(parse_range("bytes=5-"), Some((5, None)));
        assert_eq!(parse_range("bytes=a-b"), None);
        assert_eq!(parse_range("bytes=0-1,4-5"), None);
        assert_eq!(parse_range("items=0-1"), None);
    }
}
