//! `/v2.1/servers`: create (with quota reservation), list/detail with Nova's filters and paging, show, update,
//! delete, metadata, addresses, and the server actions. The API only records that an action started; the
//! conductor and the compute agents (strata-compute) do the work and record each step.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine as _;
use serde_json::{json, Map, Value};
use strata_actors::compute::quota::{Amounts, Limits, UsageCommand};
use strata_actors::compute::server::{power, vm};
use strata_actors::compute::{Action, FlavorSpec, ServerCommand};
use strata_actors::image::ImageCommand;
use strata_projections::compute::{FlavorRow, ServerRow};
use strata_proto::compute as pb;

use super::common::{
    check_settled, check_unlocked, host_id, invalid, links, marker_not_found, null_if_empty,
    parse_json, server_row, skip_past_marker, visible_server,
};
use super::{Caller, Compute, Microversion, NovaError, Views};
mod create;
use create::*;
mod actions;
use actions::*;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/v2.1/servers")
            .route(web::get().to(list::<false>))
            .route(web::post().to(create)),
    )
    .service(web::resource("/v2.1/servers/detail").route(web::get().to(list::<true>)))
    .service(
        web::resource("/v2.1/servers/{id}")
            .route(web::get().to(show))
            .route(web::put().to(update))
            .route(web::delete().to(delete)),
    )
    .service(web::resource("/v2.1/servers/{id}/action").route(web::post().to(action)))
    .service(
        web::resource("/v2.1/servers/{id}/metadata")
            .route(web::get().to(metadata_list))
            .route(web::put().to(metadata_set::<true>))
            .route(web::post().to(metadata_set::<false>)),
    )
    .service(
        web::resource("/v2.1/servers/{id}/metadata/{key}")
            .route(web::get().to(metadata_show))
            .route(web::put().to(metadata_put))
            .route(web::delete().to(metadata_delete)),
    )
    .service(web::resource("/v2.1/servers/{id}/ips").route(web::get().to(ips)))
    .service(web::resource("/v2.1/servers/{id}/ips/{network}").route(web::get().to(ips_network)))
    .service(web::resource("/v2.1/servers/{id}/topology").route(web::get().to(topology)));
}

/// 2.78: the NUMA topology; fake hypervisors expose none.
async fn topology(
    compute: web::Data<Compute>,
    caller: Caller,
    mv: Microversion,
    path: web::Path<String>,
) -> Result<HttpResponse, NovaError> {
    if mv.0 < 78 {
        return Err(NovaError::not_found("The resource could not be found."));
    }
    server_row(&compute, &caller, &path.into_inner())?;
    Ok(HttpResponse::Ok().json(json!({ "nodes": [], "pagesize_kb": null })))
}

// ---------------------------------------------------------------------------------------------------------
// Rendering

/// Nova's `OS-SRV-USG:*` format: no zone, microseconds.
fn usage_time(ts: &str) -> Value {
    if ts.is_empty() {
        Value::Null
    } else {
        json!(format!("{}.000000", ts.trim_end_matches('Z')))
    }
}

fn flavor_json(base: &str, mv: Microversion, f: &FlavorSpec) -> Value {
    if mv.0 >= 47 {
        json!({
            "vcpus": f.vcpus,
            "ram": f.ram_mb,
            "disk": f.disk_gb,
            "ephemeral": f.ephemeral_gb,
            "swap": f.swap_mb,
            "original_name": f.name,
            "extra_specs": f.extra_specs,
        })
    } else {
        json!({ "id": f.id, "links": [{ "rel": "bookmark", "href": format!("{base}/flavors/{}", f.id) }] })
    }
}

