//! Block storage quotas: `VolumeUsage` (stream `volume-usage-<project>`) holds what each volume, snapshot
//! and backup of a project holds and refuses a reservation past the limits (per volume type too: the
//! `volumes_<type>`, `gigabytes_<type>` and `snapshots_<type>` keys); `VolumeQuota` (stream
//! `volume-quota-<project>`) holds the project's limits where they differ from the defaults.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use strata_proto::volume as pb;
use strata_proto::VolumeEvent as E;

use crate::aggregate::{Aggregate, DomainError};

/// Cinder's project quota names (per-type ones are `<name>_<type name>`).
pub const VOLUME_QUOTA_NAMES: &[&str] = &[
    "volumes",
    "gigabytes",
    "snapshots",
    "backups",
    "backup_gigabytes",
    "per_volume_gigabytes",
    "groups",
];

/// Cinder's defaults.
pub fn default_volume_limits() -> BTreeMap<String, i64> {
    [
        ("volumes", 10),
        ("gigabytes", 1000),
        ("snapshots", 10),
        ("backups", 10),
        ("backup_gigabytes", 1000),
        ("per_volume_gigabytes", -1),
        ("groups", 10),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeAmounts {
    pub volumes: i64,
    pub gigabytes: i64,
    pub snapshots: i64,
    pub backups: i64,
    pub backup_gigabytes: i64,
    /// The volume type's name ("" = none): its per-type limits apply too.
    pub volume_type: String,
}

impl VolumeAmounts {
    fn get(&self, key: &str) -> i64 {
        match key {
            "volumes" => self.volumes,
            "gigabytes" => self.gigabytes,
            "snapshots" => self.snapshots,
            "backups" => self.backups,
            "backup_gigabytes" => self.backup_gigabytes,
            _ => 0,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VolumeUsage {
    pub holders: BTreeMap<String, VolumeAmounts>,
}

impl VolumeUsage {
    /// Usage of `key` ("gigabytes", or a per-type key "gigabytes_<type>").
    pub fn used(&self, key: &str) -> i64 {
        match key.split_once('_') {
            Some((base, ty))
                if ["volumes", "gigabytes", "snapshots"].contains(&base)
                    && !matches!(key, "backup_gigabytes" | "per_volume_gigabytes") =>
            {
                self.holders
                    .values()
                    .filter(|a| a.volume_type == ty)
                    .map(|a| a.get(base))
                    .sum()
            }
            _ => self.holders.values().map(|a| a.get(key)).sum(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum VolumeUsageCommand {
    /// `holder` holds `amounts` from now on, unless a limit would be passed.
    Reserve {
        holder: String,
        amounts: VolumeAmounts,
        limits: BTreeMap<String, i64>,
    },
    Release {
        holder: String,
    },
}

impl Aggregate for VolumeUsage {
    type Command = VolumeUsageCommand;
    type Event = E;
    const KIND: &'static str = "volume-usage";

    fn decide(&self, cmd: &VolumeUsageCommand) -> Result<Vec<E>, DomainError> {
        match cmd {
            VolumeUsageCommand::Reserve {
                holder,
                amounts,
                limits,
            } => {
                let old = self.holders.get(holder).cloned().unwrap_or_default();
                if let Some(max) = limits.get("per_volume_gigabytes").filter(|m| **m >= 0) {
                    if amounts.volumes > 0 && amounts.gigabytes > *max {
                        return Err(DomainError::OverQuota(format!(
                            "VolumeSizeExceedsLimit: Requested volume size {}G is larger than maximum allowed limit {max}G.",
                            amounts.gigabytes
                        )));
                    }
                }
                let mut keys: Vec<String> = [
                    "volumes",
                    "gigabytes",
                    "snapshots",
                    "backups",
                    "backup_gigabytes",
                ]
                .iter()
                .map(|k| k.to_string())
                .collect();
                if !amounts.volume_type.is_empty() {
                    for base in ["volumes", "gigabytes", "snapshots"] {
                        keys.push(format!("{base}_{}", amounts.volume_type));
                    }
                }
                for key in keys {
                    let base = key.split('_').next().unwrap_or_default();
                    let base = if key == "backup_gigabytes" {
                        "backup_gigabytes"
                    } else {
                        base
                    };
                    let delta = amounts.get(base)
                        - if old.volume_type == amounts.volume_type || key == base {
                            old.get(base)
                        } else {
                            0
                        };
                    let Some(limit) = limits.get(&key).copied().filter(|l| *l >= 0) else {
                        continue;
                    };
                    let used = self.used(&key);
                    if delta > 0 && used + delta > limit {
                        let what = match base {
                            "gigabytes" | "backup_gigabytes" => format!(
                                "VolumeSizeExceedsAvailableQuota: Requested volume or snapshot exceeds allowed {key} quota. Requested {}G, quota is {limit}G and {used}G has been consumed.",
                                delta
                            ),
                            "snapshots" => format!("SnapshotLimitExceeded: Maximum number of snapshots allowed ({limit}) exceeded"),
                            "backups" => format!("BackupLimitExceeded: Maximum number of backups allowed ({limit}) exceeded"),
                            _ => format!("VolumeLimitExceeded: Maximum number of volumes allowed ({limit}) exceeded for quota '{key}'."),
                        };
                        return Err(DomainError::OverQuota(what));
                    }
                }
                if old == *amounts && self.holders.contains_key(holder) {
                    return Ok(vec![]);
                }
                Ok(vec![E::VolumeUsageReserved(pb::VolumeUsageReserved {
                    holder: holder.clone(),
                    volumes: amounts.volumes,
                    gigabytes: amounts.gigabytes,
                    snapshots: amounts.snapshots,
                    backups: amounts.backups,
                    backup_gigabytes: amounts.backup_gigabytes,
                    volume_type: amounts.volume_type.clone(),
                })])
            }
            VolumeUsageCommand::Release { holder } => {
                if !self.holders.contains_key(holder) {
                    return Ok(vec![]);
                }
                Ok(vec![E::VolumeUsageReleased(pb::VolumeUsageReleased {
                    holder: holder.clone(),
                })])
            }
        }
    }

    fn apply(mut self, event: &E) -> Self {
        match event {
            E::VolumeUsageReserved(r) => {
                self.holders.insert(
                    r.holder.clone(),
                    VolumeAmounts {
                        volumes: r.volumes,
                        gigabytes: r.gigabytes,
                        snapshots: r.snapshots,
                        backups: r.backups,
                        backup_gigabytes: r.backup_gigabytes,
                        volume_type: r.volume_type.clone(),
                    },
                );
            }
            E::VolumeUsageReleased(r) => {
                self.holders.remove(&r.holder);
            }
            _ => {}
        }
        self
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VolumeQuota {
    pub limits: BTreeMap<String, i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum VolumeQuotaCommand {
    Set(BTreeMap<String, i64>),
    Reset,
}

impl Aggregate for VolumeQuota {
    type Command = VolumeQuotaCommand;
    type Event = E;
    const KIND: &'static str = "volume-quota";

    fn decide(&self, cmd: &VolumeQuotaCommand) -> Result<Vec<E>, DomainError> {
        match cmd {
            VolumeQuotaCommand::Set(limits) => {
                for (k, v) in limits {
                    let base = k.split('_').next().unwrap_or_default();
                    let known = VOLUME_QUOTA_NAMES.contains(&k.as_str())
                        || ["volumes", "gigabytes", "snapshots"].contains(&base);
                    if !known {
                        return Err(DomainError::Invalid(format!(
                            "Invalid input received: Bad key(s) in quota set: {k}"
                        )));
                    }
                    if *v < -1 {
                        return Err(DomainError::Invalid(format!(
                            "Invalid input received: Quota limit {v} for {k} must be -1 or greater."
                        )));
                    }
                }
                if limits.is_empty() {
                    return Ok(vec![]);
                }
                Ok(vec![E::VolumeQuotaLimitsSet(pb::VolumeQuotaLimitsSet {
                    limits: limits.clone().into_iter().collect(),
                })])
            }
            VolumeQuotaCommand::Reset => {
                if self.limits.is_empty() {
                    return Ok(vec![]);
                }
                Ok(vec![E::VolumeQuotaLimitsReset(
                    pb::VolumeQuotaLimitsReset {},
                )])
            }
        }
    }

    fn apply(mut self, event: &E) -> Self {
        match event {
            E::VolumeQuotaLimitsSet(s) => self
                .limits
                .extend(s.limits.iter().map(|(k, v)| (k.clone(), *v))),
            E::VolumeQuotaLimitsReset(_) => self.limits.clear(),
            _ => {}
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gwt::given;

    fn vol(gb: i64, ty: &str) -> VolumeAmounts {
        VolumeAmounts {
            volumes: 1,
            gigabytes: gb,
            volume_type: ty.into(),
            ..Default::default()
        }
    }

    fn reserve(h: &str, a: VolumeAmounts, limits: &[(&str, i64)]) -> VolumeUsageCommand {
        VolumeUsageCommand::Reserve {
            holder: h.into(),
            amounts: a,
            limits: limits.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        }
    }

    #[test]
    fn gigabytes_and_per_type_limits() {
        let s = given::<VolumeUsage>([])
            .when(reserve("volume:a", vol(6, "ssd"), &[("gigabytes", 10)]))
            .then_ok();
        assert_eq!((s.used("gigabytes"), s.used("gigabytes_ssd")), (6, 6));
        let a = E::VolumeUsageReserved(pb::VolumeUsageReserved {
            holder: "volume:a".into(),
            volumes: 1,
            gigabytes: 6,
            volume_type: "ssd".into(),
            ..Default::default()
        });
        given::<VolumeUsage>([a.clone()])
            .when(reserve("volume:b", vol(5, ""), &[("gigabytes", 10)]))
            .then_err_where(|e| matches!(e, DomainError::OverQuota(m) if m.contains("gigabytes")));
        given::<VolumeUsage>([a.clone()])
            .when(reserve("volume:b", vol(1, "ssd"), &[("volumes_ssd", 1)]))
            .then_err_where(
                |e| matches!(e, DomainError::OverQuota(m) if m.contains("volumes_ssd")),
            );
        // Extending a holds only the difference.
        given::<VolumeUsage>([a])
            .when(reserve("volume:a", vol(10, "ssd"), &[("gigabytes", 10)]))
            .then_ok();
    }

    #[test]
    fn per_volume_gigabytes() {
        given::<VolumeUsage>([])
            .when(reserve(
                "volume:a",
                vol(6, ""),
                &[("per_volume_gigabytes", 5)],
            ))
            .then_err_where(|e| matches!(e, DomainError::OverQuota(_)));
    }
}
