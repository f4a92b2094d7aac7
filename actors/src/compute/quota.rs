//! Compute quotas: `ComputeUsage` (stream `compute-usage-<project id>`) holds what each server of a project
//! holds (instances, cores, RAM) and refuses a reservation that would pass the limits; `ComputeQuota` (stream
//! `compute-quota-<project id>`) holds the project's limits where they differ from the defaults.
//!
//! A reservation is one event appended with the expected stream version, so two concurrent boots can never
//! both take the last core: the second re-decides against the first's reservation.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use strata_proto::compute as pb;
use strata_proto::ComputeEvent as E;

use crate::aggregate::{Aggregate, DomainError};

/// The quota names Nova's os-quota-sets knows (as of 2.57 the file and network ones are gone).
pub const QUOTA_NAMES: &[&str] = &[
    "instances",
    "cores",
    "ram",
    "metadata_items",
    "key_pairs",
    "server_groups",
    "server_group_members",
    "injected_files",
    "injected_file_content_bytes",
    "injected_file_path_bytes",
];

/// Nova's default limits.
pub fn default_limits() -> BTreeMap<String, i64> {
    [
        ("instances", 10),
        ("cores", 20),
        ("ram", 51200),
        ("metadata_items", 128),
        ("key_pairs", 100),
        ("server_groups", 10),
        ("server_group_members", 10),
        ("injected_files", 5),
        ("injected_file_content_bytes", 10240),
        ("injected_file_path_bytes", 255),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// What one holder (a server) holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Amounts {
    pub instances: i64,
    pub cores: i64,
    pub ram: i64,
}

/// Limits for the reserved resources; -1 = unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub instances: i64,
    pub cores: i64,
    pub ram: i64,
}

