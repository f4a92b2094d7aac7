//! `strata bench compute`: boot and delete servers on fake hosts through Nova's HTTP API against a fresh
//! `strata serve`, break each boot down into its recorded steps from the server's event log afterwards, then
//! time the scheduler alone over many in-memory hosts.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use strata_events::{EventLog, RecordedEvent, RocksLog};

use super::{admin_login, create_image, percentile, spawn_server_with};

pub struct Options {
    pub servers: usize,
    pub concurrency: usize,
    pub fake_hosts: usize,
    pub fake_host_spec: String,
    pub poll: Duration,
    pub sched_hosts: usize,
    pub sched_decisions: usize,
}

/// 2.37 is the first microversion that requires `networks` ("none": there is no network service yet).
const MICROVERSION: &str = "compute 2.37";

/// One HTTP client (one connection) with the admin's token.
struct Client<'a> {
    agent: ureq::Agent,
    url: &'a str,
    token: &'a str,
}

impl<'a> Client<'a> {
    fn new(url: &'a str, token: &'a str) -> Self {
        Client {
            agent: ureq::AgentBuilder::new().build(),
            url,
            token,
        }
    }

    fn request(&self, method: &str, path: &str) -> ureq::Request {
        self.agent
            .request(method, &format!("{}{path}", self.url))
            .set("X-Auth-Token", self.token)
            .set("OpenStack-API-Version", MICROVERSION)
    }
}

/// A non-2xx answer as an error that shows the body (Nova's fault message).
fn answered(r: Result<ureq::Response, ureq::Error>) -> anyhow::Result<ureq::Response> {
    match r {
        Ok(resp) => Ok(resp),
        Err(ureq::Error::Status(code, resp)) => {
            let url = resp.get_url().to_string();
            let body = resp.into_string().unwrap_or_default();
            anyhow::bail!("{url} answered {code}: {body}")
        }
        Err(e) => Err(e.into()),
    }
}

/// One boot as the client saw it.
struct Boot {
    id: String,
    request_id: String,
    posted: DateTime<Utc>,
    active_seen: DateTime<Utc>,
    latency: Duration,
}

fn boot_one(
    c: &Client,
    flavor: &str,
    image: &str,
    name: &str,
    poll: Duration,
) -> anyhow::Result<Boot> {
    let posted = Utc::now();
    let t = Instant::now();
    let resp = answered(c.request("POST", "/servers").send_json(json!({"server": {
        "name": name, "flavorRef": flavor, "imageRef": image, "networks": "none"}})))?;
    let request_id = resp
        .header("X-OpenStack-Request-Id")
        .unwrap_or_default()
        .to_string();
    let v: Value = resp.into_json()?;
    let id = v["server"]["id"]
        .as_str()
        .context("no server id in the answer")?
        .to_string();
    loop {
        let v: Value = answered(c.request("GET", &format!("/servers/{id}")).call())?.into_json()?;
        match v["server"]["status"].as_str() {
            Some("ACTIVE") => break,
            Some("ERROR") => anyhow::bail!("server {id} ended in ERROR: {}", v["server"]["fault"]),
            _ => std::thread::sleep(poll),
        }
    }
    Ok(Boot {
        id,
        request_id,
        posted,
        active_seen: Utc::now(),
        latency: t.elapsed(),
    })
}

/// DELETE, then poll until the server is gone (404); returns (DELETE answered, gone) latencies.
fn delete_one(c: &Client, id: &str, poll: Duration) -> anyhow::Result<(Duration, Duration)> {
    let t = Instant::now();
    answered(c.request("DELETE", &format!("/servers/{id}")).call())?;
    let accepted = t.elapsed();
    loop {
        match c.request("GET", &format!("/servers/{id}")).call() {
            Err(ureq::Error::Status(404, _)) => break,
            Ok(resp) => {
                let v: Value = resp.into_json()?;
                if v["server"]["status"].as_str() == Some("ERROR") {
                    anyhow::bail!("deleting {id} ended in ERROR: {}", v["server"]["fault"]);
                }
                std::thread::sleep(poll)
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok((accepted, t.elapsed()))
}

/// Run `job(client, i)` for i in 0..n on `concurrency` threads; returns the results in order and the
/// wall time.
fn run_parallel<T: Send>(
    url: &str,
    token: &str,
    concurrency: usize,
    n: usize,
    job: impl Fn(&Client, usize) -> anyhow::Result<T> + Sync,
) -> anyhow::Result<(Vec<T>, Duration)> {
    let next = AtomicUsize::new(0);
    let start = Instant::now();
    let mut results: Vec<(usize, T)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..concurrency.min(n.max(1)))
            .map(|_| {
                scope.spawn(|| -> anyhow::Result<Vec<(usize, T)>> {
                    let client = Client::new(url, token);
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= n {
                            return Ok(out);
                        }
                        out.push((i, job(&client, i)?));
                    }
                })
            })
            .collect();
        let mut all = Vec::with_capacity(n);
        for h in handles {
            all.extend(
                h.join()
                    .map_err(|_| anyhow::anyhow!("bench thread panicked"))??,
            );
        }
        Ok::<_, anyhow::Error>(all)
    })?;
    let wall = start.elapsed();
    results.sort_by_key(|(i, _)| *i);
    Ok((results.into_iter().map(|(_, r)| r).collect(), wall))
}

