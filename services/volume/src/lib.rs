//! strata-volume: Cinder's scheduler, volume service and backup service.
//!
//! - [`engine`]: the scheduler (filters, capacity weigher, claims) and the volume service that follows the
//!   log and drives each volume, snapshot and backup through its steps.
//! - [`driver`]: the backend driver interface, with the `file` driver (one raw or qcow2 file per volume; raw
//!   files handled natively, qcow2 ones and conversions with `qemu-img`), the `fake` driver (metadata only,
//!   for scale tests) and the chunked backup format both share.
//! - [`backup_target`]: where finished backups are kept (a directory, or objects in Swift).

pub mod backup_target;
pub mod driver;
pub mod engine;

pub use engine::{BackendSpec, Engine, EngineConfig};
