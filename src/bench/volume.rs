//! `strata bench volume`: create/delete cycles through Cinder's HTTP API against a fresh `strata serve`, once
//! per backend kind (`fake`, `file` raw, `file` qcow2), with each cycle split at the events it recorded;
//! then the volume drivers alone (create + delete in a loop, no API, no log) and the file system calls a raw
//! create makes, one by one, so the figures show where the time goes.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use strata_events::{EventLog, RecordedEvent, RocksLog};
use strata_volume::driver::{FakeDriver, FileDriver, VolumeDriver, VolumeFormat};

use super::{admin_login, percentile, spawn_server_with};

pub struct Options {
    pub volumes: usize,
    pub concurrency: usize,
    pub kinds: Vec<Kind>,
    pub size_gb: u64,
    pub poll: Duration,
    pub driver_time: Duration,
    pub dir: Option<PathBuf>,
}

/// A backend setup of the server under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Fake,
    Raw,
    Qcow2,
}

impl Kind {
    pub fn parse(s: &str) -> anyhow::Result<Kind> {
        Ok(match s.trim() {
            "fake" => Kind::Fake,
            "raw" => Kind::Raw,
            "qcow2" => Kind::Qcow2,
            other => anyhow::bail!("unknown backend kind {other:?} (fake, raw, qcow2)"),
        })
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Fake => "fake",
            Kind::Raw => "file raw",
            Kind::Qcow2 => "file qcow2",
        }
    }

    /// The name without spaces, for file and volume names.
    fn slug(self) -> String {
        self.name().replace(' ', "-")
    }

    /// `--volume-backend` of the server: one backend, large enough for every volume in flight.
    fn backend_flag(self) -> &'static str {
        match self {
            Kind::Fake => "bench:fake:100000",
            Kind::Raw => "bench:file:100000:raw",
            Kind::Qcow2 => "bench:file:100000:qcow2",
        }
    }
}

