//! The aggregate runtime against the in-memory log: one actor per aggregate, re-decide on conflict,
//! snapshots, passivation and re-activation.

use std::sync::Arc;
use std::time::Duration;

use strata_actors::identity::{Project, ProjectCommand};
use strata_actors::{CommandError, DomainError, Repository, Runtime, RuntimeConfig};
use strata_events::{EventLog, ExpectedVersion, MemoryLog, Metadata, NewEvent};
use strata_proto::codec::DomainEvent;
use strata_proto::{identity as pb, IdentityEvent};

fn create(id: &str) -> ProjectCommand {
    ProjectCommand::Create {
        project_id: id.into(),
        domain_id: "default".into(),
        name: format!("p-{id}"),
        description: String::new(),
        enabled: true,
        parent_id: String::new(),
        tags: vec![],
        extra_json: String::new(),
    }
}

fn describe(d: &str) -> ProjectCommand {
    ProjectCommand::Update {
        name: None,
        description: Some(d.into()),
        enabled: None,
        tags: None,
        extra_json: None,
    }
}

fn meta() -> Metadata {
    Metadata::system("test-request")
}

fn runtime(log: Arc<MemoryLog>, config: RuntimeConfig) -> Arc<Runtime> {
    Runtime::start(log, config)
}

#[tokio::test]
async fn commands_append_events_and_state_follows() {
    let log = Arc::new(MemoryLog::new());
    let rt = runtime(log.clone(), RuntimeConfig::default());
    let repo: Repository<Project> = Repository::new(rt.clone());
    let out = repo.execute("a", create("a"), meta()).await.unwrap();
    assert_eq!((out.version, out.position), (1, Some(1)));
    let out = repo.execute("a", describe("x"), meta()).await.unwrap();
    assert_eq!(out.version, 2);
    // An update that changes nothing records nothing and reports no position.
    let out = repo.execute("a", describe("x"), meta()).await.unwrap();
    assert_eq!((out.version, out.position, out.events.len()), (2, None, 0));
    let err = repo.execute("a", create("a"), meta()).await.unwrap_err();
    assert!(matches!(
        err,
        CommandError::Domain(DomainError::AlreadyExists { .. })
    ));
    assert_eq!(
        log.head().await.unwrap().position,
        2,
        "refused commands append nothing"
    );
    let events = log.read_stream("project-a", 1).await.unwrap();
    assert_eq!(events[0].correlation_id, "test-request");
    let (state, version) = repo.load("a").await.unwrap();
    assert_eq!(version, 2);
    assert_eq!(
        state,
        strata_actors::replay(Project::default(), &events).unwrap()
    );
    rt.shutdown();
}

#[tokio::test]
async fn a_lost_race_is_re_decided_on_the_new_state() {
    let log = Arc::new(MemoryLog::new());
    let rt = runtime(log.clone(), RuntimeConfig::default());
    let repo: Repository<Project> = Repository::new(rt.clone());
    repo.execute("b", create("b"), meta()).await.unwrap();
    // Another writer (another node, a tool) appends behind the actor's back.
    let e = IdentityEvent::ProjectUpdated(pb::ProjectUpdated {
        description: Some("theirs".into()),
        ..Default::default()
    });
    log.append(
        "project-b",
        ExpectedVersion::Exact(1),
        vec![NewEvent::new(e.event_type(), e.encode())],
        meta(),
    )
    .await
    .unwrap();
    // The actor's cached version is stale: its append conflicts, it catches up and decides again.
    let out = repo.execute("b", describe("ours"), meta()).await.unwrap();
    assert_eq!(out.version, 3);
    let (state, _) = repo.load("b").await.unwrap();
    let all = log.read_stream("project-b", 1).await.unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(
        state,
        strata_actors::replay(Project::default(), &all).unwrap()
    );
    rt.shutdown();
}

#[tokio::test]
async fn concurrent_commands_to_one_aggregate_are_serialised() {
    let log = Arc::new(MemoryLog::new());
    let rt = runtime(log.clone(), RuntimeConfig::default());
    let repo: Repository<Project> = Repository::new(rt.clone());
    repo.execute("c", create("c"), meta()).await.unwrap();
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let repo = repo.clone();
            tokio::spawn(async move { repo.execute("c", describe(&format!("d{i}")), meta()).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let events = log.read_stream("project-c", 1).await.unwrap();
    assert_eq!(events.len(), 51);
    assert_eq!(
        events.iter().map(|e| e.stream_version).collect::<Vec<_>>(),
        (1..=51).collect::<Vec<_>>()
    );
    rt.shutdown();
}

#[tokio::test]
async fn snapshots_are_taken_and_used_on_activation() {
    let log = Arc::new(MemoryLog::new());
    let config = RuntimeConfig {
        snapshot_every: 5,
        ..Default::default()
    };
    let rt = runtime(log.clone(), config.clone());
    let repo: Repository<Project> = Repository::new(rt.clone());
    repo.execute("d", create("d"), meta()).await.unwrap();
    for i in 0..11 {
        repo.execute("d", describe(&format!("v{i}")), meta())
            .await
            .unwrap();
    }
    let (expected, _) = repo.load("d").await.unwrap();
    rt.shutdown();
    // The snapshot is saved in the background: wait for it briefly.
    let mut snap = None;
    for _ in 0..50 {
        snap = log.load_snapshot("project-d").await.unwrap();
        if snap.as_ref().is_some_and(|s| s.version >= 10) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let snap = snap.expect("a snapshot was saved");
    assert!(snap.version >= 10, "snapshot at version {}", snap.version);
    let (state, version, from_snapshot) =
        strata_actors::runtime::load_aggregate::<Project>(log.as_ref(), "project-d")
            .await
            .unwrap();
    assert_eq!((version, from_snapshot), (12, snap.version));
    assert_eq!(state, expected);
    // A fresh runtime activates from snapshot + tail and keeps working.
    let rt = runtime(log.clone(), config);
    let repo: Repository<Project> = Repository::new(rt.clone());
    assert_eq!(repo.load("d").await.unwrap(), (expected, 12));
    assert_eq!(
        repo.execute("d", describe("after"), meta())
            .await
            .unwrap()
            .version,
        13
    );
    rt.shutdown();
}

#[tokio::test]
async fn idle_actors_stop_and_come_back_on_demand() {
    let log = Arc::new(MemoryLog::new());
    let config = RuntimeConfig {
        idle_timeout: Duration::from_millis(100),
        ..Default::default()
    };
    let rt = runtime(log.clone(), config);
    let repo: Repository<Project> = Repository::new(rt.clone());
    for i in 0..20 {
        repo.execute(&format!("e{i}"), create(&format!("e{i}")), meta())
            .await
            .unwrap();
    }
    assert_eq!(repo.live_count(), 20);
    let mut live = repo.live_count();
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        live = repo.live_count();
        if live == 0 {
            break;
        }
    }
    assert_eq!(live, 0, "idle actors passivate");
    let out = repo.execute("e7", describe("back"), meta()).await.unwrap();
    assert_eq!(
        out.version, 2,
        "a re-activated actor rebuilt its state from the log"
    );
    assert_eq!(repo.live_count(), 1);
    rt.shutdown();
}
