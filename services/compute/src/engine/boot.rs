//! The conductor's boot: schedule a new server (placement, claims, group policy), cache its image on
//! the host, spawn it, and bind its ports there.

use super::*;

impl Engine {
    pub(super) async fn schedule_boot(&self, id: &str, s: &Server) {
        let spec = RequestSpec {
            server_id: id.to_string(),
            flavor: local_flavor(s, &s.flavor),
            image_id: s.image_id.clone(),
            image_properties: self.image_properties(&s.image_id),
            availability_zone: s.requested_az.clone(),
            group_id: s.group_id.clone(),
            same_host: s.same_host.clone(),
            different_host: s.different_host.clone(),
            requested_host: s.requested_host.clone(),
            ignore_hosts: vec![],
        };
        match self.place(&spec, id, &spec.flavor).await {
            Ok(host) => {
                let az = {
                    let v = self.view.snapshot();
                    v.host_az(&host, &self.config.scheduler.default_availability_zone)
                };
                let ok = self
                    .step(
                        id,
                        s,
                        ServerCommand::Schedule {
                            host: host.clone(),
                            node: host.clone(),
                            availability_zone: az,
                        },
                    )
                    .await;
                if !ok {
                    // Deleted or changed meanwhile: give the claim back.
                    self.release_claim(&host, id).await;
                }
            }
            Err(details) => {
                // Nova's message is the reason's first sentence; the filter counts go to the details.
                let message = "No valid host was found. ".to_string()
                    + details
                        .find('.')
                        .map(|end| &details[..=end])
                        .unwrap_or("There are not enough hosts available.");
                if s.task_state == task::UNSHELVING {
                    // Stays shelved (offloaded); it holds an instance but no cores or RAM again.
                    self.reserve_usage(
                        s,
                        id,
                        Amounts {
                            instances: 1,
                            cores: 0,
                            ram: 0,
                        },
                    )
                    .await;
                    self.fail_task(id, s, format!("{message} {details}")).await;
                    return;
                }
                // The quota and the group place go back before the event that shows the failure.
                self.release_usage(s, id).await;
                self.leave_group(id, s).await;
                self.step(
                    id,
                    s,
                    ServerCommand::Fault {
                        task: s.task_state.clone(),
                        code: 500,
                        message: message.trim().to_string(),
                        details,
                        host_released: true,
                    },
                )
                .await;
            }
        }
    }

    pub(super) async fn leave_group(&self, id: &str, s: &Server) {
        if s.group_id.is_empty() {
            return;
        }
        if let Err(e) = self
            .groups
            .execute(
                &s.group_id,
                ServerGroupCommand::RemoveMember {
                    server_id: id.to_string(),
                },
                system_meta(&s.request_id),
            )
            .await
        {
            tracing::debug!(server = %id, error = %e, "server group membership not removed");
        }
    }

    /// Make sure the host has the image cached, recording the fill/hit/evictions.
    pub(super) async fn cache_image(&self, agent: &Agent, image_id: &str) -> Result<(), String> {
        if image_id.is_empty() {
            return Ok(());
        }
        let checksum = {
            let v = self.images.snapshot();
            match v.image(image_id) {
                Some(row) if row.status == "active" => row.checksum.clone(),
                Some(row) => {
                    return Err(format!(
                        "Image {image_id} is not active (status {})",
                        row.status
                    ))
                }
                None if agent.cache.contains(image_id) => String::new(),
                None => return Err(format!("Image {image_id} could not be found.")),
            }
        };
        let outcome = agent
            .cache
            .ensure(self.store.as_ref(), image_id, &checksum)
            .await?;
        let meta = system_meta(image_id);
        let mut cmds = Vec::new();
        match outcome {
            CacheOutcome::Hit => cmds.push(HostCommand::CacheHit {
                image_id: image_id.to_string(),
            }),
            CacheOutcome::Filled { size, evicted } => {
                cmds.push(HostCommand::ImageCached {
                    image_id: image_id.to_string(),
                    size,
                });
                cmds.extend(
                    evicted
                        .into_iter()
                        .map(|e| HostCommand::Evict { image_id: e }),
                );
            }
        }
        for cmd in cmds {
            if let Err(e) = self.hosts.execute(&agent.name, cmd, meta.clone()).await {
                tracing::warn!(host = %agent.name, error = %e, "could not record an image cache event");
            }
        }
        Ok(())
    }

    pub(super) async fn spawn(&self, id: &str, s: &Server) {
        let Some(agent) = self.agents.get(&s.host).cloned() else {
            tracing::debug!(server = %id, host = %s.host, "host not run by this node");
            return;
        };
        let result = async {
            self.cache_image(&agent, &s.image_id).await?;
            self.reserve_volumes(id, s).await?;
            agent
                .driver
                .spawn(&self.vm_spec(id, s, &s.flavor, &s.image_id))
                .await
                .map_err(|e| e.to_string())?;
            self.complete_volumes(id, s).await
        }
        .await;
        match result {
            Ok(()) => {
                self.step(
                    id,
                    s,
                    ServerCommand::Spawned {
                        power_state: power::RUNNING,
                    },
                )
                .await;
            }
            Err(e) => {
                // The VM, the volumes it reserved and the claim go first, then the event that shows the failure.
                let _ = agent.driver.destroy(id).await;
                self.unplug_reserved(id, s).await;
                self.release_claim(&s.host, id).await;
                self.step(
                    id,
                    s,
                    ServerCommand::Fault {
                        task: task::SPAWNING.into(),
                        code: 500,
                        message: format!("Build of instance {id} aborted: {e}"),
                        details: e.clone(),
                        host_released: true,
                    },
                )
                .await;
            }
        }
    }

    pub(super) async fn bind_ports(
        &self,
        id: &str,
        s: &Server,
        host: &str,
    ) -> Result<(), strata_network::NetworkError> {
        match self.network.get() {
            Some(networks) if !s.ports.is_empty() => {
                let caller = strata_service::Caller::system(&s.project_id, &s.request_id);
                strata_network::servers::bind_server_ports(networks, &caller, id, &s.ports, host)
                    .await
            }
            _ => Ok(()),
        }
    }
}