impl Limits {
    pub fn from_map(m: &BTreeMap<String, i64>) -> Self {
        let get = |k: &str| m.get(k).copied().unwrap_or(-1);
        Limits {
            instances: get("instances"),
            cores: get("cores"),
            ram: get("ram"),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ComputeUsage {
    pub holders: BTreeMap<String, Amounts>,
    /// Counted holders (keypairs, server groups): holder -> (resource, scope).
    #[serde(default)]
    pub counted: BTreeMap<String, (String, String)>,
}

impl ComputeUsage {
    pub fn total(&self) -> Amounts {
        self.holders
            .values()
            .fold(Amounts::default(), |a, h| Amounts {
                instances: a.instances + h.instances,
                cores: a.cores + h.cores,
                ram: a.ram + h.ram,
            })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum UsageCommand {
    /// All of these holders hold these amounts from now on, or none does (the limits would be passed).
    Reserve {
        holders: Vec<(String, Amounts)>,
        limits: Limits,
    },
    Release {
        holder: String,
    },
    /// `holder` counts as one `resource` in `scope`, unless that passes `limit` (-1 = unlimited).
    Count {
        holder: String,
        resource: String,
        scope: String,
        limit: i64,
    },
}

impl ComputeUsage {
    /// How many holders count as `resource` in `scope`.
    pub fn count(&self, resource: &str, scope: &str) -> i64 {
        self.counted
            .values()
            .filter(|(r, s)| r == resource && s == scope)
            .count() as i64
    }
}

impl Aggregate for ComputeUsage {
    type Command = UsageCommand;
    type Event = E;
    const KIND: &'static str = "compute-usage";

    fn decide(&self, cmd: &UsageCommand) -> Result<Vec<E>, DomainError> {
        match cmd {
            UsageCommand::Reserve { holders, limits } => {
                let used = self.total();
                let mut delta = Amounts::default();
                let mut requested = Amounts::default();
                for (holder, a) in holders {
                    let old = self.holders.get(holder).copied().unwrap_or_default();
                    delta.instances += a.instances - old.instances;
                    delta.cores += a.cores - old.cores;
                    delta.ram += a.ram - old.ram;
                    requested.instances += a.instances;
                    requested.cores += a.cores;
                    requested.ram += a.ram;
                }
                let mut over = Vec::new();
                for (name, d, u, limit, req) in [
                    (
                        "instances",
                        delta.instances,
                        used.instances,
                        limits.instances,
                        requested.instances,
                    ),
                    (
                        "cores",
                        delta.cores,
                        used.cores,
                        limits.cores,
                        requested.cores,
                    ),
                    ("ram", delta.ram, used.ram, limits.ram, requested.ram),
                ] {
                    if d > 0 && limit >= 0 && u + d > limit {
                        over.push((name, req, u, limit));
                    }
                }
                if !over.is_empty() {
                    let names: Vec<&str> = over.iter().map(|o| o.0).collect();
                    let req: Vec<String> = over.iter().map(|o| o.1.to_string()).collect();
                    let used: Vec<String> = over.iter().map(|o| o.2.to_string()).collect();
                    let allowed: Vec<String> = over.iter().map(|o| o.3.to_string()).collect();
                    let names = names.join(", ");
                    return Err(DomainError::OverQuota(format!(
                        "Quota exceeded for {names}: Requested {}, but already used {} of {} {names}",
                        req.join(", "),
                        used.join(", "),
                        allowed.join(", "),
                    )));
                }
                Ok(holders
                    .iter()
                    .filter(|(h, a)| self.holders.get(h) != Some(a))
                    .map(|(h, a)| {
                        E::UsageReserved(pb::UsageReserved {
                            holder: h.clone(),
                            instances: a.instances,
                            cores: a.cores,
                            ram_mb: a.ram,
                        })
                    })
                    .collect())
            }
            UsageCommand::Count {
                holder,
                resource,
                scope,
                limit,
            } => {
                if self.counted.contains_key(holder) {
                    return Ok(vec![]);
                }
                if *limit >= 0 && self.count(resource, scope) + 1 > *limit {
                    let what = match resource.as_str() {
                        "key_pairs" => "key pairs",
                        "server_groups" => "server groups",
                        other => other,
                    };
                    return Err(DomainError::OverQuota(format!(
                        "Quota exceeded, too many {what}."
                    )));
                }
                Ok(vec![E::UsageCounted(pb::UsageCounted {
                    holder: holder.clone(),
                    resource: resource.clone(),
                    scope: scope.clone(),
                })])
            }
            UsageCommand::Release { holder } => {
                if !self.holders.contains_key(holder) && !self.counted.contains_key(holder) {
                    return Ok(vec![]);
                }
                Ok(vec![E::UsageReleased(pb::UsageReleased {
                    holder: holder.clone(),
                })])
            }
        }
    }

    fn apply(mut self, event: &E) -> Self {
        match event {
            E::UsageReserved(r) => {
                self.holders.insert(
                    r.holder.clone(),
                    Amounts {
                        instances: r.instances,
                        cores: r.cores,
                        ram: r.ram_mb,
                    },
                );
            }
            E::UsageReleased(r) => {
                self.holders.remove(&r.holder);
                self.counted.remove(&r.holder);
            }
            E::UsageCounted(c) => {
                self.counted
                    .insert(c.holder.clone(), (c.resource.clone(), c.scope.clone()));
            }
            _ => {}
        }
        self
    }
}

/// A project's limits that differ from the defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ComputeQuota {
    pub limits: BTreeMap<String, i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum QuotaCommand {
    Set(BTreeMap<String, i64>),
    Reset,
}

impl Aggregate for ComputeQuota {
    type Command = QuotaCommand;
    type Event = E;
    const KIND: &'static str = "compute-quota";

    fn decide(&self, cmd: &QuotaCommand) -> Result<Vec<E>, DomainError> {
        match cmd {
            QuotaCommand::Set(limits) => {
                for (k, v) in limits {
                    if !QUOTA_NAMES.contains(&k.as_str()) {
                        return Err(DomainError::Invalid(format!(
                            "Invalid input for field/attribute quota_set. Value: {k}. Additional properties are not allowed ('{k}' was unexpected)"
                        )));
                    }
                    if *v < -1 {
                        return Err(DomainError::Invalid(format!(
                            "Invalid input for field/attribute {k}. Value: {v}. {v} is less than the minimum of -1"
                        )));
                    }
                }
                if limits.is_empty() {
                    return Ok(vec![]);
                }
                Ok(vec![E::QuotaLimitsSet(pb::QuotaLimitsSet {
                    limits: limits.clone().into_iter().collect(),
                })])
            }
            QuotaCommand::Reset => {
                if self.limits.is_empty() {
                    return Ok(vec![]);
                }
                Ok(vec![E::QuotaLimitsReset(pb::QuotaLimitsReset {})])
            }
        }
    }

    fn apply(mut self, event: &E) -> Self {
        match event {
            E::QuotaLimitsSet(s) => self
                .limits
                .extend(s.limits.iter().map(|(k, v)| (k.clone(), *v))),
            E::QuotaLimitsReset(_) => self.limits.clear(),
            _ => {}
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gwt::given;

    const LIMITS: Limits = Limits {
        instances: 2,
        cores: 4,
        ram: 2048,
    };

    fn amounts(cores: i64) -> Amounts {
        Amounts {
            instances: 1,
            cores,
            ram: 512,
        }
    }

    fn reserve(h: &str, cores: i64) -> UsageCommand {
        UsageCommand::Reserve {
            holders: vec![(h.into(), amounts(cores))],
            limits: LIMITS,
        }
    }

    fn reserved(h: &str, cores: i64) -> E {
        E::UsageReserved(pb::UsageReserved {
            holder: h.into(),
            instances: 1,
            cores,
            ram_mb: 512,
        })
    }

    #[test]
    fn reservations_stop_at_the_limit_with_novas_message() {
        let s = given::<ComputeUsage>([reserved("a", 2)])
            .when(reserve("b", 2))
            .then(vec![reserved("b", 2)]);
        assert_eq!(s.total().cores, 4);
        given::<ComputeUsage>([reserved("a", 2), reserved("b", 2)])
            .when(reserve("c", 1))
            .then_err(DomainError::OverQuota(
                "Quota exceeded for instances, cores: Requested 1, 1, but already used 2, 4 of 2, 4 instances, cores".into(),
            ));
    }

    #[test]
    fn a_resize_reserves_only_the_difference() {
        // a holds 2 of 4 cores; resizing a to 4 cores fits (delta 2), to 5 does not.
        given::<ComputeUsage>([reserved("a", 2), reserved("b", 0)])
            .when(reserve("a", 4))
            .then(vec![reserved("a", 4)]);
        given::<ComputeUsage>([reserved("a", 2)])
            .when(reserve("a", 5))
            .then_err_where(|e| matches!(e, DomainError::OverQuota(_)));
        // Shrinking always fits, even over the limit.
        given::<ComputeUsage>([reserved("a", 8)])
            .when(reserve("a", 6))
            .then(vec![reserved("a", 6)]);
    }

    #[test]
    fn multi_reserve_is_all_or_nothing() {
        given::<ComputeUsage>([])
            .when(UsageCommand::Reserve {
                holders: vec![
                    ("a".into(), amounts(1)),
                    ("b".into(), amounts(1)),
                    ("c".into(), amounts(1)),
                ],
                limits: LIMITS,
            })
            .then_err_where(|e| matches!(e, DomainError::OverQuota(m) if m.contains("instances")));
    }

    #[test]
    fn counted_resources_stop_at_their_limit_per_scope() {
        let count = |h: &str, scope: &str| UsageCommand::Count {
            holder: h.into(),
            resource: "key_pairs".into(),
            scope: scope.into(),
            limit: 1,
        };
        let counted = E::UsageCounted(pb::UsageCounted {
            holder: "kp:u1.a".into(),
            resource: "key_pairs".into(),
            scope: "u1".into(),
        });
        given::<ComputeUsage>([counted.clone()])
            .when(count("kp:u1.b", "u1"))
            .then_err(DomainError::OverQuota(
                "Quota exceeded, too many key pairs.".into(),
            ));
        given::<ComputeUsage>([counted.clone()])
            .when(count("kp:u2.a", "u2"))
            .then_ok();
        let s = given::<ComputeUsage>([counted])
            .when(UsageCommand::Release {
                holder: "kp:u1.a".into(),
            })
            .then_ok();
        assert_eq!(s.count("key_pairs", "u1"), 0);
    }

    #[test]
    fn quota_names_and_values_are_checked() {
        given::<ComputeQuota>([])
            .when(QuotaCommand::Set([("floating_ips".to_string(), 1)].into()))
            .then_invalid();
        given::<ComputeQuota>([])
            .when(QuotaCommand::Set([("cores".to_string(), -2)].into()))
            .then_invalid();
        let s = given::<ComputeQuota>([])
            .when(QuotaCommand::Set([("cores".to_string(), -1)].into()))
            .then_ok();
        assert_eq!(s.limits.get("cores"), Some(&-1));
    }

    /// A random workload of boots (possibly several servers in one reservation), deletes and failures
    /// (release), resizes and shelves (re-reserve with other amounts) against the pure aggregate: each
    /// decision is the one a recount of the live holders predicts, and after every step the usage equals that
    /// recount and stays within the limits.
    #[test]
    fn random_reserve_release_resize_sequences_match_a_recount() {
        use rand::rngs::StdRng;
        use rand::{Rng, SeedableRng};

        fn recount(live: &BTreeMap<String, Amounts>) -> Amounts {
            live.values().fold(Amounts::default(), |t, a| Amounts {
                instances: t.instances + a.instances,
                cores: t.cores + a.cores,
                ram: t.ram + a.ram,
            })
        }

        let mut refused = 0;
        let mut accepted = 0;
        for seed in [1u64, 2, 3, 7, 42, 1234, 9999, 31337] {
            let mut rng = StdRng::seed_from_u64(seed);
            let limit = |rng: &mut StdRng, max: i64| {
                if rng.gen_ratio(1, 8) {
                    -1
                } else {
                    rng.gen_range(0..=max)
                }
            };
            let limits = Limits {
                instances: limit(&mut rng, 12),
                cores: limit(&mut rng, 24),
                ram: limit(&mut rng, 16384),
            };
            let mut state = ComputeUsage::default();
            let mut live: BTreeMap<String, Amounts> = BTreeMap::new();
            let mut next = 0;
            for step in 0..400 {
                let flavor = |rng: &mut StdRng| Amounts {
                    instances: 1,
                    cores: rng.gen_range(1..=4),
                    ram: 256 * rng.gen_range(1..=8),
                };
                let some_live = |rng: &mut StdRng| -> Option<String> {
                    (!live.is_empty())
                        .then(|| live.keys().nth(rng.gen_range(0..live.len())).cloned())
                        .flatten()
                };
                let cmd = match rng.gen_range(0..10) {
                    // Boot 1..=3 servers in one reservation (all or none).
                    0..=3 => {
                        let n = rng.gen_range(1..=3);
                        let holders = (0..n)
                            .map(|_| {
                                next += 1;
                                (format!("s{next}"), flavor(&mut rng))
                            })
                            .collect();
                        UsageCommand::Reserve { holders, limits }
                    }
                    // Delete, or a failed boot giving its reservation back.
                    4..=5 => UsageCommand::Release {
                        holder: some_live(&mut rng).unwrap_or_else(|| "unknown".into()),
                    },
                    // Resize to another flavor.
                    6..=7 => match some_live(&mut rng) {
                        Some(h) => UsageCommand::Reserve {
                            holders: vec![(h, flavor(&mut rng))],
                            limits,
                        },
                        None => continue,
                    },
                    // Shelve-offload (keeps the instance, gives back cores and RAM), or a no-op release.
                    8 => match some_live(&mut rng) {
                        Some(h) => UsageCommand::Reserve {
                            holders: vec![(
                                h,
                                Amounts {
                                    instances: 1,
                                    cores: 0,
                                    ram: 0,
                                },
                            )],
                            limits,
                        },
                        None => continue,
                    },
                    _ => UsageCommand::Release {
                        holder: format!("never-{step}"),
                    },
                };
                // What a recount predicts.
                let mut after = live.clone();
                match &cmd {
                    UsageCommand::Reserve { holders, .. } => {
                        after.extend(holders.iter().cloned());
                    }
                    UsageCommand::Release { holder } => {
                        after.remove(holder);
                    }
                    UsageCommand::Count { .. } => unreachable!("the generator makes no counts"),
                }
                let (before, then) = (recount(&live), recount(&after));
                let fits = |b: i64, a: i64, l: i64| a <= b || l < 0 || a <= l;
                let expect_ok = fits(before.instances, then.instances, limits.instances)
                    && fits(before.cores, then.cores, limits.cores)
                    && fits(before.ram, then.ram, limits.ram);
                match state.decide(&cmd) {
                    Ok(events) => {
                        assert!(
                            expect_ok,
                            "seed {seed} step {step}: {cmd:?} accepted over {limits:?}"
                        );
                        let changed = after
                            .iter()
                            .filter(|(h, a)| live.get(*h) != Some(*a))
                            .count()
                            + live.keys().filter(|h| !after.contains_key(*h)).count();
                        assert_eq!(events.len(), changed, "seed {seed} step {step}: {cmd:?}");
                        for e in &events {
                            state = state.apply(e);
                        }
                        live = after;
                        accepted += 1;
                    }
                    Err(DomainError::OverQuota(m)) => {
                        assert!(!expect_ok, "seed {seed} step {step}: {cmd:?} refused: {m}");
                        assert!(m.starts_with("Quota exceeded for "), "{m}");
                        refused += 1;
                    }
                    Err(e) => panic!("seed {seed} step {step}: {cmd:?} failed with {e}"),
                }
                assert_eq!(state.holders, live, "seed {seed} step {step}");
                let total = state.total();
                assert_eq!(total, recount(&live), "seed {seed} step {step}");
                for (used, limit) in [
                    (total.instances, limits.instances),
                    (total.cores, limits.cores),
                    (total.ram, limits.ram),
                ] {
                    assert!(
                        limit < 0 || used <= limit,
                        "seed {seed} step {step}: {total:?} over {limits:?}"
                    );
                }
            }
        }
        // The workload reaches the limits often and still makes progress.
        assert!(
            refused > 100 && accepted > 1000,
            "refused {refused}, accepted {accepted}"
        );
    }
}
