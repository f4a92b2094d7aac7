//! The RocksDB backend, the durable default.
//!
//! Layout (column families):
//! - `events`: global position (u64 big-endian) -> encoded [`EventEnvelope`](strata_proto::envelope::EventEnvelope)
//! - `streams`: stream id, NUL, stream version (u64 BE) -> global position (u64 BE)
//! - `snapshots`: stream id -> encoded `Snapshot`; `checkpoints`: projection name -> encoded `ProjectionCheckpoint`
//!
//! One writer thread owns positions, versions and the hash chain. It takes every append waiting in its queue,
//! checks each one's expected version and seals the accepted ones into one `WriteBatch`; a second thread
//! writes that batch with the WAL synced and only then answers, while the first seals the next group. Many
//! concurrent appenders share one fsync (group commit), and a crash loses only unacknowledged appends.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::Mutex;
use prost::Message;
use rocksdb::{ColumnFamilyDescriptor, Options, WriteBatch, WriteOptions, DB};
use strata_proto::envelope as pb;
use tokio::sync::{oneshot, watch};

use crate::seal::Sealer;
use crate::types::validate_stream_id;
use crate::{
    AppendResult, Checkpoint, EventLog, ExpectedVersion, Head, LogError, Metadata, NewEvent,
    Position, RecordedEvent, Snapshot, GENESIS_HASH,
};

const CF_EVENTS: &str = "events";
const CF_STREAMS: &str = "streams";
const CF_SNAPSHOTS: &str = "snapshots";
const CF_CHECKPOINTS: &str = "checkpoints";
const ALL_CFS: [&str; 4] = [CF_EVENTS, CF_STREAMS, CF_SNAPSHOTS, CF_CHECKPOINTS];

/// Most appends one group commit takes from the queue.
const MAX_GROUP: usize = 4096;

#[derive(Debug, Clone)]
pub struct RocksOptions {
    /// Sync the WAL before acknowledging (always true in service; benchmarks may compare).
    pub sync: bool,
}

impl Default for RocksOptions {
    fn default() -> Self {
        RocksOptions { sync: true }
    }
}

pub struct RocksLog {
    db: Arc<DB>,
    path: PathBuf,
    writer: Option<std_mpsc::Sender<AppendRequest>>,
    writer_thread: Option<std::thread::JoinHandle<()>>,
    head: Arc<Mutex<Head>>,
    head_rx: watch::Receiver<Position>,
    _head_tx: Option<Arc<watch::Sender<Position>>>,
}

struct AppendRequest {
    stream: String,
    expected: ExpectedVersion,
    events: Vec<NewEvent>,
    meta: Metadata,
    reply: oneshot::Sender<Result<AppendResult, LogError>>,
}

fn cf_opts() -> Options {
    Options::default()
}

fn stream_key(stream: &str, version: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(stream.len() + 9);
    k.extend_from_slice(stream.as_bytes());
    k.push(0);
    k.extend_from_slice(&version.to_be_bytes());
    k
}

fn be_u64(bytes: &[u8]) -> Option<u64> {
    bytes.try_into().ok().map(u64::from_be_bytes)
}

impl RocksLog {
    /// Open (creating if needed) the log in `dir` for reading and writing.
    pub fn open(dir: impl AsRef<Path>, options: RocksOptions) -> Result<Self, LogError> {
        let path = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&path)
            .map_err(|e| LogError::Storage(format!("create {}: {e}", path.display())))?;
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.increase_parallelism(2);
        let cfs = ALL_CFS
            .iter()
            .map(|n| ColumnFamilyDescriptor::new(*n, cf_opts()));
        let db = Arc::new(DB::open_cf_descriptors(&opts, &path, cfs)?);
        let (head, last_micros) = read_head(&db)?;
        let head_shared = Arc::new(Mutex::new(head));
        let (head_tx, head_rx) = watch::channel(head.position);
        let head_tx = Arc::new(head_tx);
        let (tx, rx) = std_mpsc::channel::<AppendRequest>();
        let writer = Writer {
            db: db.clone(),
            sealer: Sealer::new(head, last_micros),
            versions: HashMap::new(),
            head: head_shared.clone(),
            head_tx: head_tx.clone(),
            sync: options.sync,
        };
        let thread = std::thread::Builder::new()
            .name("strata-log-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| LogError::Storage(format!("spawn writer: {e}")))?;
        Ok(RocksLog {
            db,
            path,
            writer: Some(tx),
            writer_thread: Some(thread),
            head: head_shared,
            head_rx,
            _head_tx: Some(head_tx),
        })
    }

