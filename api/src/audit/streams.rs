//! `/events/v1/stream`: the log as a resumable, filtered event stream.
//!
//! One producer task per connection follows the log with `subscribe_all` (catch-up, then live, no gap),
//! filters each event (category, type, project — the project from the `AuditIndex`, waited for so it is
//! never read before the index has the event) and renders it into a bounded channel; the response body is
//! that channel. Formats, chosen by `Accept`:
//! - Server-Sent Events (default, `text/event-stream`): `id: <position>`, `event: <type>`, `data: <event
//!   JSON>`; a heartbeat is the comment `: heartbeat <position>`.
//! - `application/x-ndjson`: one event JSON per line; a heartbeat is `{"heartbeat":{"position":N,"time":T}}`.
//! - `application/x-protobuf`: the stored `EventEnvelope` of each event, length-delimited; a heartbeat is
//!   an empty message (a single 0 byte, position 0).
//!
//! A heartbeat's position is the last position the stream examined: every event up to it that passes the
//! filter was sent before the heartbeat, so a consumer may record it as its resume point.
//!
//! A client that stops reading fills the channel; when it stays full for `slow_consumer_timeout` the
//! connection is shut down (the client resumes with `Last-Event-ID`), so the server never buffers more
//! than `stream_buffer` events for anyone.
//!
//! Each event's JSON is rendered once for all connections: the [`RenderCache`] keeps the text of the most
//! recent positions any stream rendered (with the event's project), so connections reading the same part
//! of the log (many consumers following the head, or catching up together) copy it instead of rendering it
//! again. Events that are ready one after another are sent to the client as one chunk (up to
//! [`CHUNK_EVENTS`]), so the per-event cost of the channel and of the HTTP body is paid once per chunk.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::web::{Bytes, BytesMut};
use actix_web::{web, HttpRequest, HttpResponse};
use futures::{FutureExt, Stream, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::json;
use strata_events::{subscribe_all, RecordedEvent};
use strata_projections::audit::{category, message_name};
use strata_proto::Message;
use tokio::sync::mpsc;

use super::render::{event_json, parse_position, redacted_payload, time_text};
use super::{caller, Audit, AuditError, AUDIT_ROLES};
use crate::auth::AuthContext;

/// How long a stream waits for the audit index to reach an event before it gives up (and ends).
pub const INDEX_WAIT: Duration = Duration::from_secs(30);

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/events/v1", web::get().to(version))
        .route("/events/v1/", web::get().to(version))
        .route("/events/v1/stream", web::get().to(stream));
}

async fn version(req: HttpRequest) -> HttpResponse {
    let base = crate::common::base_url(&req);
    HttpResponse::Ok().json(json!({
        "version": { "id": "events-v1", "status": "CURRENT" },
        "links": [
            { "rel": "stream", "href": format!("{base}/events/v1/stream") },
            { "rel": "consumers", "href": format!("{base}/events/v1/consumers") },
        ]
    }))
}

// ---------------------------------------------------------------------------------------------------------
// Filters and access
// ---------------------------------------------------------------------------------------------------------

/// Which events a stream carries. Empty lists match everything; a list matches when any item does.
/// Lists are kept sorted and without duplicates, so two equal filters compare equal.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filter {
    /// Categories: the event type's first segment (`compute`, `volume`, ...).
    #[serde(default)]
    pub category: Vec<String>,
    /// Event types, exact (`compute.ServerDeleted.v1`) or by message name (`ServerDeleted`).
    #[serde(default, rename = "type")]
    pub types: Vec<String>,
    /// The project the events concern.
    #[serde(default)]
    pub project: Option<String>,
}

/// Whether `c` is a category (service) this build knows events of.
pub fn known_category(c: &str) -> bool {
    !c.is_empty()
        && c.chars()
            .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_')
        && strata_proto::codec::event_json(&format!("{c}.Probe.v1"), &[]).is_some()
}

fn check_type(t: &str) -> Result<(), AuditError> {
    let ok = if t.contains('.') {
        // A full type must be one this build can decode (every proto3 message decodes from no bytes).
        matches!(strata_proto::codec::event_json(t, &[]), Some(Ok(_)))
    } else {
        t.chars().next().is_some_and(|c| c.is_ascii_uppercase())
            && t.chars().all(|c| c.is_ascii_alphanumeric())
    };
    if ok {
        Ok(())
    } else {
        Err(AuditError::bad_request(format!(
            "type {t:?} is neither a known event type (such as compute.ServerDeleted.v1) nor a message name (such as ServerDeleted)"
        )))
    }
}

/// Split a comma-separated parameter into its non-empty items.
pub fn split_list(name: &str, text: &str) -> Result<Vec<String>, AuditError> {
    let items: Vec<String> = text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if items.is_empty() {
        return Err(AuditError::bad_request(format!(
            "{name} must name at least one value (several: comma-separated)"
        )));
    }
    Ok(items)
}

