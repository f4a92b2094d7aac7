//! The Compute service (Nova): flavors, keypairs, servers, compute hosts (claims, image cache, service state),
//! quotas, server groups and host aggregates, each a pure aggregate.
//!
//! A flavor is one stream, `flavor-<flavor id>`, where the id is chosen by the caller ("1", a UUID ...; the
//! API validates its characters). A deleted flavor stays deleted: its id is never reused (`Create` answers
//! `AlreadyExists`) and everything else answers `NotFound`. Flavor names are unique across flavors; the API
//! enforces that with the identity `NameClaim` aggregate (kind "flavor", scope "").
//!
//! A keypair is one stream, `keypair-<keypair_id(user, name)>`. Unlike a flavor, a deleted keypair's name can
//! be used again: `Create` after `Delete` starts afresh.
//!
//! [`ssh::fingerprint`] computes Nova's fingerprint of an OpenSSH public key.

mod flavor;
mod group;
mod host;
mod keypair;
pub mod quota;
pub mod server;
pub mod ssh;

pub use flavor::{Flavor, FlavorCommand};
pub use group::{
    HostAggregate, HostAggregateCommand, Next, Sequence, ServerGroup, ServerGroupCommand,
    GROUP_POLICIES,
};
pub use host::{Claim, ComputeHost, HostCommand, Inventory};
pub(crate) use keypair::escape_into;
pub use keypair::{keypair_id, Keypair, KeypairCommand, KEY_TYPES};
pub use server::{Action, BlockDevice, FlavorSpec, Server, ServerCommand, ServerPort};

/// Nova's aggregate types, for generic readers (`crate::registry`).
pub const AGGREGATES: &[crate::registry::StateFolder] = &[
    crate::registry::folder::<Server>(),
    crate::registry::folder::<Flavor>(),
    crate::registry::folder::<Keypair>(),
    crate::registry::folder::<ComputeHost>(),
    crate::registry::folder::<ServerGroup>(),
    crate::registry::folder::<HostAggregate>(),
    crate::registry::folder::<Sequence>(),
    crate::registry::folder::<quota::ComputeUsage>(),
    crate::registry::folder::<quota::ComputeQuota>(),
];

use crate::aggregate::DomainError;

/// Longest flavor id, flavor name, extra-spec key and value, and keypair name (Nova's limits).
pub const NAME_MAX: usize = 255;
/// Longest flavor description (Nova: 65535).
pub const DESCRIPTION_MAX: usize = 65535;
/// Largest ram_mb, vcpus, disk_gb, ephemeral_gb and swap_mb Nova accepts (its `db.MAX_INT`).
pub const MAX_INT: u64 = 2_147_483_647;
/// Largest rxtx_factor Nova accepts (its `SQL_SP_FLOAT_MAX`).
pub const RXTX_FACTOR_MAX: f64 = 3.40282e38;

fn invalid(field: &str, why: &str) -> DomainError {
    DomainError::Invalid(format!("Invalid input for field '{field}': {why}."))
}

/// 1..=`max` characters.
fn check_len(field: &str, value: &str, max: usize) -> Result<(), DomainError> {
    if value.is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    if value.chars().count() > max {
        return Err(invalid(
            field,
            &format!("must be at most {max} characters long"),
        ));
    }
    Ok(())
}
