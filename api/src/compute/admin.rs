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

use super::{Caller, Compute, Microversion, NovaError};
use crate::identity::Identity;

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
/// Nova's `[api] max_limit`.
const MAX_LIMIT: usize = 1000;
/// What Nova's fake driver reports as its version.
const HYPERVISOR_VERSION: u64 = 1000;

pub fn configure(cfg: &mut web::ServiceConfig) {
    // The fixed paths come before `{id}` so they are matched first.
    cfg.route("/v2.1/os-hypervisors", web::get().to(hypervisor_list))
        .route(
            "/v2.1/os-hypervisors/detail",
            web::get().to(hypervisor_detail),
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
            web::get().to(hypervisor_search),
        )
        .route(
            "/v2.1/os-hypervisors/{pattern}/servers",
            web::get().to(hypervisor_servers),
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

/// A route that exists only in other microversions (Nova answers 404, as for an unknown path).
fn not_in_version(req: &HttpRequest) -> NovaError {
    NovaError::not_found(format!("The resource could not be found: {}", req.path()))
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

fn null_if_empty(s: &str) -> Value {
    if s.is_empty() {
        Value::Null
    } else {
        json!(s)
    }
}

fn body_json(body: &[u8]) -> Result<Value, NovaError> {
    serde_json::from_slice(body)
        .map_err(|e| NovaError::bad_request(format!("Malformed request body: {e}")))
}

fn invalid(field: &str, value: &Value, why: &str) -> NovaError {
    NovaError::bad_request(format!(
        "Invalid input for field/attribute {field}. Value: {value}. {why}"
    ))
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
fn bool_str(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "1" | "on" | "yes" => Some(true),
        "false" | "0" | "off" | "no" => Some(false),
        _ => None,
    }
}

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

/// The query string, for Nova's query schemas.
struct Query(Vec<(String, String)>);

impl Query {
    fn of(req: &HttpRequest) -> Self {
        Query(crate::common::query_pairs(req))
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// 400 for a parameter not in `allowed` (the microversions whose query schemas are strict).
    fn only(&self, allowed: &[&str]) -> Result<(), NovaError> {
        match self.0.iter().find(|(k, _)| !allowed.contains(&k.as_str())) {
            Some((k, _)) => Err(NovaError::bad_request(format!(
                "Invalid input for query parameters {k}. Additional properties are not allowed ('{k}' was unexpected)"
            ))),
            None => Ok(()),
        }
    }

    fn boolean(&self, key: &str) -> Result<bool, NovaError> {
        match self.get(key) {
            None => Ok(false),
            Some(v) => bool_str(v).ok_or_else(|| {
                NovaError::bad_request(format!(
                    "Invalid input for query parameters {key}. Value: {v}. {v} is not a valid boolean"
                ))
            }),
        }
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

// ---------------------------------------------------------------------------------------------------------
// os-hypervisors
// ---------------------------------------------------------------------------------------------------------

fn hypervisor_id(mv: Microversion, pos: usize, h: &HostRow) -> Value {
    if mv.0 >= 53 {
        json!(h.state.hypervisor_id)
    } else {
        json!(pos)
    }
}

/// Whether path or marker id `id` names the hypervisor at `pos`.
fn is_hypervisor(mv: Microversion, pos: usize, h: &HostRow, id: &str) -> bool {
    if mv.0 >= 53 {
        h.state.hypervisor_id == id
    } else {
        id.parse::<usize>() == Ok(pos)
    }
}

fn compute_service_id(mv: Microversion, pos: usize, h: &HostRow) -> Value {
    if mv.0 >= 53 {
        json!(h.state.service_id)
    } else {
        json!(pos + INTERNAL_BINARIES.len())
    }
}

fn hypervisor_json(
    view: &ComputeView,
    clock: &Clock,
    mv: Microversion,
    (pos, h): (usize, &HostRow),
    detail: bool,
    with_servers: bool,
) -> Value {
    let s = &h.state;
    let mut v = json!({
        "id": hypervisor_id(mv, pos, h),
        "hypervisor_hostname": h.name,
        "state": if clock.up(h) { "up" } else { "down" },
        "status": if s.disabled { "disabled" } else { "enabled" },
    });
    if detail {
        let inv = &s.inventory;
        let (vcpus_used, ram_used, disk_used) = s.used();
        let free_ram = inv.ram_mb as i64 - ram_used as i64;
        let free_disk = inv.disk_gb as i64 - disk_used as i64;
        let (running, busy) = view.servers_on(&h.name).fold((0u64, 0u64), |(r, b), sv| {
            (r + 1, b + u64::from(!sv.state.task_state.is_empty()))
        });
        v["vcpus"] = json!(inv.vcpus);
        v["vcpus_used"] = json!(vcpus_used);
        v["memory_mb"] = json!(inv.ram_mb);
        v["memory_mb_used"] = json!(ram_used);
        v["free_ram_mb"] = json!(free_ram);
        v["local_gb"] = json!(inv.disk_gb);
        v["local_gb_used"] = json!(disk_used);
        v["free_disk_gb"] = json!(free_disk);
        v["disk_available_least"] = json!(free_disk);
        v["running_vms"] = json!(running);
        v["current_workload"] = json!(busy);
        v["hypervisor_type"] = json!(s.hypervisor_type);
        v["hypervisor_version"] = json!(HYPERVISOR_VERSION);
        v["host_ip"] = json!(s.host_ip);
        // The fake driver reports no CPU model: Nova shows `{}` (a JSON string of it before 2.28).
        v["cpu_info"] = if mv.0 >= 28 { json!({}) } else { json!("{}") };
        v["service"] = json!({
            "host": h.name,
            "id": compute_service_id(mv, pos, h),
            "disabled_reason": null_if_empty(&s.disabled_reason),
        });
    }
    if with_servers {
        let servers: Vec<Value> = view
            .servers_on(&h.name)
            .map(|sv| json!({ "name": sv.state.name, "uuid": sv.id }))
            .collect();
        // Before 2.75 Nova leaves the key out when there are none.
        if !servers.is_empty() || mv.0 >= 75 {
            v["servers"] = json!(servers);
        }
    }
    v
}

fn no_match(pattern: &str) -> NovaError {
    NovaError::not_found(format!(
        "No hypervisor matching '{pattern}' could be found."
    ))
}

/// Hosts whose name contains `pattern` (Nova matches `%pattern%`); 404 when none does.
fn matching<'a>(
    hosts: Vec<(usize, &'a HostRow)>,
    pattern: &str,
) -> Result<Vec<(usize, &'a HostRow)>, NovaError> {
    let found: Vec<_> = hosts
        .into_iter()
        .filter(|(_, h)| h.name.contains(pattern))
        .collect();
    if found.is_empty() {
        return Err(no_match(pattern));
    }
    Ok(found)
}

fn hypervisors(
    compute: &Compute,
    caller: &Caller,
    req: &HttpRequest,
    mv: Microversion,
    detail: bool,
) -> Result<HttpResponse, NovaError> {
    admin(
        caller,
        if detail {
            "os_compute_api:os-hypervisors:list-detail"
        } else {
            "os_compute_api:os-hypervisors:list"
        },
    )?;
    let q = Query::of(req);
    let (mut limit, mut marker, mut pattern, mut with_servers) = (None, None, None, false);
    if mv.0 >= 53 {
        q.only(&[
            "limit",
            "marker",
            "hypervisor_hostname_pattern",
            "with_servers",
        ])?;
        if let Some(p) = q.get("hypervisor_hostname_pattern") {
            if !valid_hostname(p) {
                return Err(NovaError::bad_request(format!(
                    "Invalid input for query parameters hypervisor_hostname_pattern. Value: {p}."
                )));
            }
            pattern = Some(p.to_string());
        }
        with_servers = q.boolean("with_servers")?;
    }
    if mv.0 >= 33 {
        if let Some(l) = q.get("limit") {
            limit = Some(l.parse::<usize>().map_err(|_| {
                NovaError::bad_request(format!(
                    "Invalid input for query parameters limit. Value: {l}. '{l}' does not match '^[0-9]*$'"
                ))
            })?);
        }
        marker = q.get("marker").map(str::to_string);
    }
    if pattern.is_some() && (limit.is_some() || marker.is_some()) {
        return Err(NovaError::bad_request(
            "Paging over hypervisors with the hypervisor_hostname_pattern query parameter is not supported.",
        ));
    }
    let clock = Clock::of(compute);
    let view = compute.view.snapshot();
    let mut rows = compute_hosts(&view);
    if let Some(p) = &pattern {
        rows = matching(rows, p)?;
    }
    if let Some(m) = &marker {
        let at = rows
            .iter()
            .position(|(pos, h)| is_hypervisor(mv, *pos, h, m))
            .ok_or_else(|| NovaError::bad_request(format!("marker [{m}] not found")))?;
        rows.drain(..=at);
    }
    let page = limit.unwrap_or(MAX_LIMIT).min(MAX_LIMIT);
    rows.truncate(page);
    let list: Vec<Value> = rows
        .iter()
        .map(|&row| hypervisor_json(&view, &clock, mv, row, detail, with_servers))
        .collect();
    let mut out = json!({ "hypervisors": list });
    // Paging links from 2.33, when the page is full (never with a hostname pattern).
    if mv.0 >= 33 && pattern.is_none() && page > 0 && rows.len() == page {
        if let Some(&(pos, h)) = rows.last() {
            let base = crate::common::base_url(req);
            let last = hypervisor_id(mv, pos, h);
            let last = last
                .as_str()
                .map_or_else(|| last.to_string(), str::to_string);
            out["hypervisors_links"] = json!([{
                "rel": "next",
                "href": format!(
                    "{base}/v2.1/os-hypervisors{}?limit={page}&marker={}",
                    if detail { "/detail" } else { "" },
                    crate::common::encode(&last)
                ),
            }]);
        }
    }
    Ok(HttpResponse::Ok().json(out))
}

async fn hypervisor_list(
    compute: web::Data<Compute>,
    caller: Caller,
    req: HttpRequest,
    mv: Microversion,
) -> Result<HttpResponse, NovaError> {
    hypervisors(&compute, &caller, &req, mv, false)
}

async fn hypervisor_detail(
    compute: web::Data<Compute>,
    caller: Caller,
    req: HttpRequest,
    mv: Microversion,
) -> Result<HttpResponse, NovaError> {
    hypervisors(&compute, &caller, &req, mv, true)
}

/// The hypervisor a path names: a uuid from 2.53 (400 otherwise), an integer before (404 otherwise).
fn find_hypervisor<'a>(
    view: &'a ComputeView,
    mv: Microversion,
    id: &str,
) -> Result<(usize, &'a HostRow), NovaError> {
    if mv.0 >= 53 && uuid::Uuid::parse_str(id).is_err() {
        return Err(NovaError::bad_request(format!("Invalid uuid {id}")));
    }
    compute_hosts(view)
        .into_iter()
        .find(|(pos, h)| is_hypervisor(mv, *pos, h, id))
        .ok_or_else(|| {
            NovaError::not_found(format!("Hypervisor with ID '{id}' could not be found."))
        })
}

async fn hypervisor_show(
    compute: web::Data<Compute>,
    caller: Caller,
    req: HttpRequest,
    mv: Microversion,
    path: web::Path<String>,
) -> Result<HttpResponse, NovaError> {
    admin(&caller, "os_compute_api:os-hypervisors:show")?;
    let mut with_servers = false;
    if mv.0 >= 53 {
        let q = Query::of(&req);
        q.only(&["with_servers"])?;
        with_servers = q.boolean("with_servers")?;
    }
    let id = path.into_inner();
    let clock = Clock::of(&compute);
    let view = compute.view.snapshot();
    let row = find_hypervisor(&view, mv, &id)?;
    let v = hypervisor_json(&view, &clock, mv, row, true, with_servers);
    Ok(HttpResponse::Ok().json(json!({ "hypervisor": v })))
}

async fn hypervisor_uptime(
    compute: web::Data<Compute>,
    caller: Caller,
    mv: Microversion,
    path: web::Path<String>,
) -> Result<HttpResponse, NovaError> {
    admin(&caller, "os_compute_api:os-hypervisors:uptime")?;
    let id = path.into_inner();
    find_hypervisor(&compute.view.snapshot(), mv, &id)?;
    Err(NovaError::new(
        StatusCode::NOT_IMPLEMENTED,
        "Virt driver does not implement host uptime.",
    ))
}

async fn hypervisor_statistics(
    compute: web::Data<Compute>,
    caller: Caller,
) -> Result<HttpResponse, NovaError> {
    admin(&caller, "os_compute_api:os-hypervisors:statistics")?;
    let view = compute.view.snapshot();
    // Nova sums the hypervisors of enabled services only.
    let mut t = BTreeMap::<&str, i64>::new();
    for (_, h) in compute_hosts(&view) {
        if h.state.disabled {
            continue;
        }
        let inv = &h.state.inventory;
        let (c, r, d) = h.state.used();
        let (running, busy) = view.servers_on(&h.name).fold((0i64, 0i64), |(n, b), s| {
            (n + 1, b + i64::from(!s.state.task_state.is_empty()))
        });
        let free_disk = inv.disk_gb as i64 - d as i64;
        for (k, v) in [
            ("count", 1),
            ("vcpus", i64::from(inv.vcpus)),
            ("vcpus_used", c as i64),
            ("memory_mb", inv.ram_mb as i64),
            ("memory_mb_used", r as i64),
            ("free_ram_mb", inv.ram_mb as i64 - r as i64),
            ("local_gb", inv.disk_gb as i64),
            ("local_gb_used", d as i64),
            ("free_disk_gb", free_disk),
            ("disk_available_least", free_disk),
            ("running_vms", running),
            ("current_workload", busy),
        ] {
            *t.entry(k).or_default() += v;
        }
    }
    let keys = [
        "count",
        "vcpus",
        "vcpus_used",
        "memory_mb",
        "memory_mb_used",
        "free_ram_mb",
        "local_gb",
        "local_gb_used",
        "free_disk_gb",
        "disk_available_least",
        "running_vms",
        "current_workload",
    ];
    let stats: Map<String, Value> = keys
        .iter()
        .map(|k| (k.to_string(), json!(t.get(k).copied().unwrap_or(0))))
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "hypervisor_statistics": stats })))
}

/// `GET /os-hypervisors/{pattern}/search` and `/servers` (before 2.53).
fn legacy_search(
    compute: &Compute,
    caller: &Caller,
    req: &HttpRequest,
    mv: Microversion,
    pattern: &str,
    with_servers: bool,
) -> Result<HttpResponse, NovaError> {
    if mv.0 >= 53 {
        return Err(not_in_version(req));
    }
    admin(
        caller,
        if with_servers {
            "os_compute_api:os-hypervisors:servers"
        } else {
            "os_compute_api:os-hypervisors:search"
        },
    )?;
    let clock = Clock::of(compute);
    let view = compute.view.snapshot();
    let list: Vec<Value> = matching(compute_hosts(&view), pattern)?
        .into_iter()
        .map(|row| hypervisor_json(&view, &clock, mv, row, false, with_servers))
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "hypervisors": list })))
}

