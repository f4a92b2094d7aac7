//! Running instance-hours per project, from Strata's event stream: a small billing consumer.
//!
//! ```text
//! cargo run --example instance_hours -- --url http://127.0.0.1:8999 --token TOKEN [--state FILE] [--consumer NAME] [--once]
//! ```
//!
//! It creates (or reuses) the durable consumer `--consumer` (default `instance-hours`) with the filter
//! `category=compute`, follows `GET /events/v1/consumers/{name}/stream` as NDJSON, and keeps a tally:
//!
//! - A server runs while its last known power state is RUNNING (1). The events that set it are the ones
//!   that carry a power state (`ServerSpawned`, `ServerTaskFinished` — the end of stop, start, reboot,
//!   pause, suspend ... —, `ServerPowerSynced`), plus `ServerRebuilt` (running) and `ServerShelved` /
//!   `ServerDeleted` (not running). Anything else (resizes, renames, metadata, ...) leaves it as it was.
//! - Time is the events' recorded time, so a replay gives the same answer; a running server counts up to
//!   the time of the last event processed (the table's "as of").
//!
//! Restartable without double counting: the tally and the position of the last event it includes are
//! written together to the state file (`--state`, default `instance_hours.json`; temp file, fsync,
//! rename), and only then is that position acknowledged to the consumer. On restart the stream starts at
//! the acknowledged position, which is never after the state file's, and every event at or before the
//! state file's position is skipped. `--once` exits after two idle seconds (for scripts and tests).
//!
//! The test suite compiles this file into `tests/acceptance/audit_stream_http.rs` (`#[path]`) and drives [`run`]
//! against a real server; `--stop-after N` (exit after N new events, state saved but not acknowledged:
//! a crash between the two writes) exists for those tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Nova's RUNNING power state.
pub const RUNNING: i64 = 1;

#[derive(Debug, Clone)]
pub struct Options {
    /// The audit listener (`http://127.0.0.1:8999`, with or without `/audit/v1`).
    pub url: String,
    pub token: String,
    pub state: PathBuf,
    pub consumer: String,
    pub once: bool,
    /// With `once`: how long the stream may stay silent before the run ends.
    pub idle: Duration,
    /// Exit after this many new events, state saved but not acknowledged (a simulated crash).
    pub stop_after: Option<u64>,
}

impl Options {
    pub fn new(url: &str, token: &str, state: &Path) -> Options {
        Options {
            url: url.to_string(),
            token: token.to_string(),
            state: state.to_path_buf(),
            consumer: "instance-hours".into(),
            once: false,
            idle: Duration::from_secs(2),
            stop_after: None,
        }
    }

    fn events_url(&self) -> String {
        let base = self.url.trim_end_matches('/');
        let base = base.strip_suffix("/audit/v1").unwrap_or(base);
        format!("{base}/events/v1")
    }
}

/// One server's run state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerRun {
    pub project: String,
    /// Since when it runs (µs since the epoch), None when it does not.
    pub running_since: Option<i64>,
}

/// What the state file holds: the tally and the last position it includes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    pub position: u64,
    /// The recorded time of the last event processed (µs).
    pub as_of: i64,
    /// Finished running time per project (µs).
    pub closed: BTreeMap<String, i64>,
    pub servers: BTreeMap<String, ServerRun>,
}

