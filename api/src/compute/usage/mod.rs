//! Nova's bookkeeping APIs: quota sets (and the default quota class), absolute limits, server groups, simple
//! tenant usage, migrations (`os-migrations` and a server's in-progress live migrations) and instance actions.
//!
//! Everything here reads `ComputeView`; only quota updates and server groups send commands. Field sets follow
//! the negotiated microversion up to 2.81 (network quotas until 2.36, file quotas until 2.57, `policy`/`rules`
//! from 2.64, paging from 2.40 / 2.58 / 2.59, user and project ids on migrations from 2.80).

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};
use strata_actors::compute::quota::{QuotaCommand, QUOTA_NAMES};
use strata_actors::compute::server::task;
use strata_actors::compute::ServerGroupCommand;
use strata_projections::compute::{ActionRow, ComputeView, GroupRow, MigrationRow, ServerRow};

use strata_actors::compute::quota::UsageCommand;

use super::common::{
    host_id, links, marker_unknown, not_in_version, null_if_empty, parse_json, parse_time,
    server_row, skip_past_marker, visible_server, Query, MAX_LIMIT,
};
use super::{Caller, Compute, Microversion, NovaError};
use crate::identity::Identity;
mod quotas;
use quotas::*;
mod groups;
pub(crate) use groups::*;
mod migrations;
use migrations::*;
mod instance_actions;
use instance_actions::*;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/v2.1/os-quota-sets/{project_id}")
            .route(web::get().to(quota_show))
            .route(web::put().to(quota_update))
            .route(web::delete().to(quota_delete)),
    )
    .route(
        "/v2.1/os-quota-sets/{project_id}/detail",
        web::get().to(quota_detail),
    )
    .route(
        "/v2.1/os-quota-sets/{project_id}/defaults",
        web::get().to(quota_defaults),
    )
    .route(
        "/v2.1/os-quota-class-sets/{class}",
        web::get().to(quota_class_show),
    )
    .route("/v2.1/limits", web::get().to(limits))
    .service(
        web::resource("/v2.1/os-server-groups")
            .route(web::get().to(group_list))
            .route(web::post().to(group_create)),
    )
    .service(
        web::resource("/v2.1/os-server-groups/{id}")
            .route(web::get().to(group_show))
            .route(web::delete().to(group_delete)),
    )
    .route("/v2.1/os-simple-tenant-usage", web::get().to(usage_list))
    .route(
        "/v2.1/os-simple-tenant-usage/{tenant_id}",
        web::get().to(usage_show),
    )
    .route("/v2.1/os-migrations", web::get().to(migration_list))
    .route(
        "/v2.1/servers/{server_id}/migrations",
        web::get().to(server_migration_list),
    )
    .service(
        web::resource("/v2.1/servers/{server_id}/migrations/{id}")
            .route(web::get().to(server_migration_show))
            .route(web::delete().to(server_migration_abort)),
    )
    .route(
        "/v2.1/servers/{server_id}/migrations/{id}/action",
        web::post().to(server_migration_action),
    )
    .route(
        "/v2.1/servers/{server_id}/os-instance-actions",
        web::get().to(action_list),
    )
    .route(
        "/v2.1/servers/{server_id}/os-instance-actions/{request_id}",
        web::get().to(action_show),
    );
}

// ---------------------------------------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------------------------------------

/// Nova's `db.MAX_INT`, the largest quota limit.
const MAX_QUOTA: i64 = 0x7FFF_FFFF;

/// Nova's own timestamp format in usage reports (naive UTC with microseconds).
fn usage_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
}

/// `[{"rel": "next", "href": ...}]`: this request's parameters with `marker` set (sorted, as Nova does).
fn next_link(req: &HttpRequest, path: &str, q: &Query, marker: &str) -> Value {
    let mut params: Vec<(String, String)> =
        q.0.iter().filter(|(k, _)| k != "marker").cloned().collect();
    params.push(("marker".into(), marker.into()));
    params.sort();
    let qs: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{}={}", crate::common::encode(k), crate::common::encode(v)))
        .collect();
    json!([{
        "rel": "next",
        "href": format!("{}{path}?{}", crate::common::base_url(req), qs.join("&")),
    }])
}

