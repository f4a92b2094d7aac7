//! `POST /v3/volumes/{id}/action`: extend, retype, revert, upload to image, bootable and read-only flags,
//! the admin actions (reset status, force delete, force detach), and the legacy attach flow Nova used before
//! the attachments API (reserve, initialize_connection, attach, begin_detaching, terminate_connection,
//! detach). Work the volume service does (extend, retype, revert, upload, delete) is only started here.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};
use strata_actors::image::ImageCommand;
use strata_actors::volume::{status as st, VolumeAmounts, VolumeCommand, VolumeTask};
use strata_projections::volume::VolumeRow;

use strata_volume::attach::AttachTarget;

use super::begin_delete;
use super::{
    param, parse_bool, parse_json, parse_size, Caller, CinderError, Microversion, Volumes,
};

/// Volume statuses an admin may reset a volume to (Cinder's volume status field).
const RESET_STATUSES: &[&str] = &[
    "creating",
    "available",
    "deleting",
    "error",
    "error_deleting",
    "error_managing",
    "managing",
    "attaching",
    "in-use",
    "detaching",
    "maintenance",
    "restoring-backup",
    "error_restoring",
    "reserved",
    "awaiting-transfer",
    "backing-up",
    "error_backing-up",
    "error_extending",
    "downloading",
    "uploading",
    "retyping",
    "extending",
];

pub async fn action(
    vols: web::Data<Volumes>,
    caller: Caller,
    req: HttpRequest,
    mv: Microversion,
    body: web::Bytes,
) -> Result<HttpResponse, CinderError> {
    let id = param(&req, "id");
    let v = parse_json(&body)?;
    let (name, arg) = match v.as_object() {
        Some(m) if m.len() == 1 => m
            .iter()
            .next()
            .ok_or_else(|| CinderError::bad_request("Malformed request body"))?,
        _ => return Err(CinderError::bad_request("Malformed request body")),
    };
    let policy = super::policy::volume_action(name)
        .ok_or_else(|| CinderError::bad_request(format!("There is no such action: {name}")))?;
    caller.enforce(policy)?;
    let row = vols.volume(&caller, &id)?;
    let vols = vols.as_ref();
    match name.as_str() {
        "os-extend" => extend(vols, &caller, mv, &row, arg).await,
        "os-set_bootable" => {
            let b = parse_bool(field(arg, "bootable")?, "bootable")?;
            run(vols, &caller, &row, VolumeCommand::SetBootable(b)).await?;
            Ok(HttpResponse::Ok().finish())
        }
        "os-update_readonly_flag" => {
            let r = parse_bool(field(arg, "readonly")?, "readonly")?;
            run(vols, &caller, &row, VolumeCommand::SetReadonly(r)).await?;
            Ok(HttpResponse::Accepted().finish())
        }
        "os-reset_status" => reset_status(vols, &caller, &row, arg).await,
        "os-retype" => retype(vols, &caller, &row, arg).await,
        "revert" => {
            super::require(mv, 40)?;
            revert(vols, &caller, &row, arg).await
        }
        "os-volume_upload_image" => upload_image(vols, &caller, mv, &row, arg).await,
        "os-show_image_metadata" => {
            Ok(HttpResponse::Ok().json(json!({ "metadata": row.state.image_metadata })))
        }
        "os-force_delete" => {
            begin_delete(vols, &caller, &row, false, true).await?;
            Ok(HttpResponse::Accepted().finish())
        }
        "os-reserve" => {
            vols.reserve(&caller, &row).await?;
            Ok(HttpResponse::Accepted().finish())
        }
        "os-unreserve" => {
            vols.unreserve(&caller, &row).await?;
            Ok(HttpResponse::Accepted().finish())
        }
        "os-attach" => {
            vols.attach_legacy(&caller, &row, attach_target(arg)?)
                .await?;
            Ok(HttpResponse::Accepted().finish())
        }
        "os-begin_detaching" => {
            vols.begin_detaching(&caller, &row).await?;
            Ok(HttpResponse::Accepted().finish())
        }
        "os-roll_detaching" => {
            vols.roll_detaching(&caller, &row).await?;
            Ok(HttpResponse::Accepted().finish())
        }
        "os-detach" | "os-force_detach" => {
            let attachment = arg
                .get("attachment_id")
                .and_then(Value::as_str)
                .map(str::to_string);
            vols.detach_legacy(&caller, &row, attachment, name == "os-force_detach")
                .await?;
            Ok(HttpResponse::Accepted().finish())
        }
        "os-initialize_connection" => {
            connector(arg)?;
            Ok(HttpResponse::Ok().json(json!({ "connection_info": vols.connection_info(&row) })))
        }
        "os-terminate_connection" => {
            connector(arg)?;
            Ok(HttpResponse::Accepted().finish())
        }
        "os-set_image_metadata"
        | "os-unset_image_metadata"
        | "os-migrate_volume"
        | "os-migrate_volume_completion"
        | "os-unmanage"
        | "os-reimage"
        | "os-extend_volume_completion" => Err(CinderError::not_implemented(format!(
            "The {name} action is not supported by this deployment."
        ))),
        other => Err(CinderError::bad_request(format!(
            "There is no such action: {other}"
        ))),
    }
}

