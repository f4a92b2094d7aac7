//! The compute host agents: register each host with its inventory, heartbeat, restore guests after
//! a restart, sync power states, and the periodic tasks (build expiry, usage audit, image precache).

use super::*;

impl Engine {
    pub(super) fn inventory(&self, stats: HostStats) -> Inventory {
        Inventory {
            vcpus: stats.vcpus,
            ram_mb: stats.ram_mb,
            disk_gb: stats.disk_gb,
            cpu_allocation_ratio: self.config.cpu_allocation_ratio,
            ram_allocation_ratio: self.config.ram_allocation_ratio,
            disk_allocation_ratio: self.config.disk_allocation_ratio,
        }
    }

    /// The resource tracker's report: register the host, or record a changed inventory.
    pub(super) async fn register(&self, agent: &Agent) {
        let cmd = HostCommand::Register {
            hypervisor_type: agent.driver.hypervisor_type().into(),
            host_ip: "127.0.0.1".into(),
            inventory: self.inventory(agent.driver.stats()),
            hypervisor_id: uuid::Uuid::new_v4().to_string(),
            service_id: uuid::Uuid::new_v4().to_string(),
        };
        if let Err(e) = self
            .hosts
            .execute(&agent.name, cmd, system_meta("resource-tracker"))
            .await
        {
            tracing::error!(host = %agent.name, error = %e, "could not register the compute host");
        }
    }

    pub(super) async fn heartbeat(&self, agent: &Agent) {
        if let Err(e) = self
            .hosts
            .execute(
                &agent.name,
                HostCommand::Heartbeat,
                system_meta("heartbeat"),
            )
            .await
        {
            tracing::warn!(host = %agent.name, error = %e, "heartbeat not recorded");
        }
    }

    /// The fake hypervisor keeps nothing across restarts: give it back the servers the log places on it.
    pub(super) async fn restore(&self, agent: &Agent) {
        let on_host: Vec<(String, Server)> = {
            let v = self.view.snapshot();
            v.servers_on(&agent.name)
                .filter(|s| s.state.launched)
                .map(|s| (s.id.clone(), s.state.clone()))
                .collect()
        };
        for (id, s) in on_host {
            let power_state = match s.vm_state.as_str() {
                vm::ACTIVE | vm::RESIZED => power::RUNNING,
                vm::PAUSED => power::PAUSED,
                vm::SUSPENDED => power::SUSPENDED,
                _ => power::SHUTDOWN,
            };
            let spec = self.vm_spec(&id, &s, &s.flavor, &s.image_id);
            if let Err(e) = agent.driver.migrate_in(&spec, power_state).await {
                tracing::warn!(server = %id, error = %e, "could not restore a fake VM");
            }
        }
    }

    /// Power-state sync: a VM whose hypervisor state differs from the record is recorded as it is.
    pub(super) async fn sync_power(&self, agent: &Agent) {
        let servers: Vec<(String, Server)> = {
            let v = self.view.snapshot();
            v.servers_on(&agent.name)
                .filter(|s| {
                    s.state.task_state.is_empty()
                        && matches!(
                            s.state.vm_state.as_str(),
                            vm::ACTIVE | vm::PAUSED | vm::SUSPENDED | vm::STOPPED
                        )
                })
                .map(|s| (s.id.clone(), s.state.clone()))
                .collect()
        };
        for (id, s) in servers {
            let actual = agent.driver.power_state(&id).unwrap_or(power::NOSTATE);
            if actual != s.power_state {
                tracing::info!(server = %id, recorded = s.power_state, actual, "power state sync");
                self.step(
                    &id,
                    &s,
                    ServerCommand::SyncPower {
                        power_state: actual,
                    },
                )
                .await;
            }
        }
    }

    /// Servers building past the build timeout end in ERROR.
    pub(super) async fn expire_builds(&self) {
        let limit =
            chrono::Duration::from_std(self.config.build_timeout).unwrap_or(chrono::Duration::MAX);
        let now = Utc::now();
        let expired: Vec<(String, Server)> = {
            let v = self.view.snapshot();
            v.servers
                .values()
                .filter(|s| s.state.vm_state == vm::BUILDING && now - s.created > limit)
                .map(|s| (s.id.clone(), s.state.clone()))
                .collect()
        };
        for (id, s) in expired {
            let secs = self.config.build_timeout.as_secs();
            let ok = self
                .step(
                    &id,
                    &s,
                    ServerCommand::Fault {
                        task: s.task_state.clone(),
                        code: 500,
                        message: format!(
                            "Build of instance {id} aborted: it did not finish within the build timeout of {secs} seconds"
                        ),
                        details: format!("build timed out in task_state {}", s.task_state),
                        host_released: true,
                    },
                )
                .await;
            if ok {
                if let Some(agent) = self.agents.get(&s.host) {
                    let _ = agent.driver.destroy(&id).await;
                }
                for (host, claim) in self.claims_of(&id) {
                    self.release_claim(&host, &claim).await;
                }
            }
        }
    }

