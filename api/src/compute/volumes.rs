//! `/v2.1/servers/{id}/os-volume_attachments` (list, show, attach, detach) and the `block_device_mapping_v2`
//! of a server create, the HTTP side: parsing, the checks the views can decide (server state, lock, device
//! names, sources), rendering. The attach and detach flows are the compute service's
//! (`strata_compute::service::attach_volume`, `detach_volume`); Nova lists a server's attachments from the
//! volume view, where the attachment lives on the volume's stream.

use actix_web::{web, HttpResponse};
use serde_json::{json, Value};
use strata_actors::compute::BlockDevice;
use strata_projections::volume::VolumeView;

use super::common::{check_settled, check_unlocked, hypervisor_failure, parse_json, server_row};
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

fn attachment_json(
    mv: Microversion,
    server_id: &str,
    a: &(String, String, String),
    delete_on_termination: bool,
) -> Value {
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
        v["delete_on_termination"] = json!(delete_on_termination);
    }
    v
}

async fn list(
    compute: web::Data<Compute>,
    caller: Caller,
    mv: Microversion,
    path: web::Path<String>,
) -> Result<HttpResponse, NovaError> {
    let id = path.into_inner();
    let server = server_row(&compute, &caller, &id)?;
    let list = attachments_of(&compute.volume_view.snapshot(), &id);
    let body: Vec<Value> = list
        .iter()
        .map(|a| attachment_json(mv, &id, a, deletes_with(&server.state, &a.1)))
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "volumeAttachments": body })))
}

async fn show(
    compute: web::Data<Compute>,
    caller: Caller,
    mv: Microversion,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, NovaError> {
    let (id, volume_id) = path.into_inner();
    let server = server_row(&compute, &caller, &id)?;
    let list = attachments_of(&compute.volume_view.snapshot(), &id);
    let a = list
        .iter()
        .find(|a| a.1 == volume_id)
        .ok_or_else(|| NovaError::not_found(format!("volume_id not found: {volume_id}")))?;
    let dot = deletes_with(&server.state, &volume_id);
    Ok(HttpResponse::Ok().json(json!({ "volumeAttachment": attachment_json(mv, &id, a, dot) })))
}

/// Whether the server deletes this volume when it is deleted (a boot mapping's delete_on_termination).
pub(super) fn deletes_with(server: &strata_actors::compute::Server, volume_id: &str) -> bool {
    server
        .block_devices
        .iter()
        .any(|b| b.volume_id == volume_id && b.delete_on_termination)
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
    caller.enforce(
        "os_compute_api:os-volumes-attachments:create",
        &server.state.project_id,
    )?;
    let v = parse_json(&body)?;
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
        let vv = compute.volume_view.snapshot();
        match vv.volume(&volume_id) {
            Some(vol) if caller.is_admin || vol.state.project_id == caller.project_id => {}
            _ => {
                return Err(NovaError::not_found(format!(
                    "Volume {volume_id} could not be found."
                )))
            }
        }
    }
    check_settled(&server, "attach_volume")?;
    check_unlocked(&server, &caller)?;
    let used: Vec<String> = attachments_of(&compute.volume_view.snapshot(), &id)
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
    strata_compute::service::attach_volume(&compute, &caller, &server, &volume_id, &device)
        .await
        .map_err(hypervisor_failure("Attaching the volume failed".into()))?;
    let a = (String::new(), volume_id, device);
    Ok(HttpResponse::Ok().json(json!({ "volumeAttachment": attachment_json(mv, &id, &a, false) })))
}

