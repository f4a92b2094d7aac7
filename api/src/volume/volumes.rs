//! `/v3/volumes`: create (quota first, then the volume's creation; the volume service makes it), list,
//! detail, summary, show, update, delete (with `cascade`), and the metadata APIs. Actions are in
//! `actions.rs`.

use std::collections::BTreeMap;

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};
use strata_actors::volume::{
    status as st, SnapshotCommand, VolumeAmounts, VolumeCommand, VolumeTask, VolumeUsageCommand,
};
use strata_projections::volume::VolumeRow;
use strata_proto::volume as pb;

use super::{
    body_object, check_filters, links, metadata_filter, metadata_map, nullable, opt_text, param,
    parse_bool, parse_json, parse_size, resource, text_matches, time_filter, Caller, CinderError,
    Microversion, Page, SortValue, Volumes,
};
use crate::identity::Identity;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/volumes")
            .route(web::get().to(list))
            .route(web::post().to(create)),
    )
    .service(resource("/volumes/detail").route(web::get().to(detail)))
    .service(resource("/volumes/summary").route(web::get().to(summary)))
    .service(
        resource("/volumes/{id}")
            .route(web::get().to(show))
            .route(web::put().to(update))
            .route(web::delete().to(delete)),
    )
    .service(
        resource("/volumes/{id}/metadata")
            .route(web::get().to(metadata_list))
            .route(web::post().to(metadata_merge))
            .route(web::put().to(metadata_replace)),
    )
    .service(
        resource("/volumes/{id}/metadata/{key}")
            .route(web::get().to(metadata_show))
            .route(web::put().to(metadata_put))
            .route(web::delete().to(metadata_delete)),
    )
    .service(resource("/volumes/{id}/action").route(web::post().to(super::actions::action)));
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

fn volume_sort_key(row: &VolumeRow, key: &str) -> Option<SortValue> {
    let v = &row.state;
    Some(match key {
        "id" => SortValue::Text(row.id.clone()),
        "name" | "display_name" => SortValue::Text(v.name.clone()),
        "status" => SortValue::Text(v.status.clone()),
        "size" => SortValue::Int(v.size_gb as i64),
        "created_at" => SortValue::Text(row.created_at.clone()),
        "updated_at" => SortValue::Text(row.updated_at.clone()),
        "availability_zone" => SortValue::Text(v.availability_zone.clone()),
        "bootable" => SortValue::Int(v.bootable as i64),
        "project_id" => SortValue::Text(v.project_id.clone()),
        "user_id" => SortValue::Text(v.user_id.clone()),
        "volume_type_id" => SortValue::Text(v.volume_type_id.clone()),
        _ => return None,
    })
}

/// The volumes `caller` lists with the query's filters (before pagination).
fn filtered(
    vols: &Volumes,
    caller: &Caller,
    mv: Microversion,
    q: &[(String, String)],
) -> Result<Vec<VolumeRow>, CinderError> {
    check_filters(caller, mv, q, VOLUME_FILTERS)?;
    let get = |k: &str| q.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
    let all_tenants = caller.is_admin
        && get("all_tenants")
            .map(|v| parse_bool(&json!(v), "all_tenants"))
            .transpose()?
            .unwrap_or(false);
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
    let (rows, total) = page.apply(rows, VOLUME_SORT_KEYS, |r| r.id.as_str(), volume_sort_key)?;
    let items: Vec<Value> = rows
        .iter()
        .map(|r| {
            if detail {
                volume_json(vols, req, mv, caller.is_admin, r)
            } else {
                summary_json(req, r)
            }
        })
        .collect();
    let last = rows.last().map(|r| r.id.as_str());
    Ok(page.respond(req, &q, "volumes", items, last, total))
}

async fn list(
    vols: web::Data<Volumes>,
    caller: Caller,
    req: HttpRequest,
    mv: Microversion,
) -> Result<HttpResponse, CinderError> {
    listing(&vols, &caller, &req, mv, false)
}

