//! Object requests: GET and HEAD (ranges, multiple ranges, conditional headers, large objects), PUT (streamed,
//! chunked too, ETag checked, `If-None-Match: *`, `X-Copy-From`), POST (metadata), DELETE, COPY.

use std::collections::BTreeMap;

use actix_web::body::SizedStream;
use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpResponse, HttpResponseBuilder};
use bytes::Bytes;
use futures::{stream, Stream, StreamExt, TryStreamExt};
use strata_actors::object::ObjectRecord;
use strata_object::service::timestamp_secs;
use strata_object::{ObjectService, PutObject};

use super::large::{self, Piece, Plan};
use super::range::{self, Condition, RangeOutcome, Validators};
use super::{decode_segment, headers, Access, Ctx, SwiftError};

type BodyStream = std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>>>>;

pub async fn handle(ctx: &Ctx<'_>, body: web::Payload) -> Result<HttpResponse, SwiftError> {
    let container = ctx.target.container.clone().unwrap_or_default();
    let name = ctx.target.object.clone().unwrap_or_default();
    let exists = ctx
        .service()
        .view
        .snapshot()
        .container(&ctx.target.account, &container)
        .is_some();
    let method = ctx.req.method().clone();
    let reading = method == Method::GET || method == Method::HEAD;
    let allowed = if reading {
        ctx.may_read(&container)
    } else {
        ctx.may_write(&container)
    };
    if !allowed {
        return Err(ctx.access.denied());
    }
    if matches!(ctx.access, Access::TempUrl) && !tempurl_method_allowed(&method) {
        return Err(SwiftError::unauthorized());
    }
    if !exists {
        return Err(SwiftError::not_found());
    }
    match method.as_str() {
        "GET" | "HEAD" => get(ctx, &container, &name).await,
        "PUT" => {
            if ctx.param("multipart-manifest") == Some("put") {
                return large::put_manifest(ctx, body).await;
            }
            if let Some(from) = ctx.header("x-copy-from") {
                let (src_container, src_name) = split_copy_path(from)?;
                return copy(ctx, &src_container, &src_name, &container, &name).await;
            }
            put(ctx, &container, &name, body).await
        }
        "POST" => post(ctx, &container, &name).await,
        "DELETE" => {
            if ctx.param("multipart-manifest") == Some("delete") {
                return large::delete_manifest(ctx).await;
            }
            ctx.service()
                .delete_object(
                    &ctx.target.account,
                    &container,
                    &name,
                    "delete",
                    None,
                    ctx.meta(),
                )
                .await?;
            Ok(HttpResponse::NoContent()
                .content_type("text/html; charset=UTF-8")
                .finish())
        }
        "COPY" => {
            let dest = ctx
                .header("destination")
                .ok_or_else(|| SwiftError::precondition_failed("Destination header required"))?
                .to_string();
            let (dst_container, dst_name) = split_copy_path(&dest)?;
            if !ctx.may_write(&dst_container) {
                return Err(ctx.access.denied());
            }
            copy(ctx, &container, &name, &dst_container, &dst_name).await
        }
        _ => Err(SwiftError::method_not_allowed()),
    }
}

fn tempurl_method_allowed(m: &Method) -> bool {
    matches!(m.as_str(), "GET" | "HEAD" | "PUT" | "POST" | "DELETE")
}

/// `container/object` of X-Copy-From or Destination (percent-encoded, an optional leading '/').
fn split_copy_path(raw: &str) -> Result<(String, String), SwiftError> {
    let decoded = decode_segment(raw.trim_start_matches('/'))?;
    match decoded.split_once('/') {
        Some((c, o)) if !c.is_empty() && !o.is_empty() => Ok((c.to_string(), o.to_string())),
        _ => Err(SwiftError::precondition_failed(
            "X-Copy-From header must be of the form <container name>/<object name>",
        )),
    }
}

/// The live record of an object (an expired one is gone).
pub fn live_record(ctx: &Ctx<'_>, container: &str, name: &str) -> Option<ObjectRecord> {
    let now = chrono::Utc::now().timestamp().max(0) as u64;
    ctx.service()
        .view
        .snapshot()
        .object(&ctx.target.account, container, name)
        .filter(|o| o.delete_at().is_none_or(|at| at > now))
        .cloned()
}

