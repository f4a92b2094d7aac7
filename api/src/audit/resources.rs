//! `/audit/v1`: a resource's timeline, its state at an instant or position, the resources of a project at
//! an instant, event queries, and the hash-chain check.

use std::collections::BTreeMap;

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};
use strata_actors::registry;
use strata_events::{verify_log, Head, Snapshot, GENESIS_HASH};
use strata_projections::audit::{category, StreamRow};
use strata_projections::persistent::Vector;

use super::render::{changes, event_json, parse_position, parse_time, redact, time_text};
use super::{auditor, Audit, AuditError};

/// Point-in-time snapshots are kept every this many events of a stream.
pub const SNAPSHOT_EVERY: u64 = 1000;
/// Most events one query or timeline page returns.
pub const MAX_LIMIT: usize = 1000;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/audit/v1/resources/{type}/{id}/timeline",
        web::get().to(timeline),
    )
    .route(
        "/audit/v1/resources/{type}/{id}/state",
        web::get().to(state),
    )
    .route("/audit/v1/resources", web::get().to(resources))
    .route("/audit/v1/events", web::get().to(events))
    .route("/audit/v1/integrity", web::get().to(integrity));
}

type Query = web::Query<BTreeMap<String, String>>;

fn limit_of(q: &BTreeMap<String, String>, default: usize) -> Result<usize, AuditError> {
    match q.get("limit") {
        None => Ok(default),
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            _ => Err(AuditError::bad_request(format!(
                "limit must be a whole number from 1 to {MAX_LIMIT}, not {l:?}"
            ))),
        },
    }
}

/// Only these query parameters are understood; anything else is a 400 (a typo must not widen a query).
fn check_params(q: &BTreeMap<String, String>, known: &[&str]) -> Result<(), AuditError> {
    match q.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(AuditError::bad_request(format!(
            "unknown parameter {k:?}; expected one of {}",
            known.join(", ")
        ))),
        None => Ok(()),
    }
}

fn stream_row(audit: &Audit, stream: &str) -> Result<StreamRow, AuditError> {
    audit
        .index
        .snapshot()
        .streams
        .get(stream)
        .cloned()
        .ok_or_else(|| AuditError::not_found(format!("no resource has the stream {stream}")))
}

fn resource_json(kind: &str, id: &str, stream: &str, row: &StreamRow) -> Value {
    json!({ "type": kind, "id": id, "stream": stream, "project": row.project, "events": row.events })
}

async fn timeline(
    audit: web::Data<Audit>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    q: Query,
) -> Result<HttpResponse, AuditError> {
    auditor(&req)?;
    let (kind, id) = path.into_inner();
    Ok(HttpResponse::Ok().json(timeline_of(&audit, &kind, &id, &q).await?))
}

/// Every event of one resource, in order, with the fields each changed (`after`, `limit` page it).
pub async fn timeline_of(
    audit: &Audit,
    kind: &str,
    id: &str,
    q: &BTreeMap<String, String>,
) -> Result<Value, AuditError> {
    check_params(q, &["after", "limit"])?;
    let stream = format!("{kind}-{id}");
    let row = stream_row(audit, &stream)?;
    let after = match q.get("after") {
        Some(a) => parse_position("after", a)?,
        None => 0,
    };
    let limit = limit_of(q, MAX_LIMIT)?;
    let all = audit
        .log
        .read_stream(&stream, 1)
        .await
        .map_err(AuditError::internal)?;
    let states: Option<(Vec<u8>, Vec<Vec<u8>>)> = match registry::for_stream(&stream) {
        Some((folder, _)) => Some((
            (folder.fold)(None, &[]).map_err(AuditError::internal)?,
            (folder.steps)(None, &all).map_err(AuditError::internal)?,
        )),
        None => None,
    };
    let mut out = Vec::new();
    let mut next = None;
    for (i, e) in all.iter().enumerate() {
        if e.position <= after {
            continue;
        }
        if out.len() == limit {
            next = Some(json!({ "after": all[i - 1].position }));
            break;
        }
        let mut v = {
            let ix = audit.index.snapshot();
            event_json(e, Some(&ix))
        };
        if let Some((initial, states)) = &states {
            let before = registry::render(if i == 0 { initial } else { &states[i - 1] });
            let after_state = registry::render(&states[i]);
            v["changes"] = json!(changes(&before, &after_state));
        }
        out.push(v);
    }
    Ok(json!({
        "resource": resource_json(kind, id, &stream, &row),
        "events": out,
        "next": next,
    }))
}