async fn detail(
    vols: web::Data<Volumes>,
    caller: Caller,
    req: HttpRequest,
    mv: Microversion,
) -> Result<HttpResponse, CinderError> {
    listing(&vols, &caller, &req, mv, true)
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

fn opt_uuid(m: &Map<String, Value>, key: &str) -> Result<Option<String>, CinderError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if uuid::Uuid::parse_str(s).is_ok() => Ok(Some(s.clone())),
        Some(other) => Err(super::invalid_field(
            key,
            other,
            &format!("{other} is not a 'uuid'"),
        )),
    }
}

fn ceil_gb(bytes: u64) -> u64 {
    bytes.div_ceil(1 << 30)
}

/// The image `r` names (id, or a unique name) for `caller`, checked against the volume size as Cinder does.
fn image_for_volume(
    vols: &Volumes,
    caller: &Caller,
    r: &str,
) -> Result<strata_projections::image::ImageRow, CinderError> {
    let view = vols.images.snapshot();
    let readable = |i: &&strata_projections::image::ImageRow| {
        caller.is_admin || i.readable_by(&caller.project_id)
    };
    if let Some(i) = view.image(r).filter(readable) {
        return Ok(i.clone());
    }
    let by_name: Vec<_> = view
        .visible_to(&caller.project_id, caller.is_admin)
        .filter(|i| i.name == r)
        .collect();
    match by_name.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(CinderError::bad_request(
            "Invalid image identifier or unable to access requested image.",
        )),
        _ => Err(CinderError::conflict(format!(
            "Multiple matches found for '{r}', use an ID to be more specific."
        ))),
    }
}

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
        if let Some(k) = m.keys().find(|k| !CREATE_KEYS.contains(&k.as_str())) {
            return Err(CinderError::bad_request(format!(
                "Additional properties are not allowed ('{k}' was unexpected)"
            )));
        }
    }
    let name = match opt_text(m, "name")? {
        Some(n) => n,
        None => opt_text(m, "display_name")?.unwrap_or_default(),
    };
    let description = match opt_text(m, "description")? {
        Some(d) => d,
        None => opt_text(m, "display_description")?.unwrap_or_default(),
    };
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

    let request = NewVolume {
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
    let row = create_volume(&vols, &identity, &caller, request).await?;
    Ok(HttpResponse::Accepted()
        .json(json!({ "volume": volume_json(&vols, &req, mv, caller.is_admin, &row) })))
}

/// A volume to make, as a request names it (sources by id, type and zone by name or id).
#[derive(Debug, Clone, Default)]
pub struct NewVolume {
    pub name: String,
    pub description: String,
    /// `None`: the source's size.
    pub size_gb: Option<u64>,
    pub image_ref: Option<String>,
    pub snapshot_id: Option<String>,
    pub source_volid: Option<String>,
    pub volume_type: Option<String>,
    pub availability_zone: Option<String>,
    pub metadata: BTreeMap<String, String>,
    /// Restore this backup into the new volume (`None` size: the backup's).
    pub backup_id: Option<String>,
}

