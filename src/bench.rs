//! `strata bench`: throughput and latency figures for docs/PERFORMANCE.md. Never part of the test suite.

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
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .args([
            "serve",
            "--identity-port",
            "0",
            "--image-port",
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
        .env("STRATA_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().context("server stdout")?;
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line?;
        if let Some(url) = line.strip_prefix("STRATA READY identity=") {
            return Ok((child, url.to_string()));
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