async fn hypervisor_search(
    compute: web::Data<Compute>,
    caller: Caller,
    req: HttpRequest,
    mv: Microversion,
    path: web::Path<String>,
) -> Result<HttpResponse, NovaError> {
    legacy_search(&compute, &caller, &req, mv, &path.into_inner(), false)
}

async fn hypervisor_servers(
    compute: web::Data<Compute>,
    caller: Caller,
    req: HttpRequest,
    mv: Microversion,
    path: web::Path<String>,
) -> Result<HttpResponse, NovaError> {
    legacy_search(&compute, &caller, &req, mv, &path.into_inner(), true)
}

// ---------------------------------------------------------------------------------------------------------
// os-services
// ---------------------------------------------------------------------------------------------------------

/// One row of `os-services`.
struct ServiceRow {
    binary: &'static str,
    host: String,
    /// Nova's id before 2.53.
    number: usize,
    uuid: String,
    zone: String,
    disabled: bool,
    disabled_reason: String,
    forced_down: bool,
    up: bool,
    updated_at: Value,
}

/// A stable uuid for an in-process service (the same on every start).
fn internal_uuid(binary: &str) -> String {
    let digest = sha2::Sha256::digest(format!("strata/{INTERNAL_HOST}/{binary}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string()
}

/// Every service: the scheduler and conductor, then one nova-compute per compute host.
fn services(compute: &Compute) -> Vec<ServiceRow> {
    let default_zone = &compute.engine.config().scheduler.default_availability_zone;
    let clock = Clock::of(compute);
    let now = nova_now();
    let mut rows: Vec<ServiceRow> = INTERNAL_BINARIES
        .iter()
        .enumerate()
        .map(|(i, binary)| ServiceRow {
            binary,
            host: INTERNAL_HOST.to_string(),
            number: i + 1,
            uuid: internal_uuid(binary),
            zone: INTERNAL_ZONE.to_string(),
            disabled: false,
            disabled_reason: String::new(),
            forced_down: false,
            up: true,
            updated_at: now.clone(),
        })
        .collect();
    let view = compute.view.snapshot();
    for (pos, h) in compute_hosts(&view) {
        rows.push(ServiceRow {
            binary: COMPUTE_BINARY,
            host: h.name.clone(),
            number: pos + INTERNAL_BINARIES.len(),
            uuid: h.state.service_id.clone(),
            zone: view.host_az(&h.name, default_zone),
            disabled: h.state.disabled,
            disabled_reason: h.state.disabled_reason.clone(),
            forced_down: h.state.forced_down,
            up: clock.up(h),
            updated_at: nova_time(&h.updated_at),
        });
    }
    rows
}

fn service_json(mv: Microversion, s: &ServiceRow) -> Value {
    let mut v = json!({
        "id": if mv.0 >= 53 { json!(s.uuid) } else { json!(s.number) },
        "binary": s.binary,
        "host": s.host,
        "zone": s.zone,
        "status": if s.disabled { "disabled" } else { "enabled" },
        "state": if s.up { "up" } else { "down" },
        "updated_at": s.updated_at,
        "disabled_reason": null_if_empty(&s.disabled_reason),
    });
    if mv.0 >= 11 {
        v["forced_down"] = json!(s.forced_down);
    }
    v
}

async fn service_list(
    compute: web::Data<Compute>,
    caller: Caller,
    req: HttpRequest,
    mv: Microversion,
) -> Result<HttpResponse, NovaError> {
    admin(&caller, "os_compute_api:os-services:list")?;
    let q = Query::of(&req);
    if mv.0 >= 75 {
        q.only(&["host", "binary"])?;
    }
    let host = q.get("host").filter(|h| !h.is_empty());
    let binary = q.get("binary").filter(|b| !b.is_empty());
    let list: Vec<Value> = services(&compute)
        .iter()
        .filter(|s| host.is_none_or(|h| s.host == h) && binary.is_none_or(|b| s.binary == b))
        .map(|s| service_json(mv, s))
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "services": list })))
}

