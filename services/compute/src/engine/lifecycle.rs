//! The conductor's steps after boot: delete, power actions, rebuild, snapshot, shelve, and moves
//! (resize, cold and live migration, evacuation) with their claims.

use super::*;

impl Engine {
    pub(super) async fn delete(&self, id: &str, s: &Server) {
        let mut hosts = vec![s.host.clone()];
        if let Some(m) = &s.migration {
            hosts.push(m.source_host.clone());
            hosts.push(m.dest_host.clone());
        }
        for h in hosts.iter().filter(|h| !h.is_empty()) {
            if let Some(agent) = self.agents.get(h) {
                if let Err(e) = agent.driver.destroy(id).await {
                    self.fail_task(id, s, format!("destroying the instance failed: {e}"))
                        .await;
                    return;
                }
            }
        }
        if let Err(e) = self.release_volumes(id, s).await {
            self.fail_task(id, s, format!("detaching the volumes failed: {e}"))
                .await;
            return;
        }
        if let Some(networks) = self.network.get() {
            let caller = strata_service::Caller::system(&s.project_id, &s.request_id);
            if let Err(e) =
                strata_network::servers::release_server_ports(networks, &caller, &s.ports).await
            {
                self.fail_task(
                    id,
                    s,
                    format!("releasing the ports failed: {}", e.message()),
                )
                .await;
                return;
            }
        }
        for (host, claim) in self.claims_of(id) {
            self.release_claim(&host, &claim).await;
        }
        self.release_usage(s, id).await;
        self.leave_group(id, s).await;
        self.step(id, s, ServerCommand::Deleted).await;
    }

    pub(super) async fn power(&self, id: &str, s: &Server) {
        let Some(agent) = self.agents.get(&s.host).cloned() else {
            self.fail_task(id, s, format!("Compute host {} is not available", s.host))
                .await;
            return;
        };
        let d = &agent.driver;
        let (result, vm_state, power_state) = match s.task_state.as_str() {
            task::POWERING_OFF => (d.power_off(id).await, vm::STOPPED, power::SHUTDOWN),
            task::POWERING_ON => (d.power_on(id).await, vm::ACTIVE, power::RUNNING),
            task::REBOOTING => (d.reboot(id, false).await, vm::ACTIVE, power::RUNNING),
            task::REBOOTING_HARD => {
                // A hard reboot also recreates a VM the hypervisor lost.
                let r = match d.power_state(id) {
                    Some(_) => d.reboot(id, true).await,
                    None => d.spawn(&self.vm_spec(id, s, &s.flavor, &s.image_id)).await,
                };
                (r, vm::ACTIVE, power::RUNNING)
            }
            task::PAUSING => (d.pause(id).await, vm::PAUSED, power::PAUSED),
            task::UNPAUSING => (d.unpause(id).await, vm::ACTIVE, power::RUNNING),
            task::SUSPENDING => (d.suspend(id).await, vm::SUSPENDED, power::SUSPENDED),
            task::RESUMING => (d.resume(id).await, vm::ACTIVE, power::RUNNING),
            _ => return,
        };
        match result {
            Ok(()) => {
                self.step(
                    id,
                    s,
                    ServerCommand::FinishTask {
                        task: s.task_state.clone(),
                        vm_state: vm_state.into(),
                        power_state,
                    },
                )
                .await;
            }
            Err(e) => self.fail_task(id, s, e.to_string()).await,
        }
    }

