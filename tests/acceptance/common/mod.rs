//! Shared helpers for the black-box acceptance tests: run the real `strata` binary, talk to it over HTTP
//! (ureq) and through the real `openstack` CLI, and read its log with `strata log ...`.
//!
//! Everything here is bounded in time: every child process and every HTTP request has a timeout.
//!
//! Environment knobs:
//! - `STRATA_VENV`: the Python venv holding `openstack` (default `<repo>/.venv`, made by `scripts/test.sh`).
//! - `STRATA_SKIP_CLI=1`: let the CLI acceptance tests pass without running when the venv is missing.
//! - `STRATA_KEEP_TEST_DIRS=1`: keep each test's temporary directory (data dir, clouds.yaml, server logs).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

pub mod neutron;
pub mod nova;
pub mod swift;

/// How long `strata serve` may take to print its READY line.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one `openstack` CLI call may take (the first one compiles Python bytecode).
pub const CLI_TIMEOUT: Duration = Duration::from_secs(180);
/// How long one `strata log|replay ...` tool run may take.
pub const TOOL_TIMEOUT: Duration = Duration::from_secs(120);
/// Per-request HTTP timeout.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

pub const STRATA_BIN: &str = env!("CARGO_BIN_EXE_strata");

/// The id of the default domain, as Keystone names it.
pub const DEFAULT_DOMAIN_NAME: &str = "Default";

// ---------------------------------------------------------------------------------------------------------
// Small utilities
// ---------------------------------------------------------------------------------------------------------

static UNIQUE: AtomicU64 = AtomicU64::new(0);

/// A short string that is unique within this process and very likely across processes.
pub fn unique_suffix() -> String {
    let n = UNIQUE.fetch_add(1, Ordering::Relaxed);
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format!(
        "{:x}{:x}{:x}",
        std::process::id(),
        t.subsec_nanos() & 0xfffff,
        n
    )
}

/// A tiny deterministic-per-seed PRNG (xorshift64*), so tests need no extra crates.
pub struct Rng(u64);

impl Rng {
    pub fn from_time() -> Rng {
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Rng((t.as_nanos() as u64) ^ 0x9e37_79b9_7f4a_7c15 ^ u64::from(std::process::id()))
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0.max(1);
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform-ish in `lo..=hi` milliseconds.
    pub fn millis_between(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.next_u64() % (hi - lo + 1))
    }
}

fn keep_dirs() -> bool {
    std::env::var("STRATA_KEEP_TEST_DIRS")
        .map(|v| v == "1")
        .unwrap_or(false)
}

fn tail_of_file(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    let from = all.len().saturating_sub(lines);
    all[from..].join("\n")
}

/// Output of a child process run to completion (or killed at its timeout).
#[derive(Debug, Clone)]
pub struct CmdOutput {
    pub command: String,
    /// None when killed at the timeout or by a signal.
    pub code: Option<i32>,
    pub success: bool,
    pub timed_out: bool,
    pub stdout: String,
    pub stderr: String,
}

impl CmdOutput {
    /// Everything the process said, for error messages.
    pub fn describe(&self) -> String {
        format!(
            "command: {}\nexit code: {:?}{}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.command,
            self.code,
            if self.timed_out {
                " (killed at timeout)"
            } else {
                ""
            },
            truncate(&self.stdout, 6000),
            truncate(&self.stderr, 6000)
        )
    }
    /// stdout and stderr together, for "does the message mention ..." checks.
    pub fn all_text(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut cut = s.len() - max;
    while !s.is_char_boundary(cut) {
        cut += 1;
    }
    format!("...[{} bytes cut]...{}", cut, &s[cut..])
}

fn describe_command(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Run `cmd` to completion with a hard timeout; stdout and stderr are captured, stdin is closed.
pub fn run_with_timeout(mut cmd: Command, timeout: Duration) -> CmdOutput {
    let command = describe_command(&cmd);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return CmdOutput {
                command,
                code: None,
                success: false,
                timed_out: false,
                stdout: String::new(),
                stderr: format!("failed to spawn: {e}"),
            }
        }
    };
    let out_rx = drain(child.stdout.take());
    let err_rx = drain(child.stderr.take());
    let deadline = Instant::now() + timeout;
    let mut timed_out = false;
    let status: Option<ExitStatus> = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) => {}
            Err(_) => break None,
        }
        if Instant::now() >= deadline {
            timed_out = true;
            let _ = child.kill();
            break child.wait().ok();
        }
        thread::sleep(Duration::from_millis(20));
    };
    // The pipes close when the process exits (unless it left children holding them): bounded wait.
    let stdout = out_rx
        .recv_timeout(Duration::from_secs(10))
        .unwrap_or_default();
    let stderr = err_rx
        .recv_timeout(Duration::from_secs(10))
        .unwrap_or_default();
    let code = if timed_out {
        None
    } else {
        status.and_then(|s| s.code())
    };
    CmdOutput {
        command,
        code,
        success: !timed_out && status.map(|s| s.success()).unwrap_or(false),
        timed_out,
        stdout,
        stderr,
    }
}

fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut buf);
        }
        let _ = tx.send(String::from_utf8_lossy(&buf).into_owned());
    });
    rx
}

/// Run the `strata` binary with `args` (bounded by [`TOOL_TIMEOUT`]).
pub fn strata(args: &[&str]) -> CmdOutput {
    let mut cmd = Command::new(STRATA_BIN);
    cmd.args(args).env("RUST_BACKTRACE", "1");
    run_with_timeout(cmd, TOOL_TIMEOUT)
}

// ---------------------------------------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------------------------------------

/// A new temporary directory `strata-test-*`, removed on drop.
pub fn scratch_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("strata-test-")
        .tempdir()
        .expect("create temp dir")
}

/// A running (or killed) `strata serve` on a private temporary data dir. Killed on drop.
pub struct Server {
    tmp: Option<tempfile::TempDir>,
    root: PathBuf,
    data_dir: PathBuf,
    clouds_yaml: PathBuf,
    admin_password: String,
    extra_args: Vec<String>,
    child: Option<Child>,
    /// `key=value` pairs of the last READY line, e.g. `identity` -> `http://127.0.0.1:PORT/v3`.
    endpoints: BTreeMap<String, String>,
    /// How many times the server was started (1 after `start`).
    starts: u32,
}

impl Server {
    /// Start a server on a new temporary data dir; panics (with the server's log) if it is not ready in 60 s.
    pub fn start() -> Server {
        Server::start_with_args(&[])
    }

    /// Like [`Server::start`], with extra arguments appended to `strata serve ...`.
    pub fn start_with_args(extra: &[&str]) -> Server {
        let tmp = scratch_dir();
        let root = tmp.path().to_path_buf();
        let data_dir = root.join("data");
        let clouds_yaml = root.join("clouds.yaml");
        let mut server = Server {
            tmp: Some(tmp),
            root,
            data_dir,
            clouds_yaml,
            admin_password: format!("adm-{}", unique_suffix()),
            extra_args: extra.iter().map(|s| s.to_string()).collect(),
            child: None,
            endpoints: BTreeMap::new(),
            starts: 0,
        };
        if let Err(e) = server.spawn() {
            panic!("strata serve did not start: {e}");
        }
        server
    }

    fn stderr_log(&self) -> PathBuf {
        self.root.join(format!("server-{}.stderr.log", self.starts))
    }

    fn stdout_log(&self) -> PathBuf {
        self.root.join(format!("server-{}.stdout.log", self.starts))
    }