fn only_compute(binary: &str) -> Result<(), NovaError> {
    if binary == COMPUTE_BINARY {
        return Ok(());
    }
    Err(NovaError::bad_request(format!(
        "Updating a {binary} service is not supported. Only nova-compute services can be updated."
    )))
}

/// `PUT /os-services/{id}`: from 2.53 `{id}` is the service's uuid; before, it is the action
/// (`enable`, `disable`, `disable-log-reason`, and from 2.11 `force-down`) and the body names host and binary.
async fn service_update(
    compute: web::Data<Compute>,
    caller: Caller,
    mv: Microversion,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, NovaError> {
    admin(&caller, "os_compute_api:os-services:update")?;
    let id = path.into_inner();
    let v = body_json(&body)?;
    if mv.0 >= 53 {
        update_by_uuid(&compute, &caller, mv, &id, &v).await
    } else {
        legacy_action(&compute, &caller, mv, &id, &v).await
    }
}

async fn update_by_uuid(
    compute: &Compute,
    caller: &Caller,
    mv: Microversion,
    id: &str,
    v: &Value,
) -> Result<HttpResponse, NovaError> {
    if uuid::Uuid::parse_str(id).is_err() {
        return Err(NovaError::bad_request(format!("Invalid uuid {id}")));
    }
    let m = object(v, "service", &["status", "disabled_reason", "forced_down"])?;
    let status = match m.get("status") {
        None => None,
        Some(Value::String(s)) if s == "enabled" || s == "disabled" => Some(s.as_str()),
        Some(other) => {
            return Err(invalid(
                "status",
                other,
                "It must be one of ['enabled', 'disabled'].",
            ))
        }
    };
    let reason = short_string(m, "disabled_reason")?;
    let forced_down = m
        .get("forced_down")
        .map(|f| bool_value(f).ok_or_else(|| invalid("forced_down", f, "It must be a boolean.")))
        .transpose()?;
    let service = services(compute)
        .into_iter()
        .find(|s| s.uuid == id)
        .ok_or_else(|| NovaError::not_found(format!("Service {id} could not be found.")))?;
    only_compute(service.binary)?;
    if status == Some("enabled") && reason.is_some() {
        return Err(NovaError::bad_request(
            "Specifying 'disabled_reason' with status 'enabled' is invalid.",
        ));
    }
    if status.is_none() && forced_down.is_none() {
        return Err(NovaError::bad_request(
            "No updates were requested. Fields 'status' or 'forced_down' should be specified.",
        ));
    }
    let host = service.host;
    match status {
        Some("enabled") => {
            compute
                .run(&compute.hosts, &host, HostCommand::Enable, &caller.meta)
                .await?;
        }
        Some(_) => {
            let reason = reason.unwrap_or_default().to_string();
            compute
                .run(
                    &compute.hosts,
                    &host,
                    HostCommand::Disable { reason },
                    &caller.meta,
                )
                .await?;
        }
        None => {}
    }
    if let Some(down) = forced_down {
        compute
            .run(
                &compute.hosts,
                &host,
                HostCommand::SetForcedDown(down),
                &caller.meta,
            )
            .await?;
    }
    let service = services(compute)
        .into_iter()
        .find(|s| s.uuid == id)
        .ok_or_else(|| NovaError::not_found(format!("Service {id} could not be found.")))?;
    Ok(HttpResponse::Ok().json(json!({ "service": service_json(mv, &service) })))
}

async fn legacy_action(
    compute: &Compute,
    caller: &Caller,
    mv: Microversion,
    action: &str,
    v: &Value,
) -> Result<HttpResponse, NovaError> {
    let allowed: &[&str] = if mv.0 >= 11 {
        &["host", "binary", "disabled_reason", "forced_down"]
    } else {
        &["host", "binary", "disabled_reason"]
    };
    let m = object(v, "service", allowed)?;
    let host = match m.get("host") {
        Some(Value::String(h)) if valid_hostname(h) => h.clone(),
        Some(other) => return Err(invalid("host", other, "It must be a host name.")),
        None => return Err(invalid("service", v, "'host' is a required property")),
    };
    let binary = short_string(m, "binary")?
        .ok_or_else(|| invalid("service", v, "'binary' is a required property"))?
        .to_string();
    let reason = short_string(m, "disabled_reason")?.map(str::to_string);
    let forced_down = match m.get("forced_down") {
        None => None,
        Some(f) => {
            Some(bool_value(f).ok_or_else(|| invalid("forced_down", f, "It must be a boolean."))?)
        }
    };
    let (cmd, answer) = match action {
        "enable" => (
            HostCommand::Enable,
            json!({ "host": host, "binary": binary, "status": "enabled" }),
        ),
        "disable" => (
            HostCommand::Disable {
                reason: String::new(),
            },
            json!({ "host": host, "binary": binary, "status": "disabled" }),
        ),
        "disable-log-reason" => {
            let reason =
                reason.ok_or_else(|| NovaError::bad_request("Missing disabled reason field"))?;
            let answer = json!({
                "host": host, "binary": binary, "status": "disabled", "disabled_reason": reason,
            });
            (HostCommand::Disable { reason }, answer)
        }
        "force-down" if mv.0 >= 11 => {
            let down =
                forced_down.ok_or_else(|| NovaError::bad_request("Missing forced_down field"))?;
            (
                HostCommand::SetForcedDown(down),
                json!({ "host": host, "binary": binary, "forced_down": down }),
            )
        }
        _ => return Err(NovaError::not_found("Unknown action")),
    };
    only_compute(&binary)?;
    if !services(compute)
        .iter()
        .any(|s| s.binary == COMPUTE_BINARY && s.host == host)
    {
        return Err(NovaError::not_found(format!(
            "Could not find binary {binary} on host {host}."
        )));
    }
    compute
        .run(&compute.hosts, &host, cmd, &caller.meta)
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "service": answer })))
}

