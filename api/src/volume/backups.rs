//! `/v3/backups`: create (full or incremental, of a volume or of one of its snapshots; quota reserved first,
//! holder `backup:<id>`), list, detail, show, update (3.9; metadata 3.43), delete, restore (to an existing
//! volume or to a new one), and the admin actions `os-reset_status` and `os-force_delete`. The volume service
//! (cinder-backup in strata-volume) writes, restores and removes the data.
//!
//! A backup and a restore touch two aggregates: the volume's side is recorded first (`backing-up`,
//! `restoring-backup`, or the new volume made from the backup), the backup's side second, and a refusal of
//! the second undoes the first.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};
use strata_actors::volume::{
    backup_status as bs, status as st, BackupCommand, VolumeCommand, VolumeTask,
};
use strata_projections::volume::BackupRow;
use strata_proto::volume as pb;

use super::{
    body_object, check_filters, invalid_field, links, list_route, metadata_map, nullable,
    only_keys, opt_text, opt_uuid, param, parse_bool, parse_json, query_value, require, resource,
    text_matches, Caller, CinderError, Listed, Microversion, Page, SortValue, Volumes,
};
use crate::identity::Identity;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/backups")
            .route(list_route(listing, false))
            .route(web::post().to(create)),
    )
    .service(resource("/backups/detail").route(list_route(listing, true)))
    .service(
        resource("/backups/{id}")
            .route(web::get().to(show))
            .route(web::put().to(update))
            .route(web::delete().to(delete)),
    )
    .service(resource("/backups/{id}/restore").route(web::post().to(restore)))
    .service(resource("/backups/{id}/action").route(web::post().to(action)));
}

fn not_found(id: &str) -> CinderError {
    CinderError::not_found(format!("Backup {id} could not be found."))
}

/// Cinder's `InvalidBackup`: "Invalid backup: <reason>".
fn invalid_backup(reason: &str) -> CinderError {
    CinderError::bad_request(format!("Invalid backup: {reason}"))
}

/// Backup `id` as `caller` may see it (its project's, or any for admins): 404 otherwise.
pub(super) fn backup(vols: &Volumes, caller: &Caller, id: &str) -> Result<BackupRow, CinderError> {
    let view = vols.view.snapshot();
    view.backups
        .get(id)
        .filter(|b| caller.is_admin || b.state.project_id == caller.project_id)
        .cloned()
        .ok_or_else(|| not_found(id))
}

// ---------------------------------------------------------------------------------------------------------
// Representation

fn summary_json(req: &HttpRequest, row: &BackupRow) -> Value {
    json!({
        "id": row.id,
        "name": nullable(&row.state.name),
        "links": links(req, &row.state.project_id, "backups", &row.id),
    })
}

/// The backup as Cinder's detail view shows it at `mv` (the project and user attributes are for admins,
/// as Cinder's `backup:backup_project_attribute` policy has it). No `encryption_key_id`: Cinder shows one
/// only for encrypted volumes, which are not offered.
fn detail_json(
    vols: &Volumes,
    req: &HttpRequest,
    mv: Microversion,
    admin: bool,
    row: &BackupRow,
) -> Value {
    let b = &row.state;
    let has_dependent_backups = vols
        .view
        .snapshot()
        .backup_children(&row.id)
        .next()
        .is_some();
    let mut out = json!({
        "id": row.id,
        "name": nullable(&b.name),
        "description": nullable(&b.description),
        "status": b.status,
        "size": b.size_gb,
        "object_count": b.object_count,
        "availability_zone": nullable(&b.availability_zone),
        "container": nullable(&b.container),
        "created_at": row.created_at,
        "updated_at": nullable(&row.updated_at),
        "fail_reason": nullable(&b.fail_reason),
        "volume_id": b.volume_id,
        "links": links(req, &b.project_id, "backups", &row.id),
        "is_incremental": b.is_incremental(),
        "has_dependent_backups": has_dependent_backups,
        "snapshot_id": nullable(&b.snapshot_id),
        "data_timestamp": nullable(&row.data_timestamp),
    });
    if mv.at_least(43) {
        out["metadata"] = json!(b.metadata);
    }
    if admin && mv.at_least(18) {
        out["os-backup-project-attr:project_id"] = json!(b.project_id);
    }
    if admin && mv.at_least(56) {
        out["user_id"] = json!(b.user_id);
    }
    out
}

