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

use strata_actors::image::store::{Expect, ImageStore};

use super::{Caller, GlanceError, ImageError, Images, ImagesExt};
use strata_image::{Import, ImportChecks, ImportSource};

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

fn declared_length(req: &HttpRequest) -> Option<u64> {
    req.headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

fn body_stream(payload: web::Payload) -> impl Stream<Item = Result<Bytes, ImageError>> + Unpin {
    payload.map(|c| c.map_err(|e| ImageError::Invalid(format!("The upload was interrupted: {e}"))))
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
    let expect = Expect {
        size: declared_length(&req),
        ..Default::default()
    };
    strata_image::upload(
        &images,
        store.as_ref(),
        &row.owner,
        &id,
        body_stream(payload),
        expect,
        &meta,
    )
    .await?;
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
    let expect = Expect {
        size: declared_length(&req),
        ..Default::default()
    };
    let meta = caller.metadata(&req);
    strata_image::stage(
        &images,
        &row.owner,
        &id,
        body_stream(payload),
        expect,
        &meta,
    )
    .await?;
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
        "glance-direct" => ImportSource::Staged,
        "web-download" => ImportSource::Download(loopback_url(
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
    let request = Import {
        owner: row.owner.clone(),
        id,
        method,
        source,
        checks: ImportChecks {
            expect,
            sha512: expect_sha512,
        },
    };
    strata_image::import(images.into_inner(), store, request, caller.metadata(&req)).await?;
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
    let reader = images
        .store
        .open(&id, range)
        .await
        .map_err(ImageError::from)?;
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
