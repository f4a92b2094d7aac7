//! The log contract, run against the RocksDB backend, plus what only a durable backend can show.
use std::sync::Arc;
use strata_events::{
    verify_chain, EventLog, ExpectedVersion, Head, LogError, Metadata, NewEvent, RocksLog,
    RocksOptions, GENESIS_HASH,
};

fn fresh() -> (Arc<dyn EventLog>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let log = RocksLog::open(dir.path().join("log"), RocksOptions::default()).unwrap();
    (Arc::new(log), dir)
}

strata_events::log_contract_tests!(fresh());

#[tokio::test]
async fn reopen_keeps_everything_and_continues_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log");
    {
        let log = RocksLog::open(&path, RocksOptions::default()).unwrap();
        for i in 0..10u64 {
            log.append(
                "thing-a",
                ExpectedVersion::Exact(i),
                vec![NewEvent::new("t.E.v1", vec![i as u8])],
                Metadata::system("r"),
            )
            .await
            .unwrap();
        }
    }
    // Give the writer thread a moment to release the database lock after the log is dropped.
    let log = loop {
        match RocksLog::open(&path, RocksOptions::default()) {
            Ok(l) => break l,
            Err(LogError::Storage(m)) if m.contains("lock") => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(log.head().await.unwrap().position, 10);
    assert_eq!(log.stream_version("thing-a").await.unwrap(), 10);
    let err = log
        .append(
            "thing-a",
            ExpectedVersion::Exact(3),
            vec![NewEvent::new("t.E.v1", vec![])],
            Metadata::system("r"),
        )
        .await;
    assert!(matches!(err, Err(LogError::Conflict { actual: 10, .. })));
    log.append(
        "thing-a",
        ExpectedVersion::Exact(10),
        vec![NewEvent::new("t.E.v1", vec![])],
        Metadata::system("r"),
    )
    .await
    .unwrap();
    let all = log.read_all(1, 100).await.unwrap();
    assert_eq!(
        verify_chain(
            Head {
                position: 0,
                hash: GENESIS_HASH
            },
            &all
        )
        .unwrap()
        .position,
        11
    );
    drop(log);
    std::thread::sleep(std::time::Duration::from_millis(50));
    let ro = RocksLog::open_read_only(&path).unwrap();
    assert_eq!(ro.head().await.unwrap().position, 11);
    assert!(matches!(
        ro.append(
            "thing-a",
            ExpectedVersion::Any,
            vec![NewEvent::new("t.E.v1", vec![])],
            Metadata::system("r")
        )
        .await,
        Err(LogError::ReadOnly)
    ));
}

/// The test-only `overwrite_event_for_tests` changes one stored event behind the chain's back, and
/// `verify_log` names that position: a changed payload (the stored hash no longer matches) and bytes that are
/// not an envelope at all (read one by one, so the report names the unreadable event, not its batch).
#[tokio::test]
async fn an_overwritten_event_breaks_the_chain_at_its_position() {
    use prost::Message;
    use strata_events::verify_log;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log");
    let log = RocksLog::open(&path, RocksOptions::default()).unwrap();
    for i in 0..20u64 {
        log.append(
            &format!("thing-{}", i % 3),
            ExpectedVersion::Any,
            vec![NewEvent::new("t.E.v1", vec![i as u8; 4])],
            Metadata::system("r"),
        )
        .await
        .unwrap();
    }
    let genesis = Head {
        position: 0,
        hash: GENESIS_HASH,
    };
    let (head, checked) = verify_log(&log, genesis).await.unwrap();
    assert_eq!((head.position, checked), (20, 20));

    // Nothing is stored at 21, so nothing is written there.
    assert!(log.overwrite_event_for_tests(21, b"x").is_err());
    assert_eq!(log.head().await.unwrap().position, 20);

    // One payload bit flipped, the stored hash kept.
    let seven = log.read_all(7, 1).await.unwrap().remove(0);
    let mut env = seven.to_envelope();
    env.payload[0] ^= 1;
    log.overwrite_event_for_tests(7, &env.encode_to_vec())
        .unwrap();
    let err = verify_log(&log, genesis).await.unwrap_err();
    assert_eq!(err.position, 7, "{err}");
    assert!(err.reason.contains("hashes to"), "{err}");
    // From a checkpoint after it, the damage is not looked at; from one before it, it is.
    let twelve = log.read_all(12, 1).await.unwrap().remove(0);
    let after = Head {
        position: 12,
        hash: twelve.hash,
    };
    assert_eq!(verify_log(&log, after).await.unwrap().1, 8);
    let five = log.read_all(5, 1).await.unwrap().remove(0);
    let before = Head {
        position: 5,
        hash: five.hash,
    };
    assert_eq!(verify_log(&log, before).await.unwrap_err().position, 7);

    // Bytes that are not an envelope: reading them fails, and the report names that position.
    log.overwrite_event_for_tests(7, &seven.to_envelope().encode_to_vec())
        .unwrap();
    assert!(verify_log(&log, genesis).await.is_ok());
    log.overwrite_event_for_tests(13, b"\xff\xff\xff\xff garbage")
        .unwrap();
    let err = verify_log(&log, genesis).await.unwrap_err();
    assert_eq!(err.position, 13, "{err}");
    assert!(err.reason.contains("cannot read"), "{err}");
    drop(log);

    // A read-only log refuses.
    std::thread::sleep(std::time::Duration::from_millis(50));
    let ro = RocksLog::open_read_only(&path).unwrap();
    assert!(matches!(
        ro.overwrite_event_for_tests(3, b"x"),
        Err(LogError::ReadOnly)
    ));
}