// ---------------------------------------------------------------------------------------------------------
// Listing

/// Filters anyone may use on backups (Cinder's resource filters for "backup").
const BACKUP_FILTERS: &[&str] = &["name", "status", "volume_id"];

/// Further filters admins may use.
const ADMIN_BACKUP_FILTERS: &[&str] = &["project_id", "user_id", "id", "snapshot_id"];

const BACKUP_SORT_KEYS: &[&str] = &[
    "id",
    "name",
    "display_name",
    "status",
    "size",
    "created_at",
    "updated_at",
    "volume_id",
    "project_id",
    "data_timestamp",
];

impl Listed for BackupRow {
    const SORT_KEYS: &'static [&'static str] = BACKUP_SORT_KEYS;
    fn id(&self) -> &str {
        &self.id
    }
    fn sort_value(&self, key: &str) -> Option<SortValue> {
        let b = &self.state;
        Some(match key {
            "id" => SortValue::Text(self.id.clone()),
            "name" | "display_name" => SortValue::Text(b.name.clone()),
            "status" => SortValue::Text(b.status.clone()),
            "size" => SortValue::Int(b.size_gb as i64),
            "created_at" => SortValue::Text(self.created_at.clone()),
            "updated_at" => SortValue::Text(self.updated_at.clone()),
            "volume_id" => SortValue::Text(b.volume_id.clone()),
            "project_id" => SortValue::Text(b.project_id.clone()),
            "data_timestamp" => SortValue::Text(self.data_timestamp.clone()),
            _ => return None,
        })
    }
}

fn listing(
    vols: &Volumes,
    caller: &Caller,
    req: &HttpRequest,
    mv: Microversion,
    detail: bool,
) -> Result<HttpResponse, CinderError> {
    let q = crate::common::query_pairs(req);
    check_filters(caller, mv, &q, BACKUP_FILTERS)?;
    let page = Page::parse(&q, mv)?;
    let all_tenants = match query_value(&q, "all_tenants") {
        None => false,
        Some(v) => parse_bool(&json!(v), "all_tenants").map_err(|_| {
            CinderError::bad_request(format!("all_tenants must be a boolean, got '{v}'."))
        })?,
    } && caller.is_admin;
    // An admin filtering by a key backups do not have gets nothing, as Cinder's database query does.
    let unknown = caller.is_admin
        && q.iter().any(|(k, _)| {
            let base = k.strip_suffix('~').unwrap_or(k);
            !super::PAGE_KEYS.contains(&k.as_str())
                && k != "all_tenants"
                && !BACKUP_FILTERS.contains(&base)
                && !ADMIN_BACKUP_FILTERS.contains(&base)
        });
    let rows: Vec<BackupRow> = if unknown {
        Vec::new()
    } else {
        let view = vols.view.snapshot();
        view.backups
            .values()
            .filter(|r| {
                let b = &r.state;
                (if all_tenants {
                    text_matches(&q, "project_id", &b.project_id)
                } else {
                    b.project_id == caller.project_id
                }) && text_matches(&q, "name", &b.name)
                    && text_matches(&q, "status", &b.status)
                    && text_matches(&q, "volume_id", &b.volume_id)
                    && text_matches(&q, "user_id", &b.user_id)
                    && text_matches(&q, "id", &r.id)
                    && text_matches(&q, "snapshot_id", &b.snapshot_id)
            })
            .cloned()
            .collect()
    };
    page.answer(req, &q, "backups", rows, |r| {
        if detail {
            detail_json(vols, req, mv, caller.is_admin, r)
        } else {
            summary_json(req, r)
        }
    })
}

async fn show(
    vols: web::Data<Volumes>,
    caller: Caller,
    req: HttpRequest,
    mv: Microversion,
) -> Result<HttpResponse, CinderError> {
    let row = backup(&vols, &caller, &param(&req, "id"))?;
    Ok(HttpResponse::Ok()
        .json(json!({ "backup": detail_json(&vols, &req, mv, caller.is_admin, &row) })))
}

// ---------------------------------------------------------------------------------------------------------
// Create