/// `arg[key]`, required.
fn field<'a>(arg: &'a Value, key: &str) -> Result<&'a Value, CinderError> {
    arg.get(key).filter(|v| !v.is_null()).ok_or_else(|| {
        CinderError::bad_request(format!(
            "Invalid input for field/attribute {key}. Value: {arg}. '{key}' is a required property"
        ))
    })
}

async fn run(
    vols: &Volumes,
    caller: &Caller,
    row: &VolumeRow,
    cmd: VolumeCommand,
) -> Result<(), CinderError> {
    vols.run(&vols.volumes, &row.id, cmd, &caller.meta).await?;
    Ok(())
}

fn begin(task: VolumeTask, caller: &Caller) -> VolumeCommand {
    VolumeCommand::Begin {
        task,
        request_id: caller.meta.correlation_id.clone(),
    }
}

/// `os-extend`: quota for the new size first, then the task (the volume service grows the volume).
async fn extend(
    vols: &Volumes,
    caller: &Caller,
    mv: Microversion,
    row: &VolumeRow,
    arg: &Value,
) -> Result<HttpResponse, CinderError> {
    let new_size = parse_size(field(arg, "new_size")?, "new_size")?;
    let v = &row.state;
    let allow_in_use = mv.at_least(42);
    let ok = v.status == st::AVAILABLE || (allow_in_use && v.status == st::IN_USE);
    if !ok {
        let expected = if allow_in_use {
            "available' or 'in-use"
        } else {
            "available"
        };
        return Err(CinderError::invalid_volume(format!(
            "Volume {} status must be '{expected}' to extend, currently {}.",
            row.id, v.status
        )));
    }
    if new_size <= v.size_gb {
        return Err(CinderError::invalid_input(format!(
            "New size for extend must be greater than current size. (current: {}, extended: {new_size}).",
            v.size_gb
        )));
    }
    let amounts = VolumeAmounts {
        volumes: 1,
        gigabytes: new_size as i64,
        volume_type: vols.type_name(&v.volume_type_id),
        ..Default::default()
    };
    let task = VolumeTask::Extend {
        new_size_gb: new_size,
        allow_in_use,
    };
    strata_volume::service::begin_with_quota(vols, caller, row, amounts, task).await?;
    Ok(HttpResponse::Accepted().finish())
}

async fn reset_status(
    vols: &Volumes,
    caller: &Caller,
    row: &VolumeRow,
    arg: &Value,
) -> Result<HttpResponse, CinderError> {
    let status = match arg.get("status") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.to_lowercase()),
        Some(other) => {
            return Err(super::invalid_field("status", other, "is not a string"));
        }
    };
    let attach_status = match arg.get("attach_status") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.to_lowercase()),
        Some(other) => {
            return Err(super::invalid_field(
                "attach_status",
                other,
                "is not a string",
            ));
        }
    };
    if let Some(s) = &status {
        if !RESET_STATUSES.contains(&s.as_str()) {
            return Err(CinderError::invalid_input(format!(
                "'{s}' is not a valid volume status"
            )));
        }
    }
    if let Some(a) = &attach_status {
        if !matches!(a.as_str(), "attached" | "detached") {
            return Err(CinderError::invalid_input(format!(
                "Must specify a valid attach status: {a}"
            )));
        }
    }
    if arg.get("migration_status").is_some_and(|m| !m.is_null())
        && status.is_none()
        && attach_status.is_none()
    {
        // Migrations are not modelled: there is no migration status to reset.
        return Ok(HttpResponse::Accepted().finish());
    }
    if status.is_none() && attach_status.is_none() {
        return Err(CinderError::invalid_input(
            "Must specify 'status', 'attach_status' or 'migration_status' for update.",
        ));
    }
    let cmd = VolumeCommand::ResetStatus {
        status: status.unwrap_or_else(|| row.state.status.clone()),
        attach_status: attach_status.unwrap_or_default(),
    };
    run(vols, caller, row, cmd).await?;
    Ok(HttpResponse::Accepted().finish())
}