/// Resident set size of process `pid`, in KiB (`VmRSS` of /proc/<pid>/status).
fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS in /proc/<pid>/status")
}

/// CPU time (user + system) process `pid` ("self" for this one) has used so far.
fn cpu_time(pid: &str) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th of the line.
    let rest = stat.rsplit_once(')').context("odd /proc/<pid>/stat")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f
        .get(11)
        .zip(f.get(12))
        .and_then(|(u, s)| Some(u.parse::<u64>().ok()? + s.parse::<u64>().ok()?))
        .context("no utime/stime in /proc/<pid>/stat")?;
    // USER_HZ is 100 on Linux for every architecture this runs on.
    Ok(Duration::from_millis(ticks * 10))
}

/// CPU used by the server and by this (client) process while `f` ran, as a line for the report.
fn cpu_during<T>(
    pid: u32,
    what: &str,
    n: usize,
    f: impl FnOnce() -> anyhow::Result<(T, Duration)>,
) -> anyhow::Result<(T, Duration, String)> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (server0, client0) = (cpu_time(&pid.to_string())?, cpu_time("self")?);
    let (out, wall) = f()?;
    let server = cpu_time(&pid.to_string())?.saturating_sub(server0);
    let client = cpu_time("self")?.saturating_sub(client0);
    let pct = |d: Duration| 100.0 * d.as_secs_f64() / (wall.as_secs_f64() * cores as f64);
    let line = format!(
        "  CPU while {what}: server {:.2} s ({:.0} % of {cores} cores, {:.2} ms per {what}), bench clients {:.2} s ({:.0} %)",
        server.as_secs_f64(),
        pct(server),
        server.as_secs_f64() * 1e3 / n.max(1) as f64,
        client.as_secs_f64(),
        pct(client),
    );
    Ok((out, wall, line))
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

pub fn run(o: Options) -> anyhow::Result<()> {
    if o.servers > 0 {
        bench_http(&o)?;
    }
    bench_scheduler(o.sched_hosts, o.sched_decisions)
}

fn bench_http(o: &Options) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let extra: Vec<String> = [
        "--fake-hosts",
        &o.fake_hosts.to_string(),
        "--fake-host-spec",
        &o.fake_host_spec,
        "--build-timeout",
        "600",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let (mut child, urls) = spawn_server_with(tmp.path(), &extra)?;
    let result = boot_and_delete(o, child.id(), &urls.identity, &urls.image, &urls.compute);
    let _ = child.kill();
    let _ = child.wait();
    let windows = result?;
    // The log, read after the server stopped: what each boot and delete recorded, and when.
    let log = RocksLog::open_read_only(tmp.path().join("data").join("log"))
        .context("opening the server's log")?;
    let events = read_log(&log)?;
    analyse(&events, &windows, o.servers);
    Ok(())
}

/// What the HTTP phases saw, for the log analysis.
struct Windows {
    boots: Vec<Boot>,
    boot: (DateTime<Utc>, DateTime<Utc>),
    delete: (DateTime<Utc>, DateTime<Utc>),
}

