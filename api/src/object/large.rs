//! Large objects. A dynamic large object (DLO) is an object with `X-Object-Manifest: <container>/<prefix>`:
//! it reads as the objects under that prefix, in name order. A static large object (SLO) is a manifest
//! (`PUT ?multipart-manifest=put`) naming its segments with their ETags and sizes, checked when it is stored
//! and again when it is read. Both become a read [`Plan`] — pieces of blobs — so GET, ranges, HEAD and
//! copies share one code path with plain objects.
//!
//! Differences from Swift's `slo`/`dlo` middlewares:
//! * inline `data` segments are refused (400): a plan is made of stored blobs only;
//! * a read plan is checked whole before the first byte is sent: a missing or changed segment answers 409
//!   (Swift finds out segment by segment and cuts the connection after the first one);
//! * a DLO over more than [`MAX_DLO_SEGMENTS`] objects, or a plan of more than [`MAX_PLAN_PIECES`] pieces,
//!   answers 409 rather than streaming without a Content-Length.
//!
//! Nested SLOs (an SLO segment that is itself an SLO, up to [`MAX_NESTING`] levels) and DLO segments are
//! supported as in Swift: the segment's ETag and size are those of its assembled bytes.

use std::collections::{BTreeMap, VecDeque};

use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpResponse};
use futures::future::LocalBoxFuture;
use futures::{FutureExt, StreamExt};
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use strata_actors::object::ObjectRecord;
use strata_object::service::{now_timestamp, timestamp_secs};

use super::bulk::{self, quote, response_body, status_line, DeleteReport};
use super::listing::listing_time;
use super::objects::{live_record, put_description};
use super::{decode_segment, headers, range, Access, Ctx, SwiftError};

/// Most segments one SLO manifest may list.
pub const MAX_MANIFEST_SEGMENTS: usize = 1000;
/// Largest SLO manifest body, in bytes.
pub const MAX_MANIFEST_SIZE: usize = 8 * 1024 * 1024;
/// Most segments a DLO is assembled from.
pub const MAX_DLO_SEGMENTS: usize = 10_000;
/// Deepest nesting of SLOs in SLOs (Swift's recursion limit).
pub const MAX_NESTING: usize = 10;
/// Most blob pieces one read may be assembled from (nested manifests multiply).
pub const MAX_PLAN_PIECES: usize = 100_000;

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
    /// The segment object's whole size (also when only a range of it is used).
    bytes: u64,
    hash: String,
    #[serde(default)]
    content_type: String,
    #[serde(default)]
    last_modified: String,
    /// `first-last` (inclusive) when only part of the segment is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    range: Option<String>,
    /// The segment is itself an SLO.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    sub_slo: bool,
}

fn md5_hex(data: &[u8]) -> String {
    hex::encode(Md5::digest(data))
}

fn conflict(message: impl Into<String>) -> SwiftError {
    SwiftError::text(StatusCode::CONFLICT, message)
}

/// `/container/object` (leading slashes optional, as Swift strips them) -> (container, object).
fn split_segment_path(path: &str) -> Option<(String, String)> {
    let (c, o) = path.trim_start_matches('/').split_once('/')?;
    if c.is_empty() || o.is_empty() {
        return None;
    }
    Some((c.to_string(), o.to_string()))
}

/// A segment's `range`: `a-b`, `a-` or `-n` (one range only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SegRange {
    From(u64, Option<u64>),
    Suffix(u64),
}

impl SegRange {
    fn parse(s: &str) -> Result<SegRange, &'static str> {
        let digits = |x: &str| {
            let x = x.trim();
            if x.is_empty() || !x.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            Some(x.parse::<u64>().unwrap_or(u64::MAX))
        };
        if s.contains(',') {
            return Err("multiple ranges (only one allowed)");
        }
        let (a, b) = s.split_once('-').ok_or("invalid range")?;
        match (a.trim().is_empty(), b.trim().is_empty()) {
            (true, true) => Err("invalid range"),
            (true, false) => Ok(SegRange::Suffix(digits(b).ok_or("invalid range")?)),
            (false, true) => Ok(SegRange::From(digits(a).ok_or("invalid range")?, None)),
            (false, false) => {
                let (a, b) = (
                    digits(a).ok_or("invalid range")?,
                    digits(b).ok_or("invalid range")?,
                );
                if b < a {
                    return Err("invalid range");
                }
                Ok(SegRange::From(a, Some(b)))
            }
        }
    }

    /// The inclusive `(first, last)` bytes of a `len`-byte segment, `None` when unsatisfiable.
    fn resolve(self, len: u64) -> Option<(u64, u64)> {
        let last = len.checked_sub(1)?;
        match self {
            SegRange::From(a, _) if a > last => None,
            SegRange::From(a, None) => Some((a, last)),
            SegRange::From(a, Some(b)) => Some((a, b.min(last))),
            SegRange::Suffix(0) => None,
            SegRange::Suffix(n) => Some((len.saturating_sub(n), last)),
        }
    }
}

