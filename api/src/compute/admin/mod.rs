//! Nova's admin APIs: `os-hypervisors`, `os-services`, `os-availability-zone` and `os-aggregates`, in the shapes
//! of every microversion up to 2.81.
//!
//! A compute host (`ComputeHost`, one per fake agent) is both a hypervisor and a `nova-compute` service. Nova
//! names them by integers before 2.53 and by uuids from 2.53: the integers are derived here (a hypervisor is
//! its host's 1-based position in name order; its service is that position plus 2, after nova-scheduler (1)
//! and nova-conductor (2)), the uuids are the host's `hypervisor_id` and `service_id`. The scheduler and the
//! conductor run inside this server: they are listed on host "strata" in the "internal" zone, always up and
//! enabled, and cannot be updated or deleted.
//!
//! Aggregates take integer ids from the `host-aggregate` sequence and keep their names unique with the
//! identity `NameClaim` (kind "aggregate", owned by the aggregate's uuid). An aggregate's availability zone is
//! its own field (what the scheduler reads); like Nova, the API also shows it as the `availability_zone`
//! metadata key and accepts it there in `set_metadata`.
//!
//! Every check (policy, body, references, zone conflicts) runs before the first command, so a rejected request
//! appends nothing. The zone checks read the view: two concurrent requests putting one host into two zones
//! are not serialised against each other.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};
use sha2::Digest;
use strata_actors::compute::{HostAggregateCommand, HostCommand, Next};
use strata_projections::compute::{AggregateRow, ComputeView, HostRow};

use super::common::{
    bool_str, invalid, marker_not_found, not_in_version, null_if_empty, parse_json,
    skip_past_marker, Query, MAX_LIMIT,
};
use super::{Caller, Compute, Microversion, NovaError};
use crate::identity::Identity;
mod hypervisors;
use hypervisors::*;
mod services;
use services::*;
mod zones;
use zones::*;
mod aggregates;
use aggregates::*;

/// The zone Nova gives services that are not nova-compute.
const INTERNAL_ZONE: &str = "internal";
/// The host the in-process scheduler and conductor report.
const INTERNAL_HOST: &str = "strata";
const COMPUTE_BINARY: &str = "nova-compute";
/// In the order of their integer ids (1, 2).
const INTERNAL_BINARIES: [&str; 2] = ["nova-scheduler", "nova-conductor"];
/// The `Sequence` aggregate that numbers host aggregates.
const AGGREGATE_SEQUENCE: &str = "host-aggregate";
/// The `NameClaim` kind of aggregate names.
const NAME_KIND: &str = "aggregate";
/// What Nova's fake driver reports as its version.
const HYPERVISOR_VERSION: u64 = 1000;

pub fn configure(cfg: &mut web::ServiceConfig) {
    // The fixed paths come before `{id}` so they are matched first.
    cfg.route(
        "/v2.1/os-hypervisors",
        web::get().to(hypervisor_list::<false>),
    )
    .route(
        "/v2.1/os-hypervisors/detail",
        web::get().to(hypervisor_list::<true>),
    )
    .route(
        "/v2.1/os-hypervisors/statistics",
        web::get().to(hypervisor_statistics),
    )
    .route("/v2.1/os-hypervisors/{id}", web::get().to(hypervisor_show))
    .route(
        "/v2.1/os-hypervisors/{id}/uptime",
        web::get().to(hypervisor_uptime),
    )
    .route(
        "/v2.1/os-hypervisors/{pattern}/search",
        web::get().to(hypervisor_search::<false>),
    )
    .route(
        "/v2.1/os-hypervisors/{pattern}/servers",
        web::get().to(hypervisor_search::<true>),
    )
    .route("/v2.1/os-services", web::get().to(service_list))
    .service(
        web::resource("/v2.1/os-services/{id}")
            .route(web::put().to(service_update))
            .route(web::delete().to(service_delete)),
    )
    .route("/v2.1/os-availability-zone", web::get().to(zone_list))
    .route(
        "/v2.1/os-availability-zone/detail",
        web::get().to(zone_detail),
    )
    .service(
        web::resource("/v2.1/os-aggregates")
            .route(web::get().to(aggregate_list))
            .route(web::post().to(aggregate_create)),
    )
    .service(
        web::resource("/v2.1/os-aggregates/{id}")
            .route(web::get().to(aggregate_show))
            .route(web::put().to(aggregate_update))
            .route(web::delete().to(aggregate_delete)),
    )
    .route(
        "/v2.1/os-aggregates/{id}/action",
        web::post().to(aggregate_action),
    )
    .route(
        "/v2.1/os-aggregates/{id}/images",
        web::post().to(aggregate_images),
    );
}