fn boot_and_delete(
    o: &Options,
    pid: u32,
    identity_url: &str,
    image_url: &str,
    compute_url: &str,
) -> anyhow::Result<Windows> {
    let (token, project) = admin_login(identity_url)?;
    let setup = Client::new(compute_url, &token);
    answered(
        setup
            .request("PUT", &format!("/os-quota-sets/{project}"))
            .send_json(json!({"quota_set": {"instances": -1, "cores": -1, "ram": -1}})),
    )?;
    let flavor: Value =
        answered(setup.request("POST", "/flavors").send_json(
            json!({"flavor": {"name": "bench.tiny", "ram": 64, "vcpus": 1, "disk": 0}}),
        ))?
        .into_json()?;
    let flavor = flavor["flavor"]["id"]
        .as_str()
        .context("flavor id")?
        .to_string();
    let image = create_image(&setup.agent, image_url, &token, "bench-image")?;
    answered(
        setup
            .agent
            .put(&format!("{image_url}/v2/images/{image}/file"))
            .set("X-Auth-Token", &token)
            .set("Content-Type", "application/octet-stream")
            .send_bytes(&[0u8; 64 << 10]),
    )?;

    let rss_before = rss_kib(pid)?;
    println!(
        "## {} servers through Nova's API at {compute_url} ({} fake hosts {}, concurrency {}, poll {:?})",
        o.servers, o.fake_hosts, o.fake_host_spec, o.concurrency, o.poll
    );
    let boot_start = Utc::now();
    let (boots, boot_wall, boot_cpu) = cpu_during(pid, "boot", o.servers, || {
        run_parallel(compute_url, &token, o.concurrency, o.servers, |c, i| {
            boot_one(c, &flavor, &image, &format!("bench-{i}"), o.poll)
        })
    })?;
    let boot_end = Utc::now();
    let rss_active = rss_kib(pid)?;
    let mut lat: Vec<Duration> = boots.iter().map(|b| b.latency).collect();
    lat.sort();
    println!(
        "boot (POST until GET shows ACTIVE)    {:>8.1} boots/s   time to ACTIVE p50 {}  p99 {}  max {}",
        o.servers as f64 / boot_wall.as_secs_f64(),
        ms(percentile(&lat, 0.5)),
        ms(percentile(&lat, 0.99)),
        ms(lat.last().copied().unwrap_or_default()),
    );
    println!("{boot_cpu}");

    let delete_start = Utc::now();
    let (deletes, delete_wall, delete_cpu) = cpu_during(pid, "delete", boots.len(), || {
        run_parallel(compute_url, &token, o.concurrency, boots.len(), |c, i| {
            delete_one(c, &boots[i].id, o.poll)
        })
    })?;
    let delete_end = Utc::now();
    let rss_deleted = rss_kib(pid)?;
    let mut accepted: Vec<Duration> = deletes.iter().map(|d| d.0).collect();
    let mut gone: Vec<Duration> = deletes.iter().map(|d| d.1).collect();
    accepted.sort();
    gone.sort();
    println!(
        "delete (DELETE until GET answers 404) {:>8.1} deletes/s  DELETE answered p50 {}  p99 {};  gone p50 {}  p99 {}",
        boots.len() as f64 / delete_wall.as_secs_f64(),
        ms(percentile(&accepted, 0.5)),
        ms(percentile(&accepted, 0.99)),
        ms(percentile(&gone, 0.5)),
        ms(percentile(&gone, 0.99)),
    );
    println!("{delete_cpu}");
    println!(
        "server RSS: {} MiB before, {} MiB with {} servers ACTIVE ({:.1} KiB per server), {} MiB after deleting them",
        rss_before >> 10,
        rss_active >> 10,
        o.servers,
        rss_active.saturating_sub(rss_before) as f64 / o.servers.max(1) as f64,
        rss_deleted >> 10,
    );
    Ok(Windows {
        boots,
        boot: (boot_start, boot_end),
        delete: (delete_start, delete_end),
    })
}

fn read_log(log: &RocksLog) -> anyhow::Result<Vec<RecordedEvent>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut all = Vec::new();
        let mut next = 1;
        loop {
            let batch = log.read_all(next, 8192).await?;
            let Some(last) = batch.last().map(|e| e.position) else {
                break;
            };
            next = last + 1;
            all.extend(batch);
        }
        Ok(all)
    })
}

fn since(from: DateTime<Utc>, to: DateTime<Utc>) -> Duration {
    to.signed_duration_since(from)
        .to_std()
        .unwrap_or(Duration::ZERO)
}