    pub(super) async fn rebuild(&self, id: &str, s: &Server) {
        let Some(agent) = self.agents.get(&s.host).cloned() else {
            self.fail_task(id, s, format!("Compute host {} is not available", s.host))
                .await;
            return;
        };
        let image = if s.task_image.is_empty() {
            s.image_id.clone()
        } else {
            s.task_image.clone()
        };
        let result = async {
            self.cache_image(&agent, &image).await?;
            agent
                .driver
                .rebuild(&self.vm_spec(id, s, &s.flavor, &image))
                .await
                .map_err(|e| e.to_string())
        }
        .await;
        match result {
            Ok(()) => {
                self.step(id, s, ServerCommand::Rebuilt).await;
            }
            Err(e) => {
                self.step(
                    id,
                    s,
                    ServerCommand::Fault {
                        task: task::REBUILDING.into(),
                        code: 500,
                        message: format!("Rebuild of instance {id} failed: {e}"),
                        details: e,
                        host_released: false,
                    },
                )
                .await;
            }
        }
    }

    pub(super) async fn snapshot(&self, id: &str, s: &Server) {
        let image_id = s.task_image.clone();
        let meta = system_meta(&s.request_id);
        let result = async {
            let agent = self
                .agents
                .get(&s.host)
                .cloned()
                .ok_or_else(|| format!("Compute host {} is not available", s.host))?;
            let sink = self
                .snapshots
                .get()
                .cloned()
                .ok_or("no image service to store snapshots in")?;
            agent.driver.snapshot(id).await.map_err(|e| e.to_string())?;
            // The fake hypervisor's disk is its base image: the snapshot is a copy of it.
            self.cache_image(&agent, &s.image_id).await?;
            sink.store(&image_id, agent.cache.path(&s.image_id), &meta)
                .await
                .map_err(|e| e.to_string())
        }
        .await;
        match result {
            Ok(()) => {
                self.step(
                    id,
                    s,
                    ServerCommand::FinishTask {
                        task: task::IMAGE_SNAPSHOT.into(),
                        vm_state: s.vm_state.clone(),
                        power_state: s.power_state,
                    },
                )
                .await;
            }
            Err(e) => {
                if let Some(sink) = self.snapshots.get() {
                    sink.discard(&image_id, &meta).await;
                }
                self.fail_task(id, s, e).await;
            }
        }
    }

    pub(super) async fn shelve(&self, id: &str, s: &Server) {
        if let Some(agent) = self.agents.get(&s.host) {
            if let Err(e) = agent.driver.destroy(id).await {
                self.fail_task(id, s, e.to_string()).await;
                return;
            }
        }
        // Shelved servers are offloaded at once (Nova's shelved_offload_time = 0): the host's resources and
        // the quota's cores and RAM go back.
        // They go back before the event that shows the server shelved (see `revert`).
        for (host, claim) in self.claims_of(id) {
            self.release_claim(&host, &claim).await;
        }
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
        self.step(id, s, ServerCommand::Shelved { offloaded: true })
            .await;
    }

    pub(super) async fn schedule_move(&self, id: &str, s: &Server) {
        let Some(m) = s.migration.clone() else {
            return;
        };
        let spec = RequestSpec {
            server_id: id.to_string(),
            flavor: local_flavor(s, &m.new_flavor),
            image_id: s.image_id.clone(),
            image_properties: self.image_properties(&s.image_id),
            // A move stays in the server's zone unless it asked for none.
            availability_zone: s.requested_az.clone(),
            group_id: s.group_id.clone(),
            same_host: vec![],
            different_host: vec![],
            requested_host: m.dest_host.clone(),
            ignore_hosts: vec![m.source_host.clone()],
        };
        // A move starts from a settled server, whose only valid claim is on its host. Claims elsewhere are
        // left from the previous move (a confirm whose clean-up had not run yet when this move was asked
        // for); if they stayed, a move back onto that host would hold two claims there.
        for (host, claim) in self.claims_of(id) {
            if host != s.host {
                self.release_claim(&host, &claim).await;
            }
        }
        let claim_id = m.dest_claim(id);
        match self.place(&spec, &claim_id, &spec.flavor).await {
            Ok(host) => {
                if !self
                    .step(
                        id,
                        s,
                        ServerCommand::MigrationScheduled {
                            dest_host: host.clone(),
                        },
                    )
                    .await
                {
                    self.release_claim(&host, &claim_id).await;
                }
            }
            Err(details) => {
                if m.kind == "resize" {
                    self.reserve_usage(s, id, amounts(&m.old_flavor)).await;
                }
                self.step(
                    id,
                    s,
                    ServerCommand::MigrationFailed {
                        message: format!("No valid host was found. {details}"),
                    },
                )
                .await;
            }
        }
    }

