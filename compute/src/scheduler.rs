//! nova-scheduler: filters and weighers over the compute view's hosts, then a random pick among the best
//! `host_subset_size`. Pure: it reads a view and returns the hosts to try, best first; claiming is the
//! conductor's job (a claim can still lose a race, and then the next host is tried).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use strata_actors::compute::FlavorSpec;
use strata_projections::compute::{ComputeView, HostRow};

#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    pub ram_weight_multiplier: f64,
    pub cpu_weight_multiplier: f64,
    pub disk_weight_multiplier: f64,
    /// Positive packs hosts with many instances, negative spreads.
    pub num_instances_weight_multiplier: f64,
    /// Positive prefers hosts that have the image in their cache.
    pub image_cached_weight_multiplier: f64,
    /// For soft-affinity / soft-anti-affinity groups.
    pub soft_affinity_weight_multiplier: f64,
    /// Pick randomly among this many best hosts.
    pub host_subset_size: usize,
    /// A service silent for longer is down.
    pub service_down_time: Duration,
    /// The zone of hosts in no aggregate with a zone.
    pub default_availability_zone: String,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            ram_weight_multiplier: 1.0,
            cpu_weight_multiplier: 1.0,
            disk_weight_multiplier: 1.0,
            num_instances_weight_multiplier: 0.0,
            image_cached_weight_multiplier: 1.0,
            soft_affinity_weight_multiplier: 1.0,
            host_subset_size: 1,
            service_down_time: Duration::from_secs(60),
            default_availability_zone: "nova".into(),
        }
    }
}

/// What is being placed.
#[derive(Debug, Clone, Default)]
pub struct RequestSpec {
    pub server_id: String,
    pub flavor: FlavorSpec,
    pub image_id: String,
    pub image_properties: BTreeMap<String, String>,
    /// "" = any zone.
    pub availability_zone: String,
    pub group_id: String,
    /// Hints: servers whose host to use / to avoid.
    pub same_host: Vec<String>,
    pub different_host: Vec<String>,
    /// Only this host ("" = any).
    pub requested_host: String,
    /// Never these hosts (a move's source).
    pub ignore_hosts: Vec<String>,
}

/// Whether a compute service is up: not forced down and heard from within `down_time`.
pub fn service_up(host: &HostRow, now: DateTime<Utc>, down_time: Duration) -> bool {
    !host.state.forced_down
        && host.last_seen.is_some_and(|seen| {
            now.signed_duration_since(seen)
                .to_std()
                .map_or(true, |age| age <= down_time)
        })
}

/// Free (vcpus, ram MB, disk GB) after allocation ratios and claims.
pub fn free_resources(host: &HostRow) -> (i64, i64, i64) {
    let inv = &host.state.inventory;
    let (c, r, d) = host.state.used();
    (
        inv.vcpus_capacity() as i64 - c as i64,
        inv.ram_capacity() as i64 - r as i64,
        inv.disk_capacity() as i64 - d as i64,
    )
}

/// Why no host fit, for the fault details.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoValidHost {
    pub details: String,
}

/// Flavor extra specs an aggregate's metadata must match: `aggregate_instance_extra_specs:<key>` and
/// unscoped keys (Nova's AggregateInstanceExtraSpecsFilter). A value may list alternatives as `<or> a <or> b`.
fn aggregate_specs(flavor: &FlavorSpec) -> Vec<(&str, &str)> {
    flavor
        .extra_specs
        .iter()
        .filter_map(|(k, v)| match k.split_once(':') {
            Some(("aggregate_instance_extra_specs", key)) => Some((key, v.as_str())),
            None => Some((k.as_str(), v.as_str())),
            Some(_) => None,
        })
        .collect()
}

fn spec_matches(wanted: &str, have: &BTreeSet<String>) -> bool {
    if let Some(alts) = wanted.strip_prefix("<or>") {
        return alts
            .split("<or>")
            .any(|alt| have.contains(alt.trim()));
    }
    let wanted = wanted.strip_prefix("s== ").unwrap_or(wanted);
    have.contains(wanted.trim())
}