    /// The resource tracker's audit: claims and quota usage held for servers that no longer exist go back
    /// (a crash between a server's deletion and the release of what it held leaves such leftovers).
    pub(super) async fn audit(&self) {
        let (claims, usage): (Pairs, Pairs) = {
            let v = self.view.snapshot();
            let gone = |id: &str| v.servers.get(id).is_none_or(|s| s.is_deleted());
            let claims = v
                .hosts
                .values()
                .flat_map(|h| {
                    h.state
                        .claims
                        .iter()
                        .filter(|(_, c)| gone(&c.server_id))
                        .map(|(cid, _)| (h.name.clone(), cid.clone()))
                        .collect::<Vec<_>>()
                })
                .collect();
            let usage = v
                .usage
                .iter()
                .flat_map(|(p, u)| {
                    u.holders
                        .keys()
                        .filter(|h| gone(h))
                        .map(|h| (p.clone(), h.clone()))
                        .collect::<Vec<_>>()
                })
                .collect();
            (claims, usage)
        };
        for (host, claim) in claims {
            // Only a server created before the claim can be gone; a claim made for a server still being
            // created (not in the view yet) is recent, so re-check against the aggregate before releasing.
            let server = claim.split('/').next().unwrap_or_default().to_string();
            if let Ok((s, _)) = self.servers.load(&server).await {
                if s.exists && !s.is_deleted() {
                    continue;
                }
            }
            self.release_claim(&host, &claim).await;
        }
        for (project, holder) in usage {
            if let Ok((s, _)) = self.servers.load(&holder).await {
                if s.exists && !s.is_deleted() {
                    continue;
                }
            }
            let _ = self
                .usage
                .execute(
                    &project,
                    UsageCommand::Release { holder },
                    system_meta("quota-audit"),
                )
                .await;
        }
    }

    pub(super) async fn periodic(self: Arc<Self>) {
        let tick = Duration::from_millis(500);
        let mut since_heartbeat = Duration::ZERO;
        let mut since_sync = Duration::ZERO;
        let mut since_refresh = Duration::ZERO;
        loop {
            tokio::time::sleep(tick).await;
            since_heartbeat += tick;
            since_sync += tick;
            since_refresh += tick;
            if since_heartbeat >= self.config.heartbeat_interval {
                since_heartbeat = Duration::ZERO;
                for agent in self.agents.values() {
                    self.heartbeat(agent).await;
                }
            }
            if since_sync >= self.config.power_sync_interval {
                since_sync = Duration::ZERO;
                for agent in self.agents.values() {
                    self.sync_power(agent).await;
                }
            }
            if since_refresh >= self.config.resource_refresh_interval {
                since_refresh = Duration::ZERO;
                for agent in self.agents.values() {
                    self.register(agent).await;
                }
                self.audit().await;
            }
            self.expire_builds().await;
        }
    }

    /// Pre-cache images on the hosts of an aggregate (Nova 2.81).
    pub(super) async fn precache(&self, stream: &str) {
        let Some(id) = stream
            .strip_prefix("host-aggregate-")
            .and_then(|i| i.parse::<i64>().ok())
        else {
            return;
        };
        let (hosts, images) = {
            let v = self.view.snapshot();
            match v.aggregates.get(&id) {
                Some(a) => (
                    a.state.hosts.iter().cloned().collect::<Vec<_>>(),
                    a.cache_requests.clone(),
                ),
                None => return,
            }
        };
        for h in hosts {
            if let Some(agent) = self.agents.get(&h).cloned() {
                for image in &images {
                    if agent.cache.contains(image) {
                        continue;
                    }
                    if let Err(e) = self.cache_image(&agent, image).await {
                        tracing::warn!(host = %h, %image, error = %e, "pre-caching failed");
                    }
                }
            }
        }
    }

    /// A server's console log from its host's hypervisor (the last `length` lines).
    pub async fn console_output(
        &self,
        id: &str,
        length: Option<usize>,
    ) -> Result<String, crate::ComputeError> {
        let (s, _) = self.servers.load(id).await?;
        let agent = self.agents.get(&s.host).ok_or_else(|| {
            crate::ComputeError::Hypervisor(crate::driver::DriverError::Failed(format!(
                "Compute host {} is not available",
                s.host
            )))
        })?;
        agent
            .driver
            .console_output(id, length)
            .await
            .map_err(crate::ComputeError::Hypervisor)
    }

    /// Stop the engine's tasks (its runtime shuts down in the background).
    pub fn shutdown(&self) {
        if let Some(rt) = self._rt_owner.lock().take() {
            rt.shutdown_background();
        }
    }
}