/// Deleting a service: compute hosts are agents inside this server (they would register again), the
/// scheduler and conductor are this server, so nothing is deleted; the answers say why.
async fn service_delete(
    compute: web::Data<Compute>,
    caller: Caller,
    mv: Microversion,
    path: web::Path<String>,
) -> Result<HttpResponse, NovaError> {
    admin(&caller, "os_compute_api:os-services:delete")?;
    let id = path.into_inner();
    let rows = services(&compute);
    let found = if mv.0 >= 53 {
        if uuid::Uuid::parse_str(&id).is_err() {
            return Err(NovaError::bad_request(format!("Invalid uuid {id}")));
        }
        rows.iter().find(|s| s.uuid == id)
    } else {
        let n: usize = id.parse().map_err(|_| {
            NovaError::bad_request(format!(
                "Invalid input received: id must be an integer: {id}"
            ))
        })?;
        rows.iter().find(|s| s.number == n)
    };
    let s = found.ok_or_else(|| NovaError::not_found(format!("Service {id} not found.")))?;
    if s.binary != COMPUTE_BINARY {
        return Err(NovaError::conflict(format!(
            "Service {} on host {} runs inside this Strata server and cannot be deleted.",
            s.binary, s.host
        )));
    }
    if compute.view.snapshot().servers_on(&s.host).next().is_some() {
        return Err(NovaError::conflict(
            "Unable to delete compute service that is hosting instances. Migrate or delete the instances first.",
        ));
    }
    Err(NovaError::new(
        StatusCode::NOT_IMPLEMENTED,
        format!(
            "Deleting compute service {} is not supported: its agent runs inside this Strata server and would register the host again.",
            s.host
        ),
    ))
}

