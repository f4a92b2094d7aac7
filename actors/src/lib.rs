//! strata-actors: the write side. Pure aggregates (`decide`/`apply`) per service, and the actix runtime that
//! hosts one actor per live aggregate.
//!
//! Architecture invariant: aggregates never do I/O, read clocks or draw random numbers; ids, times and
//! hashes arrive inside commands. Only `runtime` touches the event log. This crate never depends on the API
//! layer and reads projections only for cross-aggregate lookups in sagas.

pub mod aggregate;
pub mod compute;
pub mod identity;
pub mod image;
pub mod runtime;

pub use aggregate::{replay, Aggregate, CodecError, DomainError, DomainEvent};
pub use runtime::{CommandError, Outcome, Repository, Runtime, RuntimeConfig};