/// Events per boot and per delete by type, claims per host, and each boot's time split at the events it
/// recorded (the bench and the server share the clock).
fn analyse(events: &[RecordedEvent], w: &Windows, k: usize) {
    let k = k.max(1) as f64;
    let in_window = |e: &RecordedEvent, (a, b): (DateTime<Utc>, DateTime<Utc>)| {
        e.recorded_at >= a && e.recorded_at <= b
    };
    for (what, window) in [("boot", w.boot), ("delete", w.delete)] {
        let mut by_type: BTreeMap<&str, usize> = BTreeMap::new();
        let mut total = 0;
        for e in events.iter().filter(|e| in_window(e, window)) {
            *by_type.entry(e.event_type.as_str()).or_default() += 1;
            total += 1;
        }
        let parts: Vec<String> = by_type
            .iter()
            .map(|(t, n)| {
                let t = t.trim_start_matches("compute.").trim_end_matches(".v1");
                format!("{t} {:.2}", *n as f64 / k)
            })
            .collect();
        println!(
            "events per {what}: {:.2} ({})",
            total as f64 / k,
            parts.join(", ")
        );
    }
    let mut claims_per_host: BTreeMap<&str, usize> = BTreeMap::new();
    let mut reserved: HashMap<&str, DateTime<Utc>> = HashMap::new();
    let mut claimed: HashMap<&str, DateTime<Utc>> = HashMap::new();
    let mut steps: HashMap<&str, [Option<DateTime<Utc>>; 3]> = HashMap::new();
    for e in events.iter().filter(|e| in_window(e, w.boot)) {
        let step = match e.event_type.as_str() {
            "compute.UsageReserved.v1" => {
                reserved.insert(e.correlation_id.as_str(), e.recorded_at);
                continue;
            }
            "compute.HostClaimed.v1" => {
                // The conductor's claim carries the server id as its correlation id.
                claimed.insert(e.correlation_id.as_str(), e.recorded_at);
                let host = e.stream_id.trim_start_matches("compute-host-");
                *claims_per_host.entry(host).or_default() += 1;
                continue;
            }
            "compute.ServerCreated.v1" => 0,
            "compute.ServerScheduled.v1" => 1,
            "compute.ServerSpawned.v1" => 2,
            _ => continue,
        };
        if let Some(id) = e.stream_id.strip_prefix("server-") {
            steps.entry(id).or_default()[step] = Some(e.recorded_at);
        }
    }
    let spread: Vec<String> = claims_per_host
        .iter()
        .map(|(h, n)| format!("{h} {n}"))
        .collect();
    println!("claims per host: {}", spread.join(", "));
    let names = [
        "POST sent -> UsageReserved recorded (HTTP, token, quota actor, fsync)",
        "UsageReserved -> ServerCreated recorded (server actor, fsync)",
        "ServerCreated -> HostClaimed (conductor wakes, view wait, schedule, claim)",
        "HostClaimed -> ServerScheduled",
        "ServerScheduled -> ServerSpawned (conductor wakes, image cache, fake spawn)",
        "ServerSpawned -> client sees ACTIVE (view, HTTP, poll interval)",
    ];
    let mut gaps: Vec<Vec<Duration>> = vec![Vec::new(); names.len()];
    for b in &w.boots {
        let (Some(r), Some(c), Some([Some(cr), Some(sc), Some(sp)])) = (
            reserved.get(b.request_id.as_str()),
            claimed.get(b.id.as_str()),
            steps.get(b.id.as_str()),
        ) else {
            continue;
        };
        let points = [b.posted, *r, *cr, *c, *sc, *sp, b.active_seen];
        for (i, pair) in points.windows(2).enumerate() {
            gaps[i].push(since(pair[0], pair[1]));
        }
    }
    println!(
        "a boot, step by step ({} of {} boots traced in the log):",
        gaps[0].len(),
        w.boots.len()
    );
    for (name, mut g) in names.iter().zip(gaps) {
        g.sort();
        let mean = g.iter().sum::<Duration>() / g.len().max(1) as u32;
        println!(
            "  {name:<78} p50 {:>9}  p99 {:>9}  mean {:>9}",
            ms(percentile(&g, 0.5)),
            ms(percentile(&g, 0.99)),
            ms(mean)
        );
    }
}

