//! `/v2.1/servers/{id}/os-volume_attachments`: attach and detach Cinder volumes. The volume's attachment
//! (on its `volume-<id>` stream) is the record both services show: Nova lists a server's attachments from
//! the volume view, Cinder shows the server on the volume. Attaching reserves (volume `attaching`), plugs the
//! volume into the server's hypervisor, then completes (`in-use`); detaching unplugs and deletes the
//! attachment (`available`).

use actix_web::{web, HttpResponse};
use serde_json::{json, Value};
use strata_actors::volume::VolumeCommand;
use strata_projections::volume::VolumeView;

use super::{Caller, Compute, Microversion, NovaError};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/v2.1/servers/{id}/os-volume_attachments")
            .route(web::get().to(list))
            .route(web::post().to(attach)),
    )
    .service(
        web::resource("/v2.1/servers/{id}/os-volume_attachments/{volume_id}")
            .route(web::get().to(show))
            .route(web::delete().to(detach)),
    );
}

/// (attachment id, volume id, device) of every volume attached to `server_id`.
pub fn attachments_of(view: &VolumeView, server_id: &str) -> Vec<(String, String, String)> {
    let mut out: Vec<(String, String, String)> = view
        .volumes
        .values()
        .flat_map(|v| {
            v.state
                .attachments
                .iter()
                .filter(|(_, a)| a.server_id == server_id)
                .map(|(aid, a)| (aid.clone(), v.id.clone(), a.mountpoint.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    out.sort_by(|a, b| a.2.cmp(&b.2));
    out
}

fn attachment_json(mv: Microversion, server_id: &str, a: &(String, String, String)) -> Value {
    let mut v = json!({
        "id": a.1,
        "serverId": server_id,
        "volumeId": a.1,
        "device": a.2,
    });
    if mv.0 >= 70 {
        v["tag"] = Value::Null;
    }
    if mv.0 >= 79 {
        v["delete_on_termination"] = json!(false);
    }
    v
}

fn server_row(
    compute: &Compute,
    caller: &Caller,
    id: &str,
) -> Result<strata_projections::compute::ServerRow, NovaError> {
    let view = compute.view.read();
    match view.server(id) {
        Some(r) if caller.is_admin || r.state.project_id == caller.project_id => Ok(r.clone()),
        _ => Err(NovaError::not_found(format!(
            "Instance {id} could not be found."
        ))),
    }
}

async fn list(
    compute: web::Data<Compute>,
    caller: Caller,
    mv: Microversion,
    path: web::Path<String>,
) -> Result<HttpResponse, NovaError> {
    let id = path.into_inner();
    server_row(&compute, &caller, &id)?;
    let list = attachments_of(&compute.volume_view.read(), &id);
    let body: Vec<Value> = list.iter().map(|a| attachment_json(mv, &id, a)).collect();
    Ok(HttpResponse::Ok().json(json!({ "volumeAttachments": body })))
}

async fn show(
    compute: web::Data<Compute>,
    caller: Caller,
    mv: Microversion,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, NovaError> {
    let (id, volume_id) = path.into_inner();
    server_row(&compute, &caller, &id)?;
    let list = attachments_of(&compute.volume_view.read(), &id);
    let a = list
        .iter()
        .find(|a| a.1 == volume_id)
        .ok_or_else(|| NovaError::not_found(format!("volume_id not found: {volume_id}")))?;
    Ok(HttpResponse::Ok().json(json!({ "volumeAttachment": attachment_json(mv, &id, a) })))
}

/// The next free device name (`/dev/vdb`, `/dev/vdc`, ...; `/dev/vda` is the root disk).
fn next_device(used: &[String]) -> String {
    (b'b'..=b'z')
        .map(|c| format!("/dev/vd{}", c as char))
        .find(|d| !used.contains(d))
        .unwrap_or_else(|| "/dev/vdzz".into())
}

async fn attach(
    compute: web::Data<Compute>,
    caller: Caller,
    mv: Microversion,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, NovaError> {
    let id = path.into_inner();
    let server = server_row(&compute, &caller, &id)?;
    let v: Value = serde_json::from_slice(&body)
        .map_err(|e| NovaError::bad_request(format!("Malformed request body: {e}")))?;
    let a = v
        .get("volumeAttachment")
        .and_then(Value::as_object)
        .ok_or_else(|| NovaError::bad_request("Invalid input for field/attribute volumeAttachment. 'volumeAttachment' is a required property"))?;
    let volume_id = a
        .get("volumeId")
        .and_then(Value::as_str)
        .ok_or_else(|| NovaError::bad_request("Invalid input for field/attribute volumeAttachment. 'volumeId' is a required property"))?
        .to_string();
    let device = a.get("device").and_then(Value::as_str).map(str::to_string);
    {
        let vv = compute.volume_view.read();
        match vv.volume(&volume_id) {
            Some(vol) if caller.is_admin || vol.state.project_id == caller.project_id => {}
            _ => {
                return Err(NovaError::not_found(format!(
                    "Volume {volume_id} could not be found."
                )))
            }
        }
    }
    let s = &server.state;
    if !matches!(
        s.vm_state.as_str(),
        "active" | "stopped" | "paused" | "suspended"
    ) || !s.task_state.is_empty()
    {
        return Err(NovaError::conflict(format!(
            "Cannot 'attach_volume' instance {id} while it is in vm_state {}",
            s.vm_state
        )));
    }
    if s.locked && !caller.is_admin {
        return Err(NovaError::conflict(format!("Instance {id} is locked")));
    }
    let used: Vec<String> = attachments_of(&compute.volume_view.read(), &id)
        .into_iter()
        .map(|a| a.2)
        .collect();
    let device = match device {
        Some(d) if used.contains(&d) => {
            return Err(NovaError::bad_request(format!(
                "The supplied device path ({d}) is in use."
            )))
        }
        Some(d) => d,
        None => next_device(&used),
    };
    let attachment_id = uuid::Uuid::new_v4().to_string();
    // Reserve (the volume is `attaching`), plug it in on the hypervisor, then complete (`in-use`).
    compute
        .run_volume(
            &volume_id,
            VolumeCommand::Attach {
                attachment_id: attachment_id.clone(),
                server_id: id.clone(),
                host: s.host.clone(),
                mountpoint: device.clone(),
                mode: "rw".into(),
                complete: false,
            },
            &caller.meta,
        )
        .await
        .map_err(|e| NovaError::bad_request(e.message))?;
    let plugged = match compute.engine.agent(&s.host) {
        Some(agent) => agent
            .driver
            .attach_volume(&id, &volume_id, &device)
            .await
            .map_err(|e| e.to_string()),
        None => Err(format!("Compute host {} is not available", s.host)),
    };
    if let Err(e) = plugged {
        let _ = compute
            .run_volume(
                &volume_id,
                VolumeCommand::Detach {
                    attachment_id: attachment_id.clone(),
                },
                &caller.meta,
            )
            .await;
        return Err(NovaError::new(
            actix_web::http::StatusCode::INTERNAL_SERVER_ERROR,
            format!("Attaching the volume failed: {e}"),
        ));
    }
    compute
        .run_volume(
            &volume_id,
            VolumeCommand::CompleteAttachment {
                attachment_id,
                mountpoint: device.clone(),
            },
            &caller.meta,
        )
        .await?;
    let a = (String::new(), volume_id, device);
    Ok(HttpResponse::Ok().json(json!({ "volumeAttachment": attachment_json(mv, &id, &a) })))
}

async fn detach(
    compute: web::Data<Compute>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, NovaError> {
    let (id, volume_id) = path.into_inner();
    let server = server_row(&compute, &caller, &id)?;
    if server.state.locked && !caller.is_admin {
        return Err(NovaError::conflict(format!("Instance {id} is locked")));
    }
    detach_one(&compute, &caller.meta, &id, &server.state.host, &volume_id).await?;
    Ok(HttpResponse::Accepted().finish())
}

/// Unplug `volume_id` from server `id` on `host` and delete its attachment.
pub async fn detach_one(
    compute: &Compute,
    meta: &strata_events::Metadata,
    id: &str,
    host: &str,
    volume_id: &str,
) -> Result<(), NovaError> {
    let attachment = attachments_of(&compute.volume_view.read(), id)
        .into_iter()
        .find(|a| a.1 == volume_id)
        .ok_or_else(|| NovaError::not_found(format!("volume_id not found: {volume_id}")))?;
    if let Some(agent) = compute.engine.agent(host) {
        let _ = agent.driver.detach_volume(id, volume_id).await;
    }
    compute
        .run_volume(
            volume_id,
            VolumeCommand::Detach {
                attachment_id: attachment.0,
            },
            meta,
        )
        .await?;
    Ok(())
}