// ---------------------------------------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------------------------------------

/// An admin-only action of Nova's policy table.
fn admin(caller: &Caller, action: &str) -> Result<(), NovaError> {
    caller.enforce(action, &caller.project_id)
}

/// Nova's timestamps: naive UTC with microseconds (`2016-12-27T22:51:32.000000`); null when unknown.
fn nova_time(ts: &str) -> Value {
    match DateTime::parse_from_rfc3339(ts) {
        Ok(t) => json!(t
            .with_timezone(&Utc)
            .format("%Y-%m-%dT%H:%M:%S%.6f")
            .to_string()),
        Err(_) if ts.is_empty() => Value::Null,
        Err(_) => json!(ts),
    }
}

fn nova_now() -> Value {
    json!(Utc::now().format("%Y-%m-%dT%H:%M:%S%.6f").to_string())
}

/// `v` as an object whose keys are all in `allowed` (Nova's schemas forbid additional properties).
fn object<'a>(
    v: &'a Value,
    field: &str,
    allowed: &[&str],
) -> Result<&'a Map<String, Value>, NovaError> {
    let m = v
        .as_object()
        .ok_or_else(|| invalid(field, v, &format!("{v} is not of type 'object'")))?;
    if let Some(k) = m.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(invalid(
            field,
            v,
            &format!("Additional properties are not allowed ('{k}' was unexpected)"),
        ));
    }
    Ok(m)
}

/// The object under the body's only key `key` (`{"aggregate": {...}}`).
fn wrapped<'a>(
    v: &'a Value,
    key: &str,
    allowed: &[&str],
) -> Result<&'a Map<String, Value>, NovaError> {
    let top = object(v, key, &[key])?;
    let inner = top
        .get(key)
        .ok_or_else(|| invalid(key, v, &format!("'{key}' is a required property")))?;
    object(inner, key, allowed)
}

/// Nova's `boolean` parameter type: JSON booleans and the usual spellings.
fn bool_value(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => bool_str(s),
        _ => None,
    }
}

/// Nova's `hostname` parameter type.
fn valid_hostname(s: &str) -> bool {
    (2..=255).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
}

/// Nova's `name` format: 1 to 255 printable characters without leading or trailing whitespace.
fn valid_name(s: &str) -> bool {
    let n = s.chars().count();
    (1..=255).contains(&n) && s.trim() == s && !s.chars().any(char::is_control)
}

/// Nova's `az_name` format: a name without ':' (that separates `zone:host:node`).
fn valid_zone(s: &str) -> bool {
    valid_name(s) && !s.contains(':')
}

/// A string field of 1 to 255 characters.
fn short_string<'a>(m: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, NovaError> {
    match m.get(key) {
        None => Ok(None),
        Some(Value::String(s)) if (1..=255).contains(&s.chars().count()) => Ok(Some(s)),
        Some(other) => Err(invalid(
            key,
            other,
            "It must be a string of 1 to 255 characters.",
        )),
    }
}

/// When a service stopped counting as up, for `state`.
struct Clock {
    now: DateTime<Utc>,
    down_time: Duration,
}

impl Clock {
    fn of(compute: &Compute) -> Self {
        Clock {
            now: Utc::now(),
            down_time: compute.engine.config().scheduler.service_down_time,
        }
    }

    /// Like `Compute::service_up`, with one clock for a whole listing.
    fn up(&self, h: &HostRow) -> bool {
        strata_compute::scheduler::service_up(h, self.now, self.down_time)
    }
}

/// Registered compute hosts with their 1-based position in name order (Nova's integer ids before 2.53).
fn compute_hosts(view: &ComputeView) -> Vec<(usize, &HostRow)> {
    view.hosts
        .values()
        .filter(|h| h.state.exists)
        .enumerate()
        .map(|(i, h)| (i + 1, h))
        .collect()
}
