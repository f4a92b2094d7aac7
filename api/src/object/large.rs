//! Large objects. A dynamic large object (DLO) is an object with `X-Object-Manifest: <container>/<prefix>`:
//! it reads as the objects under that prefix, in name order. A static large object (SLO) is a manifest
//! (`PUT ?multipart-manifest=put`) naming its segments with their ETags and sizes, checked when it is stored
//! and again when it is read. Both become a read [`Plan`] — pieces of blobs — so GET, ranges, HEAD and
//! copies share one code path with plain objects.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use futures::StreamExt;
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use strata_actors::object::ObjectRecord;
use strata_object::service::timestamp_secs;

use super::listing::listing_time;
use super::objects::{live_record, put_description};
use super::{decode_segment, range, Ctx, SwiftError};

/// Most segments one SLO manifest may list.
pub const MAX_MANIFEST_SEGMENTS: usize = 1000;
/// Largest SLO manifest body, in bytes.
pub const MAX_MANIFEST_SIZE: usize = 8 * 1024 * 1024;
/// Most segments a DLO is assembled from.
pub const MAX_DLO_SEGMENTS: usize = 10_000;

/// A piece of an object's bytes: `len` bytes of blob `blob` from `offset`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    pub blob: String,
    pub offset: u64,
    pub len: u64,
}

/// What a GET of an object reads, in order, and the size and ETag (unquoted) it answers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub pieces: Vec<Piece>,
    pub size: u64,
    pub etag: String,
}

/// One segment of a stored SLO manifest (Swift's stored form).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct StoredSegment {
    /// `/<container>/<object>`
    name: String,
    bytes: u64,
    hash: String,
    #[serde(default)]
    content_type: String,
    #[serde(default)]
    last_modified: String,
    /// `first-last` (inclusive) when only part of the segment is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    range: Option<String>,
}

fn md5_hex(data: &[u8]) -> String {
    hex::encode(Md5::digest(data))
}

/// `/container/object` -> (container, object).
fn split_segment_path(path: &str) -> Option<(String, String)> {
    let (c, o) = path.strip_prefix('/')?.split_once('/')?;
    if c.is_empty() || o.is_empty() {
        return None;
    }
    Some((c.to_string(), o.to_string()))
}

/// `a-b` within a segment of `size` bytes -> (offset, len).
fn segment_range(range: &str, size: u64) -> Option<(u64, u64)> {
    match range::parse_range(&format!("bytes={range}"), size) {
        range::RangeOutcome::Ranges(r) if r.len() == 1 => Some((r[0].0, r[0].1 - r[0].0 + 1)),
        _ => None,
    }
}

/// The read plan of `record` (object `name` in `container` of the request's account): a plain object is its
/// blob; a DLO is the objects under its manifest's prefix, in name order; an SLO is its manifest's segments.
pub async fn plan(
    ctx: &Ctx<'_>,
    _container: &str,
    _name: &str,
    record: &ObjectRecord,
) -> Result<Plan, SwiftError> {
    if record.static_large_object {
        return slo_plan(ctx, record).await;
    }
    if let Some(manifest) = record.dlo_manifest() {
        return dlo_plan(ctx, manifest);
    }
    Ok(Plan {
        pieces: vec![Piece {
            blob: record.blob.clone(),
            offset: 0,
            len: record.blob_size,
        }],
        size: record.size,
        etag: record.etag.clone(),
    })
}

