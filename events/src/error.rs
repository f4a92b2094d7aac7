use thiserror::Error;

/// Failures of the event log. `Conflict` is the normal outcome of a lost optimistic-concurrency race.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum LogError {
    #[error("stream {stream}: expected version {expected}, but it is at {actual}")]
    Conflict {
        stream: String,
        expected: String,
        actual: u64,
    },
    #[error("invalid stream id {0:?}")]
    InvalidStream(String),
    #[error("an append must carry at least one event")]
    EmptyAppend,
    #[error("the log is open read-only")]
    ReadOnly,
    #[error("storage failure: {0}")]
    Storage(String),
    #[error("corrupt record at position {position}: {reason}")]
    Corrupt { position: u64, reason: String },
    #[error("the log writer has stopped")]
    Closed,
}

impl From<rocksdb::Error> for LogError {
    fn from(e: rocksdb::Error) -> Self {
        LogError::Storage(e.into_string())
    }
}
