//! The engine end to end on an in-memory log with two fake hosts: servers boot while the hosts have room,
//! the rest end in ERROR with Nova's "No valid host was found" fault (and their quota back), claims never pass
//! the hosts' capacity, and deleting every server gives every claim and every reservation back.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_actors::compute::quota::{Amounts, ComputeUsage, Limits, UsageCommand};
use strata_actors::compute::{Action, ComputeHost, Server, ServerCommand};
use strata_actors::image::store::FileStore;
use strata_actors::runtime::load_aggregate;
use strata_actors::{Aggregate, Repository, Runtime, RuntimeConfig};
use strata_compute::{Engine, EngineConfig, FakeHostSpec};
use strata_events::{EventLog, MemoryLog, Metadata};
use strata_projections::compute::ComputeView;
use strata_projections::image::ImageView;
use strata_projections::Live;
use strata_proto::codec::DomainEvent;
use strata_proto::compute as pb;
use strata_proto::ComputeEvent;

const PROJECT: &str = "p1";
/// Each host: 4 vCPUs at 1.0 (the binding limit), 4 GB at 1.0, 100 GB.
const HOST_VCPUS: u64 = 4;
const HOSTS: [&str; 2] = ["fake-0", "fake-1"];
/// Generous: only a broken engine gets near it (this is a guard against hanging, not a timing assertion).
const PATIENCE: Duration = Duration::from_secs(60);

struct Cloud {
    log: Arc<MemoryLog>,
    runtime: Arc<Runtime>,
    view: Live<ComputeView>,
    engine: Arc<Engine>,
    servers: Repository<Server>,
    usage: Repository<ComputeUsage>,
    _dir: tempfile::TempDir,
}

impl Cloud {
    async fn start() -> Cloud {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(MemoryLog::new());
        let dyn_log: Arc<dyn EventLog> = log.clone();
        let runtime = Runtime::start(dyn_log.clone(), RuntimeConfig::default());
        let view = Live::<ComputeView>::start(dyn_log.clone(), Default::default())
            .await
            .unwrap();
        let images = Live::<ImageView>::start(dyn_log.clone(), Default::default())
            .await
            .unwrap();
        let store = Arc::new(FileStore::new(dir.path().join("data")).unwrap());
        let mut config = EngineConfig::new(dir.path().join("state"));
        config.hosts = FakeHostSpec::numbered(HOSTS.len(), HOST_VCPUS as u32, 4096, 100);
        config.cpu_allocation_ratio = 1.0;
        config.ram_allocation_ratio = 1.0;
        config.disk_allocation_ratio = 1.0;
        let engine = Engine::start(runtime.clone(), view.clone(), images, store, config)
            .await
            .unwrap();
        Cloud {
            servers: Repository::new(runtime.clone()),
            usage: Repository::new(runtime.clone()),
            log,
            runtime,
            view,
            engine,
            _dir: dir,
        }
    }

    /// What the API does for a boot: reserve the quota, then record `ServerCreated`.
    async fn create(&self, id: &str, name: &str, az: &str, metadata: &[(&str, &str)]) {
        let flavor = pb::FlavorSnapshot {
            flavor_id: "1".into(),
            name: "m1.tiny".into(),
            vcpus: 1,
            ram_mb: 512,
            disk_gb: 1,
            rxtx_factor: 1.0,
            ..Default::default()
        };
        let meta = Metadata::system(format!("req-{id}"));
        self.usage
            .execute(
                PROJECT,
                UsageCommand::Reserve {
                    holders: vec![(
                        id.to_string(),
                        Amounts {
                            instances: 1,
                            cores: 1,
                            ram: 512,
                        },
                    )],
                    limits: Limits {
                        instances: -1,
                        cores: -1,
                        ram: -1,
                    },
                },
                meta.clone(),
            )
            .await
            .unwrap();
        let created = pb::ServerCreated {
            project_id: PROJECT.into(),
            user_id: "u1".into(),
            name: name.into(),
            flavor: Some(flavor),
            // No image: the boot skips the image cache.
            image_id: String::new(),
            metadata: metadata
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            availability_zone: az.into(),
            request_id: format!("req-{id}"),
            hostname: name.into(),
            ..Default::default()
        };
        self.servers
            .execute(id, ServerCommand::Create(Box::new(created)), meta)
            .await
            .unwrap();
    }

    async fn delete(&self, id: &str) {
        self.servers
            .execute(
                id,
                ServerCommand::Begin {
                    action: Action::Delete,
                    request_id: format!("req-delete-{id}"),
                    admin: false,
                },
                Metadata::system(format!("req-delete-{id}")),
            )
            .await
            .unwrap();
    }