// ---------------------------------------------------------------------------------------------------------
// os-availability-zone
// ---------------------------------------------------------------------------------------------------------

/// Zones with an enabled service, and zones whose services are all disabled (Nova's two lists).
fn zones(rows: &[ServiceRow]) -> (BTreeSet<&str>, BTreeSet<&str>) {
    let available: BTreeSet<&str> = rows
        .iter()
        .filter(|s| !s.disabled)
        .map(|s| s.zone.as_str())
        .collect();
    let unavailable = rows
        .iter()
        .filter(|s| s.disabled && !available.contains(s.zone.as_str()))
        .map(|s| s.zone.as_str())
        .collect();
    (available, unavailable)
}

async fn zone_list(compute: web::Data<Compute>, _caller: Caller) -> HttpResponse {
    let rows = services(&compute);
    let (available, unavailable) = zones(&rows);
    let entry = |zone: &str, up: bool| json!({ "zoneName": zone, "zoneState": { "available": up }, "hosts": null });
    // The internal zone is hidden from the summary, as in Nova.
    let list: Vec<Value> = available
        .iter()
        .filter(|z| **z != INTERNAL_ZONE)
        .map(|z| entry(z, true))
        .chain(
            unavailable
                .iter()
                .filter(|z| **z != INTERNAL_ZONE)
                .map(|z| entry(z, false)),
        )
        .collect();
    HttpResponse::Ok().json(json!({ "availabilityZoneInfo": list }))
}

async fn zone_detail(
    compute: web::Data<Compute>,
    caller: Caller,
) -> Result<HttpResponse, NovaError> {
    admin(&caller, "os_compute_api:os-availability-zone:detail")?;
    let rows = services(&compute);
    let (available, unavailable) = zones(&rows);
    let mut list = Vec::new();
    for zone in &available {
        let mut hosts: BTreeMap<&str, Map<String, Value>> = BTreeMap::new();
        for s in rows.iter().filter(|s| !s.disabled && s.zone == *zone) {
            hosts.entry(&s.host).or_default().insert(
                s.binary.to_string(),
                json!({ "available": s.up, "active": true, "updated_at": s.updated_at }),
            );
        }
        list.push(json!({ "zoneName": zone, "zoneState": { "available": true }, "hosts": hosts }));
    }
    for zone in &unavailable {
        list.push(json!({ "zoneName": zone, "zoneState": { "available": false }, "hosts": null }));
    }
    Ok(HttpResponse::Ok().json(json!({ "availabilityZoneInfo": list })))
}

// ---------------------------------------------------------------------------------------------------------
// os-aggregates
// ---------------------------------------------------------------------------------------------------------

fn aggregate_id(raw: &str) -> Result<i64, NovaError> {
    raw.parse().map_err(|_| {
        NovaError::bad_request(format!(
            "Invalid input received: id must be an integer: {raw}"
        ))
    })
}