/// The pieces covering `len` bytes from `start` of what `pieces` describe.
fn window(pieces: &[Piece], start: u64, len: u64) -> Vec<Piece> {
    let end = start + len;
    let mut out = Vec::new();
    let mut at = 0u64;
    for p in pieces {
        let (p_start, p_end) = (at, at + p.len);
        at = p_end;
        if p_end <= start || p_start >= end {
            continue;
        }
        let from = start.max(p_start);
        let to = end.min(p_end);
        out.push(Piece {
            blob: p.blob.clone(),
            offset: p.offset + (from - p_start),
            len: to - from,
        });
    }
    out
}

/// The read plan of `record` (object `name` in `container` of the request's account): a plain object is its
/// blob; a DLO is the objects under its manifest's prefix, in name order; an SLO is its manifest's segments.
/// `GET`/`HEAD ?multipart-manifest=get` of a DLO reads the manifest object itself.
pub async fn plan(
    ctx: &Ctx<'_>,
    _container: &str,
    _name: &str,
    record: &ObjectRecord,
) -> Result<Plan, SwiftError> {
    let reading = matches!(*ctx.req.method(), Method::GET | Method::HEAD);
    if reading && !record.static_large_object && ctx.param("multipart-manifest") == Some("get") {
        return Ok(blob_plan(record));
    }
    plan_at(ctx, record, 0).await
}

fn blob_plan(record: &ObjectRecord) -> Plan {
    Plan {
        pieces: vec![Piece {
            blob: record.blob.clone(),
            offset: 0,
            len: record.blob_size,
        }],
        size: record.blob_size,
        etag: record.blob_md5.clone(),
    }
}

/// The plan of `record` found `depth` manifests down.
fn plan_at<'a>(
    ctx: &'a Ctx<'_>,
    record: &'a ObjectRecord,
    depth: usize,
) -> LocalBoxFuture<'a, Result<Plan, SwiftError>> {
    async move {
        if record.static_large_object {
            return slo_plan(ctx, record, depth).await;
        }
        if let Some(manifest) = record.dlo_manifest() {
            return dlo_plan(ctx, manifest);
        }
        Ok(Plan {
            size: record.size,
            etag: record.etag.clone(),
            ..blob_plan(record)
        })
    }
    .boxed_local()
}