fn server_json(
    compute: &Compute,
    views: &Views,
    base: &str,
    mv: Microversion,
    caller: &Caller,
    row: &ServerRow,
) -> Value {
    let s = &row.state;
    let id = &row.id;
    let status = s.status();
    let mut v = json!({
        "id": id,
        "name": s.name,
        "status": status,
        "tenant_id": s.project_id,
        "user_id": s.user_id,
        "metadata": s.metadata,
        "hostId": host_id(&s.project_id, &s.host),
        "image": if s.image_id.is_empty() { json!("") } else {
            json!({ "id": s.image_id, "links": [{ "rel": "bookmark", "href": format!("{base}/images/{}", s.image_id) }] })
        },
        "flavor": flavor_json(base, mv, &s.flavor),
        "created": null_if_empty(&row.created_at),
        "updated": null_if_empty(&row.updated_at),
        "addresses": super::network::addresses(&views.network, &s.ports),
        "accessIPv4": "",
        "accessIPv6": "",
        "links": links(base, "servers", id),
        "OS-DCF:diskConfig": "MANUAL",
        "OS-EXT-AZ:availability_zone": s.availability_zone,
        "config_drive": "",
        "key_name": if s.key_name.is_empty() { Value::Null } else { json!(s.key_name) },
        "OS-SRV-USG:launched_at": usage_time(&row.launched_at),
        "OS-SRV-USG:terminated_at": usage_time(&row.terminated_at),
        "OS-EXT-STS:task_state": if s.task_state.is_empty() { Value::Null } else { json!(s.task_state) },
        "OS-EXT-STS:vm_state": s.vm_state,
        "OS-EXT-STS:power_state": s.power_state,
        "os-extended-volumes:volumes_attached": super::volumes::attachments_of(&views.volume, id)
            .into_iter()
            .map(|a| {
                let dot = super::volumes::deletes_with(s, &a.1);
                if mv.0 >= 3 { json!({"id": a.1, "delete_on_termination": dot}) } else { json!({"id": a.1}) }
            })
            .collect::<Vec<_>>(),
    });
    if !s.ports.is_empty() {
        v["security_groups"] = super::network::security_groups(&views.network, &s.ports);
    }
    if matches!(
        status,
        "ACTIVE" | "BUILD" | "REBUILD" | "RESIZE" | "VERIFY_RESIZE" | "MIGRATING"
    ) {
        v["progress"] = json!(if status == "BUILD" { 0 } else { 100 });
    }
    if let Some(f) = &s.fault {
        if matches!(status, "ERROR" | "DELETED") {
            let mut fault = json!({
                "code": f.code,
                "message": f.message,
                "created": null_if_empty(&row.fault_at),
            });
            if caller.is_admin || f.code != 500 {
                fault["details"] = json!(f.details);
            }
            v["fault"] = fault;
        }
    }
    if caller.is_admin {
        v["OS-EXT-SRV-ATTR:host"] = null_if_empty(&s.host);
        v["OS-EXT-SRV-ATTR:hypervisor_hostname"] = null_if_empty(&s.node);
        v["OS-EXT-SRV-ATTR:instance_name"] = json!(format!("instance-{}", &id[..8.min(id.len())]));
        if mv.0 >= 3 {
            v["OS-EXT-SRV-ATTR:reservation_id"] = json!(s.reservation_id);
            v["OS-EXT-SRV-ATTR:launch_index"] = json!(s.launch_index);
            v["OS-EXT-SRV-ATTR:hostname"] = json!(s.hostname);
            v["OS-EXT-SRV-ATTR:kernel_id"] = json!("");
            v["OS-EXT-SRV-ATTR:ramdisk_id"] = json!("");
            v["OS-EXT-SRV-ATTR:root_device_name"] = json!("/dev/vda");
            v["OS-EXT-SRV-ATTR:user_data"] = null_if_empty(&s.user_data);
        }
        if mv.0 >= 16 {
            v["host_status"] = json!(if s.host.is_empty() {
                ""
            } else if compute.host_up(&views.compute, &s.host) {
                "UP"
            } else {
                "DOWN"
            });
        }
    }
    if mv.0 >= 9 {
        v["locked"] = json!(s.locked);
    }
    if mv.0 >= 19 {
        v["description"] = null_if_empty(&s.description);
    }
    if mv.0 >= 26 {
        v["tags"] = json!([]);
    }
    if mv.0 >= 63 {
        v["trusted_image_certificates"] = Value::Null;
    }
    if mv.0 >= 73 {
        v["locked_reason"] = null_if_empty(&s.locked_reason);
    }
    v
}

/// The single-server shape of show, update and rebuild: from 2.71 it names the server's group.
fn server_full_json(
    compute: &Compute,
    views: &Views,
    base: &str,
    mv: Microversion,
    caller: &Caller,
    row: &ServerRow,
) -> Value {
    let mut v = server_json(compute, views, base, mv, caller, row);
    if mv.0 >= 71 {
        let groups: Vec<&str> = if row.state.group_id.is_empty() {
            vec![]
        } else {
            vec![row.state.group_id.as_str()]
        };
        v["server_groups"] = json!(groups);
    }
    v
}