/// Check a volume request for `caller` as Cinder does (sources usable, sizes, zone, type), reserve its quota
/// and record it (`creating`); the volume service takes it from there. Used by `POST /volumes` and by Nova
/// when it boots a server from a new volume.
pub async fn create_volume(
    vols: &Volumes,
    identity: &Identity,
    caller: &Caller,
    request: NewVolume,
) -> Result<VolumeRow, CinderError> {
    let NewVolume {
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
    } = request;
    // The sources: they must exist for the caller and be usable.
    let snapshot = snapshot_id
        .as_deref()
        .map(|s| vols.snapshot(caller, s))
        .transpose()?;
    if let Some(s) = &snapshot {
        if s.state.status != "available" {
            return Err(CinderError::bad_request(
                "Invalid snapshot: Originating snapshot status must be one of 'available' values",
            ));
        }
    }
    let source = source_volid
        .as_deref()
        .map(|s| vols.volume(caller, s))
        .transpose()?;
    if let Some(s) = &source {
        if !matches!(s.state.status.as_str(), st::AVAILABLE | st::IN_USE) {
            return Err(CinderError::invalid_volume(
                "Originating source volume status must be one of 'available, in-use' values",
            ));
        }
    }
    let snapshot_volume = snapshot.as_ref().and_then(|s| {
        let view = vols.view.snapshot();
        view.volume(&s.state.volume_id).cloned()
    });
    let image = image_ref
        .as_deref()
        .map(|r| image_for_volume(vols, caller, r))
        .transpose()?;
    let backup = backup_id
        .as_deref()
        .map(|b| super::backups::backup(vols, caller, b))
        .transpose()?;
    if let Some(b) = &backup {
        if b.state.status != strata_actors::volume::backup_status::AVAILABLE {
            return Err(CinderError::bad_request(
                "Invalid backup: Backup status must be available",
            ));
        }
    }

    let size = match (requested_size, &snapshot, &source) {
        (Some(s), _, _) => s,
        (None, Some(snap), _) => snap.state.size_gb,
        (None, None, Some(src)) => src.state.size_gb,
        (None, None, None) if backup.is_some() => backup.as_ref().map_or(0, |b| b.state.size_gb),
        (None, None, None) => {
            return Err(CinderError::invalid_input(
                "Volume size 'None' must be an integer and greater than 0",
            ))
        }
    };
    if let Some(src) = &source {
        if size < src.state.size_gb {
            return Err(CinderError::invalid_input(format!(
                "Volume size '{size}'GB cannot be smaller than original volume size  {}GB. They must be >= original volume size.",
                src.state.size_gb
            )));
        }
    } else if let Some(snap) = &snapshot {
        if size < snap.state.size_gb {
            return Err(CinderError::invalid_input(format!(
                "Volume size '{size}'GB cannot be smaller than the snapshot size {}GB. They must be >= original snapshot size.",
                snap.state.size_gb
            )));
        }
    }
    if let Some(b) = &backup {
        if size < b.state.size_gb {
            return Err(CinderError::invalid_input(format!(
                "Volume size '{size}'GB cannot be smaller than the backup size {}GB.",
                b.state.size_gb
            )));
        }
    }
    if let Some(img) = &image {
        if img.status != "active" {
            return Err(CinderError::invalid_input(format!(
                "Image {} is not active.",
                img.id
            )));
        }
        let image_gb = ceil_gb(img.size.unwrap_or(0));
        if image_gb > size {
            return Err(CinderError::invalid_input(format!(
                "Size of specified image {image_gb}GB is larger than volume size {size}GB."
            )));
        }
        if size < img.min_disk {
            return Err(CinderError::invalid_input(format!(
                "Volume size {size}GB cannot be smaller than the image minDisk size {}GB.",
                img.min_disk
            )));
        }
        if let Some(vs) = img.virtual_size {
            if ceil_gb(vs) > size {
                return Err(CinderError::invalid_input(format!(
                    "Image virtual size is {}GB and doesn't fit in a volume of size {size}GB.",
                    ceil_gb(vs)
                )));
            }
        }
    }

    // The zone: asked for, or the source's; it must be one of the backends'.
    let source_az = source
        .as_ref()
        .map(|s| s.state.availability_zone.clone())
        .or_else(|| {
            snapshot_volume
                .as_ref()
                .map(|s| s.state.availability_zone.clone())
        });
    let zones = vols.zones();
    // A backup's zone is a preference: it may name a zone no backend serves any more.
    let source_az = source_az.or_else(|| {
        backup
            .as_ref()
            .map(|b| b.state.availability_zone.clone())
            .filter(|z| zones.contains(z))
    });
    let availability_zone = match (&requested_az, &source_az) {
        (Some(az), Some(src)) if az != src => {
            return Err(CinderError::invalid_input(if source.is_some() {
                "Volume must be in the same availability zone as the source volume"
            } else {
                "Volume must be in the same availability zone as the snapshot"
            }))
        }
        (Some(az), _) => az.clone(),
        (None, Some(src)) => src.clone(),
        (None, None) => zones.first().cloned().unwrap_or_else(|| "nova".into()),
    };
    if !zones.contains(&availability_zone) && source_az.as_ref() != Some(&availability_zone) {
        return Err(CinderError::bad_request(format!(
            "Invalid input received: Availability zone '{availability_zone}' is invalid."
        )));
    }

    // The type: asked for, else the source's, else the default one.
    let type_id = match &requested_type {
        Some(t) => {
            let found = vols.visible_type(caller, t).ok_or_else(|| {
                if uuid::Uuid::parse_str(t).is_ok() {
                    CinderError::type_not_found(t)
                } else {
                    CinderError::not_found(format!("Volume type with name {t} could not be found."))
                }
            })?;
            found.id
        }
        None => source
            .as_ref()
            .or(snapshot_volume.as_ref())
            .map(|s| s.state.volume_type_id.clone())
            .unwrap_or_default(),
    };
    // The default type is recorded at its first use, after the quota check (a refused request records
    // nothing).
    let default = type_id.is_empty() || type_id == super::DEFAULT_TYPE_ID;
    let type_id = if default {
        super::DEFAULT_TYPE_ID.to_string()
    } else {
        type_id
    };
    let type_name = vols.type_name(&type_id);
    let multiattach = {
        let view = vols.view.snapshot();
        view.types.get(&type_id).is_some_and(|t| {
            t.state.extra_specs.get("multiattach").is_some_and(|v| {
                v.trim_start_matches("<is>")
                    .trim()
                    .eq_ignore_ascii_case("true")
            })
        })
    };

    // Quota first: the reservation and the check are one append on the project's usage stream.
    let id = uuid::Uuid::new_v4().to_string();
    let holder = format!("volume:{id}");
    vols.usage
        .execute(
            &caller.project_id,
            VolumeUsageCommand::Reserve {
                holder: holder.clone(),
                amounts: VolumeAmounts {
                    volumes: 1,
                    gigabytes: size as i64,
                    volume_type: type_name,
                    ..Default::default()
                },
                limits: vols.limits(&caller.project_id),
            },
            caller.meta.clone(),
        )
        .await?;
    let type_id = if default {
        match vols.default_type(identity, &caller.meta).await {
            Ok(t) => t,
            Err(e) => {
                release(vols, &caller.project_id, &holder, caller).await;
                return Err(e);
            }
        }
    } else {
        type_id
    };
    let created = pb::VolumeCreated {
        project_id: caller.project_id.clone(),
        user_id: caller.user_id.clone(),
        name,
        description,
        size_gb: size,
        volume_type_id: type_id,
        availability_zone,
        source_image_id: image.as_ref().map(|i| i.id.clone()).unwrap_or_default(),
        source_snapshot_id: snapshot_id.unwrap_or_default(),
        source_volume_id: source_volid.unwrap_or_default(),
        metadata: metadata.into_iter().collect(),
        multiattach,
        request_id: caller.meta.correlation_id.clone(),
        bootable: false,
        backup_id: backup_id.clone().unwrap_or_default(),
    };
    if let Err(e) = vols
        .run(
            &vols.volumes,
            &id,
            VolumeCommand::Create(Box::new(created)),
            &caller.meta,
        )
        .await
    {
        release(vols, &caller.project_id, &holder, caller).await;
        return Err(e.into());
    }
    if let Some(b) = &backup_id {
        // The backup's side of the restore; refused (it stopped being available), the new volume goes.
        if let Err(e) = super::backups::begin_restore(vols, caller, b, &id).await {
            discard_volume(vols, caller, &id).await;
            return Err(e);
        }
    }
    vols.volume(caller, &id)
}

