//! strata-object: Swift's storage side. The blob store keeps object bytes in files (temp file, MD5 while
//! streaming, fsync, rename only when the checksum matches); the object service records what is stored under
//! each name as events and reads listings from `ObjectView`; the expirer deletes objects past X-Delete-At.
//! `image_store` is Glance's `swift` store (images as objects of a service account); `backup_objects` is
//! Cinder's swift backup target (backups as objects of the project's account).

pub mod backup_objects;
pub mod blob;
pub mod image_store;
pub mod listing;
pub mod service;

pub use service::{ObjectError, ObjectService, PutObject, Stored};
