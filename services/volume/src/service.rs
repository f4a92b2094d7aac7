//! The volume service's requests (Cinder's behaviour behind `/v3`): its state (views and aggregates), the
//! lookups that decide what a caller may see and use, and the flows that create and delete volumes — what
//! `POST /volumes` and Nova's boot from a new volume both call. The HTTP front end (`strata-api`'s `volume`
//! module) parses, checks policy, calls these and renders Cinder's shapes; the volume engine does the work
//! on the backends.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use strata_actors::volume::{
    default_volume_limits, status as st, Backend, Backup, BackupCommand, Snapshot, SnapshotCommand,
    Volume, VolumeAmounts, VolumeCommand, VolumeQuota, VolumeTask, VolumeType, VolumeTypeCommand,
    VolumeUsage, VolumeUsageCommand,
};
use strata_actors::{Aggregate, Outcome, Repository, Runtime};
use strata_events::Metadata;
use strata_identity::Identity;
use strata_image::Images;
use strata_projections::image::{ImageRow, ImageView};
use strata_projections::volume::{BackupRow, VolumeRow, VolumeTypeRow, VolumeView};
use strata_projections::Live;
use strata_proto::volume as pb;
use strata_service::Caller;

use crate::VolumeError;

pub struct Volumes {
    pub view: Live<VolumeView>,
    /// Images, to validate `imageRef` and show image names.
    pub images: Live<ImageView>,
    /// The image service, where os-volume_upload_image records images.
    pub glance: Arc<Images>,
    pub volumes: Repository<Volume>,
    pub snapshots: Repository<Snapshot>,
    pub backups: Repository<Backup>,
    pub types: Repository<VolumeType>,
    pub backends: Repository<Backend>,
    pub usage: Repository<VolumeUsage>,
    pub quotas: Repository<VolumeQuota>,
    /// The limits of projects that set none (Cinder's quota defaults).
    pub default_limits: BTreeMap<String, i64>,
    /// A backend silent for longer is down.
    pub service_down_time: Duration,
}

const READ_YOUR_WRITES: Duration = Duration::from_secs(10);

impl Volumes {
    pub fn new(
        runtime: Arc<Runtime>,
        view: Live<VolumeView>,
        glance: Arc<Images>,
        service_down_time: Duration,
    ) -> Self {
        Volumes {
            view,
            images: glance.view.clone(),
            glance,
            volumes: Repository::new(runtime.clone()),
            snapshots: Repository::new(runtime.clone()),
            backups: Repository::new(runtime.clone()),
            types: Repository::new(runtime.clone()),
            backends: Repository::new(runtime.clone()),
            usage: Repository::new(runtime.clone()),
            quotas: Repository::new(runtime),
            default_limits: default_volume_limits(),
            service_down_time,
        }
    }

    /// Run a command and wait until the volume view shows it.
    pub async fn run<A: Aggregate>(
        &self,
        repo: &Repository<A>,
        id: &str,
        cmd: A::Command,
        meta: &Metadata,
    ) -> Result<Outcome<A>, strata_actors::CommandError> {
        let out = repo.execute(id, cmd, meta.clone()).await?;
        if let Some(p) = out.position {
            if !self.view.wait_for(p, READ_YOUR_WRITES).await {
                tracing::warn!(
                    position = p,
                    "volume view did not reach the write's position in time"
                );
            }
        }
        Ok(out)
    }

    /// A project's quota limits: the defaults overlaid with what was set for it.
    pub fn limits(&self, project_id: &str) -> BTreeMap<String, i64> {
        self.view
            .snapshot()
            .limits_of(project_id, &self.default_limits)
    }
}

/// Cinder's default volume type: volumes created without a type get it. It is recorded at its first use
/// under a fixed id and listed as if it existed before that, so every deployment has it, as Cinder does.
pub const DEFAULT_TYPE_NAME: &str = "__DEFAULT__";
pub const DEFAULT_TYPE_ID: &str = "6f14cfc6-bff7-4f0e-b191-d6aff6941e3d";
const DEFAULT_TYPE_DESCRIPTION: &str = "Default Volume Type";