/// The state of `stream` after its first `version` events, using (and, when allowed, writing) the
/// point-in-time snapshots kept every [`SNAPSHOT_EVERY`] events.
pub async fn state_at_version(
    audit: &Audit,
    stream: &str,
    version: u64,
    use_snapshots: bool,
) -> Result<Option<Vec<u8>>, AuditError> {
    let Some((folder, _)) = registry::for_stream(stream) else {
        return Ok(None);
    };
    let snapshot_key = |v: u64| format!("audit~{stream}~{v}");
    let mut from_version = 0u64;
    let mut state: Option<Vec<u8>> = None;
    if use_snapshots {
        let mut k = version / SNAPSHOT_EVERY * SNAPSHOT_EVERY;
        while k > 0 {
            if let Ok(Some(s)) = audit.log.load_snapshot(&snapshot_key(k)).await {
                if s.version == k {
                    state = Some(s.state);
                    from_version = k;
                    break;
                }
            }
            k -= SNAPSHOT_EVERY;
        }
    }
    if version == from_version {
        return Ok(state);
    }
    let events = audit
        .log
        .read_stream(stream, from_version + 1)
        .await
        .map_err(AuditError::internal)?;
    let wanted = (version - from_version) as usize;
    let events = &events[..wanted.min(events.len())];
    let mut at = from_version;
    for chunk in events.chunks(SNAPSHOT_EVERY as usize) {
        let next = (folder.fold)(state.as_deref(), chunk).map_err(AuditError::internal)?;
        at += chunk.len() as u64;
        if use_snapshots && audit.write_snapshots && at.is_multiple_of(SNAPSHOT_EVERY) {
            let snap = Snapshot {
                version: at,
                schema: 1,
                state: next.clone(),
            };
            if let Err(e) = audit.log.save_snapshot(&snapshot_key(at), snap).await {
                tracing::debug!(error = %e, stream, "point-in-time snapshot not saved");
            }
        }
        state = Some(next);
    }
    Ok(state)
}

async fn state(
    audit: web::Data<Audit>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    q: Query,
) -> Result<HttpResponse, AuditError> {
    auditor(&req)?;
    let (kind, id) = path.into_inner();
    Ok(HttpResponse::Ok().json(state_of(&audit, &kind, &id, &q).await?))
}

/// A resource's state as of `at` (RFC 3339) or `position` (default: now), rebuilt from its events.
pub async fn state_of(
    audit: &Audit,
    kind: &str,
    id: &str,
    q: &BTreeMap<String, String>,
) -> Result<Value, AuditError> {
    check_params(q, &["at", "position", "snapshots"])?;
    let stream = format!("{kind}-{id}");
    let row = stream_row(audit, &stream)?;
    let (head, position) = {
        let ix = audit.index.snapshot();
        let head = ix.head();
        let position = match (q.get("at"), q.get("position")) {
            (Some(_), Some(_)) => {
                return Err(AuditError::bad_request(
                    "give either at or position, not both",
                ))
            }
            (Some(at), None) => ix.position_at(parse_time("at", at)?),
            (None, Some(p)) => parse_position("position", p)?,
            (None, None) => head,
        };
        (head, position)
    };
    if position > head {
        return Err(AuditError::bad_request(format!(
            "position {position} is beyond the log's head ({head})"
        )));
    }
    let use_snapshots = q.get("snapshots").map(String::as_str) != Some("false");
    let version = row.version_at(position);
    let state = if version == 0 {
        None
    } else {
        state_at_version(audit, &stream, version, use_snapshots).await?
    };
    let time = {
        let ix = audit.index.snapshot();
        ix.time_of(position)
            .and_then(chrono::DateTime::from_timestamp_micros)
            .map(time_text)
    };
    Ok(json!({
        "resource": resource_json(kind, id, &stream, &row),
        "position": position,
        "time": time,
        "version": version,
        "exists": row.alive_at(position),
        "state": state.map(|s| {
            let mut v = registry::render(&s);
            redact(&mut v);
            v
        }),
    }))
}

