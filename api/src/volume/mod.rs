//! Cinder (block storage v3): version discovery, microversions, volumes, volume types, snapshots, quotas,
//! limits, services, availability zones and pools, with Cinder's policy and fault bodies. The API records
//! what was asked; the volume service (strata-volume) does the work on the backends.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use strata_actors::volume::{
    default_volume_limits, Backend, Snapshot, Volume, VolumeQuota, VolumeType, VolumeUsage,
};
use strata_actors::{Aggregate, Outcome, Repository, Runtime};
use strata_events::Metadata;
use strata_projections::image::ImageView;
use strata_projections::volume::VolumeView;
use strata_projections::Live;

pub struct Volumes {
    pub view: Live<VolumeView>,
    /// Images, to validate `imageRef` and show image names.
    pub images: Live<ImageView>,
    /// The image service, where os-volume_upload_image records images.
    pub glance: web::Data<crate::image::Images>,
    pub volumes: Repository<Volume>,
    pub snapshots: Repository<Snapshot>,
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
        glance: web::Data<crate::image::Images>,
        service_down_time: Duration,
    ) -> Self {
        Volumes {
            view,
            images: glance.view.clone(),
            glance,
            volumes: Repository::new(runtime.clone()),
            snapshots: Repository::new(runtime.clone()),
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
        self.view.read().limits_of(project_id, &self.default_limits)
    }
}

/// Register every Cinder route (being written).
pub fn configure(_cfg: &mut web::ServiceConfig) {}
