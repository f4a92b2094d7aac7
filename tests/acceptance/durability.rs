//! Durability: concurrent writers create projects while the server is SIGKILLed three times. Every create
//! that was acknowledged (201) must survive every crash; the log must stay one unbroken, dense, hash-chained
//! sequence; and replaying it from position 0 must rebuild exactly the live projections.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread;
use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::json;

const WRITERS: usize = 8;
const KILLS: usize = 3;
/// The whole test must finish within this (each phase also has its own bound).
const TEST_BUDGET: Duration = Duration::from_secs(360);
/// How long acknowledged projects may take to become visible after a restart (projection catch-up).
const VISIBLE_WITHIN: Duration = Duration::from_secs(30);
/// Writers stop once this many creates are acknowledged, whatever the clock says.
const MAX_ACKS: usize = 20_000;

#[derive(Debug, Clone)]
struct Ack {
    writer: usize,
    name: String,
    id: String,
    /// Which server incarnation acknowledged it (1 = first start).
    incarnation: u32,
}

/// What the writers use to reach the server: empty `url` while it is being restarted.
#[derive(Clone, Default)]
struct Target {
    incarnation: u32,
    url: String,
    token: String,
}

struct Shared {
    target: RwLock<Target>,
    stop: AtomicBool,
    acks: Mutex<Vec<Ack>>,
    unexpected: Mutex<Vec<String>>,
    deadline: Instant,
}