fn dlo_plan(ctx: &Ctx<'_>, manifest: &str) -> Result<Plan, SwiftError> {
    let decoded = decode_segment(manifest)?;
    let (container, prefix) = decoded
        .split_once('/')
        .filter(|(c, _)| !c.is_empty())
        .ok_or_else(|| {
            SwiftError::bad_request("X-Object-Manifest must be in the format container/prefix")
        })?;
    // Swift lists the segment container with the caller's credentials (a temp URL authorizes it).
    if !matches!(ctx.access, Access::TempUrl) && !ctx.may_list(container) {
        return Err(ctx.access.denied());
    }
    let now = chrono::Utc::now().timestamp().max(0) as u64;
    let view = ctx.service().view.snapshot();
    let c = view
        .container(&ctx.target.account, container)
        .ok_or_else(SwiftError::not_found)?;
    let mut pieces = Vec::new();
    let mut etags = String::new();
    let mut size = 0;
    let segments = c
        .objects
        .range::<_, str>((
            std::ops::Bound::Included(prefix),
            std::ops::Bound::Unbounded,
        ))
        .take_while(|(k, _)| k.starts_with(prefix))
        .filter(|(_, o)| o.delete_at().is_none_or(|at| at > now));
    for (_, o) in segments {
        if pieces.len() == MAX_DLO_SEGMENTS {
            return Err(conflict(format!(
                "Dynamic large object has more than {MAX_DLO_SEGMENTS} segments"
            )));
        }
        // A DLO reads its segments' stored bytes (a segment that is itself a manifest is not expanded).
        pieces.push(Piece {
            blob: o.blob.clone(),
            offset: 0,
            len: o.blob_size,
        });
        etags.push_str(&o.blob_md5);
        size += o.blob_size;
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

async fn slo_plan(ctx: &Ctx<'_>, record: &ObjectRecord, depth: usize) -> Result<Plan, SwiftError> {
    if depth >= MAX_NESTING {
        return Err(conflict("Max recursion depth exceeded"));
    }
    let segments = read_manifest(ctx, record).await?;
    let mut pieces = Vec::with_capacity(segments.len());
    let mut size = 0;
    for seg in &segments {
        let invalid = || conflict(format!("Object segment no longer valid: {}", seg.name));
        let (container, name) = split_segment_path(&seg.name)
            .ok_or_else(|| SwiftError::internal(format!("bad segment name {}", seg.name)))?;
        if !ctx.may_read(&container) {
            return Err(ctx.access.denied());
        }
        // A segment that is gone or was replaced makes the whole object unreadable (Swift answers 409).
        let current = live_record(ctx, &container, &name).ok_or_else(invalid)?;
        let sub = plan_at(ctx, &current, depth + 1).await?;
        if sub.etag != seg.hash {
            return Err(invalid());
        }
        let (offset, len) = match &seg.range {
            Some(r) => {
                let (first, last) = SegRange::parse(r)
                    .ok()
                    .and_then(|r| r.resolve(sub.size))
                    .ok_or_else(invalid)?;
                (first, last - first + 1)
            }
            None => (0, sub.size),
        };
        pieces.extend(window(&sub.pieces, offset, len));
        if pieces.len() > MAX_PLAN_PIECES {
            return Err(conflict(format!(
                "Large object has more than {MAX_PLAN_PIECES} pieces"
            )));
        }
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
#[derive(Debug)]
struct PutSegment {
    path: String,
    etag: Option<String>,
    size_bytes: Option<i64>,
    range: Option<SegRange>,
}

/// `size_bytes` as Python's `int()` reads it: an integer, a float (truncated) or a string of one.
fn size_value(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_u64().map(|u| i64::try_from(u).unwrap_or(i64::MAX)))
            .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64)),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        Value::Bool(b) => Some(i64::from(*b)),
        _ => None,
    }
}

/// Swift's `parse_and_validate_input`: the segments of a `multipart-manifest=put` body for the manifest
/// `container/name`, or 400 listing every problem (`Index N: ...`).
fn parse_put_manifest(
    body: &[u8],
    container: &str,
    name: &str,
) -> Result<Vec<PutSegment>, SwiftError> {
    let parsed: Value = serde_json::from_slice(body)
        .map_err(|_| SwiftError::bad_request("Manifest must be valid JSON.\n"))?;
    let Value::Array(list) = parsed else {
        return Err(SwiftError::bad_request("Manifest must be a list.\n"));
    };
    let mut errors: Vec<String> = Vec::new();
    let mut out = Vec::with_capacity(list.len());
    let last = list.len().saturating_sub(1);
    for (i, item) in list.iter().enumerate() {
        let Some(obj) = item.as_object() else {
            errors.push(format!("Index {i}: not a JSON object"));
            continue;
        };
        if obj.contains_key("data") {
            errors.push(format!("Index {i}: inline data segments are not supported"));
            continue;
        }
        if !obj.contains_key("path") {
            errors.push(format!(
                "Index {i}: expected keys to include one of 'data' or 'path'"
            ));
            continue;
        }
        let mut extraneous: Vec<&String> = obj
            .keys()
            .filter(|k| !matches!(k.as_str(), "path" | "etag" | "size_bytes" | "range"))
            .collect();
        if !extraneous.is_empty() {
            extraneous.sort();
            let listed: Vec<String> = extraneous
                .iter()
                .map(|k| Value::from(k.as_str()).to_string())
                .collect();
            errors.push(format!("Index {i}: extraneous keys {}", listed.join(", ")));
            continue;
        }
        let Some(path) = obj.get("path").and_then(Value::as_str) else {
            errors.push(format!("Index {i}: \"path\" must be a string"));
            continue;
        };
        let etag = match obj.get("etag") {
            None | Some(Value::Null) => None,
            Some(Value::String(e)) => Some(e.trim().trim_matches('"').to_ascii_lowercase()),
            Some(_) => {
                errors.push(format!(
                    "Index {i}: \"etag\" must be a string or null (if provided)"
                ));
                continue;
            }
        };
        if split_segment_path(path.trim_end_matches('/')).is_none() {
            errors.push(format!(
                "Index {i}: path does not refer to an object. Path must be of the form /container/object."
            ));
            continue;
        }
        let size_bytes = match obj.get("size_bytes") {
            None | Some(Value::Null) => None,
            Some(v) => match size_value(v) {
                Some(s) => Some(s),
                None => {
                    errors.push(format!("Index {i}: invalid size_bytes"));
                    continue;
                }
            },
        };
        if size_bytes.is_some_and(|s| s < 1) && i != last {
            errors.push(format!(
                "Index {i}: too small; each segment must be at least 1 byte."
            ));
            continue;
        }
        if split_segment_path(path) == Some((container.to_string(), name.to_string())) {
            errors.push(format!(
                "Index {i}: manifest must not include itself as a segment"
            ));
            continue;
        }
        let range = match obj.get("range") {
            None | Some(Value::Null) => None,
            Some(Value::String(r)) if r.is_empty() => None,
            Some(Value::String(r)) => match SegRange::parse(r) {
                Ok(r) => Some(r),
                Err(why) => {
                    errors.push(format!("Index {i}: {why}"));
                    continue;
                }
            },
            Some(_) => {
                errors.push(format!("Index {i}: invalid range"));
                continue;
            }
        };
        if let (Some(r), Some(s)) = (range, size_bytes) {
            if r.resolve(u64::try_from(s).unwrap_or(0)).is_none() {
                errors.push(format!("Index {i}: unsatisfiable range"));
                continue;
            }
        }
        out.push(PutSegment {
            path: path.to_string(),
            etag,
            size_bytes,
            range,
        });
    }
    if !errors.is_empty() {
        let text: String = errors.iter().map(|e| format!("{e}\n")).collect();
        return Err(SwiftError::bad_request(text));
    }
    Ok(out)
}

