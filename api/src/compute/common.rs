//! What every Nova handler shares: request bodies and query strings read with Nova's fault messages, the
//! small rendering conventions (links, nullable strings, hostId), list paging, and the server lookup that
//! answers 404 for servers the caller may not see.

use actix_web::http::StatusCode;
use actix_web::HttpRequest;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde_json::{json, Value};
use sha2::{Digest, Sha224};
use strata_actors::compute::server::vm;
use strata_compute::ComputeError;
use strata_projections::compute::{ComputeView, ServerRow};

use crate::compute::{Caller, Compute, Microversion, NovaError};

/// Nova's `[api] max_limit`: the largest page any list returns.
pub(crate) const MAX_LIMIT: usize = 1000;

/// A request body as JSON (400 "Malformed request body: ..." otherwise).
pub(crate) fn parse_json(body: &[u8]) -> Result<Value, NovaError> {
    serde_json::from_slice(body)
        .map_err(|e| NovaError::bad_request(format!("Malformed request body: {e}")))
}

/// Nova's schema fault: "Invalid input for field/attribute {field}. Value: {value}. {why}".
pub(crate) fn invalid(field: &str, value: &Value, why: &str) -> NovaError {
    NovaError::bad_request(format!(
        "Invalid input for field/attribute {field}. Value: {value}. {why}"
    ))
}

/// A route that exists only in other microversions (Nova answers 404, as for an unknown path).
pub(crate) fn not_in_version(req: &HttpRequest) -> NovaError {
    NovaError::not_found(format!("The resource could not be found: {}", req.path()))
}

/// `s`, or null when it is empty.
pub(crate) fn null_if_empty(s: &str) -> Value {
    if s.is_empty() {
        Value::Null
    } else {
        json!(s)
    }
}

/// Nova's `hostId`: SHA-224 of project id + host, hex ("" without a host).
pub(crate) fn host_id(project_id: &str, host: &str) -> String {
    if host.is_empty() {
        return String::new();
    }
    hex::encode(Sha224::digest(format!("{project_id}{host}").as_bytes()))
}

/// The `self` and `bookmark` links of the resource `{kind}/{id}` (`kind` may itself be a path).
pub(crate) fn links(base: &str, kind: &str, id: &str) -> Value {
    json!([
        { "rel": "self", "href": format!("{base}/v2.1/{kind}/{id}") },
        { "rel": "bookmark", "href": format!("{base}/{kind}/{id}") },
    ])
}

/// Drop the rows up to and including the one `is_marker` names; `missing` words the fault when none does.
pub(crate) fn skip_past_marker<T>(
    rows: &mut Vec<T>,
    marker: &str,
    is_marker: impl Fn(&T) -> bool,
    missing: fn(&str) -> NovaError,
) -> Result<(), NovaError> {
    let pos = rows
        .iter()
        .position(is_marker)
        .ok_or_else(|| missing(marker))?;
    rows.drain(..=pos);
    Ok(())
}

/// The fault of the older lists (flavors, servers, hypervisors) for an unknown marker.
pub(crate) fn marker_not_found(marker: &str) -> NovaError {
    NovaError::bad_request(format!("marker [{marker}] not found"))
}

/// The fault of the newer lists (usage, migrations, instance actions) for an unknown marker.
pub(crate) fn marker_unknown(marker: &str) -> NovaError {
    NovaError::bad_request(format!("Marker {marker} could not be found."))
}

/// A server as the caller may see it: admins see every project's, others only their own (404 otherwise, so
/// other projects' server ids are not revealed). Deleted servers only with `allow_deleted`.
pub(crate) fn visible_server<'a>(
    view: &'a ComputeView,
    caller: &Caller,
    id: &str,
    allow_deleted: bool,
) -> Result<&'a ServerRow, NovaError> {
    view.servers
        .get(id)
        .map(|s| &**s)
        .filter(|s| allow_deleted || !s.is_deleted())
        .filter(|s| caller.is_admin || s.state.project_id == caller.project_id)
        .ok_or_else(|| NovaError::not_found(format!("Instance {id} could not be found.")))
}

/// [`visible_server`] (not deleted) in a fresh snapshot, as an owned row.
pub(crate) fn server_row(
    compute: &Compute,
    caller: &Caller,
    id: &str,
) -> Result<ServerRow, NovaError> {
    visible_server(&compute.view.snapshot(), caller, id, false).cloned()
}

/// 409 "Instance {id} is locked" when the server is locked and the caller is not an admin.
pub(crate) fn check_unlocked(row: &ServerRow, caller: &Caller) -> Result<(), NovaError> {
    if row.state.locked && !caller.is_admin {
        return Err(NovaError::conflict(format!(
            "Instance {} is locked",
            row.id
        )));
    }
    Ok(())
}