// ---------------------------------------------------------------------------------------------------------
// Lookup

/// The server as the caller may see it, if Nova's policy lets the caller do `action` to it (403 otherwise).
fn writable(
    compute: &Compute,
    caller: &Caller,
    id: &str,
    action: &str,
) -> Result<ServerRow, NovaError> {
    let row = server_row(compute, caller, id)?;
    caller.enforce(action, &row.state.project_id)?;
    Ok(row)
}

/// The single-server answer of show, update and rebuild, rendered from one snapshot of the views.
fn server_answer(
    compute: &Compute,
    req: &HttpRequest,
    mv: Microversion,
    caller: &Caller,
    id: &str,
) -> Result<Value, NovaError> {
    let views = compute.views();
    let row = visible_server(&views.compute, caller, id, false)?;
    let base = crate::common::base_url(req);
    Ok(server_full_json(compute, &views, &base, mv, caller, row))
}

/// Nova's answer to an action body that does not name exactly one action.
fn malformed() -> NovaError {
    NovaError::bad_request("Malformed request body")
}

fn required_object<'a>(v: &'a Value, key: &str) -> Result<&'a Map<String, Value>, NovaError> {
    match v.get(key) {
        Some(Value::Object(m)) => Ok(m),
        Some(other) => Err(invalid(
            key,
            other,
            &format!("{other} is not of type 'object'"),
        )),
        None => Err(invalid(key, v, &format!("'{key}' is a required property"))),
    }
}

fn string_field(m: &Map<String, Value>, key: &str) -> Result<Option<String>, NovaError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(invalid(
            key,
            other,
            &format!("{other} is not of type 'string'"),
        )),
    }
}

/// Nova's `name` format: 1 to 255 printable characters, no whitespace at either end.
fn check_name(name: &str) -> Result<(), NovaError> {
    let n = name.chars().count();
    if n == 0
        || n > 255
        || name.trim().is_empty()
        || name.trim() != name
        || name.chars().any(char::is_control)
    {
        return Err(invalid(
            "name",
            &json!(name),
            "The name must be 1 to 255 printable characters without leading or trailing whitespace",
        ));
    }
    Ok(())
}

fn metadata_field(v: &Value, field: &str) -> Result<BTreeMap<String, String>, NovaError> {
    let Value::Object(m) = v else {
        return Err(invalid(field, v, &format!("{v} is not of type 'object'")));
    };
    let mut out = BTreeMap::new();
    for (k, val) in m {
        let Value::String(s) = val else {
            return Err(invalid(field, v, &format!("{val} is not of type 'string'")));
        };
        if k.is_empty() || k.chars().count() > 255 || s.chars().count() > 255 {
            return Err(invalid(
                field,
                v,
                "metadata keys are 1 to 255 and values up to 255 characters",
            ));
        }
        out.insert(k.clone(), s.clone());
    }
    Ok(out)
}

fn check_metadata_quota(compute: &Compute, project: &str, count: usize) -> Result<(), NovaError> {
    let limit = compute
        .limits(project)
        .get("metadata_items")
        .copied()
        .unwrap_or(-1);
    if limit >= 0 && count as i64 > limit {
        return Err(NovaError::forbidden(format!(
            "Quota exceeded for metadata_items: Requested {count}, but already used 0 of {limit} metadata_items"
        )));
    }
    Ok(())
}

/// The flavor a request names, by id or by a URL ending in the id.
fn flavor_ref(compute: &Compute, caller: &Caller, r: &str) -> Result<FlavorRow, NovaError> {
    let id = r.rsplit('/').next().unwrap_or(r);
    let view = compute.view.snapshot();
    if view.flavor_visible(id, &caller.project_id, caller.is_admin) {
        if let Some(f) = view.flavor(id) {
            return Ok(f.clone());
        }
    }
    Err(NovaError::bad_request(format!(
        "Flavor {id} could not be found."
    )))
}

fn flavor_spec(f: &FlavorRow) -> FlavorSpec {
    FlavorSpec {
        id: f.id.clone(),
        name: f.name.clone(),
        vcpus: f.vcpus,
        ram_mb: f.ram_mb,
        disk_gb: f.disk_gb,
        ephemeral_gb: f.ephemeral_gb,
        swap_mb: f.swap_mb,
        rxtx_factor: f.rxtx_factor,
        extra_specs: f.extra_specs.clone(),
        description: f.description.clone(),
    }
}

