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

/// How many hosts `select_hosts` returns at most beyond the subset it picks from: the conductor tries them in
/// order when a claim loses a race.
pub const MAX_ALTERNATES: usize = 16;

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
        return alts.split("<or>").any(|alt| have.contains(alt.trim()));
    }
    let wanted = wanted.strip_prefix("s== ").unwrap_or(wanted);
    have.contains(wanted.trim())
}

/// The hosts to try for `spec`, best first: the first is a random pick among the best
/// `host_subset_size`, the rest follow by weight (alternates when the first claim loses a race), at most
/// `max(host_subset_size, MAX_ALTERNATES)` hosts.
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
    // `service_up` for every host, with the cut-off computed once.
    let up_since = chrono::Duration::from_std(cfg.service_down_time)
        .map(|d| now - d)
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
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
                || host.state.forced_down
                || host.last_seen.is_none_or(|seen| seen < up_since)
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
    type Raw<'a> = Box<dyn Fn(&HostRow, (i64, i64, i64)) -> f64 + 'a>;
    let weighers: Vec<(f64, Raw)> = vec![
        (cfg.ram_weight_multiplier, Box::new(|_, f| f.1 as f64)),
        (cfg.cpu_weight_multiplier, Box::new(|_, f| f.0 as f64)),
        (cfg.disk_weight_multiplier, Box::new(|_, f| f.2 as f64)),
        (
            cfg.num_instances_weight_multiplier,
            Box::new(|h, _| h.state.claims.len() as f64),
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
    let better = |a: &usize, b: &usize| {
        weights[*b]
            .total_cmp(&weights[*a])
            .then_with(|| candidates[*a].0.name.cmp(&candidates[*b].0.name))
    };
    // Only the best few are needed: the pick and the alternates tried when a claim loses a race.
    let keep = cfg.host_subset_size.max(MAX_ALTERNATES);
    if order.len() > keep {
        order.select_nth_unstable_by(keep - 1, better);
        order.truncate(keep);
    }
    order.sort_by(better);
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

#[cfg(test)]
mod tests {
    use super::*;
    use strata_actors::compute::server::Migration;
    use strata_actors::compute::{HostAggregate, Inventory, Server, ServerGroup};
    use strata_projections::compute::{AggregateRow, GroupRow, ServerRow};

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap()
    }

    /// A registered, enabled host heard from just now, with allocation ratios of 1.0.
    fn host(name: &str, vcpus: u32, ram_mb: u64, disk_gb: u64) -> HostRow {
        HostRow {
            name: name.into(),
            state: strata_actors::compute::ComputeHost {
                exists: true,
                hypervisor_type: "fake".into(),
                inventory: Inventory {
                    vcpus,
                    ram_mb,
                    disk_gb,
                    cpu_allocation_ratio: 1.0,
                    ram_allocation_ratio: 1.0,
                    disk_allocation_ratio: 1.0,
                },
                ..Default::default()
            },
            last_seen: Some(now()),
            ..Default::default()
        }
    }

    /// Record a claim the way the projection does: through the aggregate's `apply`.
    fn claim(h: &mut HostRow, id: &str, vcpus: u32, ram_mb: u64, disk_gb: u64) {
        use strata_actors::Aggregate;
        let e = strata_proto::ComputeEvent::HostClaimed(strata_proto::compute::HostClaimed {
            claim_id: id.into(),
            server_id: id.into(),
            vcpus,
            ram_mb,
            disk_gb,
        });
        h.state = std::mem::take(&mut h.state).apply(&e);
    }

    fn view(hosts: Vec<HostRow>) -> ComputeView {
        let mut v = ComputeView::default();
        for h in hosts {
            v.hosts.insert(h.name.clone(), h);
        }
        v
    }

    /// Three equal hosts a, b, c (8 vCPUs, 8 GB, 100 GB).
    fn abc() -> ComputeView {
        view(vec![
            host("a", 8, 8192, 100),
            host("b", 8, 8192, 100),
            host("c", 8, 8192, 100),
        ])
    }

    fn flavor(vcpus: u32, ram_mb: u64, disk_gb: u64) -> FlavorSpec {
        FlavorSpec {
            id: "f".into(),
            name: "f".into(),
            vcpus,
            ram_mb,
            disk_gb,
            ..Default::default()
        }
    }

    fn spec(f: FlavorSpec) -> RequestSpec {
        RequestSpec {
            server_id: "new".into(),
            flavor: f,
            ..Default::default()
        }
    }

    fn small() -> RequestSpec {
        spec(flavor(1, 512, 1))
    }

    fn select(v: &ComputeView, s: &RequestSpec) -> Result<Vec<String>, NoValidHost> {
        select_hosts(v, s, &SchedulerConfig::default(), now())
    }

    /// The accepted hosts, sorted by name (for filter tests, where the order does not matter).
    fn passing(v: &ComputeView, s: &RequestSpec) -> Vec<String> {
        let mut hosts = select(v, s).unwrap_or_default();
        hosts.sort();
        hosts
    }

    fn names(hosts: &[&str]) -> Vec<String> {
        hosts.iter().map(|h| h.to_string()).collect()
    }

    fn details(v: &ComputeView, s: &RequestSpec) -> String {
        select(v, s).expect_err("no host should fit").details
    }

    fn aggregate(id: i64, az: &str, hosts: &[&str], meta: &[(&str, &str)]) -> (i64, AggregateRow) {
        (
            id,
            AggregateRow {
                id,
                state: HostAggregate {
                    exists: true,
                    name: format!("agg-{id}"),
                    availability_zone: az.into(),
                    hosts: hosts.iter().map(|h| h.to_string()).collect(),
                    metadata: meta
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
    }

    fn place_server(v: &mut ComputeView, id: &str, host: &str) {
        v.servers.insert(
            id.into(),
            std::sync::Arc::new(ServerRow {
                id: id.into(),
                state: Server {
                    exists: true,
                    host: host.into(),
                    vm_state: "active".into(),
                    ..Default::default()
                },
                ..Default::default()
            }),
        );
    }

    fn group(v: &mut ComputeView, id: &str, policy: &str, max: i64, members: &[&str]) {
        v.groups.insert(
            id.into(),
            GroupRow {
                id: id.into(),
                state: ServerGroup {
                    exists: true,
                    name: id.into(),
                    policy: policy.into(),
                    max_server_per_host: max,
                    members: members.iter().map(|m| m.to_string()).collect(),
                    ..Default::default()
                },
                ..Default::default()
            },
        );
    }

    #[test]
    fn ram_filter_counts_the_allocation_ratio_and_claims() {
        let mut h = host("a", 8, 2048, 100);
        h.state.inventory.ram_allocation_ratio = 1.5; // 3072 MB
        claim(&mut h, "s1", 1, 1024, 1);
        let v = view(vec![h]);
        assert_eq!(passing(&v, &spec(flavor(1, 2048, 1))), names(&["a"]));
        let d = details(&v, &spec(flavor(1, 2049, 1)));
        assert!(d.contains("RamFilter rejected 1"), "{d}");
    }

    #[test]
    fn disk_filter_counts_root_ephemeral_and_swap() {
        let mut h = host("a", 8, 8192, 20);
        claim(&mut h, "s1", 1, 1, 10);
        let v = view(vec![h]);
        // 10 GB free: 8 root + 1 ephemeral + 1 GB swap fits; 1025 MB of swap rounds up to 2 GB.
        let mut f = flavor(1, 512, 8);
        f.ephemeral_gb = 1;
        f.swap_mb = 1024;
        assert_eq!(passing(&v, &spec(f.clone())), names(&["a"]));
        f.swap_mb = 1025;
        let d = details(&v, &spec(f));
        assert!(d.contains("DiskFilter rejected 1"), "{d}");
        // The disk allocation ratio raises the capacity.
        let mut h = host("a", 8, 8192, 20);
        h.state.inventory.disk_allocation_ratio = 2.0;
        claim(&mut h, "s1", 1, 1, 30);
        assert_eq!(
            passing(&view(vec![h]), &spec(flavor(1, 1, 10))),
            names(&["a"])
        );
    }

    #[test]
    fn core_filter_counts_the_cpu_allocation_ratio() {
        // 4 vCPUs at 2.0 = 8; 6 claimed: 2 left.
        let mut h = host("a", 4, 8192, 100);
        h.state.inventory.cpu_allocation_ratio = 2.0;
        claim(&mut h, "s1", 6, 1, 1);
        let mut full = host("b", 4, 8192, 100);
        claim(&mut full, "s2", 4, 1, 1);
        let v = view(vec![h, full]);
        assert_eq!(passing(&v, &spec(flavor(2, 512, 1))), names(&["a"]));
        let d = details(&v, &spec(flavor(3, 512, 1)));
        assert!(d.contains("CoreFilter rejected 2"), "{d}");
        assert_eq!(free_resources(&v.hosts["a"]), (2, 8191, 99));
    }

    #[test]
    fn compute_filter_rejects_disabled_forced_down_silent_and_unregistered_hosts() {
        let cfg = SchedulerConfig::default(); // down after 60 s
        let mut disabled = host("disabled", 8, 8192, 100);
        disabled.state.disabled = true;
        let mut forced = host("forced", 8, 8192, 100);
        forced.state.forced_down = true;
        let mut stale = host("stale", 8, 8192, 100);
        stale.last_seen = Some(now() - chrono::Duration::seconds(61));
        let mut never = host("never", 8, 8192, 100);
        never.last_seen = None;
        let mut gone = host("gone", 8, 8192, 100);
        gone.state.exists = false;
        let mut recent = host("recent", 8, 8192, 100);
        recent.last_seen = Some(now() - chrono::Duration::seconds(59));
        let v = view(vec![disabled, forced, stale, never, gone, recent]);
        assert_eq!(passing(&v, &small()), names(&["recent"]));
        assert!(!service_up(&v.hosts["stale"], now(), cfg.service_down_time));
        assert!(service_up(&v.hosts["recent"], now(), cfg.service_down_time));
        // With a longer service_down_time the silent host is up again.
        let long = SchedulerConfig {
            service_down_time: Duration::from_secs(120),
            ..Default::default()
        };
        let mut hosts = select_hosts(&v, &small(), &long, now()).unwrap();
        hosts.sort();
        assert_eq!(hosts, names(&["recent", "stale"]));
        let mut v = v;
        v.hosts.remove("recent");
        let d = details(&v, &small());
        assert_eq!(
            d,
            "There are not enough hosts available. Filters: ComputeFilter rejected 5"
        );
    }

    #[test]
    fn requested_and_ignored_hosts() {
        let v = abc();
        let mut s = small();
        s.requested_host = "b".into();
        assert_eq!(passing(&v, &s), names(&["b"]));
        s.requested_host.clear();
        s.ignore_hosts = names(&["a", "c"]);
        assert_eq!(passing(&v, &s), names(&["b"]));
        s.requested_host = "a".into();
        let d = details(&v, &s);
        assert!(d.contains("IgnoreHostFilter rejected 1"), "{d}");
        assert!(d.contains("RequestedHostFilter rejected 2"), "{d}");
    }

    #[test]
    fn availability_zone_filter_uses_aggregate_zones_and_the_default() {
        let mut v = abc();
        v.aggregates.extend([
            aggregate(1, "az1", &["a"], &[]),
            // An aggregate without a zone does not move its hosts out of the default zone.
            aggregate(2, "", &["b"], &[]),
        ]);
        let mut s = small();
        s.availability_zone = "az1".into();
        assert_eq!(passing(&v, &s), names(&["a"]));
        s.availability_zone = "nova".into();
        assert_eq!(passing(&v, &s), names(&["b", "c"]));
        s.availability_zone = String::new();
        assert_eq!(passing(&v, &s), names(&["a", "b", "c"]));
        s.availability_zone = "az2".into();
        let d = details(&v, &s);
        assert!(d.contains("AvailabilityZoneFilter rejected 3"), "{d}");
        // The default zone is configuration.
        let cfg = SchedulerConfig {
            default_availability_zone: "az2".into(),
            ..Default::default()
        };
        let mut hosts = select_hosts(&v, &s, &cfg, now()).unwrap();
        hosts.sort();
        assert_eq!(hosts, names(&["b", "c"]));
    }

    #[test]
    fn aggregate_instance_extra_specs_filter() {
        let mut v = abc();
        v.aggregates.extend([
            aggregate(1, "", &["a"], &[("ssd", "true")]),
            aggregate(2, "", &["b"], &[("ssd", "false"), ("gpu", "yes")]),
            // A host in two aggregates has both values for a key.
            aggregate(3, "", &["b"], &[("ssd", "true")]),
        ]);
        let with = |specs: &[(&str, &str)]| {
            let mut f = flavor(1, 512, 1);
            f.extra_specs = specs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            spec(f)
        };
        assert_eq!(
            passing(&v, &with(&[("aggregate_instance_extra_specs:ssd", "true")])),
            names(&["a", "b"])
        );
        assert_eq!(passing(&v, &with(&[("ssd", "false")])), names(&["b"]));
        assert_eq!(
            passing(&v, &with(&[("aggregate_instance_extra_specs:gpu", "yes")])),
            names(&["b"])
        );
        assert_eq!(
            passing(&v, &with(&[("ssd", "true"), ("gpu", "yes")])),
            names(&["b"])
        );
        // Keys of other scopes belong to other filters.
        assert_eq!(
            passing(&v, &with(&[("hw:cpu_policy", "dedicated")])),
            names(&["a", "b", "c"])
        );
        assert_eq!(
            passing(
                &v,
                &with(&[("aggregate_instance_extra_specs:ssd", "<or> maybe <or> true")])
            ),
            names(&["a", "b"])
        );
        assert_eq!(passing(&v, &with(&[("gpu", "s== yes")])), names(&["b"]));
        let d = details(
            &v,
            &with(&[("aggregate_instance_extra_specs:ssd", "maybe")]),
        );
        assert!(
            d.contains("AggregateInstanceExtraSpecsFilter rejected 3"),
            "{d}"
        );
    }

    #[test]
    fn image_properties_filter_checks_hypervisor_type_and_architecture() {
        let mut v = abc();
        v.hosts.get_mut("a").unwrap().state.hypervisor_type = "QEMU".into();
        let with = |props: &[(&str, &str)]| {
            let mut s = small();
            s.image_id = "img".into();
            s.image_properties = props
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            s
        };
        assert_eq!(
            passing(&v, &with(&[("hypervisor_type", "qemu")])),
            names(&["a"])
        );
        assert_eq!(
            passing(&v, &with(&[("hypervisor_type", "fake")])),
            names(&["b", "c"])
        );
        assert_eq!(
            passing(&v, &with(&[("architecture", "x86_64")])),
            names(&["a", "b", "c"])
        );
        let d = details(&v, &with(&[("architecture", "aarch64")]));
        assert!(d.contains("ImagePropertiesFilter rejected 3"), "{d}");
        let d = details(&v, &with(&[("hypervisor_type", "xen")]));
        assert!(d.contains("ImagePropertiesFilter rejected 3"), "{d}");
    }

    #[test]
    fn same_host_and_different_host_hints() {
        let mut v = abc();
        place_server(&mut v, "s1", "a");
        place_server(&mut v, "s2", "b");
        let mut s = small();
        s.same_host = names(&["s1"]);
        assert_eq!(passing(&v, &s), names(&["a"]));
        s.same_host = names(&["s1", "s2"]);
        assert_eq!(passing(&v, &s), names(&["a", "b"]));
        s.same_host.clear();
        s.different_host = names(&["s1", "s2"]);
        assert_eq!(passing(&v, &s), names(&["c"]));
        s.same_host = names(&["s1"]);
        let d = details(&v, &s);
        assert!(d.contains("DifferentHostFilter rejected 1"), "{d}");
        assert!(d.contains("SameHostFilter rejected 2"), "{d}");
    }

    #[test]
    fn affinity_keeps_a_group_on_the_host_of_its_members() {
        let mut v = abc();
        group(&mut v, "g", "affinity", 0, &["new"]);
        let mut s = small();
        s.group_id = "g".into();
        // The first member may go anywhere (the server itself does not count).
        assert_eq!(passing(&v, &s), names(&["a", "b", "c"]));
        place_server(&mut v, "m1", "b");
        group(&mut v, "g", "affinity", 0, &["new", "m1"]);
        assert_eq!(passing(&v, &s), names(&["b"]));
        v.hosts.get_mut("b").unwrap().state.disabled = true;
        let d = details(&v, &s);
        assert!(d.contains("ServerGroupAffinityFilter rejected 2"), "{d}");
        assert!(d.contains("ComputeFilter rejected 1"), "{d}");
    }

    #[test]
    fn anti_affinity_honours_max_server_per_host() {
        let mut v = abc();
        place_server(&mut v, "m1", "a");
        place_server(&mut v, "m2", "a");
        place_server(&mut v, "m3", "b");
        let mut s = small();
        s.group_id = "g".into();
        let members = ["m1", "m2", "m3", "new"];
        // 0 = Nova's default rule of one server per host.
        group(&mut v, "g", "anti-affinity", 0, &members);
        assert_eq!(passing(&v, &s), names(&["c"]));
        group(&mut v, "g", "anti-affinity", 1, &members);
        assert_eq!(passing(&v, &s), names(&["c"]));
        group(&mut v, "g", "anti-affinity", 2, &members);
        assert_eq!(passing(&v, &s), names(&["b", "c"]));
        group(&mut v, "g", "anti-affinity", 3, &members);
        assert_eq!(passing(&v, &s), names(&["a", "b", "c"]));
        // A member being moved to c holds c too.
        std::sync::Arc::make_mut(v.servers.get_mut("m3").unwrap())
            .state
            .migration = Some(Migration {
            id: "mig".into(),
            kind: "migration".into(),
            source_host: "b".into(),
            dest_host: "c".into(),
            ..Default::default()
        });
        group(&mut v, "g", "anti-affinity", 1, &members);
        let d = details(&v, &s);
        assert_eq!(
            d,
            "There are not enough hosts available. Filters: ServerGroupAntiAffinityFilter rejected 3"
        );
    }

    #[test]
    fn weighers_prefer_the_most_free_ram_by_default() {
        let mut v = view(vec![
            host("a", 8, 4096, 100),
            host("b", 8, 8192, 100),
            host("c", 8, 2048, 100),
        ]);
        assert_eq!(select(&v, &small()).unwrap(), names(&["b", "a", "c"]));
        // Free RAM, not total RAM: b's claims leave it the least.
        claim(v.hosts.get_mut("b").unwrap(), "s1", 0, 7168, 0);
        assert_eq!(select(&v, &small()).unwrap(), names(&["a", "c", "b"]));
        // A negative multiplier stacks instead of spreading.
        let stack = SchedulerConfig {
            ram_weight_multiplier: -1.0,
            ..Default::default()
        };
        assert_eq!(
            select_hosts(&v, &small(), &stack, now()).unwrap(),
            names(&["b", "c", "a"])
        );
    }

    #[test]
    fn cpu_disk_and_instance_weighers_follow_their_multipliers() {
        let v = view(vec![
            host("a", 4, 8192, 100),
            host("b", 16, 8192, 50),
            host("c", 8, 8192, 200),
        ]);
        let only = |cpu: f64, disk: f64| SchedulerConfig {
            ram_weight_multiplier: 0.0,
            cpu_weight_multiplier: cpu,
            disk_weight_multiplier: disk,
            ..Default::default()
        };
        assert_eq!(
            select_hosts(&v, &small(), &only(1.0, 0.0), now()).unwrap(),
            names(&["b", "c", "a"])
        );
        assert_eq!(
            select_hosts(&v, &small(), &only(0.0, 1.0), now()).unwrap(),
            names(&["c", "a", "b"])
        );
        assert_eq!(
            select_hosts(&v, &small(), &only(0.0, -1.0), now()).unwrap(),
            names(&["b", "a", "c"])
        );
        // Instances: negative spreads (fewest first).
        let mut v = abc();
        for i in 0..3 {
            claim(v.hosts.get_mut("a").unwrap(), &format!("a{i}"), 0, 0, 0);
        }
        claim(v.hosts.get_mut("b").unwrap(), "b0", 0, 0, 0);
        let spread = SchedulerConfig {
            num_instances_weight_multiplier: -1.0,
            ..Default::default()
        };
        assert_eq!(
            select_hosts(&v, &small(), &spread, now()).unwrap(),
            names(&["c", "b", "a"])
        );
        let pack = SchedulerConfig {
            num_instances_weight_multiplier: 1.0,
            ..Default::default()
        };
        assert_eq!(
            select_hosts(&v, &small(), &pack, now()).unwrap(),
            names(&["a", "b", "c"])
        );
    }

    #[test]
    fn image_cached_weigher_prefers_hosts_with_the_image() {
        let mut v = abc();
        v.hosts
            .get_mut("c")
            .unwrap()
            .state
            .cached_images
            .insert("img".into(), 1 << 20);
        let mut s = small();
        s.image_id = "img".into();
        assert_eq!(select(&v, &s).unwrap()[0], "c");
        // Another image: no preference (ties go by name).
        s.image_id = "other".into();
        assert_eq!(select(&v, &s).unwrap(), names(&["a", "b", "c"]));
        // Without a multiplier the cache does not matter.
        s.image_id = "img".into();
        let off = SchedulerConfig {
            image_cached_weight_multiplier: 0.0,
            ..Default::default()
        };
        assert_eq!(
            select_hosts(&v, &s, &off, now()).unwrap(),
            names(&["a", "b", "c"])
        );
        // Against a RAM advantage: equal multipliers tie (and ties go by name), a larger one wins.
        claim(v.hosts.get_mut("c").unwrap(), "s1", 0, 1024, 0);
        assert_eq!(select(&v, &s).unwrap()[0], "a");
        let cache_first = SchedulerConfig {
            image_cached_weight_multiplier: 2.0,
            ..Default::default()
        };
        assert_eq!(select_hosts(&v, &s, &cache_first, now()).unwrap()[0], "c");
    }

    #[test]
    fn soft_affinity_weighers() {
        let mut v = abc();
        place_server(&mut v, "m1", "b");
        let mut s = small();
        s.group_id = "g".into();
        group(&mut v, "g", "soft-affinity", 0, &["m1", "new"]);
        assert_eq!(select(&v, &s).unwrap()[0], "b");
        group(&mut v, "g", "soft-anti-affinity", 0, &["m1", "new"]);
        assert_eq!(select(&v, &s).unwrap(), names(&["a", "c", "b"]));
    }

    #[test]
    fn host_subset_size_picks_randomly_among_the_best_only() {
        let v = view(
            (0..6u64)
                .map(|i| host(&format!("h{i}"), 8, 1024 * (i + 1), 100))
                .collect(),
        );
        let cfg = SchedulerConfig {
            host_subset_size: 3,
            ..Default::default()
        };
        let mut firsts = BTreeSet::new();
        for _ in 0..300 {
            let hosts = select_hosts(&v, &small(), &cfg, now()).unwrap();
            let mut sorted = hosts.clone();
            sorted.sort();
            assert_eq!(sorted, (0..6).map(|i| format!("h{i}")).collect::<Vec<_>>());
            firsts.insert(hosts[0].clone());
        }
        // Each of the three best was picked at least once (the chance of missing one is (2/3)^300).
        assert_eq!(firsts, ["h3", "h4", "h5"].map(String::from).into());
        // A subset of 1 (or 0) is deterministic; a subset larger than the candidates is clamped.
        for size in [0, 1] {
            let cfg = SchedulerConfig {
                host_subset_size: size,
                ..Default::default()
            };
            assert_eq!(select_hosts(&v, &small(), &cfg, now()).unwrap()[0], "h5");
        }
        let cfg = SchedulerConfig {
            host_subset_size: 100,
            ..Default::default()
        };
        assert_eq!(select_hosts(&v, &small(), &cfg, now()).unwrap().len(), 6);
    }

    #[test]
    fn no_valid_host_details_name_each_rejecting_filter() {
        assert_eq!(
            details(&ComputeView::default(), &small()).as_str(),
            "There are no compute hosts."
        );
        let mut v = abc();
        v.hosts.get_mut("a").unwrap().state.disabled = true;
        let mut s = spec(flavor(1, 8192, 1));
        claim(v.hosts.get_mut("b").unwrap(), "s1", 1, 1, 1);
        claim(v.hosts.get_mut("c").unwrap(), "s2", 8, 0, 0);
        // a: ComputeFilter; b: 8191 MB left; c: RAM fits but no vCPU left.
        assert_eq!(
            details(&v, &s),
            "There are not enough hosts available. Filters: ComputeFilter rejected 1, \
             CoreFilter rejected 1, RamFilter rejected 1"
        );
        s.flavor.ram_mb = 1;
        assert_eq!(select(&v, &s).unwrap(), names(&["b"]));
    }

    /// The view as the projection folds it from recorded host and aggregate events.
    #[tokio::test]
    async fn filters_and_weighers_over_a_view_folded_from_the_log() {
        use std::sync::Arc;
        use strata_events::{EventLog, ExpectedVersion, MemoryLog, Metadata, NewEvent};
        use strata_proto::codec::DomainEvent;
        use strata_proto::compute as pb;
        use strata_proto::ComputeEvent as E;

        let log = MemoryLog::new();
        let put = |stream: &str, e: E| {
            let log = &log;
            let stream = stream.to_string();
            async move {
                log.append(
                    &stream,
                    ExpectedVersion::Any,
                    vec![NewEvent::new(e.event_type(), e.encode())],
                    Metadata::system("t"),
                )
                .await
                .unwrap();
            }
        };
        for (name, ram) in [("h1", 4096), ("h2", 8192), ("h3", 16384)] {
            put(
                &format!("compute-host-{name}"),
                E::HostRegistered(pb::HostRegistered {
                    hypervisor_id: name.into(),
                    service_id: name.into(),
                    hypervisor_type: "fake".into(),
                    vcpus: 4,
                    ram_mb: ram,
                    disk_gb: 100,
                    cpu_allocation_ratio: 4.0,
                    ram_allocation_ratio: 1.0,
                    disk_allocation_ratio: 1.0,
                    host_ip: "127.0.0.1".into(),
                }),
            )
            .await;
        }
        put(
            "compute-host-h2",
            E::HostClaimed(pb::HostClaimed {
                claim_id: "s1".into(),
                server_id: "s1".into(),
                vcpus: 1,
                ram_mb: 6144,
                disk_gb: 1,
            }),
        )
        .await;
        put(
            "compute-host-h3",
            E::HostServiceDisabled(pb::HostServiceDisabled {
                reason: "maintenance".into(),
            }),
        )
        .await;
        put(
            "host-aggregate-1",
            E::AggregateCreated(pb::AggregateCreated {
                uuid: "u".into(),
                name: "fast".into(),
                availability_zone: "az1".into(),
            }),
        )
        .await;
        put(
            "host-aggregate-1",
            E::AggregateHostAdded(pb::AggregateHostAdded { host: "h2".into() }),
        )
        .await;
        let log: Arc<dyn EventLog> = Arc::new(log);
        let v: ComputeView = strata_projections::rebuild(&log, 100).await.unwrap();
        let cfg = SchedulerConfig::default();
        let t = Utc::now();
        // h3 is disabled; h1 has more free RAM than h2 (4096 vs 2048).
        assert_eq!(
            select_hosts(&v, &small(), &cfg, t).unwrap(),
            names(&["h1", "h2"])
        );
        let mut s = small();
        s.availability_zone = "az1".into();
        assert_eq!(select_hosts(&v, &s, &cfg, t).unwrap(), names(&["h2"]));
        s.flavor.ram_mb = 4096;
        let d = select_hosts(&v, &s, &cfg, t).unwrap_err().details;
        assert_eq!(
            d,
            "There are not enough hosts available. Filters: AvailabilityZoneFilter rejected 1, \
             ComputeFilter rejected 1, RamFilter rejected 1"
        );
        // Registration counts as being heard from: later than service_down_time it is silent.
        let later = t + chrono::Duration::seconds(120);
        let d = select_hosts(&v, &small(), &cfg, later).unwrap_err().details;
        assert_eq!(
            d,
            "There are not enough hosts available. Filters: ComputeFilter rejected 3"
        );
    }
}