fn aggregate_not_found(id: i64) -> NovaError {
    NovaError::not_found(format!("Aggregate {id} could not be found."))
}

fn aggregate_row(compute: &Compute, id: i64) -> Result<AggregateRow, NovaError> {
    compute
        .view
        .snapshot()
        .aggregates
        .get(&id)
        .filter(|a| a.state.exists && !a.state.deleted)
        .cloned()
        .ok_or_else(|| aggregate_not_found(id))
}

/// An aggregate as Nova shows it; `full` adds hosts and metadata (everything but the create answer).
fn aggregate_json(mv: Microversion, a: &AggregateRow, full: bool) -> Value {
    let s = &a.state;
    let mut v = json!({
        "id": a.id,
        "name": s.name,
        "availability_zone": null_if_empty(&s.availability_zone),
        "created_at": nova_time(&a.created_at),
        "updated_at": nova_time(&a.updated_at),
        "deleted": false,
        "deleted_at": null,
    });
    if mv.0 >= 41 {
        v["uuid"] = json!(s.uuid);
    }
    if full {
        let mut metadata: Map<String, Value> = s
            .metadata
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        if !s.availability_zone.is_empty() {
            metadata.insert("availability_zone".into(), json!(s.availability_zone));
        }
        v["hosts"] = json!(s.hosts);
        v["metadata"] = Value::Object(metadata);
    }
    v
}

fn aggregate_ok(mv: Microversion, a: &AggregateRow) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "aggregate": aggregate_json(mv, a, true) }))
}

/// Other aggregates that put any of `hosts` in a zone other than `zone`: their zones.
fn conflicting_zones(
    view: &ComputeView,
    aggregate: i64,
    hosts: &BTreeSet<String>,
    zone: &str,
) -> BTreeSet<String> {
    view.aggregates
        .values()
        .filter(|a| a.id != aggregate)
        .filter(|a| !a.state.availability_zone.is_empty() && a.state.availability_zone != zone)
        .filter(|a| a.state.hosts.iter().any(|h| hosts.contains(h)))
        .map(|a| a.state.availability_zone.clone())
        .collect()
}

/// Nova's checks before an aggregate's zone becomes `zone` (`prefix` says which request failed): the zone
/// has a name, no host of the aggregate is in another zone through another aggregate, and a real change
/// moves no server.
fn check_zone_change(
    compute: &Compute,
    a: &AggregateRow,
    zone: &str,
    prefix: &str,
) -> Result<(), NovaError> {
    let fail = |why: String| NovaError::bad_request(format!("{prefix} {}. Reason: {why}", a.id));
    if zone.is_empty() {
        return Err(fail(format!(
            "Aggregate {} does not support empty named availability zone",
            a.state.name
        )));
    }
    if !valid_zone(zone) {
        return Err(invalid(
            "availability_zone",
            &json!(zone),
            "It is not a valid zone name.",
        ));
    }
    let view = compute.view.snapshot();
    let conflicts = conflicting_zones(&view, a.id, &a.state.hosts, zone);
    if !conflicts.is_empty() {
        return Err(fail(format!(
            "One or more hosts already in availability zone(s) {conflicts:?}"
        )));
    }
    if zone != a.state.availability_zone
        && a.state
            .hosts
            .iter()
            .any(|h| view.servers_on(h).next().is_some())
    {
        return Err(fail(
            "One or more hosts contain instances in this zone".into(),
        ));
    }
    Ok(())
}

async fn aggregate_list(
    compute: web::Data<Compute>,
    caller: Caller,
    mv: Microversion,
) -> Result<HttpResponse, NovaError> {
    admin(&caller, "os_compute_api:os-aggregates:index")?;
    let list: Vec<Value> = compute
        .view
        .snapshot()
        .aggregates
        .values()
        .filter(|a| a.state.exists && !a.state.deleted)
        .map(|a| aggregate_json(mv, a, true))
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "aggregates": list })))
}

fn name_taken(name: &str) -> NovaError {
    NovaError::conflict(format!("Aggregate {name} already exists."))
}

async fn aggregate_create(
    compute: web::Data<Compute>,
    identity: web::Data<Identity>,
    caller: Caller,
    mv: Microversion,
    body: web::Bytes,
) -> Result<HttpResponse, NovaError> {
    admin(&caller, "os_compute_api:os-aggregates:create")?;
    let v = body_json(&body)?;
    let m = wrapped(&v, "aggregate", &["name", "availability_zone"])?;
    let name = match m.get("name") {
        Some(Value::String(n)) if valid_name(n) => n.clone(),
        Some(other) => return Err(invalid("name", other, "It is not a valid name.")),
        None => return Err(invalid("aggregate", &v, "'name' is a required property")),
    };
    let zone = match m.get("availability_zone") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(z)) if valid_zone(z) => z.clone(),
        Some(other) => {
            return Err(invalid(
                "availability_zone",
                other,
                "It is not a valid zone name.",
            ))
        }
    };
    let uuid = uuid::Uuid::new_v4().to_string();
    if identity
        .claim_name(NAME_KIND, "", &name, &uuid, &caller.meta)
        .await
        .is_err()
    {
        return Err(name_taken(&name));
    }
    let created = async {
        let seq = compute
            .run(&compute.sequences, AGGREGATE_SEQUENCE, Next, &caller.meta)
            .await?;
        let id = seq.state.value;
        let cmd = HostAggregateCommand::Create {
            uuid: uuid.clone(),
            name: name.clone(),
            availability_zone: zone,
        };
        compute
            .run(&compute.aggregates, &id.to_string(), cmd, &caller.meta)
            .await?;
        Ok::<i64, NovaError>(id)
    }
    .await;
    let id = match created {
        Ok(id) => id,
        Err(e) => {
            identity
                .release_name(NAME_KIND, "", &name, &uuid, &caller.meta)
                .await;
            return Err(e);
        }
    };
    let a = aggregate_row(&compute, id)?;
    Ok(HttpResponse::Ok().json(json!({ "aggregate": aggregate_json(mv, &a, false) })))
}

