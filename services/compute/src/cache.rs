//! A compute host's image cache (Nova's `_base`): images fetched once through the image store, verified
//! against their MD5 checksum, kept up to a size limit with least-recently-used eviction. Fills, hits and
//! evictions are recorded as events on the host's stream by the caller.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use futures::StreamExt;
use md5::{Digest, Md5};
use parking_lot::Mutex;
use strata_actors::image::store::ImageStore;
use tokio::io::AsyncWriteExt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheOutcome {
    /// The image was already here.
    Hit,
    /// Fetched now (`size` bytes); these images were evicted to make room.
    Filled { size: u64, evicted: Vec<String> },
}

struct Entry {
    size: u64,
    last_used: Instant,
}

pub struct ImageCache {
    dir: PathBuf,
    max_bytes: u64,
    entries: Mutex<HashMap<String, Entry>>,
    /// One fetch at a time per host: a second boot of the same image waits and then hits.
    fetching: tokio::sync::Mutex<()>,
}

impl ImageCache {
    /// Open (creating) the cache directory and index the images already in it.
    pub fn open(dir: PathBuf, max_bytes: u64) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        let mut entries = HashMap::new();
        for e in std::fs::read_dir(&dir)? {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(".tmp-") {
                let _ = std::fs::remove_file(e.path());
                continue;
            }
            entries.insert(
                name,
                Entry {
                    size: e.metadata()?.len(),
                    last_used: Instant::now(),
                },
            );
        }
        Ok(ImageCache {
            dir,
            max_bytes,
            entries: Mutex::new(entries),
            fetching: tokio::sync::Mutex::new(()),
        })
    }

    pub fn path(&self, image_id: &str) -> PathBuf {
        self.dir.join(image_id)
    }

    pub fn contains(&self, image_id: &str) -> bool {
        self.entries.lock().contains_key(image_id)
    }

    pub fn cached(&self) -> Vec<(String, u64)> {
        self.entries
            .lock()
            .iter()
            .map(|(k, e)| (k.clone(), e.size))
            .collect()
    }

    fn touch(&self, image_id: &str) -> bool {
        match self.entries.lock().get_mut(image_id) {
            Some(e) => {
                e.last_used = Instant::now();
                true
            }
            None => false,
        }
    }

    /// Make sure `image_id` is cached; `checksum` is the MD5 hex the image service recorded ("" = unknown).
    pub async fn ensure(
        &self,
        store: &dyn ImageStore,
        image_id: &str,
        checksum: &str,
    ) -> Result<CacheOutcome, String> {
        if image_id.is_empty() || image_id.contains('/') || image_id.starts_with('.') {
            return Err(format!("invalid image id {image_id:?}"));
        }
        if self.touch(image_id) && self.path(image_id).exists() {
            return Ok(CacheOutcome::Hit);
        }
        let _one = self.fetching.lock().await;
        if self.touch(image_id) && self.path(image_id).exists() {
            return Ok(CacheOutcome::Hit);
        }
        let size = self.fetch(store, image_id, checksum).await?;
        let evicted = {
            let mut entries = self.entries.lock();
            entries.insert(
                image_id.to_string(),
                Entry {
                    size,
                    last_used: Instant::now(),
                },
            );
            let mut evicted = Vec::new();
            let mut total: u64 = entries.values().map(|e| e.size).sum();
            while total > self.max_bytes {
                let Some(oldest) = entries
                    .iter()
                    .filter(|(k, _)| k.as_str() != image_id)
                    .min_by_key(|(_, e)| e.last_used)
                    .map(|(k, _)| k.clone())
                else {
                    break;
                };
                if let Some(e) = entries.remove(&oldest) {
                    total -= e.size;
                }
                evicted.push(oldest);
            }
            evicted
        };
        for id in &evicted {
            if let Err(e) = std::fs::remove_file(self.path(id)) {
                tracing::warn!(image = %id, error = %e, "could not remove an evicted cached image");
            }
        }
        Ok(CacheOutcome::Filled { size, evicted })
    }

    async fn fetch(
        &self,
        store: &dyn ImageStore,
        image_id: &str,
        checksum: &str,
    ) -> Result<u64, String> {
        let tmp = self
            .dir
            .join(format!(".tmp-{image_id}-{}", uuid::Uuid::new_v4()));
        let result = async {
            let mut reader = store
                .open(image_id, None)
                .await
                .map_err(|e| format!("Image {image_id} could not be fetched: {e}"))?;
            let mut file = tokio::fs::File::create(&tmp)
                .await
                .map_err(|e| format!("image cache: {e}"))?;
            let mut md5 = Md5::new();
            let mut size = 0u64;
            while let Some(chunk) = reader.stream.next().await {
                let chunk = chunk.map_err(|e| format!("Image {image_id} could not be fetched: {e}"))?;
                md5.update(&chunk);
                size += chunk.len() as u64;
                file.write_all(&chunk)
                    .await
                    .map_err(|e| format!("image cache: {e}"))?;
            }
            file.sync_all().await.map_err(|e| format!("image cache: {e}"))?;
            let actual = hex::encode(md5.finalize());
            if !checksum.is_empty() && actual != checksum {
                return Err(format!(
                    "Image {image_id} failed verification: checksum {actual} is not the recorded {checksum}"
                ));
            }
            tokio::fs::rename(&tmp, self.path(image_id))
                .await
                .map_err(|e| format!("image cache: {e}"))?;
            Ok(size)
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        result
    }

    /// Remove every cached image (used by tests and when a host is retired).
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}
