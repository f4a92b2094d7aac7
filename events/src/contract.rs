//! The contract every [`EventLog`] backend must honour. Each check takes a fresh, empty log; a backend's test
//! file runs them all with [`log_contract_tests!`](crate::log_contract_tests), so a new backend (JetStream)
//! passes the very same suite without any change to callers.

use std::sync::Arc;

use futures::StreamExt;

use crate::{
    subscribe_all, verify_chain, EventLog, ExpectedVersion, Head, LogError, Metadata, NewEvent,
    Principal, GENESIS_HASH,
};

fn ev(kind: &str, n: usize) -> NewEvent {
    NewEvent::new(
        format!("test.{kind}.v1"),
        format!("{kind}-{n}").into_bytes(),
    )
}

fn meta(request: &str) -> Metadata {
    Metadata {
        correlation_id: request.to_string(),
        causation_id: format!("cmd-{request}"),
        principal: Principal {
            user_id: "u1".into(),
            user_name: "alice".into(),
            project_id: "p1".into(),
            domain_id: "default".into(),
            roles: vec!["member".into(), "reader".into()],
        },
    }
}

pub async fn append_and_read_stream(log: Arc<dyn EventLog>) {
    let r = log
        .append(
            "thing-a",
            ExpectedVersion::Exact(0),
            vec![ev("A", 1), ev("A", 2)],
            meta("r1"),
        )
        .await
        .unwrap();
    assert_eq!(
        (r.first_position, r.last_position, r.stream_version),
        (1, 2, 2)
    );
    let r = log
        .append(
            "thing-a",
            ExpectedVersion::Exact(2),
            vec![ev("A", 3)],
            meta("r2"),
        )
        .await
        .unwrap();
    assert_eq!(
        (r.first_position, r.last_position, r.stream_version),
        (3, 3, 3)
    );
    let events = log.read_stream("thing-a", 1).await.unwrap();
    assert_eq!(
        events.iter().map(|e| e.stream_version).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(events[2].payload, b"A-3");
    assert_eq!(log.read_stream("thing-a", 3).await.unwrap().len(), 1);
    assert_eq!(log.stream_version("thing-a").await.unwrap(), 3);
    assert_eq!(log.stream_version("thing-none").await.unwrap(), 0);
    assert!(log.read_stream("thing-none", 1).await.unwrap().is_empty());
    // A stream whose id is a prefix of another's keeps its own events.
    log.append(
        "thing-ab",
        ExpectedVersion::Exact(0),
        vec![ev("AB", 1)],
        meta("r3"),
    )
    .await
    .unwrap();
    assert_eq!(log.read_stream("thing-a", 1).await.unwrap().len(), 3);
    assert_eq!(log.stream_version("thing-a").await.unwrap(), 3);
}

pub async fn envelope_fields_are_recorded(log: Arc<dyn EventLog>) {
    log.append(
        "thing-m",
        ExpectedVersion::Exact(0),
        vec![ev("M", 1), ev("M", 2)],
        meta("req-9"),
    )
    .await
    .unwrap();
    let events = log.read_all(1, 10).await.unwrap();
    assert_eq!(events.len(), 2);
    for e in &events {
        assert_eq!(e.id.get_version_num(), 7, "event ids are UUIDv7");
        assert_eq!(e.stream_id, "thing-m");
        assert_eq!(e.event_type, "test.M.v1");
        assert_eq!(e.correlation_id, "req-9");
        assert_eq!(e.causation_id, "cmd-req-9");
        assert_eq!(e.principal, meta("x").principal);
        assert_eq!(e.stream_kind(), "thing");
    }
    assert!(events[0].recorded_at <= events[1].recorded_at);
    assert!(
        events[0].id < events[1].id,
        "UUIDv7 ids sort in recording order"
    );
}

pub async fn conflict_appends_nothing(log: Arc<dyn EventLog>) {
    log.append(
        "thing-c",
        ExpectedVersion::Exact(0),
        vec![ev("C", 1)],
        meta("r1"),
    )
    .await
    .unwrap();
    let before = log.head().await.unwrap();
    let err = log
        .append(
            "thing-c",
            ExpectedVersion::Exact(0),
            vec![ev("C", 2), ev("C", 3)],
            meta("r2"),
        )
        .await;
    match err {
        Err(LogError::Conflict { actual, .. }) => assert_eq!(actual, 1),
        other => panic!("expected a conflict, got {other:?}"),
    }
    let err = log
        .append(
            "thing-c",
            ExpectedVersion::Exact(5),
            vec![ev("C", 2)],
            meta("r3"),
        )
        .await;
    assert!(matches!(err, Err(LogError::Conflict { actual: 1, .. })));
    assert_eq!(
        log.head().await.unwrap(),
        before,
        "a rejected append changes nothing"
    );
    assert_eq!(log.read_stream("thing-c", 1).await.unwrap().len(), 1);
    assert!(matches!(
        log.append("thing-c", ExpectedVersion::Any, vec![], meta("r4"))
            .await,
        Err(LogError::EmptyAppend)
    ));
    assert!(matches!(
        log.append(
            "bad stream",
            ExpectedVersion::Any,
            vec![ev("C", 1)],
            meta("r5")
        )
        .await,
        Err(LogError::InvalidStream(_))
    ));
    let r = log
        .append(
            "thing-c",
            ExpectedVersion::Any,
            vec![ev("C", 2)],
            meta("r6"),
        )
        .await
        .unwrap();
    assert_eq!(r.stream_version, 2);
}

pub async fn read_all_in_global_order(log: Arc<dyn EventLog>) {
    for i in 0..30 {
        let stream = format!("thing-{}", i % 3);
        log.append(&stream, ExpectedVersion::Any, vec![ev("G", i)], meta("r"))
            .await
            .unwrap();
    }
    let all = log.read_all(1, 100).await.unwrap();
    assert_eq!(
        all.iter().map(|e| e.position).collect::<Vec<_>>(),
        (1..=30).collect::<Vec<_>>()
    );
    assert_eq!(all[4].payload, b"G-4");
    let page = log.read_all(11, 5).await.unwrap();
    assert_eq!(
        page.iter().map(|e| e.position).collect::<Vec<_>>(),
        vec![11, 12, 13, 14, 15]
    );
    assert!(log.read_all(31, 10).await.unwrap().is_empty());
    assert_eq!(
        log.read_all(0, 1).await.unwrap()[0].position,
        1,
        "position 0 reads from the start"
    );
    let head = log.head().await.unwrap();
    assert_eq!(head.position, 30);
    assert_eq!(head.hash, all[29].hash);
}

pub async fn hash_chain_is_unbroken(log: Arc<dyn EventLog>) {
    assert_eq!(
        log.head().await.unwrap(),
        Head {
            position: 0,
            hash: GENESIS_HASH
        }
    );
    for i in 0..20 {
        log.append(
            &format!("thing-{}", i % 4),
            ExpectedVersion::Any,
            vec![ev("H", i), ev("H", i + 100)],
            meta("r"),
        )
        .await
        .unwrap();
    }
    let all = log.read_all(1, 1000).await.unwrap();
    let head = verify_chain(
        Head {
            position: 0,
            hash: GENESIS_HASH,
        },
        &all,
    )
    .expect("chain verifies");
    assert_eq!(head, log.head().await.unwrap());
    // Verification from a checkpoint in the middle.
    let mid = Head {
        position: all[9].position,
        hash: all[9].hash,
    };
    assert_eq!(verify_chain(mid, &all[10..]).unwrap(), head);
    // Tampering with any byte is detected at that position.
    let mut tampered = all.clone();
    tampered[7].payload = b"forged".to_vec();
    assert_eq!(
        verify_chain(
            Head {
                position: 0,
                hash: GENESIS_HASH
            },
            &tampered
        )
        .unwrap_err()
        .position,
        8
    );
}

pub async fn concurrent_writers_on_one_stream(log: Arc<dyn EventLog>) {
    // 8 writers race for each of 10 versions: exactly one wins each round.
    let mut wins = 0;
    for round in 0..10u64 {
        let mut tasks = Vec::new();
        for w in 0..8 {
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                log.append(
                    "thing-race",
                    ExpectedVersion::Exact(round),
                    vec![ev("R", w)],
                    meta("r"),
                )
                .await
            }));
        }
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => wins += 1,
                Err(LogError::Conflict { actual, .. }) => assert_eq!(actual, round + 1),
                Err(e) => panic!("unexpected error {e}"),
            }
        }
    }
    assert_eq!(wins, 10);
    assert_eq!(log.stream_version("thing-race").await.unwrap(), 10);
    assert_eq!(log.head().await.unwrap().position, 10);
}