impl Filter {
    /// The filter of a query string (`category`, `type`, `project`).
    pub fn from_query(q: &BTreeMap<String, String>) -> Result<Filter, AuditError> {
        let mut f = Filter {
            category: match q.get("category") {
                Some(c) => split_list("category", c)?,
                None => Vec::new(),
            },
            types: match q.get("type") {
                Some(t) => split_list("type", t)?,
                None => Vec::new(),
            },
            project: match q.get("project").map(|p| p.trim()) {
                Some("") => return Err(AuditError::bad_request("project must not be empty")),
                Some(p) => Some(p.to_string()),
                None => None,
            },
        };
        f.normalize()?;
        Ok(f)
    }

    /// Check every value and put the lists in canonical order (400 on an unknown category or a bad type).
    pub fn normalize(&mut self) -> Result<(), AuditError> {
        for c in &self.category {
            if !known_category(c) {
                return Err(AuditError::bad_request(format!(
                    "unknown category {c:?}; categories are the services' event packages (identity, image, compute, volume, network, object, ...)"
                )));
            }
        }
        for t in &self.types {
            check_type(t)?;
        }
        if let Some(p) = &self.project {
            if p.is_empty() || p.len() > 255 {
                return Err(AuditError::bad_request(
                    "project must be a project id (1 to 255 characters)",
                ));
            }
        }
        self.category.sort();
        self.category.dedup();
        self.types.sort();
        self.types.dedup();
        Ok(())
    }

    /// Whether the event's type passes (the project is checked apart, with the index).
    pub fn type_matches(&self, event_type: &str) -> bool {
        (self.category.is_empty() || self.category.iter().any(|c| c == category(event_type)))
            && (self.types.is_empty()
                || self
                    .types
                    .iter()
                    .any(|t| t == event_type || t == message_name(event_type)))
    }
}

/// What a caller may see of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// Admins and auditors: every event.
    All,
    /// Anyone else: the events that concern the project of their token.
    Project(String),
}

impl Reach {
    pub fn of(ctx: &AuthContext) -> Result<Reach, AuditError> {
        if AUDIT_ROLES.iter().any(|r| ctx.has_role(r)) {
            return Ok(Reach::All);
        }
        match ctx.project_id() {
            Some(p) => Ok(Reach::Project(p.to_string())),
            None => Err(AuditError::new(
                StatusCode::FORBIDDEN,
                "event streams need a project-scoped token (or the admin or auditor role)",
            )),
        }
    }

