//! strata-network: Neutron's behaviour — networks, subnets, ports with exact IPAM, routers, floating IPs,
//! security groups, quotas, tags, the project's auto-allocated network, the start-up sweeps of what a crash
//! left half done, and the datapath agent that keeps a [`NetworkDriver`] in step with the log. The HTTP API
//! (`strata-api`) parses, checks policy, calls these functions and renders; Nova's conductor and API call
//! them directly (ports for servers).
//!
//! A network's address space (subnets, IP and MAC allocations) is one aggregate (`network-<uuid>`), so every
//! address decision is one append under optimistic concurrency; ports are their own aggregates. Writes that
//! span streams (a port: quota, addresses, the port record) first decide the address allocation against the
//! network's current state without appending, so a request refused for its addresses or its quota appends
//! nothing; only the loser of a race undoes what it took.
//!
//! Architecture invariant: no HTTP types; every function takes a [`Caller`] and returns a domain row or a
//! [`NetworkError`]. Policy (who may call what) is the API's; functions here check only visibility (another
//! project's resource is not found) and ownership where Neutron's own code does.
//!
//! [`NetworkDriver`]: strata_actors::network::driver::NetworkDriver

pub mod auto;
pub mod datapath;
mod error;
pub mod floating_ips;
pub mod input;
pub mod networks;
pub mod ports;
pub mod quotas;
pub mod routers;
pub mod security_groups;
pub mod servers;
pub mod subnets;
pub mod tags;

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::RwLock;
use strata_actors::compute::Sequence;
use strata_actors::network::{
    default_network_limits, FloatingIp, Network, NetworkQuota, NetworkUsage, NetworkUsageCommand,
    Port, Router, SecurityGroup,
};
use strata_actors::{Aggregate, CommandError, Outcome, Repository, Runtime};
use strata_events::Metadata;
use strata_projections::network::NetworkView;
use strata_projections::Live;

pub use error::NetworkError;
pub use networks::{bootstrap_public_network, default_mtu, PublicNetwork};
pub use ports::{
    bind_port, create_port, delete_port, sweep_leftovers, update_port, BindingRequest, NewPort,
    PortUpdate,
};
pub use quotas::{check_quota, release_quota, reserve_quota};
pub use strata_actors::network::IpRequest;
pub use strata_projections::network::PortRow;
pub use strata_service::Caller;
pub use tags::TagResource;

/// The Neutron service's state: the view, the repositories, and the hooks other networking code plugs in.
pub struct Networks {
    pub view: Live<NetworkView>,
    pub networks: Repository<Network>,
    pub ports: Repository<Port>,
    pub usage: Repository<NetworkUsage>,
    pub quotas: Repository<NetworkQuota>,
    /// Security groups, routers, floating IPs (`security_groups.rs`, `routers.rs`, `floating_ips.rs`).
    pub secgroups: Repository<SecurityGroup>,
    pub routers: Repository<Router>,
    pub floating_ips: Repository<FloatingIp>,
    /// Segmentation ids of tenant networks (`sequence-network-vni`).
    sequences: Repository<Sequence>,
    /// The limits of projects that set none (Neutron's quota defaults).
    pub default_limits: BTreeMap<String, i64>,
    /// The availability zones networks may be hinted to (the compute hosts' zone).
    pub availability_zones: Vec<String>,
    security_groups: RwLock<Option<Arc<dyn PortSecurityGroups>>>,
    tag_resources: RwLock<BTreeMap<String, Arc<dyn TagResource>>>,
}

/// What the security group code provides to ports. Without it, ports record the ids they are given and get
/// none by default.
#[async_trait::async_trait]
pub trait PortSecurityGroups: Send + Sync {
    /// The groups a port of `project_id` gets when its request names none (Neutron: the project's
    /// `default` group, made on first use).
    async fn default_groups(
        &self,
        networks: &Networks,
        caller: &Caller,
        project_id: &str,
    ) -> Result<Vec<String>, NetworkError>;
    /// Refuse ids that are not groups `caller` may give a port of `project_id` (Neutron: 404
    /// SecurityGroupNotFound).
    async fn validate(
        &self,
        networks: &Networks,
        caller: &Caller,
        project_id: &str,
        ids: &[String],
    ) -> Result<(), NetworkError>;
}

impl Networks {
    pub fn new(runtime: Arc<Runtime>, view: Live<NetworkView>) -> Self {
        let n = Networks {
            view,
            networks: Repository::new(runtime.clone()),
            ports: Repository::new(runtime.clone()),
            usage: Repository::new(runtime.clone()),
            quotas: Repository::new(runtime.clone()),
            secgroups: Repository::new(runtime.clone()),
            routers: Repository::new(runtime.clone()),
            floating_ips: Repository::new(runtime.clone()),
            sequences: Repository::new(runtime),
            default_limits: default_network_limits(),
            availability_zones: vec!["nova".to_string()],
            security_groups: RwLock::new(None),
            tag_resources: RwLock::new(BTreeMap::new()),
        };
        tags::register_core(&n);
        security_groups::install(&n);
        routers::install(&n);
        floating_ips::install(&n);
        n
    }

    pub fn sequences(&self) -> Repository<Sequence> {
        self.sequences.clone()
    }

    /// Plug in the security group code (see [`PortSecurityGroups`]).
    pub fn set_security_groups(&self, hook: Arc<dyn PortSecurityGroups>) {
        *self.security_groups.write() = Some(hook);
    }

    pub fn security_groups(&self) -> Option<Arc<dyn PortSecurityGroups>> {
        self.security_groups.read().clone()
    }

    /// Make `/v2.0/<collection>/{id}/tags` work for another resource kind.
    pub fn register_tags(&self, resource: Arc<dyn TagResource>) {
        self.tag_resources
            .write()
            .insert(resource.collection().to_string(), resource);
    }

    pub fn tag_resource(&self, collection: &str) -> Option<Arc<dyn TagResource>> {
        self.tag_resources.read().get(collection).cloned()
    }

    /// Run a command and wait until the network view shows it.
    pub async fn run<A: Aggregate>(
        &self,
        repo: &Repository<A>,
        id: &str,
        cmd: A::Command,
        meta: &Metadata,
    ) -> Result<Outcome<A>, CommandError> {
        strata_service::run(repo, &self.view, id, cmd, meta).await
    }

    /// A project's quota limits: the defaults overlaid with what was set for it.
    pub fn limits(&self, project_id: &str) -> BTreeMap<String, i64> {
        self.view
            .snapshot()
            .limits_of(project_id, &self.default_limits)
    }

    /// Give back a quota reservation (best effort: a failure is logged, the audit can find it).
    async fn undo_quota(&self, project_id: &str, holder: &str, meta: &Metadata) {
        let cmd = NetworkUsageCommand::Release {
            holder: holder.to_string(),
        };
        if let Err(e) = self.run(&self.usage, project_id, cmd, meta).await {
            tracing::error!(holder, error = %e, "releasing a network quota reservation failed");
        }
    }
}

pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}
