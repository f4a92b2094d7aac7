//! Networking quotas: `NetworkUsage` (stream `network-usage-<project>`) holds one unit of a resource per
//! holder (`port:<id>`, `router:<id>`, ...) and refuses a reservation past the limit, so the check and the
//! reservation are one append; `NetworkQuota` (stream `network-quota-<project>`) holds the limits that
//! differ from the defaults.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use strata_proto::network as pb;
use strata_proto::NetworkEvent as E;
use uuid::Uuid;

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

/// Who holds what: holder -> resource. Holders named `<resource>:<uuid>` (every one Strata makes) are kept
/// as UUIDs per resource, so the state of a project with thousands of ports copies (the actor copies it
/// for every command) without a heap allocation per holder; any other holder is kept as text.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Holders {
    /// Per resource of [`NETWORK_QUOTA_DEFAULTS`], in its order.
    by_resource: Vec<BTreeSet<Uuid>>,
    other: BTreeMap<String, String>,
}

fn resource_index(resource: &str) -> Option<usize> {
    NETWORK_QUOTA_DEFAULTS
        .iter()
        .position(|(r, _)| *r == resource)
}

/// (resource index, id) of a holder named `<resource>:<uuid>` in canonical form.
fn compact(holder: &str) -> Option<(usize, Uuid)> {
    let (resource, id) = holder.split_once(':')?;
    let u = Uuid::parse_str(id).ok()?;
    (u.to_string() == id).then_some(())?;
    Some((resource_index(resource)?, u))
}

impl Holders {
    /// The resource `holder` holds.
    pub fn get(&self, holder: &str) -> Option<&str> {
        match compact(holder) {
            Some((i, u)) => self
                .by_resource
                .get(i)
                .filter(|set| set.contains(&u))
                .map(|_| NETWORK_QUOTA_DEFAULTS[i].0),
            None => self.other.get(holder).map(String::as_str),
        }
    }

    pub fn contains_key(&self, holder: &str) -> bool {
        self.get(holder).is_some()
    }

    pub fn insert(&mut self, holder: &str, resource: &str) {
        match compact(holder) {
            Some((i, u)) if NETWORK_QUOTA_DEFAULTS[i].0 == resource => {
                if self.by_resource.len() <= i {
                    self.by_resource.resize_with(i + 1, BTreeSet::new);
                }
                self.by_resource[i].insert(u);
            }
            _ => {
                self.other.insert(holder.to_string(), resource.to_string());
            }
        }
    }

    pub fn remove(&mut self, holder: &str) {
        if let Some((i, u)) = compact(holder) {
            if let Some(set) = self.by_resource.get_mut(i) {
                set.remove(&u);
            }
        }
        self.other.remove(holder);
    }

    /// Every holder's name.
    pub fn keys(&self) -> impl Iterator<Item = String> + '_ {
        self.by_resource
            .iter()
            .enumerate()
            .flat_map(|(i, set)| {
                set.iter()
                    .map(move |u| format!("{}:{u}", NETWORK_QUOTA_DEFAULTS[i].0))
            })
            .chain(self.other.keys().cloned())
    }

    /// How many hold `resource`.
    pub fn count(&self, resource: &str) -> usize {
        let compacted = resource_index(resource)
            .and_then(|i| self.by_resource.get(i))
            .map_or(0, BTreeSet::len);
        compacted + self.other.values().filter(|r| *r == resource).count()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NetworkUsage {
    pub holders: Holders,
}

impl NetworkUsage {
    pub fn used(&self, resource: &str) -> i64 {
        self.holders.count(resource) as i64
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
    /// 2: holders kept as UUIDs per resource.
    const SNAPSHOT_SCHEMA: u32 = 2;

    fn decide(&self, cmd: &NetworkUsageCommand) -> Result<Vec<E>, DomainError> {
        match cmd {
            NetworkUsageCommand::Reserve {
                holder,
                resource,
                limit,
            } => {
                if self.holders.get(holder) == Some(resource.as_str()) {
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
                self.holders.remove(&r.holder);
                self.holders.insert(&r.holder, &r.resource);
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
