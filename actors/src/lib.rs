//! strata-actors: the write side. Pure aggregates (`decide`/`apply`) per service, and the actix runtime that
//! hosts one actor per live aggregate.
//!
//! Architecture invariant: aggregates never do I/O, read clocks or draw random numbers; ids, times and
//! hashes arrive inside commands. Only `runtime` (and the image `store`) touch I/O. This crate depends on no
//! other Strata crate but `proto` and `events`.

pub mod aggregate;
pub mod compute;
#[cfg(test)]
pub(crate) mod gwt;
pub mod identity;
pub mod image;
pub mod network;
pub mod object;
pub mod reconciler;
pub mod registry;
pub mod runtime;
pub mod volume;

pub use aggregate::{replay, Aggregate, CodecError, DomainError, DomainEvent};
pub use reconciler::{Reconcile, Reconciler};
pub use runtime::{CommandError, Outcome, Repository, Runtime, RuntimeConfig};
