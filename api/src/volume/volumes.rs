//! `/v3/volumes`: create (quota first, then the volume's creation; the volume service makes it), list,
//! detail, summary, show, update, delete (with `cascade`), and the metadata APIs (`metadata.rs`). Actions are
//! in `actions.rs`.

use std::collections::BTreeMap;

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};
use strata_actors::volume::VolumeCommand;
use strata_projections::volume::VolumeRow;

use super::{
    body_object, check_filters, links, list_route, metadata_filter, metadata_map, nullable,
    only_keys, opt_uuid, param, parse_bool, parse_json, parse_size, query_flag, query_value,
    resource, text_matches, text_or_legacy, time_filter, Caller, CinderError, Listed, Microversion,
    Page, SortValue, Volumes,
};
use crate::identity::Identity;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/volumes")
            .route(list_route(listing, false))
            .route(web::post().to(create)),
    )
    .service(resource("/volumes/detail").route(list_route(listing, true)))
    .service(resource("/volumes/summary").route(web::get().to(summary)))
    .service(
        resource("/volumes/{id}")
            .route(web::get().to(show))
            .route(web::put().to(update))
            .route(web::delete().to(delete)),
    );
    super::metadata::configure::<super::metadata::VolumeMetadata>(cfg, "volumes");
    cfg.service(resource("/volumes/{id}/action").route(web::post().to(super::actions::action)));
}

// ---------------------------------------------------------------------------------------------------------
// Representation

/// The volume as Cinder's detail view shows it at `mv` (admin-only attributes for admins).
pub(super) fn volume_json(
    vols: &Volumes,
    req: &HttpRequest,
    mv: Microversion,
    admin: bool,
    row: &VolumeRow,
) -> Value {
    let v = &row.state;
    let type_name = vols.type_name(&v.volume_type_id);
    let attachments: Vec<Value> = v
        .attachments
        .iter()
        .filter(|(_, a)| a.attached)
        .map(|(aid, a)| {
            json!({
                "id": row.id,
                "attachment_id": aid,
                "volume_id": row.id,
                "server_id": nullable(&a.server_id),
                "host_name": nullable(&a.host),
                "device": nullable(&a.mountpoint),
                "attached_at": row.attached_at.get(aid).map_or(Value::Null, |t| json!(t)),
            })
        })
        .collect();
    let mut out = json!({
        "id": row.id,
        "name": nullable(&v.name),
        "description": nullable(&v.description),
        "status": v.status,
        "size": v.size_gb,
        "availability_zone": v.availability_zone,
        "created_at": row.created_at,
        "updated_at": nullable(&row.updated_at),
        "attachments": attachments,
        "volume_type": nullable(&type_name),
        "snapshot_id": nullable(&v.source_snapshot_id),
        "source_volid": nullable(&v.source_volume_id),
        "metadata": v.metadata,
        "bootable": if v.bootable { "true" } else { "false" },
        "encrypted": false,
        "multiattach": v.multiattach,
        "replication_status": "disabled",
        "consistencygroup_id": Value::Null,
        "migration_status": Value::Null,
        "user_id": v.user_id,
        "os-vol-tenant-attr:tenant_id": v.project_id,
        "links": links(req, &v.project_id, "volumes", &row.id),
    });
    if !v.image_metadata.is_empty() {
        out["volume_image_metadata"] = json!(v.image_metadata);
    }
    if admin {
        out["os-vol-host-attr:host"] = nullable(&v.host);
        out["os-vol-mig-status-attr:migstat"] = Value::Null;
        out["os-vol-mig-status-attr:name_id"] = Value::Null;
    }
    if mv.at_least(13) {
        out["group_id"] = Value::Null;
    }
    if mv.at_least(21) && admin {
        out["provider_id"] = Value::Null;
    }
    if mv.at_least(48) {
        let service = {
            let view = vols.view.snapshot();
            view.backends
                .get(strata_volume::engine::backend_of(&v.host))
                .filter(|_| !v.host.is_empty())
                .map(|b| b.state.service_id.clone())
                .unwrap_or_default()
        };
        out["service_uuid"] = nullable(&service);
        // One file per volume on a local backend: hosts never share a target.
        out["shared_targets"] = json!(false);
    }
    if mv.at_least(61) && admin {
        out["cluster_name"] = Value::Null;
    }
    if mv.at_least(63) {
        out["volume_type_id"] = nullable(&v.volume_type_id);
    }
    if mv.at_least(65) {
        out["consumes_quota"] = json!(true);
    }
    out
}

