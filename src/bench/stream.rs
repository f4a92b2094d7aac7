//! `strata bench stream`: the event streams and point-in-time state of a fresh `strata serve` over a log
//! filled beforehand. A data dir gets `--events` events (Swift account header changes over 64 accounts) and
//! one more account with `--state-events` header changes, written straight into the log; then the server
//! starts on it and the bench measures, through HTTP:
//! - catch-up delivery: one NDJSON consumer reading every prefilled event from position 0, then
//!   `--consumers` consumers at once reading the last `--tail` events each (events/s delivered);
//! - live delivery: 1 and `--consumers` consumers following from `now` while clients append through the
//!   Swift API; lag = receipt time - the event's recorded time (same clock), p50/p99;
//! - the state of the account with `--state-events` events at its last position, without and with the
//!   point-in-time snapshots (ms).

use std::io::BufRead;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use strata_events::{
    EventLog, ExpectedVersion, Metadata, NewEvent, Principal, RocksLog, RocksOptions,
};
use strata_proto::codec::DomainEvent;
use strata_proto::object as pb;
use strata_proto::ObjectEvent;

use super::{admin_login, percentile, spawn_server_with};

pub struct Options {
    pub events: u64,
    pub consumers: usize,
    pub tail: u64,
    pub live_events: u64,
    pub state_events: u64,
}

const ACCOUNT: &str = "benchaccount";

/// Write the events straight into a new data dir's log.
fn prefill(data_dir: &std::path::Path, o: &Options) -> anyhow::Result<()> {
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let log = RocksLog::open(crate::serve::log_dir(data_dir), RocksOptions::default())?;
        let meta = || Metadata {
            correlation_id: "bench".into(),
            causation_id: "bench".into(),
            principal: Principal {
                user_id: "bench".into(),
                project_id: "bench".into(),
                ..Default::default()
            },
        };
        let mut written = 0u64;
        let mut batch_no = 0u64;
        while written < o.events {
            let n = (o.events - written).min(1000);
            let account = format!("bench{}", batch_no % 64);
            let events = (0..n)
                .map(|i| {
                    let e = ObjectEvent::AccountHeadersChanged(pb::AccountHeadersChanged {
                        account: account.clone(),
                        set: [("x-account-meta-tick".to_string(), (written + i).to_string())]
                            .into_iter()
                            .collect(),
                        removed: vec![],
                    });
                    NewEvent::new(e.event_type(), e.encode())
                })
                .collect();
            log.append(
                &format!("swift-account-{account}"),
                ExpectedVersion::Any,
                events,
                meta(),
            )
            .await?;
            written += n;
            batch_no += 1;
        }
        let mut done = 0u64;
        while done < o.state_events {
            let n = (o.state_events - done).min(1000);
            let events = (0..n)
                .map(|i| {
                    let e = ObjectEvent::AccountHeadersChanged(pb::AccountHeadersChanged {
                        account: ACCOUNT.into(),
                        set: [("x-account-meta-counter".to_string(), (done + i).to_string())]
                            .into_iter()
                            .collect(),
                        removed: vec![],
                    });
                    NewEvent::new(e.event_type(), e.encode())
                })
                .collect();
            log.append(
                &format!("swift-account-{ACCOUNT}"),
                ExpectedVersion::Any,
                events,
                meta(),
            )
            .await?;
            done += n;
        }
        anyhow::Ok(())
    })
}

fn stream_request(base: &str, token: &str, query: &str) -> anyhow::Result<Box<dyn BufRead + Send>> {
    let resp = ureq::AgentBuilder::new()
        .timeout_read(Duration::from_secs(120))
        .build()
        .get(&format!("{base}/events/v1/stream?{query}"))
        .set("X-Auth-Token", token)
        .set("Accept", "application/x-ndjson")
        .call()
        .with_context(|| format!("opening the stream ?{query}"))?;
    Ok(Box::new(std::io::BufReader::with_capacity(
        1 << 16,
        resp.into_reader(),
    )))
}

/// Read `want` events (heartbeats skipped); returns how many arrived.
fn read_events(reader: &mut dyn BufRead, want: u64) -> anyhow::Result<u64> {
    let mut line = String::new();
    let mut n = 0;
    while n < want {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            break;
        }
        if line.starts_with("{\"heartbeat\"") || line.trim().is_empty() {
            continue;
        }
        n += 1;
    }
    Ok(n)
}

fn rate(n: u64, d: Duration) -> String {
    format!("{:.0}", n as f64 / d.as_secs_f64().max(1e-9))
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

pub fn run(o: Options) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let started = Instant::now();
    prefill(&tmp.path().join("data"), &o)?;
    println!(
        "prefilled {} events + {} on one account in {:.1} s",
        o.events,
        o.state_events,
        started.elapsed().as_secs_f64()
    );
    let (mut child, urls) = spawn_server_with(tmp.path(), &[])?;
    let result = bench(&o, &urls.identity, &urls.audit, &urls.object);
    let _ = child.kill();
    let _ = child.wait();
    result
}