/// A top-level body with exactly the key `key`.
fn only_top(v: &Value, key: &str) -> Result<(), CinderError> {
    match v {
        Value::Object(top) => only_keys(top, &[key]),
        other => Err(invalid_field(key, other, "is not of type 'object'")),
    }
}

/// An optional boolean flag (Cinder's strict boolean strings).
fn flag(m: &Map<String, Value>, key: &str) -> Result<bool, CinderError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(v) => parse_bool(v, key),
    }
}

/// The backup an incremental backup of `volume_id` builds on: the caller's newest available full or
/// incremental backup of the volume itself (backups of snapshots hold another disk's chunks).
fn parent_for(vols: &Volumes, caller: &Caller, volume_id: &str) -> Option<String> {
    let view = vols.view.snapshot();
    view.backups_of(volume_id)
        .filter(|b| {
            b.state.project_id == caller.project_id
                && b.state.status == bs::AVAILABLE
                && b.state.snapshot_id.is_empty()
        })
        .max_by(|a, b| {
            (&a.data_timestamp, &a.created_at, &a.id).cmp(&(
                &b.data_timestamp,
                &b.created_at,
                &b.id,
            ))
        })
        .map(|b| b.id.clone())
}

async fn create(
    vols: web::Data<Volumes>,
    caller: Caller,
    req: HttpRequest,
    mv: Microversion,
    body: web::Bytes,
) -> Result<HttpResponse, CinderError> {
    caller.enforce("backup:create")?;
    let v = parse_json(&body)?;
    only_top(&v, "backup")?;
    let m = body_object(&v, "backup")?;
    let mut allowed = vec![
        "volume_id",
        "container",
        "description",
        "incremental",
        "force",
        "name",
        "snapshot_id",
    ];
    if mv.at_least(43) {
        allowed.push("metadata");
    }
    if mv.at_least(51) {
        allowed.push("availability_zone");
    }
    only_keys(m, &allowed)?;
    let volume_id = match m.get("volume_id") {
        Some(Value::String(s)) if uuid::Uuid::parse_str(s).is_ok() => s.clone(),
        Some(other) => return Err(invalid_field("volume_id", other, "is not a 'uuid'")),
        None => {
            return Err(CinderError::bad_request(
                "Invalid input for field/attribute backup. 'volume_id' is a required property",
            ))
        }
    };
    let container = match m.get("container") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) if s.chars().count() <= 255 => s.clone(),
        Some(other) => {
            return Err(invalid_field(
                "container",
                other,
                "is not a string of at most 255 characters",
            ))
        }
    };
    let name = opt_text(m, "name")?.unwrap_or_default();
    let description = opt_text(m, "description")?.unwrap_or_default();
    let incremental = flag(m, "incremental")?;
    let force = flag(m, "force")?;
    let snapshot_id = opt_uuid(m, "snapshot_id")?;
    let metadata = m
        .get("metadata")
        .map(|x| metadata_map(x, "metadata"))
        .transpose()?
        .unwrap_or_default();
    let requested_az = match m.get("availability_zone") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            return Err(invalid_field(
                "availability_zone",
                other,
                "is not of type 'string', 'null'",
            ))
        }
    };

    let volume = vols.volume(&caller, &volume_id)?;
    let vs = &volume.state;
    if let Some(sid) = &snapshot_id {
        let snap = vols.snapshot(&caller, sid)?;
        if snap.state.volume_id != volume_id {
            return Err(CinderError::invalid_volume(format!(
                "Volume {volume_id} does not match with snapshot.volume_id {}.",
                snap.state.volume_id
            )));
        }
        if snap.state.status != "available" {
            return Err(CinderError::bad_request(format!(
                "Invalid snapshot: Snapshot to be backed up must be available, but the current status is \"{}\".",
                snap.state.status
            )));
        }
        if incremental {
            return Err(invalid_backup(
                "Incremental backups of snapshots are not supported by this deployment.",
            ));
        }
    } else if !matches!(vs.status.as_str(), st::AVAILABLE | st::IN_USE) {
        return Err(CinderError::invalid_volume(format!(
            "Volume to be backed up must be available or in-use, but the current status is \"{}\".",
            vs.status
        )));
    } else if vs.status == st::IN_USE && !force {
        return Err(CinderError::invalid_volume(
            "Backing up an in-use volume must use the force flag.",
        ));
    }
    let parent_id = if incremental {
        parent_for(&vols, &caller, &volume_id)
            .ok_or_else(|| invalid_backup("No backups available to do an incremental backup."))?
    } else {
        String::new()
    };
    // Backups are kept by the volume service beside the volume's backend, in the volume's zone.
    let availability_zone = match requested_az {
        Some(az) if !vols.zones().contains(&az) => {
            return Err(CinderError::new(
                actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
                "Service cinder-backup could not be found.",
            ))
        }
        Some(az) => az,
        None => vs.availability_zone.clone(),
    };

    let created = pb::BackupCreated {
        name,
        description,
        incremental,
        parent_id,
        container,
        snapshot_id: snapshot_id.unwrap_or_default(),
        metadata: metadata.into_iter().collect(),
        availability_zone,
        ..Default::default()
    };
    let id = strata_volume::service::create_backup(&vols, &caller, &volume, force, created).await?;
    let row = backup(&vols, &caller, &id)?;
    Ok(HttpResponse::Accepted().json(json!({ "backup": summary_json(&req, &row) })))
}

