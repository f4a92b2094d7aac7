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
use strata_image::ImageSink;
use strata_projections::compute::ComputeView;
use strata_projections::image::ImageView;
use strata_projections::volume::VolumeView;
use strata_projections::Live;

use crate::cache::{CacheOutcome, ImageCache};
use crate::driver::{Driver, FakeDriver, HostStats, VmSpec};
use crate::scheduler::{select_hosts, RequestSpec, SchedulerConfig};
mod boot;
mod host;
mod lifecycle;
mod volumes;

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
    snapshots: OnceLock<Arc<dyn ImageSink>>,
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
    pub fn set_snapshot_sink(&self, sink: Arc<dyn ImageSink>) {
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
