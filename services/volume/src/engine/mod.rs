//! cinder-scheduler, cinder-volume and cinder-backup: the volume service follows the log and drives each
//! volume, snapshot and backup one step at a time, like the compute conductor. An event of a `volume-` stream
//! wakes that volume's reconciler, which loads the volume from its aggregate and does what its status calls
//! for:
//!
//! | status | step | event that ends it |
//! |---|---|---|
//! | `creating`, no backend | the scheduler filters and weighs backends, claims capacity on one | `VolumeScheduled` |
//! | `creating`, on a backend | the driver makes it (blank, from an image, a snapshot or a volume) | `VolumeMadeAvailable` / `VolumeFailed` |
//! | `extending` | capacity for the new size claimed, the driver grows it | `VolumeExtended` |
//! | `retyping` | the new type recorded (no data moves between backends) | `VolumeRetyped` |
//! | `uploading` | the driver exports it, the image service stores it | `VolumeTaskFinished` |
//! | `reverting` | the driver puts the snapshot's content back | `VolumeTaskFinished` |
//! | `deleting` | the driver removes it; claim and quota released | `VolumeDeleted` |
//! | `creating` with a `backup_id`, on a backend | once the backup is `restoring` into it: a blank volume, the backup chain written into it | `VolumeMadeAvailable`, then `BackupTaskFinished` |
//! | `restoring-backup` | once the backup is `restoring` into it: the backup chain written over it | `VolumeTaskFinished` (or `VolumeFailed` `error_restoring`), then `BackupTaskFinished` |
//!
//! Snapshots: `creating` -> driver snapshot -> `SnapshotMadeAvailable`; `deleting` -> driver delete, quota
//! released -> `SnapshotDeleted`. Releases come before the event that shows the outcome.
//!
//! Backups (cinder-backup; streams `volume-backup-<uuid>`, data in `<state_dir>/backups/<backup id>/` in the
//! chunked format of [`crate::driver::backup`], or with the swift target as objects `<backup id>/<file>` of
//! the project's account, see [`crate::backup_target`]): `creating` -> the volume's driver writes the backup (an
//! incremental one against its parent's manifest; a backup of a snapshot reads a temporary volume made from
//! the snapshot), the swift target uploads it -> the volume's `backing-up` ends -> `BackupMadeAvailable`
//! (naming the target); on failure the data and the
//! quota go first, then the volume's task ends, then `BackupFailed`. `restoring` -> the target volume's flow
//! (above) does the work; a backup left `restoring` for a volume that no longer waits for it goes back to
//! `available`. `deleting` -> refused while incremental children exist, the directory (or the objects) removed, the quota
//! released -> `BackupDeleted`.
//!
//! The API records the volume's side of a backup or restore first and the backup's side second, so the
//! second event always finds the first in the view. A crash between the two leaves a volume waiting for a
//! backup that never came; the service finds those at start (before the APIs listen) and ends their wait.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::Utc;
use futures::StreamExt;
use parking_lot::Mutex;
use strata_actors::image::store::ImageStore;
use strata_actors::volume::{
    backup_status as bs, status as st, Backend, BackendCommand, Backup, BackupCommand, Snapshot,
    SnapshotCommand, Volume, VolumeCommand, VolumeUsage, VolumeUsageCommand,
};
use strata_actors::{CommandError, DomainError, Reconcile, Reconciler, Repository, Runtime};
use strata_events::{Metadata, Position, Principal, RecordedEvent};
use strata_image::ImageSink;
use strata_projections::image::ImageView;
use strata_projections::volume::{BackendRow, VolumeView};
use strata_projections::Live;
use tokio::io::AsyncWriteExt;

use crate::backup_target::{BackupObjectStore, DEFAULT_CONTAINER, DIRECTORY_TARGET, SWIFT_TARGET};
use crate::driver::{FakeDriver, FileDriver, VolumeDriver, VolumeFormat, MANIFEST_FILE};
mod backups;
mod scheduler;
mod volumes;