fn summary_json(req: &HttpRequest, row: &VolumeRow) -> Value {
    json!({
        "id": row.id,
        "name": nullable(&row.state.name),
        "links": links(req, &row.state.project_id, "volumes", &row.id),
    })
}

// ---------------------------------------------------------------------------------------------------------
// Listing

/// Filters anyone may use on volumes (Cinder's resource_filters for "volume").
const VOLUME_FILTERS: &[&str] = &[
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
];

/// Further filters admins may use (columns of Cinder's volume table).
const ADMIN_VOLUME_FILTERS: &[&str] = &["project_id", "user_id", "host", "id", "volume_type_id"];

const VOLUME_SORT_KEYS: &[&str] = &[
    "id",
    "name",
    "display_name",
    "status",
    "size",
    "created_at",
    "updated_at",
    "availability_zone",
    "bootable",
    "project_id",
    "user_id",
    "volume_type_id",
];

impl Listed for VolumeRow {
    const SORT_KEYS: &'static [&'static str] = VOLUME_SORT_KEYS;
    fn id(&self) -> &str {
        &self.id
    }
    fn sort_value(&self, key: &str) -> Option<SortValue> {
        let v = &self.state;
        Some(match key {
            "id" => SortValue::Text(self.id.clone()),
            "name" | "display_name" => SortValue::Text(v.name.clone()),
            "status" => SortValue::Text(v.status.clone()),
            "size" => SortValue::Int(v.size_gb as i64),
            "created_at" => SortValue::Text(self.created_at.clone()),
            "updated_at" => SortValue::Text(self.updated_at.clone()),
            "availability_zone" => SortValue::Text(v.availability_zone.clone()),
            "bootable" => SortValue::Int(v.bootable as i64),
            "project_id" => SortValue::Text(v.project_id.clone()),
            "user_id" => SortValue::Text(v.user_id.clone()),
            "volume_type_id" => SortValue::Text(v.volume_type_id.clone()),
            _ => return None,
        })
    }
}

/// The volumes `caller` lists with the query's filters (before pagination).
fn filtered(
    vols: &Volumes,
    caller: &Caller,
    mv: Microversion,
    q: &[(String, String)],
) -> Result<Vec<VolumeRow>, CinderError> {
    check_filters(caller, mv, q, VOLUME_FILTERS)?;
    let get = |k: &str| query_value(q, k);
    let all_tenants = caller.is_admin && query_flag(q, "all_tenants")?;
    // An admin filtering by a key volumes do not have gets nothing, as Cinder's database query does.
    if caller.is_admin {
        let unknown = q.iter().any(|(k, _)| {
            let base = k.strip_suffix('~').unwrap_or(k);
            !super::PAGE_KEYS.contains(&k.as_str())
                && k != "all_tenants"
                && !VOLUME_FILTERS.contains(&base)
                && !ADMIN_VOLUME_FILTERS.contains(&base)
        });
        if unknown {
            return Ok(Vec::new());
        }
    }
    let metadata = get("metadata").map(metadata_filter).transpose()?;
    let bootable = match get("bootable") {
        None => None,
        Some(b) if mv.at_least(2) => Some(
            parse_bool(&json!(b), "bootable")
                .map_err(|_| CinderError::invalid_input(format!("bootable={b}")))?,
        ),
        // Before 3.2 anything but false means bootable.
        Some(b) => Some(!matches!(b, "false" | "False")),
    };
    let size = get("size")
        .map(|s| {
            s.parse::<u64>()
                .map_err(|_| CinderError::invalid_input(format!("size={s}")))
        })
        .transpose()?;
    let consumes_quota = get("consumes_quota")
        .filter(|_| mv.at_least(65))
        .map(|v| parse_bool(&json!(v), "consumes_quota"))
        .transpose()?;
    let created_at = get("created_at").filter(|_| mv.at_least(60));
    let updated_at = get("updated_at").filter(|_| mv.at_least(60));
    let project_filter = get("project_id").filter(|_| all_tenants);
    let view = vols.view.snapshot();
    let mut out = Vec::new();
    for row in view.volumes.values() {
        let v = &row.state;
        if all_tenants {
            if project_filter.is_some_and(|p| p != v.project_id) {
                continue;
            }
        } else if v.project_id != caller.project_id {
            continue;
        }
        if !text_matches(q, "name", &v.name)
            || !text_matches(q, "status", &v.status)
            || !text_matches(q, "availability_zone", &v.availability_zone)
            || !text_matches(q, "user_id", &v.user_id)
            || !text_matches(q, "host", &v.host)
            || !text_matches(q, "id", &row.id)
            || !text_matches(q, "volume_type_id", &v.volume_type_id)
        {
            continue;
        }
        if get("group_id").is_some() || get("migration_status").is_some() {
            continue;
        }
        if metadata
            .as_ref()
            .is_some_and(|m| m.iter().any(|(k, val)| v.metadata.get(k) != Some(val)))
        {
            continue;
        }
        if bootable.is_some_and(|b| b != v.bootable) || size.is_some_and(|s| s != v.size_gb) {
            continue;
        }
        if consumes_quota == Some(false) {
            continue;
        }
        if let Some(f) = created_at {
            if !time_filter(f, &row.created_at)? {
                continue;
            }
        }
        if let Some(f) = updated_at {
            if !time_filter(f, &row.updated_at)? {
                continue;
            }
        }
        out.push(row.clone());
    }
    Ok(out)
}

