//! strata-projections: the read side. A [`Projection`] folds events from the global log into a read model;
//! the [`runner`] feeds it (catch-up, then live), stores its state with its checkpoint in one write, rebuilds
//! it from position 0 when its version changes, and lets the API wait for a position (read-your-writes).
//!
//! Architecture invariant: projections never append events and never call aggregates; a read model is a pure
//! function of the log prefix it has seen, so a rebuild from zero equals the live model (`strata replay
//! --verify` checks exactly that). Read models use ordered maps so their encoding, and digest, is canonical, and persistent ones
//! ([`persistent`]) so that every published state is an immutable [`Snapshot`] readers hold without a lock.

pub mod audit;
pub mod compute;
pub mod identity;
pub mod image;
pub mod network;
pub mod object;
pub mod persistent;
pub mod runner;
#[cfg(test)]
mod testing;
pub mod volume;

pub use runner::{rebuild, Live, Projection, ProjectionError, RunnerConfig, Snapshot};