pub fn run(o: Options) -> anyhow::Result<()> {
    let scratch = tempfile::Builder::new()
        .prefix("strata-bench-volume-")
        .tempdir_in(o.dir.clone().unwrap_or_else(std::env::temp_dir))?;
    if o.volumes > 0 {
        for &kind in &o.kinds {
            bench_http(&o, kind, scratch.path())?;
        }
    }
    if !o.driver_time.is_zero() {
        bench_drivers(&o, scratch.path())?;
        bench_raw_steps(o.size_gb, o.driver_time, scratch.path())?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------
// Through the API

/// One HTTP client (one connection) with the admin's token, speaking to `<volume url>/<project>`.
struct Client<'a> {
    agent: ureq::Agent,
    base: &'a str,
    token: &'a str,
}

impl<'a> Client<'a> {
    fn new(base: &'a str, token: &'a str) -> Self {
        Client {
            agent: ureq::AgentBuilder::new().build(),
            base,
            token,
        }
    }

    fn request(&self, method: &str, path: &str) -> ureq::Request {
        self.agent
            .request(method, &format!("{}{path}", self.base))
            .set("X-Auth-Token", self.token)
    }
}

/// A non-2xx answer as an error that shows the body (Cinder's fault message).
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

/// One create/delete cycle as the client saw it.
struct Cycle {
    id: String,
    create_request: String,
    delete_request: String,
    posted: DateTime<Utc>,
    available_seen: DateTime<Utc>,
    delete_sent: DateTime<Utc>,
    gone_seen: DateTime<Utc>,
    /// POST sent until a GET shows `available`.
    to_available: Duration,
    /// DELETE sent until a GET answers 404.
    to_deleted: Duration,
}

fn request_id(resp: &ureq::Response) -> String {
    resp.header("X-OpenStack-Request-Id")
        .unwrap_or_default()
        .to_string()
}

fn cycle_one(c: &Client, name: &str, size_gb: u64, poll: Duration) -> anyhow::Result<Cycle> {
    let posted = Utc::now();
    let t = Instant::now();
    let resp = answered(
        c.request("POST", "/volumes")
            .send_json(json!({"volume": {"name": name, "size": size_gb}})),
    )?;
    let create_request = request_id(&resp);
    let v: Value = resp.into_json()?;
    let id = v["volume"]["id"]
        .as_str()
        .context("no volume id in the answer")?
        .to_string();
    let path = format!("/volumes/{id}");
    loop {
        let v: Value = answered(c.request("GET", &path).call())?.into_json()?;
        match v["volume"]["status"].as_str() {
            Some("available") => break,
            Some(s) if s.starts_with("error") => anyhow::bail!("volume {id} ended in {s}"),
            _ => std::thread::sleep(poll),
        }
    }
    let to_available = t.elapsed();
    let available_seen = Utc::now();

    let delete_sent = Utc::now();
    let t = Instant::now();
    let resp = answered(c.request("DELETE", &path).call())?;
    let delete_request = request_id(&resp);
    loop {
        match c.request("GET", &path).call() {
            Err(ureq::Error::Status(404, _)) => break,
            Ok(resp) => {
                let v: Value = resp.into_json()?;
                if let Some(s) = v["volume"]["status"].as_str() {
                    if s.starts_with("error") {
                        anyhow::bail!("deleting volume {id} ended in {s}");
                    }
                }
                std::thread::sleep(poll)
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Cycle {
        id,
        create_request,
        delete_request,
        posted,
        available_seen,
        delete_sent,
        gone_seen: Utc::now(),
        to_available,
        to_deleted: t.elapsed(),
    })
}

/// `n` cycles on `concurrency` client threads, each taking the next cycle when its last one ended;
/// returns the cycles in order and the wall time.
fn run_cycles(
    base: &str,
    token: &str,
    o: &Options,
    kind: Kind,
) -> anyhow::Result<(Vec<Cycle>, Duration)> {
    let next = AtomicUsize::new(0);
    let start = Instant::now();
    let mut all: Vec<(usize, Cycle)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..o.concurrency.min(o.volumes.max(1)))
            .map(|_| {
                scope.spawn(|| -> anyhow::Result<Vec<(usize, Cycle)>> {
                    let client = Client::new(base, token);
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= o.volumes {
                            return Ok(out);
                        }
                        let name = format!("bench-{}-{i}", kind.slug());
                        out.push((i, cycle_one(&client, &name, o.size_gb, o.poll)?));
                    }
                })
            })
            .collect();
        let mut all = Vec::with_capacity(o.volumes);
        for h in handles {
            all.extend(
                h.join()
                    .map_err(|_| anyhow::anyhow!("bench thread panicked"))??,
            );
        }
        Ok::<_, anyhow::Error>(all)
    })?;
    let wall = start.elapsed();
    all.sort_by_key(|(i, _)| *i);
    Ok((all.into_iter().map(|(_, c)| c).collect(), wall))
}

/// CPU time (user + system) of process `pid` ("self" for this one), and that of its children it waited
/// for (the server's `qemu-img` runs).
fn cpu_time(pid: &str) -> anyhow::Result<(Duration, Duration)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised command name: utime, stime, cutime, cstime are the 14th-17th.
    let rest = stat.rsplit_once(')').context("odd /proc/<pid>/stat")?.1;
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(4)
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    anyhow::ensure!(f.len() == 4, "no utime/stime in /proc/<pid>/stat");
    // USER_HZ is 100 on Linux for every architecture this runs on.
    let ticks = |t: u64| Duration::from_millis(t * 10);
    Ok((ticks(f[0] + f[1]), ticks(f[2] + f[3])))
}

/// Milliseconds with one decimal, microseconds below 1 ms (the fake driver's calls take a few).
fn ms(d: Duration) -> String {
    if d < Duration::from_millis(1) {
        format!("{} µs", d.as_micros())
    } else {
        format!("{:.1} ms", d.as_secs_f64() * 1e3)
    }
}

fn bench_http(o: &Options, kind: Kind, scratch: &Path) -> anyhow::Result<()> {
    let dir = tempfile::Builder::new()
        .prefix(&format!("serve-{}-", kind.slug()))
        .tempdir_in(scratch)?;
    let extra = vec!["--volume-backend".to_string(), kind.backend_flag().into()];
    let (mut child, urls) = spawn_server_with(dir.path(), &extra)?;
    let result = cycles(o, kind, child.id(), &urls.identity, &urls.volume);
    let _ = child.kill();
    let _ = child.wait();
    let cycles = result?;
    // The log, read after the server stopped: what each cycle recorded, and when.
    let log = RocksLog::open_read_only(dir.path().join("data").join("log"))
        .context("opening the server's log")?;
    let events = read_log(&log)?;
    analyse(&events, &cycles);
    if kind != Kind::Fake {
        let left = std::fs::read_dir(dir.path().join("data").join("volumes").join("bench"))
            .map(|d| d.count())
            .unwrap_or(0);
        anyhow::ensure!(left == 0, "{left} files left in the backend's directory");
    }
    Ok(())
}

