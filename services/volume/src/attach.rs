//! The legacy attach flow Nova drove before the attachments API (`os-reserve`, `os-attach`,
//! `os-begin_detaching`, `os-detach` ...): which state a volume must be in for each step, and the commands
//! each step records on the volume's stream. The HTTP layer parses the action's body and calls these.

use serde_json::{json, Value};
use strata_actors::volume::{status as st, VolumeCommand};
use strata_projections::volume::VolumeRow;
use strata_service::Caller;

use crate::service::Volumes;
use crate::VolumeError;

/// Where `os-attach` attaches the volume: a server, or a host by name; `mode` is `rw` or `ro`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachTarget {
    pub server_id: String,
    pub host: String,
    pub mountpoint: String,
    pub mode: String,
}

/// Cinder's refusal of a detach from a volume that is not attached.
pub fn cannot_detach() -> VolumeError {
    VolumeError::invalid_volume(
        "Unable to detach volume. Volume status must be 'in-use' and attach_status must be 'attached' to detach.",
    )
}

impl Volumes {
    async fn run_on_volume(
        &self,
        caller: &Caller,
        row: &VolumeRow,
        cmd: VolumeCommand,
    ) -> Result<(), VolumeError> {
        self.run(&self.volumes, &row.id, cmd, &caller.meta).await?;
        Ok(())
    }

    /// `os-reserve`: an attachment held for a server that is not named yet (the volume shows `attaching`).
    pub async fn reserve(&self, caller: &Caller, row: &VolumeRow) -> Result<(), VolumeError> {
        let v = &row.state;
        if !(v.status == st::AVAILABLE || (v.multiattach && v.status == st::IN_USE)) {
            let expected = if v.multiattach {
                "(available, in-use)"
            } else {
                "available"
            };
            return Err(VolumeError::invalid_volume(format!(
                "Volume status must be {expected} to reserve, but the status is {}.",
                v.status
            )));
        }
        let cmd = VolumeCommand::Attach {
            attachment_id: uuid::Uuid::new_v4().to_string(),
            server_id: String::new(),
            host: String::new(),
            mountpoint: String::new(),
            mode: "rw".into(),
            complete: false,
        };
        self.run_on_volume(caller, row, cmd).await
    }

    /// `os-unreserve`: every reservation (attachment not completed) goes away.
    pub async fn unreserve(&self, caller: &Caller, row: &VolumeRow) -> Result<(), VolumeError> {
        for (id, a) in &row.state.attachments {
            if !a.attached {
                self.detach_attachment(caller, row, id).await?;
            }
        }
        Ok(())
    }

    /// `os-attach`: the volume attached to a server (or a host); a reservation made for it is replaced.
    pub async fn attach_legacy(
        &self,
        caller: &Caller,
        row: &VolumeRow,
        target: AttachTarget,
    ) -> Result<(), VolumeError> {
        if row.state.readonly && target.mode == "rw" {
            return Err(VolumeError::invalid_volume(format!(
                "Volume {} is read-only: it can only be attached in 'ro' mode.",
                row.id
            )));
        }
        for (id, a) in &row.state.attachments {
            if !a.attached && (a.server_id.is_empty() || a.server_id == target.server_id) {
                self.detach_attachment(caller, row, id).await?;
            }
        }
        let cmd = VolumeCommand::Attach {
            attachment_id: uuid::Uuid::new_v4().to_string(),
            server_id: target.server_id,
            host: target.host,
            mountpoint: target.mountpoint,
            mode: target.mode,
            complete: true,
        };
        self.run_on_volume(caller, row, cmd).await
    }

    /// `os-begin_detaching`: an attached volume shows `detaching`.
    pub async fn begin_detaching(
        &self,
        caller: &Caller,
        row: &VolumeRow,
    ) -> Result<(), VolumeError> {
        if row.state.status != st::IN_USE || row.state.attach_status() != "attached" {
            return Err(cannot_detach());
        }
        let cmd = VolumeCommand::BeginDetaching {
            attachment_id: None,
        };
        self.run_on_volume(caller, row, cmd).await
    }

    /// `os-roll_detaching`: a volume left `detaching` goes back to `in-use`.
    pub async fn roll_detaching(
        &self,
        caller: &Caller,
        row: &VolumeRow,
    ) -> Result<(), VolumeError> {
        self.run_on_volume(caller, row, VolumeCommand::RollDetaching)
            .await
    }

    /// `os-detach` / `os-force_detach`: one attachment (named, or the only one) goes away; forced, every
    /// attachment whatever the volume's state.
    pub async fn detach_legacy(
        &self,
        caller: &Caller,
        row: &VolumeRow,
        attachment_id: Option<String>,
        force: bool,
    ) -> Result<(), VolumeError> {
        let v = &row.state;
        let detachable = matches!(v.status.as_str(), st::IN_USE | st::DETACHING);
        if !force && (!detachable || v.attach_status() != "attached") {
            return Err(cannot_detach());
        }
        let ids: Vec<String> = match attachment_id {
            Some(a) => {
                if !v.attachments.contains_key(&a) {
                    return Err(VolumeError::not_found(format!(
                        "Volume attachment could not be found with filter: attachment_id = {a}."
                    )));
                }
                vec![a]
            }
            None if force || v.attachments.len() == 1 => v.attachments.keys().cloned().collect(),
            None => return Err(VolumeError::invalid_volume(
                "Detach volume failed: More than one attachment, but no attachment_id provided.",
            )),
        };
        for id in ids {
            self.detach_attachment(caller, row, &id).await?;
        }
        Ok(())
    }

    async fn detach_attachment(
        &self,
        caller: &Caller,
        row: &VolumeRow,
        attachment_id: &str,
    ) -> Result<(), VolumeError> {
        let cmd = VolumeCommand::Detach {
            attachment_id: attachment_id.to_string(),
        };
        self.run_on_volume(caller, row, cmd).await
    }

    /// How a host reaches the volume: its file on the backend (`driver_volume_type` is the backend's
    /// driver, `format` the backend's volume format).
    pub fn connection_info(&self, row: &VolumeRow) -> Value {
        let v = &row.state;
        let (driver, format) = {
            let view = self.view.snapshot();
            view.backends
                .get(crate::engine::backend_of(&v.host))
                .map(|b| {
                    (
                        b.state.driver.clone(),
                        b.state
                            .capabilities
                            .get("volume_format")
                            .cloned()
                            .unwrap_or_else(|| "raw".into()),
                    )
                })
                .unwrap_or_else(|| ("file".into(), "raw".into()))
        };
        json!({
            "driver_volume_type": driver,
            "data": {
                "volume_id": row.id,
                "path": v.provider_location,
                "device_path": v.provider_location,
                "format": format,
                "access_mode": if v.readonly { "ro" } else { "rw" },
                "encrypted": false,
            },
        })
    }
}
