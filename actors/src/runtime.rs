//! The actix runtime for aggregates: one actor per live aggregate, activated on demand from its snapshot and
//! the events after it, handling one command at a time, appending with the expected stream version,
//! reloading and re-deciding when it loses a race, snapshotting every N events, and stopping when idle.
//!
//! Actors live on a small pool of arbiters owned by the [`Runtime`] (their own threads and actix system), so
//! callers on any thread or runtime (actix-web workers, tokio tests, CLI tools) can use a [`Repository`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use parking_lot::Mutex;
use strata_events::{EventLog, ExpectedVersion, LogError, Metadata, NewEvent, Position, Snapshot};
use thiserror::Error;

use crate::aggregate::{replay, Aggregate, CodecError, DomainError, DomainEvent};

#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// An actor with no command for this long stops; its next command re-activates it.
    pub idle_timeout: Duration,
    /// Save a snapshot once this many events were applied since the last one.
    pub snapshot_every: u64,
    /// How often a command is re-decided after losing an append race before giving up.
    pub max_conflict_retries: u32,
    /// Number of arbiter threads hosting actors.
    pub arbiters: usize,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            idle_timeout: Duration::from_secs(300),
            snapshot_every: 100,
            max_conflict_retries: 8,
            arbiters: 2,
        }
    }
}

