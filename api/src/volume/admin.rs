//! Quotas (`os-quota-sets`), limits, services (`os-services`: one cinder-volume per backend plus the
//! scheduler), availability zones, pools (`scheduler-stats/get_pools`) and resource filters.

use std::collections::BTreeMap;

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};
use strata_actors::volume::{BackendCommand, VolumeQuotaCommand, VOLUME_QUOTA_NAMES};
use strata_volume::engine::{backend_host, HOST};

use super::{
    body_object, nullable, param, parse_bool, parse_json, query_flag, query_value, resource,
    Caller, CinderError, Microversion, Volumes,
};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/os-quota-sets/{target}/defaults").route(web::get().to(quota_defaults)))
        .service(
            resource("/os-quota-sets/{target}")
                .route(web::get().to(quota_show))
                .route(web::put().to(quota_update))
                .route(web::delete().to(quota_delete)),
        )
        .service(resource("/limits").route(web::get().to(limits)))
        .service(resource("/os-services").route(web::get().to(services)))
        .service(resource("/os-services/{action}").route(web::put().to(service_update)))
        .service(resource("/os-availability-zone").route(web::get().to(zones)))
        .service(resource("/scheduler-stats/get_pools").route(web::get().to(pools)))
        .service(resource("/resource_filters").route(web::get().to(resource_filters)));
}

// ---------------------------------------------------------------------------------------------------------
// Quotas and limits

/// Per-type quota resources, for every volume type.
const PER_TYPE: &[&str] = &["volumes", "gigabytes", "snapshots"];

/// Every quota key of a project: Cinder's names, then the per-type ones of every type; with limits.
fn quota_limits(vols: &Volumes, limits: &BTreeMap<String, i64>) -> BTreeMap<String, i64> {
    let mut out: BTreeMap<String, i64> = VOLUME_QUOTA_NAMES
        .iter()
        .map(|k| (k.to_string(), limits.get(*k).copied().unwrap_or(-1)))
        .collect();
    for t in vols.all_types() {
        for base in PER_TYPE {
            let key = format!("{base}_{}", t.state.name);
            let limit = limits.get(&key).copied().unwrap_or(-1);
            out.insert(key, limit);
        }
    }
    out
}

fn used(vols: &Volumes, project: &str, key: &str) -> i64 {
    let view = vols.view.snapshot();
    match key {
        "per_volume_gigabytes" | "groups" => 0,
        _ => view.usage.get(project).map(|u| u.used(key)).unwrap_or(0),
    }
}

/// Reading a project's quotas: its own members, or admins.
fn may_read(caller: &Caller, target: &str) -> Result<(), CinderError> {
    if caller.is_admin || caller.project_id == target {
        Ok(())
    } else {
        Err(CinderError::policy("volume_extension:quotas:show"))
    }
}

async fn quota_show(
    vols: web::Data<Volumes>,
    caller: Caller,
    req: HttpRequest,
) -> Result<HttpResponse, CinderError> {
    let target = param(&req, "target");
    may_read(&caller, &target)?;
    let q = crate::common::query_pairs(&req);
    let usage = q
        .iter()
        .find(|(k, _)| k == "usage")
        .map(|(_, v)| parse_bool(&json!(v), "usage"))
        .transpose()?
        .unwrap_or(false);
    let limits = quota_limits(&vols, &vols.limits(&target));
    let mut set = Map::new();
    set.insert("id".into(), json!(target));
    for (k, limit) in limits {
        let value = if usage {
            json!({ "limit": limit, "in_use": used(&vols, &target, &k), "reserved": 0 })
        } else {
            json!(limit)
        };
        set.insert(k, value);
    }
    Ok(HttpResponse::Ok().json(json!({ "quota_set": set })))
}

async fn quota_defaults(
    vols: web::Data<Volumes>,
    caller: Caller,
    req: HttpRequest,
) -> Result<HttpResponse, CinderError> {
    let target = param(&req, "target");
    may_read(&caller, &target)?;
    let mut set: Map<String, Value> = quota_limits(&vols, &vols.default_limits)
        .into_iter()
        .map(|(k, v)| (k, json!(v)))
        .collect();
    set.insert("id".into(), json!(target));
    Ok(HttpResponse::Ok().json(json!({ "quota_set": set })))
}

