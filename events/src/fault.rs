//! A log wrapper that makes global reads fail on demand, to show that everything following the log survives
//! read errors. `strata serve --debug-log-read-faults N` (hidden) wraps the real log in it once the cloud is
//! up; tests use it directly. Only `read_all` fails: appends, stream reads, snapshots and checkpoints pass
//! through unchanged, so no write is ever refused or lost because of an injected fault.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::watch;

use crate::{
    AppendResult, Checkpoint, EventLog, ExpectedVersion, Head, LogError, Metadata, NewEvent,
    Position, RecordedEvent, Snapshot,
};

pub struct FaultyLog {
    inner: Arc<dyn EventLog>,
    /// 0: no faults; N: every N-th `read_all` fails.
    every: AtomicU64,
    reads: AtomicU64,
    injected: AtomicU64,
}

impl FaultyLog {
    pub fn new(inner: Arc<dyn EventLog>) -> Self {
        FaultyLog {
            inner,
            every: AtomicU64::new(0),
            reads: AtomicU64::new(0),
            injected: AtomicU64::new(0),
        }
    }

    /// From now on every `n`-th `read_all` fails (0 stops the faults).
    pub fn fail_reads_every(&self, n: u64) {
        self.every.store(n, Ordering::Relaxed);
    }

    /// How many reads were made to fail.
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::Relaxed)
    }
}

#[async_trait]
impl EventLog for FaultyLog {
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        meta: Metadata,
    ) -> Result<AppendResult, LogError> {
        self.inner.append(stream, expected, events, meta).await
    }

    async fn read_stream(
        &self,
        stream: &str,
        from_version: u64,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        self.inner.read_stream(stream, from_version).await
    }

    async fn stream_version(&self, stream: &str) -> Result<u64, LogError> {
        self.inner.stream_version(stream).await
    }

    async fn read_all(&self, from: Position, max: usize) -> Result<Vec<RecordedEvent>, LogError> {
        let every = self.every.load(Ordering::Relaxed);
        if every > 0 && (self.reads.fetch_add(1, Ordering::Relaxed) + 1).is_multiple_of(every) {
            self.injected.fetch_add(1, Ordering::Relaxed);
            return Err(LogError::Storage(format!(
                "injected read fault at position {from}"
            )));
        }
        self.inner.read_all(from, max).await
    }

    async fn head(&self) -> Result<Head, LogError> {
        self.inner.head().await
    }

    fn watch_head(&self) -> watch::Receiver<Position> {
        self.inner.watch_head()
    }

    async fn save_snapshot(&self, stream: &str, snapshot: Snapshot) -> Result<(), LogError> {
        self.inner.save_snapshot(stream, snapshot).await
    }

    async fn load_snapshot(&self, stream: &str) -> Result<Option<Snapshot>, LogError> {
        self.inner.load_snapshot(stream).await
    }

    async fn save_checkpoint(&self, name: &str, checkpoint: Checkpoint) -> Result<(), LogError> {
        self.inner.save_checkpoint(name, checkpoint).await
    }

    async fn load_checkpoint(&self, name: &str) -> Result<Option<Checkpoint>, LogError> {
        self.inner.load_checkpoint(name).await
    }
}