pub async fn many_concurrent_writers(log: Arc<dyn EventLog>) {
    let mut tasks = Vec::new();
    for w in 0..32 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            let stream = format!("thing-w{w}");
            for v in 0..20u64 {
                log.append(
                    &stream,
                    ExpectedVersion::Exact(v),
                    vec![ev("W", v as usize)],
                    meta("r"),
                )
                .await
                .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let all = log.read_all(1, 10_000).await.unwrap();
    assert_eq!(all.len(), 640);
    verify_chain(
        Head {
            position: 0,
            hash: GENESIS_HASH,
        },
        &all,
    )
    .unwrap();
    for w in 0..32 {
        let s = log.read_stream(&format!("thing-w{w}"), 1).await.unwrap();
        assert_eq!(
            s.iter().map(|e| e.stream_version).collect::<Vec<_>>(),
            (1..=20).collect::<Vec<_>>()
        );
    }
}

pub async fn subscribe_catches_up_then_goes_live(log: Arc<dyn EventLog>) {
    for i in 0..50 {
        log.append("thing-s", ExpectedVersion::Any, vec![ev("S", i)], meta("r"))
            .await
            .unwrap();
    }
    let mut sub = subscribe_all(log.clone(), 1);
    let mut from_middle = subscribe_all(log.clone(), 41);
    let writer = {
        let log = log.clone();
        tokio::spawn(async move {
            for i in 50..150 {
                log.append(
                    &format!("thing-s{}", i % 5),
                    ExpectedVersion::Any,
                    vec![ev("S", i)],
                    meta("r"),
                )
                .await
                .unwrap();
                if i % 10 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        })
    };
    let mut seen = Vec::new();
    while seen.len() < 150 {
        let e = tokio::time::timeout(std::time::Duration::from_secs(10), sub.next())
            .await
            .expect("subscription delivers within 10 s")
            .expect("stream open")
            .expect("no error");
        seen.push(e.position);
    }
    writer.await.unwrap();
    assert_eq!(
        seen,
        (1..=150).collect::<Vec<_>>(),
        "no gap, no duplicate, in order"
    );
    let mut mid = Vec::new();
    while mid.len() < 110 {
        mid.push(from_middle.next().await.unwrap().unwrap().position);
    }
    assert_eq!(mid, (41..=150).collect::<Vec<_>>());
    // Nothing more is delivered until something is appended.
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(100), sub.next())
            .await
            .is_err()
    );
    log.append(
        "thing-s",
        ExpectedVersion::Any,
        vec![ev("S", 999)],
        meta("r"),
    )
    .await
    .unwrap();
    let e = tokio::time::timeout(std::time::Duration::from_secs(5), sub.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(e.position, 151);
}

pub async fn snapshots_and_checkpoints(log: Arc<dyn EventLog>) {
    use crate::{Checkpoint, Snapshot};
    assert_eq!(log.load_snapshot("thing-x").await.unwrap(), None);
    let s = Snapshot {
        version: 7,
        schema: 1,
        state: b"state".to_vec(),
    };
    log.save_snapshot("thing-x", s.clone()).await.unwrap();
    assert_eq!(log.load_snapshot("thing-x").await.unwrap(), Some(s));
    let s2 = Snapshot {
        version: 9,
        schema: 1,
        state: b"state2".to_vec(),
    };
    log.save_snapshot("thing-x", s2.clone()).await.unwrap();
    assert_eq!(log.load_snapshot("thing-x").await.unwrap(), Some(s2));
    assert_eq!(log.load_checkpoint("view").await.unwrap(), None);
    let c = Checkpoint {
        version: 2,
        position: 42,
        state: b"model".to_vec(),
    };
    log.save_checkpoint("view", c.clone()).await.unwrap();
    assert_eq!(log.load_checkpoint("view").await.unwrap(), Some(c));
}

/// Generate one `#[tokio::test]` per contract check. `$make` is an expression giving a fresh
/// `(Arc<dyn EventLog>, guard)`; the guard (e.g. a temp dir) lives until the test ends.
#[macro_export]
macro_rules! log_contract_tests {
    ($make:expr) => {
        $crate::log_contract_tests!(@each $make;
            append_and_read_stream, envelope_fields_are_recorded, conflict_appends_nothing,
            read_all_in_global_order, hash_chain_is_unbroken, concurrent_writers_on_one_stream,
            many_concurrent_writers, subscribe_catches_up_then_goes_live, snapshots_and_checkpoints);
    };
    (@each $make:expr; $($name:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let (log, _guard) = $make;
                $crate::contract::$name(log).await;
            }
        )*
    };
}
