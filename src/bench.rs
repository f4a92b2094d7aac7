//! `strata bench`: throughput and latency figures for docs/PERFORMANCE.md. Never part of the test suite.

mod compute;
mod network;
mod object;
mod soak;
mod stream;
mod volume;

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use strata_actors::identity::{Project, ProjectCommand};
use strata_actors::{Repository, Runtime, RuntimeConfig};
use strata_events::{EventLog, ExpectedVersion, Metadata, NewEvent, RocksLog, RocksOptions};
use strata_projections::identity::IdentityView;
use strata_proto::codec::DomainEvent;
use strata_proto::identity as pb;
use strata_proto::IdentityEvent;

#[derive(clap::Subcommand)]
pub enum BenchCommand {
    /// Durable append throughput (1, 16, 256 writers), replay throughput, cold actor activation.
    Log {
        /// Seconds per append measurement.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        /// Events written for the replay measurement.
        #[arg(long, default_value_t = 1_000_000)]
        replay_events: u64,
        /// Aggregates activated for the activation measurement.
        #[arg(long, default_value_t = 2_000)]
        actors: usize,
        /// Scratch directory (default: a temp dir); it should be on the disk the data dir will use.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Token issue rate through HTTP against a fresh `strata serve` (concurrency 1 and 16).
    Identity {
        #[arg(long, default_value_t = 5)]
        seconds: u64,
    },
    /// Image upload/download MB/s beside a plain file copy, and create + upload + delete cycles/s.
    Image {
        /// Size of the large image.
        #[arg(long, default_value_t = 1024)]
        size_mib: u64,
        #[arg(long, default_value_t = 5)]
        seconds: u64,
    },
    /// Boot and delete servers on fake hosts through Nova's HTTP API against a fresh `strata serve`
    /// (boots/s, time to ACTIVE, deletes/s, server RSS per server, events per boot from the log), then
    /// time the scheduler alone over many in-memory hosts.
    Compute {
        /// Servers to boot (and then delete); 0 runs only the scheduler measurement.
        #[arg(long, default_value_t = 1000)]
        servers: usize,
        /// Clients, each booting one server and waiting for ACTIVE before the next.
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        /// Fake compute hosts of the server under test.
        #[arg(long, default_value_t = 8)]
        fake_hosts: usize,
        /// Resources of each fake host (`strata serve --fake-host-spec`).
        #[arg(long, default_value = "vcpus=1024,ram_mb=4194304,disk_gb=100000")]
        fake_host_spec: String,
        /// Milliseconds between two polls of a server's status.
        #[arg(long, default_value_t = 5)]
        poll_ms: u64,
        /// Hosts in the in-memory scheduling benchmark.
        #[arg(long, default_value_t = 10_000)]
        sched_hosts: usize,
        /// Scheduling decisions timed.
        #[arg(long, default_value_t = 1_000)]
        sched_decisions: usize,
    },
    /// Create and delete volumes through Cinder's HTTP API against a fresh `strata serve` per backend kind
    /// (cycles/s, time to available, time to deleted, events per cycle from the log), then time the drivers
    /// alone and the file system calls of a raw create.
    Volume {
        /// Create/delete cycles per backend kind; 0 runs only the driver measurements.
        #[arg(long, default_value_t = 500)]
        volumes: usize,
        /// Clients, each creating a volume, waiting for `available`, deleting it and waiting until it is
        /// gone before the next.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// Backend kinds, comma-separated: `fake`, `raw` (file driver), `qcow2` (file driver).
        #[arg(long, value_delimiter = ',', default_value = "fake,raw,qcow2")]
        backends: Vec<String>,
        /// Size of every volume.
        #[arg(long, default_value_t = 1)]
        size_gb: u64,
        /// Milliseconds between two polls of a volume's status.
        #[arg(long, default_value_t = 5)]
        poll_ms: u64,
        /// Seconds of each driver-alone measurement (per kind and concurrency); 0 skips them.
        #[arg(long, default_value_t = 3.0)]
        driver_seconds: f64,
        /// Scratch directory (default: a temp dir); it should be on the disk the data dir will use.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Neutron through HTTP against a fresh `strata serve`: port create + delete cycles on one subnet, then
    /// ports created until `--ports` are present and lists of them timed.
    Network {
        /// Port create + delete cycles; 0 skips them.
        #[arg(long, default_value_t = 2_000)]
        cycles: usize,
        /// Clients, each creating (and deleting) one port at a time.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// Ports present for the list measurements; 0 skips them.
        #[arg(long, default_value_t = 10_000)]
        ports: usize,
        /// Times each list is requested.
        #[arg(long, default_value_t = 5)]
        lists: usize,
    },
    /// Nova under a mixed load against a fresh `strata serve` on fake hosts: clients booting and deleting
    /// servers while other clients list resources, all at one microversion. Reports every request, the
    /// slowest one and every request left unanswered; fails (exit 1) when a request went unanswered, an
    /// answer was a 5xx, or a server never finished its delete.
    Soak {
        /// Seconds of load.
        #[arg(long, default_value_t = 60.0)]
        seconds: f64,
        /// Clients, each booting a server, waiting for ACTIVE, deleting it and waiting until it is gone.
        #[arg(long, default_value_t = 32)]
        boot_clients: usize,
        /// Clients listing servers (detail and plain), hypervisors, services, flavors and limits in turn.
        #[arg(long, default_value_t = 8)]
        list_clients: usize,
        /// The compute microversion every request sends.
        #[arg(long, default_value = "2.79")]
        microversion: String,
        /// Fake compute hosts of the server under test.
        #[arg(long, default_value_t = 4)]
        fake_hosts: usize,
        /// Seconds after which a request counts as unanswered.
        #[arg(long, default_value_t = 60.0)]
        request_timeout: f64,
        /// Milliseconds between two polls of a server's status.
        #[arg(long, default_value_t = 20)]
        poll_ms: u64,
    },
    /// Event streams: catch-up and live delivery to 1 and many consumers, point-in-time state timings.
    Stream(StreamArgs),
    /// Swift through HTTP against a fresh `strata serve`: PUT and GET of 4 KiB and 4 MiB objects beside plain
    /// file writes (fsync + rename) and reads of the same bytes, then a container filled with `--objects`
    /// objects and its listing walked in pages, plus pages with prefix and delimiter.
    Object {
        /// Clients (and, for the plain files, threads).
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// Seconds of each PUT, GET, file write and file read row.
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        /// Operations per PUT, GET, file write and file read row instead of `--duration`; 0 skips those rows.
        #[arg(long)]
        count: Option<usize>,
        /// Objects in the listed container; 0 skips the listing measurements.
        #[arg(long, default_value_t = 100_000)]
        objects: usize,
        /// Entries per listing page (`limit`).
        #[arg(long, default_value_t = 1000)]
        page: usize,
        /// Scratch directory (default: a temp dir); it should be on the disk the data dir will use.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

/// Event streams over a prefilled log: catch-up and live delivery to 1 and many consumers (events/s,
/// lag p50/p99), and point-in-time state of a resource with many events, with and without snapshots.
#[derive(clap::Args)]
pub struct StreamArgs {
    /// Events written into the log before the server starts.
    #[arg(long, default_value_t = 1_000_000)]
    pub events: u64,
    /// Consumers of the many-consumer rows.
    #[arg(long, default_value_t = 100)]
    pub consumers: usize,
    /// Events each of the many consumers reads in the catch-up row.
    #[arg(long, default_value_t = 20_000)]
    pub tail: u64,
    /// Events appended through the API in each live row.
    #[arg(long, default_value_t = 2_000)]
    pub live_events: u64,
    /// Events of the resource whose point-in-time state is timed.
    #[arg(long, default_value_t = 10_000)]
    pub state_events: u64,
}

pub fn run(cmd: BenchCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        BenchCommand::Log {
            seconds,
            replay_events,
            actors,
            dir,
        } => {
            let tmp = tempfile::Builder::new()
                .prefix("strata-bench-")
                .tempdir_in(dir.unwrap_or_else(std::env::temp_dir))?;
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            rt.block_on(bench_log(
                tmp.path(),
                Duration::from_secs(seconds),
                replay_events,
                actors,
            ))?;
        }
        BenchCommand::Identity { seconds } => bench_identity(Duration::from_secs(seconds))?,
        BenchCommand::Image { size_mib, seconds } => {
            bench_image(size_mib, Duration::from_secs(seconds))?
        }
        BenchCommand::Compute {
            servers,
            concurrency,
            fake_hosts,
            fake_host_spec,
            poll_ms,
            sched_hosts,
            sched_decisions,
        } => {
            compute::run(compute::Options {
                servers,
                concurrency: concurrency.max(1),
                fake_hosts,
                fake_host_spec,
                poll: Duration::from_millis(poll_ms),
                sched_hosts,
                sched_decisions,
            })?;
        }
        BenchCommand::Volume {
            volumes,
            concurrency,
            backends,
            size_gb,
            poll_ms,
            driver_seconds,
            dir,
        } => {
            volume::run(volume::Options {
                volumes,
                concurrency: concurrency.max(1),
                kinds: backends
                    .iter()
                    .map(|b| volume::Kind::parse(b))
                    .collect::<anyhow::Result<_>>()?,
                size_gb: size_gb.max(1),
                poll: Duration::from_millis(poll_ms),
                driver_time: Duration::try_from_secs_f64(driver_seconds)
                    .context("--driver-seconds")?,
                dir,
            })?;
        }
        BenchCommand::Network {
            cycles,
            concurrency,
            ports,
            lists,
        } => network::run(network::Options {
            cycles,
            concurrency: concurrency.max(1),
            ports,
            lists,
        })?,
        BenchCommand::Soak {
            seconds,
            boot_clients,
            list_clients,
            microversion,
            fake_hosts,
            request_timeout,
            poll_ms,
        } => {
            let passed = soak::run(soak::Options {
                seconds,
                boot_clients,
                list_clients,
                microversion,
                fake_hosts: fake_hosts.max(1),
                request_timeout: Duration::try_from_secs_f64(request_timeout)
                    .context("--request-timeout")?,
                poll: Duration::from_millis(poll_ms),
            })?;
            if !passed {
                return Ok(ExitCode::FAILURE);
            }
        }
        BenchCommand::Stream(a) => stream::run(stream::Options {
            events: a.events,
            consumers: a.consumers.max(1),
            tail: a.tail,
            live_events: a.live_events,
            state_events: a.state_events,
        })?,
        BenchCommand::Object {
            concurrency,
            duration,
            count,
            objects,
            page,
            dir,
        } => object::run(object::Options {
            concurrency: concurrency.max(1),
            duration: Duration::try_from_secs_f64(duration).context("--duration")?,
            count,
            objects,
            page: page.max(1),
            dir,
        })?,
    }
    Ok(ExitCode::SUCCESS)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn project_event(i: u64) -> NewEvent {
    let e = IdentityEvent::ProjectCreated(pb::ProjectCreated {
        project_id: format!("{i:032x}"),
        domain_id: "default".into(),
        name: format!("project-{i}"),
        description: "benchmark".into(),
        enabled: true,
        ..Default::default()
    });
    NewEvent::new(e.event_type(), e.encode())
}

async fn append_throughput(
    dir: &Path,
    writers: usize,
    per_append: usize,
    run_for: Duration,
    sync: bool,
) -> anyhow::Result<f64> {
    let log: Arc<dyn EventLog> = Arc::new(RocksLog::open(dir, RocksOptions { sync })?);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            let stream = format!("bench-w{w}");
            let mut version = 0u64;
            let mut n = 0u64;
            while start.elapsed() < run_for {
                let events = (0..per_append)
                    .map(|i| project_event(n + i as u64))
                    .collect();
                let r = log
                    .append(
                        &stream,
                        ExpectedVersion::Exact(version),
                        events,
                        Metadata::system("bench"),
                    )
                    .await?;
                version = r.stream_version;
                n += per_append as u64;
            }
            Ok::<u64, anyhow::Error>(n)
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await??;
    }
    Ok(total as f64 / start.elapsed().as_secs_f64())
}

async fn bench_log(
    dir: &Path,
    run_for: Duration,
    replay_events: u64,
    actors: usize,
) -> anyhow::Result<()> {
    println!("## durable appends (WAL fsynced before each acknowledgement; one event per append unless noted)");
    for (i, (writers, per_append)) in [(1, 1), (16, 1), (256, 1), (256, 10)]
        .into_iter()
        .enumerate()
    {
        let rate = append_throughput(
            &dir.join(format!("append-{i}")),
            writers,
            per_append,
            run_for,
            true,
        )
        .await?;
        println!("writers {writers:>4}  events/append {per_append:>3}  {rate:>12.0} events/s");
    }
    // The same without fsync shows how much of the cost is the disk and how much is CPU.
    let rate = append_throughput(&dir.join("append-nosync"), 256, 1, run_for, false).await?;
    println!(
        "writers  256  events/append   1  {rate:>12.0} events/s  (no fsync, for comparison only)"
    );

    println!("## replay into the identity projection");
    let log_dir = dir.join("replay");
    {
        let log = RocksLog::open(&log_dir, RocksOptions { sync: false })?;
        let mut written = 0u64;
        while written < replay_events {
            let n = (replay_events - written).min(1000);
            let events = (0..n).map(|i| project_event(written + i)).collect();
            log.append(
                &format!("bench-{}", written / 100_000),
                ExpectedVersion::Any,
                events,
                Metadata::system("bench"),
            )
            .await?;
            written += n;
        }
    }
    let log: Arc<dyn EventLog> = Arc::new(RocksLog::open(&log_dir, RocksOptions::default())?);
    let head = log.head().await?.position;
    let t = Instant::now();
    let mut read = 0u64;
    let mut next = 1;
    while let Some(last) = log.read_all(next, 8192).await?.last().map(|e| e.position) {
        read += last + 1 - next;
        next = last + 1;
    }
    let read_rate = read as f64 / t.elapsed().as_secs_f64();
    println!("read + decode envelopes       {read:>10} events  {read_rate:>12.0} events/s");
    let t = Instant::now();
    let view: IdentityView = strata_projections::rebuild(&log, head).await?;
    let rate = head as f64 / t.elapsed().as_secs_f64();
    println!(
        "rebuild IdentityView          {head:>10} events  {rate:>12.0} events/s  ({} projects)",
        view.projects.len()
    );
    drop(view);

    println!("## cold actor activation (load snapshot + tail, answer one command)");
    let alog: Arc<dyn EventLog> =
        Arc::new(RocksLog::open(dir.join("actors"), RocksOptions::default())?);
    {
        let runtime = Runtime::start(
            alog.clone(),
            RuntimeConfig {
                snapshot_every: 10,
                ..Default::default()
            },
        );
        let repo: Repository<Project> = Repository::new(runtime.clone());
        for i in 0..actors {
            let id = format!("{i:032x}");
            let create = ProjectCommand::Create {
                project_id: id.clone(),
                domain_id: "default".into(),
                name: format!("p{i}"),
                description: String::new(),
                enabled: true,
                parent_id: String::new(),
                tags: vec![],
                extra_json: String::new(),
            };
            repo.execute(&id, create, Metadata::system("bench")).await?;
            for k in 0..14 {
                let upd = ProjectCommand::Update {
                    name: None,
                    description: Some(format!("d{k}")),
                    enabled: None,
                    tags: None,
                    extra_json: None,
                };
                repo.execute(&id, upd, Metadata::system("bench")).await?;
            }
        }
        runtime.shutdown();
    }
    let runtime = Runtime::start(alog.clone(), RuntimeConfig::default());
    let repo: Repository<Project> = Repository::new(runtime.clone());
    let mut lat = Vec::with_capacity(actors);
    for i in 0..actors {
        let id = format!("{i:032x}");
        let t = Instant::now();
        repo.load(&id).await.context("activating an actor")?;
        lat.push(t.elapsed());
    }
    lat.sort();
    println!(
        "{actors} aggregates of 15 events (snapshot at 10): p50 {:?}  p99 {:?}  max {:?}",
        percentile(&lat, 0.50),
        percentile(&lat, 0.99),
        lat.last().copied().unwrap_or_default()
    );
    runtime.shutdown();
    Ok(())
}

/// Start `strata serve` on a temp dir with free ports; returns the child and the identity URL.
fn spawn_server(dir: &Path) -> anyhow::Result<(std::process::Child, String)> {
    let (child, urls) = spawn_server_urls(dir)?;
    Ok((child, urls.0))
}

/// Start `strata serve` on a temp dir with free ports; returns the child and the (identity, image) URLs.
fn spawn_server_urls(dir: &Path) -> anyhow::Result<(std::process::Child, (String, String))> {
    let (child, urls) = spawn_server_with(dir, &[])?;
    Ok((child, (urls.identity, urls.image)))
}

/// The public URLs `strata serve` announced on its READY line.
struct Urls {
    identity: String,
    image: String,
    compute: String,
    volume: String,
    network: String,
    /// The Swift endpoint template (`.../v1/AUTH_%(project_id)s`).
    object: String,
    /// The audit API (`.../audit/v1`); event streams are beside it.
    audit: String,
}

/// Start `strata serve` on a temp dir with free ports and `extra` flags; returns the child and its URLs.
fn spawn_server_with(dir: &Path, extra: &[String]) -> anyhow::Result<(std::process::Child, Urls)> {
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .args([
            "serve",
            "--identity-port",
            "0",
            "--image-port",
            "0",
            "--compute-port",
            "0",
            "--volume-port",
            "0",
            "--network-port",
            "0",
            "--object-port",
            "0",
            "--audit-port",
            "0",
            "--admin-password",
            "bench-password",
            "--workers",
            "2",
        ])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--clouds-yaml")
        .arg(dir.join("clouds.yaml"))
        .args(extra)
        .env("STRATA_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().context("server stdout")?;
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line?;
        if let Some(rest) = line.strip_prefix("STRATA READY ") {
            let url = |key: &str| {
                rest.split_whitespace()
                    .find_map(|kv| kv.strip_prefix(key))
                    .map(str::to_string)
                    .unwrap_or_default()
            };
            let urls = Urls {
                identity: url("identity="),
                image: url("image="),
                compute: url("compute="),
                volume: url("volume="),
                network: url("network="),
                object: url("object="),
                audit: url("audit="),
            };
            return Ok((child, urls));
        }
    }
    let _ = child.kill();
    anyhow::bail!("server exited before it was ready")
}

#[derive(Clone, Copy)]
enum Case {
    Issue,
    WrongPassword,
    Validate,
}

fn bench_identity(run_for: Duration) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let (mut child, url) = spawn_server(tmp.path())?;
    let body = serde_json::json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "admin", "domain": {"name": "Default"}, "password": "bench-password"}}},
        "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}});
    let admin_token = ureq::post(&format!("{url}/auth/tokens"))
        .send_json(body.clone())?
        .header("X-Subject-Token")
        .context("no token")?
        .to_string();
    println!("## HTTP against {url}");
    for concurrency in [1usize, 16] {
        let cases = [
            ("POST /v3/auth/tokens (password, repeat login)", Case::Issue),
            (
                "POST /v3/auth/tokens (wrong password: argon2)",
                Case::WrongPassword,
            ),
            ("GET /v3/auth/tokens (validate)", Case::Validate),
        ];
        for (what, case) in cases {
            let start = Instant::now();
            let handles: Vec<_> = (0..concurrency)
                .map(|_| {
                    let (url, body, token) = (url.clone(), body.clone(), admin_token.clone());
                    let mut wrong = body.clone();
                    wrong["auth"]["identity"]["password"]["user"]["password"] =
                        serde_json::json!("not-the-password");
                    std::thread::spawn(move || -> anyhow::Result<Vec<Duration>> {
                        let agent = ureq::AgentBuilder::new().build();
                        let mut lat = Vec::new();
                        while start.elapsed() < run_for {
                            let t = Instant::now();
                            let auth_url = format!("{url}/auth/tokens");
                            match case {
                                Case::Issue => {
                                    agent.post(&auth_url).send_json(body.clone())?;
                                }
                                Case::WrongPassword => {
                                    match agent.post(&auth_url).send_json(wrong.clone()) {
                                        Err(ureq::Error::Status(401, _)) => {}
                                        other => anyhow::bail!(
                                            "a wrong password answered {other:?}, not 401"
                                        ),
                                    }
                                }
                                Case::Validate => {
                                    agent
                                        .get(&auth_url)
                                        .set("X-Auth-Token", &token)
                                        .set("X-Subject-Token", &token)
                                        .call()?;
                                }
                            }
                            lat.push(t.elapsed());
                        }
                        Ok(lat)
                    })
                })
                .collect();
            let mut lat = Vec::new();
            for h in handles {
                lat.extend(
                    h.join()
                        .map_err(|_| anyhow::anyhow!("bench thread panicked"))??,
                );
            }
            let secs = start.elapsed().as_secs_f64();
            lat.sort();
            println!(
                "{what:<44} concurrency {concurrency:>3}: {:>8.0} req/s  p50 {:?}  p99 {:?}",
                lat.len() as f64 / secs,
                percentile(&lat, 0.5),
                percentile(&lat, 0.99)
            );
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    Ok(())
}

fn admin_token(identity_url: &str) -> anyhow::Result<String> {
    Ok(admin_login(identity_url)?.0)
}

/// The admin's token scoped to the admin project, and that project's id.
fn admin_login(identity_url: &str) -> anyhow::Result<(String, String)> {
    let body = serde_json::json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "admin", "domain": {"name": "Default"}, "password": "bench-password"}}},
        "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}});
    let resp = ureq::post(&format!("{identity_url}/auth/tokens")).send_json(body)?;
    let token = resp
        .header("X-Subject-Token")
        .context("no token")?
        .to_string();
    let v: serde_json::Value = resp.into_json()?;
    let project = v["token"]["project"]["id"]
        .as_str()
        .context("token without a project")?
        .to_string();
    Ok((token, project))
}