fn dlo_plan(ctx: &Ctx<'_>, manifest: &str) -> Result<Plan, SwiftError> {
    let decoded = decode_segment(manifest)?;
    let (container, prefix) = decoded
        .split_once('/')
        .ok_or_else(|| SwiftError::bad_request("X-Object-Manifest must be container/prefix"))?;
    if !ctx.may_read(container) {
        return Err(ctx.access.denied());
    }
    let view = ctx.service().view.read();
    let mut pieces = Vec::new();
    let mut etags = String::new();
    let mut size = 0;
    if let Some(c) = view.container(&ctx.target.account, container) {
        for (_, o) in c
            .objects
            .range::<String, _>(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .take(MAX_DLO_SEGMENTS)
        {
            pieces.push(Piece {
                blob: o.blob.clone(),
                offset: 0,
                len: o.blob_size,
            });
            etags.push_str(&o.etag);
            size += o.blob_size;
        }
    }
    Ok(Plan {
        pieces,
        size,
        etag: md5_hex(etags.as_bytes()),
    })
}

async fn read_manifest(
    ctx: &Ctx<'_>,
    record: &ObjectRecord,
) -> Result<Vec<StoredSegment>, SwiftError> {
    let bytes = ctx
        .service()
        .blobs
        .read_to_vec(&record.blob)
        .await
        .map_err(SwiftError::internal)?;
    serde_json::from_slice(&bytes)
        .map_err(|e| SwiftError::internal(format!("stored SLO manifest: {e}")))
}

async fn slo_plan(ctx: &Ctx<'_>, record: &ObjectRecord) -> Result<Plan, SwiftError> {
    let segments = read_manifest(ctx, record).await?;
    let mut pieces = Vec::with_capacity(segments.len());
    let mut size = 0;
    for seg in &segments {
        let Some((container, name)) = split_segment_path(&seg.name) else {
            return Err(SwiftError::internal(format!(
                "bad segment name {}",
                seg.name
            )));
        };
        if !ctx.may_read(&container) {
            return Err(ctx.access.denied());
        }
        // A segment that is gone or was replaced makes the whole object unreadable (Swift answers 409).
        let current = live_record(ctx, &container, &name)
            .filter(|o| o.etag == seg.hash && !o.static_large_object);
        let Some(o) = current else {
            return Err(SwiftError::text(
                StatusCode::CONFLICT,
                format!("Object segment no longer valid: {}", seg.name),
            ));
        };
        let (offset, len) = match &seg.range {
            Some(r) => segment_range(r, o.blob_size).ok_or_else(|| {
                SwiftError::text(
                    StatusCode::CONFLICT,
                    format!("Object segment no longer valid: {}", seg.name),
                )
            })?,
            None => (0, o.blob_size),
        };
        pieces.push(Piece {
            blob: o.blob,
            offset,
            len,
        });
        size += len;
    }
    Ok(Plan {
        pieces,
        size,
        etag: record.etag.clone(),
    })
}

/// Read a request body of at most `limit` bytes (413 beyond).
pub async fn read_body(
    mut body: web::Payload,
    limit: usize,
    what: &str,
) -> Result<Vec<u8>, SwiftError> {
    let mut out = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk =
            chunk.map_err(|_| SwiftError::text(StatusCode::BAD_REQUEST, "Client Disconnect"))?;
        if out.len() + chunk.len() > limit {
            return Err(SwiftError::too_large(format!("{what} > {limit} bytes")));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// One segment as a client lists it in `?multipart-manifest=put`.
struct PutSegment {
    path: String,
    etag: Option<String>,
    size_bytes: Option<u64>,
    range: Option<String>,
}

fn parse_put_manifest(body: &[u8]) -> Result<Vec<PutSegment>, SwiftError> {
    let invalid = || SwiftError::bad_request("Manifest must be valid JSON.\n");
    let list: Vec<Value> = serde_json::from_slice(body).map_err(|_| invalid())?;
    if list.is_empty() {
        return Err(SwiftError::bad_request(
            "Manifest must list at least one segment.\n",
        ));
    }
    if list.len() > MAX_MANIFEST_SEGMENTS {
        return Err(SwiftError::bad_request(format!(
            "Number of segments must be <= {MAX_MANIFEST_SEGMENTS}\n"
        )));
    }
    let mut out = Vec::with_capacity(list.len());
    for (i, item) in list.iter().enumerate() {
        let Some(obj) = item.as_object() else {
            return Err(SwiftError::bad_request(format!(
                "Index {i}: not a JSON object\n"
            )));
        };
        for k in obj.keys() {
            if !matches!(k.as_str(), "path" | "etag" | "size_bytes" | "range") {
                return Err(SwiftError::bad_request(format!(
                    "Index {i}: extraneous key \"{k}\"\n"
                )));
            }
        }
        let Some(path) = obj.get("path").and_then(Value::as_str) else {
            return Err(SwiftError::bad_request(format!(
                "Index {i}: \"path\" must be a string\n"
            )));
        };
        let etag = match obj.get("etag") {
            None | Some(Value::Null) => None,
            Some(Value::String(e)) => Some(e.trim_matches('"').to_ascii_lowercase()),
            Some(_) => {
                return Err(SwiftError::bad_request(format!(
                    "Index {i}: \"etag\" must be a string or null (if provided)\n"
                )))
            }
        };
        let size_bytes = match obj.get("size_bytes") {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.as_u64().ok_or_else(|| {
                SwiftError::bad_request(format!(
                    "Index {i}: \"size_bytes\" must be an integer or null (if provided)\n"
                ))
            })?),
        };
        let range = match obj.get("range") {
            None | Some(Value::Null) => None,
            Some(Value::String(r)) => Some(r.clone()),
            Some(_) => {
                return Err(SwiftError::bad_request(format!(
                    "Index {i}: \"range\" must be a string (if provided)\n"
                )))
            }
        };
        out.push(PutSegment {
            path: path.to_string(),
            etag,
            size_bytes,
            range,
        });
    }
    Ok(out)
}

/// `PUT ?multipart-manifest=put`: validate and store an SLO manifest.
pub async fn put_manifest(ctx: &Ctx<'_>, body: web::Payload) -> Result<HttpResponse, SwiftError> {
    let container = ctx.target.container.clone().unwrap_or_default();
    let name = ctx.target.object.clone().unwrap_or_default();
    let body = read_body(body, MAX_MANIFEST_SIZE, "Manifest File").await?;
    let segments = parse_put_manifest(&body)?;
    let mut put = put_description(ctx, &container, &name)?;
    let mut problems: Vec<(String, String)> = Vec::new();
    let mut stored = Vec::with_capacity(segments.len());
    let mut etags = String::new();
    let mut total = 0u64;
    for seg in &segments {
        let decoded = decode_segment(&seg.path).unwrap_or_default();
        let Some((c, o)) = split_segment_path(&decoded) else {
            problems.push((seg.path.clone(), "Invalid segment path".into()));
            continue;
        };
        if !ctx.may_read(&c) {
            problems.push((seg.path.clone(), "403 Forbidden".into()));
            continue;
        }
        let Some(rec) = live_record(ctx, &c, &o) else {
            problems.push((seg.path.clone(), "404 Not Found".into()));
            continue;
        };
        if rec.static_large_object {
            problems.push((
                seg.path.clone(),
                "Nested SLO segments are not supported".into(),
            ));
            continue;
        }
        if seg.etag.as_ref().is_some_and(|e| *e != rec.etag) {
            problems.push((seg.path.clone(), "Etag Mismatch".into()));
            continue;
        }
        if seg.size_bytes.is_some_and(|s| s != rec.size) {
            problems.push((seg.path.clone(), "Size Mismatch".into()));
            continue;
        }
        if rec.size < 1 {
            problems.push((
                seg.path.clone(),
                "Too small; each segment must be at least 1 byte.".into(),
            ));
            continue;
        }
        let used = match &seg.range {
            Some(r) => match segment_range(r, rec.size) {
                Some((_, len)) => {
                    etags.push_str(&format!("{}:{r};", rec.etag));
                    len
                }
                None => {
                    problems.push((seg.path.clone(), "Unsatisfiable Range".into()));
                    continue;
                }
            },
            None => {
                etags.push_str(&rec.etag);
                rec.size
            }
        };
        total += used;
        stored.push(StoredSegment {
            name: format!("/{c}/{o}"),
            bytes: used,
            hash: rec.etag.clone(),
            content_type: rec.content_type.clone(),
            last_modified: listing_time(&rec.timestamp),
            range: seg.range.clone(),
        });
    }
    if !problems.is_empty() {
        let mut text = String::from("Errors:\n");
        for (path, why) in &problems {
            text.push_str(&format!("{path}, {why}\n"));
        }
        return Err(SwiftError::bad_request(text));
    }
    let slo_etag = md5_hex(etags.as_bytes());
    if put.etag.as_ref().is_some_and(|e| *e != slo_etag) {
        return Err(SwiftError::unprocessable());
    }
    put.etag = None;
    let manifest = serde_json::to_vec(&stored).map_err(SwiftError::internal)?;
    let blob = ctx
        .service()
        .blobs
        .write_all(&manifest)
        .await
        .map_err(SwiftError::internal)?;
    let record = ObjectRecord {
        size: total,
        etag: slo_etag.clone(),
        content_type: put.content_type.clone(),
        timestamp: strata_object::service::now_timestamp(),
        blob: blob.id.clone(),
        blob_size: blob.size,
        blob_md5: blob.md5.clone(),
        headers: put.headers.clone(),
        static_large_object: true,
    };
    let stored = ctx
        .service()
        .store_with_blob(&put, record, &blob, ctx.meta())
        .await?;
    Ok(HttpResponse::Created()
        .insert_header(("etag", format!("\"{slo_etag}\"")))
        .insert_header((
            "last-modified",
            range::http_date(timestamp_secs(&stored.record.timestamp).ceil() as i64),
        ))
        .content_type("text/html; charset=UTF-8")
        .finish())
}

/// `GET ?multipart-manifest=get` on an SLO: its manifest as JSON (`&format=raw`: in the PUT form).
pub async fn get_manifest(
    ctx: &Ctx<'_>,
    record: &ObjectRecord,
) -> Result<HttpResponse, SwiftError> {
    let segments = read_manifest(ctx, record).await?;
    let body = if ctx.param("format") == Some("raw") {
        let raw: Vec<Value> = segments
            .iter()
            .map(|s| {
                let mut v = json!({ "path": s.name, "etag": s.hash, "size_bytes": s.bytes });
                if let Some(r) = &s.range {
                    v["range"] = json!(r);
                }
                v
            })
            .collect();
        serde_json::to_vec(&raw).map_err(SwiftError::internal)?
    } else {
        serde_json::to_vec(&segments).map_err(SwiftError::internal)?
    };
    Ok(HttpResponse::Ok()
        .content_type("application/json; charset=utf-8")
        .insert_header(("x-static-large-object", "True"))
        .insert_header(("etag", record.blob_md5.clone()))
        .insert_header((
            "last-modified",
            range::http_date(timestamp_secs(&record.timestamp).ceil() as i64),
        ))
        .body(body))
}

/// The outcome of deleting several things, in Swift's bulk-delete response shape.
#[derive(Debug, Default)]
pub struct DeleteReport {
    pub deleted: u64,
    pub not_found: u64,
    pub errors: Vec<(String, String)>,
}

impl DeleteReport {
    pub fn record(&mut self, path: &str, result: Result<(), SwiftError>) {
        match result {
            Ok(()) => self.deleted += 1,
            Err(e) if e.status == StatusCode::NOT_FOUND => self.not_found += 1,
            Err(e) => self.errors.push((
                path.to_string(),
                format!(
                    "{} {}",
                    e.status.as_u16(),
                    e.status.canonical_reason().unwrap_or("")
                ),
            )),
        }
    }

    /// 200 with JSON (when the client accepts it) or Swift's plain text.
    pub fn respond(&self, ctx: &Ctx<'_>) -> HttpResponse {
        let status = if self.errors.is_empty() {
            "200 OK"
        } else if self.errors.iter().all(|(_, e)| e.starts_with("409")) {
            "409 Conflict"
        } else {
            "400 Bad Request"
        };
        let accept = ctx.header("accept").unwrap_or("");
        if accept.contains("json") {
            return HttpResponse::Ok()
                .content_type("application/json; charset=utf-8")
                .body(
                    json!({
                        "Number Deleted": self.deleted,
                        "Number Not Found": self.not_found,
                        "Response Body": "",
                        "Response Status": status,
                        "Errors": self.errors.iter().map(|(p, e)| json!([p, e])).collect::<Vec<_>>(),
                    })
                    .to_string(),
                );
        }
        let mut text = format!(
            "Number Deleted: {}\nNumber Not Found: {}\nResponse Body: \nResponse Status: {status}\nErrors:\n",
            self.deleted, self.not_found
        );
        for (p, e) in &self.errors {
            text.push_str(&format!("{p}, {e}\n"));
        }
        HttpResponse::Ok()
            .content_type("text/plain; charset=utf-8")
            .body(text)
    }
}

/// Delete one object of the request's account (as a bulk or SLO delete does).
pub async fn delete_one(
    ctx: &Ctx<'_>,
    container: &str,
    name: &str,
    reason: &str,
) -> Result<(), SwiftError> {
    if !ctx.may_write(container) {
        return Err(ctx.access.denied());
    }
    ctx.service()
        .delete_object(
            &ctx.target.account,
            container,
            name,
            reason,
            None,
            ctx.meta(),
        )
        .await
        .map_err(SwiftError::from)
}

/// `DELETE ?multipart-manifest=delete`: an SLO's segments, then the manifest (any other object: itself).
pub async fn delete_manifest(ctx: &Ctx<'_>) -> Result<HttpResponse, SwiftError> {
    let container = ctx.target.container.clone().unwrap_or_default();
    let name = ctx.target.object.clone().unwrap_or_default();
    let mut report = DeleteReport::default();
    let Some(record) = live_record(ctx, &container, &name) else {
        report.not_found += 1;
        return Ok(report.respond(ctx));
    };
    if record.static_large_object {
        for seg in read_manifest(ctx, &record).await? {
            let result = match split_segment_path(&seg.name) {
                Some((c, o)) => delete_one(ctx, &c, &o, "slo-delete").await,
                None => Err(SwiftError::bad_request("Invalid segment path")),
            };
            report.record(&seg.name, result);
        }
    }
    let result = delete_one(ctx, &container, &name, "slo-delete").await;
    report.record(&format!("/{container}/{name}"), result);
    Ok(report.respond(ctx))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_are_checked_for_shape() {
        let ok = br#"[{"path": "/c/o", "etag": "\"ABC\"", "size_bytes": 3}, {"path": "/c/p", "range": "0-1"}]"#;
        let segs = parse_put_manifest(ok).unwrap();
        assert_eq!(segs[0].etag.as_deref(), Some("abc"));
        assert_eq!(segs[1].range.as_deref(), Some("0-1"));
        for bad in [
            &b"{}"[..],
            b"not json",
            b"[]",
            br#"[{"etag": "x"}]"#,
            br#"[{"path": "/c/o", "size_bytes": "3"}]"#,
            br#"[{"path": "/c/o", "color": 1}]"#,
        ] {
            assert_eq!(
                parse_put_manifest(bad).err().map(|e| e.status),
                Some(StatusCode::BAD_REQUEST)
            );
        }
        assert_eq!(
            split_segment_path("/c/a/b"),
            Some(("c".into(), "a/b".into()))
        );
        assert_eq!(split_segment_path("c/o"), None);
        assert_eq!(segment_range("2-5", 10), Some((2, 4)));
        assert_eq!(segment_range("20-25", 10), None);
    }
}