/// Why a command did not produce events.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum CommandError {
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error("event log: {0}")]
    Log(#[from] LogError),
    #[error("stored event: {0}")]
    Codec(#[from] CodecError),
    #[error("gave up after {0} conflicting concurrent writes")]
    Contention(u32),
    #[error("aggregate actor unavailable: {0}")]
    Unavailable(String),
}

/// A handled command: the events it recorded, the state after them, and the log position a reader must
/// reach to see them (`None` when the command changed nothing).
#[derive(Debug, Clone)]
pub struct Outcome<A: Aggregate> {
    pub events: Vec<A::Event>,
    pub state: A,
    pub version: u64,
    pub position: Option<Position>,
}

/// The shared machinery: the log, the arbiters actors run on, and the configuration.
pub struct Runtime {
    log: Arc<dyn EventLog>,
    /// One actor registry per aggregate type, shared by every `Repository` of that type, so one process never
    /// runs two actors (with two in-memory states) for the same stream.
    registries: Mutex<HashMap<std::any::TypeId, Box<dyn std::any::Any + Send + Sync>>>,
    arbiters: Vec<ArbiterHandle>,
    config: RuntimeConfig,
    system: System,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Runtime {
    /// Start the actor threads. Works from inside or outside an actix system.
    pub fn start(log: Arc<dyn EventLog>, config: RuntimeConfig) -> Arc<Self> {
        let n = config.arbiters.max(1);
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("strata-actors".into())
            .spawn(move || {
                let system = System::new();
                system.block_on(async move {
                    let mut handles = vec![Arbiter::current()];
                    for _ in 1..n {
                        let a = Arbiter::new();
                        handles.push(a.handle());
                        // The arbiter keeps running after its owner value is dropped.
                        std::mem::forget(a);
                    }
                    let _ = tx.send((handles, System::current()));
                });
                if let Err(e) = system.run() {
                    tracing::error!(error = %e, "actor system stopped");
                }
            })
            .expect("spawning the actor thread at start-up");
        let (arbiters, system) = rx
            .recv()
            .expect("actor system sends its arbiters at start-up");
        Arc::new(Runtime {
            log,
            registries: Mutex::new(HashMap::new()),
            arbiters,
            config,
            system,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Stop every actor and wait for the actor threads to end (commands in flight are answered with
    /// `Unavailable`). Used at shutdown so the log can close cleanly.
    pub fn shutdown(&self) {
        for a in &self.arbiters[1..] {
            a.stop();
        }
        self.system.stop();
        if let Some(t) = self.thread.lock().take() {
            let _ = t.join();
        }
    }

    pub fn log(&self) -> &Arc<dyn EventLog> {
        &self.log
    }

    pub fn config(&self) -> &RuntimeConfig {
        &self.config
    }

    fn arbiter_for(&self, key: &str) -> &ArbiterHandle {
        let h = key
            .bytes()
            .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64));
        &self.arbiters[(h % self.arbiters.len() as u64) as usize]
    }
}

type Registry<A> = Arc<Mutex<HashMap<String, Addr<AggregateActor<A>>>>>;

/// The entry point for commands to aggregates of one type. Finds or activates the aggregate's actor.
pub struct Repository<A: Aggregate> {
    runtime: Arc<Runtime>,
    live: Registry<A>,
}

impl<A: Aggregate> Clone for Repository<A> {
    fn clone(&self) -> Self {
        Repository {
            runtime: self.runtime.clone(),
            live: self.live.clone(),
        }
    }
}

impl<A: Aggregate> Repository<A> {
    pub fn new(runtime: Arc<Runtime>) -> Self {
        let live = {
            let mut regs = runtime.registries.lock();
            regs.entry(std::any::TypeId::of::<A>())
                .or_insert_with(|| Box::new(Registry::<A>::default()))
                .downcast_ref::<Registry<A>>()
                .cloned()
                .expect("registry type matches its TypeId key")
        };
        Repository { runtime, live }
    }

    /// Number of aggregates of this type with a live actor.
    pub fn live_count(&self) -> usize {
        self.live.lock().len()
    }

    fn actor(&self, id: &str) -> Addr<AggregateActor<A>> {
        let mut live = self.live.lock();
        if let Some(addr) = live.get(id) {
            if addr.connected() {
                return addr.clone();
            }
        }
        let actor = AggregateActor::<A> {
            id: id.to_string(),
            stream: A::stream_id(id),
            log: self.runtime.log.clone(),
            config: self.runtime.config.clone(),
            loaded: None,
            snapshot_version: 0,
            last_used: Instant::now(),
            registry: self.live.clone(),
        };
        let addr = AggregateActor::start_in_arbiter(self.runtime.arbiter_for(id), move |_| actor);
        live.insert(id.to_string(), addr.clone());
        addr
    }

    /// Run `cmd` against aggregate `id`.
    pub async fn execute(
        &self,
        id: &str,
        cmd: A::Command,
        meta: Metadata,
    ) -> Result<Outcome<A>, CommandError> {
        // An actor may stop (idle) between lookup and delivery; then a fresh one is activated.
        for _ in 0..3 {
            let addr = self.actor(id);
            match addr
                .send(Execute::<A> {
                    cmd: cmd.clone(),
                    meta: meta.clone(),
                })
                .await
            {
                Ok(result) => return result,
                Err(MailboxError::Closed) => {
                    self.live.lock().remove(id);
                    continue;
                }
                Err(e) => return Err(CommandError::Unavailable(e.to_string())),
            }
        }
        Err(CommandError::Unavailable(format!(
            "actor for {id} kept stopping"
        )))
    }

    /// The aggregate's current state and version, through its actor (so it is never older than a write
    /// this caller saw acknowledged).
    pub async fn load(&self, id: &str) -> Result<(A, u64), CommandError> {
        for _ in 0..3 {
            match self
                .actor(id)
                .send(Load::<A>(std::marker::PhantomData))
                .await
            {
                Ok(result) => return result,
                Err(MailboxError::Closed) => {
                    self.live.lock().remove(id);
                }
                Err(e) => return Err(CommandError::Unavailable(e.to_string())),
            }
        }
        Err(CommandError::Unavailable(format!(
            "actor for {id} kept stopping"
        )))
    }
}

/// Rebuild an aggregate from its snapshot (if any, and of the current schema) plus the events after it.
pub async fn load_aggregate<A: Aggregate>(
    log: &dyn EventLog,
    stream: &str,
) -> Result<(A, u64, u64), CommandError> {
    let mut state = A::default();
    let mut version = 0;
    if let Some(snap) = log.load_snapshot(stream).await? {
        if snap.schema == A::SNAPSHOT_SCHEMA {
            match serde_json::from_slice::<A>(&snap.state) {
                Ok(s) => {
                    state = s;
                    version = snap.version;
                }
                Err(e) => {
                    tracing::warn!(stream, error = %e, "ignoring unreadable snapshot; replaying from the start")
                }
            }
        }
    }
    let snapshot_version = version;
    let tail = log.read_stream(stream, version + 1).await?;
    if let Some(last) = tail.last() {
        version = last.stream_version;
    }
    let state = replay(state, &tail)?;
    Ok((state, version, snapshot_version))
}

struct AggregateActor<A: Aggregate> {
    id: String,
    stream: String,
    log: Arc<dyn EventLog>,
    config: RuntimeConfig,
    /// State and version, once activated.
    loaded: Option<(A, u64)>,
    snapshot_version: u64,
    last_used: Instant,
    registry: Registry<A>,
}

impl<A: Aggregate> Actor for AggregateActor<A> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let idle = self.config.idle_timeout;
        ctx.run_interval(idle / 2 + Duration::from_millis(1), move |act, ctx| {
            if act.last_used.elapsed() >= idle {
                ctx.stop();
            }
        });
    }

    fn stopped(&mut self, ctx: &mut Self::Context) {
        let me = ctx.address();
        let mut live = self.registry.lock();
        if live.get(&self.id).is_some_and(|a| *a == me) {
            live.remove(&self.id);
        }
    }
}

#[derive(Message)]
#[rtype(result = "Result<Outcome<A>, CommandError>")]
struct Execute<A: Aggregate> {
    cmd: A::Command,
    meta: Metadata,
}

#[derive(Message)]
#[rtype(result = "Result<(A, u64), CommandError>")]
struct Load<A: Aggregate>(std::marker::PhantomData<A>);

/// What one command's async work hands back to the actor: the state to keep, and the caller's answer.
struct Finished<A: Aggregate> {
    keep: Option<(A, u64, u64)>,
    result: Result<Outcome<A>, CommandError>,
}

impl<A: Aggregate> AggregateActor<A> {
    async fn ensure_loaded(
        log: &dyn EventLog,
        stream: &str,
        loaded: Option<(A, u64)>,
        snapshot_version: u64,
    ) -> Result<(A, u64, u64), CommandError> {
        match loaded {
            Some((s, v)) => Ok((s, v, snapshot_version)),
            None => load_aggregate::<A>(log, stream).await,
        }
    }

    fn finish(&mut self, f: Finished<A>) -> Result<Outcome<A>, CommandError> {
        if let Some((state, version, snap)) = f.keep {
            self.snapshot_version = snap;
            if version >= self.snapshot_version + self.config.snapshot_every {
                self.snapshot_version = version;
                self.save_snapshot(&state, version);
            }
            self.loaded = Some((state, version));
        }
        f.result
    }

    fn save_snapshot(&self, state: &A, version: u64) {
        let log = self.log.clone();
        let stream = self.stream.clone();
        match serde_json::to_vec(state) {
            Ok(bytes) => {
                actix::spawn(async move {
                    let snap = Snapshot {
                        version,
                        schema: A::SNAPSHOT_SCHEMA,
                        state: bytes,
                    };
                    if let Err(e) = log.save_snapshot(&stream, snap).await {
                        tracing::warn!(stream, error = %e, "saving snapshot failed; it will be retried later");
                    }
                });
            }
            Err(e) => tracing::warn!(stream = self.stream, error = %e, "snapshot encoding failed"),
        }
    }
}

impl<A: Aggregate> Handler<Execute<A>> for AggregateActor<A> {
    type Result = AtomicResponse<Self, Result<Outcome<A>, CommandError>>;

    fn handle(&mut self, msg: Execute<A>, _ctx: &mut Self::Context) -> Self::Result {
        self.last_used = Instant::now();
        let log = self.log.clone();
        let stream = self.stream.clone();
        let loaded = self.loaded.clone();
        let was_cached = loaded.is_some();
        let snapshot_version = self.snapshot_version;
        let retries = self.config.max_conflict_retries;
        let work = async move {
            let (mut state, mut version, snap) =
                match Self::ensure_loaded(log.as_ref(), &stream, loaded, snapshot_version).await {
                    Ok(l) => l,
                    Err(e) => {
                        return Finished {
                            keep: None,
                            result: Err(e),
                        }
                    }
                };
            let mut attempt = 0;
            // A cached state may be behind the log when another process (or tool) wrote the stream; before
            // refusing a command or answering that it changes nothing, make sure the decision saw the last
            // event.
            let mut verified = !was_cached;
            loop {
                let decided = state.decide(&msg.cmd);
                if !verified && !matches!(&decided, Ok(ev) if !ev.is_empty()) {
                    verified = true;
                    match log.stream_version(&stream).await {
                        Ok(v) if v != version => {
                            match log.read_stream(&stream, version + 1).await {
                                Ok(tail) => {
                                    if let Some(last) = tail.last() {
                                        version = last.stream_version;
                                    }
                                    match replay(state, &tail) {
                                        Ok(s) => state = s,
                                        Err(e) => {
                                            return Finished {
                                                keep: None,
                                                result: Err(e.into()),
                                            }
                                        }
                                    }
                                    continue;
                                }
                                Err(e) => {
                                    return Finished {
                                        keep: None,
                                        result: Err(e.into()),
                                    }
                                }
                            }
                        }
                        Ok(_) => {}
                        Err(e) => {
                            return Finished {
                                keep: None,
                                result: Err(e.into()),
                            }
                        }
                    }
                }
                let events = match decided {
                    Ok(ev) => ev,
                    Err(e) => {
                        return Finished {
                            keep: Some((state, version, snap)),
                            result: Err(e.into()),
                        }
                    }
                };
                if events.is_empty() {
                    let outcome = Outcome {
                        events,
                        state: state.clone(),
                        version,
                        position: None,
                    };
                    return Finished {
                        keep: Some((state, version, snap)),
                        result: Ok(outcome),
                    };
                }
                let new: Vec<NewEvent> = events
                    .iter()
                    .map(|e| NewEvent::new(e.event_type(), e.encode()))
                    .collect();
                match log
                    .append(
                        &stream,
                        ExpectedVersion::Exact(version),
                        new,
                        msg.meta.clone(),
                    )
                    .await
                {
                    Ok(r) => {
                        for e in &events {
                            state = state.apply(e);
                        }
                        version = r.stream_version;
                        let outcome = Outcome {
                            events,
                            state: state.clone(),
                            version,
                            position: Some(r.last_position),
                        };
                        return Finished {
                            keep: Some((state, version, snap)),
                            result: Ok(outcome),
                        };
                    }
                    Err(LogError::Conflict { .. }) if attempt < retries => {
                        // Someone else wrote this stream (another node, a tool): catch up and decide again.
                        attempt += 1;
                        let tail = match log.read_stream(&stream, version + 1).await {
                            Ok(t) => t,
                            Err(e) => {
                                return Finished {
                                    keep: None,
                                    result: Err(e.into()),
                                }
                            }
                        };
                        if let Some(last) = tail.last() {
                            version = last.stream_version;
                        }
                        state = match replay(state, &tail) {
                            Ok(s) => s,
                            Err(e) => {
                                return Finished {
                                    keep: None,
                                    result: Err(e.into()),
                                }
                            }
                        };
                    }
                    Err(LogError::Conflict { .. }) => {
                        return Finished {
                            keep: None,
                            result: Err(CommandError::Contention(attempt)),
                        }
                    }
                    Err(e) => {
                        return Finished {
                            keep: None,
                            result: Err(e.into()),
                        }
                    }
                }
            }
        };
        AtomicResponse::new(Box::pin(
            work.into_actor(self).map(|f, act, _| act.finish(f)),
        ))
    }
}

impl<A: Aggregate> Handler<Load<A>> for AggregateActor<A> {
    type Result = AtomicResponse<Self, Result<(A, u64), CommandError>>;

    fn handle(&mut self, _msg: Load<A>, _ctx: &mut Self::Context) -> Self::Result {
        self.last_used = Instant::now();
        let log = self.log.clone();
        let stream = self.stream.clone();
        let loaded = self.loaded.clone();
        let snapshot_version = self.snapshot_version;
        let work = async move {
            match Self::ensure_loaded(log.as_ref(), &stream, loaded, snapshot_version).await {
                Ok((s, v, snap)) => Finished {
                    keep: Some((s.clone(), v, snap)),
                    result: Ok(Outcome {
                        events: vec![],
                        state: s,
                        version: v,
                        position: None,
                    }),
                },
                Err(e) => Finished {
                    keep: None,
                    result: Err(e),
                },
            }
        };
        AtomicResponse::new(Box::pin(
            work.into_actor(self)
                .map(|f, act, _| act.finish(f).map(|o| (o.state, o.version))),
        ))
    }
}
