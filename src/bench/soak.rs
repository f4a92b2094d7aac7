//! `strata bench soak`: clients booting and deleting servers while other clients list resources, all at one
//! compute microversion, for a fixed time against a fresh `strata serve` on fake hosts. It reports every
//! request (by kind), the slowest one, and every request that did not answer within `--request-timeout`: a
//! cloud that stops answering (a deadlock, a stalled projection) shows up there, not as a slow figure.
//!
//! After the load stops, the servers still left are deleted and every one of them must be gone within the
//! request timeout, so flows stuck in BUILD or deleting count as failures too. The run fails (exit code 1)
//! when any request went unanswered or a server never finished.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{json, Value};

use super::{admin_login, create_image, percentile, spawn_server_with};

pub struct Options {
    pub seconds: f64,
    pub boot_clients: usize,
    pub list_clients: usize,
    pub microversion: String,
    pub fake_hosts: usize,
    pub request_timeout: Duration,
    pub poll: Duration,
}

/// What one request did.
#[derive(Clone)]
enum Outcome {
    /// Answered with this status.
    Answered(u16),
    /// Nothing within the request timeout (or the connection failed).
    Unanswered(String),
}

/// Every request of the run, by kind.
#[derive(Default)]
struct Tally {
    latencies: BTreeMap<&'static str, Vec<Duration>>,
    statuses: BTreeMap<(&'static str, u16), usize>,
    unanswered: Vec<(&'static str, String)>,
    slowest: Option<(&'static str, Duration)>,
}

impl Tally {
    fn record(&mut self, kind: &'static str, took: Duration, outcome: &Outcome) {
        match outcome {
            Outcome::Answered(status) => {
                self.latencies.entry(kind).or_default().push(took);
                *self.statuses.entry((kind, *status)).or_default() += 1;
                if self.slowest.is_none_or(|(_, d)| took > d) {
                    self.slowest = Some((kind, took));
                }
            }
            Outcome::Unanswered(why) => self.unanswered.push((kind, why.clone())),
        }
    }
}

/// One client: its own connection, the admin's token, the microversion, and the shared tally.
struct Client<'a> {
    agent: ureq::Agent,
    url: &'a str,
    token: &'a str,
    microversion: &'a str,
    tally: &'a Mutex<Tally>,
}

impl<'a> Client<'a> {
    /// Send one request; a non-2xx answer is an answer (its body is returned), a timeout or a transport
    /// failure is not.
    fn send(
        &self,
        kind: &'static str,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> (Outcome, Option<Value>) {
        let req = self
            .agent
            .request(method, &format!("{}{path}", self.url))
            .set("X-Auth-Token", self.token)
            .set(
                "OpenStack-API-Version",
                &format!("compute {}", self.microversion),
            );
        let t = Instant::now();
        let result = match body {
            Some(b) => req.send_json(b.clone()),
            None => req.call(),
        };
        let (outcome, json) = match result {
            Ok(resp) => (Outcome::Answered(resp.status()), resp.into_json().ok()),
            Err(ureq::Error::Status(code, resp)) => {
                (Outcome::Answered(code), resp.into_json().ok())
            }
            Err(ureq::Error::Transport(e)) => (Outcome::Unanswered(e.to_string()), None),
        };
        let took = t.elapsed();
        if let Ok(mut tally) = self.tally.lock() {
            tally.record(kind, took, &outcome);
        }
        (outcome, json)
    }
}

/// Boot, wait for ACTIVE (or ERROR), delete, wait for 404; again until `stop`. Returns the servers it left
/// behind (a boot or delete that did not finish when the run stopped).
fn booter(
    c: &Client,
    n: usize,
    flavor: &str,
    image: &str,
    stop: &AtomicBool,
    poll: Duration,
) -> Vec<String> {
    let mut left = Vec::new();
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let body = json!({"server": {"name": format!("soak-{n}-{i}"), "flavorRef": flavor,
            "imageRef": image, "networks": "none"}});
        let (outcome, json) = c.send("POST /servers", "POST", "/servers", Some(&body));
        let Some(id) = json
            .as_ref()
            .and_then(|v| v["server"]["id"].as_str())
            .map(str::to_string)
        else {
            if matches!(outcome, Outcome::Unanswered(_)) {
                return left;
            }
            std::thread::sleep(poll);
            continue;
        };
        let path = format!("/servers/{id}");
        while !stop.load(Ordering::Relaxed) {
            let (outcome, json) = c.send("GET /servers/{id}", "GET", &path, None);
            let status = json.as_ref().and_then(|v| v["server"]["status"].as_str());
            if matches!(outcome, Outcome::Unanswered(_))
                || matches!(status, Some("ACTIVE" | "ERROR"))
            {
                break;
            }
            std::thread::sleep(poll);
        }
        c.send("DELETE /servers/{id}", "DELETE", &path, None);
        loop {
            if stop.load(Ordering::Relaxed) {
                left.push(id);
                return left;
            }
            match c.send("GET /servers/{id}", "GET", &path, None).0 {
                Outcome::Answered(404) => break,
                Outcome::Unanswered(_) => {
                    left.push(id);
                    return left;
                }
                _ => std::thread::sleep(poll),
            }
        }
    }
    left
}

/// What the listing clients ask for, in turn.
const LISTINGS: [(&str, &str); 6] = [
    ("GET /servers/detail", "/servers/detail"),
    ("GET /servers", "/servers"),
    ("GET /os-hypervisors/detail", "/os-hypervisors/detail"),
    ("GET /os-services", "/os-services"),
    ("GET /flavors/detail", "/flavors/detail"),
    ("GET /limits", "/limits"),
];

fn lister(c: &Client, n: usize, stop: &AtomicBool) {
    let mut i = n;
    while !stop.load(Ordering::Relaxed) {
        let (kind, path) = LISTINGS[i % LISTINGS.len()];
        if let Outcome::Unanswered(_) = c.send(kind, "GET", path, None).0 {
            return;
        }
        i += 1;
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

pub fn run(o: Options) -> anyhow::Result<bool> {
    let tmp = tempfile::tempdir()?;
    let extra: Vec<String> = [
        "--fake-hosts",
        &o.fake_hosts.to_string(),
        "--fake-host-spec",
        "vcpus=1024,ram_mb=4194304,disk_gb=100000",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let (mut child, urls) = spawn_server_with(tmp.path(), &extra)?;
    let result = soak(&o, &urls.identity, &urls.image, &urls.compute);
    let _ = child.kill();
    let _ = child.wait();
    result
}

fn soak(
    o: &Options,
    identity_url: &str,
    image_url: &str,
    compute_url: &str,
) -> anyhow::Result<bool> {
    let (token, project) = admin_login(identity_url)?;
    let setup_tally = Mutex::new(Tally::default());
    let agent = || ureq::AgentBuilder::new().timeout(o.request_timeout).build();
    let setup = Client {
        agent: agent(),
        url: compute_url,
        token: &token,
        microversion: &o.microversion,
        tally: &setup_tally,
    };
    let quota = json!({"quota_set": {"instances": -1, "cores": -1, "ram": -1}});
    setup.send(
        "setup",
        "PUT",
        &format!("/os-quota-sets/{project}"),
        Some(&quota),
    );
    let flavor = json!({"flavor": {"name": "soak.tiny", "ram": 64, "vcpus": 1, "disk": 0}});
    let (_, flavor) = setup.send("setup", "POST", "/flavors", Some(&flavor));
    let flavor = flavor
        .as_ref()
        .and_then(|v| v["flavor"]["id"].as_str())
        .context("creating the flavor")?
        .to_string();
    let image = create_image(&setup.agent, image_url, &token, "soak-image")?;
    setup
        .agent
        .put(&format!("{image_url}/v2/images/{image}/file"))
        .set("X-Auth-Token", &token)
        .set("Content-Type", "application/octet-stream")
        .send_bytes(&[0u8; 64 << 10])
        .context("uploading the image")?;

    println!(
        "## soak: {} clients booting and deleting servers + {} clients listing, for {:.0} s at compute {} ({} fake hosts, request timeout {:?})",
        o.boot_clients, o.list_clients, o.seconds, o.microversion, o.fake_hosts, o.request_timeout
    );
    let tally = Mutex::new(Tally::default());
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let left: Vec<String> = std::thread::scope(|scope| {
        let client = || Client {
            agent: agent(),
            url: compute_url,
            token: &token,
            microversion: &o.microversion,
            tally: &tally,
        };
        let booters: Vec<_> = (0..o.boot_clients)
            .map(|n| {
                let c = client();
                let (flavor, image, stop) = (&flavor, &image, &stop);
                scope.spawn(move || booter(&c, n, flavor, image, stop, o.poll))
            })
            .collect();
        for n in 0..o.list_clients {
            let c = client();
            let stop = &stop;
            scope.spawn(move || lister(&c, n, stop));
        }
        std::thread::sleep(Duration::from_secs_f64(o.seconds));
        stop.store(true, Ordering::Relaxed);
        booters
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let load_wall = started.elapsed();

    // Whatever the run left is deleted; every server must then be gone. A cloud that stopped answering is
    // not asked again.
    let frozen = !tally
        .lock()
        .map(|t| t.unanswered.is_empty())
        .unwrap_or(false);
    let cleanup = Client {
        agent: agent(),
        url: compute_url,
        token: &token,
        microversion: &o.microversion,
        tally: &tally,
    };
    let all = if frozen {
        None
    } else {
        cleanup.send("GET /servers", "GET", "/servers", None).1
    };
    let mut remaining: Vec<String> = all
        .as_ref()
        .and_then(|v| v["servers"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|s| s["id"].as_str().map(str::to_string))
        .collect();
    remaining.extend(left);
    remaining.sort();
    remaining.dedup();
    for id in remaining.iter().filter(|_| !frozen) {
        cleanup.send(
            "DELETE /servers/{id}",
            "DELETE",
            &format!("/servers/{id}"),
            None,
        );
    }
    let deadline = Instant::now() + o.request_timeout;
    let mut stuck: Vec<String> = remaining.clone();
    while !frozen && !stuck.is_empty() && Instant::now() < deadline {
        stuck.retain(|id| {
            !matches!(
                cleanup
                    .send("GET /servers/{id}", "GET", &format!("/servers/{id}"), None)
                    .0,
                Outcome::Answered(404)
            )
        });
        if !stuck.is_empty() {
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    let tally = tally.into_inner().unwrap_or_default();
    let answered: usize = tally.latencies.values().map(Vec::len).sum();
    println!(
        "requests answered: {answered} in {:.1} s ({:.0} requests/s during the load)",
        load_wall.as_secs_f64(),
        answered as f64 / load_wall.as_secs_f64()
    );
    for (kind, lat) in &tally.latencies {
        let mut lat = lat.clone();
        lat.sort();
        let statuses: Vec<String> = tally
            .statuses
            .iter()
            .filter(|((k, _), _)| k == kind)
            .map(|((_, s), n)| format!("{s}x{n}"))
            .collect();
        println!(
            "  {kind:<28} {:>7}  p50 {:>9}  p99 {:>9}  max {:>9}  [{}]",
            lat.len(),
            ms(percentile(&lat, 0.5)),
            ms(percentile(&lat, 0.99)),
            ms(lat.last().copied().unwrap_or_default()),
            statuses.join(" "),
        );
    }
    if let Some((kind, d)) = tally.slowest {
        println!("slowest request: {kind} in {}", ms(d));
    }
    let errors: usize = tally
        .statuses
        .iter()
        .filter(|((_, s), _)| *s >= 500)
        .map(|(_, n)| n)
        .sum();
    println!("answers with a 5xx status: {errors}");
    println!(
        "requests unanswered within {:?}: {}",
        o.request_timeout,
        tally.unanswered.len()
    );
    for (kind, why) in tally.unanswered.iter().take(10) {
        println!("  {kind}: {why}");
    }
    println!(
        "servers left after the load: {}, still present {:?} after deleting them: {}",
        remaining.len(),
        o.request_timeout,
        stuck.len()
    );
    Ok(tally.unanswered.is_empty() && stuck.is_empty() && errors == 0)
}