fn bench(o: &Options, identity: &str, audit: &str, object: &str) -> anyhow::Result<()> {
    let (token, project) = admin_login(identity)?;
    let base = audit.trim_end_matches("/audit/v1").to_string();
    println!("| measurement | consumers | events | events/s | p50 ms | p99 ms |");
    println!("|---|---|---|---|---|---|");

    // Catch-up: one consumer reads every prefilled event from position 0.
    let prefilled = o.events + o.state_events;
    let t = Instant::now();
    let mut r = stream_request(&base, &token, "from=0&category=object")?;
    let got = read_events(r.as_mut(), prefilled)?;
    let d = t.elapsed();
    anyhow::ensure!(
        got == prefilled,
        "catch-up delivered {got} of {prefilled} events"
    );
    println!("| catch-up from 0 | 1 | {got} | {} | | |", rate(got, d));
    drop(r);

    // Catch-up: many consumers at once, each the last `tail` events.
    let tail = o.tail.min(prefilled);
    let from = prefilled.saturating_sub(tail);
    let t = Instant::now();
    let handles: Vec<_> = (0..o.consumers)
        .map(|_| {
            let (base, token) = (base.clone(), token.clone());
            std::thread::spawn(move || -> anyhow::Result<u64> {
                let mut r = stream_request(&base, &token, &format!("from={from}&category=object"))?;
                read_events(r.as_mut(), tail)
            })
        })
        .collect();
    let mut total = 0;
    for h in handles {
        total += h
            .join()
            .map_err(|_| anyhow::anyhow!("consumer panicked"))??;
    }
    println!(
        "| catch-up, last {tail} each | {} | {total} | {} | | |",
        o.consumers,
        rate(total, t.elapsed())
    );

    // Live: consumers follow from now while clients append through Swift.
    let account_url = object.replace("%(project_id)s", &project);
    for consumers in [1, o.consumers] {
        let lags = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut readers = Vec::new();
        for _ in 0..consumers {
            let mut r = stream_request(&base, &token, "from=now&category=object")?;
            let (lags, want) = (lags.clone(), o.live_events);
            readers.push(std::thread::spawn(move || -> anyhow::Result<()> {
                let mut line = String::new();
                let mut n = 0;
                while n < want {
                    line.clear();
                    if r.read_line(&mut line)? == 0 {
                        break;
                    }
                    let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                        continue;
                    };
                    let Some(time) = v["time"].as_str() else {
                        continue;
                    };
                    let recorded = chrono::DateTime::parse_from_rfc3339(time)?;
                    let lag = chrono::Utc::now().signed_duration_since(recorded);
                    lags.lock()
                        .map_err(|_| anyhow::anyhow!("lag lock"))?
                        .push(lag.to_std().unwrap_or(Duration::ZERO));
                    n += 1;
                }
                Ok(())
            }));
        }
        std::thread::sleep(Duration::from_millis(500));
        let t = Instant::now();
        let writers: Vec<_> = (0..4u64)
            .map(|w| {
                let (url, token, stop) = (account_url.clone(), token.clone(), stop.clone());
                let per = o.live_events / 4 + u64::from(w < o.live_events % 4);
                std::thread::spawn(move || -> anyhow::Result<()> {
                    let agent = ureq::AgentBuilder::new().build();
                    for i in 0..per {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        agent
                            .post(&url)
                            .set("X-Auth-Token", &token)
                            .set(&format!("X-Account-Meta-Writer{w}"), &i.to_string())
                            .call()?;
                    }
                    Ok(())
                })
            })
            .collect();
        for w in writers {
            w.join().map_err(|_| anyhow::anyhow!("writer panicked"))??;
        }
        for r in readers {
            r.join().map_err(|_| anyhow::anyhow!("reader panicked"))??;
        }
        stop.store(true, Ordering::Relaxed);
        let d = t.elapsed();
        let mut lags = lags
            .lock()
            .map_err(|_| anyhow::anyhow!("lag lock"))?
            .clone();
        lags.sort();
        println!(
            "| live (Swift POSTs, 4 writers) | {consumers} | {} | {} | {} | {} |",
            lags.len(),
            rate(lags.len() as u64, d),
            ms(percentile(&lags, 0.5)),
            ms(percentile(&lags, 0.99))
        );
    }

    // Point-in-time state of a resource with many events.
    let url = format!("{audit}/resources/swift-account/{ACCOUNT}/state");
    let agent = ureq::AgentBuilder::new().build();
    let time_state = |query: &str| -> anyhow::Result<Duration> {
        let t = Instant::now();
        let v: serde_json::Value = agent
            .get(&format!("{url}?{query}"))
            .set("X-Auth-Token", &token)
            .call()?
            .into_json()?;
        anyhow::ensure!(
            v["version"].as_u64() == Some(o.state_events),
            "state answered {v}"
        );
        Ok(t.elapsed())
    };
    println!();
    println!(
        "| point-in-time state ({} events) | ms (mean of 5) |",
        o.state_events
    );
    println!("|---|---|");
    let mean = |query: &str| -> anyhow::Result<Duration> {
        let mut total = Duration::ZERO;
        for _ in 0..5 {
            total += time_state(query)?;
        }
        Ok(total / 5)
    };
    println!("| without snapshots | {} |", ms(mean("snapshots=false")?));
    let first = time_state("snapshots=true")?;
    println!(
        "| with snapshots, first call (writes them) | {} |",
        ms(first)
    );
    println!("| with snapshots | {} |", ms(mean("snapshots=true")?));
    Ok(())
}