fn listing(
    vols: &Volumes,
    caller: &Caller,
    req: &HttpRequest,
    mv: Microversion,
    detail: bool,
) -> Result<HttpResponse, CinderError> {
    let q = crate::common::query_pairs(req);
    let page = Page::parse(&q, mv)?;
    let rows = filtered(vols, caller, mv, &q)?;
    page.answer(req, &q, "volumes", rows, |r| {
        if detail {
            volume_json(vols, req, mv, caller.is_admin, r)
        } else {
            summary_json(req, r)
        }
    })
}

/// `GET /volumes/summary` (3.12; metadata since 3.36).
async fn summary(
    vols: web::Data<Volumes>,
    caller: Caller,
    req: HttpRequest,
    mv: Microversion,
) -> Result<HttpResponse, CinderError> {
    super::require(mv, 12)?;
    let q = crate::common::query_pairs(&req);
    let rows = filtered(&vols, &caller, mv, &q)?;
    let mut body = json!({
        "total_size": rows.iter().map(|r| r.state.size_gb).sum::<u64>(),
        "total_count": rows.len(),
    });
    if mv.at_least(36) {
        let mut meta: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for r in &rows {
            for (k, v) in &r.state.metadata {
                let values = meta.entry(k.clone()).or_default();
                if !values.contains(v) {
                    values.push(v.clone());
                }
            }
        }
        body["metadata"] = json!(meta);
    }
    Ok(HttpResponse::Ok().json(json!({ "volume-summary": body })))
}

async fn show(
    vols: web::Data<Volumes>,
    caller: Caller,
    req: HttpRequest,
    mv: Microversion,
) -> Result<HttpResponse, CinderError> {
    let row = vols.volume(&caller, &param(&req, "id"))?;
    Ok(HttpResponse::Ok()
        .json(json!({ "volume": volume_json(&vols, &req, mv, caller.is_admin, &row) })))
}

// ---------------------------------------------------------------------------------------------------------
// Create

/// Keys a volume create may carry (3.53 refuses others).
const CREATE_KEYS: &[&str] = &[
    "name",
    "description",
    "display_name",
    "display_description",
    "volume_type",
    "metadata",
    "snapshot_id",
    "source_volid",
    "consistencygroup_id",
    "size",
    "availability_zone",
    "multiattach",
    "image_id",
    "imageRef",
    "group_id",
    "backup_id",
];