/// Swift's `config_true_value`.
fn true_value(v: Option<&str>) -> bool {
    v.is_some_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "true" | "1" | "yes" | "on" | "t" | "y"
        )
    })
}

/// How a checked segment enters the manifest: its stored form, the bytes it adds, and its ETag part.
fn check_segment(
    index: usize,
    last: usize,
    seg: &PutSegment,
    found: Result<(ObjectRecord, Plan), SwiftError>,
    problems: &mut Vec<(String, String)>,
) -> Option<(StoredSegment, u64)> {
    let quoted = quote(&seg.path);
    let (record, plan) = match found {
        Ok(f) => f,
        Err(e) => {
            problems.push((quoted, status_line(e.status)));
            return None;
        }
    };
    let length = plan.size;
    let before = problems.len();
    let mut used = length;
    let mut range = None;
    if let Some(r) = seg.range {
        match r.resolve(length) {
            None => problems.push((quoted.clone(), "Unsatisfiable Range".into())),
            Some((0, l)) if l + 1 == length => {}
            Some((first, l)) => {
                range = Some(format!("{first}-{l}"));
                used = l - first + 1;
            }
        }
    }
    if used < 1 && index != last {
        problems.push((
            quoted.clone(),
            "Too small; each segment must be at least 1 byte.".into(),
        ));
    }
    if seg
        .size_bytes
        .is_some_and(|s| u64::try_from(s).ok() != Some(length))
    {
        problems.push((quoted.clone(), "Size Mismatch".into()));
    }
    if seg.etag.as_ref().is_some_and(|e| *e != plan.etag) {
        problems.push((quoted, "Etag Mismatch".into()));
    }
    if problems.len() > before {
        return None;
    }
    let stored = StoredSegment {
        name: format!("/{}", seg.path.trim_start_matches('/')),
        bytes: length,
        hash: plan.etag,
        content_type: record.content_type.clone(),
        last_modified: listing_time(&record.timestamp),
        range,
        sub_slo: record.static_large_object,
    };
    Some((stored, used))
}

/// The ETag of an SLO: MD5 of its segments' ETags (`etag:range;` for a ranged one).
fn slo_etag(segments: &[StoredSegment]) -> String {
    let mut all = String::new();
    for s in segments {
        match &s.range {
            Some(r) => all.push_str(&format!("{}:{r};", s.hash)),
            None => all.push_str(&s.hash),
        }
    }
    md5_hex(all.as_bytes())
}

