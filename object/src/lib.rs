//! strata-object: Swift's storage side. The blob store keeps object bytes in files (temp file, MD5 while
//! streaming, fsync, rename only when the checksum matches); the object service records what is stored under
//! each name as events and reads listings from `ObjectView`; the expirer deletes objects past X-Delete-At.

pub mod blob;
pub mod listing;
pub mod service;

pub use service::{ObjectError, ObjectService, PutObject, Stored};