impl Volumes {
    /// Volume `id` as `caller` may see it (its project's, or any for admins): 404 otherwise.
    pub fn volume(&self, caller: &Caller, id: &str) -> Result<VolumeRow, VolumeError> {
        let view = self.view.snapshot();
        view.volume(id)
            .filter(|v| caller.is_admin || v.state.project_id == caller.project_id)
            .cloned()
            .ok_or_else(|| VolumeError::volume_not_found(id))
    }

    /// Snapshot `id` as `caller` may see it.
    pub fn snapshot(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<strata_projections::volume::SnapshotRow, VolumeError> {
        let view = self.view.snapshot();
        view.snapshots
            .get(id)
            .filter(|s| caller.is_admin || s.state.project_id == caller.project_id)
            .cloned()
            .ok_or_else(|| VolumeError::snapshot_not_found(id))
    }

    /// Every volume type, the default one included (as if recorded, until it is).
    pub fn all_types(&self) -> Vec<VolumeTypeRow> {
        let view = self.view.snapshot();
        let mut rows: Vec<VolumeTypeRow> = view.types.values().cloned().collect();
        if view.volume_type(DEFAULT_TYPE_NAME).is_none() {
            rows.push(default_type_row());
        }
        rows
    }

    /// The volume type called `name_or_id` (id first, then name) if `caller` may use it: public, shared with
    /// its project, or any for admins.
    pub fn visible_type(&self, caller: &Caller, name_or_id: &str) -> Option<VolumeTypeRow> {
        let found = {
            let view = self.view.snapshot();
            view.volume_type(name_or_id).cloned()
        };
        let found = found.or_else(|| {
            (name_or_id == DEFAULT_TYPE_NAME || name_or_id == DEFAULT_TYPE_ID)
                .then(|| {
                    self.all_types()
                        .into_iter()
                        .find(|t| t.id == DEFAULT_TYPE_ID)
                })
                .flatten()
        });
        found.filter(|t| {
            caller.is_admin || t.state.is_public || t.state.access.contains(&caller.project_id)
        })
    }

    /// The name of volume type `id` ("" when it is unknown).
    pub fn type_name(&self, id: &str) -> String {
        let view = self.view.snapshot();
        match view.types.get(id) {
            Some(t) => t.state.name.clone(),
            None if id == DEFAULT_TYPE_ID => DEFAULT_TYPE_NAME.to_string(),
            None => String::new(),
        }
    }

    /// The id of the default volume type, recording it first if nobody has yet. Two first uses at once both
    /// name the same fixed id, so one records it and the other finds it.
    pub async fn default_type(
        &self,
        identity: &Identity,
        meta: &Metadata,
    ) -> Result<String, VolumeError> {
        if let Some(t) = self.view.snapshot().volume_type(DEFAULT_TYPE_NAME) {
            return Ok(t.id.clone());
        }
        // A claim refused here is the other first use's (same owner id): the create below settles it.
        let _ = identity
            .claim_name("volume_type", "", DEFAULT_TYPE_NAME, DEFAULT_TYPE_ID, meta)
            .await;
        let cmd = VolumeTypeCommand::Create {
            name: DEFAULT_TYPE_NAME.into(),
            description: DEFAULT_TYPE_DESCRIPTION.into(),
            is_public: true,
            extra_specs: BTreeMap::new(),
        };
        match self.run(&self.types, DEFAULT_TYPE_ID, cmd, meta).await {
            Ok(_) => Ok(DEFAULT_TYPE_ID.to_string()),
            Err(strata_actors::CommandError::Domain(
                strata_actors::DomainError::AlreadyExists { .. },
            )) => Ok(DEFAULT_TYPE_ID.to_string()),
            Err(e) => Err(e.into()),
        }
    }

    /// The availability zones volumes may be placed in: the backends' (or Cinder's default "nova").
    pub fn zones(&self) -> Vec<String> {
        let view = self.view.snapshot();
        let mut zones: Vec<String> = view
            .backends
            .values()
            .map(|b| b.state.availability_zone.clone())
            .filter(|z| !z.is_empty())
            .collect();
        zones.sort();
        zones.dedup();
        if zones.is_empty() {
            zones.push("nova".into());
        }
        zones
    }

    /// Whether backend `name` has been heard from within `service_down_time`.
    pub fn backend_up(&self, row: &strata_projections::volume::BackendRow) -> bool {
        row.last_seen.is_some_and(|seen| {
            chrono::Utc::now()
                .signed_duration_since(seen)
                .to_std()
                .map_or(true, |age| age <= self.service_down_time)
        })
    }
}

pub fn default_type_row() -> VolumeTypeRow {
    VolumeTypeRow {
        id: DEFAULT_TYPE_ID.to_string(),
        state: VolumeType {
            exists: true,
            deleted: false,
            name: DEFAULT_TYPE_NAME.into(),
            description: DEFAULT_TYPE_DESCRIPTION.into(),
            is_public: true,
            extra_specs: BTreeMap::new(),
            access: Default::default(),
        },
        created_at: String::new(),
    }
}

impl Volumes {
    /// Backup `id` as `caller` may see it.
    pub fn backup(&self, caller: &Caller, id: &str) -> Result<BackupRow, VolumeError> {
        let view = self.view.snapshot();
        view.backups
            .get(id)
            .filter(|b| caller.is_admin || b.state.project_id == caller.project_id)
            .cloned()
            .ok_or_else(|| VolumeError::backup_not_found(id))
    }
}

/// The backup's side of a restore into volume `volume_id` (refused when it is not available).
pub async fn begin_restore(
    vols: &Volumes,
    caller: &Caller,
    backup_id: &str,
    volume_id: &str,
) -> Result<(), VolumeError> {
    vols.run(
        &vols.backups,
        backup_id,
        BackupCommand::BeginRestore {
            volume_id: volume_id.to_string(),
        },
        &caller.meta,
    )
    .await?;
    Ok(())
}

fn ceil_gb(bytes: u64) -> u64 {
    bytes.div_ceil(1 << 30)
}

/// The image `r` names (id, or a unique name) for `caller`, checked against the volume size as Cinder does.
pub fn image_for_volume(vols: &Volumes, caller: &Caller, r: &str) -> Result<ImageRow, VolumeError> {
    let view = vols.images.snapshot();
    let readable = |i: &&ImageRow| caller.is_admin || i.readable_by(&caller.project_id);
    if let Some(i) = view.image(r).filter(readable) {
        return Ok(i.clone());
    }
    let by_name: Vec<_> = view
        .visible_to(&caller.project_id, caller.is_admin)
        .filter(|i| i.name == r)
        .collect();
    match by_name.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(VolumeError::bad_request(
            "Invalid image identifier or unable to access requested image.",
        )),
        _ => Err(VolumeError::conflict(format!(
            "Multiple matches found for '{r}', use an ID to be more specific."
        ))),
    }
}