    /// The project whose events a stream with `filter` may carry (None: any); 403 when the filter names a
    /// project the caller may not see.
    pub fn project_for(&self, filter: &Filter) -> Result<Option<String>, AuditError> {
        match (self, &filter.project) {
            (Reach::All, p) => Ok(p.clone()),
            (Reach::Project(own), Some(p)) if p != own => Err(AuditError::new(
                StatusCode::FORBIDDEN,
                format!("you may only stream the events of your own project ({own}), not {p}"),
            )),
            (Reach::Project(own), _) => Ok(Some(own.clone())),
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Formats
// ---------------------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Sse,
    Ndjson,
    Protobuf,
}

impl Format {
    /// The first recognised media type of `Accept` (SSE when none is).
    pub fn from_accept(accept: Option<&str>) -> Format {
        accept
            .unwrap_or("")
            .split(',')
            .filter_map(|item| {
                let media = item
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase();
                match media.as_str() {
                    "text/event-stream" => Some(Format::Sse),
                    "application/x-ndjson" | "application/jsonl" | "application/x-jsonlines" => {
                        Some(Format::Ndjson)
                    }
                    "application/x-protobuf" | "application/protobuf" => Some(Format::Protobuf),
                    _ => None,
                }
            })
            .next()
            .unwrap_or(Format::Sse)
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Sse => "text/event-stream",
            Format::Ndjson => "application/x-ndjson",
            Format::Protobuf => "application/x-protobuf",
        }
    }

    fn needs_json(self) -> bool {
        self != Format::Protobuf
    }

    /// One event, rendered (for the JSON formats: `project` is the index's project of the event).
    fn event(self, e: &RecordedEvent, project: Option<&str>) -> Bytes {
        match self {
            Format::Protobuf => {
                let mut env = e.to_envelope();
                if let Some(p) = redacted_payload(&e.event_type, &e.payload) {
                    env.payload = p;
                }
                Bytes::from(env.encode_length_delimited_to_vec())
            }
            Format::Sse | Format::Ndjson => {
                let text = event_text(e, project.unwrap_or(""));
                if self == Format::Sse {
                    Bytes::from(format!(
                        "id: {}\nevent: {}\ndata: {text}\n\n",
                        e.position, e.event_type
                    ))
                } else {
                    Bytes::from(format!("{text}\n"))
                }
            }
        }
    }

    /// A heartbeat: nothing new up to `position`.
    fn heartbeat(self, position: u64) -> Bytes {
        match self {
            Format::Sse => Bytes::from(format!(": heartbeat {position}\n\n")),
            Format::Ndjson => Bytes::from(format!(
                "{}\n",
                json!({ "heartbeat": { "position": position, "time": time_text(chrono::Utc::now()) } })
            )),
            Format::Protobuf => Bytes::from_static(&[0]),
        }
    }
}

/// `event_json(e, ..)` with `project`, as text, serialized without building the envelope's `Value` first
/// (twice as fast; streams render every event). The same shape: a test keeps it byte-identical to
/// `event_json(..).to_string()`, whose keys come out sorted.
pub fn event_text(e: &RecordedEvent, project: &str) -> String {
    #[derive(Serialize)]
    struct Principal<'a> {
        domain_id: &'a str,
        project_id: &'a str,
        roles: &'a [String],
        user_id: &'a str,
        user_name: &'a str,
    }
    #[derive(Serialize)]
    struct Resource<'a> {
        id: &'a str,
        #[serde(rename = "type")]
        kind: &'a str,
    }
    #[derive(Serialize)]
    struct Shape<'a> {
        category: &'a str,
        causation_id: &'a str,
        hash: &'a str,
        id: &'a str,
        payload: serde_json::Value,
        position: u64,
        principal: Principal<'a>,
        project: &'a str,
        request_id: &'a str,
        resource: Resource<'a>,
        stream: &'a str,
        stream_version: u64,
        time: String,
        #[serde(rename = "type")]
        event_type: &'a str,
    }
    let payload = super::render::payload_json(e);
    let (kind, id) = super::render::resource_of(e);
    let hash = hex32(&e.hash);
    let mut id_buf = uuid::Uuid::encode_buffer();
    let shape = Shape {
        category: category(&e.event_type),
        causation_id: &e.causation_id,
        hash: std::str::from_utf8(&hash).unwrap_or_default(),
        id: e.id.hyphenated().encode_lower(&mut id_buf),
        payload,
        position: e.position,
        principal: Principal {
            domain_id: &e.principal.domain_id,
            project_id: &e.principal.project_id,
            roles: &e.principal.roles,
            user_id: &e.principal.user_id,
            user_name: &e.principal.user_name,
        },
        project,
        request_id: &e.correlation_id,
        resource: Resource { id, kind },
        stream: &e.stream_id,
        stream_version: e.stream_version,
        time: time_text(e.recorded_at),
        event_type: &e.event_type,
    };
    serde_json::to_string(&shape).unwrap_or_else(|err| {
        // Serializing borrowed strings and a `Value` cannot fail; keep the generic path just in case.
        tracing::warn!(error = %err, "event rendered the slow way");
        let mut v = event_json(e, None);
        v["project"] = json!(project);
        v.to_string()
    })
}

/// 32 bytes as 64 lowercase hex digits, without allocating.
fn hex32(bytes: &[u8; 32]) -> [u8; 64] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 64];
    for (i, b) in bytes.iter().enumerate() {
        out[2 * i] = DIGITS[usize::from(b >> 4)];
        out[2 * i + 1] = DIGITS[usize::from(b & 0x0f)];
    }
    out
}

/// The rendered JSON of recent events, shared by every stream: a ring of slots indexed by position, each
/// holding the position it was filled for, the event's project (from the `AuditIndex`) and its JSON text.
/// A slot is filled by whichever stream renders the event first; a later position evicts it.
pub struct RenderCache {
    slots: Vec<parking_lot::Mutex<Option<Rendered>>>,
}

/// One event's JSON (as `event_text`) and project.
#[derive(Clone)]
pub struct Rendered {
    position: u64,
    pub project: Arc<str>,
    pub json: Bytes,
}

impl RenderCache {
    /// A cache of `capacity` positions (at least 1).
    pub fn new(capacity: usize) -> Self {
        RenderCache {
            slots: (0..capacity.max(1))
                .map(|_| parking_lot::Mutex::new(None))
                .collect(),
        }
    }

    fn slot(&self, position: u64) -> &parking_lot::Mutex<Option<Rendered>> {
        &self.slots[(position % self.slots.len() as u64) as usize]
    }

    pub fn get(&self, position: u64) -> Option<Rendered> {
        self.slot(position)
            .lock()
            .as_ref()
            .filter(|r| r.position == position)
            .cloned()
    }