fn create_image(
    agent: &ureq::Agent,
    image_url: &str,
    token: &str,
    name: &str,
) -> anyhow::Result<String> {
    let created: serde_json::Value = agent
        .post(&format!("{image_url}/v2/images"))
        .set("X-Auth-Token", token)
        .send_json(
            serde_json::json!({"name": name, "disk_format": "raw", "container_format": "bare"}),
        )?
        .into_json()?;
    created["id"]
        .as_str()
        .map(str::to_string)
        .context("image id")
}

fn mb_per_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / d.as_secs_f64()
}

fn bench_image(size_mib: u64, run_for: Duration) -> anyhow::Result<()> {
    use std::io::{Read, Write};
    let tmp = tempfile::tempdir()?;
    let (mut child, (identity_url, image_url)) = spawn_server_urls(tmp.path())?;
    let token = admin_token(&identity_url)?;
    let agent = ureq::AgentBuilder::new().build();
    let size = size_mib << 20;

    // The source file, and a plain copy of it on the same disk (with fsync) as the yardstick.
    let src = tmp.path().join("source.img");
    {
        let mut f = std::fs::File::create(&src)?;
        let mut block = vec![0u8; 1 << 20];
        for i in 0..size_mib {
            block[..8].copy_from_slice(&i.to_le_bytes());
            f.write_all(&block)?;
        }
        f.sync_all()?;
    }
    let t = Instant::now();
    {
        let mut from = std::fs::File::open(&src)?;
        let mut to = std::fs::File::create(tmp.path().join("copy.img"))?;
        std::io::copy(&mut from, &mut to)?;
        to.sync_all()?;
    }
    let copy = t.elapsed();
    std::fs::remove_file(tmp.path().join("copy.img"))?;

    let id = create_image(&agent, &image_url, &token, "big")?;
    let t = Instant::now();
    agent
        .put(&format!("{image_url}/v2/images/{id}/file"))
        .set("X-Auth-Token", &token)
        .set("Content-Type", "application/octet-stream")
        .set("Content-Length", &size.to_string())
        .send(std::fs::File::open(&src)?)?;
    let upload = t.elapsed();
    let t = Instant::now();
    let mut reader = agent
        .get(&format!("{image_url}/v2/images/{id}/file"))
        .set("X-Auth-Token", &token)
        .call()?
        .into_reader();
    let mut buf = vec![0u8; 1 << 20];
    let mut got = 0u64;
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        got += n as u64;
    }
    let download = t.elapsed();
    anyhow::ensure!(got == size, "downloaded {got} bytes of {size}");
    println!("## image data ({size_mib} MiB) against {image_url}");
    println!(
        "plain file copy + fsync   {:>8.1} MB/s",
        mb_per_s(size, copy)
    );
    println!(
        "upload  PUT  /file        {:>8.1} MB/s  ({:.2}x the copy)",
        mb_per_s(size, upload),
        copy.as_secs_f64() / upload.as_secs_f64()
    );
    println!(
        "download GET /file        {:>8.1} MB/s",
        mb_per_s(size, download)
    );

    let small = vec![7u8; 1 << 20];
    let start = Instant::now();
    let handles: Vec<_> = (0..8)
        .map(|w| {
            let (image_url, token, small) = (image_url.clone(), token.clone(), small.clone());
            std::thread::spawn(move || -> anyhow::Result<u64> {
                let agent = ureq::AgentBuilder::new().build();
                let mut n = 0u64;
                while start.elapsed() < run_for {
                    let id = create_image(&agent, &image_url, &token, &format!("cycle-{w}-{n}"))?;
                    agent
                        .put(&format!("{image_url}/v2/images/{id}/file"))
                        .set("X-Auth-Token", &token)
                        .set("Content-Type", "application/octet-stream")
                        .send_bytes(&small)?;
                    agent
                        .delete(&format!("{image_url}/v2/images/{id}"))
                        .set("X-Auth-Token", &token)
                        .call()?;
                    n += 1;
                }
                Ok(n)
            })
        })
        .collect();
    let mut cycles = 0;
    for h in handles {
        cycles += h
            .join()
            .map_err(|_| anyhow::anyhow!("bench thread panicked"))??;
    }
    println!(
        "create + 1 MiB upload + delete, concurrency 8: {:.1} cycles/s",
        cycles as f64 / start.elapsed().as_secs_f64()
    );
    let _ = child.kill();
    let _ = child.wait();
    Ok(())
}