/// A volume to make, as a request names it (sources by id, type and zone by name or id).
#[derive(Debug, Clone, Default)]
pub struct NewVolume {
    pub name: String,
    pub description: String,
    /// `None`: the source's size.
    pub size_gb: Option<u64>,
    pub image_ref: Option<String>,
    pub snapshot_id: Option<String>,
    pub source_volid: Option<String>,
    pub volume_type: Option<String>,
    pub availability_zone: Option<String>,
    pub metadata: BTreeMap<String, String>,
    /// Restore this backup into the new volume (`None` size: the backup's).
    pub backup_id: Option<String>,
}

/// Check a volume request for `caller` as Cinder does (sources usable, sizes, zone, type), reserve its quota
/// and record it (`creating`); the volume service takes it from there. Used by `POST /volumes` and by Nova
/// when it boots a server from a new volume.
pub async fn create_volume(
    vols: &Volumes,
    identity: &Identity,
    caller: &Caller,
    request: NewVolume,
) -> Result<VolumeRow, VolumeError> {
    let NewVolume {
        name,
        description,
        size_gb: requested_size,
        image_ref,
        snapshot_id,
        source_volid,
        volume_type: requested_type,
        availability_zone: requested_az,
        metadata,
        backup_id,
    } = request;
    // The sources: they must exist for the caller and be usable.
    let snapshot = snapshot_id
        .as_deref()
        .map(|s| vols.snapshot(caller, s))
        .transpose()?;
    if let Some(s) = &snapshot {
        if s.state.status != "available" {
            return Err(VolumeError::bad_request(
                "Invalid snapshot: Originating snapshot status must be one of 'available' values",
            ));
        }
    }
    let source = source_volid
        .as_deref()
        .map(|s| vols.volume(caller, s))
        .transpose()?;
    if let Some(s) = &source {
        if !matches!(s.state.status.as_str(), st::AVAILABLE | st::IN_USE) {
            return Err(VolumeError::invalid_volume(
                "Originating source volume status must be one of 'available, in-use' values",
            ));
        }
    }
    let snapshot_volume = snapshot.as_ref().and_then(|s| {
        let view = vols.view.snapshot();
        view.volume(&s.state.volume_id).cloned()
    });
    let image = image_ref
        .as_deref()
        .map(|r| image_for_volume(vols, caller, r))
        .transpose()?;
    let backup = backup_id
        .as_deref()
        .map(|b| vols.backup(caller, b))
        .transpose()?;
    if let Some(b) = &backup {
        if b.state.status != strata_actors::volume::backup_status::AVAILABLE {
            return Err(VolumeError::bad_request(
                "Invalid backup: Backup status must be available",
            ));
        }
    }

    let size = match (requested_size, &snapshot, &source) {
        (Some(s), _, _) => s,
        (None, Some(snap), _) => snap.state.size_gb,
        (None, None, Some(src)) => src.state.size_gb,
        (None, None, None) if backup.is_some() => backup.as_ref().map_or(0, |b| b.state.size_gb),
        (None, None, None) => {
            return Err(VolumeError::invalid_input(
                "Volume size 'None' must be an integer and greater than 0",
            ))
        }
    };
    if let Some(src) = &source {
        if size < src.state.size_gb {
            return Err(VolumeError::invalid_input(format!(
                "Volume size '{size}'GB cannot be smaller than original volume size  {}GB. They must be >= original volume size.",
                src.state.size_gb
            )));
        }
    } else if let Some(snap) = &snapshot {
        if size < snap.state.size_gb {
            return Err(VolumeError::invalid_input(format!(
                "Volume size '{size}'GB cannot be smaller than the snapshot size {}GB. They must be >= original snapshot size.",
                snap.state.size_gb
            )));
        }
    }
    if let Some(b) = &backup {
        if size < b.state.size_gb {
            return Err(VolumeError::invalid_input(format!(
                "Volume size '{size}'GB cannot be smaller than the backup size {}GB.",
                b.state.size_gb
            )));
        }
    }
    if let Some(img) = &image {
        if img.status != "active" {
            return Err(VolumeError::invalid_input(format!(
                "Image {} is not active.",
                img.id
            )));
        }
        let image_gb = ceil_gb(img.size.unwrap_or(0));
        if image_gb > size {
            return Err(VolumeError::invalid_input(format!(
                "Size of specified image {image_gb}GB is larger than volume size {size}GB."
            )));
        }
        if size < img.min_disk {
            return Err(VolumeError::invalid_input(format!(
                "Volume size {size}GB cannot be smaller than the image minDisk size {}GB.",
                img.min_disk
            )));
        }
        if let Some(vs) = img.virtual_size {
            if ceil_gb(vs) > size {
                return Err(VolumeError::invalid_input(format!(
                    "Image virtual size is {}GB and doesn't fit in a volume of size {size}GB.",
                    ceil_gb(vs)
                )));
            }
        }
    }

    // The zone: asked for, or the source's; it must be one of the backends'.
    let source_az = source
        .as_ref()
        .map(|s| s.state.availability_zone.clone())
        .or_else(|| {
            snapshot_volume
                .as_ref()
                .map(|s| s.state.availability_zone.clone())
        });
    let zones = vols.zones();
    // A backup's zone is a preference: it may name a zone no backend serves any more.
    let source_az = source_az.or_else(|| {
        backup
            .as_ref()
            .map(|b| b.state.availability_zone.clone())
            .filter(|z| zones.contains(z))
    });
    let availability_zone = match (&requested_az, &source_az) {
        (Some(az), Some(src)) if az != src => {
            return Err(VolumeError::invalid_input(if source.is_some() {
                "Volume must be in the same availability zone as the source volume"
            } else {
                "Volume must be in the same availability zone as the snapshot"
            }))
        }
        (Some(az), _) => az.clone(),
        (None, Some(src)) => src.clone(),
        (None, None) => zones.first().cloned().unwrap_or_else(|| "nova".into()),
    };
    if !zones.contains(&availability_zone) && source_az.as_ref() != Some(&availability_zone) {
        return Err(VolumeError::bad_request(format!(
            "Invalid input received: Availability zone '{availability_zone}' is invalid."
        )));
    }

    // The type: asked for, else the source's, else the default one.
    let type_id = match &requested_type {
        Some(t) => {
            let found = vols.visible_type(caller, t).ok_or_else(|| {
                if uuid::Uuid::parse_str(t).is_ok() {
                    VolumeError::type_not_found(t)
                } else {
                    VolumeError::not_found(format!("Volume type with name {t} could not be found."))
                }
            })?;
            found.id
        }
        None => source
            .as_ref()
            .or(snapshot_volume.as_ref())
            .map(|s| s.state.volume_type_id.clone())
            .unwrap_or_default(),
    };
    // The default type is recorded at its first use, after the quota check (a refused request records
    // nothing).
    let default = type_id.is_empty() || type_id == DEFAULT_TYPE_ID;
    let type_id = if default {
        DEFAULT_TYPE_ID.to_string()
    } else {
        type_id
    };
    let type_name = vols.type_name(&type_id);
    let multiattach = {
        let view = vols.view.snapshot();
        view.types.get(&type_id).is_some_and(|t| {
            t.state.extra_specs.get("multiattach").is_some_and(|v| {
                v.trim_start_matches("<is>")
                    .trim()
                    .eq_ignore_ascii_case("true")
            })
        })
    };

    // Quota first: the reservation and the check are one append on the project's usage stream.
    let id = uuid::Uuid::new_v4().to_string();
    let holder = format!("volume:{id}");
    vols.usage
        .execute(
            &caller.project_id,
            VolumeUsageCommand::Reserve {
                holder: holder.clone(),
                amounts: VolumeAmounts {
                    volumes: 1,
                    gigabytes: size as i64,
                    volume_type: type_name,
                    ..Default::default()
                },
                limits: vols.limits(&caller.project_id),
            },
            caller.meta.clone(),
        )
        .await?;
    let type_id = if default {
        match vols.default_type(identity, &caller.meta).await {
            Ok(t) => t,
            Err(e) => {
                release(vols, &caller.project_id, &holder, caller).await;
                return Err(e);
            }
        }
    } else {
        type_id
    };
    let created = pb::VolumeCreated {
        project_id: caller.project_id.clone(),
        user_id: caller.user_id.clone(),
        name,
        description,
        size_gb: size,
        volume_type_id: type_id,
        availability_zone,
        source_image_id: image.as_ref().map(|i| i.id.clone()).unwrap_or_default(),
        source_snapshot_id: snapshot_id.unwrap_or_default(),
        source_volume_id: source_volid.unwrap_or_default(),
        metadata: metadata.into_iter().collect(),
        multiattach,
        request_id: caller.meta.correlation_id.clone(),
        bootable: false,
        backup_id: backup_id.clone().unwrap_or_default(),
    };
    if let Err(e) = vols
        .run(
            &vols.volumes,
            &id,
            VolumeCommand::Create(Box::new(created)),
            &caller.meta,
        )
        .await
    {
        release(vols, &caller.project_id, &holder, caller).await;
        return Err(e.into());
    }
    if let Some(b) = &backup_id {
        // The backup's side of the restore; refused (it stopped being available), the new volume goes.
        if let Err(e) = begin_restore(vols, caller, b, &id).await {
            discard_volume(vols, caller, &id).await;
            return Err(e);
        }
    }
    vols.volume(caller, &id)
}