/// The hosts to try for `spec`, best first: the first is a random pick among the best
/// `host_subset_size`, the rest follow by weight (alternates when the first claim loses a race).
pub fn select_hosts(
    view: &ComputeView,
    spec: &RequestSpec,
    cfg: &SchedulerConfig,
    now: DateTime<Utc>,
) -> Result<Vec<String>, NoValidHost> {
    // Zone and metadata of every host in an aggregate, computed once per request.
    let mut host_az: HashMap<&str, &str> = HashMap::new();
    let mut host_meta: HashMap<&str, BTreeMap<&str, BTreeSet<String>>> = HashMap::new();
    for agg in view.aggregates.values() {
        for h in &agg.state.hosts {
            if !agg.state.availability_zone.is_empty() {
                host_az
                    .entry(h.as_str())
                    .or_insert(agg.state.availability_zone.as_str());
            }
            let m = host_meta.entry(h.as_str()).or_default();
            for (k, v) in &agg.state.metadata {
                m.entry(k.as_str()).or_default().insert(v.clone());
            }
        }
    }
    let host_of = |server: &str| view.servers.get(server).map(|s| s.state.host.as_str());
    let same: Vec<&str> = spec.same_host.iter().filter_map(|s| host_of(s)).collect();
    let different: BTreeSet<&str> = spec
        .different_host
        .iter()
        .filter_map(|s| host_of(s))
        .collect();
    let group = (!spec.group_id.is_empty())
        .then(|| view.group(&spec.group_id))
        .flatten();
    let mut group_hosts: HashMap<&str, i64> = HashMap::new();
    if let Some(g) = group {
        for m in g.state.members.iter().filter(|m| **m != spec.server_id) {
            if let Some(h) = host_of(m).filter(|h| !h.is_empty()) {
                *group_hosts.entry(h).or_default() += 1;
            }
            // A member being moved holds its destination too.
            if let Some(dest) = view
                .servers
                .get(m)
                .and_then(|s| s.state.migration.as_ref())
                .map(|mig| mig.dest_host.as_str())
                .filter(|d| !d.is_empty())
            {
                *group_hosts.entry(dest).or_default() += 1;
            }
        }
    }
    let aggregate_specs = aggregate_specs(&spec.flavor);
    let want_disk = spec.flavor.host_disk_gb() as i64;
    let mut rejected: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut candidates: Vec<(&HostRow, (i64, i64, i64))> = Vec::new();
    for host in view.hosts.values() {
        let name = host.name.as_str();
        let reject = (|| {
            if !spec.requested_host.is_empty() && spec.requested_host != name {
                return Some("RequestedHostFilter");
            }
            if spec.ignore_hosts.iter().any(|h| h == name) {
                return Some("IgnoreHostFilter");
            }
            if !host.state.exists
                || host.state.disabled
                || !service_up(host, now, cfg.service_down_time)
            {
                return Some("ComputeFilter");
            }
            let (cpu, ram, disk) = free_resources(host);
            if ram < spec.flavor.ram_mb as i64 {
                return Some("RamFilter");
            }
            if disk < want_disk {
                return Some("DiskFilter");
            }
            if cpu < spec.flavor.vcpus as i64 {
                return Some("CoreFilter");
            }
            let az = host_az
                .get(name)
                .copied()
                .unwrap_or(cfg.default_availability_zone.as_str());
            if !spec.availability_zone.is_empty() && spec.availability_zone != az {
                return Some("AvailabilityZoneFilter");
            }
            let empty = BTreeMap::new();
            let meta = host_meta.get(name).unwrap_or(&empty);
            if aggregate_specs
                .iter()
                .any(|(k, v)| !meta.get(k).is_some_and(|have| spec_matches(v, have)))
            {
                return Some("AggregateInstanceExtraSpecsFilter");
            }
            if let Some(t) = spec.image_properties.get("hypervisor_type") {
                if !t.eq_ignore_ascii_case(&host.state.hypervisor_type) {
                    return Some("ImagePropertiesFilter");
                }
            }
            if let Some(arch) = spec.image_properties.get("architecture") {
                if !matches!(arch.as_str(), "x86_64" | "amd64") {
                    return Some("ImagePropertiesFilter");
                }
            }
            if !same.is_empty() && !same.contains(&name) {
                return Some("SameHostFilter");
            }
            if different.contains(name) {
                return Some("DifferentHostFilter");
            }
            if let Some(g) = group {
                let here = group_hosts.get(name).copied().unwrap_or(0);
                match g.state.policy.as_str() {
                    "affinity" if !group_hosts.is_empty() && here == 0 => {
                        return Some("ServerGroupAffinityFilter")
                    }
                    "anti-affinity" => {
                        let max = g.state.max_server_per_host.max(1);
                        if here >= max {
                            return Some("ServerGroupAntiAffinityFilter");
                        }
                    }
                    _ => {}
                }
            }
            None
        })();
        match reject {
            Some(filter) => *rejected.entry(filter).or_default() += 1,
            None => candidates.push((host, free_resources(host))),
        }
    }
    if candidates.is_empty() {
        let details = if view.hosts.is_empty() {
            "There are no compute hosts.".to_string()
        } else {
            let parts: Vec<String> = rejected
                .iter()
                .map(|(f, n)| format!("{f} rejected {n}"))
                .collect();
            format!(
                "There are not enough hosts available. Filters: {}",
                parts.join(", ")
            )
        };
        return Err(NoValidHost { details });
    }

    // Weighers: each raw value is normalised to 0..1 over the candidates, then multiplied.
    let instances: HashMap<&str, usize> = {
        let mut m = HashMap::new();
        for h in view.hosts.values() {
            m.insert(h.name.as_str(), h.state.claims.len());
        }
        m
    };
    type Raw<'a> = Box<dyn Fn(&HostRow, (i64, i64, i64)) -> f64 + 'a>;
    let weighers: Vec<(f64, Raw)> = vec![
        (cfg.ram_weight_multiplier, Box::new(|_, f| f.1 as f64)),
        (cfg.cpu_weight_multiplier, Box::new(|_, f| f.0 as f64)),
        (cfg.disk_weight_multiplier, Box::new(|_, f| f.2 as f64)),
        (
            cfg.num_instances_weight_multiplier,
            Box::new(|h, _| instances.get(h.name.as_str()).copied().unwrap_or(0) as f64),
        ),
        (
            cfg.image_cached_weight_multiplier,
            Box::new(|h, _| {
                if h.state.cached_images.contains_key(&spec.image_id) {
                    1.0
                } else {
                    0.0
                }
            }),
        ),
        (
            match group.map(|g| g.state.policy.as_str()) {
                Some("soft-affinity") => cfg.soft_affinity_weight_multiplier,
                Some("soft-anti-affinity") => -cfg.soft_affinity_weight_multiplier,
                _ => 0.0,
            },
            Box::new(|h, _| group_hosts.get(h.name.as_str()).copied().unwrap_or(0) as f64),
        ),
    ];
    let mut weights = vec![0.0f64; candidates.len()];
    for (mult, raw) in &weighers {
        if *mult == 0.0 {
            continue;
        }
        let values: Vec<f64> = candidates.iter().map(|(h, f)| raw(h, *f)).collect();
        let (lo, hi) = values
            .iter()
            .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
        if hi > lo {
            for (w, v) in weights.iter_mut().zip(&values) {
                *w += mult * (v - lo) / (hi - lo);
            }
        }
    }
    let mut order: Vec<usize> = (0..candidates.len()).collect();
    order.sort_by(|a, b| {
        weights[*b]
            .total_cmp(&weights[*a])
            .then_with(|| candidates[*a].0.name.cmp(&candidates[*b].0.name))
    });
    let subset = cfg.host_subset_size.clamp(1, order.len());
    if subset > 1 {
        let pick = rand::thread_rng().gen_range(0..subset);
        order.swap(0, pick);
    }
    Ok(order
        .into_iter()
        .map(|i| candidates[i].0.name.clone())
        .collect())
}