    fn spawn(&mut self) -> Result<(), String> {
        assert!(self.child.is_none(), "spawn() with a child still attached");
        self.starts += 1;
        let stderr =
            File::create(self.stderr_log()).map_err(|e| format!("create stderr log: {e}"))?;
        let mut cmd = Command::new(STRATA_BIN);
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--admin-password")
            .arg(&self.admin_password)
            .arg("--clouds-yaml")
            .arg(&self.clouds_yaml)
            .args([
                "--bind",
                "127.0.0.1",
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
            ])
            .args(&self.extra_args)
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr));
        let command = describe_command(&cmd);
        let mut child = cmd.spawn().map_err(|e| format!("spawn {command}: {e}"))?;
        let stdout = child.stdout.take().expect("piped stdout");

        // The reader thread keeps draining stdout after READY (so the server never blocks on a full pipe)
        // and copies every line into a log file.
        let (tx, rx) = mpsc::channel::<String>();
        let copy_path = self.stdout_log();
        thread::spawn(move || {
            let mut copy = OpenOptions::new()
                .create(true)
                .append(true)
                .open(copy_path)
                .ok();
            let mut sent = false;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(f) = copy.as_mut() {
                    let _ = writeln!(f, "{line}");
                }
                if !sent && line.trim_start().starts_with("STRATA READY") {
                    sent = true;
                    let _ = tx.send(line.trim().to_string());
                }
            }
        });
        self.child = Some(child);

        let ready = match rx.recv_timeout(READY_TIMEOUT) {
            Ok(line) => line,
            Err(e) => {
                let status = self
                    .child
                    .as_mut()
                    .and_then(|c| c.try_wait().ok().flatten());
                self.kill();
                let why = match e {
                    mpsc::RecvTimeoutError::Timeout => {
                        format!("no READY line within {READY_TIMEOUT:?}")
                    }
                    mpsc::RecvTimeoutError::Disconnected => {
                        format!("stdout closed before READY (exit: {status:?})")
                    }
                };
                return Err(format!(
                    "{why}\ncommand: {command}\n--- stdout ---\n{}\n--- stderr (tail) ---\n{}",
                    self.stdout_tail(40),
                    self.log_tail(60)
                ));
            }
        };
        let mut endpoints = BTreeMap::new();
        for word in ready.split_whitespace().skip(2) {
            if let Some((k, v)) = word.split_once('=') {
                endpoints.insert(k.to_string(), v.trim_end_matches('/').to_string());
            }
        }
        let identity = endpoints.get("identity").cloned().unwrap_or_default();
        if !identity.starts_with("http://127.0.0.1:") || !identity.ends_with("/v3") {
            self.kill();
            return Err(format!(
                "READY line {ready:?} must be exactly `STRATA READY identity=http://127.0.0.1:PORT/v3`"
            ));
        }
        if !self.clouds_yaml.exists() {
            self.kill();
            return Err(format!(
                "the server printed READY but did not write {}",
                self.clouds_yaml.display()
            ));
        }
        self.endpoints = endpoints;
        Ok(())
    }

    /// The Keystone v3 URL from the READY line, `http://127.0.0.1:PORT/v3` (no trailing slash).
    pub fn identity_url(&self) -> &str {
        self.endpoints
            .get("identity")
            .map(String::as_str)
            .expect("server has no identity endpoint")
    }

    /// `http://127.0.0.1:PORT` of the identity API (for version discovery at `/`).
    pub fn identity_root(&self) -> &str {
        self.identity_url().trim_end_matches("/v3")
    }

    /// Any endpoint named on the READY line.
    pub fn endpoint(&self, name: &str) -> Option<&str> {
        self.endpoints.get(name).map(String::as_str)
    }

    /// The Swift account URL of a project (`http://127.0.0.1:PORT/v1/AUTH_<project>`).
    pub fn swift_account_url(&self, project_id: &str) -> String {
        self.endpoint("object")
            .expect("server has no object endpoint")
            .replace("%(project_id)s", project_id)
    }

    pub fn clouds_yaml(&self) -> &Path {
        &self.clouds_yaml
    }

    pub fn admin_password(&self) -> &str {
        &self.admin_password
    }

    /// The admin password the next (re)start passes with `--admin-password`.
    pub fn set_admin_password(&mut self, password: &str) {
        self.admin_password = password.to_string();
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The test's own temporary directory (holds the data dir, clouds.yaml, logs); put extra files here.
    pub fn dir(&self) -> &Path {
        &self.root
    }

    pub fn starts(&self) -> u32 {
        self.starts
    }

    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// SIGKILL the server (no graceful shutdown) and reap it. No-op when not running.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kill (if running) and start again on the same data dir; waits for READY again (new port).
    pub fn try_restart(&mut self) -> Result<(), String> {
        self.kill();
        self.spawn()
    }

    /// Like [`Server::try_restart`], panicking with the server's log on failure.
    pub fn restart(&mut self) {
        if let Err(e) = self.try_restart() {
            panic!("strata serve did not restart: {e}");
        }
    }

    /// The last `lines` lines the current (or last) server process wrote to stderr.
    pub fn log_tail(&self, lines: usize) -> String {
        tail_of_file(&self.stderr_log(), lines)
    }

    pub fn stdout_tail(&self, lines: usize) -> String {
        tail_of_file(&self.stdout_log(), lines)
    }

    /// A token for `admin` scoped to project `admin` (panics on failure).
    pub fn admin_token(&self) -> String {
        get_token(
            self.identity_url(),
            "admin",
            &self.admin_password,
            Some("admin"),
        )
        .unwrap_or_else(|e| {
            panic!(
                "admin token: {e}\n--- server stderr ---\n{}",
                self.log_tail(40)
            )
        })
    }

    /// `strata log verify --data-dir DIR`. Best called after [`Server::kill`].
    pub fn log_verify(&self) -> Result<LogHead, String> {
        let out = strata(&["log", "verify", "--data-dir", path_str(&self.data_dir)]);
        if !out.success {
            return Err(out.describe());
        }
        let line = out
            .stdout
            .lines()
            .rev()
            .find(|l| l.trim_start().starts_with('{'))
            .ok_or_else(|| format!("no JSON line in the output\n{}", out.describe()))?;
        let v: Value = serde_json::from_str(line.trim())
            .map_err(|e| format!("bad JSON {line:?}: {e}\n{}", out.describe()))?;
        let head = LogHead {
            head_position: v["head_position"]
                .as_u64()
                .ok_or_else(|| format!("no head_position in {v}"))?,
            head_hash: v["head_hash"]
                .as_str()
                .ok_or_else(|| format!("no head_hash in {v}"))?
                .to_string(),
            events: v["events"]
                .as_u64()
                .ok_or_else(|| format!("no events in {v}"))?,
        };
        Ok(head)
    }

    /// `strata log dump --data-dir DIR --json`: every event, in log order. Best called after [`Server::kill`].
    pub fn log_dump(&self) -> Result<Vec<Value>, String> {
        let out = strata(&[
            "log",
            "dump",
            "--data-dir",
            path_str(&self.data_dir),
            "--json",
        ]);
        if !out.success {
            return Err(out.describe());
        }
        let mut events = Vec::new();
        for (i, line) in out.stdout.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let v: Value = serde_json::from_str(line).map_err(|e| {
                format!(
                    "log dump line {} is not JSON ({e}): {}",
                    i + 1,
                    truncate(line, 500)
                )
            })?;
            events.push(v);
        }
        Ok(events)
    }

    /// `strata replay --verify --data-dir DIR`.
    pub fn replay_verify(&self) -> CmdOutput {
        strata(&["replay", "--verify", "--data-dir", path_str(&self.data_dir)])
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        if thread::panicking() {
            eprintln!(
                "--- strata serve stderr (tail, start #{}) in {} ---\n{}",
                self.starts,
                self.root.display(),
                self.log_tail(60)
            );
        }
        if keep_dirs() {
            if let Some(tmp) = self.tmp.take() {
                let kept = tmp.keep();
                eprintln!("kept test dir {}", kept.display());
            }
        }
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

/// What `strata log verify` prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogHead {
    pub head_position: u64,
    pub head_hash: String,
    pub events: u64,
}

