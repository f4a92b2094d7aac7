//! Running projections: load checkpoint, catch up, follow the log live, save checkpoints.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use futures::StreamExt;
use serde::{de::DeserializeOwned, Serialize};
use sha2::{Digest, Sha256};
use strata_events::{Checkpoint, EventLog, LogError, Position, RecordedEvent};
use thiserror::Error;
use tokio::sync::watch;

#[derive(Debug, Error)]
pub enum ProjectionError {
    #[error("event log: {0}")]
    Log(#[from] LogError),
    #[error("cannot encode or decode the state of projection {name}: {reason}")]
    State { name: &'static str, reason: String },
}

/// A read model fed by the log. `handle` must be deterministic and must skip event types it does not know.
///
/// Readers get immutable snapshots (see [`Live::snapshot`]), so `Clone` must be cheap: a view keeps its large
/// collections in persistent structures (`imbl::OrdMap`, `OrdSet`, `Vector`), whose clones share their nodes.
pub trait Projection:
    Clone + Default + Serialize + DeserializeOwned + Send + Sync + 'static
{
    const NAME: &'static str;
    /// Bump when `handle` or the state's shape changes: the projection is then rebuilt from position 0.
    const VERSION: u32;

    fn handle(&mut self, event: &RecordedEvent);

    /// Canonical encoding of the state (ordered maps make it deterministic).
    fn encode_state(&self) -> Result<Vec<u8>, ProjectionError> {
        serde_json::to_vec(self).map_err(|e| ProjectionError::State {
            name: Self::NAME,
            reason: e.to_string(),
        })
    }

    fn decode_state(bytes: &[u8]) -> Result<Self, ProjectionError> {
        serde_json::from_slice(bytes).map_err(|e| ProjectionError::State {
            name: Self::NAME,
            reason: e.to_string(),
        })
    }

    /// SHA-256 of the canonical encoding: equal digests mean equal read models.
    fn digest(&self) -> Result<[u8; 32], ProjectionError> {
        Ok(Sha256::digest(self.encode_state()?).into())
    }
}

/// The event as service `service`'s event type `E`, or `None` for other services' events. An event of the
/// service that does not decode is logged and counted in `undecodable` (so a rebuild counts it the same way)
/// and skipped: stored data never stops a projection.
pub fn decode_service_event<E: strata_proto::codec::DomainEvent>(
    event: &RecordedEvent,
    service: &str,
    undecodable: &mut u64,
) -> Option<E> {
    let ours = event
        .event_type
        .strip_prefix(service)
        .is_some_and(|rest| rest.starts_with('.'));
    if !ours {
        return None;
    }
    match E::decode(&event.event_type, &event.payload) {
        Ok(ev) => Some(ev),
        Err(err) => {
            tracing::error!(position = event.position, service, error = %err, "projection skips an undecodable event");
            *undecodable += 1;
            None
        }
    }
}

/// The aggregate id of an event's stream: the stream id after its kind (`project-<id>` -> `<id>`).
pub fn aggregate_id(event: &RecordedEvent) -> String {
    event
        .stream_id
        .split_once('-')
        .map(|(_, id)| id.to_string())
        .unwrap_or_default()
}

#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// Save a checkpoint after this many events ...
    pub checkpoint_every_events: u64,
    /// ... or after this much time with unsaved events.
    pub checkpoint_every: Duration,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        RunnerConfig {
            checkpoint_every_events: 10_000,
            checkpoint_every: Duration::from_secs(5),
        }
    }
}

/// One consistent state of a read model: immutable, and holding no lock. A request or an agent step takes
/// one snapshot and passes it down to everything it calls, so it reads a single state of the view, and
/// nothing it does (another read, an `.await`, a wait for a later position) can block the projection or be
/// blocked by it.
pub type Snapshot<P> = Arc<P>;

/// A running projection: its latest published snapshot, and the log position it has reached.
pub struct Live<P: Projection> {
    current: Arc<ArcSwap<P>>,
    position: watch::Receiver<Position>,
}

impl<P: Projection> Clone for Live<P> {
    fn clone(&self) -> Self {
        Live {
            current: self.current.clone(),
            position: self.position.clone(),
        }
    }
}

const READ_BATCH: usize = 4096;

/// Read events `from..=until` (to the head when `until` is `None`) in batches on a separate task, so that
/// reading and decoding overlap with applying them (replay uses both cores).
fn prefetch(
    log: Arc<dyn EventLog>,
    from: Position,
    until: Option<Position>,
) -> tokio::sync::mpsc::Receiver<Result<Vec<RecordedEvent>, LogError>> {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        let mut next = from;
        loop {
            let max = match until {
                Some(u) if next > u => break,
                Some(u) => READ_BATCH.min((u - next + 1) as usize),
                None => READ_BATCH,
            };
            match log.read_all(next, max).await {
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    break;
                }
                Ok(batch) => {
                    let Some(last) = batch.last().map(|e| e.position) else {
                        break;
                    };
                    if tx.send(Ok(batch)).await.is_err() {
                        break;
                    }
                    next = last + 1;
                }
            }
        }
    });
    rx
}

