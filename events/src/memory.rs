//! The in-memory backend: the same semantics as RocksDB without durability. For tests and scratch replays.

use std::collections::HashMap;

use async_trait::async_trait;
use parking_lot::Mutex;
use tokio::sync::watch;

use crate::seal::Sealer;
use crate::types::validate_stream_id;
use crate::{
    AppendResult, Checkpoint, EventLog, ExpectedVersion, Head, LogError, Metadata, NewEvent,
    Position, RecordedEvent, Snapshot, GENESIS_HASH,
};

pub struct MemoryLog {
    inner: Mutex<Inner>,
    head_tx: watch::Sender<Position>,
}

struct Inner {
    sealer: Sealer,
    events: Vec<RecordedEvent>,
    streams: HashMap<String, Vec<Position>>,
    snapshots: HashMap<String, Snapshot>,
    checkpoints: HashMap<String, Checkpoint>,
}

impl Default for MemoryLog {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryLog {
    pub fn new() -> Self {
        let (head_tx, _) = watch::channel(0);
        MemoryLog {
            inner: Mutex::new(Inner {
                sealer: Sealer::new(
                    Head {
                        position: 0,
                        hash: GENESIS_HASH,
                    },
                    0,
                ),
                events: Vec::new(),
                streams: HashMap::new(),
                snapshots: HashMap::new(),
                checkpoints: HashMap::new(),
            }),
            head_tx,
        }
    }
}

#[async_trait]
impl EventLog for MemoryLog {
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        meta: Metadata,
    ) -> Result<AppendResult, LogError> {
        validate_stream_id(stream)?;
        if events.is_empty() {
            return Err(LogError::EmptyAppend);
        }
        let result = {
            let mut inner = self.inner.lock();
            let current = inner
                .streams
                .get(stream)
                .map(|v| v.len() as u64)
                .unwrap_or(0);
            if let ExpectedVersion::Exact(v) = expected {
                if v != current {
                    return Err(LogError::Conflict {
                        stream: stream.to_string(),
                        expected: expected.to_string(),
                        actual: current,
                    });
                }
            }
            let sealed = inner.sealer.seal(stream, current + 1, events, &meta, true);
            let first = sealed[0].position;
            let mut last = first;
            for s in sealed {
                last = s.position;
                inner
                    .streams
                    .entry(stream.to_string())
                    .or_default()
                    .push(last);
                inner.events.extend(s.event);
            }
            let version = inner
                .streams
                .get(stream)
                .map(|v| v.len() as u64)
                .unwrap_or(0);
            AppendResult {
                first_position: first,
                last_position: last,
                stream_version: version,
            }
        };
        self.head_tx.send_replace(result.last_position);
        Ok(result)
    }

    async fn read_stream(
        &self,
        stream: &str,
        from_version: u64,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        let inner = self.inner.lock();
        let Some(positions) = inner.streams.get(stream) else {
            return Ok(Vec::new());
        };
        let skip = from_version.saturating_sub(1) as usize;
        Ok(positions
            .iter()
            .skip(skip)
            .map(|p| inner.events[(*p - 1) as usize].clone())
            .collect())
    }

    async fn stream_version(&self, stream: &str) -> Result<u64, LogError> {
        Ok(self
            .inner
            .lock()
            .streams
            .get(stream)
            .map(|v| v.len() as u64)
            .unwrap_or(0))
    }

    async fn read_all(&self, from: Position, max: usize) -> Result<Vec<RecordedEvent>, LogError> {
        let inner = self.inner.lock();
        let start = (from.max(1) - 1) as usize;
        Ok(inner.events.iter().skip(start).take(max).cloned().collect())
    }

    async fn head(&self) -> Result<Head, LogError> {
        Ok(self.inner.lock().sealer.head)
    }

    fn watch_head(&self) -> watch::Receiver<Position> {
        self.head_tx.subscribe()
    }

    async fn save_snapshot(&self, stream: &str, snapshot: Snapshot) -> Result<(), LogError> {
        self.inner
            .lock()
            .snapshots
            .insert(stream.to_string(), snapshot);
        Ok(())
    }

    async fn load_snapshot(&self, stream: &str) -> Result<Option<Snapshot>, LogError> {
        Ok(self.inner.lock().snapshots.get(stream).cloned())
    }

    async fn save_checkpoint(&self, name: &str, checkpoint: Checkpoint) -> Result<(), LogError> {
        self.inner
            .lock()
            .checkpoints
            .insert(name.to_string(), checkpoint);
        Ok(())
    }

    async fn load_checkpoint(&self, name: &str) -> Result<Option<Checkpoint>, LogError> {
        Ok(self.inner.lock().checkpoints.get(name).cloned())
    }
}