    /// The event's rendering, made now and kept when no other stream made it first.
    fn render(&self, e: &RecordedEvent, project: &str) -> Rendered {
        if let Some(r) = self.get(e.position) {
            return r;
        }
        let r = Rendered {
            position: e.position,
            project: Arc::from(project),
            json: Bytes::from(event_text(e, project)),
        };
        let mut slot = self.slot(e.position).lock();
        // Keep the newest position a slot has seen (a stream far behind must not evict the head's events).
        if slot.as_ref().is_none_or(|old| old.position < e.position) {
            *slot = Some(r.clone());
        }
        r
    }
}

// ---------------------------------------------------------------------------------------------------------
// The stream
// ---------------------------------------------------------------------------------------------------------

/// At most this many events go to the client in one chunk (fewer when `stream_buffer` is smaller).
pub const CHUNK_EVENTS: usize = 64;
/// A chunk stops growing past this many bytes.
const CHUNK_BYTES: usize = 64 * 1024;
/// At most this many events are examined (filtered) before a chunk is sent or the task yields.
const SCAN_PER_CHUNK: usize = 4096;

/// Why a stream's body ended abruptly.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error(
        "the client stopped reading for {0:?}: connection dropped (resume with Last-Event-ID)"
    )]
    SlowConsumer(Duration),
}

/// The connection's socket (a duplicate of its descriptor, closed with the connection's extensions), so a
/// stream can shut down a connection whose client stopped reading: actix stops polling a body while the
/// socket is full, so ending the body alone would leave such a connection open.
#[derive(Clone)]
pub struct ConnSocket(Arc<std::net::TcpStream>);

/// `HttpServer::on_connect` hook of the audit listener: remembers each connection's socket.
pub fn on_connect(conn: &dyn std::any::Any, ext: &mut actix_web::dev::Extensions) {
    #[cfg(unix)]
    if let Some(sock) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
        use std::os::fd::AsFd;
        match sock.as_fd().try_clone_to_owned() {
            Ok(fd) => {
                ext.insert(ConnSocket(Arc::new(std::net::TcpStream::from(fd))));
            }
            Err(e) => tracing::debug!(error = %e, "connection socket not kept"),
        }
    }
}

/// One stream's parameters.
#[derive(Debug, Clone)]
pub struct Feed {
    /// Events with positions after this one.
    pub after: u64,
    pub filter: Filter,
    /// The project the events must concern (the filter's, or the tenant's own).
    pub project: Option<String>,
    pub format: Format,
}

/// Start the producer and return the response body: rendered frames, ending with an error when the
/// client was dropped for not reading.
pub fn open(
    audit: web::Data<Audit>,
    feed: Feed,
    socket: Option<ConnSocket>,
) -> impl Stream<Item = Result<Bytes, StreamError>> {
    // The channel holds chunks of up to `chunk_events(..)` events: `stream_buffer` events in all.
    let per_chunk = chunk_events(&audit);
    let (tx, rx) = mpsc::channel::<Bytes>((audit.stream_buffer / per_chunk).max(1));
    let dropped = Arc::new(AtomicBool::new(false));
    let timeout = audit.slow_consumer_timeout;
    actix_web::rt::spawn(produce(audit, feed, tx, dropped.clone(), socket));
    futures::stream::unfold((rx, dropped, false), move |(mut rx, dropped, done)| {
        let over =
            move |rx, dropped| Some((Err(StreamError::SlowConsumer(timeout)), (rx, dropped, true)));
        async move {
            if done {
                return None;
            }
            if dropped.load(Ordering::Acquire) {
                return over(rx, dropped);
            }
            match rx.recv().await {
                Some(frame) => Some((Ok(frame), (rx, dropped, false))),
                None if dropped.load(Ordering::Acquire) => over(rx, dropped),
                None => None,
            }
        }
    })
}

/// How many events one chunk may carry.
fn chunk_events(audit: &Audit) -> usize {
    CHUNK_EVENTS.min(audit.stream_buffer).max(1)
}

/// What the next step of a stream found.
enum Next {
    /// A chunk to send (events, or a heartbeat).
    Chunk(Bytes),
    /// Events were examined, none passed the filter (or the stream is over).
    Nothing,
}