// ---------------------------------------------------------------------------------------------------------
// Update and delete

async fn update(
    vols: web::Data<Volumes>,
    caller: Caller,
    req: HttpRequest,
    mv: Microversion,
    body: web::Bytes,
) -> Result<HttpResponse, CinderError> {
    caller.enforce("backup:update")?;
    require(mv, 9)?;
    let id = param(&req, "id");
    let v = parse_json(&body)?;
    only_top(&v, "backup")?;
    let empty = Map::new();
    let m = match v.get("backup") {
        Some(Value::Null) => &empty,
        _ => body_object(&v, "backup")?,
    };
    let mut allowed = vec!["name", "description"];
    if mv.at_least(43) {
        allowed.push("metadata");
    }
    only_keys(m, &allowed)?;
    let name = opt_text(m, "name")?;
    let description = opt_text(m, "description")?;
    let metadata = m
        .get("metadata")
        .map(|x| metadata_map(x, "metadata"))
        .transpose()?;
    let row = backup(&vols, &caller, &id)?;
    let cmd = BackupCommand::Update {
        name: name.unwrap_or(row.state.name.clone()),
        description: description.unwrap_or(row.state.description.clone()),
        metadata,
    };
    vols.run(&vols.backups, &id, cmd, &caller.meta).await?;
    let row = backup(&vols, &caller, &id)?;
    Ok(HttpResponse::Ok().json(json!({ "backup": summary_json(&req, &row) })))
}

/// Start deleting a backup, after Cinder's checks (no incremental backup may build on it).
async fn begin_delete(
    vols: &Volumes,
    caller: &Caller,
    id: &str,
    force: bool,
) -> Result<(), CinderError> {
    let row = backup(vols, caller, id)?;
    if !force && !matches!(row.state.status.as_str(), bs::AVAILABLE | bs::ERROR) {
        return Err(invalid_backup("Backup status must be available or error"));
    }
    if vols.view.snapshot().backup_children(id).next().is_some() {
        return Err(invalid_backup("Incremental backups exist for this backup."));
    }
    vols.run(
        &vols.backups,
        id,
        BackupCommand::BeginDelete { force },
        &caller.meta,
    )
    .await?;
    Ok(())
}

async fn delete(
    vols: web::Data<Volumes>,
    caller: Caller,
    req: HttpRequest,
) -> Result<HttpResponse, CinderError> {
    caller.enforce("backup:delete")?;
    begin_delete(&vols, &caller, &param(&req, "id"), false).await?;
    Ok(HttpResponse::Accepted().finish())
}

// ---------------------------------------------------------------------------------------------------------
// Restore