async fn create(
    vols: web::Data<Volumes>,
    identity: web::Data<Identity>,
    caller: Caller,
    req: HttpRequest,
    mv: Microversion,
    body: web::Bytes,
) -> Result<HttpResponse, CinderError> {
    caller.enforce("volume:create")?;
    let v = parse_json(&body)?;
    let m = body_object(&v, "volume")?;
    if let Value::Object(top) = &v {
        if let Some(k) = top
            .keys()
            .find(|k| !matches!(k.as_str(), "volume" | "OS-SCH-HNT:scheduler_hints"))
        {
            return Err(CinderError::bad_request(format!(
                "Additional properties are not allowed ('{k}' was unexpected)"
            )));
        }
    }
    if mv.at_least(53) {
        only_keys(m, CREATE_KEYS)?;
    }
    let name = text_or_legacy(m, "name", "display_name")?.unwrap_or_default();
    let description = text_or_legacy(m, "description", "display_description")?.unwrap_or_default();
    let metadata = m
        .get("metadata")
        .map(|x| metadata_map(x, "metadata"))
        .transpose()?
        .unwrap_or_default();
    let requested_size = match m.get("size") {
        None | Some(Value::Null) => None,
        Some(s) => Some(parse_size(s, "size").map_err(|_| {
            CinderError::invalid_input(format!(
                "Volume size '{}' must be an integer and greater than 0",
                s.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| s.to_string())
            ))
        })?),
    };
    if m.get("multiattach")
        .map(|x| parse_bool(x, "multiattach"))
        .transpose()?
        .unwrap_or(false)
    {
        return Err(CinderError::bad_request(
            "multiattach parameter has been removed. The default behavior is to use multiattach enabled volume types. Contact your administrator to create a multiattach enabled volume type and use it to create multiattach volumes.",
        ));
    }
    for key in ["consistencygroup_id", "group_id"] {
        if let Some(Value::String(g)) = m.get(key) {
            return Err(CinderError::not_found(format!(
                "Group {g} could not be found."
            )));
        }
    }
    let backup_id = opt_uuid(m, "backup_id")?.filter(|_| mv.at_least(47));
    let snapshot_id = opt_uuid(m, "snapshot_id")?;
    let source_volid = opt_uuid(m, "source_volid")?;
    let image_ref = match m.get("imageRef").or_else(|| m.get("image_id")) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Value::String(_)) => None,
        Some(other) => return Err(super::invalid_field("imageRef", other, "is not a string")),
    };
    let requested_type = match m.get("volume_type") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            return Err(super::invalid_field(
                "volume_type",
                other,
                "is not a string",
            ))
        }
    };
    let requested_az = match m.get("availability_zone") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            return Err(super::invalid_field(
                "availability_zone",
                other,
                "is not a string",
            ))
        }
    };

    let request = super::NewVolume {
        name,
        description,
        size_gb: requested_size,
        image_ref,
        snapshot_id,
        source_volid,
        volume_type: requested_type,
        availability_zone: requested_az,
        metadata,
        backup_id,
    };
    let row = super::create_volume(&vols, &identity, &caller, request).await?;
    Ok(HttpResponse::Accepted()
        .json(json!({ "volume": volume_json(&vols, &req, mv, caller.is_admin, &row) })))
}

// ---------------------------------------------------------------------------------------------------------
// Update and delete

const UPDATE_KEYS: &[&str] = &[
    "name",
    "description",
    "display_name",
    "display_description",
    "metadata",
];

async fn update(
    vols: web::Data<Volumes>,
    caller: Caller,
    req: HttpRequest,
    mv: Microversion,
    body: web::Bytes,
) -> Result<HttpResponse, CinderError> {
    caller.enforce("volume:update")?;
    let id = param(&req, "id");
    let v = parse_json(&body)?;
    let m = body_object(&v, "volume")?;
    only_keys(m, UPDATE_KEYS)?;
    if mv.at_least(53) && m.is_empty() {
        return Err(CinderError::bad_request(
            "Invalid input for field/attribute volume. Value: {}. {} does not have enough properties",
        ));
    }
    let name = text_or_legacy(m, "name", "display_name")?;
    let description = text_or_legacy(m, "description", "display_description")?;
    let metadata = m
        .get("metadata")
        .map(|x| metadata_map(x, "metadata"))
        .transpose()?;
    vols.volume(&caller, &id)?;
    if let Some(n) = name {
        vols.run(&vols.volumes, &id, VolumeCommand::Rename(n), &caller.meta)
            .await?;
    }
    if let Some(d) = description {
        vols.run(
            &vols.volumes,
            &id,
            VolumeCommand::SetDescription(d),
            &caller.meta,
        )
        .await?;
    }
    if let Some(items) = metadata {
        vols.run(
            &vols.volumes,
            &id,
            VolumeCommand::SetMetadata {
                items,
                replace: true,
            },
            &caller.meta,
        )
        .await?;
    }
    let row = vols.volume(&caller, &id)?;
    Ok(HttpResponse::Ok()
        .json(json!({ "volume": volume_json(&vols, &req, mv, caller.is_admin, &row) })))
}

async fn delete(
    vols: web::Data<Volumes>,
    caller: Caller,
    req: HttpRequest,
    mv: Microversion,
) -> Result<HttpResponse, CinderError> {
    caller.enforce("volume:delete")?;
    let id = param(&req, "id");
    let q = crate::common::query_pairs(&req);
    let cascade = query_flag(&q, "cascade")?;
    let force = mv.at_least(23) && query_flag(&q, "force")?;
    if force {
        caller.enforce("volume:force_delete")?;
    }
    let row = vols.volume(&caller, &id)?;
    super::begin_delete(&vols, &caller, &row, cascade, force).await?;
    Ok(HttpResponse::Accepted().finish())
}
