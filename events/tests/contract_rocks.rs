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
