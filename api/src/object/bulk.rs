//! Bulk delete (`POST /v1/AUTH_x?bulk-delete`, also `DELETE ?bulk-delete`): a plain-text body of
//! URL-encoded `/container/object` or `/container` paths, one per line. Objects go first, then containers
//! (each in the order given), and the answer counts what went, what was not there and what failed, in
//! Swift's bulk middleware format. As in Swift the HTTP status is always 200 once the request reached the
//! middleware: the outcome (`Response Status`) is in the body, as text, JSON or XML per `Accept`.
//!
//! The same report answers `DELETE ?multipart-manifest=delete` (see `large.rs`).

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use futures::StreamExt;
use serde_json::{Map, Value};

use super::large::delete_one;
use super::{Ctx, SwiftError};

/// Most paths one bulk delete request may name.
pub const MAX_DELETES_PER_REQUEST: usize = 10_000;
/// Failures after which a bulk delete stops (what `/info` advertises as `max_failed_deletes`).
pub const MAX_FAILED_DELETES: usize = MAX_DELETES_PER_REQUEST;
/// Longest path a line may hold once decoded: object name + container name + two slashes (Swift's
/// `max_path_length`); a line longer than twice that is refused.
const MAX_PATH_LENGTH: usize = super::OBJECT_NAME_MAX + super::CONTAINER_NAME_MAX + 2;

/// What the bulk responses can be written as, in Swift's order of preference.
pub const ACCEPTABLE_FORMATS: [&str; 4] = [
    "text/plain",
    "application/json",
    "application/xml",
    "text/xml",
];