/// Give a quota reservation back (after a write that followed it failed).
pub async fn release(vols: &Volumes, project: &str, holder: &str, caller: &Caller) {
    if let Err(e) = vols
        .usage
        .execute(
            project,
            VolumeUsageCommand::Release {
                holder: holder.to_string(),
            },
            caller.meta.clone(),
        )
        .await
    {
        tracing::error!(project, holder, error = %e, "releasing volume quota failed");
    }
}

/// Cinder's refusal of a delete (status, attachments, snapshots).
pub fn undeletable(force: bool) -> VolumeError {
    let status = if force {
        String::new()
    } else {
        "status must be available or error or error_restoring or error_extending or error_managing and "
            .to_string()
    };
    VolumeError::invalid_volume(format!(
        "Volume {status}must not be migrating, attached, belong to a group, have snapshots, awaiting a transfer, or be disassociated from snapshots after volume transfer."
    ))
}

/// Start deleting a volume (its snapshots first with `cascade`), after the checks Cinder makes.
/// Delete a volume made for a request that then failed (forced: it may still be creating).
pub async fn discard_volume(vols: &Volumes, caller: &Caller, id: &str) {
    let row = vols.view.snapshot().volume(id).cloned();
    if let Some(row) = row {
        if let Err(e) = begin_delete(vols, caller, &row, true, true).await {
            tracing::error!(volume = %id, error = %e, "could not delete a volume made for a failed request");
        }
    }
}