/// 409 unless the server is active, stopped, paused or suspended with no task under way (what attaching,
/// detaching and snapshotting need); `what` names the refused operation as Nova does.
pub(crate) fn check_settled(row: &ServerRow, what: &str) -> Result<(), NovaError> {
    let s = &row.state;
    if !matches!(
        s.vm_state.as_str(),
        vm::ACTIVE | vm::STOPPED | vm::PAUSED | vm::SUSPENDED
    ) || !s.task_state.is_empty()
    {
        return Err(NovaError::conflict(format!(
            "Cannot '{what}' instance {} while it is in vm_state {}",
            row.id, s.vm_state
        )));
    }
    Ok(())
}

/// The compute service's refusal as Nova words it, a hypervisor failure as 500 "{doing}: {cause}".
pub(crate) fn hypervisor_failure(doing: String) -> impl FnOnce(ComputeError) -> NovaError {
    move |e| match e {
        ComputeError::Hypervisor(e) => {
            NovaError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("{doing}: {e}"))
        }
        other => other.into(),
    }
}

/// `changes-since` and `changes-before`, when given.
pub(crate) type Changes = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// A request's query parameters (decoded, repeated keys kept), read as Nova's query schemas do.
pub(crate) struct Query(pub(crate) Vec<(String, String)>);

impl Query {
    pub(crate) fn of(req: &HttpRequest) -> Self {
        Query(crate::common::query_pairs(req))
    }

    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn has(&self, key: &str) -> bool {
        self.0.iter().any(|(k, _)| k == key)
    }

    /// 400 for a parameter outside `allowed` (Nova's query schemas with `additionalProperties: False`).
    pub(crate) fn only(&self, allowed: &[&str]) -> Result<(), NovaError> {
        match self.0.iter().find(|(k, _)| !allowed.contains(&k.as_str())) {
            Some((k, _)) => Err(NovaError::bad_request(format!(
                "Invalid input for query parameters {k}. Additional properties are not allowed ('{k}' was unexpected)"
            ))),
            None => Ok(()),
        }
    }

    /// Nova's `boolean` parameter type (absent: false).
    pub(crate) fn boolean(&self, key: &str) -> Result<bool, NovaError> {
        match self.get(key) {
            None => Ok(false),
            Some(v) => bool_str(v).ok_or_else(|| {
                NovaError::bad_request(format!(
                    "Invalid input for query parameters {key}. Value: {v}. {v} is not a valid boolean"
                ))
            }),
        }
    }

    /// A non-negative integer parameter.
    pub(crate) fn count(&self, key: &str) -> Result<Option<usize>, NovaError> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        match v.trim().parse::<i64>() {
            Ok(n) if n >= 0 => Ok(Some(n as usize)),
            Ok(_) => Err(NovaError::bad_request(format!(
                "{key} param must be positive"
            ))),
            Err(_) => Err(NovaError::bad_request(format!(
                "{key} param must be an integer"
            ))),
        }
    }

    /// Nova's page size: `limit` capped at `max_limit` (0 or absent = `max_limit`).
    pub(crate) fn page_size(&self) -> Result<usize, NovaError> {
        Ok(match self.count("limit")? {
            Some(0) | None => MAX_LIMIT,
            Some(n) => n.min(MAX_LIMIT),
        })
    }

    pub(crate) fn time(&self, key: &str) -> Result<Option<DateTime<Utc>>, NovaError> {
        self.get(key)
            .map(|v| {
                parse_time(v).ok_or_else(|| {
                    NovaError::bad_request(format!(
                        "Invalid input for query parameters {key}. Value: {v}. '{v}' is not a 'date-time'"
                    ))
                })
            })
            .transpose()
    }

    /// `changes-since` and (from `before_from`) `changes-before`, checked against each other.
    pub(crate) fn changes(
        &self,
        mv: Microversion,
        since_from: u32,
        before_from: u32,
    ) -> Result<Changes, NovaError> {
        let since = if mv.0 >= since_from {
            self.time("changes-since")?
        } else {
            None
        };
        let before = if mv.0 >= before_from {
            self.time("changes-before")?
        } else {
            None
        };
        if let (Some(s), Some(b)) = (since, before) {
            if b < s {
                return Err(NovaError::bad_request(
                    "The value of changes-since must be less than or equal to changes-before.",
                ));
            }
        }
        Ok((since, before))
    }
}

/// Nova's `boolean` parameter type as the admin APIs read it: the usual spellings.
pub(crate) fn bool_str(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "1" | "on" | "yes" => Some(true),
        "false" | "0" | "off" | "no" => Some(false),
        _ => None,
    }
}

/// ISO 8601 / RFC 3339 with or without an offset (UTC when none), with `T` or a space, optional fraction;
/// also a bare date. A `+` decoded as a space in a query string is read as `+` again.
pub(crate) fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    let fixed;
    let s = match s.split_once('T') {
        Some((d, t)) if t.contains(' ') => {
            fixed = format!("{d}T{}", t.replace(' ', "+"));
            fixed.as_str()
        }
        _ => s,
    };
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%d %H:%M:%S%.f%z"] {
        if let Ok(t) = DateTime::parse_from_str(s, fmt) {
            return Some(t.with_timezone(&Utc));
        }
    }
    let naive = s.trim_end_matches('Z');
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(naive, fmt) {
            return Some(t.and_utc());
        }
    }
    NaiveDate::parse_from_str(naive, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}