/// The host part of every backend's `host@backend#pool` name.
pub const HOST: &str = "strata";

/// The directory under the state dir that holds the backups (one directory per backup).
pub const BACKUP_DIR: &str = "backups";

/// One configured backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendSpec {
    pub name: String,
    /// file | fake
    pub driver: String,
    pub total_gb: u64,
    /// raw | qcow2 (file driver)
    pub format: String,
}

#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub backends: Vec<BackendSpec>,
    /// Where file backends keep their volumes (`<dir>/<backend>/`) and backups are kept
    /// (`<dir>/backups/<backup id>/`).
    pub state_dir: PathBuf,
    pub availability_zone: String,
    pub max_over_subscription_ratio: f64,
    pub heartbeat_interval: Duration,
    pub service_down_time: Duration,
    /// Where new backups are kept: `None` = directories under `<state_dir>/backups/`, `Some` = objects in
    /// the backup's project account (see [`crate::backup_target`]).
    pub backup_objects: Option<BackupObjectStore>,
}

impl EngineConfig {
    pub fn new(state_dir: PathBuf) -> Self {
        EngineConfig {
            backends: vec![BackendSpec {
                name: "lvm-1".into(),
                driver: "file".into(),
                total_gb: 100,
                format: "raw".into(),
            }],
            state_dir,
            availability_zone: "nova".into(),
            max_over_subscription_ratio: 20.0,
            heartbeat_interval: Duration::from_secs(10),
            service_down_time: Duration::from_secs(60),
            backup_objects: None,
        }
    }
}

pub struct Engine {
    view: Live<VolumeView>,
    images: Live<ImageView>,
    store: Arc<dyn ImageStore>,
    volumes: Repository<Volume>,
    snapshots: Repository<Snapshot>,
    backups: Repository<Backup>,
    backends: Repository<Backend>,
    usage: Repository<VolumeUsage>,
    drivers: BTreeMap<String, Arc<dyn VolumeDriver>>,
    config: EngineConfig,
    /// What follows the log for the volume service (set once at start).
    reconciler: OnceLock<Arc<Reconciler<Engine>>>,
    /// Volumes found at start waiting for a backup or restore the API never recorded (it stopped between
    /// its two writes): their reconciler ends the wait.
    orphans: Mutex<HashSet<String>>,
    image_sink: OnceLock<Arc<dyn ImageSink>>,
    rt: tokio::runtime::Handle,
    rt_owner: Mutex<Option<tokio::runtime::Runtime>>,
}

const VIEW_WAIT: Duration = Duration::from_secs(10);

fn meta(correlation_id: &str) -> Metadata {
    Metadata {
        correlation_id: correlation_id.to_string(),
        causation_id: String::new(),
        principal: Principal::system(),
    }
}

/// `host@backend#pool` of a backend (one pool per backend, named after it).
pub fn backend_host(name: &str) -> String {
    format!("{HOST}@{name}#{name}")
}

/// The backend name in a `host@backend#pool` string.
pub fn backend_of(host: &str) -> &str {
    host.split_once('@')
        .map(|(_, rest)| rest.split('#').next().unwrap_or(rest))
        .unwrap_or(host)
}

/// Whether a backend's capabilities satisfy a volume type's extra specs: unscoped keys and `capabilities:`
/// keys must equal the capability (`<is> True` style values compare the word after the operator); other
/// scopes (qos, ...) are not the scheduler's.
pub fn capabilities_match(
    specs: &BTreeMap<String, String>,
    caps: &BTreeMap<String, String>,
) -> bool {
    specs.iter().all(|(k, v)| {
        let key = match k.split_once(':') {
            None => k.as_str(),
            Some(("capabilities", key)) => key,
            Some(_) => return true,
        };
        if matches!(key, "multiattach") {
            return true;
        }
        let want = v
            .strip_prefix("<is>")
            .or_else(|| v.strip_prefix("=="))
            .or_else(|| v.strip_prefix("s=="))
            .unwrap_or(v)
            .trim();
        caps.get(key)
            .is_some_and(|have| have.eq_ignore_ascii_case(want))
    })
}