pub async fn begin_delete(
    vols: &Volumes,
    caller: &Caller,
    row: &VolumeRow,
    cascade: bool,
    force: bool,
) -> Result<(), VolumeError> {
    let v = &row.state;
    if v.status == st::DELETING {
        return Ok(());
    }
    let snapshots: Vec<(String, String)> = {
        let view = vols.view.snapshot();
        view.snapshots_of(&row.id)
            .map(|s| (s.id.clone(), s.state.status.clone()))
            .collect()
    };
    let deletable = [
        st::AVAILABLE,
        st::ERROR,
        "error_restoring",
        st::ERROR_EXTENDING,
        "error_managing",
    ];
    if !v.attachments.is_empty() || (!force && !deletable.contains(&v.status.as_str())) {
        return Err(undeletable(force));
    }
    if !snapshots.is_empty() {
        let ok = cascade
            && snapshots
                .iter()
                .all(|(_, s)| force || matches!(s.as_str(), "available" | "error" | "deleting"));
        if !ok {
            return Err(undeletable(force));
        }
        for (sid, _) in &snapshots {
            vols.run(
                &vols.snapshots,
                sid,
                SnapshotCommand::BeginDelete,
                &caller.meta,
            )
            .await?;
        }
    }
    vols.run(
        &vols.volumes,
        &row.id,
        VolumeCommand::Begin {
            task: VolumeTask::Delete { force },
            request_id: caller.meta.correlation_id.clone(),
        },
        &caller.meta,
    )
    .await?;
    Ok(())
}