async fn detach(
    compute: web::Data<Compute>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, NovaError> {
    let (id, volume_id) = path.into_inner();
    let server = server_row(&compute, &caller, &id)?;
    caller.enforce(
        "os_compute_api:os-volumes-attachments:delete",
        &server.state.project_id,
    )?;
    check_unlocked(&server, &caller)?;
    detach_one(&compute, &caller.meta, &id, &server.state.host, &volume_id).await?;
    Ok(HttpResponse::Accepted().finish())
}

/// Unplug `volume_id` from server `id` on `host` and delete its attachment.
async fn detach_one(
    compute: &Compute,
    meta: &strata_events::Metadata,
    id: &str,
    host: &str,
    volume_id: &str,
) -> Result<(), NovaError> {
    let attachment = attachments_of(&compute.volume_view.snapshot(), id)
        .into_iter()
        .find(|a| a.1 == volume_id)
        .ok_or_else(|| NovaError::not_found(format!("volume_id not found: {volume_id}")))?;
    strata_compute::service::detach_volume(compute, meta, id, host, volume_id, &attachment.0)
        .await
        .map_err(hypervisor_failure("Detaching the volume failed".into()))
}

// ---------------------------------------------------------------------------------------------------------
// Boot from volume: `block_device_mapping_v2` of a server create.

/// What a create request's `block_device_mapping_v2` asks for.
#[derive(Debug, Default)]
pub struct BootDisks {
    /// A local image root disk named by the mapping (`source_type` image, `destination_type` local).
    pub image: Option<String>,
    /// Cinder volumes, the boot volume (if any) first; new ones have no `volume_id` yet.
    pub volumes: Vec<BlockDevice>,
}

impl BootDisks {
    pub fn boot_volume(&self) -> bool {
        self.volumes.iter().any(|b| b.boot_index == 0)
    }
}

fn bdm_invalid(detail: impl std::fmt::Display) -> NovaError {
    NovaError::bad_request(format!("Block Device Mapping is Invalid: {detail}"))
}

fn bdm_int(m: &serde_json::Map<String, Value>, key: &str) -> Result<Option<i64>, NovaError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| bdm_invalid(format!("{key} must be an integer"))),
        Some(Value::String(s)) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| bdm_invalid(format!("{key} must be an integer"))),
        Some(_) => Err(bdm_invalid(format!("{key} must be an integer"))),
    }
}