    /// Open an existing log read-only (an auditor's copy, or beside a stopped server). Appends fail with
    /// [`LogError::ReadOnly`].
    pub fn open_read_only(dir: impl AsRef<Path>) -> Result<Self, LogError> {
        let path = dir.as_ref().to_path_buf();
        if !path.join("CURRENT").exists() {
            return Err(LogError::Storage(format!(
                "no event log in {}",
                path.display()
            )));
        }
        let opts = Options::default();
        let db = Arc::new(DB::open_cf_for_read_only(&opts, &path, ALL_CFS, false)?);
        let (head, _) = read_head(&db)?;
        let (_tx, head_rx) = watch::channel(head.position);
        Ok(RocksLog {
            db,
            path,
            writer: None,
            writer_thread: None,
            head: Arc::new(Mutex::new(head)),
            head_rx,
            _head_tx: None,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// TEST ONLY: replace the stored bytes of the event at `position` with `envelope_bytes`, bypassing the
    /// writer, the versions and the hash chain (a raw put into the `events` column family). It exists so
    /// the integrity tests can corrupt a copy of a data dir and check that the chain check names the
    /// position. Refused on a read-only log and where no event is stored. Never use it on a real log.
    #[doc(hidden)]
    pub fn overwrite_event_for_tests(
        &self,
        position: Position,
        envelope_bytes: &[u8],
    ) -> Result<(), LogError> {
        if self.writer.is_none() {
            return Err(LogError::ReadOnly);
        }
        let cf = self.cf(CF_EVENTS)?;
        let key = position.to_be_bytes();
        if self.db.get_cf(cf, key)?.is_none() {
            return Err(LogError::Storage(format!(
                "no event is stored at position {position}"
            )));
        }
        let mut opts = WriteOptions::default();
        opts.set_sync(true);
        let mut batch = WriteBatch::default();
        batch.put_cf(cf, key, envelope_bytes);
        self.db.write_opt(batch, &opts)?;
        Ok(())
    }

    fn cf(&self, name: &str) -> Result<&rocksdb::ColumnFamily, LogError> {
        self.db
            .cf_handle(name)
            .ok_or_else(|| LogError::Storage(format!("missing column family {name}")))
    }
}

impl Drop for RocksLog {
    /// Stop the writer (it finishes the group in hand) and wait for it, so the database is closed before the
    /// process exits: RocksDB aborts if its background threads are torn down under an open database.
    fn drop(&mut self) {
        self.writer.take();
        if let Some(t) = self.writer_thread.take() {
            let _ = t.join();
        }
    }
}

fn read_head(db: &DB) -> Result<(Head, i64), LogError> {
    let cf = db
        .cf_handle(CF_EVENTS)
        .ok_or_else(|| LogError::Storage("missing column family events".into()))?;
    let mut it = db.raw_iterator_cf(cf);
    it.seek_to_last();
    it.status()?;
    match (it.key(), it.value()) {
        (Some(k), Some(v)) => {
            let pos = be_u64(k).ok_or(LogError::Corrupt {
                position: 0,
                reason: "bad event key".into(),
            })?;
            let e = RecordedEvent::decode(v, pos)?;
            Ok((
                Head {
                    position: e.position,
                    hash: e.hash,
                },
                e.recorded_at.timestamp_micros(),
            ))
        }
        _ => Ok((
            Head {
                position: 0,
                hash: GENESIS_HASH,
            },
            0,
        )),
    }
}

fn current_version(db: &DB, stream: &str) -> Result<u64, LogError> {
    let cf = db
        .cf_handle(CF_STREAMS)
        .ok_or_else(|| LogError::Storage("missing column family streams".into()))?;
    let mut it = db.raw_iterator_cf(cf);
    it.seek_for_prev(stream_key(stream, u64::MAX));
    it.status()?;
    if let Some(k) = it.key() {
        let prefix_len = stream.len() + 1;
        if k.len() == prefix_len + 8
            && &k[..stream.len()] == stream.as_bytes()
            && k[stream.len()] == 0
        {
            return be_u64(&k[prefix_len..]).ok_or(LogError::Corrupt {
                position: 0,
                reason: "bad stream key".into(),
            });
        }
    }
    Ok(0)
}

struct Writer {
    db: Arc<DB>,
    sealer: Sealer,
    /// Stream versions as of everything sealed so far (the writer is the only one that changes them).
    versions: HashMap<String, u64>,
    head: Arc<Mutex<Head>>,
    head_tx: Arc<watch::Sender<Position>>,
    sync: bool,
}

struct Accepted {
    reply: oneshot::Sender<Result<AppendResult, LogError>>,
    result: AppendResult,
}

/// The group being filled by the sealing thread, taken whole by the disk thread whenever it is free: all
/// appends sealed during one fsync share the next one, with no polling.
#[derive(Default)]
struct Handoff {
    open: Mutex<Option<Group>>,
    ready: parking_lot::Condvar,
    closed: std::sync::atomic::AtomicBool,
}

/// A sealed group of appends on its way to the disk.
struct Group {
    batch: WriteBatch,
    accepted: Vec<Accepted>,
    head: Head,
}

impl Writer {
    /// Two stages: this thread checks versions and seals the next group while a second thread writes and
    /// fsyncs the previous one, so sealing overlaps the disk. Groups reach the disk in sealing order.
    /// After a failed write the log refuses every further append (the process must be restarted, and
    /// then reads the truth from disk), because later groups were sealed on top of the failed one.
    fn run(mut self, rx: std_mpsc::Receiver<AppendRequest>) {
        let handoff = Arc::new(Handoff::default());
        let failed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let disk = {
            let (db, head, head_tx, sync, failed, handoff) = (
                self.db.clone(),
                self.head.clone(),
                self.head_tx.clone(),
                self.sync,
                failed.clone(),
                handoff.clone(),
            );
            std::thread::Builder::new()
                .name("strata-log-sync".into())
                .spawn(move || write_groups(&db, &handoff, &head, &head_tx, sync, &failed))
        };
        let disk = match disk {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, "cannot start the log's disk thread");
                return;
            }
        };
        while let Ok(first) = rx.recv() {
            let mut group = vec![first];
            while group.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(r) => group.push(r),
                    Err(_) => break,
                }
            }
            if failed.load(std::sync::atomic::Ordering::SeqCst) {
                for r in group {
                    let _ = r.reply.send(Err(LogError::Storage(
                        "an earlier write failed; restart the service".into(),
                    )));
                }
                continue;
            }
            {
                let mut open = handoff.open.lock();
                self.seal_into(group, &mut open);
            }
            handoff.ready.notify_one();
        }
        {
            let _open = handoff.open.lock();
            handoff
                .closed
                .store(true, std::sync::atomic::Ordering::SeqCst);
        }
        handoff.ready.notify_one();
        let _ = disk.join();
        tracing::debug!("event log writer stopped");
    }

    fn version_of(
        &mut self,
        stream: &str,
        pending: &HashMap<String, u64>,
    ) -> Result<u64, LogError> {
        if let Some(v) = pending.get(stream).or_else(|| self.versions.get(stream)) {
            return Ok(*v);
        }
        let v = current_version(&self.db, stream)?;
        self.versions.insert(stream.to_string(), v);
        Ok(v)
    }

    /// Check each append's expected version (answering conflicts at once) and seal the accepted ones into
    /// one write batch.
    fn seal_into(&mut self, group: Vec<AppendRequest>, open: &mut Option<Group>) {
        let db = self.db.clone();
        let (Some(cf_events), Some(cf_streams)) =
            (db.cf_handle(CF_EVENTS), db.cf_handle(CF_STREAMS))
        else {
            for r in group {
                let _ = r
                    .reply
                    .send(Err(LogError::Storage("missing column families".into())));
            }
            return;
        };
        let mut pending: HashMap<String, u64> = HashMap::new();
        let g = open.get_or_insert_with(|| Group {
            batch: WriteBatch::default(),
            accepted: Vec::new(),
            head: self.sealer.head,
        });
        for req in group {
            let current = match self.version_of(&req.stream, &pending) {
                Ok(v) => v,
                Err(e) => {
                    let _ = req.reply.send(Err(e));
                    continue;
                }
            };
            if let ExpectedVersion::Exact(v) = req.expected {
                if v != current {
                    let _ = req.reply.send(Err(LogError::Conflict {
                        stream: req.stream,
                        expected: req.expected.to_string(),
                        actual: current,
                    }));
                    continue;
                }
            }
            let sealed = self
                .sealer
                .seal(&req.stream, current + 1, req.events, &req.meta, false);
            let first_position = sealed[0].position;
            let mut last = (first_position, current);
            for s in &sealed {
                g.batch
                    .put_cf(cf_events, s.position.to_be_bytes(), &s.bytes);
                g.batch.put_cf(
                    cf_streams,
                    stream_key(&req.stream, s.stream_version),
                    s.position.to_be_bytes(),
                );
                last = (s.position, s.stream_version);
            }
            pending.insert(req.stream, last.1);
            g.accepted.push(Accepted {
                reply: req.reply,
                result: AppendResult {
                    first_position,
                    last_position: last.0,
                    stream_version: last.1,
                },
            });
        }
        g.head = self.sealer.head;
        if g.accepted.is_empty() {
            *open = None;
        }
        self.versions.extend(pending);
    }
}