/// `PUT ?multipart-manifest=put`: validate and store an SLO manifest. With `heartbeat=on` the answer is
/// 202 whose body carries the outcome (Swift sends it after periodic whitespace; here it comes at once).
pub async fn put_manifest(ctx: &Ctx<'_>, body: web::Payload) -> Result<HttpResponse, SwiftError> {
    let container = ctx.target.container.clone().unwrap_or_default();
    let name = ctx.target.object.clone().unwrap_or_default();
    if ctx.header("x-copy-from").is_some() {
        return Err(SwiftError::text(
            StatusCode::METHOD_NOT_ALLOWED,
            "Multipart Manifest PUTs cannot be COPY requests",
        ));
    }
    let chunked = ctx
        .header("transfer-encoding")
        .is_some_and(|t| t.to_ascii_lowercase().contains("chunked"));
    match ctx
        .header("content-length")
        .map(|l| l.trim().parse::<u64>())
    {
        None if !chunked => return Err(SwiftError::length_required()),
        Some(Ok(l)) if l > MAX_MANIFEST_SIZE as u64 => {
            return Err(SwiftError::too_large(format!(
                "Manifest File > {MAX_MANIFEST_SIZE} bytes"
            )))
        }
        _ => {}
    }
    let body = read_body(body, MAX_MANIFEST_SIZE, "Manifest File").await?;
    let segments = parse_put_manifest(&body, &container, &name)?;
    if segments.len() > MAX_MANIFEST_SEGMENTS {
        return Err(SwiftError::too_large(format!(
            "Number of object-backed segments must be <= {MAX_MANIFEST_SEGMENTS}"
        )));
    }
    let format = Some(bulk::out_format(ctx).unwrap_or("text/plain"));
    let heartbeat = true_value(ctx.param("heartbeat"));
    let mut put = put_description(ctx, &container, &name)?;

    // Look every distinct segment up once (Swift HEADs each path).
    let mut found: BTreeMap<&str, Result<(ObjectRecord, Plan), SwiftError>> = BTreeMap::new();
    for seg in &segments {
        if found.contains_key(seg.path.as_str()) {
            continue;
        }
        let lookup = async {
            let (c, o) = split_segment_path(&seg.path).ok_or_else(SwiftError::not_found)?;
            if !ctx.may_read(&c) {
                return Err(ctx.access.denied());
            }
            let record = live_record(ctx, &c, &o).ok_or_else(SwiftError::not_found)?;
            let plan = plan_at(ctx, &record, 1).await?;
            Ok((record, plan))
        };
        let result = lookup.await;
        found.insert(seg.path.as_str(), result);
    }
    let mut problems: Vec<(String, String)> = Vec::new();
    let mut stored = Vec::with_capacity(segments.len());
    let mut total = 0u64;
    let last = segments.len().saturating_sub(1);
    for (i, seg) in segments.iter().enumerate() {
        let lookup = found
            .get(seg.path.as_str())
            .cloned()
            .unwrap_or_else(|| Err(SwiftError::not_found()));
        if let Some((s, used)) = check_segment(i, last, seg, lookup, &mut problems) {
            total += used;
            stored.push(s);
        }
    }
    if !problems.is_empty() {
        let bad = StatusCode::BAD_REQUEST;
        if heartbeat {
            let fields = [
                ("Response Status", Value::from(status_line(bad))),
                ("Response Body", Value::from("Bad Request\nThe server could not comply with the request since it is either malformed or otherwise incorrect.")),
            ];
            return Ok(heartbeat_response(format, &fields, &problems));
        }
        return Ok(HttpResponse::build(bad)
            .content_type(bulk::content_type(format))
            .body(response_body(format, &[], &problems, "upload")));
    }
    let etag = slo_etag(&stored);
    if put.etag.as_ref().is_some_and(|e| *e != etag) {
        if heartbeat {
            let fields = [
                (
                    "Response Status",
                    Value::from(status_line(StatusCode::UNPROCESSABLE_ENTITY)),
                ),
                (
                    "Response Body",
                    Value::from(
                        "Unprocessable Entity\nUnable to process the contained instructions",
                    ),
                ),
            ];
            return Ok(heartbeat_response(format, &fields, &[]));
        }
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
        etag: etag.clone(),
        content_type: put.content_type.clone(),
        timestamp: now_timestamp(),
        blob: blob.id.clone(),
        blob_size: blob.size,
        blob_md5: blob.md5.clone(),
        headers: put.headers.clone(),
        static_large_object: true,
    };
    let result = ctx
        .service()
        .store_with_blob(&put, record, &blob, ctx.meta())
        .await;
    let quoted_etag = format!("\"{etag}\"");
    if heartbeat {
        let fields = match result {
            Ok(s) => vec![
                (
                    "Response Status",
                    Value::from(status_line(StatusCode::CREATED)),
                ),
                ("Response Body", Value::from("")),
                ("Etag", Value::from(quoted_etag)),
                (
                    "Last Modified",
                    Value::from(range::http_date(
                        timestamp_secs(&s.record.timestamp).ceil() as i64
                    )),
                ),
            ],
            Err(e) => {
                let e = SwiftError::from(e);
                vec![
                    ("Response Status", Value::from(status_line(e.status))),
                    ("Response Body", Value::from(e.body)),
                ]
            }
        };
        return Ok(heartbeat_response(format, &fields, &[]));
    }
    let stored = result?;
    Ok(HttpResponse::Created()
        .insert_header(("etag", quoted_etag))
        .insert_header((
            "last-modified",
            range::http_date(timestamp_secs(&stored.record.timestamp).ceil() as i64),
        ))
        .content_type("text/html; charset=UTF-8")
        .finish())
}