async fn aggregate_show(
    compute: web::Data<Compute>,
    caller: Caller,
    mv: Microversion,
    path: web::Path<String>,
) -> Result<HttpResponse, NovaError> {
    admin(&caller, "os_compute_api:os-aggregates:show")?;
    let id = aggregate_id(&path.into_inner())?;
    Ok(aggregate_ok(mv, &aggregate_row(&compute, id)?))
}

async fn aggregate_update(
    compute: web::Data<Compute>,
    identity: web::Data<Identity>,
    caller: Caller,
    mv: Microversion,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, NovaError> {
    admin(&caller, "os_compute_api:os-aggregates:update")?;
    let v = body_json(&body)?;
    let m = wrapped(&v, "aggregate", &["name", "availability_zone"])?;
    if m.is_empty() {
        return Err(invalid(
            "aggregate",
            &v,
            "'name' or 'availability_zone' is a required property",
        ));
    }
    // The update schema accepts surrounding spaces in the name; Nova strips them.
    let name = match m.get("name") {
        None => None,
        Some(Value::String(n)) if valid_name(n.trim()) => Some(n.trim().to_string()),
        Some(other) => return Err(invalid("name", other, "It is not a valid name.")),
    };
    let zone = match m.get("availability_zone") {
        None => None,
        Some(Value::Null) => Some(String::new()),
        Some(Value::String(z)) => Some(z.clone()),
        Some(other) => {
            return Err(invalid(
                "availability_zone",
                other,
                "It is not a valid zone name.",
            ))
        }
    };
    let id = aggregate_id(&path.into_inner())?;
    let a = aggregate_row(&compute, id)?;
    if let Some(z) = &zone {
        check_zone_change(&compute, &a, z, "Cannot update aggregate")?;
    }
    let new_name = name.unwrap_or_else(|| a.state.name.clone());
    let new_zone = zone.unwrap_or_else(|| a.state.availability_zone.clone());
    let renamed = new_name != a.state.name;
    if renamed
        && identity
            .claim_name(NAME_KIND, "", &new_name, &a.state.uuid, &caller.meta)
            .await
            .is_err()
    {
        return Err(name_taken(&new_name));
    }
    let cmd = HostAggregateCommand::Update {
        name: new_name.clone(),
        availability_zone: new_zone,
    };
    if let Err(e) = compute
        .run(&compute.aggregates, &id.to_string(), cmd, &caller.meta)
        .await
    {
        if renamed {
            identity
                .release_name(NAME_KIND, "", &new_name, &a.state.uuid, &caller.meta)
                .await;
        }
        return Err(e);
    }
    if renamed {
        identity
            .release_name(NAME_KIND, "", &a.state.name, &a.state.uuid, &caller.meta)
            .await;
    }
    Ok(aggregate_ok(mv, &aggregate_row(&compute, id)?))
}

async fn aggregate_delete(
    compute: web::Data<Compute>,
    identity: web::Data<Identity>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, NovaError> {
    admin(&caller, "os_compute_api:os-aggregates:delete")?;
    let id = aggregate_id(&path.into_inner())?;
    let a = aggregate_row(&compute, id)?;
    if !a.state.hosts.is_empty() {
        return Err(NovaError::bad_request(format!(
            "Cannot remove aggregate {id}. Reason: Host aggregate is not empty."
        )));
    }
    compute
        .run(
            &compute.aggregates,
            &id.to_string(),
            HostAggregateCommand::Delete,
            &caller.meta,
        )
        .await?;
    identity
        .release_name(NAME_KIND, "", &a.state.name, &a.state.uuid, &caller.meta)
        .await;
    Ok(HttpResponse::Ok().finish())
}

/// `{"host": "<compute host>"}` of add_host / remove_host.
fn host_field(inner: &Value, action: &str) -> Result<String, NovaError> {
    let m = object(inner, action, &["host"])?;
    match m.get("host") {
        Some(Value::String(h)) if valid_hostname(h) => Ok(h.clone()),
        Some(other) => Err(invalid("host", other, "It must be a host name.")),
        None => Err(invalid(action, inner, "'host' is a required property")),
    }
}

/// The items of set_metadata: keys of Nova's metadata pattern, string values (null removes).
fn metadata_items(inner: &Value) -> Result<BTreeMap<String, Option<String>>, NovaError> {
    let m = object(inner, "set_metadata", &["metadata"])?;
    let md = m
        .get("metadata")
        .ok_or_else(|| invalid("set_metadata", inner, "'metadata' is a required property"))?;
    let items = md
        .as_object()
        .ok_or_else(|| invalid("metadata", md, "It must be an object."))?;
    items
        .iter()
        .map(|(k, v)| {
            let key_ok = (1..=255).contains(&k.len())
                && k.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ':' | '.' | ' '));
            if !key_ok {
                return Err(invalid(
                    "metadata",
                    md,
                    &format!("'{k}' is not a valid metadata key."),
                ));
            }
            match v {
                Value::Null => Ok((k.clone(), None)),
                Value::String(s) if s.chars().count() <= 255 => Ok((k.clone(), Some(s.clone()))),
                other => Err(invalid(
                    &format!("metadata.{k}"),
                    other,
                    "It must be a string of at most 255 characters or null.",
                )),
            }
        })
        .collect()
}

enum AggregateAction {
    AddHost(String),
    RemoveHost(String),
    SetMetadata(BTreeMap<String, Option<String>>),
}