/// `os-retype`: the new type's per-type quota first, then the task.
async fn retype(
    vols: &Volumes,
    caller: &Caller,
    row: &VolumeRow,
    arg: &Value,
) -> Result<HttpResponse, CinderError> {
    let new_type = field(arg, "new_type")?
        .as_str()
        .ok_or_else(|| super::invalid_field("new_type", arg, "is not a string"))?
        .to_string();
    match arg.get("migration_policy").and_then(Value::as_str) {
        None | Some("never") | Some("on-demand") => {}
        Some(p) => {
            return Err(CinderError::invalid_input(format!(
                "migration_policy must be 'on-demand' or 'never', passed: {p}"
            )))
        }
    }
    let t = vols.visible_type(caller, &new_type).ok_or_else(|| {
        CinderError::not_found(format!(
            "Volume type with name {new_type} could not be found."
        ))
    })?;
    let v = &row.state;
    if !matches!(v.status.as_str(), st::AVAILABLE | st::IN_USE) {
        return Err(CinderError::invalid_volume(format!(
            "Retype needs volume to be in available or in-use state, not be part of an active migration or a consistency group, requested type has to be different that the one from the volume, and for in-use volumes front-end qos specs cannot change. (current status: {})",
            v.status
        )));
    }
    if t.id == v.volume_type_id {
        return Err(CinderError::invalid_input(
            "Retype requested with the same volume type.",
        ));
    }
    let amounts = VolumeAmounts {
        volumes: 1,
        gigabytes: v.size_gb as i64,
        volume_type: t.state.name.clone(),
        ..Default::default()
    };
    let task = VolumeTask::Retype {
        volume_type_id: t.id.clone(),
    };
    strata_volume::service::begin_with_quota(vols, caller, row, amounts, task).await?;
    Ok(HttpResponse::Accepted().finish())
}

/// `revert` (3.40): to the volume's latest snapshot only.
async fn revert(
    vols: &Volumes,
    caller: &Caller,
    row: &VolumeRow,
    arg: &Value,
) -> Result<HttpResponse, CinderError> {
    let snapshot_id = arg
        .get("snapshot_id")
        .and_then(Value::as_str)
        .unwrap_or("None")
        .to_string();
    let latest = {
        let view = vols.view.snapshot();
        view.snapshots_of(&row.id)
            .max_by(|a, b| (&a.created_at, &a.id).cmp(&(&b.created_at, &b.id)))
            .cloned()
    };
    let Some(latest) = latest else {
        return Err(CinderError::bad_request(format!(
            "Volume {} doesn't have any snapshots.",
            row.id
        )));
    };
    if latest.id != snapshot_id {
        return Err(CinderError::bad_request(format!(
            "Specified snapshot {snapshot_id} is None or not the latest one of volume {}.",
            row.id
        )));
    }
    let cannot = |why: &str| {
        CinderError::conflict(format!(
            "Can't revert volume {} to its latest snapshot {snapshot_id}. {why}",
            row.id
        ))
    };
    if row.state.size_gb != latest.state.size_gb {
        return Err(CinderError::bad_request(format!(
            "Can't revert volume {} to its latest snapshot {snapshot_id}. The volume size must be equal to the snapshot size.",
            row.id
        )));
    }
    if row.state.status != st::AVAILABLE {
        return Err(cannot("Volume's status must be 'available'."));
    }
    if latest.state.status != "available" {
        return Err(cannot("Snapshot's status must be 'available'."));
    }
    let task = VolumeTask::Revert {
        snapshot_id: snapshot_id.clone(),
    };
    match run(vols, caller, row, begin(task, caller)).await {
        Ok(()) => Ok(HttpResponse::Accepted().finish()),
        Err(e) if e.status == StatusCode::BAD_REQUEST => Err(CinderError::conflict(e.message)),
        Err(e) => Err(e),
    }
}