impl Engine {
    pub async fn start(
        runtime: Arc<Runtime>,
        view: Live<VolumeView>,
        images: Live<ImageView>,
        store: Arc<dyn ImageStore>,
        config: EngineConfig,
    ) -> std::io::Result<Arc<Engine>> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("strata-volume")
            .enable_all()
            .build()?;
        if let Some(b) = config
            .backends
            .iter()
            .find(|b| matches!(b.name.as_str(), BACKUP_DIR | "tmp"))
        {
            return Err(std::io::Error::other(format!(
                "a volume backend may not be named {:?}: the volume service keeps its own files there",
                b.name
            )));
        }
        let mut drivers: BTreeMap<String, Arc<dyn VolumeDriver>> = BTreeMap::new();
        for b in &config.backends {
            let driver: Arc<dyn VolumeDriver> = match b.driver.as_str() {
                "fake" => Arc::new(FakeDriver::new(&b.name, b.total_gb)),
                _ => Arc::new(
                    FileDriver::new(
                        &b.name,
                        config.state_dir.join(&b.name),
                        if b.format == "qcow2" {
                            VolumeFormat::Qcow2
                        } else {
                            VolumeFormat::Raw
                        },
                        b.total_gb,
                        BTreeMap::new(),
                    )
                    .map_err(std::io::Error::other)?,
                ),
            };
            drivers.insert(backend_host(&b.name), driver);
        }
        let engine = Arc::new(Engine {
            view,
            images,
            store,
            volumes: Repository::new(runtime.clone()),
            snapshots: Repository::new(runtime.clone()),
            backups: Repository::new(runtime.clone()),
            backends: Repository::new(runtime.clone()),
            usage: Repository::new(runtime.clone()),
            drivers,
            config,
            reconciler: OnceLock::new(),
            orphans: Mutex::new(HashSet::new()),
            image_sink: OnceLock::new(),
            rt: rt.handle().clone(),
            rt_owner: Mutex::new(Some(rt)),
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

    pub fn set_image_sink(&self, sink: Arc<dyn ImageSink>) {
        let _ = self.image_sink.set(sink);
    }

    pub fn shutdown(&self) {
        if let Some(rt) = self.rt_owner.lock().take() {
            rt.shutdown_background();
        }
    }

    async fn run(self: Arc<Self>, log: Arc<dyn strata_events::EventLog>) {
        for (host, driver) in &self.drivers {
            self.register(host, driver.as_ref()).await;
            self.heartbeat(host).await;
        }
        self.sweep_backup_dir().await;
        let start = self.view.position();
        let pending: Vec<String> = {
            let v = self.view.snapshot();
            let restoring_to = |backup_id: &str, volume_id: &str| {
                v.backups.get(backup_id).is_some_and(|b| {
                    b.state.status == bs::RESTORING && b.state.restore_volume_id == volume_id
                })
            };
            let orphans: HashSet<String> = v
                .volumes
                .values()
                .filter(|r| {
                    let s = &r.state;
                    match s.status.as_str() {
                        st::BACKING_UP => !v.backups_of(&r.id).any(|b| {
                            b.state.status == bs::CREATING && b.state.snapshot_id.is_empty()
                        }),
                        st::RESTORING => !restoring_to(&s.task_target, &r.id),
                        st::CREATING if !s.backup_id.is_empty() => {
                            !restoring_to(&s.backup_id, &r.id)
                        }
                        _ => false,
                    }
                })
                .map(|r| r.id.clone())
                .collect();
            *self.orphans.lock() = orphans;
            let mut p: Vec<String> = v
                .volumes
                .values()
                .filter(|r| {
                    !matches!(
                        r.state.status.as_str(),
                        st::AVAILABLE | st::IN_USE | st::ERROR
                    )
                })
                .map(|r| format!("volume-{}", r.id))
                .collect();
            p.extend(
                v.snapshots
                    .values()
                    .filter(|s| matches!(s.state.status.as_str(), "creating" | "deleting"))
                    .map(|s| format!("volume-snapshot-{}", s.id)),
            );
            p.extend(
                v.backups
                    .values()
                    .filter(|b| {
                        matches!(
                            b.state.status.as_str(),
                            bs::CREATING | bs::RESTORING | bs::DELETING
                        )
                    })
                    .map(|b| format!("volume-backup-{}", b.id)),
            );
            p
        };
        let reconciler = Reconciler::start(
            "volume-service",
            log,
            start + 1,
            self.clone(),
            self.rt.clone(),
        );
        for stream in pending {
            reconciler.wake(stream, start);
        }
        let _ = self.reconciler.set(reconciler);
        let me = self.clone();
        self.rt.spawn(async move { me.periodic().await });
    }

    /// Run the reconciler of `stream` (a volume, snapshot or backup) once the view has `position`.
    fn kick(&self, stream: String, position: Position) {
        if let Some(r) = self.reconciler.get() {
            r.wake(stream, position);
        }
    }

    async fn step(&self, id: &str, v: &Volume, cmd: VolumeCommand) -> bool {
        match self.volumes.execute(id, cmd, meta(&v.request_id)).await {
            Ok(_) => true,
            Err(CommandError::Domain(DomainError::Conflict(m))) => {
                tracing::debug!(volume = %id, reason = %m, "a step no longer applies");
                false
            }
            Err(e) => {
                tracing::warn!(volume = %id, error = %e, "recording a volume step failed");
                false
            }
        }
    }

    async fn fail(&self, id: &str, v: &Volume, status: &str, message: String, released: bool) {
        tracing::warn!(volume = %id, %message, "volume task failed");
        self.step(
            id,
            v,
            VolumeCommand::Fail {
                expected: v.status.clone(),
                status: status.into(),
                message,
                backend_released: released,
            },
        )
        .await;
    }

    fn driver(&self, host: &str) -> Option<Arc<dyn VolumeDriver>> {
        self.drivers.get(host).cloned()
    }

    async fn reconcile_volume(&self, id: &str) {
        let v = match self.volumes.load(id).await {
            Ok((v, _)) => v,
            Err(e) => {
                tracing::warn!(volume = %id, error = %e, "could not load a volume");
                return;
            }
        };
        if !v.exists || v.is_deleted() {
            return;
        }
        if self.orphans.lock().remove(id) {
            self.end_orphaned_wait(id, &v).await;
            return;
        }
        match v.status.as_str() {
            st::CREATING if v.host.is_empty() => self.schedule(id, &v).await,
            st::CREATING if !v.backup_id.is_empty() => self.restore(id, &v).await,
            st::CREATING => self.create(id, &v).await,
            st::RESTORING => self.restore(id, &v).await,
            st::EXTENDING => self.extend(id, &v).await,
            st::RETYPING => {
                let target = v.task_target.clone();
                self.step(
                    id,
                    &v,
                    VolumeCommand::Retyped {
                        volume_type_id: target,
                    },
                )
                .await;
            }
            st::UPLOADING => self.upload(id, &v).await,
            st::REVERTING => self.revert(id, &v).await,
            st::DELETING => self.delete(id, &v).await,
            _ => {}
        }
    }

    async fn register(&self, host: &str, driver: &dyn VolumeDriver) {
        let mut caps = driver.capabilities();
        caps.entry("volume_backend_name".into())
            .or_insert_with(|| driver.name().to_string());
        let total = match driver.stats().await {
            Ok(s) => s.total_gb,
            Err(e) => {
                tracing::error!(%host, error = %e, "volume backend stats failed");
                return;
            }
        };
        let cmd = BackendCommand::Register {
            driver: driver.driver_name().into(),
            total_gb: total,
            max_over_subscription_ratio: self.config.max_over_subscription_ratio,
            capabilities: caps,
            availability_zone: self.config.availability_zone.clone(),
            service_id: uuid::Uuid::new_v4().to_string(),
        };
        if let Err(e) = self
            .backends
            .execute(backend_of(host), cmd, meta("volume-service"))
            .await
        {
            tracing::error!(%host, error = %e, "could not register the volume backend");
        }
    }

    async fn heartbeat(&self, host: &str) {
        if let Err(e) = self
            .backends
            .execute(
                backend_of(host),
                BackendCommand::Heartbeat,
                meta("heartbeat"),
            )
            .await
        {
            tracing::warn!(%host, error = %e, "volume backend heartbeat not recorded");
        }
    }

    async fn periodic(self: Arc<Self>) {
        loop {
            tokio::time::sleep(self.config.heartbeat_interval).await;
            for (host, driver) in &self.drivers {
                self.heartbeat(host).await;
                if let Ok(stats) = driver.stats().await {
                    let _ = self
                        .backends
                        .execute(
                            backend_of(host),
                            BackendCommand::ReportStats {
                                total_gb: stats.total_gb,
                                free_gb: stats.free_gb,
                            },
                            meta("stats"),
                        )
                        .await;
                }
            }
        }
    }
}

// MD5 through sha2's sibling crate is not a dependency here; the image service's checksum is MD5, so use the
// md-5 crate via the workspace.
fn md5_state() -> md5::Md5 {
    use md5::Digest;
    md5::Md5::new()
}

fn md5_update(state: &mut md5::Md5, data: &[u8]) {
    use md5::Digest;
    state.update(data);
}

fn md5_hex(state: md5::Md5) -> String {
    use md5::Digest;
    hex::encode(state.finalize())
}

/// The volume service follows the log through the shared reconciler: each event of a volume, snapshot or
/// backup stream wakes that stream.
#[async_trait::async_trait]
impl Reconcile for Engine {
    fn wakes(&self, e: &RecordedEvent) -> Option<String> {
        let s = e.stream_id.as_str();
        let ours = s.starts_with("volume-snapshot-")
            || s.starts_with("volume-backup-")
            || (s.starts_with("volume-")
                && ![
                    "volume-type-",
                    "volume-backend-",
                    "volume-usage-",
                    "volume-quota-",
                ]
                .iter()
                .any(|p| s.starts_with(p)));
        ours.then(|| e.stream_id.clone())
    }

    async fn caught_up(&self, position: Position) {
        self.view.wait_for(position, VIEW_WAIT).await;
    }

    async fn reconcile(&self, stream: &str) {
        if let Some(id) = stream.strip_prefix("volume-snapshot-") {
            self.reconcile_snapshot(id).await;
        } else if let Some(id) = stream.strip_prefix("volume-backup-") {
            self.reconcile_backup(id).await;
        } else if let Some(id) = stream.strip_prefix("volume-") {
            self.reconcile_volume(id).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_specs_match_capabilities() {
        let caps: BTreeMap<String, String> = [
            ("volume_backend_name", "file-1"),
            ("thin_provisioning_support", "True"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let specs = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(capabilities_match(
            &specs(&[("volume_backend_name", "file-1")]),
            &caps
        ));
        assert!(!capabilities_match(
            &specs(&[("volume_backend_name", "file-2")]),
            &caps
        ));
        assert!(capabilities_match(
            &specs(&[("capabilities:thin_provisioning_support", "<is> True")]),
            &caps
        ));
        assert!(capabilities_match(
            &specs(&[("qos:read_iops", "100")]),
            &caps
        ));
        assert_eq!(backend_of(&backend_host("file-1")), "file-1");
    }
}
