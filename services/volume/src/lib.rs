//! strata-volume: Cinder's behaviour: the requests' flows and lookups, the scheduler, the volume service and
//! the backup service.
//!
//! - [`service`]: the volume service's state and the flows requests call (create and delete volumes, with
//!   their quota and checks), returning a typed [`VolumeError`].
//! - [`engine`]: the scheduler (filters, capacity weigher, claims) and the volume service that follows the
//!   log and drives each volume, snapshot and backup through its steps.
//! - [`driver`]: the backend driver interface, with the `file` driver (one raw or qcow2 file per volume; raw
//!   files handled natively, qcow2 ones and conversions with `qemu-img`), the `fake` driver (metadata only,
//!   for scale tests) and the chunked backup format both share.
//! - [`backup_target`]: where finished backups are kept (a directory, or objects in Swift).

pub mod attach;
pub mod backup_target;
pub mod driver;
pub mod engine;
mod error;
pub mod service;

pub use engine::{BackendSpec, Engine, EngineConfig};
pub use error::VolumeError;
pub use service::{create_volume, discard_volume, NewVolume, Volumes};