// ---------------------------------------------------------------------------------------------------------
// Events from `log dump`
// ---------------------------------------------------------------------------------------------------------

pub fn ev_position(ev: &Value) -> u64 {
    ev["position"]
        .as_u64()
        .unwrap_or_else(|| panic!("event without numeric position: {ev}"))
}

pub fn ev_type(ev: &Value) -> &str {
    ev["event_type"].as_str().unwrap_or("")
}

pub fn ev_correlation(ev: &Value) -> &str {
    ev["correlation_id"].as_str().unwrap_or("")
}

/// A string field of the decoded payload, by its proto name (`project_id`) or its JSON camelCase
/// (`projectId`), whichever the dump uses.
pub fn payload_str<'a>(ev: &'a Value, field: &str) -> Option<&'a str> {
    let p = &ev["payload"];
    if let Some(s) = p.get(field).and_then(Value::as_str) {
        return Some(s);
    }
    let mut camel = String::new();
    let mut up = false;
    for c in field.chars() {
        if c == '_' {
            up = true;
        } else if up {
            camel.extend(c.to_uppercase());
            up = false;
        } else {
            camel.push(c);
        }
    }
    p.get(&camel).and_then(Value::as_str)
}

/// Checks every log-wide invariant of a dump: positions dense 1..N in order, each stream's versions dense
/// 1..n in log order, required fields present. Returns a description of the first violation.
pub fn check_dump_invariants(events: &[Value]) -> Result<(), String> {
    let mut stream_versions: BTreeMap<String, u64> = BTreeMap::new();
    for (i, ev) in events.iter().enumerate() {
        let want = i as u64 + 1;
        let pos = ev["position"]
            .as_u64()
            .ok_or_else(|| format!("event #{want} has no numeric position: {ev}"))?;
        if pos != want {
            return Err(format!(
                "positions are not dense 1..N in order: event #{want} has position {pos}"
            ));
        }
        let stream = ev["stream_id"].as_str().filter(|s| !s.is_empty());
        let stream = stream.ok_or_else(|| format!("event at {pos} has no stream_id: {ev}"))?;
        let version = ev["stream_version"]
            .as_u64()
            .ok_or_else(|| format!("event at {pos} has no stream_version: {ev}"))?;
        let expected = stream_versions.get(stream).copied().unwrap_or(0) + 1;
        if version != expected {
            return Err(format!(
                "stream {stream}: event at position {pos} has stream_version {version}, expected {expected}"
            ));
        }
        stream_versions.insert(stream.to_string(), version);
        let ty = ev_type(ev);
        let parts: Vec<&str> = ty.split('.').collect();
        if parts.len() != 3 || !parts[2].starts_with('v') {
            return Err(format!(
                "event at {pos} has event_type {ty:?}, expected <service>.<Name>.v<N>"
            ));
        }
        let at = ev["recorded_at"].as_str().unwrap_or("");
        if at.len() < 20 || !at.contains('T') {
            return Err(format!(
                "event at {pos} has recorded_at {at:?}, expected RFC 3339"
            ));
        }
        if !ev["payload"].is_object() {
            return Err(format!(
                "event at {pos} has no decoded payload object: {ev}"
            ));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------
// HTTP (ureq)
// ---------------------------------------------------------------------------------------------------------

/// A response of any status (ureq's 4xx/5xx errors are turned into plain responses).
#[derive(Debug, Clone)]
pub struct Resp {
    pub method: String,
    pub url: String,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        header_in(&self.headers, name)
    }

    /// The `X-OpenStack-Request-Id` header.
    pub fn request_id(&self) -> Option<&str> {
        self.header("x-openstack-request-id")
    }

    /// The `X-Subject-Token` header (token issue).
    pub fn subject_token(&self) -> Option<&str> {
        self.header("x-subject-token")
    }

    /// The body as JSON; panics with the raw body when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| {
            panic!(
                "{} {} -> {}: body is not JSON ({e}): {}",
                self.method,
                self.url,
                self.status,
                truncate(&self.body, 2000)
            )
        })
    }

    pub fn describe(&self) -> String {
        format!(
            "{} {} -> {} (request id {:?}): {}",
            self.method,
            self.url,
            self.status,
            self.request_id(),
            truncate(&self.body, 2000)
        )
    }

    /// Panics unless the status is `status`; returns self for chaining.
    pub fn expect(self, status: u16) -> Resp {
        assert_eq!(
            self.status,
            status,
            "unexpected status: {}",
            self.describe()
        );
        self
    }
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(5))
        .timeout(HTTP_TIMEOUT)
        .redirects(0)
        .build()
}