/// An active image the caller may use, checked against the flavor's disk and RAM.
fn image_ref(
    compute: &Compute,
    caller: &Caller,
    r: &str,
    flavor: Option<&FlavorSpec>,
) -> Result<String, NovaError> {
    let id = r.rsplit('/').next().unwrap_or(r).to_string();
    let view = compute.images.snapshot();
    let row = view
        .image(&id)
        .filter(|i| caller.is_admin || i.readable_by(&caller.project_id))
        .ok_or_else(|| NovaError::bad_request(format!("Image {id} could not be found.")))?;
    if row.status != "active" {
        return Err(NovaError::bad_request(format!("Image {id} is not active.")));
    }
    if let Some(f) = flavor {
        if f.ram_mb < row.min_ram {
            return Err(NovaError::bad_request(
                "Flavor's memory is too small for requested image.",
            ));
        }
        if f.disk_gb > 0 {
            let need = row
                .virtual_size
                .or(row.size)
                .unwrap_or(0)
                .max(row.min_disk << 30);
            if need > f.disk_gb << 30 {
                return Err(NovaError::bad_request(
                    "Flavor's disk is too small for requested image.",
                ));
            }
        }
    }
    Ok(id)
}

fn flavor_amounts(f: &FlavorSpec) -> Amounts {
    Amounts {
        instances: 1,
        cores: f.vcpus as i64,
        ram: f.ram_mb as i64,
    }
}

fn quota_limits(compute: &Compute, project: &str) -> Limits {
    Limits::from_map(&compute.limits(project))
}

const UNLIMITED: Limits = Limits {
    instances: -1,
    cores: -1,
    ram: -1,
};

// ---------------------------------------------------------------------------------------------------------
// List

fn name_matches(pattern: &str, name: &str) -> bool {
    // Nova treats the name filter as a regular expression searched in the name; the common forms are a
    // substring, `^prefix`, `suffix$` and `^exact$`.
    let (anchored_start, p) = match pattern.strip_prefix('^') {
        Some(p) => (true, p),
        None => (false, pattern),
    };
    let (anchored_end, p) = match p.strip_suffix('$') {
        Some(p) => (true, p),
        None => (false, p),
    };
    let p = p.replace(".*", "\u{0}");
    let parts: Vec<&str> = p.split('\u{0}').collect();
    if parts.len() == 1 {
        return match (anchored_start, anchored_end) {
            (true, true) => name == p,
            (true, false) => name.starts_with(p.as_str()),
            (false, true) => name.ends_with(p.as_str()),
            (false, false) => name.contains(p.as_str()),
        };
    }
    // Wildcards: the parts in order.
    let mut rest = name;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 && anchored_start {
            if !rest.starts_with(part) {
                return false;
            }
            rest = &rest[part.len()..];
            continue;
        }
        match rest.find(part) {
            Some(pos) => rest = &rest[pos + part.len()..],
            None => return false,
        }
    }
    !anchored_end || parts.last().is_some_and(|l| name.ends_with(l))
}