/// `select_hosts` over a `ComputeView` of `n` up hosts built in memory, each decision's claim added to its
/// host before the next (as the conductor's claim would be). Timed twice: hosts already holding 0-19 claims
/// each, and empty hosts (the difference is the cost of summing claims per host).
fn bench_scheduler(n: usize, decisions: usize) -> anyhow::Result<()> {
    println!("## scheduler: select_hosts over {n} up hosts in memory, {decisions} decisions");
    for with_claims in [true, false] {
        let now = Utc::now();
        let (mut view, claims) = scheduler_view(n, with_claims, now);
        let lat = time_decisions(&mut view, decisions, now)?;
        let mean = lat.iter().sum::<Duration>() / lat.len().max(1) as u32;
        println!(
            "{:<34} per decision: p50 {}  p99 {}  max {}  mean {}",
            format!("hosts holding {claims} claims"),
            ms(percentile(&lat, 0.5)),
            ms(percentile(&lat, 0.99)),
            ms(lat.last().copied().unwrap_or_default()),
            ms(mean)
        );
    }
    Ok(())
}

fn scheduler_view(
    n: usize,
    with_claims: bool,
    now: DateTime<Utc>,
) -> (strata_projections::compute::ComputeView, usize) {
    use strata_actors::compute::{Claim, ComputeHost, Inventory};
    use strata_projections::compute::{ComputeView, HostRow};

    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut view = ComputeView::default();
    let mut claims_total = 0;
    for i in 0..n {
        let name = format!("host-{i:05}");
        // Servers already on each host, of mixed sizes; a tenth of the hosts hold the image.
        let count = if with_claims { rng.gen_range(0..20) } else { 0 };
        let claims: BTreeMap<String, Claim> = (0..count)
            .map(|c| {
                let id = format!("{i:05}-{c:02}");
                let claim = Claim {
                    server_id: id.clone(),
                    vcpus: rng.gen_range(1..=8),
                    ram_mb: 512 * rng.gen_range(1..=32),
                    disk_gb: rng.gen_range(0..=80),
                };
                (id, claim)
            })
            .collect();
        claims_total += claims.len();
        let cached_images = if i % 10 == 0 {
            [("bench-image".to_string(), 64 << 10)]
                .into_iter()
                .collect()
        } else {
            BTreeMap::new()
        };
        let state = ComputeHost {
            exists: true,
            hypervisor_type: "fake".into(),
            inventory: Inventory {
                vcpus: 64,
                ram_mb: 262_144,
                disk_gb: 2_000,
                cpu_allocation_ratio: 16.0,
                ram_allocation_ratio: 1.5,
                disk_allocation_ratio: 1.0,
            },
            claims,
            cached_images,
            ..Default::default()
        };
        view.hosts.insert(
            name.clone(),
            HostRow {
                name,
                state,
                last_seen: Some(now),
                ..Default::default()
            },
        );
    }
    (view, claims_total)
}

/// Time `decisions` scheduling decisions for a 1 vCPU / 64 MB flavor; returns the sorted latencies.
fn time_decisions(
    view: &mut strata_projections::compute::ComputeView,
    decisions: usize,
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<Duration>> {
    use strata_actors::compute::{Claim, FlavorSpec};
    use strata_compute::scheduler::{select_hosts, RequestSpec, SchedulerConfig};

    let flavor = FlavorSpec {
        id: "bench".into(),
        name: "bench.tiny".into(),
        vcpus: 1,
        ram_mb: 64,
        rxtx_factor: 1.0,
        ..Default::default()
    };
    let cfg = SchedulerConfig::default();
    let mut lat = Vec::with_capacity(decisions);
    for d in 0..decisions {
        let spec = RequestSpec {
            server_id: format!("bench-{d}"),
            flavor: flavor.clone(),
            image_id: "bench-image".into(),
            ..Default::default()
        };
        let t = Instant::now();
        let hosts = select_hosts(view, &spec, &cfg, now)
            .map_err(|e| anyhow::anyhow!("no valid host: {}", e.details))?;
        lat.push(t.elapsed());
        let host = view
            .hosts
            .get_mut(&hosts[0])
            .context("the scheduler chose an unknown host")?;
        host.state.claims.insert(
            spec.server_id.clone(),
            Claim {
                server_id: spec.server_id,
                vcpus: 1,
                ram_mb: 64,
                disk_gb: 0,
            },
        );
    }
    lat.sort();
    Ok(lat)
}
