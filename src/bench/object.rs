//! `strata bench object`: Swift through its HTTP API against a fresh `strata serve`.
//!
//! 1. PUT and GET of 4 KiB and 4 MiB objects from `--concurrency` clients, each row for `--duration` seconds
//!    or `--count` operations; beside each, the same bytes written to plain files by as many threads with the
//!    blob store's durability (temp file, write, fsync, rename into one of 256 directories, fsync of that
//!    directory) and read back, so the figures show what the API adds.
//! 2. A container filled with `--objects` zero-byte objects (the fill rate is reported), then its whole
//!    listing walked in pages of `--page` (`format=json`, `marker`), and a few pages with `prefix`,
//!    `delimiter` and `reverse`.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::Value;

use super::{admin_login, percentile, spawn_server_with};

pub struct Options {
    pub concurrency: usize,
    /// Length of each data row (unless `count` is given).
    pub duration: Duration,
    /// Operations per data row; `Some(0)` skips the data rows.
    pub count: Option<usize>,
    /// Objects in the listed container; 0 skips the listing measurements.
    pub objects: usize,
    /// Entries per listing page.
    pub page: usize,
    pub dir: Option<PathBuf>,
}

/// The object sizes of the data rows.
const SIZES: &[(&str, usize)] = &[("4 KiB", 4 << 10), ("4 MiB", 4 << 20)];
/// Pseudo-folders the listed container's names are spread over (`dNNN/...`).
const FOLDERS: usize = 100;
/// Times each prefix/delimiter page is requested.
const QUERY_REPEATS: usize = 10;
/// Per-request timeout: a hung server fails the bench instead of stalling it.
const HTTP_TIMEOUT: Duration = Duration::from_secs(120);

/// When a row stops.
#[derive(Clone, Copy)]
enum Budget {
    Time(Duration),
    Count(usize),
}

impl Budget {
    fn describe(self) -> String {
        match self {
            Budget::Time(d) => format!("{:.0} s per row", d.as_secs_f64()),
            Budget::Count(n) => format!("{n} operations per row"),
        }
    }
}

/// One row's operations: sorted latencies, wall time.
struct Run {
    lat: Vec<Duration>,
    wall: Duration,
}

impl Run {
    fn ops(&self) -> usize {
        self.lat.len()
    }

    fn rate(&self) -> f64 {
        self.ops() as f64 / self.wall.as_secs_f64().max(1e-9)
    }
}

/// Run `op(state, i)` for i = 0, 1, ... on `concurrency` threads until the budget is spent; each thread's
/// state comes from `init` before the clock starts.
fn run_workers<S, I, F>(concurrency: usize, budget: Budget, init: I, op: F) -> anyhow::Result<Run>
where
    I: Fn(usize) -> anyhow::Result<S> + Sync,
    F: Fn(&mut S, usize) -> anyhow::Result<()> + Sync,
{
    let next = AtomicUsize::new(0);
    let threads = match budget {
        Budget::Count(n) => concurrency.min(n.max(1)),
        Budget::Time(_) => concurrency,
    };
    // Everyone (the threads and this one) meets here once the states are ready; a thread whose init failed
    // still waits, so nobody is left behind.
    let ready = Barrier::new(threads + 1);
    let (lat, wall) = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|w| {
                let (next, ready, init, op) = (&next, &ready, &init, &op);
                scope.spawn(
                    move || -> anyhow::Result<(Vec<Duration>, Instant, Instant)> {
                        let state = init(w);
                        ready.wait();
                        let mut state = state?;
                        let start = Instant::now();
                        let mut lat = Vec::new();
                        loop {
                            // The clock is read before an index is taken, so every index taken is done: the
                            // objects of a row are exactly 0..ops.
                            if let Budget::Time(d) = budget {
                                if start.elapsed() >= d {
                                    return Ok((lat, start, Instant::now()));
                                }
                            }
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            if let Budget::Count(n) = budget {
                                if i >= n {
                                    return Ok((lat, start, Instant::now()));
                                }
                            }
                            let t = Instant::now();
                            op(&mut state, i)?;
                            lat.push(t.elapsed());
                        }
                    },
                )
            })
            .collect();
        ready.wait();
        // The wall time runs from the first thread's start to the last one's end (this thread may be
        // scheduled after the workers have finished).
        let (mut first, mut last): (Option<Instant>, Option<Instant>) = (None, None);
        let mut lat = Vec::new();
        let mut first_error = None;
        for h in handles {
            match h.join() {
                Ok(Ok((l, start, end))) => {
                    lat.extend(l);
                    first = Some(first.map_or(start, |f| f.min(start)));
                    last = Some(last.map_or(end, |e| e.max(end)));
                }
                Ok(Err(e)) => {
                    first_error.get_or_insert(e);
                }
                Err(_) => {
                    first_error.get_or_insert(anyhow::anyhow!("bench thread panicked"));
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok((
                lat,
                match (first, last) {
                    (Some(f), Some(l)) => l - f,
                    _ => Duration::ZERO,
                },
            )),
        }
    })?;
    let mut lat = lat;
    lat.sort();
    Ok(Run { lat, wall })
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(10))
        .timeout_read(HTTP_TIMEOUT)
        .timeout_write(HTTP_TIMEOUT)
        .build()
}

