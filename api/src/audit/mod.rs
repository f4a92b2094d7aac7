//! Strata's own audit API (`/audit/v1`) and event streams (`/events/v1`) on :8999, in the catalog as `audit`.
//!
//! Everything here is generic over services: a resource is a stream (`<type>-<id>`), its state at any point
//! is its events folded with the aggregate's own `apply` (`strata_actors::registry`), and which events
//! concern which project, user or request comes from the `AuditIndex` projection. The audit API is for
//! admins and the read-only `auditor` role; event streams are also open to tenants, limited to their
//! project's events.

pub mod consumers;
mod health;
pub mod render;
pub mod resources;
pub mod streams;

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use serde_json::json;
use strata_events::EventLog;
use strata_projections::audit::AuditIndex;
use strata_projections::Live;

use crate::auth::AuthContext;

/// Roles that may read every project's history.
pub const AUDIT_ROLES: &[&str] = &["admin", "auditor"];

/// The audit service's state.
pub struct Audit {
    pub log: Arc<dyn EventLog>,
    pub index: Live<AuditIndex>,
    /// How often an idle event stream sends a heartbeat.
    pub heartbeat: Duration,
    /// Whether point-in-time snapshots may be written beside the log (false on a read-only log).
    pub write_snapshots: bool,
    /// How many rendered events one event stream may hold for a client before it waits.
    pub stream_buffer: usize,
    /// How long an event stream waits for a client that stopped reading before it drops the connection.
    pub slow_consumer_timeout: Duration,
    /// The durable consumers' positions (one record beside the log).
    pub consumers: consumers::Store,
    /// Recent events' JSON, rendered once for every stream.
    pub rendered: streams::RenderCache,
}

/// How many recent positions' JSON the streams share (about 10 MB when full of typical events).
pub const RENDER_CACHE: usize = 16 * 1024;

impl Audit {
    pub fn new(log: Arc<dyn EventLog>, index: Live<AuditIndex>) -> Self {
        Audit {
            log,
            index,
            heartbeat: Duration::from_secs(15),
            write_snapshots: true,
            stream_buffer: 256,
            slow_consumer_timeout: Duration::from_secs(5),
            consumers: consumers::Store::default(),
            rendered: streams::RenderCache::new(RENDER_CACHE),
        }
    }
}

/// An audit API error: `{"error": {"code", "title", "message"}}`.
#[derive(Debug, Clone)]
pub struct AuditError {
    pub status: StatusCode,
    pub message: String,
}

impl AuditError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        AuditError {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    pub fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "audit request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("internal error: {e}"),
        )
    }
}

impl std::fmt::Display for AuditError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.message)
    }
}

impl ResponseError for AuditError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status).json(json!({
            "error": {
                "code": self.status.as_u16(),
                "title": self.status.canonical_reason().unwrap_or(""),
                "message": self.message,
            }
        }))
    }
}

/// The caller, authenticated (401 otherwise).
pub fn caller(req: &HttpRequest) -> Result<AuthContext, AuditError> {
    crate::auth::authenticate(req)
        .map_err(|e| AuditError::new(StatusCode::UNAUTHORIZED, e.to_string()))
}

/// The caller, who must be an admin or an auditor (403 otherwise).
pub fn auditor(req: &HttpRequest) -> Result<AuthContext, AuditError> {
    let ctx = caller(req)?;
    if AUDIT_ROLES.iter().any(|r| ctx.has_role(r)) {
        Ok(ctx)
    } else {
        Err(AuditError::new(
            StatusCode::FORBIDDEN,
            "the audit API needs the admin or auditor role",
        ))
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(versions))
        .route("/audit/v1", web::get().to(version))
        .route("/audit/v1/", web::get().to(version));
    resources::configure(cfg);
    health::configure(cfg);
    streams::configure(cfg);
    consumers::configure(cfg);
}

async fn versions(req: HttpRequest) -> HttpResponse {
    let base = crate::common::base_url(&req);
    HttpResponse::Ok().json(json!({
        "versions": [
            { "id": "audit-v1", "status": "CURRENT", "links": [{ "rel": "self", "href": format!("{base}/audit/v1") }] },
            { "id": "events-v1", "status": "CURRENT", "links": [{ "rel": "self", "href": format!("{base}/events/v1") }] },
        ]
    }))
}

async fn version(req: HttpRequest) -> HttpResponse {
    let base = crate::common::base_url(&req);
    HttpResponse::Ok().json(json!({
        "version": { "id": "audit-v1", "status": "CURRENT" },
        "links": [
            { "rel": "timeline", "href": format!("{base}/audit/v1/resources/{{type}}/{{id}}/timeline") },
            { "rel": "state", "href": format!("{base}/audit/v1/resources/{{type}}/{{id}}/state") },
            { "rel": "events", "href": format!("{base}/audit/v1/events") },
            { "rel": "integrity", "href": format!("{base}/audit/v1/integrity") },
            { "rel": "stream", "href": format!("{base}/events/v1/stream") },
        ]
    }))
}
