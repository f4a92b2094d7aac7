//! Backups: the chunked backup directory per backup (full and incremental), the backup target it is
//! written to, restore into a volume, delete, and the sweeps of what an interrupted backup left.

use super::*;

impl Engine {
    /// Where backup `id` keeps its manifest and chunks.
    pub fn backup_dir(&self, id: &str) -> PathBuf {
        self.config.state_dir.join(BACKUP_DIR).join(id)
    }

    /// Remove what an interrupted backup left under a temporary name (the format writes a backup under a
    /// hidden `.tmp-` name and renames it when complete).
    pub(super) async fn sweep_backup_dir(&self) {
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
    pub(super) async fn remove_backup_dir(&self, id: &str) -> Result<(), String> {
        let dir = self.backup_dir(id);
        match tokio::fs::remove_dir_all(&dir).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(format!("cannot remove {}: {e}", dir.display())),
        }
    }

    pub(super) async fn backup_step(&self, id: &str, b: &Backup, cmd: BackupCommand) -> bool {
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
    pub(super) async fn end_orphaned_wait(&self, id: &str, v: &Volume) {
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
    pub(super) async fn finish_restores_into(&self, volume_id: &str) {
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
    pub(super) async fn backup_files(
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

    pub(super) fn fetch_dir(&self, task: &str) -> PathBuf {
        self.config
            .state_dir
            .join(BACKUP_DIR)
            .join(format!(".tmp-fetch-{task}"))
    }

    /// Remove what [`Self::backup_files`] downloaded for `task`.
    pub(super) async fn drop_fetched(&self, task: &str) {
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
    pub(super) async fn backup_chain(
        &self,
        id: &str,
        task: &str,
    ) -> Result<(PathBuf, Vec<PathBuf>), String> {
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
    pub(super) async fn restore(&self, id: &str, v: &Volume) {
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

    pub(super) async fn reconcile_backup(&self, id: &str) {
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
    pub(super) async fn end_backing_up(&self, id: &str, b: &Backup) {
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

    pub(super) async fn create_backup(&self, id: &str, b: &Backup) {
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

    pub(super) async fn delete_backup(&self, id: &str, b: &Backup) {
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
}