fn listing(
    compute: &Compute,
    caller: &Caller,
    req: &HttpRequest,
    mv: Microversion,
    detail: bool,
) -> Result<HttpResponse, NovaError> {
    let q = crate::common::query_pairs(req);
    let get = |k: &str| q.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
    let truthy = |v: Option<String>| {
        v.is_some_and(|v| {
            matches!(
                v.to_lowercase().as_str(),
                "1" | "true" | "yes" | "t" | "on" | ""
            )
        })
    };
    let all = caller.is_admin && truthy(get("all_tenants").or_else(|| get("all_projects")));
    let project = get("project_id").or_else(|| get("tenant_id"));
    if project.is_some() && !caller.is_admin {
        // Nova ignores a project filter from non-admins (they only see their own).
    }
    let deleted = caller.is_admin && truthy(get("deleted"));
    let limit: usize = match get("limit") {
        Some(l) => l
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| NovaError::bad_request(format!("Invalid input for query parameters limit. Value: {l}. '{l}' does not match '^[0-9]*$'")))?
            as usize,
        None => 1000,
    };
    let status = get("status").map(|s| s.to_uppercase());
    let name = get("name");
    let image = get("image").map(|i| i.rsplit('/').next().unwrap_or("").to_string());
    let flavor = get("flavor").map(|i| i.rsplit('/').next().unwrap_or("").to_string());
    let host = get("host").filter(|_| caller.is_admin);
    let user = get("user_id");
    let reservation = get("reservation_id");
    let locked = get("locked").map(|l| l.to_lowercase() == "true");
    let az = get("availability_zone");
    let changes_since = get("changes-since");
    let ip = get("ip");
    let sort_key = get("sort_key").unwrap_or_else(|| "created_at".into());
    let asc = get("sort_dir").is_some_and(|d| d == "asc");
    let views = compute.views();
    let mut rows: Vec<&ServerRow> = views
        .compute
        .servers
        .values()
        .map(|r| &**r)
        .filter(|r| {
            if deleted {
                r.is_deleted()
            } else {
                !r.is_deleted()
            }
        })
        .filter(|r| {
            if caller.is_admin && (all || project.is_some()) {
                project.as_ref().is_none_or(|p| *p == r.state.project_id)
            } else {
                r.state.project_id == caller.project_id
            }
        })
        .filter(|r| status.as_ref().is_none_or(|s| r.state.status() == s))
        .filter(|r| name.as_ref().is_none_or(|n| name_matches(n, &r.state.name)))
        .filter(|r| image.as_ref().is_none_or(|i| *i == r.state.image_id))
        .filter(|r| flavor.as_ref().is_none_or(|f| *f == r.state.flavor.id))
        .filter(|r| host.as_ref().is_none_or(|h| *h == r.state.host))
        .filter(|r| user.as_ref().is_none_or(|u| *u == r.state.user_id))
        .filter(|r| {
            reservation
                .as_ref()
                .is_none_or(|x| *x == r.state.reservation_id)
        })
        .filter(|r| locked.is_none_or(|l| l == r.state.locked))
        .filter(|r| az.as_ref().is_none_or(|z| *z == r.state.availability_zone))
        .filter(|r| {
            changes_since
                .as_ref()
                .is_none_or(|c| r.updated_at.as_str() >= c.as_str())
        })
        // Without networking no server has an address.
        .filter(|_| ip.is_none())
        .collect();
    let key = |r: &ServerRow| -> String {
        match sort_key.as_str() {
            "display_name" | "name" => r.state.name.clone(),
            "updated_at" => r.updated_at.clone(),
            "vm_state" => r.state.vm_state.clone(),
            "host" => r.state.host.clone(),
            _ => r.created_at.clone(),
        }
    };
    rows.sort_by(|a, b| {
        let o = key(a).cmp(&key(b)).then_with(|| a.id.cmp(&b.id));
        if asc {
            o
        } else {
            o.reverse()
        }
    });
    if let Some(m) = get("marker") {
        skip_past_marker(&mut rows, &m, |r| r.id == m, marker_not_found)?;
    }
    let more = rows.len() > limit;
    rows.truncate(limit);
    let base = crate::common::base_url(req);
    let servers: Vec<Value> = rows
        .iter()
        .map(|r| {
            if detail {
                server_json(compute, &views, &base, mv, caller, r)
            } else {
                json!({ "id": r.id, "name": r.state.name, "links": links(&base, "servers", &r.id) })
            }
        })
        .collect();
    let mut body = json!({ "servers": servers });
    if more && limit > 0 {
        if let Some(last) = rows.last() {
            let mut params: Vec<String> = q
                .iter()
                .filter(|(k, _)| k != "marker")
                .map(|(k, v)| format!("{k}={}", crate::common::encode(v)))
                .collect();
            params.push(format!("marker={}", last.id));
            let path = if detail { "servers/detail" } else { "servers" };
            body["servers_links"] = json!([{ "rel": "next", "href": format!("{base}/v2.1/{path}?{}", params.join("&")) }]);
        }
    }
    Ok(HttpResponse::Ok().json(body))
}

/// `GET /servers` (`DETAIL` false) and `/servers/detail` (true).
async fn list<const DETAIL: bool>(
    compute: web::Data<Compute>,
    caller: Caller,
    req: HttpRequest,
    mv: Microversion,
) -> Result<HttpResponse, NovaError> {
    listing(&compute, &caller, &req, mv, DETAIL)
}