/// A non-2xx answer as an error that shows the request, the status and the body (Swift's message).
fn answered(what: &str, r: Result<ureq::Response, ureq::Error>) -> anyhow::Result<ureq::Response> {
    match r {
        Ok(resp) => Ok(resp),
        Err(ureq::Error::Status(code, resp)) => {
            let body = resp.into_string().unwrap_or_default();
            anyhow::bail!("{what} answered {code}: {body}")
        }
        Err(e) => Err(anyhow::Error::new(e).context(what.to_string())),
    }
}

/// Read a response body to its end into `buf` (reused: cleared, capacity kept); returns its length.
fn read_body(resp: ureq::Response, buf: &mut Vec<u8>) -> anyhow::Result<usize> {
    buf.clear();
    resp.into_reader().read_to_end(buf)?;
    Ok(buf.len())
}

/// Percent-encode a query value (names here are ASCII, but a marker may hold anything).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Milliseconds with two decimals below 10 ms, one above.
fn ms(d: Duration) -> String {
    let v = d.as_secs_f64() * 1e3;
    if v < 10.0 {
        format!("{v:.2} ms")
    } else {
        format!("{v:.1} ms")
    }
}

/// A ratio with two significant digits even when it is small (`0.0024x`).
fn ratio(r: f64) -> String {
    let decimals = if r >= 0.1 || r <= 0.0 {
        2
    } else {
        (1.0 - r.log10().floor()) as usize
    };
    format!("{r:.decimals$}x")
}

fn mib_per_s(bytes: f64, wall: Duration) -> f64 {
    bytes / (1024.0 * 1024.0) / wall.as_secs_f64().max(1e-9)
}

/// CPU time (user + system) of process `pid` ("self" for this one).
fn cpu_time(pid: &str) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised command name: utime and stime are the 14th and 15th.
    let rest = stat.rsplit_once(')').context("odd /proc/<pid>/stat")?.1;
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    anyhow::ensure!(f.len() == 2, "no utime/stime in /proc/<pid>/stat");
    // USER_HZ is 100 on Linux for every architecture this runs on.
    Ok(Duration::from_millis((f[0] + f[1]) * 10))
}

/// Resident memory of process `pid`, in MiB.
fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

/// Server and client CPU used while `f` ran.
fn with_cpu<T>(
    server_pid: &str,
    f: impl FnOnce() -> anyhow::Result<T>,
) -> anyhow::Result<(T, Duration, Duration)> {
    let (s0, c0) = (cpu_time(server_pid)?, cpu_time("self")?);
    let out = f()?;
    let (s1, c1) = (cpu_time(server_pid)?, cpu_time("self")?);
    Ok((out, s1.saturating_sub(s0), c1.saturating_sub(c0)))
}

pub fn run(o: Options) -> anyhow::Result<()> {
    let scratch = tempfile::Builder::new()
        .prefix("strata-bench-object-")
        .tempdir_in(o.dir.clone().unwrap_or_else(std::env::temp_dir))?;
    let serve_dir = scratch.path().join("serve");
    std::fs::create_dir_all(&serve_dir)?;
    let (mut child, urls) = spawn_server_with(&serve_dir, &[])?;
    let result = bench(&o, child.id(), &urls.identity, &urls.object, scratch.path());
    let _ = child.kill();
    let _ = child.wait();
    result
}