/// Give a quota reservation back (after a write that followed it failed).
pub(super) async fn release(vols: &Volumes, project: &str, holder: &str, caller: &Caller) {
    if let Err(e) = vols
        .usage
        .execute(
            project,
            VolumeUsageCommand::Release {
                holder: holder.to_string(),
            },
            caller.meta.clone(),
        )
        .await
    {
        tracing::error!(project, holder, error = %e, "releasing volume quota failed");
    }
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
    if let Some(k) = m.keys().find(|k| !UPDATE_KEYS.contains(&k.as_str())) {
        return Err(CinderError::bad_request(format!(
            "Additional properties are not allowed ('{k}' was unexpected)"
        )));
    }
    if mv.at_least(53) && m.is_empty() {
        return Err(CinderError::bad_request(
            "Invalid input for field/attribute volume. Value: {}. {} does not have enough properties",
        ));
    }
    let name = match opt_text(m, "name")? {
        Some(n) => Some(n),
        None => opt_text(m, "display_name")?,
    };
    let description = match opt_text(m, "description")? {
        Some(d) => Some(d),
        None => opt_text(m, "display_description")?,
    };
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

/// Cinder's refusal of a delete (status, attachments, snapshots).
fn undeletable(force: bool) -> CinderError {
    let status = if force {
        String::new()
    } else {
        "status must be available or error or error_restoring or error_extending or error_managing and "
            .to_string()
    };
    CinderError::invalid_volume(format!(
        "Volume {status}must not be migrating, attached, belong to a group, have snapshots, awaiting a transfer, or be disassociated from snapshots after volume transfer."
    ))
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
    let flag = |k: &str| -> Result<bool, CinderError> {
        q.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| parse_bool(&json!(v), k))
            .transpose()
            .map(|b| b.unwrap_or(false))
    };
    let cascade = flag("cascade")?;
    let force = mv.at_least(23) && flag("force")?;
    if force {
        caller.enforce("volume:force_delete")?;
    }
    let row = vols.volume(&caller, &id)?;
    begin_delete(&vols, &caller, &row, cascade, force).await?;
    Ok(HttpResponse::Accepted().finish())
}

