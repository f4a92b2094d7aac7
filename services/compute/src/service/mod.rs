//! The compute service's state (Nova's behaviour behind `/v2.1`): the views and aggregates requests read and
//! write, with read-your-writes waits, and the boot flow ([`boot`]) that `POST /servers` and, later,
//! orchestration call. The HTTP front end (`strata-api`'s `compute` module) parses, checks Nova's policy,
//! calls this and renders Nova's shapes; the conductor and the host agents ([`crate::engine`]) do the rest.

mod boot;
mod interfaces;
mod volumes;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use strata_actors::compute::quota::{default_limits, ComputeQuota, ComputeUsage};
use strata_actors::compute::{
    ComputeHost, Flavor, HostAggregate, Keypair, Sequence, Server, ServerGroup,
};
use strata_actors::{Aggregate, CommandError, Outcome, Repository, Runtime};
use strata_events::Metadata;
use strata_image::Images;
use strata_network::Networks;
use strata_projections::compute::{ComputeView, HostRow};
use strata_projections::image::ImageView;
use strata_projections::network::NetworkView;
use strata_projections::volume::VolumeView;
use strata_projections::{Live, Snapshot};

use crate::Engine;

pub use boot::{boot, BootRequest, Booted};
pub use interfaces::{attach_interface, detach_interface};
pub use volumes::{attach_volume, detach_volume};

pub struct Compute {
    pub view: Live<ComputeView>,
    /// Images, to validate `imageRef` and show image names.
    pub images: Live<ImageView>,
    /// The image service, where createImage records snapshots.
    pub glance: Arc<Images>,
    pub engine: Arc<Engine>,
    pub flavors: Repository<Flavor>,
    pub keypairs: Repository<Keypair>,
    pub servers: Repository<Server>,
    pub hosts: Repository<ComputeHost>,
    pub usage: Repository<ComputeUsage>,
    pub quotas: Repository<ComputeQuota>,
    pub groups: Repository<ServerGroup>,
    pub aggregates: Repository<HostAggregate>,
    pub sequences: Repository<Sequence>,
    /// The limits of projects that set none (Nova's quota defaults).
    pub default_limits: BTreeMap<String, i64>,
    /// Cinder's volumes, for attachments (`os-volume_attachments`).
    pub volume_view: Live<strata_projections::volume::VolumeView>,
    pub volumes: Repository<strata_actors::volume::Volume>,
    /// Neutron, for servers' ports (`network.rs`).
    pub networks: Arc<Networks>,
}

const READ_YOUR_WRITES: Duration = Duration::from_secs(10);

/// The views a Nova request renders from, taken together once at the start of the rendering and passed
/// down: a response shows one state of each view, and no part of it reads a view again.
pub struct Views {
    pub compute: Snapshot<ComputeView>,
    pub network: Snapshot<NetworkView>,
    pub volume: Snapshot<VolumeView>,
}

impl Compute {
    pub fn new(
        runtime: Arc<Runtime>,
        view: Live<ComputeView>,
        glance: Arc<Images>,
        engine: Arc<Engine>,
        volume_view: Live<strata_projections::volume::VolumeView>,
        networks: Arc<Networks>,
    ) -> Self {
        Compute {
            view,
            images: glance.view.clone(),
            glance,
            engine,
            flavors: Repository::new(runtime.clone()),
            keypairs: Repository::new(runtime.clone()),
            servers: Repository::new(runtime.clone()),
            hosts: Repository::new(runtime.clone()),
            usage: Repository::new(runtime.clone()),
            quotas: Repository::new(runtime.clone()),
            groups: Repository::new(runtime.clone()),
            aggregates: Repository::new(runtime.clone()),
            sequences: Repository::new(runtime.clone()),
            volumes: Repository::new(runtime),
            volume_view,
            networks,
            default_limits: default_limits(),
        }
    }

    /// Run a volume command and wait until the volume view shows it.
    pub async fn run_volume(
        &self,
        volume_id: &str,
        cmd: strata_actors::volume::VolumeCommand,
        meta: &Metadata,
    ) -> Result<(), CommandError> {
        let out = self.volumes.execute(volume_id, cmd, meta.clone()).await?;
        if let Some(p) = out.position {
            self.volume_view.wait_for(p, READ_YOUR_WRITES).await;
        }
        Ok(())
    }

    /// A project's quota limits: the defaults overlaid with what was set for it.
    pub fn limits(&self, project_id: &str) -> BTreeMap<String, i64> {
        self.view
            .snapshot()
            .limits_of(project_id, &self.default_limits)
    }

    /// One snapshot of every view a response renders from.
    pub fn views(&self) -> Views {
        Views {
            compute: self.view.snapshot(),
            network: self.networks.view.snapshot(),
            volume: self.volume_view.snapshot(),
        }
    }

    /// Whether compute host `name`'s service is up in `view` (heard from recently and not forced down).
    pub fn host_up(&self, view: &ComputeView, name: &str) -> bool {
        view.hosts.get(name).is_some_and(|h| self.service_up(h))
    }

    /// Whether a host row's service is up now (heard from recently and not forced down).
    pub fn service_up(&self, h: &HostRow) -> bool {
        crate::scheduler::service_up(
            h,
            chrono::Utc::now(),
            self.engine.config().scheduler.service_down_time,
        )
    }

    /// Run a command and wait until the compute view shows it.
    pub async fn run<A: Aggregate>(
        &self,
        repo: &Repository<A>,
        id: &str,
        cmd: A::Command,
        meta: &Metadata,
    ) -> Result<Outcome<A>, CommandError> {
        let out = repo.execute(id, cmd, meta.clone()).await?;
        if let Some(p) = out.position {
            if !self.view.wait_for(p, READ_YOUR_WRITES).await {
                tracing::warn!(
                    position = p,
                    "compute view did not reach the write's position in time"
                );
            }
        }
        Ok(out)
    }
}
