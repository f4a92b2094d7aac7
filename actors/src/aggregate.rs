//! The aggregate contract and the event codec shared by every service.

use serde::{de::DeserializeOwned, Serialize};
use strata_events::RecordedEvent;
pub use strata_proto::codec::{CodecError, DomainEvent};
use thiserror::Error;

/// Why a command was refused. Only the API layer turns these into HTTP statuses and fault bodies.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DomainError {
    #[error("Could not find {kind}: {id}.")]
    NotFound { kind: &'static str, id: String },
    #[error("Conflict occurred attempting to store {kind} - {detail}")]
    AlreadyExists { kind: &'static str, detail: String },
    /// The command does not fit the aggregate's current state (409).
    #[error("{0}")]
    Conflict(String),
    /// The command itself is malformed (400).
    #[error("{0}")]
    Invalid(String),
    /// The command is not allowed for this resource (403).
    #[error("{0}")]
    Forbidden(String),
    /// The command would exceed a quota (413 in Glance, 403 in Nova ...).
    #[error("{0}")]
    OverQuota(String),
}

/// An event-sourced aggregate. `decide` and `apply` are pure and total over valid input.
pub trait Aggregate:
    Default + Clone + Send + Sync + Unpin + Serialize + DeserializeOwned + std::fmt::Debug + 'static
{
    type Command: Clone + Send + Unpin + std::fmt::Debug + 'static;
    type Event: DomainEvent;
    /// Stream-id prefix: the aggregate with id `X` lives in stream `<KIND>-X`.
    const KIND: &'static str;
    /// Bump when the snapshot encoding of the state changes; old snapshots are then ignored.
    const SNAPSHOT_SCHEMA: u32 = 1;

    /// Validate `cmd` against the current state and return the events that record its effect (possibly none).
    fn decide(&self, cmd: &Self::Command) -> Result<Vec<Self::Event>, DomainError>;

    /// Fold one event into the state. Never fails: an event is a fact that already happened.
    fn apply(self, event: &Self::Event) -> Self;

    fn stream_id(id: &str) -> String {
        format!("{}-{}", Self::KIND, id)
    }
}

/// Rebuild an aggregate's state from its recorded events (used by activation and by point-in-time audit).
pub fn replay<A: Aggregate>(state: A, events: &[RecordedEvent]) -> Result<A, CodecError> {
    let mut state = state;
    for e in events {
        state = state.apply(&A::Event::decode(&e.event_type, &e.payload)?);
    }
    Ok(state)
}
