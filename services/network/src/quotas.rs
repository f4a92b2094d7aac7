//! `/v2.0/quotas`: show (with `/details`: used, limit, reserved), defaults, update, reset, the admin list;
//! and [`reserve_quota`] / [`release_quota`], which every networking resource uses (the routers, floating
//! IPs and security groups too): usage is reservations on the project's `network-usage-<project>` stream,
//! appended with its expected version, so concurrent creates never pass a limit.

use strata_actors::network::NetworkUsageCommand;
use strata_actors::{Aggregate, CommandError, DomainError};
use strata_events::Metadata;

use super::{NetworkError, Networks};

/// Reserve one `resource` ("network", "port", "router", "floatingip", "security_group", ...) for `holder`
/// (by convention `<resource>:<id>`) in `project_id`'s usage; 409 OverQuota past the limit, with nothing
/// recorded. Reserving again for the same holder is a no-op.
pub async fn reserve_quota(
    networks: &Networks,
    meta: &Metadata,
    project_id: &str,
    resource: &str,
    holder: &str,
) -> Result<(), NetworkError> {
    let limit = networks
        .limits(project_id)
        .get(resource)
        .copied()
        .unwrap_or(-1);
    let cmd = NetworkUsageCommand::Reserve {
        holder: holder.to_string(),
        resource: resource.to_string(),
        limit,
    };
    match networks.run(&networks.usage, project_id, cmd, meta).await {
        Ok(_) => Ok(()),
        Err(CommandError::Domain(DomainError::OverQuota(_))) => {
            Err(NetworkError::over_quota(resource))
        }
        Err(e) => Err(e.into()),
    }
}

/// Whether `project_id` has room for one more `resource` now (409 OverQuota otherwise), without recording
/// anything: requests that make several appends check first, so a refusal records nothing.
pub async fn check_quota(
    networks: &Networks,
    project_id: &str,
    resource: &str,
    holder: &str,
) -> Result<(), NetworkError> {
    let limit = networks
        .limits(project_id)
        .get(resource)
        .copied()
        .unwrap_or(-1);
    let cmd = NetworkUsageCommand::Reserve {
        holder: holder.to_string(),
        resource: resource.to_string(),
        limit,
    };
    let (usage, _) = networks.usage.load(project_id).await?;
    match usage.decide(&cmd) {
        Ok(_) => Ok(()),
        Err(DomainError::OverQuota(_)) => Err(NetworkError::over_quota(resource)),
        Err(e) => Err(e.into()),
    }
}

/// Give back `holder`'s reservation (no-op when it holds none). Failures are logged, not returned: the
/// resource is already gone, and the usage can be audited from the log.
pub async fn release_quota(networks: &Networks, meta: &Metadata, project_id: &str, holder: &str) {
    networks.undo_quota(project_id, holder, meta).await;
}
