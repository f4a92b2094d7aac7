//! The conductor's side of volumes: reserve, attach and release a server's volumes around its
//! life, with the host's driver plugging them.

use super::*;

impl Engine {
    pub(super) fn vm_spec(
        &self,
        id: &str,
        s: &Server,
        flavor: &FlavorSpec,
        image_id: &str,
    ) -> VmSpec {
        VmSpec {
            id: id.to_string(),
            name: s.name.clone(),
            vcpus: flavor.vcpus,
            ram_mb: flavor.ram_mb,
            disk_gb: local_flavor(s, flavor).host_disk_gb(),
            image_id: image_id.to_string(),
            metadata: s.metadata.clone(),
            volumes: self
                .plugged(id)
                .into_iter()
                .map(|p| (p.volume_id, p.device))
                .collect(),
            ports: s.ports.iter().map(|p| p.port_id.clone()).collect(),
        }
    }

    /// The server's volume attachments (reserved or complete), as the view shows them: the engine waits for
    /// the view after each of its own volume writes.
    pub(super) fn plugged(&self, server_id: &str) -> Vec<Plugged> {
        let Some(view) = self.volume_view.get() else {
            return vec![];
        };
        let v = view.snapshot();
        v.volumes
            .values()
            .flat_map(|row| {
                row.state
                    .attachments
                    .iter()
                    .filter(|(_, a)| a.server_id == server_id)
                    .map(|(aid, a)| Plugged {
                        attachment_id: aid.clone(),
                        volume_id: row.id.clone(),
                        device: a.mountpoint.clone(),
                        host: a.host.clone(),
                        attached: a.attached,
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    pub(super) async fn volume_step(
        &self,
        volume_id: &str,
        cmd: VolumeCommand,
        request_id: &str,
    ) -> Result<(), String> {
        let out = self
            .volumes
            .execute(volume_id, cmd, system_meta(request_id))
            .await
            .map_err(|e| format!("volume {volume_id}: {e}"))?;
        // The next step reads the attachments from the view: let it show this one.
        if let (Some(p), Some(view)) = (out.position, self.volume_view.get()) {
            view.wait_for(p, VIEW_WAIT).await;
        }
        Ok(())
    }

    /// Wait until each block device volume of a booting server is available (new ones are still being made
    /// by the volume service) and reserve its attachment (the volume shows `attaching`).
    pub(super) async fn reserve_volumes(&self, id: &str, s: &Server) -> Result<(), String> {
        if s.block_devices.is_empty() {
            return Ok(());
        }
        let deadline = tokio::time::Instant::now() + self.config.build_timeout;
        // Set right after the engine starts; a flow resumed at start may get here first.
        let view = loop {
            if let Some(view) = self.volume_view.get() {
                break view;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err("the block storage service is not running".into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        for b in &s.block_devices {
            loop {
                // The server's own state, not the view: the view may not show `spawning` yet when this
                // step runs right after it was recorded.
                let still_booting = match self.servers.load(id).await {
                    Ok((now, _)) => now.task_state == task::SPAWNING,
                    Err(e) => return Err(format!("reading the server: {e}")),
                };
                if !still_booting {
                    return Err("the server is no longer being built".into());
                }
                let volume = view
                    .snapshot()
                    .volume(&b.volume_id)
                    .map(|r| r.state.clone());
                match volume {
                    Some(v) if v.attachments.values().any(|a| a.server_id == id) => break,
                    Some(v)
                        if v.status == "available" || (v.multiattach && v.status == "in-use") =>
                    {
                        let cmd = VolumeCommand::Attach {
                            attachment_id: uuid::Uuid::new_v4().to_string(),
                            server_id: id.to_string(),
                            host: s.host.clone(),
                            mountpoint: b.device_name.clone(),
                            mode: "rw".into(),
                            complete: false,
                        };
                        self.volume_step(&b.volume_id, cmd, &s.request_id).await?;
                        break;
                    }
                    // Being made, or not in the view yet.
                    Some(v) if v.status == "creating" => {}
                    None => {}
                    Some(v) => {
                        return Err(format!(
                            "Volume {} is {} and cannot be attached{}",
                            b.volume_id,
                            v.status,
                            if v.fault.is_empty() {
                                String::new()
                            } else {
                                format!(": {}", v.fault)
                            }
                        ))
                    }
                }
                if tokio::time::Instant::now() >= deadline {
                    return Err(format!(
                        "Volume {} did not finish being created even after we waited {} seconds",
                        b.volume_id,
                        self.config.build_timeout.as_secs()
                    ));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }

    /// The hypervisor has the volumes: complete their attachments (`in-use`) on the server's host.
    pub(super) async fn complete_volumes(&self, id: &str, s: &Server) -> Result<(), String> {
        for p in self.plugged(id).into_iter().filter(|p| !p.attached) {
            let cmd = VolumeCommand::CompleteAttachment {
                attachment_id: p.attachment_id,
                mountpoint: p.device,
            };
            self.volume_step(&p.volume_id, cmd, &s.request_id).await?;
        }
        self.follow_server(id, s, &s.host).await;
        Ok(())
    }

    /// Record that the server's attachments and ports are on `host` now (after a move, an unshelve or a
    /// revert).
    pub(super) async fn follow_server(&self, id: &str, s: &Server, host: &str) {
        if let Err(e) = self.bind_ports(id, s, host).await {
            tracing::warn!(server = %id, error = %e, "could not bind the ports to the new host");
        }
        for p in self.plugged(id).into_iter().filter(|p| p.host != host) {
            let cmd = VolumeCommand::MoveAttachment {
                attachment_id: p.attachment_id,
                host: host.to_string(),
            };
            if let Err(e) = self.volume_step(&p.volume_id, cmd, &s.request_id).await {
                tracing::warn!(server = %id, error = %e, "could not move a volume attachment");
            }
        }
    }

    /// Give back the attachments a failed boot reserved (the volumes are `available` again).
    pub(super) async fn unplug_reserved(&self, id: &str, s: &Server) {
        for p in self.plugged(id).into_iter().filter(|p| !p.attached) {
            let cmd = VolumeCommand::Detach {
                attachment_id: p.attachment_id,
            };
            if let Err(e) = self.volume_step(&p.volume_id, cmd, &s.request_id).await {
                tracing::warn!(server = %id, error = %e, "could not release a volume attachment");
            }
        }
    }

    /// A deleted server's volumes are detached; those its block device mapping made with
    /// delete_on_termination are deleted.
    pub(super) async fn release_volumes(&self, id: &str, s: &Server) -> Result<(), String> {
        for p in self.plugged(id) {
            let cmd = VolumeCommand::Detach {
                attachment_id: p.attachment_id,
            };
            self.volume_step(&p.volume_id, cmd, &s.request_id).await?;
        }
        for b in s.block_devices.iter().filter(|b| b.delete_on_termination) {
            let live = match self.volumes.load(&b.volume_id).await {
                Ok((v, _)) => v.exists && !v.is_deleted() && v.status != "deleting",
                Err(e) => return Err(format!("volume {}: {e}", b.volume_id)),
            };
            if !live {
                continue;
            }
            let cmd = VolumeCommand::Begin {
                task: VolumeTask::Delete { force: true },
                request_id: s.request_id.clone(),
            };
            if let Err(e) = self.volume_step(&b.volume_id, cmd, &s.request_id).await {
                // Attached elsewhere meanwhile (multiattach): it stays.
                tracing::warn!(server = %id, error = %e, "a delete_on_termination volume stays");
            }
        }
        Ok(())
    }
}
