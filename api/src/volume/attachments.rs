//! `/v3/attachments` (3.27; `os-complete` 3.44): the attach flow Nova uses today. Create reserves the
//! volume for a server (with a connector it also answers how to connect), update answers the connection for
//! a connector, `os-complete` marks the attachment attached, delete detaches.
//!
//! The volume's attachment record holds the server, host, mountpoint and mode; a connector given after the
//! attachment was made is answered but not recorded.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};
use strata_actors::volume::{Attachment, VolumeCommand};
use strata_projections::volume::VolumeRow;

use super::{
    body_object, list_route, param, parse_json, query_flag, query_value, require, resource, Caller,
    CinderError, Microversion, Volumes,
};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/attachments")
            .route(list_route(listing, false))
            .route(web::post().to(create)),
    )
    .service(resource("/attachments/detail").route(list_route(listing, true)))
    .service(
        resource("/attachments/{id}")
            .route(web::get().to(show))
            .route(web::put().to(update))
            .route(web::delete().to(delete)),
    )
    .service(resource("/attachments/{id}/action").route(web::post().to(action)));
}

fn status_of(a: &Attachment) -> &'static str {
    if a.detaching {
        "detaching"
    } else if a.attached {
        "attached"
    } else if a.host.is_empty() {
        "reserved"
    } else {
        "attaching"
    }
}

fn attachment_json(
    vols: &Volumes,
    row: &VolumeRow,
    id: &str,
    a: &Attachment,
    detail: bool,
) -> Value {
    let mut out = json!({
        "id": id,
        "status": status_of(a),
        "instance": super::nullable(&a.server_id),
        "volume_id": row.id,
    });
    if detail {
        out["attached_at"] = row.attached_at.get(id).map_or(Value::Null, |t| json!(t));
        out["detached_at"] = Value::Null;
        out["attach_mode"] = json!(if a.mode.is_empty() {
            "rw"
        } else {
            a.mode.as_str()
        });
        out["connection_info"] = if a.attached || !a.host.is_empty() {
            vols.connection_info(row)
        } else {
            json!({})
        };
    }
    out
}

/// Every attachment `caller` may see (with `all_tenants`, an admin sees every project's).
fn visible(
    vols: &Volumes,
    caller: &Caller,
    all_tenants: bool,
) -> Vec<(VolumeRow, String, Attachment)> {
    let view = vols.view.snapshot();
    view.volumes
        .values()
        .filter(|v| (caller.is_admin && all_tenants) || v.state.project_id == caller.project_id)
        .flat_map(|v| {
            v.state
                .attachments
                .iter()
                .map(move |(id, a)| (v.clone(), id.clone(), a.clone()))
        })
        .collect()
}

/// Attachment `id` (its volume must be the caller's, or any for admins).
fn find(vols: &Volumes, caller: &Caller, id: &str) -> Result<(VolumeRow, Attachment), CinderError> {
    let view = vols.view.snapshot();
    view.volumes
        .values()
        .filter(|v| caller.is_admin || v.state.project_id == caller.project_id)
        .find_map(|v| v.state.attachments.get(id).map(|a| (v.clone(), a.clone())))
        .ok_or_else(|| {
            CinderError::not_found(format!(
                "Volume attachment could not be found with filter: attachment_id = {id}."
            ))
        })
}

fn listing(
    vols: &Volumes,
    caller: &Caller,
    req: &HttpRequest,
    mv: Microversion,
    detail: bool,
) -> Result<HttpResponse, CinderError> {
    require(mv, 27)?;
    let q = crate::common::query_pairs(req);
    super::check_filters(
        caller,
        mv,
        &q,
        &["volume_id", "status", "instance_id", "attach_status"],
    )?;
    let get = |k: &str| query_value(&q, k);
    let all_tenants = query_flag(&q, "all_tenants")?;
    let mut rows = visible(vols, caller, all_tenants);
    rows.retain(|(v, _, a)| {
        get("volume_id").is_none_or(|x| x == v.id)
            && get("instance_id").is_none_or(|x| x == a.server_id)
            && get("status")
                .or(get("attach_status"))
                .is_none_or(|x| x == status_of(a))
    });
    rows.sort_by(|a, b| a.1.cmp(&b.1));
    let items: Vec<Value> = rows
        .iter()
        .map(|(v, id, a)| attachment_json(vols, v, id, a, detail))
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "attachments": items })))
}

async fn show(
    vols: web::Data<Volumes>,
    caller: Caller,
    req: HttpRequest,
    mv: Microversion,
) -> Result<HttpResponse, CinderError> {
    require(mv, 27)?;
    let id = param(&req, "id");
    let (v, a) = find(&vols, &caller, &id)?;
    Ok(HttpResponse::Ok().json(json!({ "attachment": attachment_json(&vols, &v, &id, &a, true) })))
}