/// What volume `row` holds of its project's quota now (`None`: nothing).
pub fn held(vols: &Volumes, row: &VolumeRow) -> Option<VolumeAmounts> {
    let view = vols.view.snapshot();
    view.usage
        .get(&row.state.project_id)
        .and_then(|u| u.holders.get(&format!("volume:{}", row.id)))
        .cloned()
}

/// Set what volume `row` holds of its project's quota to `amounts` (refused past `limits`).
async fn reserve_volume(
    vols: &Volumes,
    caller: &Caller,
    row: &VolumeRow,
    amounts: VolumeAmounts,
    limits: BTreeMap<String, i64>,
) -> Result<(), VolumeError> {
    vols.usage
        .execute(
            &row.state.project_id,
            VolumeUsageCommand::Reserve {
                holder: format!("volume:{}", row.id),
                amounts,
                limits,
            },
            caller.meta.clone(),
        )
        .await?;
    Ok(())
}

/// Put a volume's reservation back as it was before a task that did not start.
async fn restore_held(
    vols: &Volumes,
    caller: &Caller,
    row: &VolumeRow,
    old: Option<VolumeAmounts>,
) {
    let result = match old {
        // Going back never passes a limit: no limits apply.
        Some(a) => reserve_volume(vols, caller, row, a, BTreeMap::new()).await,
        None => {
            release(
                vols,
                &row.state.project_id,
                &format!("volume:{}", row.id),
                caller,
            )
            .await;
            Ok(())
        }
    };
    if let Err(e) = result {
        tracing::error!(volume = %row.id, error = %e, "could not restore the volume's quota");
    }
}

