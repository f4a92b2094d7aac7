//! strata-volume: Cinder's scheduler and volume service.
//!
//! - [`driver`]: the backend driver interface, with the `file` driver (raw or qcow2 files made and changed
//!   with `qemu-img`) and the `fake` driver (metadata only, for scale tests).

pub mod driver;