/// A response's status, its headers, and the response to read the body from.
type Answer = (u16, Vec<(String, String)>, ureq::Response);

/// A ureq outcome as an [`Answer`]: a 4xx/5xx status is an answer like any other; `Err` only for transport
/// failures.
fn answer(
    method: &str,
    url: &str,
    result: Result<ureq::Response, ureq::Error>,
) -> Result<Answer, String> {
    let resp = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(ureq::Error::Transport(t)) => return Err(format!("{method} {url}: {t}")),
    };
    let headers = resp
        .headers_names()
        .into_iter()
        .filter_map(|n| resp.header(&n).map(|v| (n.clone(), v.to_string())))
        .collect();
    Ok((resp.status(), headers, resp))
}

/// The value of header `name` (case-insensitive) in a response's headers.
pub fn header_in<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// One HTTP request; `Err` only for transport failures (refused, reset, timeout).
pub fn request_raw(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Result<Resp, String> {
    let mut req = agent()
        .request(method, url)
        .set("Accept", "application/json");
    for (k, v) in headers {
        req = req.set(k, v);
    }
    let result = match body {
        Some(b) => {
            if !headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            {
                req = req.set("Content-Type", "application/json");
            }
            req.send_string(b)
        }
        None => req.call(),
    };
    let (status, headers, resp) = answer(method, url, result)?;
    let body = resp
        .into_string()
        .map_err(|e| format!("{method} {url}: reading body: {e}"))?;
    Ok(Resp {
        method: method.to_string(),
        url: url.to_string(),
        status,
        headers,
        body,
    })
}

/// A JSON request with an optional `X-Auth-Token`; `Err` only for transport failures.
pub fn try_request(
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Result<Resp, String> {
    let body = body.map(|b| b.to_string());
    let mut headers = Vec::new();
    if let Some(t) = token {
        headers.push(("X-Auth-Token", t));
    }
    request_raw(method, url, &headers, body.as_deref())
}

/// Like [`try_request`], panicking on transport failures.
pub fn request(method: &str, url: &str, token: Option<&str>, body: Option<&Value>) -> Resp {
    try_request(method, url, token, body).unwrap_or_else(|e| panic!("HTTP transport error: {e}"))
}

pub fn get(url: &str, token: Option<&str>) -> Resp {
    request("GET", url, token, None)
}

pub fn post(url: &str, token: Option<&str>, body: &Value) -> Resp {
    request("POST", url, token, Some(body))
}

pub fn patch(url: &str, token: Option<&str>, body: &Value) -> Resp {
    request("PATCH", url, token, Some(body))
}

pub fn put(url: &str, token: Option<&str>) -> Resp {
    request("PUT", url, token, None)
}

pub fn delete(url: &str, token: Option<&str>) -> Resp {
    request("DELETE", url, token, None)
}

/// The body of `POST /v3/auth/tokens` for the password method; users and projects in domain `Default`.
pub fn password_auth_body(user: &str, password: &str, project: Option<&str>) -> Value {
    let mut auth = json!({
        "identity": {
            "methods": ["password"],
            "password": {"user": {"name": user, "domain": {"name": DEFAULT_DOMAIN_NAME}, "password": password}}
        }
    });
    if let Some(p) = project {
        auth["scope"] = json!({"project": {"name": p, "domain": {"name": DEFAULT_DOMAIN_NAME}}});
    }
    json!({ "auth": auth })
}

/// Issue a token over HTTP (password method); returns the response (whatever its status).
pub fn try_issue_token(
    identity_url: &str,
    user: &str,
    password: &str,
    project: Option<&str>,
) -> Result<Resp, String> {
    try_request(
        "POST",
        &format!("{identity_url}/auth/tokens"),
        None,
        Some(&password_auth_body(user, password, project)),
    )
}

/// Issue a token over HTTP (password method) and return its id (the `X-Subject-Token` header).
pub fn get_token(
    identity_url: &str,
    user: &str,
    password: &str,
    project: Option<&str>,
) -> Result<String, String> {
    let resp = try_issue_token(identity_url, user, password, project)?;
    if resp.status != 201 {
        return Err(format!(
            "token issue for {user} failed: {}",
            resp.describe()
        ));
    }
    resp.subject_token().map(str::to_string).ok_or_else(|| {
        format!(
            "token issue for {user} returned no X-Subject-Token: {}",
            resp.describe()
        )
    })
}

/// Checks Keystone's error format: `{"error": {"code": N, "message": "...", "title": "..."}}`.
pub fn assert_keystone_error(resp: &Resp, status: u16, title: &str) {
    assert_eq!(
        resp.status,
        status,
        "unexpected status: {}",
        resp.describe()
    );
    let v: Value = serde_json::from_str(&resp.body)
        .unwrap_or_else(|e| panic!("error body is not JSON ({e}): {}", resp.describe()));
    let err = &v["error"];
    assert_eq!(
        err["code"].as_u64(),
        Some(u64::from(status)),
        "error.code: {}",
        resp.describe()
    );
    assert_eq!(
        err["title"].as_str(),
        Some(title),
        "error.title: {}",
        resp.describe()
    );
    assert!(
        err["message"]
            .as_str()
            .map(|m| !m.is_empty())
            .unwrap_or(false),
        "error.message must be a non-empty string: {}",
        resp.describe()
    );
}

/// Find one entity by name in a Keystone list (`GET /v3/<kind>?name=...`), returning its JSON.
pub fn find_by_name(identity_url: &str, token: &str, kind: &str, name: &str) -> Option<Value> {
    let r = get(&format!("{identity_url}/{kind}?name={name}"), Some(token)).expect(200);
    let list = r.json()[kind].as_array().cloned().unwrap_or_default();
    list.into_iter().find(|e| e["name"].as_str() == Some(name))
}

// ---------------------------------------------------------------------------------------------------------
// The `openstack` CLI
// ---------------------------------------------------------------------------------------------------------

/// The venv holding the pinned `openstack` CLI: `$STRATA_VENV`, else `<repo>/.venv`.
pub fn venv_dir() -> PathBuf {
    match std::env::var_os("STRATA_VENV") {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv"),
    }
}

pub fn openstack_bin() -> PathBuf {
    venv_dir().join("bin").join("openstack")
}

/// Call first in every CLI test. `Some(path)` when the CLI is installed; `None` (the test should return)
/// only when `STRATA_SKIP_CLI=1`; otherwise panics: a missing CLI must fail CI, not silently skip.
pub fn require_cli() -> Option<PathBuf> {
    let bin = openstack_bin();
    if bin.is_file() {
        return Some(bin);
    }
    if std::env::var("STRATA_SKIP_CLI")
        .map(|v| v == "1")
        .unwrap_or(false)
    {
        eprintln!(
            "SKIPPED: {} is missing and STRATA_SKIP_CLI=1",
            bin.display()
        );
        return None;
    }
    panic!(
        "the openstack CLI is missing at {}.\nCreate the venv with `scripts/test.sh` (or point STRATA_VENV at a venv \
         with python-openstackclient==10.5.0 openstacksdk==4.22.0), or set STRATA_SKIP_CLI=1 to skip the CLI tests.",
        bin.display()
    );
}

/// A failed CLI call.
#[derive(Debug, Clone)]
pub struct CliError {
    pub output: CmdOutput,
    /// Set when the call succeeded but its output was not the JSON asked for.
    pub parse_error: Option<String>,
}

impl CliError {
    /// stdout and stderr together, lower-cased, for "does the message mention ..." checks.
    pub fn text_lower(&self) -> String {
        self.output.all_text().to_lowercase()
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(p) = &self.parse_error {
            writeln!(f, "output is not valid JSON: {p}")?;
        }
        write!(f, "{}", self.output.describe())
    }
}

/// Who the CLI logs in as: a clouds.yaml file and a cloud name in it (OS_CLIENT_CONFIG_FILE, OS_CLOUD).
#[derive(Debug, Clone)]
pub struct Cli {
    pub config_file: PathBuf,
    pub cloud: String,
    pub timeout: Duration,
}

impl Cli {
    /// The server's own clouds.yaml, cloud `strata` (admin).
    pub fn admin(server: &Server) -> Cli {
        Cli {
            config_file: server.clouds_yaml().to_path_buf(),
            cloud: "strata".into(),
            timeout: CLI_TIMEOUT,
        }
    }

    /// Write a clouds.yaml for `user`/`password` scoped to `project` (all in domain Default) next to the
    /// server's data and return a CLI logging in with it.
    pub fn for_user(server: &Server, user: &str, password: &str, project: &str) -> Cli {
        let cloud = format!("strata-{user}");
        let file = server.dir().join(format!("clouds-{user}.yaml"));
        let yaml = format!(
            "clouds:\n  {cloud}:\n    auth:\n      auth_url: {url}\n      username: {user:?}\n      password: {password:?}\n      \
             project_name: {project:?}\n      user_domain_name: Default\n      project_domain_name: Default\n    \
             region_name: RegionOne\n    interface: public\n    identity_api_version: 3\n",
            url = server.identity_url(),
        );
        fs::write(&file, yaml).expect("write clouds yaml");
        Cli {
            config_file: file,
            cloud,
            timeout: CLI_TIMEOUT,
        }
    }

    fn command(&self, args: &[&str], json: bool) -> Command {
        let mut cmd = Command::new(openstack_bin());
        // A clean OS_* environment: only our clouds.yaml decides who we are.
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy().into_owned();
            if k.starts_with("OS_")
                || k.eq_ignore_ascii_case("http_proxy")
                || k.eq_ignore_ascii_case("https_proxy")
            {
                cmd.env_remove(&k);
            }
        }
        cmd.env("OS_CLIENT_CONFIG_FILE", &self.config_file)
            .env("OS_CLOUD", &self.cloud)
            .env("NO_PROXY", "127.0.0.1,localhost")
            .env("no_proxy", "127.0.0.1,localhost")
            .env("PYTHONWARNINGS", "ignore");
        cmd.args(args);
        if json {
            cmd.args(["-f", "json"]);
        }
        cmd
    }

    /// Run `openstack ARGS`; Ok(stdout) on exit 0.
    pub fn run(&self, args: &[&str]) -> Result<String, CliError> {
        let out = run_with_timeout(self.command(args, false), self.timeout);
        if out.success {
            Ok(out.stdout)
        } else {
            Err(CliError {
                output: out,
                parse_error: None,
            })
        }
    }

    /// Run `openstack ARGS -f json`; Ok(parsed stdout) on exit 0 with JSON output.
    pub fn json(&self, args: &[&str]) -> Result<Value, CliError> {
        let out = run_with_timeout(self.command(args, true), self.timeout);
        if !out.success {
            return Err(CliError {
                output: out,
                parse_error: None,
            });
        }
        match serde_json::from_str(out.stdout.trim()) {
            Ok(v) => Ok(v),
            Err(e) => Err(CliError {
                output: out,
                parse_error: Some(e.to_string()),
            }),
        }
    }
}

/// `openstack ARGS` as the server's admin (cloud `strata` of its clouds.yaml); Ok(stdout) on success.
pub fn openstack(server: &Server, args: &[&str]) -> Result<String, CliError> {
    Cli::admin(server).run(args)
}

/// `openstack ARGS -f json` as the server's admin; Ok(parsed JSON) on success.
pub fn openstack_json(server: &Server, args: &[&str]) -> Result<Value, CliError> {
    Cli::admin(server).json(args)
}

/// Unwrap a CLI result, panicking with the whole CLI output (and the server's log tail) on failure.
pub fn ok<T>(server: &Server, what: &str, r: Result<T, CliError>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!(
            "`openstack {what}` failed:\n{e}\n--- server stderr (tail) ---\n{}",
            server.log_tail(30)
        ),
    }
}

