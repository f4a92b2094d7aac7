//! Networking (Neutron): networks with their subnets and address allocations, ports, and quotas, each a
//! pure aggregate.
//!
//! Streams: `network-<uuid>` (the network, its subnets, every MAC and fixed IP it hands out),
//! `port-<uuid>`, `network-usage-<project>`, `network-quota-<project>`.

pub mod ipam;
mod net;
mod port;
mod quota;

pub use net::{
    is_auto_delete, IpRequest, Network, NetworkChanges, NetworkCommand, NetworkSpec, PortPlace,
    Subnet, SubnetChanges, SubnetSpec, AUTO_DELETE_OWNERS, GATEWAY_OWNERS,
};
pub use port::{Binding, Port, PortChanges, PortCommand, PortSpec};
pub use quota::{
    default_network_limits, NetworkQuota, NetworkQuotaCommand, NetworkUsage, NetworkUsageCommand,
    NETWORK_QUOTA_DEFAULTS,
};

#[cfg(test)]
mod tests;