/// The disk stage: write each group with the WAL synced, then publish the new head and answer.
fn write_groups(
    db: &DB,
    handoff: &Handoff,
    head: &Mutex<Head>,
    head_tx: &watch::Sender<Position>,
    sync: bool,
    failed: &std::sync::atomic::AtomicBool,
) {
    let mut wo = WriteOptions::default();
    wo.set_sync(sync);
    loop {
        let g = {
            let mut open = handoff.open.lock();
            while open.is_none() && !handoff.closed.load(std::sync::atomic::Ordering::SeqCst) {
                handoff.ready.wait(&mut open);
            }
            match open.take() {
                Some(g) => g,
                None => return,
            }
        };
        if failed.load(std::sync::atomic::Ordering::SeqCst) {
            for a in g.accepted {
                let _ = a.reply.send(Err(LogError::Storage(
                    "an earlier write failed; nothing was appended".into(),
                )));
            }
            continue;
        }
        match db.write_opt(g.batch, &wo) {
            Ok(()) => {
                *head.lock() = g.head;
                head_tx.send_replace(g.head.position);
                for a in g.accepted {
                    let _ = a.reply.send(Ok(a.result));
                }
            }
            Err(e) => {
                failed.store(true, std::sync::atomic::Ordering::SeqCst);
                tracing::error!(error = %e, "event log write failed; nothing in this group was appended");
                let err = LogError::from(e);
                for a in g.accepted {
                    let _ = a.reply.send(Err(err.clone()));
                }
            }
        }
    }
}