async fn show(
    compute: web::Data<Compute>,
    caller: Caller,
    req: HttpRequest,
    mv: Microversion,
    path: web::Path<String>,
) -> Result<HttpResponse, NovaError> {
    let server = server_answer(&compute, &req, mv, &caller, &path.into_inner())?;
    Ok(HttpResponse::Ok().json(json!({ "server": server })))
}

// ---------------------------------------------------------------------------------------------------------
// Update, delete, metadata, addresses

async fn update(
    compute: web::Data<Compute>,
    caller: Caller,
    req: HttpRequest,
    mv: Microversion,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, NovaError> {
    let id = path.into_inner();
    writable(&compute, &caller, &id, "os_compute_api:servers:update")?;
    let v = parse_json(&body)?;
    let s = required_object(&v, "server")?;
    for k in s.keys() {
        let allowed = matches!(
            k.as_str(),
            "name" | "accessIPv4" | "accessIPv6" | "OS-DCF:diskConfig"
        ) || (k == "description" && mv.0 >= 19);
        if !allowed {
            return Err(invalid(
                "server",
                &v["server"],
                &format!("Additional properties are not allowed ('{k}' was unexpected)"),
            ));
        }
    }
    let name = string_field(s, "name")?;
    if let Some(n) = &name {
        check_name(n)?;
    }
    let description = match s.get("description") {
        Some(Value::Null) => Some(String::new()),
        Some(Value::String(d)) if d.chars().count() <= 255 => Some(d.clone()),
        Some(other) => {
            return Err(invalid(
                "description",
                other,
                "must be a string of at most 255 characters",
            ))
        }
        None => None,
    };
    if let Some(n) = name {
        rename(&compute, &caller, &id, n).await?;
    }
    if let Some(d) = description {
        describe(&compute, &caller, &id, d).await?;
    }
    let server = server_answer(&compute, &req, mv, &caller, &id)?;
    Ok(HttpResponse::Ok().json(json!({ "server": server })))
}

/// Give the server a new name (update and rebuild).
async fn rename(
    compute: &Compute,
    caller: &Caller,
    id: &str,
    name: String,
) -> Result<(), NovaError> {
    compute
        .run(
            &compute.servers,
            id,
            ServerCommand::Rename {
                name,
                admin: caller.is_admin,
            },
            &caller.meta,
        )
        .await?;
    Ok(())
}

/// Set (or, with "", clear) the server's description (update and rebuild).
async fn describe(
    compute: &Compute,
    caller: &Caller,
    id: &str,
    description: String,
) -> Result<(), NovaError> {
    compute
        .run(
            &compute.servers,
            id,
            ServerCommand::SetDescription {
                description,
                admin: caller.is_admin,
            },
            &caller.meta,
        )
        .await?;
    Ok(())
}

async fn begin(
    compute: &Compute,
    caller: &Caller,
    id: &str,
    action: Action,
) -> Result<(), NovaError> {
    run_unlocked(
        compute,
        caller,
        id,
        ServerCommand::Begin {
            action,
            request_id: caller.meta.correlation_id.clone(),
            admin: caller.is_admin,
        },
    )
    .await
}

/// Run `cmd` on the server; a refusal because it is locked names the server as Nova does.
async fn run_unlocked(
    compute: &Compute,
    caller: &Caller,
    id: &str,
    cmd: ServerCommand,
) -> Result<(), NovaError> {
    compute
        .run(&compute.servers, id, cmd, &caller.meta)
        .await
        .map(|_| ())
        .map_err(|e| locked_message(e.into(), id))
}

/// Nova's wording for a locked server names its id.
fn locked_message(e: NovaError, id: &str) -> NovaError {
    if e.status == StatusCode::CONFLICT
        && e.message.starts_with("Instance ")
        && e.message.ends_with(" is locked")
    {
        NovaError::conflict(format!("Instance {id} is locked"))
    } else {
        e
    }
}

async fn delete(
    compute: web::Data<Compute>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, NovaError> {
    let id = path.into_inner();
    let row = writable(&compute, &caller, &id, "os_compute_api:servers:delete")?;
    check_unlocked(&row, &caller)?;
    // The conductor detaches the volumes (and deletes those marked delete_on_termination).
    begin(&compute, &caller, &id, Action::Delete).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn metadata_list(
    compute: web::Data<Compute>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, NovaError> {
    let row = server_row(&compute, &caller, &path.into_inner())?;
    Ok(HttpResponse::Ok().json(json!({ "metadata": row.state.metadata })))
}

async fn set_metadata(
    compute: &Compute,
    caller: &Caller,
    id: &str,
    items: BTreeMap<String, String>,
    replace: bool,
    action: &str,
) -> Result<ServerRow, NovaError> {
    let row = writable(compute, caller, id, action)?;
    let total = if replace {
        items.len()
    } else {
        let mut keys: std::collections::BTreeSet<&String> = row.state.metadata.keys().collect();
        keys.extend(items.keys());
        keys.len()
    };
    check_metadata_quota(compute, &row.state.project_id, total)?;
    run_unlocked(
        compute,
        caller,
        id,
        ServerCommand::SetMetadata {
            items,
            replace,
            admin: caller.is_admin,
        },
    )
    .await?;
    server_row(compute, caller, id)
}

/// `PUT` (replace) or `POST` (merge) `/servers/{id}/metadata`: answers the server's metadata afterwards.
async fn metadata_write(
    compute: &Compute,
    caller: &Caller,
    id: &str,
    body: &[u8],
    replace: bool,
) -> Result<HttpResponse, NovaError> {
    let v = parse_json(body)?;
    let items = metadata_field(v.get("metadata").unwrap_or(&Value::Null), "metadata")?;
    let action = if replace {
        "os_compute_api:server-metadata:update_all"
    } else {
        "os_compute_api:server-metadata:create"
    };
    let row = set_metadata(compute, caller, id, items, replace, action).await?;
    Ok(HttpResponse::Ok().json(json!({ "metadata": row.state.metadata })))
}

/// `PUT /servers/{id}/metadata` (`REPLACE` true) and `POST` (false).
async fn metadata_set<const REPLACE: bool>(
    compute: web::Data<Compute>,
    caller: Caller,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, NovaError> {
    metadata_write(&compute, &caller, &path.into_inner(), &body, REPLACE).await
}

async fn metadata_show(
    compute: web::Data<Compute>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, NovaError> {
    let (id, key) = path.into_inner();
    let row = server_row(&compute, &caller, &id)?;
    let value = row
        .state
        .metadata
        .get(&key)
        .ok_or_else(|| NovaError::not_found("Metadata item was not found"))?;
    Ok(HttpResponse::Ok().json(json!({ "meta": { key: value } })))
}

async fn metadata_put(
    compute: web::Data<Compute>,
    caller: Caller,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> Result<HttpResponse, NovaError> {
    let (id, key) = path.into_inner();
    let v = parse_json(&body)?;
    let items = metadata_field(v.get("meta").unwrap_or(&Value::Null), "meta")?;
    if items.len() != 1 {
        return Err(NovaError::bad_request(
            "Request body contains too many items",
        ));
    }
    if !items.contains_key(&key) {
        return Err(NovaError::bad_request("Request body and URI mismatch"));
    }
    set_metadata(
        &compute,
        &caller,
        &id,
        items.clone(),
        false,
        "os_compute_api:server-metadata:update",
    )
    .await?;
    Ok(HttpResponse::Ok().json(json!({ "meta": items })))
}

async fn metadata_delete(
    compute: web::Data<Compute>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, NovaError> {
    let (id, key) = path.into_inner();
    let row = writable(
        &compute,
        &caller,
        &id,
        "os_compute_api:server-metadata:delete",
    )?;
    if !row.state.metadata.contains_key(&key) {
        return Err(NovaError::not_found("Metadata item was not found"));
    }
    run_unlocked(
        &compute,
        &caller,
        &id,
        ServerCommand::DeleteMetadataItem {
            key,
            admin: caller.is_admin,
        },
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn ips(
    compute: web::Data<Compute>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, NovaError> {
    let row = server_row(&compute, &caller, &path.into_inner())?;
    let addresses = super::network::addresses(&compute.networks.view.snapshot(), &row.state.ports);
    Ok(HttpResponse::Ok().json(json!({ "addresses": addresses })))
}

async fn ips_network(
    compute: web::Data<Compute>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, NovaError> {
    let (id, network) = path.into_inner();
    let row = server_row(&compute, &caller, &id)?;
    let addresses = super::network::addresses(&compute.networks.view.snapshot(), &row.state.ports);
    match addresses.get(&network) {
        Some(list) => Ok(HttpResponse::Ok().json(json!({ network: list }))),
        None => Err(NovaError::not_found(
            "Instance is not a member of specified network",
        )),
    }
}
