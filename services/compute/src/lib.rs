//! strata-compute: Nova's behaviour: the service state and boot flow requests call, the scheduler, the
//! conductor and the compute agents.
//!
//! - [`service`]: the compute service's state ([`Compute`]) and the boot flow ([`service::boot`]), with the
//!   typed [`ComputeError`].
//! - [`scheduler`]: filters and weighers over the compute view (pure).
//! - [`engine`]: the conductor (it follows the log and drives each server's flow step by step, each step an
//!   event on the server's stream) and the compute agents (one per host: a [`driver::Driver`], an image cache,
//!   heartbeats, power-state sync, the resource tracker).
//! - [`driver`]: the hypervisor interface and the `fake` driver.
//! - [`cache`]: the per-host image cache.

pub mod cache;
pub mod driver;
pub mod engine;
mod error;
pub mod scheduler;
pub mod service;

pub use engine::{Engine, EngineConfig, FakeHostSpec};
pub use error::ComputeError;
pub use scheduler::SchedulerConfig;
pub use service::{Compute, Views};
