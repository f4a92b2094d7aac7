//! The conductor and the compute agents.
//!
//! The engine follows the log: every event of a server stream wakes that server's reconciler, which loads the
//! server's state from its aggregate and does the next step its `task_state` calls for (schedule and claim,
//! spawn on the host's agent, power operations, moves, delete ...). Each step ends by appending the event that
//! records it; that event wakes the reconciler again for the following step. So a flow's progress *is* the
//! server's event stream: after a restart the engine reconciles every server with a task in progress and the
//! flows continue where they stopped. Steps name the task they belong to, so a duplicate or late step is
//! refused by the aggregate instead of applied twice.
//!
//! Failures compensate explicitly: a boot without a host ends in ERROR with Nova's "No valid host was found"
//! fault and its quota released; a failed spawn releases its claim; a failed move releases the destination's
//! claim; nothing stays in BUILD past the build timeout.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::Utc;
use parking_lot::Mutex;
use strata_actors::compute::quota::{Amounts, ComputeUsage, Limits, UsageCommand};
use strata_actors::compute::server::{power, task, vm};
use strata_actors::compute::{
    ComputeHost, FlavorSpec, HostCommand, Inventory, Server, ServerCommand, ServerGroup,
    ServerGroupCommand,
};
use strata_actors::image::store::ImageStore;
use strata_actors::volume::{Volume, VolumeCommand, VolumeTask};
use strata_actors::{CommandError, DomainError, Reconcile, Reconciler, Repository, Runtime};
use strata_events::{Metadata, Position, Principal, RecordedEvent};
use strata_projections::compute::ComputeView;
use strata_projections::image::ImageView;
use strata_projections::volume::VolumeView;
use strata_projections::Live;

use crate::cache::{CacheOutcome, ImageCache};
use crate::driver::{Driver, FakeDriver, HostStats, VmSpec};
use crate::scheduler::{select_hosts, RequestSpec, SchedulerConfig};

/// One fake compute host to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeHostSpec {
    pub name: String,
    pub vcpus: u32,
    pub ram_mb: u64,
    pub disk_gb: u64,
}

impl FakeHostSpec {
    /// `fake-0` ... `fake-<n-1>`, each with the given resources.
    pub fn numbered(n: usize, vcpus: u32, ram_mb: u64, disk_gb: u64) -> Vec<Self> {
        (0..n)
            .map(|i| FakeHostSpec {
                name: format!("fake-{i}"),
                vcpus,
                ram_mb,
                disk_gb,
            })
            .collect()
    }
}

#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub hosts: Vec<FakeHostSpec>,
    pub scheduler: SchedulerConfig,
    pub cpu_allocation_ratio: f64,
    pub ram_allocation_ratio: f64,
    pub disk_allocation_ratio: f64,
    pub heartbeat_interval: Duration,
    pub power_sync_interval: Duration,
    pub resource_refresh_interval: Duration,
    /// A server still building after this long ends in ERROR.
    pub build_timeout: Duration,
    /// Latency of every fake driver call.
    pub driver_latency: Duration,
    /// Where each host keeps its image cache (`<dir>/<host>/_base`).
    pub state_dir: PathBuf,
    pub image_cache_max_bytes: u64,
}

impl EngineConfig {
    pub fn new(state_dir: PathBuf) -> Self {
        EngineConfig {
            hosts: FakeHostSpec::numbered(1, 16, 65536, 1000),
            scheduler: SchedulerConfig::default(),
            cpu_allocation_ratio: 16.0,
            ram_allocation_ratio: 1.5,
            disk_allocation_ratio: 1.0,
            heartbeat_interval: Duration::from_secs(10),
            power_sync_interval: Duration::from_secs(10),
            resource_refresh_interval: Duration::from_secs(60),
            build_timeout: Duration::from_secs(300),
            driver_latency: Duration::ZERO,
            state_dir,
            image_cache_max_bytes: 10 << 30,
        }
    }
}