/// 202 with the outcome in the body, after Swift's first heartbeat and separator.
fn heartbeat_response(
    format: Option<&str>,
    fields: &[(&str, Value)],
    errors: &[(String, String)],
) -> HttpResponse {
    HttpResponse::Accepted()
        .content_type(bulk::content_type(format))
        .body(format!(
            " \r\n\r\n{}",
            response_body(format, fields, errors, "upload")
        ))
}

/// `GET ?multipart-manifest=get` on an SLO: its stored manifest as JSON (`&format=raw`: in the PUT form,
/// with the object's own content type, as Swift answers it so that the manifest can be PUT back).
pub async fn get_manifest(
    ctx: &Ctx<'_>,
    record: &ObjectRecord,
) -> Result<HttpResponse, SwiftError> {
    let bytes = ctx
        .service()
        .blobs
        .read_to_vec(&record.blob)
        .await
        .map_err(SwiftError::internal)?;
    let mut builder = HttpResponse::Ok();
    let temp = matches!(ctx.access, Access::TempUrl);
    let shown: BTreeMap<String, String> = record
        .headers
        .iter()
        .filter(|(k, _)| {
            !temp || !k.starts_with("x-object-meta-") || k.starts_with("x-object-meta-public-")
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    headers::emit(&mut builder, &shown);
    builder
        .insert_header(("x-static-large-object", "True"))
        .insert_header(("accept-ranges", "bytes"))
        .insert_header(("x-timestamp", record.timestamp.clone()))
        .insert_header((
            "last-modified",
            range::http_date(timestamp_secs(&record.timestamp).ceil() as i64),
        ));
    if ctx.param("format") == Some("raw") {
        let segments: Vec<StoredSegment> = serde_json::from_slice(&bytes)
            .map_err(|e| SwiftError::internal(format!("stored SLO manifest: {e}")))?;
        // Keys sorted, as Swift's json.dumps(sort_keys=True).
        let raw: Vec<BTreeMap<&str, Value>> = segments
            .iter()
            .map(|s| {
                let mut m = BTreeMap::new();
                m.insert("etag", Value::from(s.hash.clone()));
                m.insert("path", Value::from(s.name.clone()));
                m.insert("size_bytes", Value::from(s.bytes));
                if let Some(r) = &s.range {
                    m.insert("range", Value::from(r.clone()));
                }
                m
            })
            .collect();
        let body = serde_json::to_vec(&raw).map_err(SwiftError::internal)?;
        return Ok(builder
            .content_type(record.content_type.clone())
            .insert_header(("etag", md5_hex(&body)))
            .body(body));
    }
    Ok(builder
        .content_type("application/json; charset=utf-8")
        .insert_header(("etag", record.blob_md5.clone()))
        .body(bytes))
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

/// Why the segments of a manifest to delete could not be listed: (status, message).
async fn segments_to_delete(
    ctx: &Ctx<'_>,
    path: &str,
) -> Result<Vec<StoredSegment>, (StatusCode, String)> {
    let Some((container, name)) = split_segment_path(path) else {
        return Err((StatusCode::BAD_REQUEST, "Invalid segment path".into()));
    };
    if !ctx.may_read(&container) {
        let e = ctx.access.denied();
        return Err((e.status, status_line(e.status)));
    }
    let Some(record) = live_record(ctx, &container, &name) else {
        return Err((StatusCode::NOT_FOUND, "SLO manifest not found".into()));
    };
    if !record.static_large_object {
        return Err((StatusCode::BAD_REQUEST, "Not an SLO manifest".into()));
    }
    read_manifest(ctx, &record).await.map_err(|_| {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "Unable to load SLO manifest".into(),
        )
    })
}

/// `DELETE ?multipart-manifest=delete`: an SLO's segments (nested SLOs' segments too), then the manifest,
/// answered like a bulk delete (200, the outcome in the body). Another object is not deleted ("Not an SLO
/// manifest").
pub async fn delete_manifest(ctx: &Ctx<'_>) -> Result<HttpResponse, SwiftError> {
    let container = ctx.target.container.clone().unwrap_or_default();
    let name = ctx.target.object.clone().unwrap_or_default();
    let format = bulk::out_format(ctx);
    let mut report = DeleteReport::default();
    if format.is_none() {
        report.stop(StatusCode::NOT_ACCEPTABLE, "");
        return Ok(report.respond(format));
    }
    struct Item {
        name: String,
        sub_slo: bool,
        error: Option<(StatusCode, String)>,
    }
    // Swift's order: a manifest's segments, then the manifest itself (pushed back after them).
    let mut queue = VecDeque::from([Item {
        name: format!("/{container}/{name}"),
        sub_slo: true,
        error: None,
    }]);
    while let Some(mut item) = queue.pop_front() {
        if queue.len() > MAX_MANIFEST_SEGMENTS * 10 {
            report.stop(
                StatusCode::BAD_REQUEST,
                "Too many buffered slo segments to delete.",
            );
            break;
        }
        if item.sub_slo {
            match segments_to_delete(ctx, &item.name).await {
                Ok(segments) => queue.extend(segments.into_iter().map(|s| Item {
                    name: s.name,
                    sub_slo: s.sub_slo,
                    error: None,
                })),
                Err(e) => item.error = Some(e),
            }
            item.sub_slo = false;
            queue.push_back(item);
            continue;
        }
        match item.error {
            Some((StatusCode::NOT_FOUND, _)) => report.not_found += 1,
            Some((_, message)) => report.fail(&item.name, message),
            None => {
                let result = match split_segment_path(&item.name) {
                    Some((c, o)) => delete_one(ctx, &c, &o, "slo-delete").await,
                    None => Err(SwiftError::bad_request("Invalid segment path")),
                };
                report.record(&item.name, result);
            }
        }
        if report.gave_up() {
            break;
        }
    }
    Ok(report.respond(format))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &[u8]) -> Result<Vec<PutSegment>, SwiftError> {
        parse_put_manifest(body, "c", "manifest")
    }

    #[test]
    fn manifests_are_checked_for_shape() {
        let ok = br#"[{"path": "/c/o", "etag": "\"ABC\"", "size_bytes": 3}, {"path": "c/p", "range": "0-1", "size_bytes": "2"}]"#;
        let segs = parse(ok).unwrap();
        assert_eq!(segs[0].etag.as_deref(), Some("abc"));
        assert_eq!(segs[1].range, Some(SegRange::From(0, Some(1))));
        assert_eq!(segs[1].size_bytes, Some(2));
        assert!(
            parse(b"[]").unwrap().is_empty(),
            "Swift accepts an empty manifest"
        );
        for (bad, why) in [
            (&b"{}"[..], "Manifest must be a list."),
            (b"not json", "Manifest must be valid JSON."),
            (
                br#"[{"etag": "x"}]"#,
                "Index 0: expected keys to include one of 'data' or 'path'",
            ),
            (
                br#"[{"path": "/c/o", "size_bytes": "3x"}]"#,
                "Index 0: invalid size_bytes",
            ),
            (
                br#"[{"path": "/c/o", "color": 1, "age": 2}]"#,
                "Index 0: extraneous keys \"age\", \"color\"",
            ),
            (
                br#"[{"path": "/c"}]"#,
                "Index 0: path does not refer to an object",
            ),
            (
                br#"[{"path": "/c/manifest"}]"#,
                "Index 0: manifest must not include itself",
            ),
            (
                br#"[{"path": "/c/o", "size_bytes": 0}, {"path": "/c/p"}]"#,
                "Index 0: too small",
            ),
            (
                br#"[{"path": "/c/o", "range": "1-2,4-5"}]"#,
                "Index 0: multiple ranges",
            ),
            (
                br#"[{"path": "/c/o", "range": "5-2"}]"#,
                "Index 0: invalid range",
            ),
            (
                br#"[{"path": "/c/o", "range": "5-9", "size_bytes": 5}]"#,
                "Index 0: unsatisfiable range",
            ),
            (
                br#"[{"data": "AAAA"}]"#,
                "Index 0: inline data segments are not supported",
            ),
            (
                br#"[1, {"path": 2}]"#,
                "Index 0: not a JSON object\nIndex 1: \"path\" must be a string\n",
            ),
        ] {
            let Err(e) = parse(bad) else {
                panic!("accepted: {}", String::from_utf8_lossy(bad))
            };
            assert_eq!(e.status, StatusCode::BAD_REQUEST);
            assert!(
                e.body.contains(why),
                "{}: {}",
                String::from_utf8_lossy(bad),
                e.body
            );
        }
        // The last segment may be empty.
        assert!(parse(
            br#"[{"path": "/c/o", "size_bytes": 1}, {"path": "/c/p", "size_bytes": 0}]"#
        )
        .is_ok());
        assert_eq!(
            split_segment_path("/c/a/b"),
            Some(("c".into(), "a/b".into()))
        );
        assert_eq!(split_segment_path("c/o"), Some(("c".into(), "o".into())));
        assert_eq!(split_segment_path("/c/"), None);
    }

    #[test]
    fn segment_ranges_resolve_like_swob() {
        let r = |s: &str| SegRange::parse(s).unwrap();
        assert_eq!(r("2-5").resolve(10), Some((2, 5)));
        assert_eq!(r("2-50").resolve(10), Some((2, 9)));
        assert_eq!(r("7-").resolve(10), Some((7, 9)));
        assert_eq!(r("-3").resolve(10), Some((7, 9)));
        assert_eq!(r("-30").resolve(10), Some((0, 9)));
        assert_eq!(r("10-12").resolve(10), None);
        assert_eq!(r("-0").resolve(10), None);
        assert_eq!(r("0-0").resolve(0), None);
        assert!(SegRange::parse("-").is_err());
        assert!(SegRange::parse("a-b").is_err());
    }

    fn stored(hash: &str, range: Option<&str>) -> StoredSegment {
        StoredSegment {
            name: "/c/o".into(),
            bytes: 10,
            hash: hash.into(),
            content_type: String::new(),
            last_modified: String::new(),
            range: range.map(str::to_string),
            sub_slo: false,
        }
    }

    #[test]
    fn slo_etags_mark_ranges() {
        let plain = slo_etag(&[stored("aa", None), stored("bb", None)]);
        assert_eq!(plain, md5_hex(b"aabb"));
        let ranged = slo_etag(&[stored("aa", Some("1-2")), stored("bb", None)]);
        assert_eq!(ranged, md5_hex(b"aa:1-2;bb"));
    }

    #[test]
    fn checked_segments_normalize_ranges_and_collect_problems() {
        let record = ObjectRecord {
            size: 10,
            etag: "e".into(),
            blob: "b".into(),
            blob_size: 10,
            ..Default::default()
        };
        let plan = Plan {
            pieces: vec![],
            size: 10,
            etag: "e".into(),
        };
        let seg = |etag: Option<&str>, size: Option<i64>, range: Option<&str>| PutSegment {
            path: "/c/a b".into(),
            etag: etag.map(str::to_string),
            size_bytes: size,
            range: range.map(|r| SegRange::parse(r).unwrap()),
        };
        let mut problems = Vec::new();
        let (s, used) = check_segment(
            0,
            1,
            &seg(Some("e"), Some(10), Some("-4")),
            Ok((record.clone(), plan.clone())),
            &mut problems,
        )
        .unwrap();
        assert_eq!((s.range.as_deref(), s.bytes, used), (Some("6-9"), 10, 4));
        let (s, used) = check_segment(
            0,
            1,
            &seg(None, None, Some("0-")),
            Ok((record.clone(), plan.clone())),
            &mut problems,
        )
        .unwrap();
        assert_eq!(
            (s.range, used),
            (None, 10),
            "a range of the whole object is dropped"
        );
        assert!(problems.is_empty());
        assert!(check_segment(
            0,
            1,
            &seg(Some("x"), Some(3), None),
            Ok((record.clone(), plan.clone())),
            &mut problems
        )
        .is_none());
        assert_eq!(
            problems,
            vec![
                ("/c/a%20b".to_string(), "Size Mismatch".to_string()),
                ("/c/a%20b".to_string(), "Etag Mismatch".to_string())
            ]
        );
        problems.clear();
        assert!(check_segment(
            0,
            1,
            &seg(None, None, None),
            Err(SwiftError::not_found()),
            &mut problems
        )
        .is_none());
        assert_eq!(problems[0].1, "404 Not Found");
    }

    #[test]
    fn windows_cut_across_pieces() {
        let pieces: Vec<Piece> = (0..3)
            .map(|i| Piece {
                blob: format!("b{i}"),
                offset: 10,
                len: 5,
            })
            .collect();
        assert_eq!(window(&pieces, 0, 15), pieces);
        assert_eq!(
            window(&pieces, 3, 5),
            vec![
                Piece {
                    blob: "b0".into(),
                    offset: 13,
                    len: 2
                },
                Piece {
                    blob: "b1".into(),
                    offset: 10,
                    len: 3
                }
            ]
        );
        assert!(window(&pieces, 15, 0).is_empty());
    }
}
