//! The Cinder scheduler: the backends a volume may go to (capacity, type extra specs against
//! capabilities, zone), claims on them, and the volume's placement.

use super::*;

impl Engine {
    /// The backends that can take `size_gb` for this volume, best (most claimable capacity) first.
    pub(super) fn candidates(&self, v: &Volume, size_gb: u64) -> Result<Vec<String>, String> {
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

    pub(super) async fn claim(
        &self,
        host: &str,
        claim_id: &str,
        size_gb: u64,
    ) -> Result<(), CommandError> {
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

    pub(super) async fn release(&self, host: &str, claim_id: &str) {
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

    pub(super) async fn release_usage(&self, project: &str, holder: &str) {
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

    pub(super) async fn schedule(&self, id: &str, v: &Volume) {
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
}
