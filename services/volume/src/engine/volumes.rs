//! The volume service's flows for volumes and snapshots: create (blank, from an image, a snapshot or
//! a volume), extend, upload to an image, revert, delete.

use super::*;

impl Engine {
    /// Fetch an image's bytes into a temporary file (checked against its MD5 when known).
    pub(super) async fn fetch_image(
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

    pub(super) async fn create(&self, id: &str, v: &Volume) {
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

    pub(super) async fn extend(&self, id: &str, v: &Volume) {
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

    pub(super) async fn upload(&self, id: &str, v: &Volume) {
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
            let r = sink
                .store(&image_id, path.clone(), &m)
                .await
                .map_err(|e| e.to_string());
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

    pub(super) async fn revert(&self, id: &str, v: &Volume) {
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

    pub(super) async fn delete(&self, id: &str, v: &Volume) {
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

    pub(super) async fn reconcile_snapshot(&self, id: &str) {
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
}