/// In a CLI list (`-f json`), the row whose `column` equals `value`.
pub fn row_with<'a>(list: &'a Value, column: &str, value: &str) -> Option<&'a Value> {
    list.as_array()?
        .iter()
        .find(|r| r[column].as_str() == Some(value))
}

/// In a CLI list (`-f json`), the string values of `key`, row by row.
pub fn column<'a>(list: &'a Value, key: &str) -> Vec<&'a str> {
    list.as_array()
        .map(|a| a.iter().filter_map(|r| r[key].as_str()).collect())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------------------
// Binary HTTP bodies and MD5 (image data)
// ---------------------------------------------------------------------------------------------------------

/// A response whose body is kept as raw bytes (image downloads).
#[derive(Debug, Clone)]
pub struct RawResp {
    pub method: String,
    pub url: String,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResp {
    pub fn header(&self, name: &str) -> Option<&str> {
        header_in(&self.headers, name)
    }

    pub fn request_id(&self) -> Option<&str> {
        self.header("x-openstack-request-id")
    }

    /// The body as text (lossy), e.g. for error bodies.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics with the body when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{} {} -> {}: not JSON ({e}): {}",
                self.method,
                self.url,
                self.status,
                self.text()
            )
        })
    }

    pub fn describe(&self) -> String {
        format!(
            "{} {} -> {} (request id {:?}, {} body bytes): {}",
            self.method,
            self.url,
            self.status,
            self.request_id(),
            self.body.len(),
            truncate(&self.text(), 1000)
        )
    }

    /// The same response with a text body (for the JSON/error helpers that take a [`Resp`]).
    pub fn to_resp(&self) -> Resp {
        Resp {
            method: self.method.clone(),
            url: self.url.clone(),
            status: self.status,
            headers: self.headers.clone(),
            body: self.text(),
        }
    }

    /// Panics unless the status is `status`; returns self for chaining.
    pub fn expect(self, status: u16) -> RawResp {
        assert_eq!(
            self.status,
            status,
            "unexpected status: {}",
            self.describe()
        );
        self
    }
}