async fn quota_update(
    vols: web::Data<Volumes>,
    caller: Caller,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, CinderError> {
    caller.enforce("volume_extension:quotas:update")?;
    let target = param(&req, "target");
    let v = parse_json(&body)?;
    let m = body_object(&v, "quota_set")?;
    let known = quota_limits(&vols, &vols.default_limits);
    let mut set = BTreeMap::new();
    let mut bad = Vec::new();
    for (k, val) in m {
        // Accepted and ignored, as Cinder does.
        if matches!(k.as_str(), "id" | "skip_validation" | "tenant_id") {
            continue;
        }
        if !known.contains_key(k) {
            bad.push(k.clone());
            continue;
        }
        let n = match val {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse::<i64>().ok(),
            _ => None,
        }
        .ok_or_else(|| {
            CinderError::invalid_input(format!("Quota limit for {k} must be an integer: {val}"))
        })?;
        if n < -1 {
            return Err(CinderError::invalid_input(format!(
                "Quota limit {n} for {k} must be -1 or greater."
            )));
        }
        set.insert(k.clone(), n);
    }
    if !bad.is_empty() {
        return Err(CinderError::invalid_input(format!(
            "Bad key(s) in quota set: {}",
            bad.join(", ")
        )));
    }
    vols.run(
        &vols.quotas,
        &target,
        VolumeQuotaCommand::Set(set),
        &caller.meta,
    )
    .await?;
    let limits = quota_limits(&vols, &vols.limits(&target));
    Ok(HttpResponse::Ok().json(json!({ "quota_set": limits })))
}

async fn quota_delete(
    vols: web::Data<Volumes>,
    caller: Caller,
    req: HttpRequest,
) -> Result<HttpResponse, CinderError> {
    caller.enforce("volume_extension:quotas:delete")?;
    let target = param(&req, "target");
    vols.run(
        &vols.quotas,
        &target,
        VolumeQuotaCommand::Reset,
        &caller.meta,
    )
    .await?;
    Ok(HttpResponse::Ok().finish())
}

/// `GET /limits`: the absolute limits and usage (an admin may name `project_id` from 3.39).
async fn limits(
    vols: web::Data<Volumes>,
    caller: Caller,
    req: HttpRequest,
    mv: Microversion,
) -> Result<HttpResponse, CinderError> {
    let q = crate::common::query_pairs(&req);
    let project = match q.iter().find(|(k, _)| k == "project_id") {
        Some((_, p)) if caller.is_admin && mv.at_least(39) => p.clone(),
        _ => caller.project_id.clone(),
    };
    let l = vols.limits(&project);
    let limit = |k: &str| l.get(k).copied().unwrap_or(-1);
    let absolute = json!({
        "maxTotalVolumes": limit("volumes"),
        "maxTotalVolumeGigabytes": limit("gigabytes"),
        "maxTotalSnapshots": limit("snapshots"),
        "maxTotalBackups": limit("backups"),
        "maxTotalBackupGigabytes": limit("backup_gigabytes"),
        "totalVolumesUsed": used(&vols, &project, "volumes"),
        "totalGigabytesUsed": used(&vols, &project, "gigabytes"),
        "totalSnapshotsUsed": used(&vols, &project, "snapshots"),
        "totalBackupsUsed": used(&vols, &project, "backups"),
        "totalBackupGigabytesUsed": used(&vols, &project, "backup_gigabytes"),
    });
    Ok(HttpResponse::Ok().json(json!({ "limits": { "rate": [], "absolute": absolute } })))
}

// ---------------------------------------------------------------------------------------------------------
// Services, zones, pools

const SCHEDULER: &str = "cinder-scheduler";
const VOLUME: &str = "cinder-volume";

/// An admin-only action of Cinder's policy table.
fn admin(caller: &Caller, policy: &str) -> Result<(), CinderError> {
    caller.enforce(policy)
}

/// `strata@<backend>`: the host of a backend's cinder-volume service.
fn service_host(backend: &str) -> String {
    format!("{HOST}@{backend}")
}

async fn services(
    vols: web::Data<Volumes>,
    caller: Caller,
    req: HttpRequest,
    mv: Microversion,
) -> Result<HttpResponse, CinderError> {
    admin(&caller, "volume_extension:services:index")?;
    let q = crate::common::query_pairs(&req);
    let get = |k: &str| query_value(&q, k);
    let mut rows = Vec::new();
    let zones = vols.zones();
    // The scheduler runs inside this process: it is up whenever the API answers.
    let mut scheduler = json!({
        "binary": SCHEDULER,
        "host": HOST,
        "zone": zones.first().cloned().unwrap_or_else(|| "nova".into()),
        "status": "enabled",
        "state": "up",
        "updated_at": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6f").to_string(),
        "disabled_reason": Value::Null,
    });
    if mv.at_least(7) {
        scheduler["cluster"] = Value::Null;
    }
    rows.push(scheduler);
    let backends: Vec<_> = vols.view.snapshot().backends.values().cloned().collect();
    for b in backends {
        let up = vols.backend_up(&b);
        let mut row = json!({
            "binary": VOLUME,
            "host": service_host(&b.name),
            "zone": b.state.availability_zone,
            "status": if b.state.disabled { "disabled" } else { "enabled" },
            "state": if up { "up" } else { "down" },
            "updated_at": nullable(&b.updated_at),
            "disabled_reason": nullable(&b.state.disabled_reason),
            "replication_status": "disabled",
            "active_backend_id": Value::Null,
            "frozen": false,
        });
        if mv.at_least(7) {
            row["cluster"] = Value::Null;
        }
        if mv.at_least(49) {
            row["backend_state"] = json!(if up { "up" } else { "down" });
        }
        rows.push(row);
    }
    rows.retain(|r| {
        get("host").is_none_or(|h| r["host"] == h) && get("binary").is_none_or(|b| r["binary"] == b)
    });
    Ok(HttpResponse::Ok().json(json!({ "services": rows })))
}

/// `PUT /os-services/enable|disable|disable-log-reason`: a backend's cinder-volume service.
async fn service_update(
    vols: web::Data<Volumes>,
    caller: Caller,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, CinderError> {
    admin(&caller, "volume_extension:services:update")?;
    let action = param(&req, "action");
    let v = parse_json(&body)?;
    let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let host = text("host").ok_or_else(|| {
        CinderError::bad_request("Missing required element 'host' in request body.")
    })?;
    let binary = text("binary").unwrap_or_else(|| VOLUME.to_string());
    let (cmd, disabled, reason) = match action.as_str() {
        "enable" => (BackendCommand::Enable, false, None),
        "disable" => (
            BackendCommand::Disable {
                reason: String::new(),
            },
            true,
            None,
        ),
        "disable-log-reason" => {
            let reason = text("disabled_reason").unwrap_or_default();
            if reason.trim().is_empty() || reason.chars().count() > 255 {
                return Err(CinderError::bad_request(
                    "Disabled reason contains invalid characters or is too long",
                ));
            }
            (
                BackendCommand::Disable {
                    reason: reason.clone(),
                },
                true,
                Some(reason),
            )
        }
        "freeze" | "thaw" | "failover_host" | "failover" | "set-log" | "get-log" => {
            return Err(CinderError::not_implemented(format!(
                "The {action} service action is not supported by this deployment."
            )))
        }
        _ => return Err(CinderError::not_found("Unknown action")),
    };
    let backend = host
        .strip_prefix(&format!("{HOST}@"))
        .map(|b| b.split('#').next().unwrap_or(b).to_string());
    let known = backend
        .as_ref()
        .is_some_and(|b| vols.view.snapshot().backends.contains_key(b));
    if binary != VOLUME || !known {
        return Err(CinderError::not_found("Unknown service"));
    }
    let backend = backend.unwrap_or_default();
    vols.run(&vols.backends, &backend, cmd, &caller.meta)
        .await?;
    let mut out = json!({
        "host": host,
        "binary": binary,
        "service": "",
        "status": if disabled { "disabled" } else { "enabled" },
        "disabled": disabled,
    });
    if let Some(r) = reason {
        out["disabled_reason"] = json!(r);
    }
    Ok(HttpResponse::Ok().json(out))
}

async fn zones(vols: web::Data<Volumes>, _caller: Caller) -> Result<HttpResponse, CinderError> {
    let backends: Vec<_> = vols.view.snapshot().backends.values().cloned().collect();
    let mut zones: BTreeMap<String, bool> = BTreeMap::new();
    for b in &backends {
        let ok = !b.state.disabled && vols.backend_up(b);
        *zones.entry(b.state.availability_zone.clone()).or_default() |= ok;
    }
    let info: Vec<Value> = zones
        .into_iter()
        .map(|(name, available)| json!({ "zoneName": name, "zoneState": { "available": available } }))
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "availabilityZoneInfo": info })))
}

