//! Every aggregate type by its stream kind, so tools that know nothing of a service (the audit API,
//! point-in-time state, timelines) can rebuild any stream's state with the aggregate's own pure `apply`.
//!
//! A service lists its aggregates once, in its own module (`AGGREGATES`); [`all`] chains those lists. A new
//! service adds its list there and is covered by every generic reader without further code.

use strata_events::RecordedEvent;
use thiserror::Error;

use crate::aggregate::{Aggregate, CodecError, DomainEvent};

#[derive(Debug, Error)]
pub enum FoldError {
    #[error("stored event: {0}")]
    Codec(#[from] CodecError),
    #[error("state encoding: {0}")]
    State(#[from] serde_json::Error),
}

/// A state (the aggregate's JSON encoding, as in snapshots; `None`: the initial state) and events to fold.
pub type FoldFn = fn(Option<&[u8]>, &[RecordedEvent]) -> Result<Vec<u8>, FoldError>;
/// The same, answering the state after each event.
pub type StepsFn = fn(Option<&[u8]>, &[RecordedEvent]) -> Result<Vec<Vec<u8>>, FoldError>;

/// Folds the events of one aggregate type.
#[derive(Clone, Copy)]
pub struct StateFolder {
    /// The stream-id prefix (`server`, `volume-backup`, ...): streams are `<kind>-<id>`.
    pub kind: &'static str,
    /// Events of this aggregate's stream onto a state (`None`: the initial state); the state after them.
    /// States are the aggregate's JSON encoding (as in snapshots), so they round-trip exactly.
    pub fold: FoldFn,
    /// The same, returning the state after each event.
    pub steps: StepsFn,
}

impl std::fmt::Debug for StateFolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateFolder")
            .field("kind", &self.kind)
            .finish()
    }
}

fn start_state<A: Aggregate>(start: Option<&[u8]>) -> Result<A, FoldError> {
    Ok(match start {
        Some(v) => serde_json::from_slice(v)?,
        None => A::default(),
    })
}

fn fold<A: Aggregate>(
    start: Option<&[u8]>,
    events: &[RecordedEvent],
) -> Result<Vec<u8>, FoldError> {
    let mut state: A = start_state(start)?;
    for e in events {
        state = state.apply(&A::Event::decode(&e.event_type, &e.payload)?);
    }
    Ok(serde_json::to_vec(&state)?)
}

fn steps<A: Aggregate>(
    start: Option<&[u8]>,
    events: &[RecordedEvent],
) -> Result<Vec<Vec<u8>>, FoldError> {
    let mut state: A = start_state(start)?;
    let mut out = Vec::with_capacity(events.len());
    for e in events {
        state = state.apply(&A::Event::decode(&e.event_type, &e.payload)?);
        out.push(serde_json::to_vec(&state)?);
    }
    Ok(out)
}

/// The folder of aggregate type `A`.
pub const fn folder<A: Aggregate>() -> StateFolder {
    StateFolder {
        kind: A::KIND,
        fold: fold::<A>,
        steps: steps::<A>,
    }
}

/// Every registered aggregate type.
pub fn all() -> impl Iterator<Item = &'static StateFolder> {
    crate::identity::AGGREGATES
        .iter()
        .chain(crate::image::AGGREGATES)
        .chain(crate::compute::AGGREGATES)
        .chain(crate::volume::AGGREGATES)
        .chain(crate::network::AGGREGATES)
        .chain(crate::object::AGGREGATES)
}

/// The folder of a stream and the aggregate id in it: the longest kind `K` with the stream `K-<id>`.
pub fn for_stream(stream_id: &str) -> Option<(&'static StateFolder, &str)> {
    all()
        .filter_map(|f| {
            stream_id
                .strip_prefix(f.kind)
                .and_then(|rest| rest.strip_prefix('-'))
                .filter(|id| !id.is_empty())
                .map(|id| (f, id))
        })
        .max_by_key(|(f, _)| f.kind.len())
}

/// A state as JSON for display (numbers beyond 64 bits become floats).
pub fn render(state: &[u8]) -> serde_json::Value {
    serde_json::from_slice(state).unwrap_or(serde_json::Value::Null)
}

/// The stream kind of a stream id (registered kinds first; else the part before the first '-').
pub fn kind_of(stream_id: &str) -> &str {
    match for_stream(stream_id) {
        Some((f, _)) => f.kind,
        None => stream_id.split('-').next().unwrap_or(stream_id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_unique_and_streams_find_the_most_specific_kind() {
        let mut kinds: Vec<&str> = all().map(|f| f.kind).collect();
        let n = kinds.len();
        kinds.sort();
        kinds.dedup();
        assert_eq!(kinds.len(), n, "a kind is registered twice");
        assert_eq!(
            for_stream("server-abc").map(|(f, id)| (f.kind, id)),
            Some(("server", "abc"))
        );
        assert_eq!(
            for_stream("server-group-abc").map(|(f, id)| (f.kind, id)),
            Some(("server-group", "abc"))
        );
        assert_eq!(
            for_stream("volume-backup-1").map(|(f, _)| f.kind),
            Some("volume-backup")
        );
        assert_eq!(kind_of("swift-object-p.c.o"), "swift-object");
        assert!(for_stream("nothing-here").is_none());
        assert_eq!(kind_of("nothing-here"), "nothing");
    }
}
