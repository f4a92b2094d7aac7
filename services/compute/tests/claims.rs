//! Host claims under concurrency: many schedulers racing for the last vCPUs of a few hosts never overcommit
//! them. Every claim either lands (exactly as many as fit) or is refused with `Conflict`, and the hosts'
//! states rebuilt from the log hold no more than their capacity at any point of their streams.

use std::collections::BTreeSet;
use std::sync::Arc;

use strata_actors::compute::{ComputeHost, HostCommand, Inventory};
use strata_actors::runtime::load_aggregate;
use strata_actors::{Aggregate, CommandError, DomainError, Repository, Runtime, RuntimeConfig};
use strata_events::{EventLog, MemoryLog, Metadata};
use strata_proto::codec::DomainEvent;
use strata_proto::ComputeEvent;

const HOSTS: [&str; 2] = ["h0", "h1"];
/// 8 vCPUs at 4.0 per host.
const PER_HOST: u64 = 32;
const CLAIMS: usize = 1000;

/// The totals of a host's claims, added up afresh (the aggregate keeps them incrementally).
fn recount(h: &ComputeHost) -> (u64, u64, u64) {
    h.claims.values().fold((0, 0, 0), |(c, r, d), x| {
        (c + x.vcpus as u64, r + x.ram_mb, d + x.disk_gb)
    })
}

fn meta() -> Metadata {
    Metadata::system("claims-test")
}

async fn register(repo: &Repository<ComputeHost>) {
    for h in HOSTS {
        repo.execute(
            h,
            HostCommand::Register {
                hypervisor_type: "fake".into(),
                host_ip: "127.0.0.1".into(),
                inventory: Inventory {
                    vcpus: 8,
                    ram_mb: 1 << 20,
                    disk_gb: 1 << 20,
                    cpu_allocation_ratio: 4.0,
                    ram_allocation_ratio: 1.0,
                    disk_allocation_ratio: 1.0,
                },
                hypervisor_id: format!("hv-{h}"),
                service_id: format!("svc-{h}"),
            },
            meta(),
        )
        .await
        .unwrap();
    }
}

/// Claim 1 vCPU for server `i`, trying the hosts in turn (starting at a different one for each server) the
/// way the conductor tries the scheduler's alternates. Returns the host that took it, or `None` when every
/// host refused with `Conflict`; any other error fails the test.
async fn claim(repos: Vec<Repository<ComputeHost>>, i: usize) -> Option<String> {
    let repo = &repos[i % repos.len()];
    for k in 0..HOSTS.len() {
        let host = HOSTS[(i + k) % HOSTS.len()];
        let cmd = HostCommand::Claim {
            claim_id: format!("c{i}"),
            server_id: format!("s{i}"),
            vcpus: 1,
            ram_mb: 64,
            disk_gb: 1,
        };
        match repo.execute(host, cmd, meta()).await {
            Ok(out) => {
                let (used, _, _) = out.state.used();
                assert!(used <= PER_HOST, "{host} holds {used} vCPUs after a claim");
                assert!(out.state.claims.contains_key(&format!("c{i}")));
                return Some(host.to_string());
            }
            Err(CommandError::Domain(DomainError::Conflict(m))) => {
                assert!(m.contains("vcpus"), "unexpected refusal: {m}");
            }
            Err(e) => panic!("claim c{i} on {host} failed with {e}"),
        }
    }
    None
}

/// Run `CLAIMS` concurrent claims spread over `repos` and check the outcome against the log.
async fn race(log: Arc<MemoryLog>, repos: Vec<Repository<ComputeHost>>) {
    register(&repos[0]).await;
    let tasks: Vec<_> = (0..CLAIMS)
        .map(|i| tokio::spawn(claim(repos.clone(), i)))
        .collect();
    let mut won: Vec<BTreeSet<String>> = vec![BTreeSet::new(); HOSTS.len()];
    let mut refused = 0;
    for (i, t) in tasks.into_iter().enumerate() {
        match t.await.unwrap() {
            Some(h) => {
                let k = HOSTS.iter().position(|x| *x == h).unwrap();
                won[k].insert(format!("c{i}"));
            }
            None => refused += 1,
        }
    }
    let capacity = PER_HOST as usize * HOSTS.len();
    assert_eq!(
        won.iter().map(BTreeSet::len).sum::<usize>(),
        capacity,
        "exactly the capacity is claimed"
    );
    assert_eq!(refused, CLAIMS - capacity);
    for (k, host) in HOSTS.iter().enumerate() {
        let stream = ComputeHost::stream_id(host);
        // Rebuilt from the log (snapshot + tail), the host holds exactly the claims that were acknowledged.
        let (state, version, _) = load_aggregate::<ComputeHost>(log.as_ref(), &stream)
            .await
            .unwrap();
        let held: BTreeSet<String> = state.claims.keys().cloned().collect();
        assert_eq!(held, won[k], "{host}: acknowledged claims = stored claims");
        assert_eq!(state.used(), recount(&state));
        assert_eq!(state.used().0, PER_HOST);
        assert!(state.used().0 <= state.inventory.vcpus_capacity());
        // And no prefix of the stream ever held more than the capacity.
        let events = log.read_stream(&stream, 1).await.unwrap();
        assert_eq!(events.len() as u64, version);
        let mut s = ComputeHost::default();
        for e in &events {
            s = s.apply(&ComputeEvent::decode(&e.event_type, &e.payload).unwrap());
            assert_eq!(s.used(), recount(&s));
            assert!(
                s.used().0 <= PER_HOST,
                "{host} overcommitted at version {}",
                e.stream_version
            );
        }
        assert_eq!(s, state);
    }
    assert!(won[0].is_disjoint(&won[1]), "a claim landed on both hosts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_claims_fill_the_hosts_exactly() {
    let log = Arc::new(MemoryLog::new());
    let rt = Runtime::start(log.clone(), RuntimeConfig::default());
    let repo: Repository<ComputeHost> = Repository::new(rt.clone());
    race(log, vec![repo.clone(), repo]).await;
    rt.shutdown();
}

/// Two runtimes on one log (two conductors): each caches the hosts' state, so appends really race, and the
/// loser must re-decide against the winner's claim (and re-check a stale refusal) instead of overcommitting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_from_two_runtimes_on_one_log_never_overcommit() {
    let log = Arc::new(MemoryLog::new());
    let config = RuntimeConfig {
        max_conflict_retries: 1000,
        ..Default::default()
    };
    let a = Runtime::start(log.clone(), config.clone());
    let b = Runtime::start(log.clone(), config);
    let repos = vec![
        Repository::<ComputeHost>::new(a.clone()),
        Repository::<ComputeHost>::new(b.clone()),
    ];
    race(log, repos).await;
    a.shutdown();
    b.shutdown();
}