async fn produce(
    audit: web::Data<Audit>,
    feed: Feed,
    tx: mpsc::Sender<Bytes>,
    dropped: Arc<AtomicBool>,
    socket: Option<ConnSocket>,
) {
    let mut events = subscribe_all(audit.log.clone(), feed.after + 1);
    let mut scanned = feed.after;
    let heartbeat = audit.heartbeat.max(Duration::from_millis(10));
    let mut idle_until = tokio::time::Instant::now() + heartbeat;
    let per_chunk = chunk_events(&audit);
    // Chunks are split off one buffer of CHUNK_BYTES (a new one when it is used up), so a chunk costs no
    // allocation of its own.
    let mut buf = BytesMut::with_capacity(CHUNK_BYTES);
    let mut sent = 0u64;
    let mut ended = false;
    while !ended {
        let next = tokio::select! {
            biased;
            _ = tx.closed() => break,
            next = events.next() => {
                let mut frames = 0usize;
                let mut examined = 0usize;
                let mut item = next;
                // This event, then every one already at hand (no wait), up to a chunk.
                loop {
                    match item {
                        None => ended = true,
                        Some(Err(e)) => {
                            tracing::warn!(error = %e, position = scanned, "event stream ended: the log failed");
                            ended = true;
                        }
                        Some(Ok(e)) => {
                            scanned = e.position;
                            examined += 1;
                            match render(&audit, &feed, &e, &mut buf).await {
                                Ok(true) => frames += 1,
                                Ok(false) => {}
                                Err(why) => {
                                    tracing::warn!(position = e.position, "event stream ended: {why}");
                                    ended = true;
                                }
                            }
                        }
                    }
                    if ended
                        || frames >= per_chunk
                        || buf.len() >= CHUNK_BYTES
                        || examined >= SCAN_PER_CHUNK
                    {
                        break;
                    }
                    match events.next().now_or_never() {
                        Some(i) => item = i,
                        None => break,
                    }
                }
                if buf.is_empty() { Next::Nothing } else { Next::Chunk(buf.split().freeze()) }
            },
            _ = tokio::time::sleep_until(idle_until) => Next::Chunk(feed.format.heartbeat(scanned)),
        };
        let chunk = match next {
            Next::Chunk(c) => c,
            Next::Nothing => {
                // Examined events count as activity for the task's fairness, not for heartbeats.
                tokio::task::yield_now().await;
                continue;
            }
        };
        match tokio::time::timeout(audit.slow_consumer_timeout, tx.send(chunk)).await {
            Ok(Ok(())) => sent += 1,
            Ok(Err(_)) => break,
            Err(_) => {
                tracing::warn!(
                    position = scanned,
                    sent,
                    "dropping an event stream whose client stopped reading"
                );
                dropped.store(true, Ordering::Release);
                // No await between the check and the shutdown: the connection (whose body is `rx`) is
                // still open, and this task runs on its worker thread.
                if let Some(ConnSocket(s)) = &socket {
                    if !tx.is_closed() {
                        if let Err(e) = s.shutdown(std::net::Shutdown::Both) {
                            tracing::debug!(error = %e, "shutting down a slow consumer's socket");
                        }
                    }
                }
                break;
            }
        }
        idle_until = tokio::time::Instant::now() + heartbeat;
    }
    tracing::debug!(sent, position = scanned, "event stream closed");
}

/// Append the event's frame to `out` when it passes the feed's filter; whether it did.
async fn render(
    audit: &Audit,
    feed: &Feed,
    e: &RecordedEvent,
    out: &mut BytesMut,
) -> Result<bool, &'static str> {
    if !feed.filter.type_matches(&e.event_type) {
        return Ok(false);
    }
    if !feed.format.needs_json() && feed.project.is_none() {
        out.extend_from_slice(&feed.format.event(e, None));
        return Ok(true);
    }
    // Rendered by another stream already: its project comes with it.
    let shared = match audit.rendered.get(e.position) {
        Some(r) => r,
        None => {
            if audit.index.position() < e.position
                && !audit.index.wait_for(e.position, INDEX_WAIT).await
            {
                return Err("the audit index did not reach the event in time");
            }
            let project = audit.index.snapshot().project_of(e.position).to_string();
            if feed.project.as_ref().is_some_and(|want| *want != project) {
                return Ok(false);
            }
            if !feed.format.needs_json() {
                out.extend_from_slice(&feed.format.event(e, Some(&project)));
                return Ok(true);
            }
            audit.rendered.render(e, &project)
        }
    };
    if feed
        .project
        .as_deref()
        .is_some_and(|want| want != &*shared.project)
    {
        return Ok(false);
    }
    match feed.format {
        Format::Ndjson => {
            out.extend_from_slice(&shared.json);
            out.extend_from_slice(b"\n");
        }
        Format::Sse => {
            use std::fmt::Write;
            // Writing into a BytesMut cannot fail.
            let _ = write!(out, "id: {}\nevent: {}\ndata: ", e.position, e.event_type);
            out.extend_from_slice(&shared.json);
            out.extend_from_slice(b"\n\n");
        }
        Format::Protobuf => out.extend_from_slice(&feed.format.event(e, Some(&shared.project))),
    }
    Ok(true)
}

/// The streaming response for `feed` (headers for SSE proxies included).
pub fn respond(audit: web::Data<Audit>, req: &HttpRequest, feed: Feed) -> HttpResponse {
    let socket = req.conn_data::<ConnSocket>().cloned();
    let format = feed.format;
    let mut resp = HttpResponse::Ok();
    resp.content_type(format.content_type())
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"));
    resp.streaming(open(audit, feed, socket))
}