/// `os-volume_upload_image`: a queued image in Glance (the caller's, holding a slot of its image quota),
/// then the upload task; the volume service streams the volume into the image.
async fn upload_image(
    vols: &Volumes,
    caller: &Caller,
    mv: Microversion,
    row: &VolumeRow,
    arg: &Value,
) -> Result<HttpResponse, CinderError> {
    let Value::Object(m) = arg else {
        return Err(super::invalid_field(
            "os-volume_upload_image",
            arg,
            "is not of type 'object'",
        ));
    };
    let image_name =
        match m.get("image_name") {
            Some(Value::String(s)) if !s.trim().is_empty() && s.chars().count() <= 255 => s.clone(),
            _ => return Err(CinderError::bad_request(
                "Invalid input for field/attribute image_name. 'image_name' is a required property",
            )),
        };
    let force = m
        .get("force")
        .map(|f| parse_bool(f, "force"))
        .transpose()?
        .unwrap_or(false);
    let text = |k: &str, default: &str| -> Result<String, CinderError> {
        match m.get(k) {
            None | Some(Value::Null) => Ok(default.to_string()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(other) => Err(super::invalid_field(k, other, "is not a string")),
        }
    };
    let disk_format = text("disk_format", "raw")?;
    if !matches!(disk_format.as_str(), "raw" | "qcow2") {
        return Err(CinderError::bad_request(format!(
            "Invalid disk-format '{disk_format}' is specified. Allowed disk-formats are raw, qcow2."
        )));
    }
    let container_format = text("container_format", "bare")?;
    if container_format != "bare" {
        return Err(CinderError::bad_request(format!(
            "Invalid container-format '{container_format}' is specified. Allowed container-formats are bare."
        )));
    }
    let (visibility, protected) = if mv.at_least(1) {
        let visibility = text("visibility", "private")?;
        if !matches!(
            visibility.as_str(),
            "public" | "private" | "shared" | "community"
        ) {
            return Err(CinderError::invalid_input(format!(
                "Invalid visibility {visibility}"
            )));
        }
        if visibility == "public" {
            caller.enforce("volume_extension:volume_actions:upload_public")?;
        }
        let protected = m
            .get("protected")
            .map(|p| parse_bool(p, "protected"))
            .transpose()?
            .unwrap_or(false);
        (visibility, protected)
    } else {
        ("private".to_string(), false)
    };
    let v = &row.state;
    let allowed: &[&str] = if force {
        &[st::AVAILABLE, st::IN_USE]
    } else {
        &[st::AVAILABLE]
    };
    if !allowed.contains(&v.status.as_str()) {
        return Err(CinderError::invalid_volume(format!(
            "Volume {} status must be {}, but current status is: {}.",
            row.id,
            allowed.join(" or "),
            v.status
        )));
    }
    let image_id = uuid::Uuid::new_v4().to_string();
    let cmd = ImageCommand::Create {
        image_id: image_id.clone(),
        owner: caller.project_id.clone(),
        name: image_name.clone(),
        disk_format: disk_format.clone(),
        container_format: container_format.clone(),
        visibility: visibility.clone(),
        min_disk: v.size_gb,
        min_ram: 0,
        protected,
        os_hidden: false,
        tags: vec![],
        properties: BTreeMap::new(),
    };
    strata_volume::service::upload_to_image(vols, caller, row, &image_id, cmd, force).await?;
    let row = vols.volume(caller, &row.id)?;
    let volume_type = {
        let view = vols.view.snapshot();
        view.types
            .get(&row.state.volume_type_id)
            .map(|t| super::types::type_json(t, caller.is_admin))
            .unwrap_or(Value::Null)
    };
    Ok(HttpResponse::Accepted().json(json!({
        "os-volume_upload_image": {
            "id": row.id,
            "updated_at": super::nullable(&row.updated_at),
            "status": row.state.status,
            "display_description": super::nullable(&row.state.description),
            "size": row.state.size_gb,
            "volume_type": volume_type,
            "image_id": image_id,
            "container_format": container_format,
            "disk_format": disk_format,
            "image_name": image_name,
            "protected": protected,
            "visibility": visibility,
        }
    })))
}

// ---------------------------------------------------------------------------------------------------------
// The legacy attach flow (the steps are strata_volume::attach's)

fn connector(arg: &Value) -> Result<&Map<String, Value>, CinderError> {
    match arg.get("connector") {
        Some(Value::Object(c)) => Ok(c),
        _ => Err(CinderError::bad_request(
            "Invalid input for field/attribute connector. 'connector' is a required property",
        )),
    }
}

/// The body of `os-attach`: a server (`instance_uuid`) or a host (`host_name`), a mountpoint, a mode.
fn attach_target(arg: &Value) -> Result<AttachTarget, CinderError> {
    let text = |k: &str| {
        arg.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let server_id = text("instance_uuid");
    let host = text("host_name");
    if server_id.is_empty() && host.is_empty() {
        return Err(CinderError::bad_request(
            "Invalid request to attach volume to an invalid target",
        ));
    }
    let mountpoint = text("mountpoint");
    if mountpoint.is_empty() {
        return Err(CinderError::bad_request(
            "Invalid input for field/attribute mountpoint. 'mountpoint' is a required property",
        ));
    }
    let mode = match arg.get("mode").and_then(Value::as_str) {
        None => "rw".to_string(),
        Some(m @ ("rw" | "ro")) => m.to_string(),
        Some(_) => {
            return Err(CinderError::bad_request(
                "Invalid request to attach volume with an invalid mode. Attaching mode should be 'rw' or 'ro'",
            ))
        }
    };
    Ok(AttachTarget {
        server_id,
        host,
        mountpoint,
        mode,
    })
}
