//! `/v2.1/servers`: create (with quota reservation), list/detail with Nova's filters and paging, show, update,
//! delete, metadata, addresses, and the server actions. The API only records that an action started; the
//! conductor and the compute agents (strata-compute) do the work and record each step.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine as _;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha224};
use strata_actors::compute::quota::{Amounts, Limits, UsageCommand};
use strata_actors::compute::server::{power, vm};
use strata_actors::compute::{Action, FlavorSpec, ServerCommand, ServerGroupCommand};
use strata_actors::image::ImageCommand;
use strata_projections::compute::{ComputeView, FlavorRow, ServerRow};
use strata_proto::compute as pb;

use super::{Caller, Compute, Microversion, NovaError, Views};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/v2.1/servers")
            .route(web::get().to(list))
            .route(web::post().to(create)),
    )
    .service(web::resource("/v2.1/servers/detail").route(web::get().to(detail)))
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
            .route(web::put().to(metadata_replace))
            .route(web::post().to(metadata_update)),
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
    visible(&compute, &caller, &path.into_inner())?;
    Ok(HttpResponse::Ok().json(json!({ "nodes": [], "pagesize_kb": null })))
}

// ---------------------------------------------------------------------------------------------------------
// Rendering

/// Nova's `created`/`updated` format.
fn nova_time(ts: &str) -> Value {
    if ts.is_empty() {
        Value::Null
    } else {
        json!(ts)
    }
}

/// Nova's `OS-SRV-USG:*` format: no zone, microseconds.
fn usage_time(ts: &str) -> Value {
    if ts.is_empty() {
        Value::Null
    } else {
        json!(format!("{}.000000", ts.trim_end_matches('Z')))
    }
}

/// Nova's hostId: SHA-224 of project id + host, hex ("" without a host).
fn host_id(project_id: &str, host: &str) -> String {
    if host.is_empty() {
        return String::new();
    }
    hex::encode(Sha224::digest(format!("{project_id}{host}").as_bytes()))
}

fn links(base: &str, kind: &str, id: &str) -> Value {
    json!([
        { "rel": "self", "href": format!("{base}/v2.1/{kind}/{id}") },
        { "rel": "bookmark", "href": format!("{base}/{kind}/{id}") },
    ])
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
        "created": nova_time(&row.created_at),
        "updated": nova_time(&row.updated_at),
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
                "created": nova_time(&row.fault_at),
            });
            if caller.is_admin || f.code != 500 {
                fault["details"] = json!(f.details);
            }
            v["fault"] = fault;
        }
    }
    if caller.is_admin {
        v["OS-EXT-SRV-ATTR:host"] = nullable(&s.host);
        v["OS-EXT-SRV-ATTR:hypervisor_hostname"] = nullable(&s.node);
        v["OS-EXT-SRV-ATTR:instance_name"] = json!(format!("instance-{}", &id[..8.min(id.len())]));
        if mv.0 >= 3 {
            v["OS-EXT-SRV-ATTR:reservation_id"] = json!(s.reservation_id);
            v["OS-EXT-SRV-ATTR:launch_index"] = json!(s.launch_index);
            v["OS-EXT-SRV-ATTR:hostname"] = json!(s.hostname);
            v["OS-EXT-SRV-ATTR:kernel_id"] = json!("");
            v["OS-EXT-SRV-ATTR:ramdisk_id"] = json!("");
            v["OS-EXT-SRV-ATTR:root_device_name"] = json!("/dev/vda");
            v["OS-EXT-SRV-ATTR:user_data"] = nullable(&s.user_data);
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
        v["description"] = nullable(&s.description);
    }
    if mv.0 >= 26 {
        v["tags"] = json!([]);
    }
    if mv.0 >= 63 {
        v["trusted_image_certificates"] = Value::Null;
    }
    if mv.0 >= 73 {
        v["locked_reason"] = nullable(&s.locked_reason);
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

fn nullable(s: &str) -> Value {
    if s.is_empty() {
        Value::Null
    } else {
        json!(s)
    }
}

// ---------------------------------------------------------------------------------------------------------
// Lookup

/// The server as the caller may see it: their project's, or any for an admin. Deleted servers are gone.
fn visible(compute: &Compute, caller: &Caller, id: &str) -> Result<ServerRow, NovaError> {
    visible_in(&compute.view.snapshot(), caller, id).cloned()
}

/// The server as the caller may see it, if Nova's policy lets the caller do `action` to it (403 otherwise).
fn writable(
    compute: &Compute,
    caller: &Caller,
    id: &str,
    action: &str,
) -> Result<ServerRow, NovaError> {
    let row = visible(compute, caller, id)?;
    caller.enforce(action, &row.state.project_id)?;
    Ok(row)
}

/// [`visible`] in a snapshot the caller already holds.
fn visible_in<'a>(
    view: &'a ComputeView,
    caller: &Caller,
    id: &str,
) -> Result<&'a ServerRow, NovaError> {
    match view.server(id) {
        Some(row) if caller.is_admin || row.state.project_id == caller.project_id => Ok(row),
        _ => Err(NovaError::not_found(format!(
            "Instance {id} could not be found."
        ))),
    }
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
    let row = visible_in(&views.compute, caller, id)?;
    let base = crate::common::base_url(req);
    Ok(server_full_json(compute, &views, &base, mv, caller, row))
}

