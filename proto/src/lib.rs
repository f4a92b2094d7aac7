//! strata-proto: the protobuf schemas of every event Strata records, and their prost-generated Rust types.
//!
//! This crate holds data definitions only: no I/O, no logic, no dependency on any other Strata crate.
//! The schemas live in `schemas/`; the rules for changing them are in `README.md`, and
//! `tests/fingerprint.rs` fails when a schema changes without its fingerprint being updated.

/// The event envelope, snapshots and projection checkpoints.
pub mod envelope {
    include!(concat!(env!("OUT_DIR"), "/strata.envelope.v1.rs"));
}

/// Identity (Keystone) events.
pub mod identity {
    include!(concat!(env!("OUT_DIR"), "/strata.identity.v1.rs"));
}

pub use prost::Message;