fn connector(m: &Map<String, Value>) -> Result<Option<&Map<String, Value>>, CinderError> {
    match m.get("connector") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(c)) => Ok(Some(c)),
        Some(other) => Err(super::invalid_field(
            "connector",
            other,
            "is not of type 'object'",
        )),
    }
}

async fn create(
    vols: web::Data<Volumes>,
    caller: Caller,
    mv: Microversion,
    body: web::Bytes,
) -> Result<HttpResponse, CinderError> {
    caller.enforce("volume:attachment_create")?;
    require(mv, 27)?;
    let v = parse_json(&body)?;
    let m = body_object(&v, "attachment")?;
    let volume_id = m
        .get("volume_uuid")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            CinderError::bad_request(
                "Invalid input for field/attribute attachment. 'volume_uuid' is a required property",
            )
        })?
        .to_string();
    let server_id = match m.get("instance_uuid") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => {
            return Err(super::invalid_field(
                "instance_uuid",
                other,
                "is not a string",
            ))
        }
    };
    let connector = connector(m)?;
    let mode = match m.get("mode").filter(|_| mv.at_least(54)) {
        None | Some(Value::Null) => connector
            .and_then(|c| c.get("mode"))
            .and_then(Value::as_str)
            .unwrap_or("rw")
            .to_string(),
        Some(Value::String(s)) if s == "rw" || s == "ro" => s.clone(),
        Some(other) => {
            return Err(CinderError::bad_request(format!(
                "Invalid attachment mode {other}: it must be 'rw' or 'ro'."
            )))
        }
    };
    let row = vols.volume(&caller, &volume_id)?;
    let text = |k: &str| {
        connector
            .and_then(|c| c.get(k))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let id = uuid::Uuid::new_v4().to_string();
    let cmd = VolumeCommand::Attach {
        attachment_id: id.clone(),
        server_id,
        host: text("host"),
        mountpoint: text("mountpoint"),
        mode,
        complete: false,
    };
    vols.run(&vols.volumes, &row.id, cmd, &caller.meta).await?;
    let (v, a) = find(&vols, &caller, &id)?;
    Ok(HttpResponse::Ok().json(json!({ "attachment": attachment_json(&vols, &v, &id, &a, true) })))
}

async fn update(
    vols: web::Data<Volumes>,
    caller: Caller,
    req: HttpRequest,
    mv: Microversion,
    body: web::Bytes,
) -> Result<HttpResponse, CinderError> {
    caller.enforce("volume:attachment_update")?;
    require(mv, 27)?;
    let id = param(&req, "id");
    let v = parse_json(&body)?;
    let m = body_object(&v, "attachment")?;
    if connector(m)?.is_none() {
        return Err(CinderError::bad_request(
            "Invalid input for field/attribute attachment. 'connector' is a required property",
        ));
    }
    let (row, a) = find(&vols, &caller, &id)?;
    let mut out = attachment_json(&vols, &row, &id, &a, true);
    out["connection_info"] = vols.connection_info(&row);
    Ok(HttpResponse::Ok().json(json!({ "attachment": out })))
}

async fn delete(
    vols: web::Data<Volumes>,
    caller: Caller,
    req: HttpRequest,
    mv: Microversion,
) -> Result<HttpResponse, CinderError> {
    caller.enforce("volume:attachment_delete")?;
    require(mv, 27)?;
    let id = param(&req, "id");
    let (row, _) = find(&vols, &caller, &id)?;
    vols.run(
        &vols.volumes,
        &row.id,
        VolumeCommand::Detach {
            attachment_id: id.clone(),
        },
        &caller.meta,
    )
    .await?;
    // Cinder answers with the volume's remaining attachments.
    let rest: Vec<Value> = {
        let view = vols.view.snapshot();
        view.volume(&row.id)
            .map(|v| {
                v.state
                    .attachments
                    .iter()
                    .map(|(aid, a)| attachment_json(&vols, v, aid, a, false))
                    .collect()
            })
            .unwrap_or_default()
    };
    Ok(HttpResponse::Ok().json(json!({ "attachments": rest })))
}

async fn action(
    vols: web::Data<Volumes>,
    caller: Caller,
    req: HttpRequest,
    mv: Microversion,
    body: web::Bytes,
) -> Result<HttpResponse, CinderError> {
    caller.enforce("volume:attachment_complete")?;
    require(mv, 44)?;
    let id = param(&req, "id");
    let v = parse_json(&body)?;
    if v.get("os-complete").is_none() {
        return Err(CinderError::bad_request("There is no such action"));
    }
    let (row, a) = find(&vols, &caller, &id)?;
    vols.run(
        &vols.volumes,
        &row.id,
        VolumeCommand::CompleteAttachment {
            attachment_id: id.clone(),
            mountpoint: a.mountpoint.clone(),
        },
        &caller.meta,
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}
