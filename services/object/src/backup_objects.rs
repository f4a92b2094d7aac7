//! Cinder's swift backup target on Strata's own object storage: the files of a backup directory (its
//! manifest and chunks) become objects `<backup id>/<file>` in a container of the backup's project account,
//! so backups are ordinary Swift objects the project can list, count against its quotas and read.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use strata_events::Metadata;
use strata_volume::backup_target::BackupObjects;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::service::{ObjectError, ObjectService, PutObject};

/// [`BackupObjects`] over [`ObjectService`].
pub struct SwiftBackups {
    objects: Arc<ObjectService>,
}

impl SwiftBackups {
    pub fn new(objects: Arc<ObjectService>) -> Self {
        SwiftBackups { objects }
    }

    /// The names (after `<prefix>/`) of the objects under `prefix`.
    fn names_under(&self, account: &str, container: &str, prefix: &str) -> Vec<String> {
        let start = format!("{prefix}/");
        let view = self.objects.view.snapshot();
        let Some(row) = view.container(account, container) else {
            return Vec::new();
        };
        row.objects
            .range(start.clone()..)
            .take_while(|(name, _)| name.starts_with(&start))
            .map(|(name, _)| name[start.len()..].to_string())
            .collect()
    }
}

fn meta(prefix: &str) -> Metadata {
    Metadata::system(format!("cinder-backup-{prefix}"))
}

/// A file's bytes as a stream of 1 MiB chunks.
fn file_chunks(
    file: tokio::fs::File,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Unpin {
    Box::pin(futures::stream::unfold(Some(file), |file| async move {
        let mut file = file?;
        let mut buf = vec![0u8; 1 << 20];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Bytes::from(buf)), Some(file)))
            }
            // The error ends the stream (and the upload).
            Err(e) => Some((Err(e), None)),
        }
    }))
}

#[async_trait::async_trait]
impl BackupObjects for SwiftBackups {
    async fn upload_dir(
        &self,
        account: &str,
        container: &str,
        prefix: &str,
        dir: &Path,
    ) -> Result<u64, String> {
        if self
            .objects
            .view
            .snapshot()
            .container(account, container)
            .is_none()
        {
            self.objects
                .put_container(
                    account,
                    container,
                    Default::default(),
                    Vec::new(),
                    meta(prefix),
                )
                .await
                .map_err(|e| format!("creating container {container}: {e}"))?;
        }
        let mut entries = tokio::fs::read_dir(dir)
            .await
            .map_err(|e| format!("listing {}: {e}", dir.display()))?;
        let mut written = 0;
        while let Some(entry) = entries
            .next_entry()
            .await
            .map_err(|e| format!("listing {}: {e}", dir.display()))?
        {
            let path = entry.path();
            let is_file = entry
                .file_type()
                .await
                .map_err(|e| format!("reading {}: {e}", path.display()))?
                .is_file();
            if !is_file {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            let file = tokio::fs::File::open(&path)
                .await
                .map_err(|e| format!("opening {}: {e}", path.display()))?;
            let len = file
                .metadata()
                .await
                .map_err(|e| format!("reading {}: {e}", path.display()))?
                .len();
            let put = PutObject {
                account: account.to_string(),
                container: container.to_string(),
                name: format!("{prefix}/{name}"),
                content_type: "application/octet-stream".into(),
                content_length: Some(len),
                ..Default::default()
            };
            self.objects
                .put_object(put, file_chunks(file), meta(prefix))
                .await
                .map_err(|e| format!("storing {prefix}/{name}: {e}"))?;
            written += 1;
        }
        Ok(written)
    }

    async fn download_dir(
        &self,
        account: &str,
        container: &str,
        prefix: &str,
        dir: &Path,
        only: Option<&[&str]>,
    ) -> Result<u64, String> {
        let names: Vec<String> = match only {
            Some(names) => names.iter().map(|n| n.to_string()).collect(),
            None => self.names_under(account, container, prefix),
        };
        if names.is_empty() {
            return Err(format!("no objects under {container}/{prefix}/"));
        }
        for name in &names {
            let object = format!("{prefix}/{name}");
            let record = self
                .objects
                .view
                .snapshot()
                .object(account, container, &object)
                .cloned()
                .ok_or_else(|| format!("object {container}/{object} is missing"))?;
            let mut stream = self
                .objects
                .read_blob(&record, 0, record.size)
                .await
                .map_err(|e| format!("reading {container}/{object}: {e}"))?;
            let path = dir.join(name);
            let mut file = tokio::fs::File::create(&path)
                .await
                .map_err(|e| format!("creating {}: {e}", path.display()))?;
            use futures::StreamExt;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| format!("reading {container}/{object}: {e}"))?;
                file.write_all(&chunk)
                    .await
                    .map_err(|e| format!("writing {}: {e}", path.display()))?;
            }
            file.flush()
                .await
                .map_err(|e| format!("writing {}: {e}", path.display()))?;
        }
        Ok(names.len() as u64)
    }

    async fn delete_prefix(
        &self,
        account: &str,
        container: &str,
        prefix: &str,
    ) -> Result<(), String> {
        for name in self.names_under(account, container, prefix) {
            let object = format!("{prefix}/{name}");
            match self
                .objects
                .delete_object(
                    account,
                    container,
                    &object,
                    "backup deleted",
                    None,
                    meta(prefix),
                )
                .await
            {
                Ok(()) | Err(ObjectError::NotFound(_)) => {}
                Err(e) => return Err(format!("deleting {container}/{object}: {e}")),
            }
        }
        Ok(())
    }
}