/// Nova's answer to an action body that does not name exactly one action.
fn malformed() -> NovaError {
    NovaError::bad_request("Malformed request body")
}

fn parse_json(body: &[u8]) -> Result<Value, NovaError> {
    serde_json::from_slice(body)
        .map_err(|e| NovaError::bad_request(format!("Malformed request body: {e}")))
}

fn invalid(field: &str, value: &Value, why: &str) -> NovaError {
    NovaError::bad_request(format!(
        "Invalid input for field/attribute {field}. Value: {value}. {why}"
    ))
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
// Create

async fn create(
    compute: web::Data<Compute>,
    vols: web::Data<crate::volume::Volumes>,
    identity: web::Data<crate::identity::Identity>,
    caller: Caller,
    req: HttpRequest,
    mv: Microversion,
    body: web::Bytes,
) -> Result<HttpResponse, NovaError> {
    caller.enforce("os_compute_api:servers:create", &caller.project_id)?;
    let v = parse_json(&body)?;
    let s = required_object(&v, "server")?;
    let name = string_field(s, "name")?
        .ok_or_else(|| invalid("server", &v["server"], "'name' is a required property"))?;
    check_name(&name)?;
    let flavor_r = string_field(s, "flavorRef")?
        .ok_or_else(|| invalid("server", &v["server"], "'flavorRef' is a required property"))?;
    let flavor = flavor_spec(&flavor_ref(&compute, &caller, &flavor_r)?);
    // The root disk: an image (imageRef, or a local image mapping) or a Cinder volume (boot from volume).
    let mut disks = super::volumes::boot_disks(&compute, &caller, s)?;
    let image_r = match string_field(s, "imageRef")?.unwrap_or_default() {
        r if r.is_empty() => disks.image.clone().unwrap_or_default(),
        r => r,
    };
    let image_id = if disks.boot_volume() {
        String::new()
    } else if image_r.is_empty() {
        return Err(NovaError::bad_request(
            "Block Device Mapping is Invalid: You specified more local devices than the limit allows",
        ));
    } else {
        image_ref(&compute, &caller, &image_r, Some(&flavor))?
    };
    // Networks: required from 2.37 ("auto", "none" or a list); without a network service only "auto" and
    // "none" can be served.
    // Networks: "auto", "none" or a list of networks, ports and fixed IPs; security groups for new ports.
    let requested = super::network::parse_networks(s.get("networks"), mv.0)?;
    let networks = requested.label().to_string();
    let security_groups = super::network::security_group_ids(&compute.networks, &caller, s)?;
    if matches!(&requested, super::network::Requested::List(l) if l.iter().any(|n| n.port_id.is_some() || n.fixed_ip.is_some()))
    {
        // A port or an address belongs to one server.
        let many = |k: &str| s.get(k).and_then(Value::as_u64).unwrap_or(1) > 1;
        if many("max_count") || many("min_count") {
            return Err(NovaError::bad_request(
                "Unable to launch multiple instances with a single configured port or fixed IP",
            ));
        }
    }
    let key_name = string_field(s, "key_name")?.unwrap_or_default();
    let mut key_data = String::new();
    if !key_name.is_empty() {
        let view = compute.view.snapshot();
        match view.keypair(&caller.auth.user_id, &key_name) {
            Some(k) => key_data = k.public_key.clone(),
            None => return Err(NovaError::bad_request("Invalid key_name provided.")),
        }
    }
    let metadata = match s.get("metadata") {
        Some(m) => metadata_field(m, "metadata")?,
        None => BTreeMap::new(),
    };
    check_metadata_quota(&compute, &caller.project_id, metadata.len())?;
    let user_data = string_field(s, "user_data")?.unwrap_or_default();
    if !user_data.is_empty() {
        if user_data.len() > 65535 {
            return Err(invalid("user_data", &json!("..."), "is too long"));
        }
        base64::engine::general_purpose::STANDARD
            .decode(user_data.trim())
            .map_err(|_| NovaError::bad_request("User data needs to be valid base 64."))?;
    }
    let description = match string_field(s, "description")? {
        Some(d) if mv.0 >= 19 => {
            if d.chars().count() > 255 {
                return Err(invalid("description", &json!(d), "is too long"));
            }
            d
        }
        Some(_) => {
            return Err(invalid(
                "server",
                &v["server"],
                "Additional properties are not allowed ('description' was unexpected)",
            ))
        }
        None => String::new(),
    };
    // availability_zone: "zone", or (admins) "zone:host" / ":host".
    let mut az = string_field(s, "availability_zone")?.unwrap_or_default();
    let mut requested_host = String::new();
    if let Some((zone, host)) = az.clone().split_once(':') {
        caller.enforce(
            "os_compute_api:servers:create:forced_host",
            &caller.project_id,
        )?;
        requested_host = host.to_string();
        az = zone.to_string();
    }
    if !az.is_empty() {
        let view = compute.view.snapshot();
        let default = &compute.engine.config().scheduler.default_availability_zone;
        let known = view.hosts.keys().any(|h| view.host_az(h, default) == az);
        if !known {
            return Err(NovaError::bad_request(format!(
                "The requested availability zone is not available: {az}"
            )));
        }
    }
    for key in ["host", "hypervisor_hostname"] {
        if let Some(h) = string_field(s, key)? {
            if mv.0 < 74 {
                return Err(invalid(
                    "server",
                    &v["server"],
                    &format!("Additional properties are not allowed ('{key}' was unexpected)"),
                ));
            }
            caller.enforce(
                "compute:servers:create:requested_destination",
                &caller.project_id,
            )?;
            requested_host = h;
        }
    }
    if !requested_host.is_empty() && !compute.view.snapshot().hosts.contains_key(&requested_host) {
        return Err(NovaError::bad_request(format!(
            "Compute host {requested_host} could not be found."
        )));
    }
    let count = |k: &str| -> Result<Option<u32>, NovaError> {
        match s.get(k) {
            None => Ok(None),
            Some(n) => n
                .as_u64()
                .or_else(|| n.as_str().and_then(|x| x.parse().ok()))
                .filter(|n| *n >= 1 && *n <= 1000)
                .map(|n| Some(n as u32))
                .ok_or_else(|| invalid(k, n, "must be an integer of at least 1")),
        }
    };
    let min_count = count("min_count")?.unwrap_or(1);
    let max_count = count("max_count")?.unwrap_or(min_count);
    if min_count > max_count {
        return Err(NovaError::bad_request("min_count must be <= max_count"));
    }
    if max_count > 1 && !disks.volumes.is_empty() {
        return Err(NovaError::bad_request(
            "Block Device Mapping is Invalid: volumes cannot be shared by multiple instances; create one server per request.",
        ));
    }
    // Scheduler hints.
    let hints = v
        .get("os:scheduler_hints")
        .or_else(|| v.get("OS-SCH-HNT:scheduler_hints"))
        .cloned()
        .unwrap_or(json!({}));
    let hint_list = |k: &str| -> Vec<String> {
        match hints.get(k) {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect(),
            _ => vec![],
        }
    };
    let group_id = hint_list("group").into_iter().next().unwrap_or_default();
    if !group_id.is_empty() {
        let view = compute.view.snapshot();
        match view.group(&group_id) {
            Some(g) if caller.is_admin || g.state.project_id == caller.project_id => {}
            _ => {
                return Err(NovaError::bad_request(format!(
                    "Invalid server group {group_id}"
                )))
            }
        }
    }
    let same_host = hint_list("same_host");
    let different_host = hint_list("different_host");
    for sid in same_host.iter().chain(&different_host) {
        if compute.view.snapshot().server(sid).is_none() {
            return Err(NovaError::bad_request(format!(
                "Invalid instance {sid} in scheduler hints"
            )));
        }
    }

    // Quota: reserve max_count servers, or as many as fit down to min_count.
    let limits = quota_limits(&compute, &caller.project_id);
    let mut ids: Vec<String> = Vec::new();
    let mut last_err = None;
    let mut n = max_count;
    while n >= min_count {
        let try_ids: Vec<String> = (0..n).map(|_| uuid::Uuid::new_v4().to_string()).collect();
        let holders = try_ids
            .iter()
            .map(|id| (id.clone(), flavor_amounts(&flavor)))
            .collect();
        match compute
            .usage
            .execute(
                &caller.project_id,
                UsageCommand::Reserve { holders, limits },
                caller.meta.clone(),
            )
            .await
        {
            Ok(_) => {
                ids = try_ids;
                break;
            }
            Err(e) => {
                last_err = Some(e);
                if n == min_count {
                    break;
                }
                n -= 1;
            }
        }
    }
    if ids.is_empty() {
        return Err(last_err
            .map(NovaError::from)
            .unwrap_or_else(|| NovaError::forbidden("Quota exceeded")));
    }
    let release_all = |ids: Vec<String>| {
        let compute = compute.clone();
        let project = caller.project_id.clone();
        let meta = caller.meta.clone();
        async move {
            for id in ids {
                let _ = compute
                    .usage
                    .execute(&project, UsageCommand::Release { holder: id }, meta.clone())
                    .await;
            }
        }
    };
    if !group_id.is_empty() {
        let limit = compute
            .limits(&caller.project_id)
            .get("server_group_members")
            .copied()
            .unwrap_or(-1);
        if let Err(e) = compute
            .groups
            .execute(
                &group_id,
                ServerGroupCommand::AddMembers {
                    servers: ids.clone(),
                    limit,
                },
                caller.meta.clone(),
            )
            .await
        {
            release_all(ids).await;
            return Err(e.into());
        }
    }
    // New volumes (from an image, a snapshot or blank) are made through Cinder before the server exists.
    if let Err(e) =
        super::volumes::make_boot_volumes(&vols, &identity, &caller, &mut disks.volumes).await
    {
        release_all(ids).await;
        return Err(e);
    }
    // Each server's ports, made through Neutron before the servers are recorded.
    let mut server_ports: Vec<Vec<strata_actors::compute::ServerPort>> = Vec::new();
    for id in &ids {
        match super::network::make_ports(
            &compute.networks,
            &caller,
            id,
            &requested,
            &security_groups,
        )
        .await
        {
            Ok(p) => server_ports.push(p),
            Err(e) => {
                for made in &server_ports {
                    super::network::discard_ports(&compute.networks, &caller, made).await;
                }
                super::volumes::discard_boot_volumes(&vols, &caller, &disks.volumes).await;
                release_all(ids).await;
                return Err(e);
            }
        }
    }
    let reservation_id = format!("r-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let request_id = caller.meta.correlation_id.clone();
    let multiple = ids.len() > 1;
    for (i, id) in ids.iter().enumerate() {
        let name = if multiple {
            format!("{name}-{}", i + 1)
        } else {
            name.clone()
        };
        let hostname = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect::<String>();
        let created = pb::ServerCreated {
            project_id: caller.project_id.clone(),
            user_id: caller.auth.user_id.clone(),
            name,
            description: description.clone(),
            flavor: Some(flavor.to_pb()),
            image_id: image_id.clone(),
            key_name: key_name.clone(),
            key_data: key_data.clone(),
            metadata: metadata.clone().into_iter().collect(),
            user_data: user_data.clone(),
            availability_zone: az.clone(),
            group_id: group_id.clone(),
            same_host: same_host.clone(),
            different_host: different_host.clone(),
            reservation_id: reservation_id.clone(),
            launch_index: i as u32,
            networks: networks.clone(),
            request_id: request_id.clone(),
            hostname,
            requested_host: requested_host.clone(),
            block_devices: disks.volumes.iter().map(|b| b.to_pb()).collect(),
            ports: server_ports[i].iter().map(|p| p.to_pb()).collect(),
        };
        if let Err(e) = compute
            .run(
                &compute.servers,
                id,
                ServerCommand::Create(Box::new(created)),
                &caller.meta,
            )
            .await
        {
            release_all(ids[i..].to_vec()).await;
            super::volumes::discard_boot_volumes(&vols, &caller, &disks.volumes).await;
            for made in &server_ports[i..] {
                super::network::discard_ports(&compute.networks, &caller, made).await;
            }
            return Err(e);
        }
    }
    let base = crate::common::base_url(&req);
    if s.get("return_reservation_id").and_then(Value::as_bool) == Some(true) {
        return Ok(HttpResponse::Accepted().json(json!({ "reservation_id": reservation_id })));
    }
    let id = &ids[0];
    let admin_pass = string_field(s, "adminPass")?.unwrap_or_else(|| {
        use rand::Rng;
        rand::thread_rng()
            .sample_iter(&rand::distributions::Alphanumeric)
            .take(12)
            .map(char::from)
            .collect()
    });
    Ok(HttpResponse::Accepted()
        .insert_header(("Location", format!("{base}/v2.1/servers/{id}")))
        .json(json!({ "server": {
            "id": id,
            "links": links(&base, "servers", id),
            "OS-DCF:diskConfig": "MANUAL",
            "security_groups": [{ "name": "default" }],
            "adminPass": admin_pass,
        }})))
}

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
        let pos = rows
            .iter()
            .position(|r| r.id == m)
            .ok_or_else(|| NovaError::bad_request(format!("marker [{m}] not found")))?;
        rows.drain(..=pos);
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

async fn list(
    compute: web::Data<Compute>,
    caller: Caller,
    req: HttpRequest,
    mv: Microversion,
) -> Result<HttpResponse, NovaError> {
    listing(&compute, &caller, &req, mv, false)
}

async fn detail(
    compute: web::Data<Compute>,
    caller: Caller,
    req: HttpRequest,
    mv: Microversion,
) -> Result<HttpResponse, NovaError> {
    listing(&compute, &caller, &req, mv, true)
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
        compute
            .run(
                &compute.servers,
                &id,
                ServerCommand::Rename {
                    name: n,
                    admin: caller.is_admin,
                },
                &caller.meta,
            )
            .await?;
    }
    if let Some(d) = description {
        compute
            .run(
                &compute.servers,
                &id,
                ServerCommand::SetDescription {
                    description: d,
                    admin: caller.is_admin,
                },
                &caller.meta,
            )
            .await?;
    }
    let server = server_answer(&compute, &req, mv, &caller, &id)?;
    Ok(HttpResponse::Ok().json(json!({ "server": server })))
}

async fn begin(
    compute: &Compute,
    caller: &Caller,
    id: &str,
    action: Action,
) -> Result<(), NovaError> {
    compute
        .run(
            &compute.servers,
            id,
            ServerCommand::Begin {
                action,
                request_id: caller.meta.correlation_id.clone(),
                admin: caller.is_admin,
            },
            &caller.meta,
        )
        .await
        .map(|_| ())
        .map_err(|e| locked_message(e, id))
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
    if row.state.locked && !caller.is_admin {
        return Err(NovaError::conflict(format!("Instance {id} is locked")));
    }
    // The conductor detaches the volumes (and deletes those marked delete_on_termination).
    begin(&compute, &caller, &id, Action::Delete).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn metadata_list(
    compute: web::Data<Compute>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, NovaError> {
    let row = visible(&compute, &caller, &path.into_inner())?;
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
    compute
        .run(
            &compute.servers,
            id,
            ServerCommand::SetMetadata {
                items,
                replace,
                admin: caller.is_admin,
            },
            &caller.meta,
        )
        .await
        .map_err(|e| locked_message(e, id))?;
    visible(compute, caller, id)
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

async fn metadata_replace(
    compute: web::Data<Compute>,
    caller: Caller,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, NovaError> {
    metadata_write(&compute, &caller, &path.into_inner(), &body, true).await
}

async fn metadata_update(
    compute: web::Data<Compute>,
    caller: Caller,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, NovaError> {
    metadata_write(&compute, &caller, &path.into_inner(), &body, false).await
}

async fn metadata_show(
    compute: web::Data<Compute>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, NovaError> {
    let (id, key) = path.into_inner();
    let row = visible(&compute, &caller, &id)?;
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
    compute
        .run(
            &compute.servers,
            &id,
            ServerCommand::DeleteMetadataItem {
                key,
                admin: caller.is_admin,
            },
            &caller.meta,
        )
        .await
        .map_err(|e| locked_message(e, &id))?;
    Ok(HttpResponse::NoContent().finish())
}

async fn ips(
    compute: web::Data<Compute>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, NovaError> {
    let row = visible(&compute, &caller, &path.into_inner())?;
    let addresses = super::network::addresses(&compute.networks.view.snapshot(), &row.state.ports);
    Ok(HttpResponse::Ok().json(json!({ "addresses": addresses })))
}

async fn ips_network(
    compute: web::Data<Compute>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, NovaError> {
    let (id, network) = path.into_inner();
    let row = visible(&compute, &caller, &id)?;
    let addresses = super::network::addresses(&compute.networks.view.snapshot(), &row.state.ports);
    match addresses.get(&network) {
        Some(list) => Ok(HttpResponse::Ok().json(json!({ network: list }))),
        None => Err(NovaError::not_found(
            "Instance is not a member of specified network",
        )),
    }
}

// ---------------------------------------------------------------------------------------------------------
// Actions

async fn action(
    compute: web::Data<Compute>,
    caller: Caller,
    req: HttpRequest,
    mv: Microversion,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, NovaError> {
    let id = path.into_inner();
    // As Nova: the body names exactly one known action, then the server is looked up and the action's
    // policy checked against the server's project.
    let v = parse_json(&body)?;
    let (name, arg) = match v.as_object() {
        Some(m) if m.len() == 1 => m.iter().next().ok_or_else(malformed)?,
        _ => return Err(malformed()),
    };
    let policy = super::policy::server_action(name)
        .ok_or_else(|| NovaError::bad_request(format!("There is no such action: {name}")))?;
    let row = writable(&compute, &caller, &id, policy)?;
    let arg = arg.clone();
    let accepted = || Ok(HttpResponse::Accepted().finish());
    match name.as_str() {
        "os-stop" => {
            begin(&compute, &caller, &id, Action::Stop).await?;
            accepted()
        }
        "os-start" => {
            begin(&compute, &caller, &id, Action::Start).await?;
            accepted()
        }
        "reboot" => {
            let kind = arg
                .get("type")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid("reboot", &arg, "'type' is a required property"))?;
            let hard = match kind.to_uppercase().as_str() {
                "HARD" => true,
                "SOFT" => false,
                _ => {
                    return Err(invalid(
                        "type",
                        &json!(kind),
                        "is not one of ['HARD', 'Hard', 'hard', 'SOFT', 'Soft', 'soft']",
                    ))
                }
            };
            begin(&compute, &caller, &id, Action::Reboot { hard }).await?;
            accepted()
        }
        "pause" => {
            begin(&compute, &caller, &id, Action::Pause).await?;
            accepted()
        }
        "unpause" => {
            begin(&compute, &caller, &id, Action::Unpause).await?;
            accepted()
        }
        "suspend" => {
            begin(&compute, &caller, &id, Action::Suspend).await?;
            accepted()
        }
        "resume" => {
            begin(&compute, &caller, &id, Action::Resume).await?;
            accepted()
        }
        "addSecurityGroup" => {
            super::network::change_security_group(&compute, &caller, &row, &arg, true).await
        }
        "removeSecurityGroup" => {
            super::network::change_security_group(&compute, &caller, &row, &arg, false).await
        }
        "lock" => {
            let reason = match arg.get("locked_reason") {
                Some(Value::String(r)) if mv.0 >= 73 => r.clone(),
                Some(other) => return Err(invalid("locked_reason", other, "is not allowed here")),
                None => String::new(),
            };
            compute
                .run(
                    &compute.servers,
                    &id,
                    ServerCommand::Lock {
                        reason,
                        admin: caller.is_admin,
                        request_id: caller.meta.correlation_id.clone(),
                    },
                    &caller.meta,
                )
                .await?;
            accepted()
        }
        "unlock" => {
            compute
                .run(
                    &compute.servers,
                    &id,
                    ServerCommand::Unlock {
                        admin: caller.is_admin,
                        request_id: caller.meta.correlation_id.clone(),
                    },
                    &caller.meta,
                )
                .await?;
            accepted()
        }
        "resize" => {
            let f = arg
                .get("flavorRef")
                .and_then(|f| {
                    f.as_str()
                        .map(str::to_string)
                        .or_else(|| f.as_u64().map(|n| n.to_string()))
                })
                .ok_or_else(|| invalid("resize", &arg, "'flavorRef' is a required property"))?;
            let new = flavor_spec(&flavor_ref(&compute, &caller, &f)?);
            if new.id == row.state.flavor.id {
                return Err(NovaError::bad_request(
                    "When resizing, instances must change flavor!",
                ));
            }
            image_ref(&compute, &caller, &row.state.image_id, Some(&new)).ok();
            // Quota for the new flavor, atomically against the project's other servers.
            compute
                .usage
                .execute(
                    &row.state.project_id,
                    UsageCommand::Reserve {
                        holders: vec![(id.clone(), flavor_amounts(&new))],
                        limits: quota_limits(&compute, &row.state.project_id),
                    },
                    caller.meta.clone(),
                )
                .await?;
            let started = migrate(&compute, &caller, &id, "resize", String::new(), Some(new)).await;
            if started.is_err() {
                let _ = compute
                    .usage
                    .execute(
                        &row.state.project_id,
                        UsageCommand::Reserve {
                            holders: vec![(id.clone(), flavor_amounts(&row.state.flavor))],
                            limits: UNLIMITED,
                        },
                        caller.meta.clone(),
                    )
                    .await;
            }
            started?;
            accepted()
        }
        "confirmResize" => {
            compute
                .run(
                    &compute.servers,
                    &id,
                    ServerCommand::ConfirmResize {
                        request_id: caller.meta.correlation_id.clone(),
                        admin: caller.is_admin,
                    },
                    &caller.meta,
                )
                .await
                .map_err(|e| locked_message(e, &id))?;
            Ok(HttpResponse::NoContent().finish())
        }
        "revertResize" => {
            compute
                .run(
                    &compute.servers,
                    &id,
                    ServerCommand::RevertResize {
                        request_id: caller.meta.correlation_id.clone(),
                        admin: caller.is_admin,
                    },
                    &caller.meta,
                )
                .await
                .map_err(|e| locked_message(e, &id))?;
            accepted()
        }
        "migrate" => {
            let host = match arg.get("host") {
                Some(Value::String(h)) if mv.0 >= 56 => h.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => return Err(invalid("host", other, "is not allowed here")),
            };
            check_dest(&compute, &host)?;
            migrate(&compute, &caller, &id, "migration", host, None).await?;
            accepted()
        }
        "os-migrateLive" => {
            if mv.0 >= 68 && arg.get("force").is_some() {
                return Err(invalid(
                    "os-migrateLive",
                    &arg,
                    "Additional properties are not allowed ('force' was unexpected)",
                ));
            }
            if !arg.is_object() || arg.get("block_migration").is_none() {
                return Err(invalid(
                    "os-migrateLive",
                    &arg,
                    "'block_migration' is a required property",
                ));
            }
            let host = match arg.get("host") {
                Some(Value::String(h)) => h.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => return Err(invalid("host", other, "is not of type 'string'")),
            };
            check_dest(&compute, &host)?;
            migrate(&compute, &caller, &id, "live-migration", host, None).await?;
            accepted()
        }
        "evacuate" => {
            if mv.0 >= 68 && arg.get("force").is_some() {
                return Err(invalid(
                    "evacuate",
                    &arg,
                    "Additional properties are not allowed ('force' was unexpected)",
                ));
            }
            let host = match arg.get("host") {
                Some(Value::String(h)) => h.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => return Err(invalid("host", other, "is not of type 'string'")),
            };
            check_dest(&compute, &host)?;
            if compute.host_up(&compute.view.snapshot(), &row.state.host) {
                return Err(NovaError::bad_request(format!(
                    "Compute service of {} is still in use.",
                    row.state.host
                )));
            }
            migrate(&compute, &caller, &id, "evacuation", host, None).await?;
            if mv.0 >= 14 {
                Ok(HttpResponse::Ok().finish())
            } else {
                let pass = arg
                    .get("adminPass")
                    .and_then(Value::as_str)
                    .unwrap_or("evacuated");
                Ok(HttpResponse::Ok().json(json!({ "adminPass": pass })))
            }
        }
        "rebuild" => rebuild(&compute, &caller, &req, mv, &id, &arg).await,
        "createImage" => create_image(&compute, &caller, &req, mv, &row, &arg).await,
        "shelve" => {
            begin(&compute, &caller, &id, Action::Shelve).await?;
            accepted()
        }
        "shelveOffload" => {
            // Shelving offloads at once, so a shelved server is already offloaded.
            if row.state.vm_state != vm::SHELVED_OFFLOADED {
                return Err(NovaError::conflict(format!(
                    "Cannot 'shelveOffload' instance {id} while it is in vm_state {}",
                    row.state.vm_state
                )));
            }
            accepted()
        }
        "unshelve" => {
            if let Some(az) = arg.get("availability_zone").filter(|a| !a.is_null()) {
                if mv.0 < 77 {
                    return Err(invalid("unshelve", &arg, "Additional properties are not allowed ('availability_zone' was unexpected)"));
                }
                let az = az.as_str().unwrap_or_default();
                if az != row.state.availability_zone && !row.state.availability_zone.is_empty() {
                    return Err(NovaError::bad_request(format!(
                        "Unshelving into availability zone {az} is not supported; the server stays in {}",
                        row.state.availability_zone
                    )));
                }
            }
            if row.state.vm_state != vm::SHELVED_OFFLOADED && row.state.vm_state != vm::SHELVED {
                return Err(NovaError::conflict(format!(
                    "Cannot 'unshelve' instance {id} while it is in vm_state {}",
                    row.state.vm_state
                )));
            }
            compute
                .usage
                .execute(
                    &row.state.project_id,
                    UsageCommand::Reserve {
                        holders: vec![(id.clone(), flavor_amounts(&row.state.flavor))],
                        limits: quota_limits(&compute, &row.state.project_id),
                    },
                    caller.meta.clone(),
                )
                .await?;
            if let Err(e) = begin(&compute, &caller, &id, Action::Unshelve).await {
                let _ = compute
                    .usage
                    .execute(
                        &row.state.project_id,
                        UsageCommand::Reserve {
                            holders: vec![(
                                id.clone(),
                                Amounts {
                                    instances: 1,
                                    cores: 0,
                                    ram: 0,
                                },
                            )],
                            limits: UNLIMITED,
                        },
                        caller.meta.clone(),
                    )
                    .await;
                return Err(e);
            }
            accepted()
        }
        "os-getConsoleOutput" => {
            let length = match arg.get("length") {
                None | Some(Value::Null) => None,
                Some(n) => match n
                    .as_i64()
                    .or_else(|| n.as_str().and_then(|s| s.parse().ok()))
                {
                    Some(-1) => None,
                    Some(n) if n >= 0 => Some(n as usize),
                    _ => return Err(invalid("length", n, "must be an integer of at least -1")),
                },
            };
            if row.state.host.is_empty() || row.state.power_state == power::NOSTATE {
                return Err(NovaError::conflict(format!(
                    "Cannot 'get_console_output' instance {id} while it is in vm_state {}",
                    row.state.vm_state
                )));
            }
            let output = compute
                .engine
                .console_output(&id, length)
                .await
                .map_err(NovaError::conflict)?;
            Ok(HttpResponse::Ok().json(json!({ "output": output })))
        }
        other => Err(NovaError::bad_request(format!(
            "There is no such action: {other}"
        ))),
    }
}

/// A move's destination must be a known compute host.
fn check_dest(compute: &Compute, host: &str) -> Result<(), NovaError> {
    if !host.is_empty() && !compute.view.snapshot().hosts.contains_key(host) {
        return Err(NovaError::bad_request(format!(
            "Compute host {host} could not be found."
        )));
    }
    Ok(())
}

async fn migrate(
    compute: &Compute,
    caller: &Caller,
    id: &str,
    kind: &str,
    dest_host: String,
    new_flavor: Option<FlavorSpec>,
) -> Result<(), NovaError> {
    compute
        .run(
            &compute.servers,
            id,
            ServerCommand::StartMigration {
                migration_id: uuid::Uuid::new_v4().to_string(),
                kind: kind.to_string(),
                dest_host,
                new_flavor,
                request_id: caller.meta.correlation_id.clone(),
                admin: caller.is_admin,
            },
            &caller.meta,
        )
        .await
        .map(|_| ())
        .map_err(|e| locked_message(e, id))
}

async fn rebuild(
    compute: &Compute,
    caller: &Caller,
    req: &HttpRequest,
    mv: Microversion,
    id: &str,
    arg: &Value,
) -> Result<HttpResponse, NovaError> {
    let Value::Object(m) = arg else {
        return Err(invalid("rebuild", arg, "is not of type 'object'"));
    };
    let image_r = string_field(m, "imageRef")?
        .ok_or_else(|| invalid("rebuild", arg, "'imageRef' is a required property"))?;
    let row = visible(compute, caller, id)?;
    let image_id = image_ref(compute, caller, &image_r, Some(&row.state.flavor))?;
    let name = string_field(m, "name")?;
    if let Some(n) = &name {
        check_name(n)?;
    }
    let metadata = m
        .get("metadata")
        .map(|v| metadata_field(v, "metadata"))
        .transpose()?;
    if let Some(md) = &metadata {
        check_metadata_quota(compute, &row.state.project_id, md.len())?;
    }
    let description = match m.get("description") {
        Some(_) if mv.0 < 19 => {
            return Err(invalid(
                "rebuild",
                arg,
                "Additional properties are not allowed ('description' was unexpected)",
            ))
        }
        Some(Value::Null) => Some(String::new()),
        Some(Value::String(d)) => Some(d.clone()),
        Some(other) => return Err(invalid("description", other, "is not of type 'string'")),
        None => None,
    };
    if row.state.boots_from_volume() {
        return Err(NovaError::bad_request(format!(
            "Unable to rebuild volume-backed instance {id} with a different image."
        )));
    }
    begin(compute, caller, id, Action::Rebuild { image_id }).await?;
    if let Some(n) = name {
        compute
            .run(
                &compute.servers,
                id,
                ServerCommand::Rename {
                    name: n,
                    admin: caller.is_admin,
                },
                &caller.meta,
            )
            .await?;
    }
    if let Some(items) = metadata {
        compute
            .run(
                &compute.servers,
                id,
                ServerCommand::SetMetadata {
                    items,
                    replace: true,
                    admin: caller.is_admin,
                },
                &caller.meta,
            )
            .await?;
    }
    if let Some(d) = description {
        compute
            .run(
                &compute.servers,
                id,
                ServerCommand::SetDescription {
                    description: d,
                    admin: caller.is_admin,
                },
                &caller.meta,
            )
            .await?;
    }
    let mut server = server_answer(compute, req, mv, caller, id)?;
    if let Some(p) = m.get("adminPass").and_then(Value::as_str) {
        server["adminPass"] = json!(p);
    }
    Ok(HttpResponse::Accepted().json(json!({ "server": server })))
}

async fn create_image(
    compute: &Compute,
    caller: &Caller,
    req: &HttpRequest,
    mv: Microversion,
    row: &ServerRow,
    arg: &Value,
) -> Result<HttpResponse, NovaError> {
    let Value::Object(m) = arg else {
        return Err(invalid("createImage", arg, "is not of type 'object'"));
    };
    let name = string_field(m, "name")?
        .ok_or_else(|| invalid("createImage", arg, "'name' is a required property"))?;
    check_name(&name)?;
    let extra = m
        .get("metadata")
        .map(|v| metadata_field(v, "metadata"))
        .transpose()?
        .unwrap_or_default();
    let s = &row.state;
    if !matches!(
        s.vm_state.as_str(),
        vm::ACTIVE | vm::STOPPED | vm::PAUSED | vm::SUSPENDED
    ) || !s.task_state.is_empty()
    {
        return Err(NovaError::conflict(format!(
            "Cannot 'createImage' instance {} while it is in vm_state {}",
            row.id, s.vm_state
        )));
    }
    if s.locked && !caller.is_admin {
        return Err(NovaError::conflict(format!(
            "Instance {} is locked",
            row.id
        )));
    }
    let (disk_format, container_format) = {
        let v = compute.images.snapshot();
        v.image(&s.image_id)
            .map(|i| (i.disk_format.clone(), i.container_format.clone()))
            .unwrap_or_else(|| ("qcow2".into(), "bare".into()))
    };
    let image_id = uuid::Uuid::new_v4().to_string();
    let mut properties: BTreeMap<String, Value> =
        extra.into_iter().map(|(k, v)| (k, json!(v))).collect();
    properties.insert("image_type".into(), json!("snapshot"));
    properties.insert("instance_uuid".into(), json!(row.id));
    properties.insert("base_image_ref".into(), json!(s.image_id));
    properties.insert("user_id".into(), json!(caller.auth.user_id));
    let glance = &compute.glance;
    glance
        .take_slot(&s.project_id, &image_id, &caller.meta)
        .await
        .map_err(|e| NovaError::forbidden(e.message))?;
    let cmd = ImageCommand::Create {
        image_id: image_id.clone(),
        owner: s.project_id.clone(),
        name,
        disk_format,
        container_format,
        visibility: "private".into(),
        min_disk: s.flavor.disk_gb,
        min_ram: 0,
        protected: false,
        os_hidden: false,
        tags: vec![],
        properties,
    };
    if let Err(e) = glance.run(&image_id, cmd, &caller.meta).await {
        glance.free(&s.project_id, &image_id, &caller.meta).await;
        return Err(NovaError::new(e.status, e.message));
    }
    if let Err(e) = begin(
        compute,
        caller,
        &row.id,
        Action::CreateImage {
            image_id: image_id.clone(),
        },
    )
    .await
    {
        if glance
            .run(&image_id, ImageCommand::Delete, &caller.meta)
            .await
            .is_ok()
        {
            glance.free(&s.project_id, &image_id, &caller.meta).await;
        }
        return Err(e);
    }
    if mv.0 >= 45 {
        return Ok(HttpResponse::Accepted().json(json!({ "image_id": image_id })));
    }
    // Before 2.45 the image is named by the Location header (Nova's points at its own image proxy).
    let base = crate::common::base_url(req);
    Ok(HttpResponse::Accepted()
        .insert_header(("Location", format!("{base}/v2.1/images/{image_id}")))
        .finish())
}