async fn restore(
    vols: web::Data<Volumes>,
    identity: web::Data<Identity>,
    caller: Caller,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, CinderError> {
    caller.enforce("backup:restore")?;
    let id = param(&req, "id");
    let v = parse_json(&body)?;
    only_top(&v, "restore")?;
    let empty = Map::new();
    let m = match v.get("restore") {
        Some(Value::Null) => &empty,
        _ => body_object(&v, "restore")?,
    };
    only_keys(m, &["name", "volume_id"])?;
    let volume_id = opt_uuid(m, "volume_id")?;
    let name = opt_text(m, "name")?;
    let row = backup(&vols, &caller, &id)?;
    if row.state.status != bs::AVAILABLE {
        return Err(invalid_backup("Backup status must be available"));
    }
    let (volume_id, volume_name) = match volume_id {
        Some(vid) => restore_to_existing(&vols, &caller, &id, &row, &vid).await?,
        None => {
            let name = name
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| format!("restore_backup_{id}"));
            restore_to_new(&vols, &identity, &caller, &id, name).await?
        }
    };
    Ok(HttpResponse::Accepted().json(json!({
        "restore": {
            "backup_id": id,
            "volume_id": volume_id,
            "volume_name": nullable(&volume_name),
        }
    })))
}

async fn restore_to_existing(
    vols: &Volumes,
    caller: &Caller,
    backup_id: &str,
    row: &BackupRow,
    volume_id: &str,
) -> Result<(String, String), CinderError> {
    let volume = vols.volume(caller, volume_id)?;
    let vs = &volume.state;
    if vs.status != st::AVAILABLE {
        return Err(CinderError::invalid_volume(
            "Volume to be restored to must be available",
        ));
    }
    if row.state.size_gb > vs.size_gb {
        return Err(CinderError::invalid_volume(format!(
            "volume size {} is too small to restore backup of size {}.",
            vs.size_gb, row.state.size_gb
        )));
    }
    vols.run(
        &vols.volumes,
        volume_id,
        VolumeCommand::Begin {
            task: VolumeTask::Restore {
                backup_id: backup_id.to_string(),
            },
            request_id: caller.meta.correlation_id.clone(),
        },
        &caller.meta,
    )
    .await?;
    if let Err(e) = strata_volume::service::begin_restore(vols, caller, backup_id, volume_id).await
    {
        let _ = vols
            .run(
                &vols.volumes,
                volume_id,
                VolumeCommand::Finish {
                    expected: st::RESTORING.into(),
                },
                &caller.meta,
            )
            .await;
        return Err(e.into());
    }
    Ok((volume_id.to_string(), vs.name.clone()))
}

/// A new volume of the backup's size (default type, the backup's zone when volumes can go there) that the
/// volume service makes blank and then fills from the backup.
async fn restore_to_new(
    vols: &Volumes,
    identity: &Identity,
    caller: &Caller,
    backup_id: &str,
    name: String,
) -> Result<(String, String), CinderError> {
    let request = super::NewVolume {
        name: name.clone(),
        description: "auto-created_from_restore_from_backup".into(),
        backup_id: Some(backup_id.to_string()),
        ..Default::default()
    };
    let row = super::create_volume(vols, identity, caller, request).await?;
    Ok((row.id, name))
}

// ---------------------------------------------------------------------------------------------------------
// Admin actions

async fn action(
    vols: web::Data<Volumes>,
    caller: Caller,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, CinderError> {
    let id = param(&req, "id");
    let v = parse_json(&body)?;
    let Some((name, arg)) = v.as_object().and_then(|m| m.iter().next()) else {
        return Err(CinderError::bad_request("Malformed request body"));
    };
    match name.as_str() {
        "os-reset_status" => {
            backup(&vols, &caller, &id)?;
            caller.enforce("volume_extension:backup_admin_actions:reset_status")?;
            let status = match arg.get("status") {
                Some(Value::String(s)) => s.to_lowercase(),
                _ => {
                    return Err(CinderError::bad_request(
                        "Invalid input for field/attribute os-reset_status. 'status' is a required property",
                    ))
                }
            };
            vols.run(
                &vols.backups,
                &id,
                BackupCommand::ResetStatus { status },
                &caller.meta,
            )
            .await?;
            Ok(HttpResponse::Accepted().finish())
        }
        "os-force_delete" => {
            backup(&vols, &caller, &id)?;
            caller.enforce("volume_extension:backup_admin_actions:force_delete")?;
            begin_delete(&vols, &caller, &id, true).await?;
            Ok(HttpResponse::Accepted().finish())
        }
        other => Err(CinderError::bad_request(format!(
            "There is no such action: {other}"
        ))),
    }
}
