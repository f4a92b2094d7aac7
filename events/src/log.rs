use std::pin::Pin;

use async_trait::async_trait;
use futures::Stream;
use tokio::sync::watch;

use crate::{
    AppendResult, Checkpoint, ExpectedVersion, Head, LogError, Metadata, NewEvent, Position,
    RecordedEvent, Snapshot,
};

/// A live feed of events in global order.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<RecordedEvent, LogError>> + Send>>;

/// The append-only, hash-chained event log. Backend-neutral: RocksDB, memory, and (later) NATS JetStream
/// implement it, and callers never know which one they have.
#[async_trait]
pub trait EventLog: Send + Sync + 'static {
    /// Append `events` to `stream`, all or nothing. Fails with [`LogError::Conflict`] (appending nothing) when
    /// the stream is not at `expected`. Returns once the events are durable.
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        meta: Metadata,
    ) -> Result<AppendResult, LogError>;

    /// Events of one stream with version >= `from_version` (versions start at 1), in order.
    async fn read_stream(
        &self,
        stream: &str,
        from_version: u64,
    ) -> Result<Vec<RecordedEvent>, LogError>;

    /// The stream's current version (0 if it has no events).
    async fn stream_version(&self, stream: &str) -> Result<u64, LogError>;

    /// Up to `max` events with position >= `from`, in global order.
    async fn read_all(&self, from: Position, max: usize) -> Result<Vec<RecordedEvent>, LogError>;

    /// The log's last position and hash (position 0 and the genesis hash when empty).
    async fn head(&self) -> Result<Head, LogError>;

    /// A receiver that changes whenever the head position advances.
    fn watch_head(&self) -> watch::Receiver<Position>;

    async fn save_snapshot(&self, stream: &str, snapshot: Snapshot) -> Result<(), LogError>;
    async fn load_snapshot(&self, stream: &str) -> Result<Option<Snapshot>, LogError>;

    /// Store a projection's state with its checkpoint in one atomic write.
    async fn save_checkpoint(&self, name: &str, checkpoint: Checkpoint) -> Result<(), LogError>;
    async fn load_checkpoint(&self, name: &str) -> Result<Option<Checkpoint>, LogError>;
}

/// Every event with position >= `from`: first those already in the log, then new ones as they are appended,
/// with no gap and no duplicate; ends only on error. Built only on `read_all` and `watch_head`, so every backend shares it.
/// Positions are dense, so reading from "last seen + 1" can neither skip nor repeat an event.
pub fn subscribe_all<L: EventLog + ?Sized>(log: std::sync::Arc<L>, from: Position) -> EventStream {
    const BATCH: usize = 2048;
    let from = from.max(1);
    let stream = futures::stream::unfold(
        (
            log,
            from,
            std::collections::VecDeque::<RecordedEvent>::new(),
            None::<watch::Receiver<Position>>,
            false,
        ),
        |(log, mut next, mut buf, mut rx, failed)| async move {
            if failed {
                return None;
            }
            loop {
                if let Some(e) = buf.pop_front() {
                    next = e.position + 1;
                    return Some((Ok(e), (log, next, buf, rx, false)));
                }
                // Subscribe to head changes before reading, so an append between the read and the wait
                // is not missed.
                let watcher = rx.get_or_insert_with(|| log.watch_head());
                watcher.borrow_and_update();
                match log.read_all(next, BATCH).await {
                    Err(e) => return Some((Err(e), (log, next, buf, rx, true))),
                    // `buf` is empty here: take the batch as it is (no copy).
                    Ok(events) if !events.is_empty() => buf = events.into(),
                    Ok(_) => {
                        if watcher.changed().await.is_err() {
                            return Some((Err(LogError::Closed), (log, next, buf, rx, true)));
                        }
                    }
                }
            }
        },
    );
    Box::pin(stream)
}