    pub(super) async fn finish_move(&self, id: &str, s: &Server) {
        let Some(m) = s.migration.clone() else {
            return;
        };
        let Some(dest) = self.agents.get(&m.dest_host).cloned() else {
            return;
        };
        let power_state = if m.kind == "evacuation" {
            power::RUNNING
        } else {
            m.prior_power_state
        };
        let result = async {
            self.cache_image(&dest, &s.image_id).await?;
            dest.driver
                .migrate_in(
                    &self.vm_spec(id, s, &m.new_flavor, &s.image_id),
                    power_state,
                )
                .await
                .map_err(|e| e.to_string())
        }
        .await;
        match result {
            Ok(()) => {
                if let Some(src) = self.agents.get(&m.source_host) {
                    let _ = src.driver.destroy(id).await;
                }
                // Live migration and evacuation are complete with this step: the source's claims go back
                // first, so whoever sees the server on its new host sees the source free (resize and cold
                // migration keep the source until confirmed).
                if matches!(m.kind.as_str(), "live-migration" | "evacuation") {
                    for (host, claim) in self.claims_of(id) {
                        if host == m.source_host {
                            self.release_claim(&host, &claim).await;
                        }
                    }
                }
                self.follow_server(id, s, &m.dest_host).await;
                self.step(id, s, ServerCommand::MigrationFinished).await;
            }
            Err(e) => {
                let _ = dest.driver.destroy(id).await;
                self.release_claim(&m.dest_host, &m.dest_claim(id)).await;
                if m.kind == "resize" {
                    self.reserve_usage(s, id, amounts(&m.old_flavor)).await;
                }
                self.step(id, s, ServerCommand::MigrationFailed { message: e })
                    .await;
            }
        }
    }

    pub(super) async fn revert(&self, id: &str, s: &Server) {
        let Some(m) = s.migration.clone() else {
            return;
        };
        if let Some(src) = self.agents.get(&m.source_host) {
            if let Err(e) = src
                .driver
                .migrate_in(
                    &self.vm_spec(id, s, &m.old_flavor, &s.image_id),
                    m.prior_power_state,
                )
                .await
            {
                self.fail_task(id, s, e.to_string()).await;
                return;
            }
        }
        if let Some(dest) = self.agents.get(&m.dest_host) {
            let _ = dest.driver.destroy(id).await;
        }
        // What the server gave up goes back before the event that shows it reverted, so a reader who sees
        // the server ACTIVE again also sees its usage and claims as they are now (a delete racing this
        // releases everything anyway).
        self.reserve_usage(s, id, amounts(&m.old_flavor)).await;
        self.release_claim(&m.dest_host, &m.dest_claim(id)).await;
        self.follow_server(id, s, &m.source_host).await;
        self.step(id, s, ServerCommand::ResizeReverted).await;
    }

    /// With no task running, a server's claims are valid only on its host (and, while a resize waits for
    /// confirmation, on the move's source and destination). Others are left over from a confirmed resize,
    /// a finished live migration or evacuation, and go back.
    pub(super) async fn release_stale_claims(&self, id: &str, s: &Server) {
        let mut keep = vec![s.host.clone()];
        if let Some(m) = &s.migration {
            keep.push(m.source_host.clone());
            keep.push(m.dest_host.clone());
        }
        for (host, claim) in self.claims_of(id) {
            if !keep.contains(&host) {
                self.release_claim(&host, &claim).await;
            }
        }
    }
}