/// Start deleting a volume (its snapshots first with `cascade`), after the checks Cinder makes.
/// Delete a volume made for a request that then failed (forced: it may still be creating).
pub async fn discard_volume(vols: &Volumes, caller: &Caller, id: &str) {
    let row = vols.view.snapshot().volume(id).cloned();
    if let Some(row) = row {
        if let Err(e) = begin_delete(vols, caller, &row, true, true).await {
            tracing::error!(volume = %id, error = %e.message, "could not delete a volume made for a failed request");
        }
    }
}

pub(super) async fn begin_delete(
    vols: &Volumes,
    caller: &Caller,
    row: &VolumeRow,
    cascade: bool,
    force: bool,
) -> Result<(), CinderError> {
    let v = &row.state;
    if v.status == st::DELETING {
        return Ok(());
    }
    let snapshots: Vec<(String, String)> = {
        let view = vols.view.snapshot();
        view.snapshots_of(&row.id)
            .map(|s| (s.id.clone(), s.state.status.clone()))
            .collect()
    };
    let deletable = [
        st::AVAILABLE,
        st::ERROR,
        "error_restoring",
        st::ERROR_EXTENDING,
        "error_managing",
    ];
    if !v.attachments.is_empty() || (!force && !deletable.contains(&v.status.as_str())) {
        return Err(undeletable(force));
    }
    if !snapshots.is_empty() {
        let ok = cascade
            && snapshots
                .iter()
                .all(|(_, s)| force || matches!(s.as_str(), "available" | "error" | "deleting"));
        if !ok {
            return Err(undeletable(force));
        }
        for (sid, _) in &snapshots {
            vols.run(
                &vols.snapshots,
                sid,
                SnapshotCommand::BeginDelete,
                &caller.meta,
            )
            .await?;
        }
    }
    vols.run(
        &vols.volumes,
        &row.id,
        VolumeCommand::Begin {
            task: VolumeTask::Delete { force },
            request_id: caller.meta.correlation_id.clone(),
        },
        &caller.meta,
    )
    .await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------
// Metadata

async fn metadata_list(
    vols: web::Data<Volumes>,
    caller: Caller,
    req: HttpRequest,
) -> Result<HttpResponse, CinderError> {
    let row = vols.volume(&caller, &param(&req, "id"))?;
    Ok(HttpResponse::Ok().json(json!({ "metadata": row.state.metadata })))
}

async fn set_metadata(
    vols: &Volumes,
    caller: &Caller,
    req: &HttpRequest,
    body: &[u8],
    replace: bool,
) -> Result<HttpResponse, CinderError> {
    let id = param(req, "id");
    let v = parse_json(body)?;
    let items = metadata_map(
        v.get("metadata").ok_or_else(|| {
            CinderError::bad_request("Malformed request body: 'metadata' is a required property")
        })?,
        "metadata",
    )?;
    vols.volume(caller, &id)?;
    vols.run(
        &vols.volumes,
        &id,
        VolumeCommand::SetMetadata { items, replace },
        &caller.meta,
    )
    .await?;
    let row = vols.volume(caller, &id)?;
    Ok(HttpResponse::Ok().json(json!({ "metadata": row.state.metadata })))
}

async fn metadata_merge(
    vols: web::Data<Volumes>,
    caller: Caller,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, CinderError> {
    caller.enforce("volume:create_volume_metadata")?;
    set_metadata(&vols, &caller, &req, &body, false).await
}

async fn metadata_replace(
    vols: web::Data<Volumes>,
    caller: Caller,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, CinderError> {
    caller.enforce("volume:update_volume_metadata")?;
    set_metadata(&vols, &caller, &req, &body, true).await
}

fn no_key(id: &str, key: &str) -> CinderError {
    CinderError::not_found(format!("Volume {id} has no metadata with key {key}."))
}

async fn metadata_show(
    vols: web::Data<Volumes>,
    caller: Caller,
    req: HttpRequest,
) -> Result<HttpResponse, CinderError> {
    let (id, key) = (param(&req, "id"), param(&req, "key"));
    let row = vols.volume(&caller, &id)?;
    let value = row
        .state
        .metadata
        .get(&key)
        .ok_or_else(|| no_key(&id, &key))?;
    Ok(HttpResponse::Ok().json(json!({ "meta": { key: value } })))
}

/// The `{"meta": {key: value}}` of a one-key metadata PUT, which must name the URL's key.
pub(super) fn one_meta(v: &Value, key: &str) -> Result<BTreeMap<String, String>, CinderError> {
    let meta = v
        .get("meta")
        .ok_or_else(|| CinderError::bad_request("Malformed request body"))?;
    let items = metadata_map(meta, "meta")?;
    if items.len() > 1 {
        return Err(CinderError::bad_request(
            "Request body contains too many items",
        ));
    }
    if !items.contains_key(key) {
        return Err(CinderError::bad_request("Request body and URI mismatch"));
    }
    Ok(items)
}

async fn metadata_put(
    vols: web::Data<Volumes>,
    caller: Caller,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, CinderError> {
    caller.enforce("volume:update_volume_metadata")?;
    let (id, key) = (param(&req, "id"), param(&req, "key"));
    let items = one_meta(&parse_json(&body)?, &key)?;
    vols.volume(&caller, &id)?;
    vols.run(
        &vols.volumes,
        &id,
        VolumeCommand::SetMetadata {
            items: items.clone(),
            replace: false,
        },
        &caller.meta,
    )
    .await?;
    Ok(HttpResponse::Ok().json(json!({ "meta": items })))
}

async fn metadata_delete(
    vols: web::Data<Volumes>,
    caller: Caller,
    req: HttpRequest,
) -> Result<HttpResponse, CinderError> {
    caller.enforce("volume:delete_volume_metadata")?;
    let (id, key) = (param(&req, "id"), param(&req, "key"));
    let row = vols.volume(&caller, &id)?;
    if !row.state.metadata.contains_key(&key) {
        return Err(no_key(&id, &key));
    }
    vols.run(
        &vols.volumes,
        &id,
        VolumeCommand::DeleteMetadataItem(key),
        &caller.meta,
    )
    .await?;
    Ok(HttpResponse::Ok().finish())
}