/// The offer the `Accept` header prefers, the way swob's `Accept.best_match` picks it: patterns sorted by
/// quality then specificity (ties keep their order), the first offer matching the best pattern wins; no
/// header: the first offer. `None` when nothing is acceptable or the header is malformed.
pub fn best_match(accept: Option<&str>, offers: &[&'static str]) -> Option<&'static str> {
    let header = accept.map(str::trim).unwrap_or("");
    if header.is_empty() {
        return offers.first().copied();
    }
    let is_token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b > 0x20 && b != 0x7f && !b"()<>@,;:\\\"/[]?={}".contains(&b))
    };
    let mut patterns: Vec<(String, String, f64, bool)> = Vec::new();
    for item in header.split(',') {
        let mut parts = item.split(';');
        let media = parts.next().unwrap_or("").trim();
        let (typ, sub) = media.split_once('/')?;
        if !is_token(typ) || !is_token(sub) {
            return None;
        }
        let mut quality = 1.0;
        let mut seen_q = false;
        for param in parts {
            let param = param.trim();
            if param.is_empty() {
                continue;
            }
            let (name, value) = param.split_once('=')?;
            if name.trim() == "q" {
                if seen_q {
                    return None;
                }
                seen_q = true;
                quality = value.trim().parse::<f64>().ok()?;
            }
        }
        let specific = typ != "*" && sub != "*";
        patterns.push((
            typ.to_ascii_lowercase(),
            sub.to_ascii_lowercase(),
            quality,
            specific,
        ));
    }
    // Stable: equal (quality, specificity) keep the header's order, like Python's sort.
    patterns.sort_by(|a, b| {
        (b.2, b.3)
            .partial_cmp(&(a.2, a.3))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    for (typ, sub, _, _) in &patterns {
        for offer in offers {
            let (otyp, osub) = offer.split_once('/').unwrap_or((offer, ""));
            if (typ == "*" || typ == otyp) && (sub == "*" || sub == osub) {
                return Some(offer);
            }
        }
    }
    None
}

/// The format a bulk answer is written in for this request (`None`: nothing acceptable, 406 in the body).
pub fn out_format(ctx: &Ctx<'_>) -> Option<&'static str> {
    best_match(ctx.header("accept"), &ACCEPTABLE_FORMATS)
}

/// Python's `urllib.parse.quote(s)` (`/` kept): how Swift names failed paths.
pub fn quote(s: &str) -> String {
    quote_bytes(s.as_bytes())
}

fn quote_bytes(s: &[u8]) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `"<code> <reason>"` with Swift's reason phrases.
pub fn status_line(status: StatusCode) -> String {
    let reason = match status.as_u16() {
        413 => "Request Entity Too Large",
        416 => "Requested Range Not Satisfiable",
        499 => "Client Disconnect",
        500 => "Internal Error",
        _ => status.canonical_reason().unwrap_or(""),
    };
    format!("{} {reason}", status.as_u16())
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Swift's `get_heartbeat_response_body`: `fields` and the failed `(path, status)` pairs as JSON, XML
/// (root element `root`, no declaration) or text (`Key: value` lines sorted by key, then `Errors:`).
pub fn response_body(
    format: Option<&str>,
    fields: &[(&str, Value)],
    errors: &[(String, String)],
    root: &str,
) -> String {
    let shown = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if format == Some("application/json") {
        let mut map = Map::new();
        for (k, v) in fields {
            map.insert((*k).to_string(), v.clone());
        }
        let list = errors
            .iter()
            .map(|(p, s)| Value::from(vec![p.clone(), s.clone()]))
            .collect();
        map.insert("Errors".into(), Value::Array(list));
        return Value::Object(map).to_string();
    }
    let mut sorted: Vec<&(&str, Value)> = fields.iter().collect();
    sorted.sort_by_key(|(k, _)| *k);
    if format.is_some_and(|f| f.ends_with("/xml")) {
        let mut out = format!("<{root}>\n");
        for (k, v) in sorted {
            let tag = k.replace(' ', "_").to_lowercase();
            out.push_str(&format!("<{tag}>{}</{tag}>\n", xml_escape(&shown(v))));
        }
        out.push_str("<errors>\n");
        for (name, status) in errors {
            out.push_str(&format!(
                "<object><name>{}</name><status>{}</status></object>\n",
                xml_escape(name),
                xml_escape(status)
            ));
        }
        out.push_str(&format!("</errors>\n</{root}>\n"));
        return out;
    }
    let mut out = String::new();
    for (k, v) in sorted {
        out.push_str(&format!("{k}: {}\n", shown(v)));
    }
    out.push_str("Errors:\n");
    for (name, status) in errors {
        out.push_str(&format!("{name}, {status}\n"));
    }
    out
}

/// The `Content-Type` of an answer written in `format`.
pub fn content_type(format: Option<&str>) -> String {
    match format {
        Some("text/plain") | None => "text/plain; charset=utf-8".into(),
        Some(f) => format!("{f}; charset=utf-8"),
    }
}

/// The outcome of deleting several things, in Swift's bulk-delete response shape.
#[derive(Debug, Default)]
pub struct DeleteReport {
    pub deleted: u64,
    pub not_found: u64,
    /// `(quoted path, status line or message)` of what could not be deleted.
    pub errors: Vec<(String, String)>,
    /// A deletion failed with a server error: the overall status is 502.
    server_error: bool,
    /// The whole operation stopped early (or never started): its status and message.
    stopped: Option<(StatusCode, String)>,
}

impl DeleteReport {
    /// Count the result of deleting `path` (unquoted).
    pub fn record(&mut self, path: &str, result: Result<(), SwiftError>) {
        match result {
            Ok(()) => self.deleted += 1,
            Err(e) if e.status == StatusCode::NOT_FOUND => self.not_found += 1,
            Err(e) => {
                if e.status.is_server_error() {
                    self.server_error = true;
                }
                self.errors.push((quote(path), status_line(e.status)));
            }
        }
    }

    /// `path` (unquoted) was not deleted, for `reason`.
    pub fn fail(&mut self, path: &str, reason: impl Into<String>) {
        self.errors.push((quote(path), reason.into()));
    }

    /// Stop: the rest is not attempted and the answer carries this status and message.
    pub fn stop(&mut self, status: StatusCode, message: impl Into<String>) {
        self.stopped = Some((status, message.into()));
    }

    /// Too many failures to go on (then [`DeleteReport::stop`] has been called).
    pub fn gave_up(&mut self) -> bool {
        if self.stopped.is_some() {
            return true;
        }
        if self.errors.len() >= MAX_FAILED_DELETES {
            self.stop(StatusCode::BAD_REQUEST, "Max delete failures exceeded");
            return true;
        }
        false
    }

    /// The overall `Response Status` and `Response Body`.
    pub fn outcome(&self) -> (String, String) {
        if let Some((status, message)) = &self.stopped {
            return (status_line(*status), message.clone());
        }
        if !self.errors.is_empty() {
            let status = if self.server_error {
                StatusCode::BAD_GATEWAY
            } else {
                StatusCode::BAD_REQUEST
            };
            return (status_line(status), String::new());
        }
        if self.deleted == 0 && self.not_found == 0 {
            return (
                status_line(StatusCode::BAD_REQUEST),
                "Invalid bulk delete.".into(),
            );
        }
        (status_line(StatusCode::OK), String::new())
    }

    /// 200 with the report written in `format`.
    pub fn respond(&self, format: Option<&str>) -> HttpResponse {
        let (status, message) = self.outcome();
        let fields = [
            ("Response Status", Value::from(status)),
            ("Response Body", Value::from(message)),
            ("Number Deleted", Value::from(self.deleted)),
            ("Number Not Found", Value::from(self.not_found)),
        ];
        HttpResponse::Ok()
            .content_type(content_type(format))
            .body(response_body(format, &fields, &self.errors, "delete"))
    }
}

/// One line of a bulk delete body.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Line {
    /// The decoded path (may be empty: skipped).
    Path(String),
    /// Not UTF-8 once decoded, or holding NUL: these bytes.
    Invalid(Vec<u8>),
}

impl Line {
    /// An object path (a `/` inside once the outer slashes are trimmed) rather than a container.
    fn is_object(&self) -> bool {
        match self {
            Line::Path(p) => p.trim_matches('/').contains('/'),
            Line::Invalid(b) => {
                let start = b.iter().position(|c| *c != b'/').unwrap_or(b.len());
                let end = b.iter().rposition(|c| *c != b'/').map_or(start, |e| e + 1);
                b[start..end.max(start)].contains(&b'/')
            }
        }
    }
}

fn decode_line(raw: &[u8]) -> Line {
    let trimmed = raw.trim_ascii();
    let bytes: Vec<u8> = percent_encoding::percent_decode(trimmed).collect();
    match String::from_utf8(bytes) {
        Ok(s) if !s.contains('\0') => Line::Path(s),
        Ok(s) => Line::Invalid(s.into_bytes()),
        Err(e) => Line::Invalid(e.into_bytes()),
    }
}

/// The lines of the body, read as they come: 413 past [`MAX_DELETES_PER_REQUEST`] lines, 400 for a line
/// longer than any path could be.
async fn read_lines(mut body: web::Payload) -> Result<Vec<Line>, SwiftError> {
    let mut lines = Vec::new();
    let mut pending: Vec<u8> = Vec::new();
    let too_many = || {
        SwiftError::too_large(format!(
            "Maximum Bulk Deletes: {MAX_DELETES_PER_REQUEST} per request"
        ))
    };
    while let Some(chunk) = body.next().await {
        let chunk =
            chunk.map_err(|_| SwiftError::text(StatusCode::BAD_REQUEST, "Client Disconnect"))?;
        pending.extend_from_slice(&chunk);
        while let Some(i) = pending.iter().position(|b| *b == b'\n') {
            let rest = pending.split_off(i + 1);
            lines.push(decode_line(&pending[..i]));
            pending = rest;
            if lines.len() > MAX_DELETES_PER_REQUEST {
                return Err(too_many());
            }
        }
        if pending.len() > MAX_PATH_LENGTH * 2 {
            return Err(SwiftError::bad_request("Invalid File Name"));
        }
    }
    if !pending.trim_ascii().is_empty() {
        lines.push(decode_line(&pending));
        if lines.len() > MAX_DELETES_PER_REQUEST {
            return Err(too_many());
        }
    }
    Ok(lines)
}

pub async fn bulk_delete(ctx: &Ctx<'_>, body: web::Payload) -> Result<HttpResponse, SwiftError> {
    let format = out_format(ctx);
    let mut report = DeleteReport::default();
    if let Err(e) = run(ctx, format, body, &mut report).await {
        report.stop(e.status, if e.html { String::new() } else { e.body });
    }
    Ok(report.respond(format))
}

async fn run(
    ctx: &Ctx<'_>,
    format: Option<&str>,
    body: web::Payload,
    report: &mut DeleteReport,
) -> Result<(), SwiftError> {
    if format.is_none() {
        return Err(SwiftError::text(StatusCode::NOT_ACCEPTABLE, ""));
    }
    if let Some(ct) = ctx.header("content-type") {
        if !ct.is_empty() && !ct.starts_with("text/plain") {
            return Err(SwiftError::text(StatusCode::NOT_ACCEPTABLE, ""));
        }
    }
    let chunked = ctx
        .header("transfer-encoding")
        .is_some_and(|t| t.to_ascii_lowercase().contains("chunked"));
    if ctx.header("content-length").is_none() && !chunked {
        return Err(SwiftError::text(StatusCode::LENGTH_REQUIRED, ""));
    }
    let lines = read_lines(body).await?;
    for objects in [true, false] {
        for line in lines.iter().filter(|l| l.is_object() == objects) {
            match line {
                Line::Path(p) if p.is_empty() => continue,
                Line::Path(p) => {
                    let result = delete_path(ctx, p).await;
                    report.record(p, result);
                }
                Line::Invalid(bytes) => report.errors.push((
                    quote_bytes(bytes),
                    status_line(StatusCode::PRECONDITION_FAILED),
                )),
            }
            if report.gave_up() {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Delete `/container/object` or `/container` (decoded) of the request's account.
async fn delete_path(ctx: &Ctx<'_>, path: &str) -> Result<(), SwiftError> {
    let path = path.trim_start_matches('/');
    match path.split_once('/') {
        Some((container, object)) if !object.trim_matches('/').is_empty() => {
            delete_one(ctx, container, object, "bulk-delete").await
        }
        _ => {
            let container = path.trim_end_matches('/');
            if container.is_empty() {
                return Err(SwiftError::bad_request("Invalid container name"));
            }
            if !ctx.access.is_owner() {
                return Err(ctx.access.denied());
            }
            ctx.service()
                .delete_container(&ctx.target.account, container, ctx.meta())
                .await
                .map_err(SwiftError::from)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_picks_like_swob() {
        let f = &ACCEPTABLE_FORMATS;
        assert_eq!(best_match(None, f), Some("text/plain"));
        assert_eq!(best_match(Some(""), f), Some("text/plain"));
        assert_eq!(
            best_match(Some("application/json"), f),
            Some("application/json")
        );
        assert_eq!(best_match(Some("*/*"), f), Some("text/plain"));
        assert_eq!(
            best_match(Some("text/*;q=0.5, application/json"), f),
            Some("application/json")
        );
        assert_eq!(best_match(Some("*/*;q=0.9, text/xml"), f), Some("text/xml"));
        assert_eq!(
            best_match(Some("application/json;q=0.8, application/*"), f),
            Some("application/json"),
            "ties on quality keep specific patterns first"
        );
        assert_eq!(best_match(Some("image/png"), f), None);
        assert_eq!(best_match(Some("garbage"), f), None);
        assert_eq!(best_match(Some("text/plain;q=x"), f), None);
    }

    #[test]
    fn bodies_follow_swifts_heartbeat_format() {
        let mut r = DeleteReport::default();
        r.record("/c/a b", Ok(()));
        r.record("/c/gone", Err(SwiftError::not_found()));
        r.record("/c", Err(SwiftError::conflict()));
        let (status, body) = r.outcome();
        assert_eq!(status, "400 Bad Request");
        assert_eq!(body, "");
        let fields = [
            ("Response Status", Value::from(status)),
            ("Response Body", Value::from(body)),
            ("Number Deleted", Value::from(r.deleted)),
            ("Number Not Found", Value::from(r.not_found)),
        ];
        assert_eq!(
            response_body(Some("text/plain"), &fields, &r.errors, "delete"),
            "Number Deleted: 1\nNumber Not Found: 1\nResponse Body: \nResponse Status: 400 Bad Request\nErrors:\n/c, 409 Conflict\n"
        );
        let v: Value = serde_json::from_str(&response_body(
            Some("application/json"),
            &fields,
            &r.errors,
            "delete",
        ))
        .unwrap();
        assert_eq!(v["Number Deleted"], 1);
        assert_eq!(v["Errors"][0][1], "409 Conflict");
        let xml = response_body(Some("text/xml"), &fields, &r.errors, "delete");
        assert!(
            xml.starts_with("<delete>\n<number_deleted>1</number_deleted>\n"),
            "{xml}"
        );
        assert!(xml.contains("<object><name>/c</name><status>409 Conflict</status></object>"));

        let mut r = DeleteReport::default();
        r.record("/c/x", Err(SwiftError::internal("boom")));
        assert_eq!(r.outcome().0, "502 Bad Gateway");
        assert_eq!(
            DeleteReport::default().outcome(),
            (
                "400 Bad Request".to_string(),
                "Invalid bulk delete.".to_string()
            )
        );
        let mut r = DeleteReport::default();
        r.stop(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Maximum Bulk Deletes: 1 per request",
        );
        assert_eq!(r.outcome().0, "413 Request Entity Too Large");
    }

    #[test]
    fn lines_decode_and_sort_into_objects_and_containers() {
        assert_eq!(decode_line(b" /c/a%20b\r"), Line::Path("/c/a b".into()));
        assert!(decode_line(b"/c/a%20b").is_object());
        assert!(!decode_line(b"/c/").is_object());
        assert!(!decode_line(b"c").is_object());
        assert!(decode_line(b"/c/o/").is_object());
        let bad = decode_line(b"/c/%FF");
        assert_eq!(bad, Line::Invalid(b"/c/\xff".to_vec()));
        assert!(bad.is_object());
        assert!(matches!(decode_line(b"/c/%00"), Line::Invalid(_)));
        assert_eq!(quote("/c/a b/ü"), "/c/a%20b/%C3%BC");
    }
}