/// The headers every GET/HEAD of an object carries (not Content-Length / ETag, which depend on the plan).
fn object_headers(builder: &mut HttpResponseBuilder, ctx: &Ctx<'_>, record: &ObjectRecord) {
    let secs = timestamp_secs(&record.timestamp);
    builder
        .insert_header(("accept-ranges", "bytes"))
        .insert_header(("last-modified", range::http_date(secs.ceil() as i64)))
        .insert_header(("x-timestamp", record.timestamp.clone()));
    let temp = matches!(ctx.access, Access::TempUrl);
    let shown: BTreeMap<String, String> = record
        .headers
        .iter()
        // Temp URL responses hide user metadata but x-object-meta-public-* (Swift's outgoing filter).
        .filter(|(k, _)| {
            !temp || !k.starts_with("x-object-meta-") || k.starts_with("x-object-meta-public-")
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    headers::emit(builder, &shown);
    if record.static_large_object {
        builder.insert_header(("x-static-large-object", "True"));
    }
}

/// GET and HEAD.
async fn get(ctx: &Ctx<'_>, container: &str, name: &str) -> Result<HttpResponse, SwiftError> {
    let record = live_record(ctx, container, name).ok_or_else(SwiftError::not_found)?;
    let head = *ctx.req.method() == Method::HEAD;
    if record.static_large_object && ctx.param("multipart-manifest") == Some("get") {
        return large::get_manifest(ctx, &record).await;
    }
    let plan = large::plan(ctx, container, name, &record).await?;
    // `?multipart-manifest=get` of a DLO reads the manifest object itself (an SLO's was answered above).
    let large_object = (record.static_large_object || record.dlo_manifest().is_some())
        && ctx.param("multipart-manifest") != Some("get");
    let etag_header = if large_object {
        format!("\"{}\"", plan.etag)
    } else {
        plan.etag.clone()
    };
    let validators = Validators {
        etag: &plan.etag,
        last_modified: timestamp_secs(&record.timestamp).ceil() as i64,
    };
    let h = ctx.req.headers();
    let condition = range::evaluate(
        true,
        headers::get(h, "if-match"),
        headers::get(h, "if-none-match"),
        headers::get(h, "if-modified-since"),
        headers::get(h, "if-unmodified-since"),
        &validators,
    );
    let mut builder = HttpResponse::Ok();
    object_headers(&mut builder, ctx, &record);
    builder.insert_header(("etag", etag_header));
    if matches!(ctx.access, Access::TempUrl) && !head {
        if let Some(q) = super::tempurl::TempUrlQuery::from_query(&ctx.query) {
            if let Some(d) = super::tempurl::disposition(&q, name) {
                builder.insert_header(("content-disposition", d));
            }
        }
    }
    match condition {
        Condition::Proceed => {}
        Condition::NotModified => {
            return Ok(builder.status(StatusCode::NOT_MODIFIED).finish());
        }
        Condition::PreconditionFailed => {
            return Ok(builder
                .status(StatusCode::PRECONDITION_FAILED)
                .content_type("text/html; charset=UTF-8")
                .body("<html><h1>Precondition Failed</h1><p>A precondition for this request was not met.</p></html>"));
        }
    }
    let ranges = match ctx.header("range") {
        Some(r) => range::parse_range(r, plan.size),
        None => RangeOutcome::Full,
    };
    let content_type = record.content_type.clone();
    match ranges {
        RangeOutcome::Unsatisfiable => {
            builder.status(StatusCode::RANGE_NOT_SATISFIABLE);
            builder.insert_header(("content-range", format!("bytes */{}", plan.size)));
            Ok(builder
                .content_type("text/html; charset=UTF-8")
                .body("<html><h1>Requested Range Not Satisfiable</h1><p>The Range requested is not available.</p></html>"))
        }
        RangeOutcome::Full => {
            builder.content_type(content_type);
            let body = if head {
                empty()
            } else {
                read_window(ctx.store.service.clone(), &plan, 0, plan.size)
            };
            Ok(builder.body(SizedStream::new(plan.size, body)))
        }
        RangeOutcome::Ranges(rs) if rs.len() == 1 => {
            let (start, end) = rs[0];
            builder.status(StatusCode::PARTIAL_CONTENT);
            builder.content_type(content_type);
            builder.insert_header((
                "content-range",
                format!("bytes {start}-{end}/{}", plan.size),
            ));
            let len = end - start + 1;
            let body = if head {
                empty()
            } else {
                read_window(ctx.store.service.clone(), &plan, start, len)
            };
            Ok(builder.body(SizedStream::new(len, body)))
        }
        RangeOutcome::Ranges(rs) => {
            let boundary = range::boundary_from(&format!("{}{}", record.blob, ctx.request_id));
            let total = range::multipart_length(&boundary, &content_type, &rs, plan.size);
            builder.status(StatusCode::PARTIAL_CONTENT);
            builder.content_type(format!("multipart/byteranges;boundary={boundary}"));
            if head {
                return Ok(builder.body(SizedStream::new(total, empty())));
            }
            let mut parts: Vec<BodyStream> = Vec::new();
            for (i, (start, end)) in rs.iter().enumerate() {
                let mut head = String::new();
                if i > 0 {
                    head.push_str(range::PART_SEPARATOR);
                }
                head.push_str(&range::multipart_head(
                    &boundary,
                    &content_type,
                    *start,
                    *end,
                    plan.size,
                ));
                parts.push(Box::pin(stream::once(async move { Ok(Bytes::from(head)) })));
                parts.push(read_window(
                    ctx.store.service.clone(),
                    &plan,
                    *start,
                    end - start + 1,
                ));
            }
            let tail = range::multipart_tail(&boundary);
            parts.push(Box::pin(stream::once(async move { Ok(Bytes::from(tail)) })));
            Ok(builder.body(SizedStream::new(total, stream::iter(parts).flatten())))
        }
    }
}

fn empty() -> BodyStream {
    Box::pin(stream::empty())
}

/// The pieces of `plan` covering `len` bytes from `start` of the object.
fn window(plan: &Plan, start: u64, len: u64) -> Vec<Piece> {
    let mut out = Vec::new();
    let end = start + len;
    let mut at = 0u64;
    for p in &plan.pieces {
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

/// Stream `len` bytes from `start` of the object the plan describes, one blob after another.
fn read_window(
    service: std::sync::Arc<ObjectService>,
    plan: &Plan,
    start: u64,
    len: u64,
) -> BodyStream {
    let pieces = window(plan, start, len);
    let s = stream::iter(pieces)
        .then(move |piece| {
            let service = service.clone();
            async move {
                service
                    .blobs
                    .read(&piece.blob, piece.offset, piece.len)
                    .await
                    .map(|s| s.map_err(std::io::Error::other))
                    .map_err(std::io::Error::other)
            }
        })
        .try_flatten();
    Box::pin(s)
}

/// The Content-Type a PUT records: given, or guessed from the name (also when X-Detect-Content-Type asks).
fn content_type_for(ctx: &Ctx<'_>, name: &str) -> String {
    let detect = ctx
        .header("x-detect-content-type")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    match ctx.header("content-type") {
        Some(ct) if !detect && !ct.is_empty() => ct.to_string(),
        _ => headers::guess_content_type(name).to_string(),
    }
}

fn if_none_match(ctx: &Ctx<'_>) -> Result<bool, SwiftError> {
    match ctx.header("if-none-match") {
        None => Ok(false),
        Some("*") => Ok(true),
        Some(_) => Err(SwiftError::bad_request("If-None-Match only supports *")),
    }
}

/// The PUT description of a request for `container/name`.
pub fn put_description(
    ctx: &Ctx<'_>,
    container: &str,
    name: &str,
) -> Result<PutObject, SwiftError> {
    let now = chrono::Utc::now().timestamp();
    let etag = ctx
        .header("etag")
        .map(|e| e.trim_matches('"').to_ascii_lowercase());
    let content_length = match ctx.header("content-length") {
        Some(l) => Some(
            l.trim()
                .parse::<u64>()
                .map_err(|_| SwiftError::bad_request("Invalid Content-Length"))?,
        ),
        None => None,
    };
    Ok(PutObject {
        account: ctx.target.account.clone(),
        container: container.into(),
        name: name.into(),
        content_type: content_type_for(ctx, name),
        headers: headers::object_headers(ctx.req.headers(), now)?,
        etag,
        if_none_match: if_none_match(ctx)?,
        content_length,
    })
}

fn created(record: &ObjectRecord, quoted: bool) -> HttpResponse {
    let etag = if quoted {
        format!("\"{}\"", record.etag)
    } else {
        record.etag.clone()
    };
    HttpResponse::Created()
        .insert_header(("etag", etag))
        .insert_header((
            "last-modified",
            range::http_date(timestamp_secs(&record.timestamp).ceil() as i64),
        ))
        .content_type("text/html; charset=UTF-8")
        .finish()
}

async fn put(
    ctx: &Ctx<'_>,
    container: &str,
    name: &str,
    body: web::Payload,
) -> Result<HttpResponse, SwiftError> {
    let chunked = ctx
        .header("transfer-encoding")
        .is_some_and(|t| t.to_ascii_lowercase().contains("chunked"));
    if ctx.header("content-length").is_none() && !chunked {
        return Err(SwiftError::length_required());
    }
    let put = put_description(ctx, container, name)?;
    let stored = ctx.service().put_object(put, body, ctx.meta()).await?;
    Ok(created(&stored.record, false))
}

async fn post(ctx: &Ctx<'_>, container: &str, name: &str) -> Result<HttpResponse, SwiftError> {
    let record = live_record(ctx, container, name).ok_or_else(SwiftError::not_found)?;
    let now = chrono::Utc::now().timestamp();
    let mut new_headers = headers::object_headers(ctx.req.headers(), now)?;
    // A POST replaces user metadata; the manifest of a DLO stays unless the POST names a new one.
    if let Some(m) = record.dlo_manifest() {
        new_headers
            .entry("x-object-manifest".into())
            .or_insert_with(|| m.to_string());
    }
    let content_type = ctx.header("content-type").unwrap_or("").to_string();
    ctx.service()
        .post_object(
            &ctx.target.account,
            container,
            name,
            new_headers,
            content_type,
            ctx.meta(),
        )
        .await?;
    Ok(HttpResponse::Accepted()
        .content_type("text/html; charset=UTF-8")
        .finish())
}

/// Copy `src` to `dst` within the account (COPY, or PUT with X-Copy-From). A large object is copied as its
/// assembled bytes (unless `multipart-manifest=get` asks for the manifest itself); a plain one shares its
/// bytes through a hard-linked blob. Metadata comes from the source, overridden by the request's, or only
/// from the request with `X-Fresh-Metadata: true`.
async fn copy(
    ctx: &Ctx<'_>,
    src_container: &str,
    src_name: &str,
    dst_container: &str,
    dst_name: &str,
) -> Result<HttpResponse, SwiftError> {
    if !ctx.may_read(src_container) {
        return Err(ctx.access.denied());
    }
    if ctx
        .service()
        .view
        .snapshot()
        .container(&ctx.target.account, dst_container)
        .is_none()
    {
        return Err(SwiftError::not_found());
    }
    let source = live_record(ctx, src_container, src_name).ok_or_else(SwiftError::not_found)?;
    let now = chrono::Utc::now().timestamp();
    let requested = headers::object_headers(ctx.req.headers(), now)?;
    let fresh = ctx
        .header("x-fresh-metadata")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let mut merged = if fresh {
        BTreeMap::new()
    } else {
        source
            .headers
            .iter()
            .filter(|(k, _)| k.as_str() != "x-delete-at")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    merged.extend(requested);
    let content_type = match ctx.header("content-type") {
        Some(ct) if !ct.is_empty() => ct.to_string(),
        _ => source.content_type.clone(),
    };
    let large_object = source.static_large_object || source.dlo_manifest().is_some();
    let keep_manifest = ctx.param("multipart-manifest") == Some("get");
    let to = PutObject {
        account: ctx.target.account.clone(),
        container: dst_container.into(),
        name: dst_name.into(),
        content_type,
        headers: merged,
        etag: None,
        if_none_match: if_none_match(ctx)?,
        content_length: None,
    };
    let stored = if large_object && !keep_manifest {
        let plan = large::plan(ctx, src_container, src_name, &source).await?;
        let mut to = to;
        to.headers.remove("x-object-manifest");
        to.content_length = Some(plan.size);
        let body = read_window(ctx.store.service.clone(), &plan, 0, plan.size);
        ctx.service().put_object(to, body, ctx.meta()).await?
    } else {
        ctx.service().copy_object(&source, to, ctx.meta()).await?
    };
    let mut res = created(&stored.record, stored.record.static_large_object);
    let headers = res.headers_mut();
    if let Ok(v) = actix_web::http::header::HeaderValue::from_str(&format!(
        "{src_container}/{}",
        crate::common::encode(src_name).replace("%2F", "/")
    )) {
        headers.insert(
            actix_web::http::header::HeaderName::from_static("x-copied-from"),
            v,
        );
    }
    if let Ok(v) = actix_web::http::header::HeaderValue::from_str(&range::http_date(
        timestamp_secs(&source.timestamp).ceil() as i64,
    )) {
        headers.insert(
            actix_web::http::header::HeaderName::from_static("x-copied-from-last-modified"),
            v,
        );
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(sizes: &[u64]) -> Plan {
        Plan {
            pieces: sizes
                .iter()
                .enumerate()
                .map(|(i, s)| Piece {
                    blob: format!("b{i}"),
                    offset: 10,
                    len: *s,
                })
                .collect(),
            size: sizes.iter().sum(),
            etag: String::new(),
        }
    }

    #[test]
    fn windows_cut_across_segments() {
        let p = plan(&[5, 5, 5]);
        assert_eq!(window(&p, 0, 15).len(), 3);
        let w = window(&p, 3, 5);
        assert_eq!(
            w,
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
                },
            ]
        );
        assert_eq!(
            window(&p, 14, 1),
            vec![Piece {
                blob: "b2".into(),
                offset: 14,
                len: 1
            }]
        );
        assert!(window(&p, 15, 0).is_empty());
    }

    #[test]
    fn copy_paths_need_a_container_and_an_object() {
        assert_eq!(
            split_copy_path("/c/a%20b/c").unwrap(),
            ("c".to_string(), "a b/c".to_string())
        );
        assert!(split_copy_path("c").is_err());
        assert!(split_copy_path("c/").is_err());
    }
}