/// Stores a server snapshot as the data of an image the API created (createImage).
#[async_trait::async_trait]
pub trait SnapshotSink: Send + Sync + 'static {
    /// Upload the file at `source` as the data of (queued) image `image_id`.
    async fn store(&self, image_id: &str, source: PathBuf, meta: &Metadata) -> Result<(), String>;
    /// The snapshot failed: remove the image.
    async fn discard(&self, image_id: &str, meta: &Metadata);
}

/// A compute agent: one host's driver and image cache.
pub struct Agent {
    pub name: String,
    pub driver: Arc<dyn Driver>,
    pub cache: ImageCache,
}

pub struct Engine {
    view: Live<ComputeView>,
    images: Live<ImageView>,
    store: Arc<dyn ImageStore>,
    servers: Repository<Server>,
    hosts: Repository<ComputeHost>,
    usage: Repository<ComputeUsage>,
    groups: Repository<ServerGroup>,
    agents: BTreeMap<String, Arc<Agent>>,
    config: EngineConfig,
    /// What follows the log for the engine (set once at start).
    reconciler: OnceLock<Arc<Reconciler<Engine>>>,
    snapshots: OnceLock<Arc<dyn SnapshotSink>>,
    /// Cinder's volumes (attachments of servers, boot volumes), once the block storage service runs.
    volume_view: OnceLock<Live<VolumeView>>,
    volumes: Repository<Volume>,
    /// Neutron, for servers' ports (set once the network service exists).
    network: OnceLock<Arc<strata_network::Networks>>,
    rt: tokio::runtime::Handle,
    _rt_owner: Mutex<Option<tokio::runtime::Runtime>>,
}

/// (host or project, claim or holder) pairs.
type Pairs = Vec<(String, String)>;

const VIEW_WAIT: Duration = Duration::from_secs(10);

fn system_meta(correlation_id: &str) -> Metadata {
    Metadata {
        correlation_id: correlation_id.to_string(),
        causation_id: String::new(),
        principal: Principal::system(),
    }
}

/// The flavor as the host sees it: a server booted from a volume keeps its root disk in Cinder, not on the
/// host.
fn local_flavor(s: &Server, flavor: &FlavorSpec) -> FlavorSpec {
    let mut f = flavor.clone();
    if s.boots_from_volume() {
        f.disk_gb = 0;
    }
    f
}

/// One of a server's volume attachments as the volume view shows it.
#[derive(Debug, Clone)]
struct Plugged {
    attachment_id: String,
    volume_id: String,
    device: String,
    host: String,
    attached: bool,
}

fn amounts(f: &FlavorSpec) -> Amounts {
    Amounts {
        instances: 1,
        cores: f.vcpus as i64,
        ram: f.ram_mb as i64,
    }
}

const UNLIMITED: Limits = Limits {
    instances: -1,
    cores: -1,
    ram: -1,
};