/// Apply every prefetched event to `model`; returns the last position applied (or `position` if none).
async fn apply_all<P: Projection>(
    model: &mut P,
    mut position: Position,
    mut rx: tokio::sync::mpsc::Receiver<Result<Vec<RecordedEvent>, LogError>>,
) -> Result<Position, ProjectionError> {
    while let Some(batch) = rx.recv().await {
        for e in &batch? {
            model.handle(e);
            position = e.position;
        }
    }
    Ok(position)
}

/// Load the checkpointed state (or start from zero when there is none or its version differs) and apply
/// every event up to the current head. Returns the model and the position reached.
pub async fn catch_up<P: Projection>(
    log: &Arc<dyn EventLog>,
) -> Result<(P, Position), ProjectionError> {
    let (mut model, position) = match log.load_checkpoint(P::NAME).await? {
        Some(c) if c.version == P::VERSION => (P::decode_state(&c.state)?, c.position),
        Some(c) => {
            tracing::info!(
                projection = P::NAME,
                from = c.version,
                to = P::VERSION,
                "projection version changed; rebuilding from position 0"
            );
            (P::default(), 0)
        }
        None => (P::default(), 0),
    };
    let position = apply_all(
        &mut model,
        position,
        prefetch(log.clone(), position + 1, None),
    )
    .await?;
    Ok((model, position))
}

/// Build the projection from position 0 up to `until` (inclusive), without touching any stored checkpoint.
pub async fn rebuild<P: Projection>(
    log: &Arc<dyn EventLog>,
    until: Position,
) -> Result<P, ProjectionError> {
    let mut model = P::default();
    apply_all(&mut model, 0, prefetch(log.clone(), 1, Some(until))).await?;
    Ok(model)
}

async fn save<P: Projection>(
    log: &dyn EventLog,
    model: &P,
    position: Position,
) -> Result<(), ProjectionError> {
    let state = model.encode_state()?;
    log.save_checkpoint(
        P::NAME,
        Checkpoint {
            version: P::VERSION,
            position,
            state,
        },
    )
    .await?;
    Ok(())
}

impl<P: Projection> Live<P> {
    /// Catch up to the head, then follow the log in a background task on the current tokio runtime.
    ///
    /// The task owns the model: it applies each batch of events to its own copy, then publishes a clone
    /// (cheap: the view's collections are persistent) as the new snapshot, and only then announces the
    /// position. Readers never wait for it and it never waits for readers.
    pub async fn start(
        log: Arc<dyn EventLog>,
        config: RunnerConfig,
    ) -> Result<Self, ProjectionError> {
        let (mut model, position) = catch_up::<P>(&log).await?;
        save(log.as_ref(), &model, position).await?;
        let current = Arc::new(ArcSwap::from_pointee(model.clone()));
        let (tx, rx) = watch::channel(position);
        let published = current.clone();
        tokio::spawn(async move {
            let mut events =
                strata_events::follow(log.clone(), position + 1, P::NAME).ready_chunks(READ_BATCH);
            let mut unsaved = 0u64;
            let mut last_save = Instant::now();
            let mut reached = position;
            loop {
                let next = if unsaved > 0 {
                    let wait = config.checkpoint_every.saturating_sub(last_save.elapsed());
                    match tokio::time::timeout(wait, events.next()).await {
                        Ok(n) => n,
                        Err(_) => {
                            if let Err(e) = save(log.as_ref(), &model, reached).await {
                                tracing::warn!(projection = P::NAME, error = %e, "checkpoint failed");
                            }
                            unsaved = 0;
                            last_save = Instant::now();
                            continue;
                        }
                    }
                } else {
                    events.next().await
                };
                let Some(batch) = next else { break };
                for e in &batch {
                    model.handle(e);
                    reached = e.position;
                    unsaved += 1;
                }
                published.store(Arc::new(model.clone()));
                tx.send_replace(reached);
                if unsaved >= config.checkpoint_every_events
                    || last_save.elapsed() >= config.checkpoint_every
                {
                    if let Err(e) = save(log.as_ref(), &model, reached).await {
                        tracing::warn!(projection = P::NAME, error = %e, "checkpoint failed");
                    }
                    unsaved = 0;
                    last_save = Instant::now();
                }
            }
        });
        Ok(Live {
            current,
            position: rx,
        })
    }

    /// A model that does not follow the log (offline tools over a read-only log or a copied data dir).
    pub fn fixed(model: P, position: Position) -> Self {
        let (_tx, rx) = watch::channel(position);
        Live {
            current: Arc::new(ArcSwap::from_pointee(model)),
            position: rx,
        }
    }

    /// The latest published state of the model (see [`Snapshot`]): take it once per request or step and
    /// pass it down rather than asking again, so everything reads the same state.
    pub fn snapshot(&self) -> Snapshot<P> {
        self.current.load_full()
    }

    pub fn position(&self) -> Position {
        *self.position.borrow()
    }

    /// Wait (at most `timeout`) until the model has applied the event at `position`. Returns whether it did.
    pub async fn wait_for(&self, position: Position, timeout: Duration) -> bool {
        let mut rx = self.position.clone();
        let reached = tokio::time::timeout(timeout, rx.wait_for(|p| *p >= position)).await;
        matches!(reached, Ok(Ok(_)))
    }
}