async fn resources(
    audit: web::Data<Audit>,
    req: HttpRequest,
    q: Query,
) -> Result<HttpResponse, AuditError> {
    auditor(&req)?;
    Ok(HttpResponse::Ok().json(resources_of(&audit, &q)?))
}

/// The resources that existed at `at`/`position` (default: now), optionally of one `project` and `type`.
pub fn resources_of(audit: &Audit, q: &BTreeMap<String, String>) -> Result<Value, AuditError> {
    check_params(q, &["project", "type", "at", "position", "limit", "marker"])?;
    let limit = limit_of(q, MAX_LIMIT)?;
    let ix = audit.index.snapshot();
    let position = match (q.get("at"), q.get("position")) {
        (Some(_), Some(_)) => {
            return Err(AuditError::bad_request(
                "give either at or position, not both",
            ))
        }
        (Some(at), None) => ix.position_at(parse_time("at", at)?),
        (None, Some(p)) => parse_position("position", p)?,
        (None, None) => ix.head(),
    };
    let marker = q.get("marker").cloned().unwrap_or_default();
    let mut out = Vec::new();
    let mut next = None;
    for (stream, row) in ix.streams.range::<_, String>((
        std::ops::Bound::Excluded(marker.clone()),
        std::ops::Bound::Unbounded,
    )) {
        if q.get("project").is_some_and(|p| *p != row.project)
            || q.get("type").is_some_and(|t| *t != row.kind)
            || !row.alive_at(position)
        {
            continue;
        }
        if out.len() == limit {
            next = out
                .last()
                .and_then(|v: &Value| v["stream"].as_str().map(|s| json!({ "marker": s })));
            break;
        }
        let id = stream
            .strip_prefix(row.kind.as_str())
            .and_then(|r| r.strip_prefix('-'))
            .unwrap_or(stream);
        let created = ix
            .time_of(row.first)
            .and_then(chrono::DateTime::from_timestamp_micros)
            .map(time_text);
        out.push(json!({
            "type": row.kind, "id": id, "stream": stream, "project": row.project, "created_at": created,
        }));
    }
    Ok(json!({ "position": position, "resources": out, "next": next }))
}

async fn events(
    audit: web::Data<Audit>,
    req: HttpRequest,
    q: Query,
) -> Result<HttpResponse, AuditError> {
    auditor(&req)?;
    Ok(HttpResponse::Ok().json(events_of(&audit, &q).await?))
}