fn cycles(
    o: &Options,
    kind: Kind,
    pid: u32,
    identity_url: &str,
    volume_url: &str,
) -> anyhow::Result<Vec<Cycle>> {
    let (token, project) = admin_login(identity_url)?;
    let base = format!("{volume_url}/{project}");
    let setup = Client::new(&base, &token);
    answered(
        setup
            .request("PUT", &format!("/os-quota-sets/{project}"))
            .send_json(json!({"quota_set": {"volumes": -1, "gigabytes": -1}})),
    )?;
    println!(
        "## {} create/delete cycles of {} GB volumes through Cinder's API at {base} (backend {}, concurrency {}, poll {:?})",
        o.volumes,
        o.size_gb,
        kind.backend_flag(),
        o.concurrency,
        o.poll
    );
    let pid = pid.to_string();
    let (server0, children0) = cpu_time(&pid)?;
    let (client0, _) = cpu_time("self")?;
    let (cycles, wall) = run_cycles(&base, &token, o, kind)?;
    let (server1, children1) = cpu_time(&pid)?;
    let (client1, _) = cpu_time("self")?;
    let mut available: Vec<Duration> = cycles.iter().map(|c| c.to_available).collect();
    let mut deleted: Vec<Duration> = cycles.iter().map(|c| c.to_deleted).collect();
    available.sort();
    deleted.sort();
    let n = cycles.len().max(1) as f64;
    println!(
        "{:<10} {:>7.1} cycles/s   to available p50 {}  p95 {}  p99 {}  max {};  to deleted p50 {}  p95 {}  p99 {}  max {}",
        kind.name(),
        cycles.len() as f64 / wall.as_secs_f64(),
        ms(percentile(&available, 0.5)),
        ms(percentile(&available, 0.95)),
        ms(percentile(&available, 0.99)),
        ms(available.last().copied().unwrap_or_default()),
        ms(percentile(&deleted, 0.5)),
        ms(percentile(&deleted, 0.95)),
        ms(percentile(&deleted, 0.99)),
        ms(deleted.last().copied().unwrap_or_default()),
    );
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let server = server1.saturating_sub(server0).as_secs_f64();
    let children = children1.saturating_sub(children0).as_secs_f64();
    let client = client1.saturating_sub(client0).as_secs_f64();
    println!(
        "  CPU per cycle: server {:.2} ms, its qemu-img children {:.2} ms, bench clients {:.2} ms ({:.0} % of {cores} cores in all)",
        server * 1e3 / n,
        children * 1e3 / n,
        client * 1e3 / n,
        100.0 * (server + children + client) / (wall.as_secs_f64() * cores),
    );
    Ok(cycles)
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

/// The events a create and a delete record, in order. The volume's own events carry the id of the request
/// that began the task as their correlation id, backend claims the volume id, quota releases `volume:<id>`.
const CREATE_STEPS: &[&str] = &[
    "VolumeUsageReserved",
    "VolumeCreated",
    "BackendClaimed",
    "VolumeScheduled",
    "VolumeMadeAvailable",
];
const DELETE_STEPS: &[&str] = &[
    "VolumeTaskStarted",
    "BackendClaimReleased",
    "VolumeUsageReleased",
    "VolumeDeleted",
];

fn short_type(t: &str) -> &str {
    t.trim_start_matches("volume.").trim_end_matches(".v1")
}

/// Events per cycle by type, and each cycle split at the events it recorded (the bench and the server share
/// the clock).
fn analyse(events: &[RecordedEvent], cycles: &[Cycle]) {
    let requests: HashSet<String> = cycles
        .iter()
        .flat_map(|c| {
            [
                c.create_request.clone(),
                c.delete_request.clone(),
                c.id.clone(),
                format!("volume:{}", c.id),
            ]
        })
        .collect();
    let mut by_type: BTreeMap<&str, usize> = BTreeMap::new();
    let mut at: HashMap<(&str, &str), DateTime<Utc>> = HashMap::new();
    for e in events
        .iter()
        .filter(|e| requests.contains(&e.correlation_id))
    {
        let t = short_type(&e.event_type);
        *by_type.entry(t).or_default() += 1;
        at.entry((e.correlation_id.as_str(), t))
            .or_insert(e.recorded_at);
    }
    let k = cycles.len().max(1) as f64;
    let total: usize = by_type.values().sum();
    let parts: Vec<String> = by_type
        .iter()
        .map(|(t, n)| format!("{t} {:.2}", *n as f64 / k))
        .collect();
    println!(
        "  events per cycle: {:.2} ({})",
        total as f64 / k,
        parts.join(", ")
    );
    for (what, steps, sent, seen) in [
        ("create", CREATE_STEPS, "POST sent", "client sees available"),
        ("delete", DELETE_STEPS, "DELETE sent", "client sees 404"),
    ] {
        let mut names = vec![format!("{sent} -> {}", steps[0])];
        names.extend(steps.windows(2).map(|w| format!("{} -> {}", w[0], w[1])));
        names.push(format!("{} -> {seen}", steps[steps.len() - 1]));
        let mut gaps: Vec<Vec<Duration>> = vec![Vec::new(); names.len()];
        for c in cycles {
            let (request, start, end) = if what == "create" {
                (&c.create_request, c.posted, c.available_seen)
            } else {
                (&c.delete_request, c.delete_sent, c.gone_seen)
            };
            let holder = format!("volume:{}", c.id);
            let found: Option<Vec<DateTime<Utc>>> = steps
                .iter()
                .map(|s| {
                    [request.as_str(), c.id.as_str(), holder.as_str()]
                        .iter()
                        .find_map(|corr| at.get(&(*corr, *s)).copied())
                })
                .collect();
            let Some(found) = found else {
                continue;
            };
            let points: Vec<DateTime<Utc>> = std::iter::once(start)
                .chain(found)
                .chain(std::iter::once(end))
                .collect();
            for (i, pair) in points.windows(2).enumerate() {
                gaps[i].push(since(pair[0], pair[1]));
            }
        }
        println!(
            "  a {what}, step by step ({} of {} traced in the log):",
            gaps[0].len(),
            cycles.len()
        );
        for (name, mut g) in names.iter().zip(gaps) {
            g.sort();
            println!(
                "    {name:<48} p50 {:>9}  p95 {:>9}  p99 {:>9}",
                ms(percentile(&g, 0.5)),
                ms(percentile(&g, 0.95)),
                ms(percentile(&g, 0.99)),
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// The drivers alone

/// Create + delete pairs on one driver for `run_for`, from `concurrency` tasks; returns the sorted create
/// and delete latencies and the wall time.
async fn driver_cycles(
    driver: Arc<dyn VolumeDriver>,
    size_gb: u64,
    concurrency: usize,
    run_for: Duration,
) -> anyhow::Result<(Vec<Duration>, Vec<Duration>, Duration)> {
    use tracing::instrument::WithSubscriber;

    let start = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|w| {
            let driver = driver.clone();
            tokio::spawn(
                async move {
                    let (mut creates, mut deletes) = (Vec::new(), Vec::new());
                    let mut i = 0u64;
                    // At least one pair per task, however short the run.
                    while i == 0 || start.elapsed() < run_for {
                        let id = format!("bench-{w}-{i}");
                        let t = Instant::now();
                        driver.create_volume(&id, size_gb).await?;
                        creates.push(t.elapsed());
                        let t = Instant::now();
                        driver.delete_volume(&id).await?;
                        deletes.push(t.elapsed());
                        i += 1;
                    }
                    Ok::<_, anyhow::Error>((creates, deletes))
                }
                .with_current_subscriber(),
            )
        })
        .collect();
    let (mut creates, mut deletes) = (Vec::new(), Vec::new());
    for t in tasks {
        let (c, d) = t.await??;
        creates.extend(c);
        deletes.extend(d);
    }
    let wall = start.elapsed();
    creates.sort();
    deletes.sort();
    Ok((creates, deletes, wall))
}

fn bench_drivers(o: &Options, scratch: &Path) -> anyhow::Result<()> {
    use tracing::instrument::WithSubscriber;

    println!(
        "## drivers alone: create + delete of {} GB volumes in a loop, {:?} per row (no API, no log)",
        o.size_gb, o.driver_time
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    for &kind in &o.kinds {
        for concurrency in [1, o.concurrency] {
            let dir = scratch.join(format!("driver-{}-{concurrency}", kind.slug()));
            let driver: Arc<dyn VolumeDriver> = match kind {
                Kind::Fake => Arc::new(FakeDriver::new("bench", 100_000)),
                Kind::Raw | Kind::Qcow2 => Arc::new(FileDriver::new(
                    "bench",
                    &dir,
                    if kind == Kind::Raw {
                        VolumeFormat::Raw
                    } else {
                        VolumeFormat::Qcow2
                    },
                    100_000,
                    BTreeMap::new(),
                )?),
            };
            // The driver logs every volume at info; that is not what is measured here.
            let (creates, deletes, wall) = rt.block_on(
                driver_cycles(driver, o.size_gb, concurrency, o.driver_time)
                    .with_subscriber(tracing::subscriber::NoSubscriber::default()),
            )?;
            println!(
                "{:<10} concurrency {concurrency:>3}: {:>8.1} cycles/s  create p50 {}  p95 {}  p99 {};  delete p50 {}  p95 {}  p99 {}",
                kind.name(),
                creates.len() as f64 / wall.as_secs_f64(),
                ms(percentile(&creates, 0.5)),
                ms(percentile(&creates, 0.95)),
                ms(percentile(&creates, 0.99)),
                ms(percentile(&deletes, 0.5)),
                ms(percentile(&deletes, 0.95)),
                ms(percentile(&deletes, 0.99)),
            );
        }
    }
    Ok(())
}

/// The file system calls of one raw create (as `FileDriver` makes them: a new temp file, its length set,
/// the file synced, renamed into place, the directory synced) and the delete (unlink), timed one by one in
/// a single thread.
fn bench_raw_steps(size_gb: u64, run_for: Duration, scratch: &Path) -> anyhow::Result<()> {
    let dir = scratch.join("raw-steps");
    std::fs::create_dir_all(&dir)?;
    let names = [
        "open(O_CREAT|O_EXCL) + ftruncate",
        "fsync(file)",
        "rename",
        "fsync(directory)",
        "unlink",
    ];
    let mut steps: Vec<Vec<Duration>> = vec![Vec::new(); names.len()];
    let start = Instant::now();
    let mut i = 0u64;
    while i == 0 || start.elapsed() < run_for {
        let tmp = dir.join(format!(".tmp-volume-{i}"));
        let dst = dir.join(format!("volume-{i}"));
        let mut t = Instant::now();
        let mut lap = |k: usize, steps: &mut Vec<Vec<Duration>>| {
            steps[k].push(t.elapsed());
            t = Instant::now();
        };
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        file.set_len(size_gb << 30)?;
        lap(0, &mut steps);
        file.sync_all()?;
        drop(file);
        lap(1, &mut steps);
        std::fs::rename(&tmp, &dst)?;
        lap(2, &mut steps);
        std::fs::File::open(&dir)?.sync_all()?;
        lap(3, &mut steps);
        std::fs::remove_file(&dst)?;
        lap(4, &mut steps);
        i += 1;
    }
    let wall = start.elapsed();
    println!(
        "## a raw create's file system calls, one thread, {i} volumes ({:.1} create + delete/s)",
        i as f64 / wall.as_secs_f64()
    );
    for (name, mut s) in names.iter().zip(steps) {
        s.sort();
        let mean = s.iter().sum::<Duration>() / s.len().max(1) as u32;
        println!(
            "  {name:<34} p50 {:>9}  p95 {:>9}  p99 {:>9}  mean {:>9}",
            ms(percentile(&s, 0.5)),
            ms(percentile(&s, 0.95)),
            ms(percentile(&s, 0.99)),
            ms(mean),
        );
    }
    Ok(())
}