impl Engine {
    /// Start the agents (registering their hosts), the log follower and the periodic tasks, on a runtime of
    /// the engine's own. Servers with a task in progress are resumed.
    pub async fn start(
        runtime: Arc<Runtime>,
        view: Live<ComputeView>,
        images: Live<ImageView>,
        store: Arc<dyn ImageStore>,
        config: EngineConfig,
    ) -> std::io::Result<Arc<Engine>> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("strata-conductor")
            .enable_all()
            .build()?;
        let mut agents = BTreeMap::new();
        for h in &config.hosts {
            let driver: Arc<dyn Driver> = Arc::new(FakeDriver::new(
                &h.name,
                HostStats {
                    vcpus: h.vcpus,
                    ram_mb: h.ram_mb,
                    disk_gb: h.disk_gb,
                },
                config.driver_latency,
            ));
            let cache = ImageCache::open(
                config.state_dir.join(&h.name).join("_base"),
                config.image_cache_max_bytes,
            )?;
            agents.insert(
                h.name.clone(),
                Arc::new(Agent {
                    name: h.name.clone(),
                    driver,
                    cache,
                }),
            );
        }
        let engine = Arc::new(Engine {
            view,
            images,
            store,
            servers: Repository::new(runtime.clone()),
            hosts: Repository::new(runtime.clone()),
            usage: Repository::new(runtime.clone()),
            groups: Repository::new(runtime.clone()),
            agents,
            config,
            reconciler: OnceLock::new(),
            snapshots: OnceLock::new(),
            volume_view: OnceLock::new(),
            volumes: Repository::new(runtime.clone()),
            network: OnceLock::new(),
            rt: rt.handle().clone(),
            _rt_owner: Mutex::new(Some(rt)),
        });
        let e = engine.clone();
        let log = runtime.log().clone();
        engine
            .rt
            .spawn(async move { e.run(log).await })
            .await
            .map_err(std::io::Error::other)?;
        Ok(engine)
    }

    /// Where createImage stores snapshots (set once the image API exists).
    pub fn set_snapshot_sink(&self, sink: Arc<dyn SnapshotSink>) {
        let _ = self.snapshots.set(sink);
    }

    /// Cinder's volume view: servers' attachments follow them and boot volumes are plugged in.
    pub fn set_volume_view(&self, view: Live<VolumeView>) {
        let _ = self.volume_view.set(view);
    }

    /// Neutron: servers' ports are bound to their hosts and released with them.
    pub fn set_network(&self, networks: Arc<strata_network::Networks>) {
        let _ = self.network.set(networks);
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    pub fn agent(&self, host: &str) -> Option<&Arc<Agent>> {
        self.agents.get(host)
    }

    /// Register the hosts, bring the fake hypervisors back to what the log says runs on them, resume the
    /// flows in progress, then follow the log and run the periodic tasks.
    async fn run(self: Arc<Self>, log: Arc<dyn strata_events::EventLog>) {
        for agent in self.agents.values() {
            self.register(agent).await;
            self.heartbeat(agent).await;
            self.restore(agent).await;
        }
        let start = self.view.position();
        let pending: Vec<String> = {
            let v = self.view.snapshot();
            v.servers
                .values()
                .filter(|s| !s.is_deleted() && !s.state.task_state.is_empty())
                .map(|s| s.id.clone())
                .collect()
        };
        if !pending.is_empty() {
            tracing::info!(count = pending.len(), "resuming server flows in progress");
        }
        let rt = self.rt.clone();
        let reconciler = Reconciler::start("conductor", log, start + 1, self.clone(), rt);
        for id in pending {
            reconciler.wake(format!("server-{id}"), start);
        }
        let _ = self.reconciler.set(reconciler);
        let me = self.clone();
        self.rt.spawn(async move { me.periodic().await });
    }

    async fn step(&self, id: &str, s: &Server, cmd: ServerCommand) -> bool {
        match self
            .servers
            .execute(id, cmd, system_meta(&s.request_id))
            .await
        {
            Ok(_) => true,
            Err(CommandError::Domain(DomainError::Conflict(m))) => {
                tracing::debug!(server = %id, reason = %m, "a step no longer applies");
                false
            }
            Err(e) => {
                tracing::warn!(server = %id, error = %e, "recording a step failed");
                false
            }
        }
    }

    async fn fail_task(&self, id: &str, s: &Server, message: String) {
        tracing::warn!(server = %id, task = %s.task_state, %message, "task failed");
        self.step(
            id,
            s,
            ServerCommand::FailTask {
                task: s.task_state.clone(),
                message,
            },
        )
        .await;
    }

    async fn reconcile_server(&self, id: &str) {
        let s = match self.servers.load(id).await {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!(server = %id, error = %e, "could not load a server");
                return;
            }
        };
        if !s.exists || s.is_deleted() {
            return;
        }
        let has_dest = s.migration.as_ref().is_some_and(|m| m.scheduled);
        match s.task_state.as_str() {
            task::SCHEDULING => self.schedule_boot(id, &s).await,
            task::UNSHELVING if s.host.is_empty() => self.schedule_boot(id, &s).await,
            task::SPAWNING => self.spawn(id, &s).await,
            task::DELETING => self.delete(id, &s).await,
            task::POWERING_OFF
            | task::POWERING_ON
            | task::REBOOTING
            | task::REBOOTING_HARD
            | task::PAUSING
            | task::UNPAUSING
            | task::SUSPENDING
            | task::RESUMING => self.power(id, &s).await,
            task::REBUILDING if s.migration.is_none() => self.rebuild(id, &s).await,
            task::IMAGE_SNAPSHOT => self.snapshot(id, &s).await,
            task::SHELVING => self.shelve(id, &s).await,
            task::RESIZE_PREP | task::MIGRATING | task::REBUILDING if !has_dest => {
                self.schedule_move(id, &s).await
            }
            task::RESIZE_MIGRATING | task::MIGRATING | task::REBUILDING => {
                self.finish_move(id, &s).await
            }
            task::RESIZE_REVERTING => self.revert(id, &s).await,
            "" => self.release_stale_claims(id, &s).await,
            other => tracing::debug!(server = %id, task = other, "no step for this task"),
        }
    }

    fn image_properties(&self, image_id: &str) -> BTreeMap<String, String> {
        let v = self.images.snapshot();
        v.image(image_id)
            .map(|row| {
                row.properties
                    .iter()
                    .map(|(k, v)| {
                        let s = match v {
                            serde_json::Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        (k.clone(), s)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Try the scheduler's hosts in order until one accepts the claim; returns the host.
    async fn place(
        &self,
        spec: &RequestSpec,
        claim_id: &str,
        flavor: &FlavorSpec,
    ) -> Result<String, String> {
        let hosts = {
            let v = self.view.snapshot();
            select_hosts(&v, spec, &self.config.scheduler, Utc::now())
        };
        let hosts = hosts.map_err(|e| e.details)?;
        for host in hosts {
            let claim = HostCommand::Claim {
                claim_id: claim_id.to_string(),
                server_id: spec.server_id.clone(),
                vcpus: flavor.vcpus,
                ram_mb: flavor.ram_mb,
                disk_gb: flavor.host_disk_gb(),
            };
            match self
                .hosts
                .execute(&host, claim, system_meta(&spec.server_id))
                .await
            {
                Ok(_) => return Ok(host),
                Err(CommandError::Domain(DomainError::Conflict(m))) => {
                    tracing::debug!(%host, reason = %m, "claim lost; trying the next host");
                }
                Err(e) => tracing::warn!(%host, error = %e, "claim failed; trying the next host"),
            }
        }
        Err("There are not enough hosts available. Every candidate's claim failed.".into())
    }

    async fn release_claim(&self, host: &str, claim_id: &str) {
        if let Err(e) = self
            .hosts
            .execute(
                host,
                HostCommand::Release {
                    claim_id: claim_id.to_string(),
                },
                system_meta(claim_id),
            )
            .await
        {
            tracing::warn!(%host, claim = %claim_id, error = %e, "could not release a claim");
        }
    }

    /// Every claim the server holds, as (host, claim id).
    fn claims_of(&self, server_id: &str) -> Vec<(String, String)> {
        let v = self.view.snapshot();
        v.hosts
            .values()
            .flat_map(|h| {
                h.state
                    .claims
                    .iter()
                    .filter(|(_, c)| c.server_id == server_id)
                    .map(|(cid, _)| (h.name.clone(), cid.clone()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    async fn release_usage(&self, s: &Server, id: &str) {
        if let Err(e) = self
            .usage
            .execute(
                &s.project_id,
                UsageCommand::Release {
                    holder: id.to_string(),
                },
                system_meta(&s.request_id),
            )
            .await
        {
            tracing::warn!(server = %id, error = %e, "could not release quota usage");
        }
    }

    async fn reserve_usage(&self, s: &Server, id: &str, a: Amounts) {
        if let Err(e) = self
            .usage
            .execute(
                &s.project_id,
                UsageCommand::Reserve {
                    holders: vec![(id.to_string(), a)],
                    limits: UNLIMITED,
                },
                system_meta(&s.request_id),
            )
            .await
        {
            tracing::warn!(server = %id, error = %e, "could not record quota usage");
        }
    }

    async fn schedule_boot(&self, id: &str, s: &Server) {
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

    async fn leave_group(&self, id: &str, s: &Server) {
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
    async fn cache_image(&self, agent: &Agent, image_id: &str) -> Result<(), String> {
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

    async fn spawn(&self, id: &str, s: &Server) {
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

    // ---- ports ----

    async fn bind_ports(
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

    // ---- volumes ----

    fn vm_spec(&self, id: &str, s: &Server, flavor: &FlavorSpec, image_id: &str) -> VmSpec {
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
    fn plugged(&self, server_id: &str) -> Vec<Plugged> {
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

    async fn volume_step(
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
    async fn reserve_volumes(&self, id: &str, s: &Server) -> Result<(), String> {
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
    async fn complete_volumes(&self, id: &str, s: &Server) -> Result<(), String> {
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
    async fn follow_server(&self, id: &str, s: &Server, host: &str) {
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
    async fn unplug_reserved(&self, id: &str, s: &Server) {
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
    async fn release_volumes(&self, id: &str, s: &Server) -> Result<(), String> {
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

    async fn delete(&self, id: &str, s: &Server) {
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

    async fn power(&self, id: &str, s: &Server) {
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

    async fn rebuild(&self, id: &str, s: &Server) {
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

    async fn snapshot(&self, id: &str, s: &Server) {
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

    async fn shelve(&self, id: &str, s: &Server) {
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

    async fn schedule_move(&self, id: &str, s: &Server) {
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

    async fn finish_move(&self, id: &str, s: &Server) {
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

    async fn revert(&self, id: &str, s: &Server) {
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
    async fn release_stale_claims(&self, id: &str, s: &Server) {
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

    // ---- agents ----

    fn inventory(&self, stats: HostStats) -> Inventory {
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
    async fn register(&self, agent: &Agent) {
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

    async fn heartbeat(&self, agent: &Agent) {
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
    async fn restore(&self, agent: &Agent) {
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
    async fn sync_power(&self, agent: &Agent) {
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
    async fn expire_builds(&self) {
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
    async fn audit(&self) {
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

    async fn periodic(self: Arc<Self>) {
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
    async fn precache(&self, stream: &str) {
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
    pub async fn console_output(&self, id: &str, length: Option<usize>) -> Result<String, String> {
        let (s, _) = self.servers.load(id).await.map_err(|e| e.to_string())?;
        let agent = self
            .agents
            .get(&s.host)
            .ok_or_else(|| format!("Compute host {} is not available", s.host))?;
        agent
            .driver
            .console_output(id, length)
            .await
            .map_err(|e| e.to_string())
    }

    /// Stop the engine's tasks (its runtime shuts down in the background).
    pub fn shutdown(&self) {
        if let Some(rt) = self._rt_owner.lock().take() {
            rt.shutdown_background();
        }
    }
}

/// The conductor and the agents follow the log through the shared reconciler: a server's events wake that
/// server (`server-<id>`), a request to pre-cache images wakes its aggregate (`host-aggregate-<n>`).
#[async_trait::async_trait]
impl Reconcile for Engine {
    fn wakes(&self, e: &RecordedEvent) -> Option<String> {
        let server =
            e.stream_id.starts_with("server-") && !e.stream_id.starts_with("server-group-");
        let precache = e.stream_id.starts_with("host-aggregate-")
            && e.event_type == "compute.AggregateImagesCacheRequested.v1";
        (server || precache).then(|| e.stream_id.clone())
    }

    async fn caught_up(&self, position: Position) {
        self.view.wait_for(position, VIEW_WAIT).await;
    }

    async fn reconcile(&self, key: &str) {
        if let Some(id) = key.strip_prefix("server-") {
            self.reconcile_server(id).await;
        } else if key.starts_with("host-aggregate-") {
            self.precache(key).await;
        }
    }
}