/// The `Last-Event-ID` header, if any (400 when it is not a position).
pub fn last_event_id(req: &HttpRequest) -> Result<Option<u64>, AuditError> {
    match req.headers().get("last-event-id") {
        None => Ok(None),
        Some(v) => {
            let text = v
                .to_str()
                .map_err(|_| AuditError::bad_request("Last-Event-ID must be a log position"))?;
            parse_position("Last-Event-ID", text).map(Some)
        }
    }
}

/// 400 when `position` is beyond the log's head.
pub async fn check_not_beyond_head(
    audit: &Audit,
    name: &str,
    position: u64,
) -> Result<u64, AuditError> {
    let head = audit
        .log
        .head()
        .await
        .map_err(AuditError::internal)?
        .position;
    if position > head {
        return Err(AuditError::bad_request(format!(
            "{name} {position} is beyond the log's head ({head})"
        )));
    }
    Ok(head)
}

pub fn format_of(req: &HttpRequest) -> Format {
    Format::from_accept(
        req.headers()
            .get(actix_web::http::header::ACCEPT)
            .and_then(|v| v.to_str().ok()),
    )
}

/// Only these query parameters are understood; anything else is a 400 (a typo must not widen a stream).
pub fn check_params(q: &BTreeMap<String, String>, known: &[&str]) -> Result<(), AuditError> {
    match q.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) if known.is_empty() => Err(AuditError::bad_request(format!(
            "unknown parameter {k:?}; this resource takes none"
        ))),
        Some(k) => Err(AuditError::bad_request(format!(
            "unknown parameter {k:?}; expected one of {}",
            known.join(", ")
        ))),
        None => Ok(()),
    }
}

