//! Where finished backups are kept. The drivers always write a backup as a directory in the chunked format
//! of [`crate::driver::backup`] under `<state_dir>/backups/`; with the `directory` target that directory is
//! the backup. With the `swift` target the engine copies the directory's files to objects
//! `<backup id>/<file>` in a container of the backup's project account (Cinder's swift backup driver keeps
//! its backups in the user's account, container `volumebackups` unless the request names one), removes the
//! directory, and brings the files back into a temporary directory when a restore or an incremental backup
//! needs them. Which target holds a backup is recorded when it becomes available, so changing
//! `--backup-target` later does not lose older backups.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

/// The `target` recorded for backups kept as directories (also the meaning of an empty one).
pub const DIRECTORY_TARGET: &str = "directory";
/// The `target` recorded for backups kept as objects.
pub const SWIFT_TARGET: &str = "swift";
/// The container a swift backup goes to when the request names none (Cinder's default).
pub const DEFAULT_CONTAINER: &str = "volumebackups";

/// Object storage as the backup service uses it: whole files in, whole files out.
#[async_trait::async_trait]
pub trait BackupObjects: Send + Sync + 'static {
    /// Store every regular file of `dir` as object `<prefix>/<file name>` in `container` of `account`
    /// (made when missing); returns the number of objects written.
    async fn upload_dir(
        &self,
        account: &str,
        container: &str,
        prefix: &str,
        dir: &Path,
    ) -> Result<u64, String>;

    /// Write objects `<prefix>/<name>` into `dir/<name>`: all of them under the prefix when `only` is
    /// `None`, else just those named (each must exist).
    async fn download_dir(
        &self,
        account: &str,
        container: &str,
        prefix: &str,
        dir: &Path,
        only: Option<&[&str]>,
    ) -> Result<u64, String>;

    /// Delete every object `<prefix>/...`; none is fine.
    async fn delete_prefix(
        &self,
        account: &str,
        container: &str,
        prefix: &str,
    ) -> Result<(), String>;
}

/// The object store backups go to, as the engine's configuration holds it.
#[derive(Clone)]
pub struct BackupObjectStore(pub Arc<dyn BackupObjects>);

impl fmt::Debug for BackupObjectStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BackupObjectStore")
    }
}