fn writer(w: usize, shared: Arc<Shared>, run: String) {
    let mut seq = 0u64;
    while !shared.stop.load(Ordering::Relaxed) && Instant::now() < shared.deadline {
        let t = shared.target.read().unwrap().clone();
        if t.url.is_empty() {
            thread::sleep(Duration::from_millis(20));
            continue;
        }
        seq += 1;
        // A fresh name per attempt: an attempt cut off by a crash may or may not have been recorded.
        let name = format!("dur-{run}-{w}-{seq}");
        let body = json!({"project": {"name": name, "description": "durability", "enabled": true}});
        match try_request(
            "POST",
            &format!("{}/projects", t.url),
            Some(&t.token),
            Some(&body),
        ) {
            Ok(r) if r.status == 201 => {
                let v = r.json();
                let id = v["project"]["id"].as_str().unwrap_or("").to_string();
                if id.is_empty() || v["project"]["name"].as_str() != Some(name.as_str()) {
                    shared
                        .unexpected
                        .lock()
                        .unwrap()
                        .push(format!("bad 201 body: {}", r.describe()));
                }
                let mut acks = shared.acks.lock().unwrap();
                acks.push(Ack {
                    writer: w,
                    name,
                    id,
                    incarnation: t.incarnation,
                });
                if acks.len() >= MAX_ACKS {
                    shared.stop.store(true, Ordering::Relaxed);
                }
            }
            // A token from before a restart may be refused; wait for the new one.
            Ok(r) if r.status == 401 => thread::sleep(Duration::from_millis(50)),
            Ok(r) => {
                shared.unexpected.lock().unwrap().push(r.describe());
                thread::sleep(Duration::from_millis(50));
            }
            // Connection refused / reset: the server is being killed or restarted.
            Err(_) => thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Every ack is listed by `GET /v3/projects` with its id, and a sample is found by `?name=`; retried until
/// `VISIBLE_WITHIN` for projection catch-up.
fn check_acks_visible(url: &str, token: &str, acks: &[Ack], rng: &mut Rng) -> Result<(), String> {
    let deadline = Instant::now() + VISIBLE_WITHIN;
    loop {
        let r = try_request("GET", &format!("{url}/projects"), Some(token), None)?;
        if r.status != 200 {
            return Err(format!("listing projects: {}", r.describe()));
        }
        let listed: BTreeMap<String, String> = r.json()["projects"]
            .as_array()
            .map(|v| {
                v.iter()
                    .filter_map(|p| {
                        Some((
                            p["name"].as_str()?.to_string(),
                            p["id"].as_str()?.to_string(),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let missing: Vec<&Ack> = acks
            .iter()
            .filter(|a| listed.get(&a.name) != Some(&a.id))
            .collect();
        if missing.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "{} of {} acknowledged projects are missing from GET /v3/projects after {VISIBLE_WITHIN:?}, e.g. {:?}",
                missing.len(),
                acks.len(),
                &missing[..missing.len().min(10)]
            ));
        }
        thread::sleep(Duration::from_millis(250));
    }

    // `?name=` for the riskiest acks (each writer's last three of each incarnation) plus a random sample.
    let mut sample: BTreeMap<(usize, u32), Vec<&Ack>> = BTreeMap::new();
    for a in acks {
        sample.entry((a.writer, a.incarnation)).or_default().push(a);
    }
    let mut picked: Vec<&Ack> = sample
        .values()
        .flat_map(|v| v.iter().rev().take(3).copied())
        .collect();
    for _ in 0..20.min(acks.len()) {
        picked.push(&acks[(rng.next_u64() % acks.len() as u64) as usize]);
    }
    for a in picked {
        let r = try_request(
            "GET",
            &format!("{url}/projects?name={}", a.name),
            Some(token),
            None,
        )?;
        let found: Vec<String> = if r.status == 200 {
            r.json()["projects"]
                .as_array()
                .map(|v| {
                    v.iter()
                        .filter_map(|p| p["id"].as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        } else {
            return Err(format!("GET ?name={}: {}", a.name, r.describe()));
        };
        if found != vec![a.id.clone()] {
            return Err(format!(
                "GET /v3/projects?name={} must find exactly {}, found {found:?}",
                a.name, a.id
            ));
        }
    }
    Ok(())
}

fn token_within(url: &str, password: &str, within: Duration) -> Result<String, String> {
    let deadline = Instant::now() + within;
    loop {
        match get_token(url, "admin", password, Some("admin")) {
            Ok(t) => return Ok(t),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// Stops the writers before panicking, so a failure never leaves threads hammering a dead port.
fn fail(shared: &Shared, msg: String) -> ! {
    shared.stop.store(true, Ordering::Relaxed);
    panic!("{msg}");
}

#[test]
fn acknowledged_creates_survive_sigkill_and_the_log_stays_verifiable() {
    let started = Instant::now();
    let mut server = Server::start();
    let mut rng = Rng::from_time();
    let password = server.admin_password().to_string();
    let shared = Arc::new(Shared {
        target: RwLock::new(Target {
            incarnation: 1,
            url: server.identity_url().to_string(),
            token: server.admin_token(),
        }),
        stop: AtomicBool::new(false),
        acks: Mutex::new(Vec::new()),
        unexpected: Mutex::new(Vec::new()),
        deadline: started + TEST_BUDGET - Duration::from_secs(90),
    });
    let run = unique_suffix();
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (s, run) = (shared.clone(), run.clone());
            thread::spawn(move || writer(w, s, run))
        })
        .collect();

    for kill in 1..=KILLS {
        let pause = rng.millis_between(1000, 2000);
        thread::sleep(pause);
        if !server.is_running() {
            fail(
                &shared,
                format!(
                    "the server died by itself before kill #{kill}:\n{}",
                    server.log_tail(60)
                ),
            );
        }
        server.kill();
        *shared.target.write().unwrap() = Target::default(); // writers pause
        if Instant::now() > shared.deadline {
            fail(&shared, format!("out of time before restart #{kill}"));
        }
        if let Err(e) = server.try_restart() {
            fail(&shared, format!("restart #{kill} failed: {e}"));
        }
        let url = server.identity_url().to_string();
        let token = token_within(&url, &password, Duration::from_secs(15)).unwrap_or_else(|e| {
            fail(
                &shared,
                format!("no admin token after restart #{kill}: {e}"),
            )
        });
        let acked: Vec<Ack> = shared.acks.lock().unwrap().clone();
        if let Err(e) = check_acks_visible(&url, &token, &acked, &mut rng) {
            fail(
                &shared,
                format!("after kill #{kill} (paused {pause:?}): {e}"),
            );
        }
        eprintln!(
            "kill #{kill} after {pause:?}: {} acknowledged creates so far all survived",
            acked.len()
        );
        *shared.target.write().unwrap() = Target {
            incarnation: kill as u32 + 1,
            url,
            token,
        };
    }

    // Let the last incarnation take writes too, then stop the writers (each request is bounded by HTTP_TIMEOUT).
    thread::sleep(Duration::from_millis(1500));
    shared.stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().expect("writer thread panicked");
    }
    let acks: Vec<Ack> = shared.acks.lock().unwrap().clone();
    let unexpected = shared.unexpected.lock().unwrap().clone();
    assert!(
        unexpected.is_empty(),
        "{} creates got an unexpected answer (only 201, 401 after a restart, or a dropped connection are \
         acceptable), e.g.:\n{}",
        unexpected.len(),
        unexpected.iter().take(5).cloned().collect::<Vec<_>>().join("\n")
    );
    for inc in 1..=(KILLS as u32 + 1) {
        assert!(
            acks.iter().any(|a| a.incarnation == inc),
            "server incarnation {inc} acknowledged no create at all (acks per incarnation: {:?})",
            (1..=KILLS as u32 + 1)
                .map(|i| acks.iter().filter(|a| a.incarnation == i).count())
                .collect::<Vec<_>>()
        );
    }
    let url = server.identity_url().to_string();
    let token = token_within(&url, &password, Duration::from_secs(15)).unwrap();
    check_acks_visible(&url, &token, &acks, &mut rng).unwrap_or_else(|e| panic!("at the end: {e}"));

    // Offline checks on the data dir.
    server.kill();
    let head = server
        .log_verify()
        .unwrap_or_else(|e| panic!("strata log verify must pass after {KILLS} SIGKILLs:\n{e}"));
    let events = server
        .log_dump()
        .unwrap_or_else(|e| panic!("log dump: {e}"));
    check_dump_invariants(&events).unwrap_or_else(|e| panic!("log dump after crashes: {e}"));
    assert_eq!(
        head.head_position,
        events.len() as u64,
        "log verify head vs dump: {head:?}"
    );
    assert_eq!(
        head.events,
        events.len() as u64,
        "log verify count vs dump: {head:?}"
    );

    // Each acknowledged project: exactly one ProjectCreated, with the acknowledged id; per writer, in ack order.
    let mut created: BTreeMap<String, Vec<(u64, String)>> = BTreeMap::new();
    for ev in events
        .iter()
        .filter(|e| ev_type(e) == "identity.ProjectCreated.v1")
    {
        if let Some(name) = payload_str(ev, "name") {
            let id = payload_str(ev, "project_id").unwrap_or("").to_string();
            created
                .entry(name.to_string())
                .or_default()
                .push((ev_position(ev), id));
        }
    }
    let mut last_pos: BTreeMap<usize, u64> = BTreeMap::new();
    for a in &acks {
        let hits = created.get(&a.name).map(Vec::as_slice).unwrap_or(&[]);
        assert_eq!(
            hits.len(),
            1,
            "acknowledged project {} must have exactly one ProjectCreated, has {hits:?}",
            a.name
        );
        let (pos, id) = &hits[0];
        assert_eq!(
            id, &a.id,
            "ProjectCreated of {} records id {id}, the API acknowledged {}",
            a.name, a.id
        );
        let prev = last_pos.insert(a.writer, *pos).unwrap_or(0);
        assert!(
            *pos > prev,
            "writer {}: {} acknowledged after a create at position {prev} but logged at {pos}",
            a.writer,
            a.name
        );
    }
    let names: BTreeSet<&str> = acks.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names.len(), acks.len(), "no name is acknowledged twice");

    let out = server.replay_verify();
    assert!(
        out.success,
        "strata replay --verify must pass after {KILLS} SIGKILLs:\n{}",
        out.describe()
    );
    eprintln!(
        "{} acknowledged creates, {} events, head {}, in {:?}",
        acks.len(),
        events.len(),
        head.head_hash,
        started.elapsed()
    );
    assert!(
        started.elapsed() < TEST_BUDGET,
        "the durability test overran its budget: {:?}",
        started.elapsed()
    );
}