impl Tally {
    /// Fold one event (as the stream renders it). Returns false for events at or before `position`.
    pub fn apply(&mut self, e: &Value) -> bool {
        let Some(position) = e["position"].as_u64() else {
            return false;
        };
        if position <= self.position {
            return false;
        }
        self.position = position;
        let time = e["time"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.timestamp_micros())
            .unwrap_or(self.as_of)
            .max(self.as_of);
        self.as_of = time;
        if e["resource"]["type"] != "server" {
            return true;
        }
        let Some(id) = e["resource"]["id"].as_str() else {
            return true;
        };
        let name = e["type"].as_str().unwrap_or("");
        let name = name.split('.').nth(1).unwrap_or(name);
        let running = match name {
            "ServerSpawned" | "ServerTaskFinished" | "ServerPowerSynced" => {
                Some(e["payload"]["power_state"].as_i64().unwrap_or(0) == RUNNING)
            }
            "ServerRebuilt" => Some(true),
            "ServerShelved" | "ServerDeleted" => Some(false),
            _ => None,
        };
        let project = e["project"].as_str().unwrap_or("").to_string();
        let server = self.servers.entry(id.to_string()).or_default();
        if server.project.is_empty() {
            server.project = project;
        }
        match (running, server.running_since) {
            (Some(true), None) => server.running_since = Some(time),
            (Some(false), Some(since)) => {
                *self.closed.entry(server.project.clone()).or_default() += time - since;
                server.running_since = None;
            }
            _ => {}
        }
        if name == "ServerDeleted" {
            self.servers.remove(id);
        }
        true
    }

    /// Per project: (servers running now, instance-hours up to `as_of`).
    pub fn hours(&self) -> BTreeMap<String, (u64, f64)> {
        let mut micros: BTreeMap<String, (u64, i64)> = self
            .closed
            .iter()
            .map(|(p, us)| (p.clone(), (0, *us)))
            .collect();
        for s in self.servers.values() {
            if let Some(since) = s.running_since {
                let row = micros.entry(s.project.clone()).or_default();
                row.0 += 1;
                row.1 += self.as_of - since;
            }
        }
        micros
            .into_iter()
            .map(|(p, (n, us))| (p, (n, us as f64 / 3_600_000_000.0)))
            .collect()
    }

    pub fn table(&self) -> String {
        let as_of = chrono::DateTime::from_timestamp_micros(self.as_of)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default();
        let mut out = format!(
            "instance-hours as of {as_of} (position {})\n{:<34} {:>8} {:>16}\n",
            self.position, "PROJECT", "RUNNING", "INSTANCE-HOURS"
        );
        for (p, (n, h)) in self.hours() {
            let p = if p.is_empty() { "(none)" } else { p.as_str() };
            out.push_str(&format!("{p:<34} {n:>8} {h:>16.6}\n"));
        }
        out
    }

    pub fn load(path: &Path) -> Result<Tally, String> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| format!("{}: not a tally: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Tally::default()),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    /// Write the state file atomically: a temp file beside it, fsync, rename.
    pub fn save(&self, path: &Path) -> Result<(), String> {
        let tmp = path.with_extension("tmp");
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?)?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)
        };
        write().map_err(|e| format!("saving {}: {e}", path.display()))
    }
}

fn agent(read_timeout: Duration) -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(5))
        .timeout_read(read_timeout)
        .timeout_write(Duration::from_secs(10))
        .build()
}

fn http_error(what: &str, e: ureq::Error) -> String {
    match e {
        ureq::Error::Status(code, r) => {
            format!("{what}: {code} {}", r.into_string().unwrap_or_default())
        }
        ureq::Error::Transport(t) => format!("{what}: {t}"),
    }
}

/// Create the consumer (or find it with the same filter).
fn ensure_consumer(opts: &Options) -> Result<(), String> {
    let url = format!("{}/consumers/{}", opts.events_url(), opts.consumer);
    agent(Duration::from_secs(30))
        .put(&url)
        .set("X-Auth-Token", &opts.token)
        .send_json(json!({ "filter": { "category": ["compute"] }, "from": 0 }))
        .map(|_| ())
        .map_err(|e| http_error("creating the consumer", e))
}

