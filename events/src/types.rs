use chrono::{DateTime, TimeZone, Utc};
use prost::Message;
use strata_proto::envelope::{self as pb, EventEnvelope};
use uuid::Uuid;

use crate::LogError;

/// A global log position. The first event is at 1; 0 means "before the first event".
pub type Position = u64;

/// What the appender believes the stream's version is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// No check (used only by tools and tests; aggregates always say `Exact`).
    Any,
    /// The stream must be at exactly this version; 0 means the stream must not exist yet.
    Exact(u64),
}

impl std::fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any"),
            ExpectedVersion::Exact(v) => write!(f, "{v}"),
        }
    }
}

/// The authenticated caller on whose behalf events are recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Principal {
    pub user_id: String,
    pub user_name: String,
    pub project_id: String,
    pub domain_id: String,
    pub roles: Vec<String>,
}

impl Principal {
    /// The principal of events the system records on its own (bootstrap, sagas, timers).
    pub fn system() -> Self {
        Principal {
            user_id: "system".into(),
            user_name: "system".into(),
            ..Default::default()
        }
    }
}

/// Request context recorded with every event of one append.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    pub correlation_id: String,
    pub causation_id: String,
    pub principal: Principal,
}

impl Metadata {
    pub fn system(correlation_id: impl Into<String>) -> Self {
        Metadata {
            correlation_id: correlation_id.into(),
            causation_id: String::new(),
            principal: Principal::system(),
        }
    }
}

/// An event about to be appended: its versioned type name and encoded protobuf payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    pub event_type: String,
    pub payload: Vec<u8>,
}

impl NewEvent {
    pub fn new(event_type: impl Into<String>, payload: Vec<u8>) -> Self {
        NewEvent {
            event_type: event_type.into(),
            payload,
        }
    }
}

/// The outcome of a successful append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendResult {
    /// Global position of the first appended event.
    pub first_position: Position,
    /// Global position of the last appended event: read models that reached it show this write.
    pub last_position: Position,
    /// The stream's version after the append.
    pub stream_version: u64,
}

/// The last event of the log: its position and hash (the digest an auditor keeps).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    pub position: Position,
    pub hash: [u8; 32],
}

/// An aggregate snapshot: its state as of `version`, encoded by the aggregate's own codec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub version: u64,
    pub schema: u32,
    pub state: Vec<u8>,
}

/// A projection's checkpoint and the state saved with it, in one atomic write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub version: u32,
    pub position: Position,
    pub state: Vec<u8>,
}

/// An event as recorded in the log, decoded from its envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedEvent {
    pub id: Uuid,
    pub stream_id: String,
    pub stream_version: u64,
    pub position: Position,
    pub recorded_at: DateTime<Utc>,
    pub event_type: String,
    pub payload: Vec<u8>,
    pub correlation_id: String,
    pub causation_id: String,
    pub principal: Principal,
    pub prev_hash: [u8; 32],
    pub hash: [u8; 32],
}

impl RecordedEvent {
    /// Decode a stored envelope. Never panics on bad bytes: corrupt data is an error naming the position.
    pub fn decode(bytes: &[u8], position_hint: Position) -> Result<Self, LogError> {
        let env = EventEnvelope::decode(bytes).map_err(|e| LogError::Corrupt {
            position: position_hint,
            reason: e.to_string(),
        })?;
        Self::try_from(env)
    }

    /// The envelope form (with its hash) that is stored and hashed.
    pub fn to_envelope(&self) -> EventEnvelope {
        EventEnvelope {
            event_id: self.id.to_string(),
            stream_id: self.stream_id.clone(),
            stream_version: self.stream_version,
            position: self.position,
            recorded_at_micros: self.recorded_at.timestamp_micros(),
            event_type: self.event_type.clone(),
            payload: self.payload.clone(),
            correlation_id: self.correlation_id.clone(),
            causation_id: self.causation_id.clone(),
            principal: Some(pb::Principal {
                user_id: self.principal.user_id.clone(),
                project_id: self.principal.project_id.clone(),
                domain_id: self.principal.domain_id.clone(),
                roles: self.principal.roles.clone(),
                user_name: self.principal.user_name.clone(),
            }),
            prev_hash: self.prev_hash.to_vec(),
            hash: self.hash.to_vec(),
        }
    }

    /// The stream's kind: the part of the stream id before the first '-' (`project`, `user`, ...).
    pub fn stream_kind(&self) -> &str {
        self.stream_id
            .split_once('-')
            .map(|(k, _)| k)
            .unwrap_or(&self.stream_id)
    }
}

fn hash32(bytes: &[u8], position: Position, what: &str) -> Result<[u8; 32], LogError> {
    bytes.try_into().map_err(|_| LogError::Corrupt {
        position,
        reason: format!("{what} is {} bytes, not 32", bytes.len()),
    })
}

impl TryFrom<EventEnvelope> for RecordedEvent {
    type Error = LogError;

    fn try_from(env: EventEnvelope) -> Result<Self, LogError> {
        let position = env.position;
        let corrupt = |reason: String| LogError::Corrupt { position, reason };
        let id = Uuid::parse_str(&env.event_id).map_err(|e| corrupt(format!("event id: {e}")))?;
        let recorded_at = Utc
            .timestamp_micros(env.recorded_at_micros)
            .single()
            .ok_or_else(|| corrupt("recorded_at out of range".into()))?;
        let p = env.principal.unwrap_or_default();
        Ok(RecordedEvent {
            id,
            stream_id: env.stream_id,
            stream_version: env.stream_version,
            position,
            recorded_at,
            event_type: env.event_type,
            payload: env.payload,
            correlation_id: env.correlation_id,
            causation_id: env.causation_id,
            principal: Principal {
                user_id: p.user_id,
                user_name: p.user_name,
                project_id: p.project_id,
                domain_id: p.domain_id,
                roles: p.roles,
            },
            prev_hash: hash32(&env.prev_hash, position, "prev_hash")?,
            hash: hash32(&env.hash, position, "hash")?,
        })
    }
}

/// Stream ids are `<kind>-<id>`: non-empty, at most 512 bytes, no NUL, no whitespace.
/// Whether the log can hold `stream` as a stream id: 1 to 512 bytes, no NUL, whitespace, `*` or `>` (so it
/// can also name a NATS subject). Callers that build stream ids from request input check it first.
pub fn is_valid_stream_id(stream: &str) -> bool {
    !stream.is_empty()
        && stream.len() <= 512
        && !stream
            .bytes()
            .any(|b| b == 0 || b.is_ascii_whitespace() || b == b'*' || b == b'>')
}

pub(crate) fn validate_stream_id(stream: &str) -> Result<(), LogError> {
    let ok = is_valid_stream_id(stream);
    if ok {
        Ok(())
    } else {
        Err(LogError::InvalidStream(stream.to_string()))
    }
}
