//! Networking quotas: `NetworkUsage` (stream `network-usage-<project>`) holds one unit of a resource per
//! holder (`port:<id>`, `router:<id>`, ...) and refuses a reservation past the limit, so the check and the
//! reservation are one append; `NetworkQuota` (stream `network-quota-<project>`) holds the limits that
//! differ from the defaults.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use strata_proto::network as pb;
use strata_proto::NetworkEvent as E;

use crate::aggregate::{Aggregate, DomainError};

/// Neutron's quota resources and their default limits (-1 = unlimited).
pub const NETWORK_QUOTA_DEFAULTS: &[(&str, i64)] = &[
    ("network", 100),
    ("subnet", 100),
    ("port", 500),
    ("router", 10),
    ("floatingip", 50),
    ("security_group", 10),
    ("security_group_rule", 100),
    ("subnetpool", -1),
    ("rbac_policy", 10),
];

pub fn default_network_limits() -> BTreeMap<String, i64> {
    NETWORK_QUOTA_DEFAULTS
        .iter()
        .map(|(k, v)| (k.to_string(), *v))
        .collect()
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NetworkUsage {
    /// holder -> resource
    pub holders: BTreeMap<String, String>,
}

impl NetworkUsage {
    pub fn used(&self, resource: &str) -> i64 {
        self.holders.values().filter(|r| *r == resource).count() as i64
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum NetworkUsageCommand {
    /// `holder` holds one `resource` from now on, unless `limit` (-1 = none) would be passed.
    Reserve {
        holder: String,
        resource: String,
        limit: i64,
    },
    Release {
        holder: String,
    },
}

impl Aggregate for NetworkUsage {
    type Command = NetworkUsageCommand;
    type Event = E;
    const KIND: &'static str = "network-usage";

    fn decide(&self, cmd: &NetworkUsageCommand) -> Result<Vec<E>, DomainError> {
        match cmd {
            NetworkUsageCommand::Reserve {
                holder,
                resource,
                limit,
            } => {
                if self.holders.get(holder) == Some(resource) {
                    return Ok(vec![]);
                }
                let used = self.used(resource);
                if *limit >= 0 && used + 1 > *limit {
                    return Err(DomainError::OverQuota(format!(
                        "OverQuota: the quota of {resource} is {limit} and {used} are in use"
                    )));
                }
                Ok(vec![E::NetworkUsageReserved(pb::NetworkUsageReserved {
                    holder: holder.clone(),
                    resource: resource.clone(),
                })])
            }
            NetworkUsageCommand::Release { holder } => {
                if !self.holders.contains_key(holder) {
                    return Ok(vec![]);
                }
                Ok(vec![E::NetworkUsageReleased(pb::NetworkUsageReleased {
                    holder: holder.clone(),
                })])
            }
        }
    }

    fn apply(mut self, event: &E) -> Self {
        match event {
            E::NetworkUsageReserved(r) => {
                self.holders.insert(r.holder.clone(), r.resource.clone());
            }
            E::NetworkUsageReleased(r) => {
                self.holders.remove(&r.holder);
            }
            _ => {}
        }
        self
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NetworkQuota {
    pub limits: BTreeMap<String, i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum NetworkQuotaCommand {
    Set(BTreeMap<String, i64>),
    Reset,
}

impl Aggregate for NetworkQuota {
    type Command = NetworkQuotaCommand;
    type Event = E;
    const KIND: &'static str = "network-quota";

    fn decide(&self, cmd: &NetworkQuotaCommand) -> Result<Vec<E>, DomainError> {
        match cmd {
            NetworkQuotaCommand::Set(limits) => {
                for (k, v) in limits {
                    if !NETWORK_QUOTA_DEFAULTS.iter().any(|(n, _)| n == k) {
                        return Err(DomainError::Invalid(format!(
                            "InvalidInput: '{k}' is not a quota resource"
                        )));
                    }
                    if *v < -1 {
                        return Err(DomainError::Invalid(format!(
                            "InvalidInput: the quota of {k} must be -1 or more, not {v}"
                        )));
                    }
                }
                let changed: BTreeMap<String, i64> = limits
                    .iter()
                    .filter(|(k, v)| self.limits.get(*k) != Some(*v))
                    .map(|(k, v)| (k.clone(), *v))
                    .collect();
                if changed.is_empty() {
                    return Ok(vec![]);
                }
                Ok(vec![E::NetworkQuotaLimitsSet(pb::NetworkQuotaLimitsSet {
                    limits: changed.into_iter().collect(),
                })])
            }
            NetworkQuotaCommand::Reset => {
                if self.limits.is_empty() {
                    return Ok(vec![]);
                }
                Ok(vec![E::NetworkQuotaLimitsReset(
                    pb::NetworkQuotaLimitsReset {},
                )])
            }
        }
    }

    fn apply(mut self, event: &E) -> Self {
        match event {
            E::NetworkQuotaLimitsSet(s) => self
                .limits
                .extend(s.limits.iter().map(|(k, v)| (k.clone(), *v))),
            E::NetworkQuotaLimitsReset(_) => self.limits.clear(),
            _ => {}
        }
        self
    }
}