fn bench(
    o: &Options,
    pid: u32,
    identity: &str,
    object_template: &str,
    scratch: &Path,
) -> anyhow::Result<()> {
    let (token, project) = admin_login(identity)?;
    anyhow::ensure!(
        object_template.contains("%(project_id)s"),
        "the server announced no object storage URL template (object={object_template:?})"
    );
    let base = object_template.replace("%(project_id)s", &project);
    let budget = match o.count {
        Some(n) => Budget::Count(n),
        None => Budget::Time(o.duration),
    };
    if !matches!(budget, Budget::Count(0)) {
        data_rows(o, budget, pid, &base, &token, scratch)?;
    }
    if o.objects > 0 {
        listing(o, pid, &base, &token)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------
// Object data: the API beside plain files

/// One client of the data rows: a connection and a body buffer of the object size.
struct Client {
    agent: ureq::Agent,
    buf: Vec<u8>,
}

fn print_row(what: &str, size_label: &str, size: usize, run: &Run, server_cpu: Option<Duration>) {
    let cpu = server_cpu
        .map(|c| ms(c / run.ops().max(1) as u32))
        .unwrap_or_else(|| "-".into());
    println!(
        "{what:<26} {size_label:>6} {:>9} {:>10.1} {:>9.1} {:>10} {:>10} {:>10} {cpu:>13}",
        run.ops(),
        run.rate(),
        mib_per_s((run.ops() * size) as f64, run.wall),
        ms(percentile(&run.lat, 0.5)),
        ms(percentile(&run.lat, 0.99)),
        ms(run.lat.last().copied().unwrap_or_default()),
    );
}

fn data_rows(
    o: &Options,
    budget: Budget,
    pid: u32,
    base: &str,
    token: &str,
    scratch: &Path,
) -> anyhow::Result<()> {
    let container = format!("{base}/bench-data");
    answered(
        "PUT bench-data",
        agent().put(&container).set("X-Auth-Token", token).call(),
    )?;
    // The plain files: `.tmp-<n>` at the root renamed into one of 256 directories, like the blob store.
    let files = scratch.join("files");
    std::fs::create_dir_all(&files)?;
    for d in 0..256 {
        std::fs::create_dir_all(files.join(format!("{d:02x}")))?;
    }
    File::open(&files)?.sync_all()?;
    let pid_s = pid.to_string();
    println!(
        "## object data through Swift's API at {base} beside plain files in {} (concurrency {}, {})",
        files.display(),
        o.concurrency,
        budget.describe()
    );
    println!(
        "{:<26} {:>6} {:>9} {:>10} {:>9} {:>10} {:>10} {:>10} {:>13}",
        "row", "size", "ops", "ops/s", "MiB/s", "p50", "p99", "max", "server CPU/op"
    );
    for &(label, size) in SIZES {
        let tag = label.replace(' ', "").to_lowercase();
        let object_url = |i: usize| format!("{container}/{tag}/{i:08}");
        let new_client = |w: usize| -> anyhow::Result<Client> {
            let mut buf = vec![0u8; size];
            for (k, b) in buf.iter_mut().enumerate() {
                *b = (k.wrapping_mul(31).wrapping_add(w)) as u8;
            }
            Ok(Client {
                agent: agent(),
                buf,
            })
        };

        // API PUT.
        let (put, server, _) = with_cpu(&pid_s, || {
            run_workers(o.concurrency, budget, new_client, |c, i| {
                c.buf[..8].copy_from_slice(&(i as u64).to_le_bytes());
                let url = object_url(i);
                let resp = answered(
                    &format!("PUT {url}"),
                    c.agent
                        .put(&url)
                        .set("X-Auth-Token", token)
                        .set("Content-Type", "application/octet-stream")
                        .send_bytes(&c.buf),
                )?;
                std::io::copy(&mut resp.into_reader(), &mut std::io::sink())?;
                Ok(())
            })
        })?;
        print_row("API PUT", label, size, &put, Some(server));
        let stored = put.ops();
        anyhow::ensure!(stored > 0, "no {label} object was stored");

        // Plain file write with the blob store's durability.
        let write = run_workers(o.concurrency, budget, new_client, |c, i| {
            c.buf[..8].copy_from_slice(&(i as u64).to_le_bytes());
            let tmp = files.join(format!(".tmp-{tag}-{i}"));
            let dir = files.join(format!("{:02x}", i % 256));
            let mut f = File::create(&tmp)?;
            f.write_all(&c.buf)?;
            f.sync_all()?;
            drop(f);
            std::fs::rename(&tmp, dir.join(format!("{tag}-{i:08}")))?;
            File::open(&dir)?.sync_all()?;
            Ok(())
        })?;
        print_row("file write+fsync+rename", label, size, &write, None);
        let written = write.ops();

        // API GET of the objects just stored, round robin.
        let (get, server, _) = with_cpu(&pid_s, || {
            run_workers(o.concurrency, budget, new_client, |c, i| {
                let url = object_url(i % stored);
                let resp = answered(
                    &format!("GET {url}"),
                    c.agent.get(&url).set("X-Auth-Token", token).call(),
                )?;
                let n = read_body(resp, &mut c.buf)?;
                anyhow::ensure!(n == size, "GET {url} returned {n} bytes, not {size}");
                Ok(())
            })
        })?;
        print_row("API GET", label, size, &get, Some(server));

        // Plain file read of the files just written, round robin.
        let read = run_workers(o.concurrency, budget, new_client, |c, i| {
            let k = i % written;
            let path = files
                .join(format!("{:02x}", k % 256))
                .join(format!("{tag}-{k:08}"));
            c.buf.clear();
            File::open(&path)?.read_to_end(&mut c.buf)?;
            anyhow::ensure!(c.buf.len() == size, "{} is short", path.display());
            Ok(())
        })?;
        print_row("file read", label, size, &read, None);
        println!(
            "  {label}: API PUT at {} the file write's rate, API GET at {} the file read's",
            ratio(put.rate() / write.rate()),
            ratio(get.rate() / read.rate())
        );
    }
    // The data rows' files are not needed any more; the listing rows should not pay for them in the cache.
    std::fs::remove_dir_all(&files)?;
    println!("  server RSS after the data rows: {:.0} MiB", rss_mib(pid));
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------
// Listings

fn list_name(i: usize) -> String {
    format!("d{:03}/o{i:08}", i % FOLDERS)
}

/// GET one listing page into `body`; returns the time and the parsed entries.
fn get_page(
    agent: &ureq::Agent,
    url: &str,
    token: &str,
    body: &mut Vec<u8>,
) -> anyhow::Result<(Duration, Vec<Value>)> {
    let t = Instant::now();
    let resp = answered(
        &format!("GET {url}"),
        agent.get(url).set("X-Auth-Token", token).call(),
    )?;
    let status = resp.status();
    read_body(resp, body)?;
    let took = t.elapsed();
    if status == 204 || body.is_empty() {
        return Ok((took, Vec::new()));
    }
    let entries: Vec<Value> = serde_json::from_slice(body)
        .with_context(|| format!("GET {url}: not a JSON list ({} bytes)", body.len()))?;
    Ok((took, entries))
}

fn listing(o: &Options, pid: u32, base: &str, token: &str) -> anyhow::Result<()> {
    let container = format!("{base}/bench-list");
    answered(
        "PUT bench-list",
        agent().put(&container).set("X-Auth-Token", token).call(),
    )?;
    let n = o.objects;
    let page = o.page.max(1);
    let pid_s = pid.to_string();
    println!(
        "## a container of {n} objects (zero bytes, names d000/o00000000 .. spread over {FOLDERS} pseudo-folders) at {container}"
    );

    // The fill: zero-byte PUTs, in ten slices one after the other so the cost can be followed as the
    // container grows.
    let slices = n.min(10);
    let rss0 = rss_mib(pid);
    let mut all = Vec::with_capacity(n);
    let (mut wall, mut server_all, mut client_all) =
        (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let mut by_slice = Vec::new();
    for k in 0..slices {
        let (from, to) = (n * k / slices, n * (k + 1) / slices);
        let (run, server, client) = with_cpu(&pid_s, || {
            run_workers(
                o.concurrency,
                Budget::Count(to - from),
                |_| Ok(agent()),
                |agent, i| {
                    let url = format!("{container}/{}", list_name(from + i));
                    let resp = answered(
                        &format!("PUT {url}"),
                        agent
                            .put(&url)
                            .set("X-Auth-Token", token)
                            .set("Content-Type", "application/octet-stream")
                            .send_bytes(&[]),
                    )?;
                    std::io::copy(&mut resp.into_reader(), &mut std::io::sink())?;
                    Ok(())
                },
            )
        })?;
        wall += run.wall;
        server_all += server;
        client_all += client;
        by_slice.push(format!(
            "  objects {:>7} .. {:>7}: {:>7.0} objects/s  p50 {:>9}  p99 {:>9}  server CPU/PUT {:>8}  server RSS {:>5.0} MiB",
            from,
            to,
            run.rate(),
            ms(percentile(&run.lat, 0.5)),
            ms(percentile(&run.lat, 0.99)),
            ms(server / run.ops().max(1) as u32),
            rss_mib(pid),
        ));
        all.extend(run.lat);
    }
    all.sort();
    let rss1 = rss_mib(pid);
    println!(
        "fill: {n} PUTs of 0 bytes at concurrency {}: {:.0} objects/s in {:.1} s; p50 {}  p99 {}  max {}",
        o.concurrency,
        n as f64 / wall.as_secs_f64().max(1e-9),
        wall.as_secs_f64(),
        ms(percentile(&all, 0.5)),
        ms(percentile(&all, 0.99)),
        ms(all.last().copied().unwrap_or_default()),
    );
    println!(
        "  CPU per PUT: server {}, bench clients {}; server RSS {rss0:.0} -> {rss1:.0} MiB ({:.2} KiB per object)",
        ms(server_all / n as u32),
        ms(client_all / n as u32),
        (rss1 - rss0) * 1024.0 / n as f64,
    );
    for line in by_slice {
        println!("{line}");
    }
    drop(all);

    // The walk: every page in name order, each page's marker the last name of the one before.
    let agent = agent();
    let mut body = Vec::new();
    let mut times = Vec::new();
    let mut bytes = 0usize;
    let mut seen = 0usize;
    let mut marker = String::new();
    let walk_start = Instant::now();
    loop {
        let url = format!(
            "{container}?format=json&limit={page}&marker={}",
            encode(&marker)
        );
        let (took, entries) = get_page(&agent, &url, token, &mut body)?;
        if entries.is_empty() {
            break;
        }
        times.push(took);
        bytes += body.len();
        seen += entries.len();
        marker = entries
            .last()
            .and_then(|e| e["name"].as_str())
            .context("a listing entry without a name")?
            .to_string();
        if entries.len() < page {
            break;
        }
    }
    let walk = walk_start.elapsed();
    anyhow::ensure!(
        seen == n,
        "the walk listed {seen} objects of the {n} stored"
    );
    let pages = times.len();
    let mean = times.iter().sum::<Duration>() / pages.max(1) as u32;
    times.sort();
    println!(
        "walk: {pages} pages of limit={page} (format=json, marker), {seen} objects in {:.2} s ({:.0} objects/s); per page mean {}  p50 {}  p99 {}  max {}; {:.0} KiB per page",
        walk.as_secs_f64(),
        seen as f64 / walk.as_secs_f64(),
        ms(mean),
        ms(percentile(&times, 0.5)),
        ms(percentile(&times, 0.99)),
        ms(times.last().copied().unwrap_or_default()),
        bytes as f64 / 1024.0 / pages.max(1) as f64,
    );

    // A few pages with prefix, delimiter and reverse, each requested QUERY_REPEATS times.
    let folder = format!("d{:03}/", 42 % FOLDERS);
    // A marker in the middle of the name order: in folder d050, half-way through it.
    let middle = list_name(FOLDERS / 2 + FOLDERS * (n / FOLDERS / 2));
    let queries: Vec<(String, String)> = vec![
        (
            format!("prefix={folder}"),
            format!("format=json&limit={page}&prefix={}", encode(&folder)),
        ),
        (
            "delimiter=/".into(),
            format!("format=json&limit={page}&delimiter=%2F"),
        ),
        (
            format!("prefix={folder}&delimiter=/"),
            format!(
                "format=json&limit={page}&prefix={}&delimiter=%2F",
                encode(&folder)
            ),
        ),
        (
            format!("marker={middle}"),
            format!("format=json&limit={page}&marker={}", encode(&middle)),
        ),
        (
            "reverse=on".into(),
            format!("format=json&limit={page}&reverse=on"),
        ),
        (
            "plain text (no format=json)".into(),
            format!("limit={page}"),
        ),
    ];
    for (what, query) in queries {
        let url = format!("{container}?{query}");
        let mut times = Vec::new();
        let mut returned = 0;
        for _ in 0..QUERY_REPEATS {
            let t = Instant::now();
            let resp = answered(
                &format!("GET {url}"),
                agent.get(&url).set("X-Auth-Token", token).call(),
            )?;
            read_body(resp, &mut body)?;
            times.push(t.elapsed());
            returned = if query.contains("format=json") {
                serde_json::from_slice::<Vec<Value>>(&body)
                    .with_context(|| format!("GET {url}: not a JSON list"))?
                    .len()
            } else {
                body.split(|&b| b == b'\n')
                    .filter(|l| !l.is_empty())
                    .count()
            };
        }
        times.sort();
        println!(
            "page limit={page} {what:<34} {returned:>6} entries  p50 {:>9}  max {:>9}",
            ms(percentile(&times, 0.5)),
            ms(times.last().copied().unwrap_or_default()),
        );
    }
    Ok(())
}