/// One HTTP request with a raw-bytes body (none when `body` is None) whose response body is read as bytes;
/// `Err` only for transport failures. No `Accept` or `Content-Type` is added: pass them in `headers`.
pub fn request_bytes(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Result<RawResp, String> {
    let mut req = agent().request(method, url);
    for (k, v) in headers {
        req = req.set(k, v);
    }
    let result = match body {
        Some(b) => req.send_bytes(b),
        None => req.call(),
    };
    let (status, headers, resp) = answer(method, url, result)?;
    let mut body = Vec::new();
    resp.into_reader()
        .take(1 << 30)
        .read_to_end(&mut body)
        .map_err(|e| format!("{method} {url}: reading body: {e}"))?;
    Ok(RawResp {
        method: method.to_string(),
        url: url.to_string(),
        status,
        headers,
        body,
    })
}

/// MD5 of `data` as lower-case hex (Glance's `checksum`).
pub fn md5_hex(data: &[u8]) -> String {
    use md5::Digest;
    hex::encode(md5::Md5::digest(data))
}

/// `n` pseudo-random bytes (not cryptographic).
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut rng = Rng::from_time();
    (0..n).map(|_| (rng.next_u64() >> 24) as u8).collect()
}

/// Copy a directory tree (a data dir, say) file by file.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}