async fn pools(
    vols: web::Data<Volumes>,
    caller: Caller,
    req: HttpRequest,
    mv: Microversion,
) -> Result<HttpResponse, CinderError> {
    admin(&caller, "scheduler_extension:scheduler_stats:get_pools")?;
    let q = crate::common::query_pairs(&req);
    let get = |k: &str| query_value(&q, k);
    let detail = query_flag(&q, "detail")?;
    let name_filter = get("name").filter(|_| mv.at_least(28));
    let type_specs = match get("volume_type").filter(|_| mv.at_least(35)) {
        None => None,
        Some(t) => Some(
            vols.visible_type(&caller, t)
                .ok_or_else(|| {
                    CinderError::not_found(format!("Volume type with name {t} could not be found."))
                })?
                .state
                .extra_specs,
        ),
    };
    let backends: Vec<_> = vols.view.snapshot().backends.values().cloned().collect();
    let mut out = Vec::new();
    for b in backends {
        let name = backend_host(&b.name);
        if name_filter.is_some_and(|n| n != name) {
            continue;
        }
        if let Some(specs) = &type_specs {
            if !strata_volume::engine::capabilities_match(specs, &b.state.capabilities) {
                continue;
            }
        }
        if !detail {
            out.push(json!({ "name": name }));
            continue;
        }
        let s = &b.state;
        let mut caps: Map<String, Value> = s
            .capabilities
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        let extra = json!({
            "pool_name": b.name,
            "total_capacity_gb": s.total_gb,
            "free_capacity_gb": s.free_gb,
            "allocated_capacity_gb": s.claimed_gb,
            "provisioned_capacity_gb": s.claimed_gb,
            "max_over_subscription_ratio": s.max_over_subscription_ratio.to_string(),
            "reserved_percentage": 0,
            "QoS_support": false,
            "timestamp": nullable(&b.updated_at),
            "driver": s.driver,
        });
        if let Value::Object(e) = extra {
            caps.extend(e);
        }
        for (k, default) in [
            ("volume_backend_name", b.name.as_str()),
            ("vendor_name", "Strata"),
            ("driver_version", "1.0"),
            ("storage_protocol", s.driver.as_str()),
            ("thin_provisioning_support", "True"),
        ] {
            caps.entry(k.to_string()).or_insert_with(|| json!(default));
        }
        // Cinder reports these as booleans.
        for k in [
            "thin_provisioning_support",
            "thick_provisioning_support",
            "multiattach",
        ] {
            if let Some(Value::String(v)) = caps.get(k) {
                let b = v.eq_ignore_ascii_case("true");
                caps.insert(k.to_string(), json!(b));
            }
        }
        out.push(json!({ "name": name, "capabilities": caps }));
    }
    Ok(HttpResponse::Ok().json(json!({ "pools": out })))
}

