//! A server's volumes (`os-volume_attachments`): the attachment is recorded on the volume's stream, so Nova
//! and Cinder show the same record. Attach: reserve (`attaching`), plug into the server's hypervisor,
//! complete (`in-use`); a failed plug removes the reservation. Detach: begin (`detaching`), unplug, delete
//! the attachment (`available`); a failed unplug rolls back to `in-use`. The caller checked the server's
//! state, lock, policy and the device name.

use strata_actors::volume::VolumeCommand;
use strata_events::Metadata;
use strata_projections::compute::ServerRow;
use strata_service::Caller;

use super::Compute;
use crate::driver::DriverError;
use crate::ComputeError;

/// Attach volume `volume_id` to server `server` as `device`.
pub async fn attach_volume(
    compute: &Compute,
    caller: &Caller,
    server: &ServerRow,
    volume_id: &str,
    device: &str,
) -> Result<(), ComputeError> {
    let id = &server.id;
    let host = &server.state.host;
    let attachment_id = uuid::Uuid::new_v4().to_string();
    compute
        .run_volume(
            volume_id,
            VolumeCommand::Attach {
                attachment_id: attachment_id.clone(),
                server_id: id.clone(),
                host: host.clone(),
                mountpoint: device.to_string(),
                mode: "rw".into(),
                complete: false,
            },
            &caller.meta,
        )
        .await
        .map_err(ComputeError::AttachRefused)?;
    let plugged = match compute.engine.agent(host) {
        Some(agent) => agent.driver.attach_volume(id, volume_id, device).await,
        None => Err(DriverError::Failed(format!(
            "Compute host {host} is not available"
        ))),
    };
    if let Err(e) = plugged {
        let _ = compute
            .run_volume(
                volume_id,
                VolumeCommand::Detach {
                    attachment_id: attachment_id.clone(),
                },
                &caller.meta,
            )
            .await;
        return Err(ComputeError::Hypervisor(e));
    }
    compute
        .run_volume(
            volume_id,
            VolumeCommand::CompleteAttachment {
                attachment_id,
                mountpoint: device.to_string(),
            },
            &caller.meta,
        )
        .await?;
    Ok(())
}

/// Unplug volume `volume_id` (attachment `attachment_id`) from server `server_id` on `host` and delete the
/// attachment.
pub async fn detach_volume(
    compute: &Compute,
    meta: &Metadata,
    server_id: &str,
    host: &str,
    volume_id: &str,
    attachment_id: &str,
) -> Result<(), ComputeError> {
    compute
        .run_volume(
            volume_id,
            VolumeCommand::BeginDetaching {
                attachment_id: Some(attachment_id.to_string()),
            },
            meta,
        )
        .await?;
    if let Some(agent) = compute.engine.agent(host) {
        // A server without a VM (shelved offloaded, not yet spawned) has nothing to unplug.
        let unplugged = match agent.driver.detach_volume(server_id, volume_id).await {
            Err(DriverError::NotFound(_)) => Ok(()),
            other => other,
        };
        if let Err(e) = unplugged {
            let _ = compute
                .run_volume(volume_id, VolumeCommand::RollDetaching, meta)
                .await;
            return Err(ComputeError::Hypervisor(e));
        }
    }
    compute
        .run_volume(
            volume_id,
            VolumeCommand::Detach {
                attachment_id: attachment_id.to_string(),
            },
            meta,
        )
        .await?;
    Ok(())
}
