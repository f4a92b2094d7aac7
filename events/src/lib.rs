//! strata-events: the event log every Strata service writes to and every read model is built from.
//!
//! It defines the backend-neutral [`EventLog`] trait (append with an expected stream version, read a stream,
//! read and subscribe to everything in global order, snapshots, projection checkpoints), the hash-chained
//! envelope, and the backends: [`RocksLog`] (the durable default) and [`MemoryLog`] (tests). The
//! [`contract`] module is the one test suite every backend must pass.
//!
//! Architecture invariant: this crate knows nothing about services, aggregates or projections; it stores
//! opaque, typed payloads. It depends only on `strata-proto`.

pub mod chain;
pub mod contract;
mod error;
pub mod fault;
mod follow;
mod log;
mod memory;
mod rocks;
mod seal;
mod types;

pub use chain::{verify_chain, verify_log, ChainError, GENESIS_HASH};
pub use error::LogError;
pub use follow::{follow, follower_status, followers, FollowerStatus};
pub use log::{subscribe_all, EventLog, EventStream};
pub use memory::MemoryLog;
pub use rocks::{RocksLog, RocksOptions};
pub use types::{
    is_valid_stream_id, AppendResult, Checkpoint, ExpectedVersion, Head, Metadata, NewEvent,
    Position, Principal, RecordedEvent, Snapshot,
};