#[async_trait]
impl EventLog for RocksLog {
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
        let Some(writer) = &self.writer else {
            return Err(LogError::ReadOnly);
        };
        let (reply, rx) = oneshot::channel();
        let req = AppendRequest {
            stream: stream.to_string(),
            expected,
            events,
            meta,
            reply,
        };
        writer.send(req).map_err(|_| LogError::Closed)?;
        rx.await.map_err(|_| LogError::Closed)?
    }

    async fn read_stream(
        &self,
        stream: &str,
        from_version: u64,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        validate_stream_id(stream)?;
        let cf_streams = self.cf(CF_STREAMS)?;
        let cf_events = self.cf(CF_EVENTS)?;
        let mut it = self.db.raw_iterator_cf(cf_streams);
        it.seek(stream_key(stream, from_version.max(1)));
        let mut positions = Vec::new();
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            if k.len() != stream.len() + 9
                || &k[..stream.len()] != stream.as_bytes()
                || k[stream.len()] != 0
            {
                break;
            }
            positions.push(be_u64(v).ok_or(LogError::Corrupt {
                position: 0,
                reason: "bad stream index".into(),
            })?);
            it.next();
        }
        it.status()?;
        let mut out = Vec::with_capacity(positions.len());
        for (p, bytes) in positions.iter().zip(self.db.batched_multi_get_cf(
            cf_events,
            positions.iter().map(|p| p.to_be_bytes()),
            true,
        )) {
            let bytes = bytes?.ok_or(LogError::Corrupt {
                position: *p,
                reason: "indexed event missing".into(),
            })?;
            out.push(RecordedEvent::decode(&bytes, *p)?);
        }
        Ok(out)
    }

    async fn stream_version(&self, stream: &str) -> Result<u64, LogError> {
        validate_stream_id(stream)?;
        current_version(&self.db, stream)
    }

    async fn read_all(&self, from: Position, max: usize) -> Result<Vec<RecordedEvent>, LogError> {
        let cf = self.cf(CF_EVENTS)?;
        let from = from.max(1);
        let mut it = self.db.raw_iterator_cf(cf);
        it.seek(from.to_be_bytes());
        // Room for what the head says is there, not `max`: a follower at the head asks for thousands and gets
        // one or two, and a large reservation is an mmap and page faults on every call.
        let available = (self.head.lock().position + 1).saturating_sub(from);
        let mut out = Vec::with_capacity(max.min(available as usize).clamp(1, 8192));
        while out.len() < max {
            let (Some(k), Some(v)) = (it.key(), it.value()) else {
                break;
            };
            let pos = be_u64(k).ok_or(LogError::Corrupt {
                position: 0,
                reason: "bad event key".into(),
            })?;
            out.push(RecordedEvent::decode(v, pos)?);
            it.next();
        }
        it.status()?;
        Ok(out)
    }

    async fn head(&self) -> Result<Head, LogError> {
        Ok(*self.head.lock())
    }

    fn watch_head(&self) -> watch::Receiver<Position> {
        self.head_rx.clone()
    }

    async fn save_snapshot(&self, stream: &str, snapshot: Snapshot) -> Result<(), LogError> {
        if self.writer.is_none() {
            return Err(LogError::ReadOnly);
        }
        let msg = pb::Snapshot {
            stream_id: stream.to_string(),
            version: snapshot.version,
            schema: snapshot.schema,
            state: snapshot.state,
        };
        self.db.put_cf(
            self.cf(CF_SNAPSHOTS)?,
            stream.as_bytes(),
            msg.encode_to_vec(),
        )?;
        Ok(())
    }

    async fn load_snapshot(&self, stream: &str) -> Result<Option<Snapshot>, LogError> {
        let Some(bytes) = self.db.get_cf(self.cf(CF_SNAPSHOTS)?, stream.as_bytes())? else {
            return Ok(None);
        };
        let msg = pb::Snapshot::decode(bytes.as_slice()).map_err(|e| LogError::Corrupt {
            position: 0,
            reason: format!("snapshot of {stream}: {e}"),
        })?;
        Ok(Some(Snapshot {
            version: msg.version,
            schema: msg.schema,
            state: msg.state,
        }))
    }

    async fn save_checkpoint(&self, name: &str, checkpoint: Checkpoint) -> Result<(), LogError> {
        if self.writer.is_none() {
            return Err(LogError::ReadOnly);
        }
        let msg = pb::ProjectionCheckpoint {
            name: name.to_string(),
            version: checkpoint.version,
            position: checkpoint.position,
            state: checkpoint.state,
        };
        self.db.put_cf(
            self.cf(CF_CHECKPOINTS)?,
            name.as_bytes(),
            msg.encode_to_vec(),
        )?;
        Ok(())
    }

    async fn load_checkpoint(&self, name: &str) -> Result<Option<Checkpoint>, LogError> {
        let Some(bytes) = self.db.get_cf(self.cf(CF_CHECKPOINTS)?, name.as_bytes())? else {
            return Ok(None);
        };
        let msg =
            pb::ProjectionCheckpoint::decode(bytes.as_slice()).map_err(|e| LogError::Corrupt {
                position: 0,
                reason: format!("checkpoint {name}: {e}"),
            })?;
        Ok(Some(Checkpoint {
            version: msg.version,
            position: msg.position,
            state: msg.state,
        }))
    }
}