/// The one top-level object `key` of a request body (no other top-level keys, as Nova's schemas say).
fn body_object(v: &Value, key: &str) -> Result<Map<String, Value>, NovaError> {
    let Some(top) = v.as_object() else {
        return Err(NovaError::bad_request(format!(
            "Invalid input for field/attribute {key}. '{key}' is a required property"
        )));
    };
    if let Some(other) = top.keys().find(|k| *k != key) {
        return Err(NovaError::bad_request(format!(
            "Additional properties are not allowed ('{other}' was unexpected)"
        )));
    }
    match top.get(key) {
        Some(Value::Object(m)) => Ok(m.clone()),
        Some(other) => Err(NovaError::bad_request(format!(
            "Invalid input for field/attribute {key}. Value: {other}. {other} is not of type 'object'"
        ))),
        None => Err(NovaError::bad_request(format!(
            "Invalid input for field/attribute {key}. '{key}' is a required property"
        ))),
    }
}

/// An integer given as a JSON integer or a string of digits (Nova's `['integer', 'string']` with a pattern).
fn int_value(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => {
            let digits = s.strip_prefix('-').unwrap_or(s);
            if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                s.parse().ok()
            } else {
                None
            }
        }
        _ => None,
    }
}

/// Nova's `parameter_types.boolean`.
fn bool_value(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.to_lowercase().as_str() {
            "true" | "1" | "on" | "yes" | "y" | "t" => Some(true),
            "false" | "0" | "off" | "no" | "n" | "f" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------------------
// Simple tenant usage
// ---------------------------------------------------------------------------------------------------------

/// The reporting window: `start` and `end` (each "now" when absent); start must come before end.
fn usage_window(q: &Query) -> Result<(DateTime<Utc>, DateTime<Utc>), NovaError> {
    let parse = |key: &str| -> Result<Option<DateTime<Utc>>, NovaError> {
        q.get(key)
            .filter(|v| !v.is_empty())
            .map(|v| {
                parse_time(v).ok_or_else(|| NovaError::bad_request("Datetime is in invalid format"))
            })
            .transpose()
    };
    let start = parse("start")?;
    let end = parse("end")?;
    let now = Utc::now();
    let (s, e) = (start.unwrap_or(now), end.unwrap_or(now));
    if (start.is_some() || end.is_some()) && s >= e {
        return Err(NovaError::bad_request(
            "Invalid start time. The start time cannot occur after the end time.",
        ));
    }
    Ok((s, e))
}

/// One server's part of a usage report.
struct ServerUsage {
    id: String,
    project_id: String,
    hours: f64,
    vcpus: u32,
    memory_mb: u64,
    local_gb: u64,
    json: Value,
}

/// The servers (of `project`, or all) that ran during the window, oldest first, with Nova's accounting: the
/// hours from launch (or the window's start) to termination (or the window's end), whatever the power state.
fn server_usages(
    view: &ComputeView,
    project: Option<&str>,
    start: DateTime<Utc>,
    stop: DateTime<Utc>,
) -> Vec<ServerUsage> {
    let now = Utc::now();
    let mut rows: Vec<(&ServerRow, DateTime<Utc>)> = view
        .servers
        .values()
        .map(|s| &**s)
        .filter(|s| project.is_none_or(|p| s.state.project_id == p))
        .filter_map(|s| parse_time(&s.launched_at).map(|l| (s, l)))
        .filter(|(s, launched)| *launched < stop && s.terminated.is_none_or(|t| t > start))
        .collect();
    rows.sort_by(|(a, _), (b, _)| (a.created, &a.id).cmp(&(b.created, &b.id)));
    rows.into_iter()
        .map(|(s, launched)| {
            let from = launched.max(start);
            let to = s.terminated.map_or(stop, |t| t.min(stop));
            let hours = ((to - from).num_milliseconds().max(0) as f64) / 3_600_000.0;
            let f = &s.state.flavor;
            let local_gb = f.disk_gb + f.ephemeral_gb;
            let uptime = (s.terminated.unwrap_or(now) - launched).num_seconds().max(0);
            let json = json!({
                "instance_id": s.id,
                "name": s.state.name,
                "hours": hours,
                "memory_mb": f.ram_mb,
                "local_gb": local_gb,
                "vcpus": f.vcpus,
                "tenant_id": s.state.project_id,
                "flavor": f.name,
                "started_at": usage_time(launched),
                "ended_at": s.terminated.map(usage_time),
                "state": if s.terminated.is_some() { "terminated" } else { s.state.vm_state.as_str() },
                "uptime": uptime,
            });
            ServerUsage {
                id: s.id.clone(),
                project_id: s.state.project_id.clone(),
                hours,
                vcpus: f.vcpus,
                memory_mb: f.ram_mb,
                local_gb,
                json,
            }
        })
        .collect()
}

/// One page of server usages (2.40 `limit`/`marker`; older versions are silently limited to `max_limit`),
/// and whether a next page may follow.
fn usage_page(
    mut rows: Vec<ServerUsage>,
    q: &Query,
    mv: Microversion,
) -> Result<(Vec<ServerUsage>, bool), NovaError> {
    let limit = if mv.0 >= 40 {
        q.page_size()?
    } else {
        MAX_LIMIT
    };
    if mv.0 >= 40 {
        if let Some(m) = q.get("marker") {
            skip_past_marker(&mut rows, m, |r| r.id == m, marker_unknown)?;
        }
    }
    rows.truncate(limit);
    let full = mv.0 >= 40 && !rows.is_empty() && rows.len() == limit;
    Ok((rows, full))
}

/// Per-project totals, in the order each project first appears.
fn tenant_usages(
    rows: &[ServerUsage],
    start: DateTime<Utc>,
    stop: DateTime<Utc>,
    detailed: bool,
) -> Vec<Value> {
    let mut order: Vec<&str> = Vec::new();
    let mut by_project: BTreeMap<&str, Vec<&ServerUsage>> = BTreeMap::new();
    for r in rows {
        if !by_project.contains_key(r.project_id.as_str()) {
            order.push(&r.project_id);
        }
        by_project.entry(&r.project_id).or_default().push(r);
    }
    order
        .into_iter()
        .map(|p| {
            let servers = &by_project[p];
            let sum = |f: &dyn Fn(&ServerUsage) -> f64| servers.iter().map(|s| f(s)).sum::<f64>();
            let mut v = json!({
                "tenant_id": p,
                "total_hours": sum(&|s| s.hours),
                "total_vcpus_usage": sum(&|s| s.vcpus as f64 * s.hours),
                "total_memory_mb_usage": sum(&|s| s.memory_mb as f64 * s.hours),
                "total_local_gb_usage": sum(&|s| s.local_gb as f64 * s.hours),
                "start": usage_time(start),
                "stop": usage_time(stop),
            });
            if detailed {
                v["server_usages"] = json!(servers.iter().map(|s| &s.json).collect::<Vec<_>>());
            }
            v
        })
        .collect()
}

async fn usage_list(
    compute: web::Data<Compute>,
    caller: Caller,
    req: HttpRequest,
    mv: Microversion,
) -> Result<HttpResponse, NovaError> {
    caller.enforce(
        "os_compute_api:os-simple-tenant-usage:list",
        &caller.project_id,
    )?;
    let q = Query::of(&req);
    let (start, stop) = usage_window(&q)?;
    let detailed = q.get("detailed") == Some("1");
    let rows = server_usages(&compute.view.snapshot(), None, start, stop);
    let (rows, full) = usage_page(rows, &q, mv)?;
    let mut body = json!({ "tenant_usages": tenant_usages(&rows, start, stop, detailed) });
    if let (true, Some(last)) = (full, rows.last()) {
        body["tenant_usages_links"] = next_link(&req, "/v2.1/os-simple-tenant-usage", &q, &last.id);
    }
    Ok(HttpResponse::Ok().json(body))
}

async fn usage_show(
    compute: web::Data<Compute>,
    caller: Caller,
    req: HttpRequest,
    mv: Microversion,
    path: web::Path<String>,
) -> Result<HttpResponse, NovaError> {
    let tenant = path.into_inner();
    if !caller.is_admin && tenant != caller.project_id {
        return Err(NovaError::policy(
            "os_compute_api:os-simple-tenant-usage:show",
        ));
    }
    let q = Query::of(&req);
    let (start, stop) = usage_window(&q)?;
    let rows = server_usages(&compute.view.snapshot(), Some(&tenant), start, stop);
    let (rows, full) = usage_page(rows, &q, mv)?;
    // A project without usage in the window answers an empty object, as Nova does.
    let usage = tenant_usages(&rows, start, stop, true)
        .into_iter()
        .next()
        .unwrap_or_else(|| json!({}));
    let mut body = json!({ "tenant_usage": usage });
    if let (true, Some(last)) = (full, rows.last()) {
        body["tenant_usage_links"] = next_link(
            &req,
            &format!(
                "/v2.1/os-simple-tenant-usage/{}",
                crate::common::encode(&tenant)
            ),
            &q,
            &last.id,
        );
    }
    Ok(HttpResponse::Ok().json(body))
}