/// `GET /resource_filters` (3.33): the filters non-admins may use per resource.
async fn resource_filters(
    _caller: Caller,
    req: HttpRequest,
    mv: Microversion,
) -> Result<HttpResponse, CinderError> {
    super::require(mv, 33)?;
    let all: &[(&str, &[&str])] = &[
        (
            "volume",
            &[
                "name",
                "status",
                "metadata",
                "bootable",
                "migration_status",
                "availability_zone",
                "group_id",
                "size",
                "created_at",
                "updated_at",
                "consumes_quota",
            ],
        ),
        ("backup", &["name", "status", "volume_id"]),
        (
            "snapshot",
            &[
                "name",
                "status",
                "volume_id",
                "metadata",
                "availability_zone",
                "consumes_quota",
            ],
        ),
        (
            "attachment",
            &["volume_id", "status", "instance_id", "attach_status"],
        ),
        ("pool", &["name", "volume_type"]),
        ("volume_type", &["is_public", "extra_specs"]),
    ];
    let q = crate::common::query_pairs(&req);
    let want = q
        .iter()
        .find(|(k, _)| k == "resource")
        .map(|(_, v)| v.as_str());
    let list: Vec<Value> = all
        .iter()
        .filter(|(r, _)| want.is_none_or(|w| w == *r))
        .map(|(r, f)| json!({ "resource": r, "filters": f }))
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "resource_filters": list })))
}
