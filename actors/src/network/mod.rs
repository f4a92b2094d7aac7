//! Networking (Neutron): networks with their subnets and address allocations, ports, and quotas, each a
//! pure aggregate.
//!
//! Streams: `network-<uuid>` (the network, its subnets, every MAC and fixed IP it hands out),
//! `port-<uuid>`, `network-usage-<project>`, `network-quota-<project>`.

pub mod driver;
mod floating_ip;
pub mod ipam;
mod net;
mod port;
mod quota;
mod router;
mod security_group;

pub use net::{
    is_auto_delete, mac_number, IpRequest, Network, NetworkChanges, NetworkCommand, NetworkSpec,
    OwnerKind, PortPlace, Subnet, SubnetChanges, SubnetSpec, AUTO_DELETE_OWNERS, GATEWAY_OWNERS,
};
pub use port::{Binding, Port, PortChanges, PortCommand, PortSpec};
pub use quota::{
    default_network_limits, Holders, NetworkQuota, NetworkQuotaCommand, NetworkUsage,
    NetworkUsageCommand, NETWORK_QUOTA_DEFAULTS,
};

pub use floating_ip::{
    Association, FloatingIp, FloatingIpCommand, STATUS_ACTIVE, STATUS_DOWN, STATUS_ERROR,
};
pub use router::{Gateway, Interface, Route, Router, RouterCommand, RouterSubnet, MAX_ROUTES};
pub use security_group::{
    check_rule, initial_rules, protocol_number, Rule, RuleError, RuleRequest, SecurityGroup,
    SecurityGroupCommand, DEFAULT_GROUP_NAME, PROTOCOLS,
};

/// Neutron's aggregate types, for generic readers (`crate::registry`).
pub const AGGREGATES: &[crate::registry::StateFolder] = &[
    crate::registry::folder::<Network>(),
    crate::registry::folder::<Port>(),
    crate::registry::folder::<Router>(),
    crate::registry::folder::<FloatingIp>(),
    crate::registry::folder::<SecurityGroup>(),
    crate::registry::folder::<NetworkUsage>(),
    crate::registry::folder::<NetworkQuota>(),
];

#[cfg(test)]
mod tests;
