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
use strata_projections::image::ImageView;
use strata_projections::volume::{BackendRow, VolumeView};
use strata_projections::Live;
use tokio::io::AsyncWriteExt;

use crate::backup_target::{BackupObjectStore, DEFAULT_CONTAINER, DIRECTORY_TARGET, SWIFT_TARGET};
use crate::driver::{FakeDriver, FileDriver, VolumeDriver, VolumeFormat, MANIFEST_FILE};

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

/// Stores an exported volume as the data of an image the API created (os-volume_upload_image).
#[async_trait::async_trait]
pub trait ImageSink: Send + Sync + 'static {
    async fn store(&self, image_id: &str, source: PathBuf, meta: &Metadata) -> Result<(), String>;
    async fn discard(&self, image_id: &str, meta: &Metadata);
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

    /// The backends that can take `size_gb` for this volume, best (most claimable capacity) first.
    fn candidates(&self, v: &Volume, size_gb: u64) -> Result<Vec<String>, String> {
        let view = self.view.snapshot();
        let specs = view
            .types
            .get(&v.volume_type_id)
            .map(|t| t.state.extra_specs.clone())
            .unwrap_or_default();
        // A volume made from a snapshot or another volume stays on its source's backend.
        let pinned = if !v.source_snapshot_id.is_empty() {
            view.snapshots
                .get(&v.source_snapshot_id)
                .and_then(|s| view.volumes.get(&s.state.volume_id))
                .map(|src| src.state.host.clone())
        } else if !v.source_volume_id.is_empty() {
            view.volumes
                .get(&v.source_volume_id)
                .map(|src| src.state.host.clone())
        } else {
            None
        };
        let now = Utc::now();
        let up = |b: &BackendRow| {
            b.last_seen.is_some_and(|seen| {
                now.signed_duration_since(seen)
                    .to_std()
                    .map_or(true, |age| age <= self.config.service_down_time)
            })
        };
        let mut rejected: BTreeMap<&str, usize> = BTreeMap::new();
        let mut ok: Vec<(&BackendRow, u64)> = Vec::new();
        for b in view.backends.values() {
            let host = backend_host(&b.name);
            let reason = if !self.drivers.contains_key(&host) || b.state.disabled || !up(b) {
                Some("ServiceFilter")
            } else if pinned.as_ref().is_some_and(|p| *p != host) {
                Some("SourceBackendFilter")
            } else if !v.availability_zone.is_empty()
                && v.availability_zone != b.state.availability_zone
            {
                Some("AvailabilityZoneFilter")
            } else if b.state.claimable_gb() < size_gb {
                Some("CapacityFilter")
            } else if !capabilities_match(&specs, &b.state.capabilities)
                || (v.multiattach
                    && b.state.capabilities.get("multiattach").map(String::as_str) != Some("True"))
            {
                Some("CapabilitiesFilter")
            } else {
                None
            };
            match reason {
                Some(r) => *rejected.entry(r).or_default() += 1,
                None => ok.push((b, b.state.claimable_gb())),
            }
        }
        if ok.is_empty() {
            let parts: Vec<String> = rejected
                .iter()
                .map(|(f, n)| format!("{f} rejected {n}"))
                .collect();
            return Err(format!(
                "No valid backend was found. {}",
                if parts.is_empty() {
                    "There are no volume backends.".to_string()
                } else {
                    parts.join(", ")
                }
            ));
        }
        // Capacity weigher: most claimable first; allocated-capacity as the tie-break (fewest claims).
        ok.sort_by(|a, b| {
            b.1.cmp(&a.1)
                .then(a.0.state.claimed_gb.cmp(&b.0.state.claimed_gb))
                .then(a.0.name.cmp(&b.0.name))
        });
        Ok(ok.into_iter().map(|(b, _)| backend_host(&b.name)).collect())
    }

    async fn claim(&self, host: &str, claim_id: &str, size_gb: u64) -> Result<(), CommandError> {
        self.backends
            .execute(
                backend_of(host),
                BackendCommand::Claim {
                    claim_id: claim_id.to_string(),
                    size_gb,
                },
                meta(claim_id),
            )
            .await
            .map(|_| ())
    }

    async fn release(&self, host: &str, claim_id: &str) {
        if host.is_empty() {
            return;
        }
        if let Err(e) = self
            .backends
            .execute(
                backend_of(host),
                BackendCommand::Release {
                    claim_id: claim_id.to_string(),
                },
                meta(claim_id),
            )
            .await
        {
            tracing::warn!(%host, claim = %claim_id, error = %e, "could not release a backend claim");
        }
    }

    async fn release_usage(&self, project: &str, holder: &str) {
        if let Err(e) = self
            .usage
            .execute(
                project,
                VolumeUsageCommand::Release {
                    holder: holder.to_string(),
                },
                meta(holder),
            )
            .await
        {
            tracing::warn!(%holder, error = %e, "could not release volume quota");
        }
    }

    async fn schedule(&self, id: &str, v: &Volume) {
        let hosts = match self.candidates(v, v.size_gb) {
            Ok(h) => h,
            Err(why) => {
                self.release_usage(&v.project_id, &format!("volume:{id}"))
                    .await;
                self.fail(id, v, st::ERROR, why, true).await;
                self.finish_restores_into(id).await;
                return;
            }
        };
        for host in hosts {
            match self.claim(&host, id, v.size_gb).await {
                Ok(()) => {
                    if !self
                        .step(id, v, VolumeCommand::Schedule { host: host.clone() })
                        .await
                    {
                        self.release(&host, id).await;
                    }
                    return;
                }
                Err(e) => tracing::debug!(%host, error = %e, "backend claim lost; next backend"),
            }
        }
        self.release_usage(&v.project_id, &format!("volume:{id}"))
            .await;
        self.fail(
            id,
            v,
            st::ERROR,
            "No valid backend was found. Every candidate's claim failed.".into(),
            true,
        )
        .await;
        self.finish_restores_into(id).await;
    }

    /// Fetch an image's bytes into a temporary file (checked against its MD5 when known).
    async fn fetch_image(
        &self,
        image_id: &str,
    ) -> Result<(PathBuf, String, BTreeMap<String, String>), String> {
        let (checksum, disk_format, props) = {
            let v = self.images.snapshot();
            let row = v
                .image(image_id)
                .ok_or_else(|| format!("Image {image_id} could not be found."))?;
            if row.status != "active" {
                return Err(format!("Image {image_id} is not active."));
            }
            let mut props: BTreeMap<String, String> = row
                .properties
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| v.to_string()),
                    )
                })
                .collect();
            props.insert("image_id".into(), image_id.to_string());
            props.insert("image_name".into(), row.name.clone());
            props.insert("checksum".into(), row.checksum.clone());
            props.insert("disk_format".into(), row.disk_format.clone());
            props.insert("container_format".into(), row.container_format.clone());
            props.insert("size".into(), row.size.unwrap_or(0).to_string());
            (row.checksum.clone(), row.disk_format.clone(), props)
        };
        let dir = self.config.state_dir.join("tmp");
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| format!("image download: {e}"))?;
        let path = dir.join(format!("image-{image_id}-{}", uuid::Uuid::new_v4()));
        let result = async {
            let mut reader = self
                .store
                .open(image_id, None)
                .await
                .map_err(|e| format!("Image {image_id} could not be downloaded: {e}"))?;
            let mut file = tokio::fs::File::create(&path)
                .await
                .map_err(|e| format!("image download: {e}"))?;
            let mut md5 = md5_state();
            while let Some(chunk) = reader.stream.next().await {
                let chunk = chunk.map_err(|e| format!("Image {image_id} could not be downloaded: {e}"))?;
                md5_update(&mut md5, &chunk);
                file.write_all(&chunk)
                    .await
                    .map_err(|e| format!("image download: {e}"))?;
            }
            file.sync_all().await.map_err(|e| format!("image download: {e}"))?;
            let actual = md5_hex(md5);
            if !checksum.is_empty() && actual != checksum {
                return Err(format!(
                    "Image {image_id} failed verification: checksum {actual} is not the recorded {checksum}"
                ));
            }
            Ok(())
        }
        .await;
        if let Err(e) = result {
            let _ = tokio::fs::remove_file(&path).await;
            return Err(e);
        }
        let format = if disk_format.is_empty() {
            "raw".to_string()
        } else {
            disk_format
        };
        Ok((path, format, props))
    }

    async fn create(&self, id: &str, v: &Volume) {
        let Some(driver) = self.driver(&v.host) else {
            return;
        };
        let mut image_metadata = BTreeMap::new();
        let result: Result<String, String> = async {
            if !v.source_snapshot_id.is_empty() {
                let source_volume = self
                    .view
                    .snapshot()
                    .snapshots
                    .get(&v.source_snapshot_id)
                    .map(|s| s.state.volume_id.clone())
                    .ok_or_else(|| {
                        format!("Snapshot {} could not be found.", v.source_snapshot_id)
                    })?;
                driver
                    .create_volume_from_snapshot(
                        id,
                        &source_volume,
                        &v.source_snapshot_id,
                        v.size_gb,
                    )
                    .await
                    .map_err(|e| e.to_string())
            } else if !v.source_volume_id.is_empty() {
                driver
                    .clone_volume(id, &v.source_volume_id, v.size_gb)
                    .await
                    .map_err(|e| e.to_string())
            } else if !v.source_image_id.is_empty() {
                let (path, format, props) = self.fetch_image(&v.source_image_id).await?;
                image_metadata = props;
                let r = driver
                    .create_volume_from_image(id, &path, &format, v.size_gb)
                    .await
                    .map_err(|e| e.to_string());
                let _ = tokio::fs::remove_file(&path).await;
                r
            } else {
                driver
                    .create_volume(id, v.size_gb)
                    .await
                    .map_err(|e| e.to_string())
            }
        }
        .await;
        match result {
            Ok(location) => {
                let bootable = !v.source_image_id.is_empty();
                self.step(
                    id,
                    v,
                    VolumeCommand::MadeAvailable {
                        provider_location: location,
                        bootable,
                        image_metadata,
                    },
                )
                .await;
            }
            Err(e) => {
                self.release(&v.host, id).await;
                self.fail(id, v, st::ERROR, e, true).await;
            }
        }
    }

    async fn extend(&self, id: &str, v: &Volume) {
        let Some(driver) = self.driver(&v.host) else {
            return;
        };
        let new_size = v.task_size_gb;
        // The backend's claim grows with the volume: a claim of the difference, under its own id.
        let claim = format!("{id}/extend-{new_size}");
        if let Err(e) = self
            .claim(&v.host, &claim, new_size.saturating_sub(v.size_gb))
            .await
        {
            self.fail(
                id,
                v,
                st::ERROR_EXTENDING,
                format!("the backend has no room to extend: {e}"),
                false,
            )
            .await;
            return;
        }
        match driver.extend_volume(id, new_size).await {
            Ok(()) => {
                if !self
                    .step(id, v, VolumeCommand::Extended { size_gb: new_size })
                    .await
                {
                    self.release(&v.host, &claim).await;
                }
            }
            Err(e) => {
                self.release(&v.host, &claim).await;
                self.fail(id, v, st::ERROR_EXTENDING, e.to_string(), false)
                    .await;
            }
        }
    }

    async fn upload(&self, id: &str, v: &Volume) {
        let image_id = v.task_target.clone();
        let m = meta(&v.request_id);
        let result = async {
            let driver = self
                .driver(&v.host)
                .ok_or_else(|| format!("backend {} is not available", v.host))?;
            let sink = self
                .image_sink
                .get()
                .cloned()
                .ok_or("no image service to upload to")?;
            let format = {
                let view = self.images.snapshot();
                view.image(&image_id)
                    .map(|i| i.disk_format.clone())
                    .filter(|f| f == "qcow2")
                    .unwrap_or_else(|| "raw".into())
            };
            let dir = self.config.state_dir.join("tmp");
            tokio::fs::create_dir_all(&dir)
                .await
                .map_err(|e| e.to_string())?;
            let path = driver
                .export_volume(id, &format, &dir)
                .await
                .map_err(|e| e.to_string())?;
            let r = sink.store(&image_id, path.clone(), &m).await;
            let _ = tokio::fs::remove_file(&path).await;
            r
        }
        .await;
        match result {
            Ok(()) => {
                self.step(
                    id,
                    v,
                    VolumeCommand::Finish {
                        expected: st::UPLOADING.into(),
                    },
                )
                .await;
            }
            Err(e) => {
                if let Some(sink) = self.image_sink.get() {
                    sink.discard(&image_id, &m).await;
                }
                tracing::warn!(volume = %id, error = %e, "upload to image failed");
                // The volume itself is unharmed: back to its resting status.
                self.step(
                    id,
                    v,
                    VolumeCommand::Finish {
                        expected: st::UPLOADING.into(),
                    },
                )
                .await;
            }
        }
    }

    async fn revert(&self, id: &str, v: &Volume) {
        let Some(driver) = self.driver(&v.host) else {
            return;
        };
        match driver.revert_to_snapshot(id, &v.task_target).await {
            Ok(()) => {
                self.step(
                    id,
                    v,
                    VolumeCommand::Finish {
                        expected: st::REVERTING.into(),
                    },
                )
                .await;
            }
            Err(e) => self.fail(id, v, st::ERROR, e.to_string(), false).await,
        }
    }

    async fn delete(&self, id: &str, v: &Volume) {
        if let Some(driver) = self.driver(&v.host) {
            // A cascade delete marks the snapshots deleting first, but their flows may run after this one:
            // their data goes with the volume (their own flows then find nothing left and record the end).
            let snapshots: Vec<String> = self
                .view
                .snapshot()
                .snapshots_of(id)
                .map(|s| s.id.clone())
                .collect();
            for snap in snapshots {
                if let Err(e) = driver.delete_snapshot(id, &snap).await {
                    self.fail(id, v, st::ERROR_DELETING, e.to_string(), false)
                        .await;
                    return;
                }
            }
            if let Err(e) = driver.delete_volume(id).await {
                self.fail(id, v, st::ERROR_DELETING, e.to_string(), false)
                    .await;
                return;
            }
        }
        // Every claim of this volume on its backend (the volume's and its extensions').
        let claims: Vec<String> = {
            let view = self.view.snapshot();
            view.backends
                .get(backend_of(&v.host))
                .map(|b| {
                    b.state
                        .claims
                        .keys()
                        .filter(|c| *c == id || c.starts_with(&format!("{id}/")))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default()
        };
        for c in claims {
            self.release(&v.host, &c).await;
        }
        self.release_usage(&v.project_id, &format!("volume:{id}"))
            .await;
        self.step(id, v, VolumeCommand::Deleted).await;
        self.finish_restores_into(id).await;
    }

    async fn reconcile_snapshot(&self, id: &str) {
        let s = match self.snapshots.load(id).await {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!(snapshot = %id, error = %e, "could not load a snapshot");
                return;
            }
        };
        if !s.exists {
            return;
        }
        let host = self
            .view
            .snapshot()
            .volumes
            .get(&s.volume_id)
            .map(|v| v.state.host.clone())
            .unwrap_or_default();
        let driver = self.driver(&host);
        let m = meta(&s.request_id);
        match s.status.as_str() {
            "creating" => {
                let Some(driver) = driver else { return };
                let cmd = match driver.create_snapshot(&s.volume_id, id).await {
                    Ok(()) => SnapshotCommand::MadeAvailable,
                    Err(e) => SnapshotCommand::Fail {
                        message: e.to_string(),
                    },
                };
                if let Err(e) = self.snapshots.execute(id, cmd, m).await {
                    tracing::debug!(snapshot = %id, error = %e, "snapshot step not recorded");
                }
            }
            "deleting" => {
                if let Some(driver) = driver {
                    if let Err(e) = driver.delete_snapshot(&s.volume_id, id).await {
                        let _ = self
                            .snapshots
                            .execute(
                                id,
                                SnapshotCommand::Fail {
                                    message: e.to_string(),
                                },
                                m,
                            )
                            .await;
                        return;
                    }
                }
                self.release_usage(&s.project_id, &format!("snapshot:{id}"))
                    .await;
                if let Err(e) = self
                    .snapshots
                    .execute(id, SnapshotCommand::Deleted, m)
                    .await
                {
                    tracing::debug!(snapshot = %id, error = %e, "snapshot deletion not recorded");
                }
            }
            _ => {}
        }
    }

    // -----------------------------------------------------------------------------------------------------
    // Backups

    /// Where backup `id` keeps its manifest and chunks.
    pub fn backup_dir(&self, id: &str) -> PathBuf {
        self.config.state_dir.join(BACKUP_DIR).join(id)
    }

    /// Remove what an interrupted backup left under a temporary name (the format writes a backup under a
    /// hidden `.tmp-` name and renames it when complete).
    async fn sweep_backup_dir(&self) {
        let dir = self.config.state_dir.join(BACKUP_DIR);
        let Ok(mut entries) = tokio::fs::read_dir(&dir).await else {
            return;
        };
        while let Ok(Some(entry)) = entries.next_entry().await {
            if entry.file_name().to_string_lossy().starts_with(".tmp-") {
                let path = entry.path();
                if let Err(e) = tokio::fs::remove_dir_all(&path).await {
                    tracing::warn!(path = %path.display(), error = %e, "cannot remove an unfinished backup");
                }
            }
        }
    }

    /// Remove a backup's directory; absent is fine.
    async fn remove_backup_dir(&self, id: &str) -> Result<(), String> {
        let dir = self.backup_dir(id);
        match tokio::fs::remove_dir_all(&dir).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(format!("cannot remove {}: {e}", dir.display())),
        }
    }

    async fn backup_step(&self, id: &str, b: &Backup, cmd: BackupCommand) -> bool {
        match self.backups.execute(id, cmd, meta(&b.request_id)).await {
            Ok(_) => true,
            Err(CommandError::Domain(DomainError::Conflict(m))) => {
                tracing::debug!(backup = %id, reason = %m, "a backup step no longer applies");
                false
            }
            Err(e) => {
                tracing::warn!(backup = %id, error = %e, "recording a backup step failed");
                false
            }
        }
    }

    /// A volume found at start waiting for a backup or restore that was never recorded: the volume was
    /// not touched, so it goes back to where it was (a volume that was to be made from a backup fails, with
    /// its claim and quota released).
    async fn end_orphaned_wait(&self, id: &str, v: &Volume) {
        match v.status.as_str() {
            st::BACKING_UP | st::RESTORING => {
                tracing::warn!(volume = %id, status = %v.status, "ending a backup task that never started");
                self.step(
                    id,
                    v,
                    VolumeCommand::Finish {
                        expected: v.status.clone(),
                    },
                )
                .await;
            }
            st::CREATING => {
                if let Some(driver) = self.driver(&v.host) {
                    let _ = driver.delete_volume(id).await;
                }
                self.release(&v.host, id).await;
                self.release_usage(&v.project_id, &format!("volume:{id}"))
                    .await;
                self.fail(
                    id,
                    v,
                    st::ERROR,
                    format!(
                        "The restore of backup {} into this volume never started.",
                        v.backup_id
                    ),
                    true,
                )
                .await;
            }
            _ => {}
        }
    }

    /// Backups still `restoring` into a volume that no longer waits for them (it failed before the restore
    /// began, or was deleted) go back to `available`.
    async fn finish_restores_into(&self, volume_id: &str) {
        let restoring: Vec<(String, Backup)> = {
            let view = self.view.snapshot();
            view.backups
                .values()
                .filter(|b| {
                    b.state.status == bs::RESTORING && b.state.restore_volume_id == volume_id
                })
                .map(|b| (b.id.clone(), b.state.clone()))
                .collect()
        };
        for (id, b) in restoring {
            self.backup_step(
                &id,
                &b,
                BackupCommand::FinishRestore {
                    volume_id: volume_id.to_string(),
                },
            )
            .await;
        }
    }

    /// Where backup `id`'s files can be read: its directory, or (kept in swift) a temporary directory under
    /// `<state_dir>/backups/.tmp-fetch-<task>/` they are downloaded into, only the manifest when
    /// `manifest_only`. [`Self::drop_fetched`] removes those.
    async fn backup_files(
        &self,
        id: &str,
        task: &str,
        manifest_only: bool,
    ) -> Result<PathBuf, String> {
        let b = self
            .view
            .snapshot()
            .backups
            .get(id)
            .map(|r| r.state.clone())
            .ok_or_else(|| format!("Backup {id} could not be found."))?;
        if b.target != SWIFT_TARGET {
            return Ok(self.backup_dir(id));
        }
        let objects = self.config.backup_objects.as_ref().ok_or_else(|| {
            format!("Backup {id} is kept in object storage, which this service was not given.")
        })?;
        let dir = self.fetch_dir(task).join(id);
        if let Err(e) = tokio::fs::remove_dir_all(&dir).await {
            if e.kind() != std::io::ErrorKind::NotFound {
                return Err(format!("cannot clear {}: {e}", dir.display()));
            }
        }
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| format!("cannot make {}: {e}", dir.display()))?;
        let only = [MANIFEST_FILE];
        objects
            .0
            .download_dir(
                &b.project_id,
                &b.container,
                id,
                &dir,
                manifest_only.then_some(&only[..]),
            )
            .await
            .map_err(|e| format!("Reading backup {id} from object storage failed: {e}"))?;
        Ok(dir)
    }

    fn fetch_dir(&self, task: &str) -> PathBuf {
        self.config
            .state_dir
            .join(BACKUP_DIR)
            .join(format!(".tmp-fetch-{task}"))
    }

    /// Remove what [`Self::backup_files`] downloaded for `task`.
    async fn drop_fetched(&self, task: &str) {
        let dir = self.fetch_dir(task);
        match tokio::fs::remove_dir_all(&dir).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(path = %dir.display(), error = %e, "cannot remove downloaded backup files")
            }
        }
    }

    /// The manifest of backup `id` and the directories of its whole chain (itself first), wherever each
    /// backup of the chain is kept.
    async fn backup_chain(&self, id: &str, task: &str) -> Result<(PathBuf, Vec<PathBuf>), String> {
        let chain: Vec<String> = {
            let view = self.view.snapshot();
            let chain = view.backup_chain(id);
            match chain.last() {
                Some(full) if full.state.parent_id.is_empty() => {}
                Some(_) => {
                    return Err(format!(
                        "Backup {id} cannot be restored: a backup it builds on is gone."
                    ))
                }
                None => return Err(format!("Backup {id} could not be found.")),
            }
            chain.iter().map(|b| b.id.clone()).collect()
        };
        let mut dirs = Vec::with_capacity(chain.len());
        for b in &chain {
            dirs.push(self.backup_files(b, task, false).await?);
        }
        Ok((dirs[0].join(MANIFEST_FILE), dirs))
    }

    /// Restore into a volume: an existing one (`restoring-backup`) or a new one (`creating` from a backup),
    /// once the backup is `restoring` into it; until then this waits (the backup's own event wakes it).
    async fn restore(&self, id: &str, v: &Volume) {
        let new = v.status == st::CREATING;
        let backup_id = if new {
            v.backup_id.clone()
        } else {
            v.task_target.clone()
        };
        let backup = match self.backups.load(&backup_id).await {
            Ok((b, _)) => b,
            Err(e) => {
                tracing::warn!(backup = %backup_id, error = %e, "could not load a backup");
                return;
            }
        };
        if backup.status != bs::RESTORING || backup.restore_volume_id != id {
            return;
        }
        let Some(driver) = self.driver(&v.host) else {
            return;
        };
        let task = format!("restore-{id}");
        let result: Result<String, String> = async {
            let (manifest, dirs) = self.backup_chain(&backup_id, &task).await?;
            let location = if new {
                // A run cut short by a restart may have left a partial volume behind: start afresh.
                driver.delete_volume(id).await.map_err(|e| e.to_string())?;
                driver
                    .create_volume(id, v.size_gb)
                    .await
                    .map_err(|e| e.to_string())?
            } else {
                v.provider_location.clone()
            };
            driver
                .restore_backup(&manifest, &dirs, id)
                .await
                .map_err(|e| format!("Restoring backup {backup_id} failed: {e}"))?;
            Ok(location)
        }
        .await;
        self.drop_fetched(&task).await;
        match result {
            Ok(location) if new => {
                self.step(
                    id,
                    v,
                    VolumeCommand::MadeAvailable {
                        provider_location: location,
                        bootable: false,
                        image_metadata: BTreeMap::new(),
                    },
                )
                .await;
            }
            Ok(_) => {
                self.step(
                    id,
                    v,
                    VolumeCommand::Finish {
                        expected: st::RESTORING.into(),
                    },
                )
                .await;
            }
            Err(e) if new => {
                if let Err(de) = driver.delete_volume(id).await {
                    tracing::warn!(volume = %id, error = %de, "could not remove a failed restore's volume");
                }
                self.release(&v.host, id).await;
                self.fail(id, v, "error_restoring", e, true).await;
            }
            Err(e) => self.fail(id, v, "error_restoring", e, false).await,
        }
        // The backup itself is unchanged whatever happened to the volume.
        self.backup_step(
            &backup_id,
            &backup,
            BackupCommand::FinishRestore {
                volume_id: id.to_string(),
            },
        )
        .await;
    }

    async fn reconcile_backup(&self, id: &str) {
        let b = match self.backups.load(id).await {
            Ok((b, _)) => b,
            Err(e) => {
                tracing::warn!(backup = %id, error = %e, "could not load a backup");
                return;
            }
        };
        if !b.exists || b.is_deleted() {
            return;
        }
        match b.status.as_str() {
            bs::CREATING => self.create_backup(id, &b).await,
            bs::RESTORING => {
                let waiting = {
                    let view = self.view.snapshot();
                    view.volume(&b.restore_volume_id).is_some_and(|r| {
                        let v = &r.state;
                        (v.status == st::RESTORING && v.task_target == id)
                            || (v.status == st::CREATING && v.backup_id == id)
                    })
                };
                if waiting {
                    // The volume's flow does the work; it may have looked before this backup was ready.
                    self.kick(
                        format!("volume-{}", b.restore_volume_id),
                        self.view.position(),
                    );
                } else {
                    self.backup_step(
                        id,
                        &b,
                        BackupCommand::FinishRestore {
                            volume_id: b.restore_volume_id.clone(),
                        },
                    )
                    .await;
                }
            }
            bs::DELETING => self.delete_backup(id, &b).await,
            _ => {}
        }
    }

    /// End the volume's `backing-up` for backup `id`, unless another backup of it is now under way.
    async fn end_backing_up(&self, id: &str, b: &Backup) {
        if !b.snapshot_id.is_empty() {
            return;
        }
        let volume = {
            let view = self.view.snapshot();
            let other = view.backups_of(&b.volume_id).any(|o| {
                o.id != id && o.state.status == bs::CREATING && o.state.snapshot_id.is_empty()
            });
            view.volume(&b.volume_id)
                .filter(|r| r.state.status == st::BACKING_UP && !other)
                .map(|r| r.state.clone())
        };
        if let Some(v) = volume {
            self.step(
                &b.volume_id,
                &v,
                VolumeCommand::Finish {
                    expected: st::BACKING_UP.into(),
                },
            )
            .await;
        }
    }

    async fn create_backup(&self, id: &str, b: &Backup) {
        let dir = self.backup_dir(id);
        let task = format!("backup-{id}");
        let result = async {
            let (host, parent_ok) = {
                let view = self.view.snapshot();
                let host = view
                    .volume(&b.volume_id)
                    .map(|r| r.state.host.clone())
                    .ok_or_else(|| format!("Volume {} could not be found.", b.volume_id))?;
                let parent_ok = b.parent_id.is_empty()
                    || view.backups.get(&b.parent_id).is_some_and(|p| {
                        matches!(p.state.status.as_str(), bs::AVAILABLE | bs::RESTORING)
                    });
                (host, parent_ok)
            };
            if !parent_ok {
                return Err(format!(
                    "The parent backup {} of this incremental backup is no longer available.",
                    b.parent_id
                ));
            }
            let driver = self
                .driver(&host)
                .ok_or_else(|| format!("The volume's backend {host} is not available."))?;
            // A run cut short by a restart may have left a complete directory: write it again.
            self.remove_backup_dir(id).await?;
            let info = if b.snapshot_id.is_empty() {
                let parent = if b.parent_id.is_empty() {
                    None
                } else {
                    let dir = self.backup_files(&b.parent_id, &task, true).await?;
                    Some(dir.join(MANIFEST_FILE))
                };
                driver
                    .backup_volume(&b.volume_id, &dir, parent.as_deref())
                    .await
                    .map_err(|e| e.to_string())?
            } else {
                // The snapshot's data, through a temporary volume made from it.
                let temp = format!("backup-{id}");
                driver.delete_volume(&temp).await.map_err(|e| e.to_string())?;
                driver
                    .create_volume_from_snapshot(&temp, &b.volume_id, &b.snapshot_id, b.size_gb)
                    .await
                    .map_err(|e| e.to_string())?;
                let info = driver.backup_volume(&temp, &dir, None).await;
                if let Err(e) = driver.delete_volume(&temp).await {
                    tracing::warn!(volume = %temp, error = %e, "cannot remove a backup's temporary volume");
                }
                info.map_err(|e| e.to_string())?
            };
            // With the swift target the directory the driver wrote becomes objects, then goes.
            let (target, container) = match &self.config.backup_objects {
                None => (DIRECTORY_TARGET, String::new()),
                Some(objects) => {
                    let container = if b.container.is_empty() {
                        DEFAULT_CONTAINER.to_string()
                    } else {
                        b.container.clone()
                    };
                    if let Err(e) = objects
                        .0
                        .upload_dir(&b.project_id, &container, id, &dir)
                        .await
                    {
                        if let Err(de) = objects.0.delete_prefix(&b.project_id, &container, id).await {
                            tracing::warn!(backup = %id, error = %de, "cannot remove a failed backup's objects");
                        }
                        return Err(format!("Writing the backup to object storage failed: {e}"));
                    }
                    self.remove_backup_dir(id).await?;
                    (SWIFT_TARGET, container)
                }
            };
            Ok::<_, String>((info, target, container))
        }
        .await;
        self.drop_fetched(&task).await;
        match result {
            Ok((info, target, container)) => {
                self.end_backing_up(id, b).await;
                self.backup_step(
                    id,
                    b,
                    BackupCommand::MadeAvailable {
                        object_count: info.chunks_stored,
                        stored_bytes: info.bytes_stored,
                        target: target.to_string(),
                        container,
                    },
                )
                .await;
            }
            Err(e) => {
                tracing::warn!(backup = %id, error = %e, "backup failed");
                if let Err(re) = self.remove_backup_dir(id).await {
                    tracing::warn!(backup = %id, error = %re, "cannot remove a failed backup's data");
                }
                self.release_usage(&b.project_id, &format!("backup:{id}"))
                    .await;
                self.end_backing_up(id, b).await;
                self.backup_step(id, b, BackupCommand::Fail { message: e })
                    .await;
            }
        }
    }

    async fn delete_backup(&self, id: &str, b: &Backup) {
        let children = self.view.snapshot().backup_children(id).count();
        let result = if children > 0 {
            Err("Incremental backups exist for this backup.".to_string())
        } else if b.target == SWIFT_TARGET {
            match &self.config.backup_objects {
                Some(objects) => objects
                    .0
                    .delete_prefix(&b.project_id, &b.container, id)
                    .await
                    .map_err(|e| format!("Deleting the backup's objects failed: {e}")),
                None => Err(
                    "The backup is kept in object storage, which this service was not given."
                        .to_string(),
                ),
            }
        } else {
            self.remove_backup_dir(id).await
        };
        match result {
            Ok(()) => {
                self.release_usage(&b.project_id, &format!("backup:{id}"))
                    .await;
                self.backup_step(id, b, BackupCommand::Deleted).await;
            }
            Err(e) => {
                tracing::warn!(backup = %id, error = %e, "backup deletion failed");
                self.backup_step(id, b, BackupCommand::Fail { message: e })
                    .await;
            }
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
