//! strata-compute: Nova's scheduler, conductor and compute agents.
//!
//! - [`scheduler`]: filters and weighers over the compute view (pure).
//! - [`engine`]: the conductor (it follows the log and drives each server's flow step by step, each step an
//!   event on the server's stream) and the compute agents (one per host: a [`driver::Driver`], an image cache,
//!   heartbeats, power-state sync, the resource tracker).
//! - [`driver`]: the hypervisor interface and the `fake` driver.
//! - [`cache`]: the per-host image cache.

pub mod cache;
pub mod driver;
pub mod engine;
pub mod scheduler;

pub use engine::{Engine, EngineConfig, FakeHostSpec};
pub use scheduler::SchedulerConfig;
