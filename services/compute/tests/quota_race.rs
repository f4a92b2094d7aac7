//! Quota usage under concurrency: many tasks booting, deleting, failing, resizing and shelving servers of one
//! project at once, through two runtimes on one log (two API nodes), never take the project past its limits,
//! and the usage always equals a recount of the servers that hold something.

use std::collections::BTreeMap;
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use strata_actors::compute::quota::{Amounts, ComputeUsage, Limits, UsageCommand};
use strata_actors::runtime::load_aggregate;
use strata_actors::{Aggregate, CommandError, DomainError, Repository, Runtime, RuntimeConfig};
use strata_events::{EventLog, MemoryLog, Metadata};
use strata_proto::codec::DomainEvent;
use strata_proto::ComputeEvent;

const PROJECT: &str = "p1";
const TASKS: u64 = 16;
const STEPS: usize = 60;
const LIMITS: Limits = Limits {
    instances: 12,
    cores: 20,
    ram: 8192,
};

fn recount<'a>(holders: impl IntoIterator<Item = &'a Amounts>) -> Amounts {
    holders
        .into_iter()
        .fold(Amounts::default(), |t, a| Amounts {
            instances: t.instances + a.instances,
            cores: t.cores + a.cores,
            ram: t.ram + a.ram,
        })
}

fn within_limits(a: &Amounts) -> bool {
    a.instances <= LIMITS.instances && a.cores <= LIMITS.cores && a.ram <= LIMITS.ram
}

fn flavor(rng: &mut StdRng) -> Amounts {
    Amounts {
        instances: 1,
        cores: rng.gen_range(1..=4),
        ram: 512 * rng.gen_range(1..=4),
    }
}

/// One client's random workload on its own servers (`t<task>-<n>`); returns what they hold at the end, and
/// (accepted, refused) counts.
async fn client(
    repo: Repository<ComputeUsage>,
    task: u64,
    seed: u64,
) -> (BTreeMap<String, Amounts>, usize, usize) {
    let mut rng = StdRng::seed_from_u64(seed * 1000 + task);
    let mut mine: BTreeMap<String, Amounts> = BTreeMap::new();
    let (mut accepted, mut refused) = (0, 0);
    let mut next = 0;
    for step in 0..STEPS {
        let pick = |rng: &mut StdRng, mine: &BTreeMap<String, Amounts>| {
            mine.keys().nth(rng.gen_range(0..mine.len())).cloned()
        };
        let cmd = match rng.gen_range(0..10) {
            _ if mine.is_empty() => None,
            0..=3 => None,
            4..=5 => Some(UsageCommand::Release {
                holder: pick(&mut rng, &mine).unwrap(),
            }),
            6..=8 => Some(UsageCommand::Reserve {
                holders: vec![(pick(&mut rng, &mine).unwrap(), flavor(&mut rng))],
                limits: LIMITS,
            }),
            _ => Some(UsageCommand::Reserve {
                holders: vec![(
                    pick(&mut rng, &mine).unwrap(),
                    Amounts {
                        instances: 1,
                        cores: 0,
                        ram: 0,
                    },
                )],
                limits: LIMITS,
            }),
        };
        // Boot one or two servers in one reservation.
        let cmd = cmd.unwrap_or_else(|| UsageCommand::Reserve {
            holders: (0..rng.gen_range(1..=2))
                .map(|_| {
                    next += 1;
                    (format!("t{task}-{next}"), flavor(&mut rng))
                })
                .collect(),
            limits: LIMITS,
        });
        let mut after = mine.clone();
        match &cmd {
            UsageCommand::Reserve { holders, .. } => after.extend(holders.iter().cloned()),
            UsageCommand::Release { holder } => {
                after.remove(holder);
            }
            UsageCommand::Count { .. } => unreachable!("the workload makes no counts"),
        }
        let shrinks = {
            let (b, a) = (recount(mine.values()), recount(after.values()));
            a.instances <= b.instances && a.cores <= b.cores && a.ram <= b.ram
        };
        match repo
            .execute(
                PROJECT,
                cmd.clone(),
                Metadata::system(format!("t{task}-{step}")),
            )
            .await
        {
            Ok(out) => {
                mine = after;
                accepted += 1;
                // Only this task touches its holders: the aggregate agrees with it on every one of them.
                let theirs: BTreeMap<String, Amounts> = out
                    .state
                    .holders
                    .iter()
                    .filter(|(h, _)| h.starts_with(&format!("t{task}-")))
                    .map(|(h, a)| (h.clone(), *a))
                    .collect();
                assert_eq!(theirs, mine, "task {task} step {step}");
                let total = out.state.total();
                assert_eq!(total, recount(out.state.holders.values()));
                assert!(within_limits(&total), "task {task} step {step}: {total:?}");
            }
            Err(CommandError::Domain(DomainError::OverQuota(m))) => {
                // Giving something back always fits.
                assert!(!shrinks, "task {task} step {step}: {cmd:?} refused: {m}");
                refused += 1;
            }
            Err(e) => panic!("task {task} step {step}: {cmd:?} failed with {e}"),
        }
    }
    (mine, accepted, refused)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reservations_never_pass_the_limits() {
    for seed in [1u64, 2, 3] {
        let log = Arc::new(MemoryLog::new());
        let config = RuntimeConfig {
            max_conflict_retries: 1000,
            snapshot_every: 25,
            ..Default::default()
        };
        let runtimes = [
            Runtime::start(log.clone(), config.clone()),
            Runtime::start(log.clone(), config),
        ];
        let tasks: Vec<_> = (0..TASKS)
            .map(|t| {
                let repo = Repository::<ComputeUsage>::new(runtimes[t as usize % 2].clone());
                tokio::spawn(client(repo, t, seed))
            })
            .collect();
        let mut live: BTreeMap<String, Amounts> = BTreeMap::new();
        let (mut accepted, mut refused) = (0, 0);
        for t in tasks {
            let (mine, a, r) = t.await.unwrap();
            live.extend(mine);
            accepted += a;
            refused += r;
        }
        assert!(
            accepted > 0 && refused > 0,
            "seed {seed}: accepted {accepted}, refused {refused}"
        );

        // The stored usage is the recount of what the clients hold ...
        let stream = ComputeUsage::stream_id(PROJECT);
        let (state, version, _) = load_aggregate::<ComputeUsage>(log.as_ref(), &stream)
            .await
            .unwrap();
        assert_eq!(state.holders, live, "seed {seed}");
        assert_eq!(state.total(), recount(live.values()));
        // ... a fresh runtime (snapshot + tail) loads the same ...
        let fresh = Runtime::start(log.clone(), RuntimeConfig::default());
        let (s, v) = Repository::<ComputeUsage>::new(fresh.clone())
            .load(PROJECT)
            .await
            .unwrap();
        assert_eq!((s, v), (state.clone(), version), "seed {seed}");
        fresh.shutdown();
        // ... and no prefix of the stream ever passed the limits.
        let events = log.read_stream(&stream, 1).await.unwrap();
        assert_eq!(events.len() as u64, version);
        let mut s = ComputeUsage::default();
        for e in &events {
            s = s.apply(&ComputeEvent::decode(&e.event_type, &e.payload).unwrap());
            assert!(
                within_limits(&s.total()),
                "seed {seed}: {:?} at version {}",
                s.total(),
                e.stream_version
            );
        }
        for rt in runtimes {
            rt.shutdown();
        }
    }
}