/// Start `task` on volume `row` once its quota holds `amounts` (extend: the new size; retype: the new
/// type); when the task cannot start, the reservation goes back to what it was.
pub async fn begin_with_quota(
    vols: &Volumes,
    caller: &Caller,
    row: &VolumeRow,
    amounts: VolumeAmounts,
    task: VolumeTask,
) -> Result<(), VolumeError> {
    let old = held(vols, row);
    reserve_volume(
        vols,
        caller,
        row,
        amounts,
        vols.limits(&row.state.project_id),
    )
    .await?;
    let cmd = VolumeCommand::Begin {
        task,
        request_id: caller.meta.correlation_id.clone(),
    };
    if let Err(e) = vols.run(&vols.volumes, &row.id, cmd, &caller.meta).await {
        restore_held(vols, caller, row, old).await;
        return Err(e.into());
    }
    Ok(())
}

/// A snapshot to take of a volume.
#[derive(Debug, Clone, Default)]
pub struct NewSnapshot {
    pub name: String,
    pub description: String,
    pub metadata: BTreeMap<String, String>,
}

/// Record a snapshot of `volume` (checked by the caller: visible, in a state that allows it) after
/// reserving its quota (one snapshot and the volume's size); the volume service takes it from there. A
/// refused record gives the quota back. Returns the snapshot's id.
pub async fn create_snapshot(
    vols: &Volumes,
    caller: &Caller,
    volume: &VolumeRow,
    request: NewSnapshot,
) -> Result<String, VolumeError> {
    let vs = &volume.state;
    let id = uuid::Uuid::new_v4().to_string();
    let holder = format!("snapshot:{id}");
    vols.usage
        .execute(
            &caller.project_id,
            VolumeUsageCommand::Reserve {
                holder: holder.clone(),
                amounts: VolumeAmounts {
                    snapshots: 1,
                    gigabytes: vs.size_gb as i64,
                    volume_type: vols.type_name(&vs.volume_type_id),
                    ..Default::default()
                },
                limits: vols.limits(&caller.project_id),
            },
            caller.meta.clone(),
        )
        .await?;
    let created = pb::SnapshotCreated {
        project_id: caller.project_id.clone(),
        user_id: caller.user_id.clone(),
        volume_id: volume.id.clone(),
        name: request.name,
        description: request.description,
        size_gb: vs.size_gb,
        metadata: request.metadata.into_iter().collect(),
        request_id: caller.meta.correlation_id.clone(),
    };
    if let Err(e) = vols
        .run(
            &vols.snapshots,
            &id,
            SnapshotCommand::Create(Box::new(created)),
            &caller.meta,
        )
        .await
    {
        release(vols, &caller.project_id, &holder, caller).await;
        return Err(e.into());
    }
    Ok(id)
}