    /// Poll the view until `done` holds, checking on every look that no host holds more than its capacity.
    async fn wait_until(&self, what: &str, done: impl Fn(&ComputeView) -> bool) {
        let start = Instant::now();
        loop {
            {
                let v = self.view.snapshot();
                for h in v.hosts.values() {
                    let cap = h.state.inventory.vcpus_capacity();
                    assert!(
                        h.state.used().0 <= cap,
                        "{} overcommitted: {:?}",
                        h.name,
                        h.state.claims
                    );
                }
                if done(&v) {
                    return;
                }
            }
            assert!(start.elapsed() < PATIENCE, "gave up waiting for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The hosts as stored in the log; every prefix of their streams within capacity.
    async fn stored_hosts(&self) -> BTreeMap<String, ComputeHost> {
        let mut out = BTreeMap::new();
        for h in HOSTS {
            let stream = ComputeHost::stream_id(h);
            let (state, _, _) = load_aggregate::<ComputeHost>(self.log.as_ref(), &stream)
                .await
                .unwrap();
            let mut s = ComputeHost::default();
            for e in self.log.read_stream(&stream, 1).await.unwrap() {
                s = s.apply(&ComputeEvent::decode(&e.event_type, &e.payload).unwrap());
                assert!(
                    s.used().0 <= HOST_VCPUS,
                    "{h} overcommitted at version {}",
                    e.stream_version
                );
            }
            assert_eq!(s, state);
            // The incrementally kept totals equal a recount of the claims.
            let recount = state.claims.values().fold((0, 0, 0), |(c, r, d), x| {
                (c + x.vcpus as u64, r + x.ram_mb, d + x.disk_gb)
            });
            assert_eq!(state.used(), recount, "{h}");
            out.insert(h.to_string(), state);
        }
        out
    }

    async fn stop(self) {
        self.engine.shutdown();
        self.runtime.shutdown();
    }
}

fn status(v: &ComputeView, id: &str) -> &'static str {
    v.servers.get(id).map_or("MISSING", |s| s.state.status())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_beyond_capacity_get_no_valid_host_and_deletes_give_everything_back() {
    let cloud = Cloud::start().await;
    let capacity = HOST_VCPUS as usize * HOSTS.len();
    let n = capacity + 4;
    let ids: Vec<String> = (0..n)
        .map(|i| format!("00000000-0000-0000-0000-{i:012}"))
        .collect();
    // All at once, so the conductor schedules them concurrently.
    let names: Vec<String> = (0..n).map(|i| format!("s{i}")).collect();
    futures::future::join_all(
        ids.iter()
            .zip(&names)
            .map(|(id, name)| cloud.create(id, name, "", &[])),
    )
    .await;
    cloud
        .wait_until("every server to be ACTIVE or ERROR", |v| {
            ids.iter()
                .all(|id| matches!(status(v, id), "ACTIVE" | "ERROR"))
        })
        .await;

    let (active, failed): (Vec<String>, Vec<String>) = {
        let v = cloud.view.snapshot();
        ids.iter()
            .cloned()
            .partition(|id| status(&v, id) == "ACTIVE")
    };
    assert_eq!(
        active.len(),
        capacity,
        "as many boot as the hosts have room for"
    );
    assert_eq!(failed.len(), n - capacity);
    {
        let v = cloud.view.snapshot();
        for id in &failed {
            let s = &v.servers[id].state;
            let fault = s.fault.as_ref().expect("an ERROR server has a fault");
            // Nova's message; why (the filters, or every claim lost a race) is in the details.
            assert_eq!(
                fault.message, "No valid host was found. There are not enough hosts available.",
                "fault: {fault:?}"
            );
            assert!(
                fault
                    .details
                    .starts_with("There are not enough hosts available. "),
                "fault: {fault:?}"
            );
            assert!(s.host.is_empty(), "{id} keeps no host");
        }
        for id in &active {
            let s = &v.servers[id].state;
            assert!(HOSTS.contains(&s.host.as_str()), "{id} on {:?}", s.host);
            assert_eq!(s.availability_zone, "nova");
            assert!(s.fault.is_none());
        }
        // Each active server holds one claim on its own host; failed ones hold none.
        for h in HOSTS {
            let row = &v.hosts[h];
            let on: Vec<&String> = active
                .iter()
                .filter(|id| v.servers[*id].state.host == h)
                .collect();
            assert_eq!(row.state.claims.len(), on.len(), "{h}");
            assert!(on.iter().all(|id| row.state.claims.contains_key(*id)));
            assert_eq!(row.state.used().0, HOST_VCPUS, "{h} is full");
            // The hypervisor runs exactly those.
            let mut vms = cloud.engine.agent(h).unwrap().driver.instances();
            vms.sort();
            let mut want: Vec<String> = on.into_iter().cloned().collect();
            want.sort();
            assert_eq!(vms, want, "{h}");
        }
        // The quota holds the active servers only: the failed boots gave theirs back.
        let held: Vec<&String> = v.usage[PROJECT].holders.keys().collect();
        let mut want: Vec<&String> = active.iter().collect();
        want.sort();
        assert_eq!(held, want);
    }
    let stored = cloud.stored_hosts().await;
    assert_eq!(
        stored.values().map(|h| h.claims.len()).sum::<usize>(),
        capacity
    );

    // Delete everything (ERROR servers too): every claim and reservation goes back.
    futures::future::join_all(ids.iter().map(|id| cloud.delete(id))).await;
    cloud
        .wait_until("every server to be deleted", |v| {
            ids.iter()
                .all(|id| v.servers.get(id).is_some_and(|s| s.is_deleted()))
        })
        .await;
    {
        let v = cloud.view.snapshot();
        for h in HOSTS {
            assert!(
                v.hosts[h].state.claims.is_empty(),
                "{h}: {:?}",
                v.hosts[h].state.claims
            );
            assert!(cloud.engine.agent(h).unwrap().driver.instances().is_empty());
        }
        assert!(v.usage[PROJECT].holders.is_empty());
    }
    for (h, state) in cloud.stored_hosts().await {
        assert!(state.claims.is_empty(), "{h}: {:?}", state.claims);
    }
    cloud.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_spawns_and_unknown_zones_end_in_error_without_holding_anything() {
    let cloud = Cloud::start().await;
    let broken = "00000000-0000-0000-0000-00000000000b";
    let elsewhere = "00000000-0000-0000-0000-00000000000e";
    let fine = "00000000-0000-0000-0000-00000000000f";
    cloud
        .create(broken, "broken", "", &[("fake:fail", "spawn")])
        .await;
    cloud
        .create(elsewhere, "elsewhere", "az-nowhere", &[])
        .await;
    cloud.create(fine, "fine", "nova", &[]).await;
    cloud
        .wait_until("the three servers to settle", |v| {
            [broken, elsewhere, fine]
                .iter()
                .all(|id| matches!(status(v, id), "ACTIVE" | "ERROR"))
        })
        .await;
    {
        let v = cloud.view.snapshot();
        assert_eq!(status(&v, fine), "ACTIVE");
        let f = v.servers[broken].state.fault.clone().unwrap();
        assert!(
            f.message
                .starts_with(&format!("Build of instance {broken} aborted")),
            "{f:?}"
        );
        assert!(f.details.contains("injected failure of spawn"), "{f:?}");
        let f = v.servers[elsewhere].state.fault.clone().unwrap();
        assert_eq!(
            f.message,
            "No valid host was found. There are not enough hosts available."
        );
        assert!(
            f.details.contains("AvailabilityZoneFilter rejected 2"),
            "{f:?}"
        );
        // Only the running server holds a claim.
        let claims: Vec<&String> = v
            .hosts
            .values()
            .flat_map(|h| h.state.claims.keys())
            .collect();
        assert_eq!(claims, vec![fine]);
        // The failed spawn's VM is gone from its hypervisor.
        for h in HOSTS {
            let vms = cloud.engine.agent(h).unwrap().driver.instances();
            assert!(!vms.contains(&broken.to_string()), "{h}: {vms:?}");
        }
        // The boot that found no host gave its quota back.
        assert!(!v.usage[PROJECT].holders.contains_key(elsewhere));
    }
    cloud.stop().await;
}

/// Deletes racing the boots (each server deleted right after it is created, while the conductor schedules
/// and spawns it) leave no claim, VM or reservation behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_racing_boots_leave_nothing_behind() {
    let cloud = Cloud::start().await;
    let ids: Vec<String> = (0..12)
        .map(|i| format!("00000000-0000-0000-0000-1000000000{i:02}"))
        .collect();
    futures::future::join_all(ids.iter().map(|id| async {
        cloud.create(id, "racer", "", &[]).await;
        cloud.delete(id).await;
    }))
    .await;
    cloud
        .wait_until("every server to be deleted", |v| {
            ids.iter()
                .all(|id| v.servers.get(id).is_some_and(|s| s.is_deleted()))
        })
        .await;
    {
        let v = cloud.view.snapshot();
        for h in HOSTS {
            assert!(
                v.hosts[h].state.claims.is_empty(),
                "{h}: {:?}",
                v.hosts[h].state.claims
            );
            assert!(
                cloud.engine.agent(h).unwrap().driver.instances().is_empty(),
                "{h}"
            );
        }
        assert!(
            v.usage[PROJECT].holders.is_empty(),
            "{:?}",
            v.usage[PROJECT]
        );
    }
    for (h, state) in cloud.stored_hosts().await {
        assert!(state.claims.is_empty(), "{h}: {:?}", state.claims);
    }
    cloud.stop().await;
}