async fn aggregate_action(
    compute: web::Data<Compute>,
    caller: Caller,
    mv: Microversion,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, NovaError> {
    let v = body_json(&body)?;
    let top = v
        .as_object()
        .filter(|m| m.len() == 1)
        .ok_or_else(|| NovaError::bad_request("The action body must name exactly one action."))?;
    let (name, inner) = top
        .iter()
        .next()
        .ok_or_else(|| NovaError::bad_request("The action body must name exactly one action."))?;
    let policy = match name.as_str() {
        "add_host" | "remove_host" | "set_metadata" => {
            format!("os_compute_api:os-aggregates:{name}")
        }
        other => {
            return Err(NovaError::bad_request(format!(
                "There is no such action: {other}"
            )))
        }
    };
    admin(&caller, &policy)?;
    let action = match name.as_str() {
        "add_host" => AggregateAction::AddHost(host_field(inner, name)?),
        "remove_host" => AggregateAction::RemoveHost(host_field(inner, name)?),
        _ => AggregateAction::SetMetadata(metadata_items(inner)?),
    };
    let id = aggregate_id(&path.into_inner())?;
    let a = aggregate_row(&compute, id)?;
    let stream = id.to_string();
    match action {
        AggregateAction::AddHost(host) => {
            let zone = &a.state.availability_zone;
            {
                let view = compute.view.snapshot();
                if !view.hosts.get(&host).is_some_and(|h| h.state.exists) {
                    return Err(NovaError::not_found(format!(
                        "Compute host {host} could not be found."
                    )));
                }
                if a.state.hosts.contains(&host) {
                    return Err(NovaError::conflict(format!(
                        "Aggregate {id} already has host {host}."
                    )));
                }
                if !zone.is_empty() {
                    let conflicts =
                        conflicting_zones(&view, id, &BTreeSet::from([host.clone()]), zone);
                    if !conflicts.is_empty() {
                        return Err(NovaError::conflict(format!(
                            "Cannot add host to aggregate {id}. Reason: One or more hosts already in availability zone(s) {conflicts:?}."
                        )));
                    }
                }
            }
            compute
                .run(
                    &compute.aggregates,
                    &stream,
                    HostAggregateCommand::AddHost(host),
                    &caller.meta,
                )
                .await?;
        }
        AggregateAction::RemoveHost(host) => {
            if !a.state.hosts.contains(&host) {
                return Err(NovaError::not_found(format!(
                    "Cannot remove host {host} in aggregate {id}"
                )));
            }
            compute
                .run(
                    &compute.aggregates,
                    &stream,
                    HostAggregateCommand::RemoveHost(host),
                    &caller.meta,
                )
                .await?;
        }
        AggregateAction::SetMetadata(mut items) => {
            // The zone is the aggregate's own field; every other key is plain metadata.
            let zone = items.remove("availability_zone");
            if let Some(z) = &zone {
                check_zone_change(
                    &compute,
                    &a,
                    z.as_deref().unwrap_or_default(),
                    "Cannot update metadata of aggregate",
                )?;
            }
            if let Some(Some(z)) = zone {
                if z != a.state.availability_zone {
                    let cmd = HostAggregateCommand::Update {
                        name: a.state.name.clone(),
                        availability_zone: z,
                    };
                    compute
                        .run(&compute.aggregates, &stream, cmd, &caller.meta)
                        .await?;
                }
            }
            if !items.is_empty() {
                compute
                    .run(
                        &compute.aggregates,
                        &stream,
                        HostAggregateCommand::SetMetadata(items),
                        &caller.meta,
                    )
                    .await?;
            }
        }
    }
    Ok(aggregate_ok(mv, &aggregate_row(&compute, id)?))
}

/// `POST /os-aggregates/{id}/images` (2.81): ask the aggregate's hosts to cache images.
async fn aggregate_images(
    compute: web::Data<Compute>,
    caller: Caller,
    req: HttpRequest,
    mv: Microversion,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, NovaError> {
    if mv.0 < 81 {
        return Err(not_in_version(&req));
    }
    admin(&caller, "compute:aggregates:images")?;
    let v = body_json(&body)?;
    let top = object(&v, "cache", &["cache"])?;
    let cache = top
        .get("cache")
        .ok_or_else(|| invalid("cache", &v, "'cache' is a required property"))?;
    let entries = cache
        .as_array()
        .filter(|a| !a.is_empty())
        .ok_or_else(|| invalid("cache", cache, "It must be a non-empty array."))?;
    let mut ids = Vec::with_capacity(entries.len());
    for e in entries {
        let m = object(e, "cache", &["id"])?;
        match m.get("id") {
            Some(Value::String(s)) if uuid::Uuid::parse_str(s).is_ok() => ids.push(s.clone()),
            Some(other) => return Err(invalid("id", other, "It must be an image uuid.")),
            None => return Err(invalid("cache", e, "'id' is a required property")),
        }
    }
    if ids.iter().collect::<BTreeSet<_>>().len() != ids.len() {
        return Err(NovaError::bad_request("Duplicate images in request"));
    }
    let id = aggregate_id(&path.into_inner())?;
    aggregate_row(&compute, id)?;
    {
        let images = compute.images.snapshot();
        if let Some(missing) = ids.iter().find(|i| images.image(i).is_none()) {
            return Err(NovaError::bad_request(format!(
                "Image {missing} could not be found."
            )));
        }
    }
    compute
        .run(
            &compute.aggregates,
            &id.to_string(),
            HostAggregateCommand::CacheImages(ids),
            &caller.meta,
        )
        .await?;
    Ok(HttpResponse::Accepted().finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nova_timestamps_are_naive_with_microseconds() {
        assert_eq!(
            nova_time("2016-12-27T22:51:32Z"),
            json!("2016-12-27T22:51:32.000000")
        );
        assert_eq!(nova_time(""), Value::Null);
    }

    #[test]
    fn names_and_zones() {
        assert!(valid_name("a1") && !valid_name(" a1") && !valid_name(""));
        assert!(valid_zone("z1") && !valid_zone("z:1"));
        assert!(valid_hostname("fake-0") && !valid_hostname("a b") && !valid_hostname("a"));
    }

    #[test]
    fn internal_service_uuids_are_stable_and_distinct() {
        let s = internal_uuid("nova-scheduler");
        assert_eq!(s, internal_uuid("nova-scheduler"));
        assert_ne!(s, internal_uuid("nova-conductor"));
        assert!(uuid::Uuid::parse_str(&s).is_ok());
    }
}