/// Record a backup of volume `volume` (or of its snapshot, named in `created.snapshot_id`): the caller
/// checked the request (state, force, parent, zone) and filled in `created` but for the ids. Quota first
/// (one backup and the volume's size in backup gigabytes), then the volume's side (`backing-up`; a backup
/// of a snapshot leaves the volume as it is), then the backup; a refusal undoes the earlier steps. Returns
/// the backup's id.
pub async fn create_backup(
    vols: &Volumes,
    caller: &Caller,
    volume: &VolumeRow,
    force: bool,
    mut created: pb::BackupCreated,
) -> Result<String, VolumeError> {
    let id = uuid::Uuid::new_v4().to_string();
    let holder = format!("backup:{id}");
    vols.usage
        .execute(
            &caller.project_id,
            VolumeUsageCommand::Reserve {
                holder: holder.clone(),
                amounts: VolumeAmounts {
                    backups: 1,
                    backup_gigabytes: volume.state.size_gb as i64,
                    ..Default::default()
                },
                limits: vols.limits(&caller.project_id),
            },
            caller.meta.clone(),
        )
        .await
        .map_err(backup_quota_error)?;
    let volume_task = created.snapshot_id.is_empty();
    if volume_task {
        let begun = vols
            .run(
                &vols.volumes,
                &volume.id,
                VolumeCommand::Begin {
                    task: VolumeTask::Backup { force },
                    request_id: caller.meta.correlation_id.clone(),
                },
                &caller.meta,
            )
            .await;
        if let Err(e) = begun {
            release(vols, &caller.project_id, &holder, caller).await;
            return Err(e.into());
        }
    }
    created.project_id = caller.project_id.clone();
    created.user_id = caller.user_id.clone();
    created.volume_id = volume.id.clone();
    created.size_gb = volume.state.size_gb;
    created.request_id = caller.meta.correlation_id.clone();
    if let Err(e) = vols
        .run(
            &vols.backups,
            &id,
            BackupCommand::Create(Box::new(created)),
            &caller.meta,
        )
        .await
    {
        if volume_task {
            let _ = vols
                .run(
                    &vols.volumes,
                    &volume.id,
                    VolumeCommand::Finish {
                        expected: st::BACKING_UP.into(),
                    },
                    &caller.meta,
                )
                .await;
        }
        release(vols, &caller.project_id, &holder, caller).await;
        return Err(e.into());
    }
    Ok(id)
}

/// Cinder words a refusal of the backup gigabytes quota its own way.
fn backup_quota_error(e: strata_actors::CommandError) -> VolumeError {
    if let strata_actors::CommandError::Domain(strata_actors::DomainError::OverQuota(m)) = &e {
        if m.contains("backup_gigabytes") {
            let tail = m.rfind("Requested ").map(|i| &m[i..]).unwrap_or_default();
            return VolumeError::OverQuota(format!(
                "Requested backup exceeds allowed Backup gigabytes quota. {tail}"
            ));
        }
    }
    e.into()
}

/// Start uploading volume `row` to a new image (`os-volume_upload_image`): the image service records the
/// image (`create`, an `ImageCommand::Create` for `image_id`, with its quota slot), then the volume's task
/// starts; the volume service exports the volume and hands the bytes to the image service. A task that
/// cannot start removes the image again.
pub async fn upload_to_image(
    vols: &Volumes,
    caller: &Caller,
    row: &VolumeRow,
    image_id: &str,
    create: strata_actors::image::ImageCommand,
    force: bool,
) -> Result<(), VolumeError> {
    vols.glance
        .create_record(&caller.project_id, image_id, create, &caller.meta)
        .await?;
    let cmd = VolumeCommand::Begin {
        task: VolumeTask::UploadImage {
            image_id: image_id.to_string(),
            force,
        },
        request_id: caller.meta.correlation_id.clone(),
    };
    if let Err(e) = vols.run(&vols.volumes, &row.id, cmd, &caller.meta).await {
        vols.glance
            .discard_record(&caller.project_id, image_id, &caller.meta)
            .await;
        return Err(e.into());
    }
    Ok(())
}
