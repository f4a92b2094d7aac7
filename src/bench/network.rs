//! `strata bench network`: Neutron through its HTTP API against a fresh `strata serve`: port create + delete
//! cycles at a given concurrency on one subnet (every allocation goes through the network's one aggregate),
//! then ports created until many are present, and lists of them timed.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{json, Value};

use super::{admin_login, percentile, spawn_server_with};

pub struct Options {
    pub cycles: usize,
    pub concurrency: usize,
    pub ports: usize,
    pub lists: usize,
}

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

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let req = self
            .agent
            .request(method, &format!("{}{path}", self.base))
            .set("X-Auth-Token", self.token);
        let r = match body {
            Some(b) => req.send_json(b),
            None => req.call(),
        };
        match r {
            Ok(resp) if resp.status() == 204 => Ok(Value::Null),
            Ok(resp) => Ok(resp.into_json()?),
            Err(ureq::Error::Status(code, resp)) => {
                let body = resp.into_string().unwrap_or_default();
                anyhow::bail!("{method} {path} answered {code}: {body}")
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// Run `job(client, i)` for i in 0..n on `concurrency` threads; returns each job's latency and the wall time.
fn run_parallel(
    base: &str,
    token: &str,
    concurrency: usize,
    n: usize,
    job: impl Fn(&Client, usize) -> anyhow::Result<Vec<Duration>> + Sync,
) -> anyhow::Result<(Vec<Vec<Duration>>, Duration)> {
    let next = AtomicUsize::new(0);
    let start = Instant::now();
    let all = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..concurrency.min(n.max(1)))
            .map(|_| {
                scope.spawn(|| -> anyhow::Result<Vec<Vec<Duration>>> {
                    let client = Client::new(base, token);
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= n {
                            return Ok(out);
                        }
                        out.push(job(&client, i)?);
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
    Ok((all, start.elapsed()))
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

fn column(all: &[Vec<Duration>], k: usize) -> Vec<Duration> {
    let mut v: Vec<Duration> = all.iter().filter_map(|x| x.get(k).copied()).collect();
    v.sort();
    v
}

pub fn run(o: Options) -> anyhow::Result<()> {
    let scratch = tempfile::Builder::new()
        .prefix("strata-bench-network-")
        .tempdir()?;
    let (mut child, urls) =
        spawn_server_with(scratch.path(), &["--no-public-network".to_string()])?;
    let result = bench(&o, &urls.identity, &format!("{}/v2.0", urls.network));
    let _ = child.kill();
    let _ = child.wait();
    result
}

fn bench(o: &Options, identity: &str, base: &str) -> anyhow::Result<()> {
    let (token, project) = admin_login(identity)?;
    let c = Client::new(base, &token);
    c.call(
        "PUT",
        &format!("/quotas/{project}"),
        Some(json!({"quota": {"port": -1}})),
    )?;
    let net = c.call(
        "POST",
        "/networks",
        Some(json!({"network": {"name": "bench"}})),
    )?;
    let net = net["network"]["id"]
        .as_str()
        .context("network id")?
        .to_string();
    // A /16: room for every port of the run.
    c.call(
        "POST",
        "/subnets",
        Some(json!({"subnet": {"network_id": net, "ip_version": 4, "cidr": "10.128.0.0/16"}})),
    )?;
    let port_body = |i: usize| json!({"port": {"network_id": net, "name": format!("p{i}")}});

    if o.cycles > 0 {
        let (lat, wall) = run_parallel(base, &token, o.concurrency, o.cycles, |cl, i| {
            let t = Instant::now();
            let p = cl.call("POST", "/ports", Some(port_body(i)))?;
            let created = t.elapsed();
            let id = p["port"]["id"].as_str().context("port id")?.to_string();
            let t = Instant::now();
            cl.call("DELETE", &format!("/ports/{id}"), None)?;
            Ok(vec![created, t.elapsed()])
        })?;
        let (create, delete) = (column(&lat, 0), column(&lat, 1));
        println!(
            "port create+delete, {} cycles at concurrency {} on one subnet: {:.0} cycles/s ({:.0} requests/s); create p50 {} ms p99 {} ms; delete p50 {} ms p99 {} ms",
            o.cycles,
            o.concurrency,
            o.cycles as f64 / wall.as_secs_f64(),
            2.0 * o.cycles as f64 / wall.as_secs_f64(),
            ms(percentile(&create, 0.5)),
            ms(percentile(&create, 0.99)),
            ms(percentile(&delete, 0.5)),
            ms(percentile(&delete, 0.99)),
        );
    }

    if o.ports > 0 {
        let (lat, wall) = run_parallel(base, &token, o.concurrency, o.ports, |cl, i| {
            let t = Instant::now();
            cl.call("POST", "/ports", Some(port_body(i)))?;
            Ok(vec![t.elapsed()])
        })?;
        let create = column(&lat, 0);
        println!(
            "{} ports created at concurrency {} on one subnet: {:.0} ports/s; create p50 {} ms p99 {} ms (the last 1000: p50 {} ms)",
            o.ports,
            o.concurrency,
            o.ports as f64 / wall.as_secs_f64(),
            ms(percentile(&create, 0.5)),
            ms(percentile(&create, 0.99)),
            ms(percentile(&column(&lat[lat.len().saturating_sub(1000)..], 0), 0.5)),
        );
        for (what, path) in [
            ("all ports", "/ports".to_string()),
            ("all ports, fields=id", "/ports?fields=id".to_string()),
            ("a page of 100", "/ports?limit=100".to_string()),
            (
                "a page of 100 sorted by name",
                "/ports?limit=100&sort_key=name".to_string(),
            ),
            (
                "by device_id (none match)",
                "/ports?device_id=nothing".to_string(),
            ),
            (
                "by fixed IP",
                "/ports?fixed_ips=ip_address%3D10.128.0.77".to_string(),
            ),
        ] {
            let mut times = Vec::new();
            let mut count = 0;
            for _ in 0..o.lists.max(1) {
                let t = Instant::now();
                let v = c.call("GET", &path, None)?;
                times.push(t.elapsed());
                count = v["ports"].as_array().map(Vec::len).unwrap_or(0);
            }
            times.sort();
            println!(
                "list {what} with {} ports present: {count} returned, p50 {} ms, max {} ms",
                o.ports,
                ms(percentile(&times, 0.5)),
                ms(*times.last().unwrap_or(&Duration::ZERO)),
            );
        }
    }
    Ok(())
}