/// `GET /events/v1/stream?from=N|now&category=&type=&project=` (`Last-Event-ID` overrides `from`).
async fn stream(
    audit: web::Data<Audit>,
    req: HttpRequest,
    q: web::Query<BTreeMap<String, String>>,
) -> Result<HttpResponse, AuditError> {
    let ctx = caller(&req)?;
    let reach = Reach::of(&ctx)?;
    check_params(&q, &["from", "category", "type", "project"])?;
    let filter = Filter::from_query(&q)?;
    let project = reach.project_for(&filter)?;
    let after = match (last_event_id(&req)?, q.get("from").map(|f| f.trim())) {
        (Some(id), _) => id,
        (None, None) | (None, Some("now")) => {
            audit
                .log
                .head()
                .await
                .map_err(AuditError::internal)?
                .position
        }
        (None, Some(n)) => parse_position("from", n).map_err(|_| {
            AuditError::bad_request(format!(
                "from must be a log position (a whole number >= 0) or \"now\", not {n:?}"
            ))
        })?,
    };
    check_not_beyond_head(&audit, "from", after).await?;
    let feed = Feed {
        after,
        filter,
        project,
        format: format_of(&req),
    };
    tracing::debug!(?feed, user = %ctx.user_id, "event stream opened");
    Ok(respond(audit, &req, feed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;
    use strata_events::{EventLog, ExpectedVersion, MemoryLog, Metadata, NewEvent};
    use strata_projections::audit::AuditIndex;
    use strata_projections::Live;

    fn q(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn filters_are_checked_and_canonical() {
        let f = Filter::from_query(&q(&[
            ("category", "volume, compute,compute"),
            ("type", "ServerDeleted,compute.ServerCreated.v1"),
        ]))
        .unwrap();
        assert_eq!(f.category, ["compute", "volume"]);
        assert_eq!(f.types, ["ServerDeleted", "compute.ServerCreated.v1"]);
        assert!(f.type_matches("compute.ServerDeleted.v1"));
        assert!(f.type_matches("compute.ServerCreated.v1"));
        assert!(!f.type_matches("compute.ServerSpawned.v1"));
        assert!(!f.type_matches("identity.ProjectCreated.v1"));
        for bad in [
            ("category", "computer"),
            ("category", ""),
            ("category", ","),
            ("type", "compute.NoSuchThing.v1"),
            ("type", "server deleted"),
            ("project", " "),
        ] {
            let e = Filter::from_query(&q(&[bad])).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{bad:?}: {e}");
        }
        for c in [
            "identity", "image", "compute", "volume", "network", "object",
        ] {
            assert!(known_category(c), "{c}");
        }
        assert!(Filter::default().type_matches("anything.At.v1"));
    }

    #[test]
    fn tenants_reach_only_their_project() {
        let own = Reach::Project("p1".into());
        let mut f = Filter::default();
        assert_eq!(own.project_for(&f).unwrap().as_deref(), Some("p1"));
        f.project = Some("p2".into());
        assert_eq!(
            own.project_for(&f).unwrap_err().status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(Reach::All.project_for(&f).unwrap().as_deref(), Some("p2"));
    }

    #[test]
    fn accept_picks_the_format() {
        assert_eq!(Format::from_accept(None), Format::Sse);
        assert_eq!(Format::from_accept(Some("*/*")), Format::Sse);
        assert_eq!(
            Format::from_accept(Some("application/x-ndjson")),
            Format::Ndjson
        );
        assert_eq!(
            Format::from_accept(Some("application/json, application/x-protobuf;q=0.9")),
            Format::Protobuf
        );
        assert_eq!(
            Format::from_accept(Some("text/event-stream, application/x-ndjson")),
            Format::Sse
        );
    }

    async fn audit_with(n: usize) -> (Arc<MemoryLog>, web::Data<Audit>) {
        let log = Arc::new(MemoryLog::new());
        append(&log, n).await;
        let index = Live::<AuditIndex>::start(log.clone(), Default::default())
            .await
            .unwrap();
        let mut audit = Audit::new(log.clone(), index);
        audit.heartbeat = Duration::from_millis(100);
        audit.stream_buffer = 4;
        audit.slow_consumer_timeout = Duration::from_millis(300);
        (log, web::Data::new(audit))
    }

    async fn append(log: &MemoryLog, n: usize) {
        for _ in 0..n {
            log.append(
                "flavor-x",
                ExpectedVersion::Any,
                vec![NewEvent::new("compute.FlavorDeleted.v1", vec![])],
                Metadata::system("req-test"),
            )
            .await
            .unwrap();
        }
    }

    fn feed(after: u64, format: Format) -> Feed {
        Feed {
            after,
            filter: Filter::default(),
            project: None,
            format,
        }
    }

    /// Chunks of the body until `pieces` of them (SSE frames: "\n\n"; lines: "\n") are complete.
    async fn read_until<S>(body: &mut std::pin::Pin<Box<S>>, sep: &str, pieces: usize) -> String
    where
        S: Stream<Item = Result<Bytes, StreamError>>,
    {
        let mut text = String::new();
        while text.matches(sep).count() < pieces {
            let frame = body.next().await.unwrap().unwrap();
            text.push_str(std::str::from_utf8(&frame).unwrap());
        }
        text
    }

    #[actix_web::test]
    async fn catch_up_then_live_then_heartbeats() {
        let (log, audit) = audit_with(3).await;
        let mut body = Box::pin(open(audit, feed(1, Format::Sse), None));
        let text = read_until(&mut body, "\n\n", 2).await;
        assert!(text.starts_with("id: 2\nevent: compute.FlavorDeleted.v1\ndata: {"));
        assert!(text.contains("\n\nid: 3\n"), "{text}");
        assert_eq!(text.matches("\n\n").count(), 2, "{text}");
        append(&log, 1).await;
        let frame = body.next().await.unwrap().unwrap();
        assert!(frame.starts_with(b"id: 4\n"));
        let frame = body.next().await.unwrap().unwrap();
        assert_eq!(&frame[..], b": heartbeat 4\n\n");
    }

    #[actix_web::test]
    async fn ready_events_go_in_chunks_and_are_rendered_once() {
        let (log, audit) = audit_with(10).await;
        // All ten are at hand: one chunk of `stream_buffer` (4) events, then the rest.
        let mut body = Box::pin(open(audit.clone(), feed(0, Format::Ndjson), None));
        let first = body.next().await.unwrap().unwrap();
        assert_eq!(first.iter().filter(|b| **b == b'\n').count(), 4);
        let text = read_until(&mut body, "\n", 6).await;
        let positions: Vec<u64> = std::str::from_utf8(&first)
            .unwrap()
            .lines()
            .chain(text.lines())
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["position"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        assert_eq!(positions, (1..=10).collect::<Vec<_>>());
        // The JSON is shared: a second stream (SSE) carries the very bytes the first rendered.
        let shared = audit.rendered.get(7).expect("position 7 rendered");
        assert_eq!(&shared.json[..], first_line(&text, 7).as_bytes());
        let mut sse = Box::pin(open(audit.clone(), feed(6, Format::Sse), None));
        let text = read_until(&mut sse, "\n\n", 1).await;
        assert!(text.starts_with(&format!(
            "id: 7\nevent: compute.FlavorDeleted.v1\ndata: {}\n\n",
            std::str::from_utf8(&shared.json).unwrap()
        )));
        // Filtered by project: the shared rendering carries the event's project.
        let mut other = feed(0, Format::Ndjson);
        other.project = Some("someone-else".into());
        let mut body = Box::pin(open(audit.clone(), other, None));
        append(&log, 1).await;
        let frame = body.next().await.unwrap().unwrap();
        assert!(frame.starts_with(b"{\"heartbeat\""), "{frame:?}");
        assert!(frame.ends_with(b"\n"));
        let hb: serde_json::Value = serde_json::from_slice(&frame).unwrap();
        assert_eq!(hb["heartbeat"]["position"], 11);
    }

    fn first_line(text: &str, position: u64) -> String {
        text.lines()
            .find(|l| l.contains(&format!("\"position\":{position},")))
            .unwrap_or_else(|| panic!("no position {position} in {text}"))
            .to_string()
    }

    #[test]
    fn event_text_is_event_json() {
        let mut e = RecordedEvent {
            id: uuid::Uuid::now_v7(),
            stream_id: "server-group-abc".into(),
            stream_version: 3,
            position: 42,
            recorded_at: chrono::Utc::now(),
            event_type: "compute.ServerTaskFinished.v1".into(),
            payload: strata_proto::compute::ServerTaskFinished {
                vm_state: "stopped \"x\"\n".into(),
                power_state: 4,
            }
            .encode_to_vec(),
            correlation_id: "req-1".into(),
            causation_id: "c".into(),
            principal: strata_events::Principal {
                user_id: "u".into(),
                user_name: "ü".into(),
                project_id: "p".into(),
                domain_id: "d".into(),
                roles: vec!["admin".into(), "member".into()],
            },
            prev_hash: [1; 32],
            hash: [7; 32],
        };
        let same = |e: &RecordedEvent| {
            let mut v = event_json(e, None);
            v["project"] = json!("p9");
            assert_eq!(event_text(e, "p9"), v.to_string());
        };
        same(&e);
        e.event_type = "compute.NoSuch.v1".into();
        same(&e);
        e.event_type = "nothing.At.v1".into();
        e.stream_id = "odd".into();
        same(&e);
        // Secrets are redacted the same way.
        e.event_type = "identity.UserCreated.v1".into();
        e.stream_id = "user-u1".into();
        e.payload = strata_proto::identity::UserCreated {
            user_id: "u1".into(),
            password_hash: "$argon2id$secret".into(),
            ..Default::default()
        }
        .encode_to_vec();
        same(&e);
        let text = event_text(&e, "p9");
        assert!(
            !text.contains("argon2") && text.contains("<redacted>"),
            "{text}"
        );
        let frame = Format::Protobuf.event(&e, None);
        let mut buf = &frame[..];
        let env = strata_proto::envelope::EventEnvelope::decode_length_delimited(&mut buf).unwrap();
        let payload = strata_proto::identity::UserCreated::decode(&env.payload[..]).unwrap();
        assert_eq!(payload.password_hash, "<redacted>");
        assert_eq!(env.hash, e.hash.to_vec(), "the stored hash is kept");
    }

    #[actix_web::test]
    async fn ndjson_and_protobuf_frames() {
        let (_log, audit) = audit_with(2).await;
        let mut body = Box::pin(open(audit.clone(), feed(0, Format::Ndjson), None));
        let text = read_until(&mut body, "\n", 2).await;
        let v: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(v["position"], 1);
        assert_eq!(v["category"], "compute");
        assert_eq!(v["project"], "");
        let mut body = Box::pin(open(audit, feed(1, Format::Protobuf), None));
        let frame = body.next().await.unwrap().unwrap();
        let env =
            strata_proto::envelope::EventEnvelope::decode_length_delimited(&frame[..]).unwrap();
        assert_eq!(env.position, 2);
        assert_eq!(env.event_type, "compute.FlavorDeleted.v1");
        let frame = body.next().await.unwrap().unwrap();
        assert_eq!(&frame[..], &[0], "a heartbeat is an empty message");
    }

    #[actix_web::test]
    async fn a_client_that_stops_reading_is_dropped() {
        let (_log, audit) = audit_with(50).await;
        let mut body = Box::pin(open(audit, feed(0, Format::Sse), None));
        // Read one frame, then stop reading: the producer fills the channel and gives up.
        assert!(body.next().await.unwrap().is_ok());
        let started = Instant::now();
        tokio::time::sleep(Duration::from_millis(800)).await;
        match body.next().await {
            Some(Err(StreamError::SlowConsumer(_))) => {}
            other => panic!("expected the slow consumer error, got {other:?}"),
        }
        assert!(body.next().await.is_none());
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[actix_web::test]
    async fn the_producer_stops_when_the_client_goes() {
        let (_log, audit) = audit_with(2).await;
        let body = Box::pin(open(audit.clone(), feed(0, Format::Sse), None));
        drop(body);
        // The producer notices the closed channel: only the test holds the audit afterwards.
        let deadline = Instant::now() + Duration::from_secs(5);
        while Arc::strong_count(&audit.clone().into_inner()) > 2 {
            assert!(Instant::now() < deadline, "the producer kept running");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