/// Events by project, user, request id, category, type and time window, paged by position (`after`).
pub async fn events_of(audit: &Audit, q: &BTreeMap<String, String>) -> Result<Value, AuditError> {
    check_params(
        q,
        &[
            "project",
            "user",
            "request_id",
            "category",
            "type",
            "since",
            "until",
            "after",
            "limit",
        ],
    )?;
    let limit = limit_of(q, 100)?;
    let after = match q.get("after") {
        Some(a) => parse_position("after", a)?,
        None => 0,
    };
    let since = q.get("since").map(|t| parse_time("since", t)).transpose()?;
    let until = q.get("until").map(|t| parse_time("until", t)).transpose()?;
    let ix = audit.index.snapshot();
    let positions: Vec<u64> = {
        // Position bounds from the time window (times never decrease along the log).
        let low = since.map_or(0, |s| ix.position_at(s - 1)).max(after);
        let high = until.map_or(ix.head(), |u| ix.position_at(u));
        let mut lists: Vec<&Vector<u64>> = Vec::new();
        let empty = Vector::new();
        for (param, map) in [
            ("project", &ix.by_project),
            ("user", &ix.by_user),
            ("request_id", &ix.by_request),
            ("type", &ix.by_type),
        ] {
            if let Some(v) = q.get(param) {
                lists.push(map.get(v).unwrap_or(&empty));
            }
        }
        let in_window = |p: &u64| *p > low && *p <= high;
        let category_ok = |p: u64| match q.get("category") {
            None => true,
            Some(c) => ix
                .by_type
                .iter()
                .any(|(t, ps)| category(t) == c && ps.binary_search(&p).is_ok()),
        };
        let matches_all =
            |p: u64| lists.iter().all(|l| l.binary_search(&p).is_ok()) && category_ok(p);
        match lists.iter().min_by_key(|l| l.len()) {
            Some(smallest) => smallest
                .iter()
                .copied()
                .filter(in_window)
                .filter(|p| matches_all(*p))
                .take(limit + 1)
                .collect(),
            None => ((low + 1)..=high)
                .filter(|p| category_ok(*p))
                .take(limit + 1)
                .collect(),
        }
    };
    let more = positions.len() > limit;
    let mut out = Vec::new();
    for p in positions.iter().take(limit) {
        let batch = audit
            .log
            .read_all(*p, 1)
            .await
            .map_err(AuditError::internal)?;
        if let Some(e) = batch.first() {
            out.push(event_json(e, Some(&ix)));
        }
    }
    let next = if more {
        positions.get(limit - 1).map(|p| json!({ "after": p }))
    } else {
        None
    };
    Ok(json!({ "events": out, "next": next }))
}

async fn integrity(
    audit: web::Data<Audit>,
    req: HttpRequest,
    q: Query,
) -> Result<HttpResponse, AuditError> {
    auditor(&req)?;
    Ok(HttpResponse::Ok().json(integrity_of(&audit, &q).await?))
}

/// The hash chain checked from position 1 (or from `from_position` + `from_hash`) to the head.
pub async fn integrity_of(
    audit: &Audit,
    q: &BTreeMap<String, String>,
) -> Result<Value, AuditError> {
    check_params(q, &["from_position", "from_hash"])?;
    let start = match (q.get("from_position"), q.get("from_hash")) {
        (Some(p), Some(h)) => {
            let position = parse_position("from_position", p)?;
            let hash: [u8; 32] = hex::decode(h.trim())
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| AuditError::bad_request("from_hash must be 64 hex digits"))?;
            Head { position, hash }
        }
        (None, None) => Head {
            position: 0,
            hash: GENESIS_HASH,
        },
        _ => {
            return Err(AuditError::bad_request(
                "from_position and from_hash go together",
            ))
        }
    };
    let from = start.position;
    // A checkpoint must name an event that is still stored with that hash (else a log cut back to it, or
    // changed at it, would pass: the chain after it is only checked against the hash given).
    if from > 0 {
        let broken = |reason: String| json!({ "ok": false, "from_position": from, "broken_at": from, "reason": reason });
        let stored = match audit.log.read_all(from, 1).await {
            Ok(batch) => batch.into_iter().next().filter(|e| e.position == from),
            Err(e) => return Ok(broken(format!("cannot read the stored event: {e}"))),
        };
        let Some(e) = stored else {
            return Ok(broken(format!(
                "the checkpoint names position {from}, but no event is stored there"
            )));
        };
        let content = strata_events::chain::envelope_hash(&e.to_envelope());
        if e.hash != start.hash || content != start.hash {
            return Ok(broken(format!(
                "the checkpoint's hash {} is not the hash of the event stored at position {from} (stored {}, \
                 its content hashes to {})",
                hex::encode(start.hash),
                hex::encode(e.hash),
                hex::encode(content)
            )));
        }
    }
    Ok(match verify_log(audit.log.as_ref(), start).await {
        Ok((head, checked)) => json!({
            "ok": true,
            "from_position": from,
            "checked": checked,
            "head": { "position": head.position, "hash": hex::encode(head.hash) },
        }),
        Err(e) => json!({
            "ok": false,
            "from_position": from,
            "broken_at": e.position,
            "reason": e.reason,
        }),
    })
}