/// Read `block_device_mapping_v2` (Nova's rules: one boot device, sources that exist for the caller and are
/// usable). Local blank disks (swap, ephemeral) come from the flavor and are accepted as such.
pub fn boot_disks(
    compute: &Compute,
    caller: &Caller,
    server: &serde_json::Map<String, Value>,
) -> Result<BootDisks, NovaError> {
    let mut out = BootDisks::default();
    if server.contains_key("block_device_mapping") {
        return Err(bdm_invalid(
            "the legacy block_device_mapping is not supported; use block_device_mapping_v2",
        ));
    }
    let Some(list) = server.get("block_device_mapping_v2") else {
        return Ok(out);
    };
    let list = list
        .as_array()
        .ok_or_else(|| bdm_invalid("block_device_mapping_v2 must be a list"))?;
    let mut boots = 0;
    for entry in list {
        let m = entry
            .as_object()
            .ok_or_else(|| bdm_invalid("each mapping must be an object"))?;
        let text = |k: &str| m.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let source = text("source_type");
        let uuid = text("uuid");
        let destination = match text("destination_type") {
            d if d.is_empty() && matches!(source.as_str(), "image" | "blank") => {
                "local".to_string()
            }
            d if d.is_empty() => "volume".to_string(),
            d => d,
        };
        let boot_index = bdm_int(m, "boot_index")?.unwrap_or(-1);
        let boot_index = i32::try_from(boot_index).map_err(|_| bdm_invalid("bad boot_index"))?;
        if boot_index == 0 {
            boots += 1;
        }
        let size = bdm_int(m, "volume_size")?;
        if size.is_some_and(|s| s < 1) {
            return Err(bdm_invalid("volume_size must be at least 1"));
        }
        let delete_on_termination = match m.get("delete_on_termination") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => {
                matches!(s.to_ascii_lowercase().as_str(), "true" | "1" | "yes")
            }
            Some(_) => return Err(bdm_invalid("delete_on_termination must be a boolean")),
        };
        match (source.as_str(), destination.as_str()) {
            ("image", "local") => {
                if boot_index == 0 {
                    out.image = Some(uuid);
                }
                continue;
            }
            ("blank", "local") => continue,
            (_, "local") => {
                return Err(bdm_invalid(format!(
                    "source_type {source} cannot have destination_type local"
                )))
            }
            (_, "volume") => {}
            (_, other) => return Err(bdm_invalid(format!("unknown destination_type {other}"))),
        }
        let mut dev = BlockDevice {
            source_type: source.clone(),
            boot_index,
            delete_on_termination,
            device_name: text("device_name"),
            ..BlockDevice::default()
        };
        match source.as_str() {
            "volume" => {
                let vv = compute.volume_view.snapshot();
                let vol = vv
                    .volume(&uuid)
                    .filter(|v| caller.is_admin || v.state.project_id == caller.project_id)
                    .ok_or_else(|| bdm_invalid(format!("failed to get volume {uuid}.")))?;
                let usable = vol.state.status == "available"
                    || (vol.state.multiattach && vol.state.status == "in-use");
                if !usable {
                    return Err(NovaError::bad_request(format!(
                        "Invalid volume: volume '{uuid}' status must be 'available'. Currently in '{}'",
                        vol.state.status
                    )));
                }
                dev.volume_id = uuid;
                dev.size_gb = vol.state.size_gb;
            }
            "snapshot" => {
                let vv = compute.volume_view.snapshot();
                let snap = vv
                    .snapshots
                    .get(&uuid)
                    .filter(|s| caller.is_admin || s.state.project_id == caller.project_id)
                    .ok_or_else(|| bdm_invalid(format!("failed to get snapshot {uuid}.")))?;
                dev.size_gb = size.map_or(snap.state.size_gb, |s| s as u64);
                dev.source_id = uuid;
            }
            "image" => {
                let iv = compute.images.snapshot();
                let img = iv
                    .image(&uuid)
                    .filter(|i| caller.is_admin || i.readable_by(&caller.project_id))
                    .ok_or_else(|| bdm_invalid(format!("failed to get image {uuid}.")))?;
                let image_gb = img
                    .virtual_size
                    .or(img.size)
                    .unwrap_or(0)
                    .div_ceil(1 << 30)
                    .max(img.min_disk)
                    .max(1);
                dev.size_gb = size.map_or(image_gb, |s| s as u64);
                dev.source_id = uuid;
            }
            "blank" => {
                dev.size_gb =
                    size.ok_or_else(|| bdm_invalid("a blank volume needs volume_size"))? as u64;
            }
            other => return Err(bdm_invalid(format!("unknown source_type {other}"))),
        }
        out.volumes.push(dev);
    }
    if boots > 1 {
        return Err(bdm_invalid(
            "Boot sequence for the instance and image/block device mapping combination is not valid.",
        ));
    }
    // The boot volume first, then the others in their given order; devices named in order.
    out.volumes.sort_by_key(|b| b.boot_index != 0);
    let mut used: Vec<String> = out
        .volumes
        .iter()
        .map(|b| b.device_name.clone())
        .filter(|d| !d.is_empty())
        .collect();
    for b in &mut out.volumes {
        if b.device_name.is_empty() {
            b.device_name = if b.boot_index == 0 && !used.iter().any(|d| d == "/dev/vda") {
                "/dev/vda".to_string()
            } else {
                next_device(&used)
            };
            used.push(b.device_name.clone());
        }
    }
    Ok(out)
}

/// Cinder's refusal of a boot volume as Nova words it: over quota is 403, the rest an invalid mapping.
pub fn boot_volume_error(e: strata_volume::VolumeError) -> NovaError {
    if matches!(e, strata_volume::VolumeError::OverQuota(_)) {
        NovaError::forbidden(format!("Volume quota exceeded: {}", e.message()))
    } else {
        bdm_invalid(e.message())
    }
}