/// Save the tally, then acknowledge its position (in that order: the state file is never behind the ack).
fn checkpoint(opts: &Options, tally: &Tally, acked: &mut u64) -> Result<(), String> {
    if tally.position <= *acked {
        return Ok(());
    }
    tally.save(&opts.state)?;
    let url = format!("{}/consumers/{}/ack", opts.events_url(), opts.consumer);
    agent(Duration::from_secs(30))
        .post(&url)
        .set("X-Auth-Token", &opts.token)
        .send_json(json!({ "position": tally.position }))
        .map_err(|e| http_error("acknowledging", e))?;
    *acked = tally.position;
    Ok(())
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
    )
}

/// Follow the consumer's stream; with `once`, return when it has been idle for `idle`.
pub fn run(opts: &Options) -> Result<Tally, String> {
    let mut tally = Tally::load(&opts.state)?;
    ensure_consumer(opts)?;
    let mut acked = 0u64;
    let mut processed = 0u64;
    let read_timeout = if opts.once {
        opts.idle
    } else {
        Duration::from_secs(60)
    };
    let url = format!("{}/consumers/{}/stream", opts.events_url(), opts.consumer);
    loop {
        let resp = agent(read_timeout)
            .get(&url)
            .set("X-Auth-Token", &opts.token)
            .set("Accept", "application/x-ndjson")
            .call();
        let resp = match resp {
            Ok(r) => r,
            Err(ureq::Error::Status(code, r)) => {
                return Err(format!(
                    "opening the stream: {code} {}",
                    r.into_string().unwrap_or_default()
                ))
            }
            Err(e) if !opts.once => {
                eprintln!("instance_hours: {}; retrying", http_error("stream", e));
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
            Err(e) => return Err(http_error("opening the stream", e)),
        };
        let mut reader = BufReader::new(resp.into_reader());
        let mut line = String::new();
        let mut pending = 0u32;
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if opts.once && is_timeout(&e) => {
                    checkpoint(opts, &tally, &mut acked)?;
                    return Ok(tally);
                }
                Err(e) => {
                    eprintln!("instance_hours: stream interrupted ({e}); resuming");
                    break;
                }
            }
            if line.trim().is_empty() {
                continue;
            }
            let v: Value = serde_json::from_str(&line)
                .map_err(|e| format!("the stream sent something that is not JSON: {e}"))?;
            if let Some(p) = v["heartbeat"]["position"].as_u64() {
                // Every event up to the heartbeat's position has been delivered (and folded).
                tally.position = tally.position.max(p);
                checkpoint(opts, &tally, &mut acked)?;
                if !opts.once {
                    print!("{}", tally.table());
                }
                continue;
            }
            if tally.apply(&v) {
                processed += 1;
                pending += 1;
                if opts.stop_after.is_some_and(|n| processed >= n) {
                    tally.save(&opts.state)?;
                    return Ok(tally);
                }
            }
            if reader.buffer().is_empty() || pending >= 1000 {
                checkpoint(opts, &tally, &mut acked)?;
                pending = 0;
            }
        }
        checkpoint(opts, &tally, &mut acked)?;
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn usage() -> ! {
    eprintln!(
        "usage: instance_hours --url http://127.0.0.1:8999 --token TOKEN [--state FILE] [--consumer NAME] [--once]"
    );
    std::process::exit(2)
}

fn main() {
    let mut url = None;
    let mut token = std::env::var("OS_TOKEN").ok();
    let mut opts = Options::new("", "", Path::new("instance_hours.json"));
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--url" => url = Some(value()),
            "--token" => token = Some(value()),
            "--state" => opts.state = PathBuf::from(value()),
            "--consumer" => opts.consumer = value(),
            "--once" => opts.once = true,
            "--stop-after" => opts.stop_after = Some(value().parse().unwrap_or_else(|_| usage())),
            "-h" | "--help" => usage(),
            _ => usage(),
        }
    }
    let (Some(url), Some(token)) = (url, token) else {
        usage()
    };
    opts.url = url;
    opts.token = token;
    match run(&opts) {
        Ok(tally) => print!("{}", tally.table()),
        Err(e) => {
            eprintln!("instance_hours: {e}");
            std::process::exit(1);
        }
    }
}
