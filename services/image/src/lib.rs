//! The image service (Glance's behaviour): image records as `Image` aggregates, per-project quota on image
//! slots and bytes, the bytes in the enabled stores (Glance multi-store), and the flows that put bytes in a
//! store and record them (uploads, imports, server snapshots and volumes uploaded to images). The HTTP
//! front end (`strata-api`'s `image` module) parses, checks policy, calls this crate and renders Glance's
//! shapes; the compute and volume services hand snapshots and exported volumes to [`SnapshotStore`].

mod data;
mod error;

use std::sync::Arc;
use std::time::Duration;

use strata_actors::image::store::ImageStores;
use strata_actors::image::{usage_id, Image, ImageCommand, ImageUsage, ImageUsageCommand};
use strata_actors::{Outcome, Repository, Runtime};
use strata_events::Metadata;
use strata_projections::image::{ImageRow, ImageView};
use strata_projections::Live;

pub use data::{
    abort_transfer, import, record_stored, stage, staging_key, store_stream, upload, ImageSink,
    Import, ImportChecks, ImportSource, SnapshotStore,
};
pub use error::ImageError;

/// Per-project limits on images (checked against the image projection).
#[derive(Debug, Clone, Copy)]
pub struct ImageQuota {
    pub images: u64,
    pub bytes: u64,
}

impl Default for ImageQuota {
    fn default() -> Self {
        ImageQuota {
            images: 1000,
            bytes: 1 << 40,
        }
    }
}

/// The image service: its view, aggregates, stores and quota.
pub struct Images {
    pub view: Live<ImageView>,
    pub repo: Repository<Image>,
    /// Per-project image quota reservations (slots and bytes).
    pub usage: Repository<ImageUsage>,
    /// The enabled stores (Glance multi-store); as one `ImageStore` it reads from whichever holds an image.
    pub store: Arc<ImageStores>,
    pub quota: ImageQuota,
}

const READ_YOUR_WRITES: Duration = Duration::from_secs(10);

impl Images {
    pub fn new(
        runtime: Arc<Runtime>,
        view: Live<ImageView>,
        store: Arc<ImageStores>,
        quota: ImageQuota,
    ) -> Self {
        Images {
            view,
            repo: Repository::new(runtime.clone()),
            usage: Repository::new(runtime),
            store,
            quota,
        }
    }

    /// Run a command on image `id` and wait until the view shows it.
    pub async fn run(
        &self,
        id: &str,
        cmd: ImageCommand,
        meta: &Metadata,
    ) -> Result<Outcome<Image>, ImageError> {
        let out = self
            .repo
            .execute(id, cmd, meta.clone())
            .await
            .map_err(|e| match e {
                strata_actors::CommandError::Domain(strata_actors::DomainError::NotFound {
                    kind: "image",
                    ..
                }) => ImageError::image_not_found(id),
                other => other.into(),
            })?;
        if let Some(p) = out.position {
            if !self.view.wait_for(p, READ_YOUR_WRITES).await {
                tracing::warn!(
                    position = p,
                    "image view did not reach the write's position in time"
                );
            }
        }
        Ok(out)
    }

    /// Reserve an image slot for `owner` (over quota when the project holds its limit of images).
    pub async fn take_slot(
        &self,
        owner: &str,
        image_id: &str,
        meta: &Metadata,
    ) -> Result<(), ImageError> {
        let cmd = ImageUsageCommand::TakeSlot {
            image_id: image_id.to_string(),
            limit: self.quota.images,
        };
        self.usage
            .execute(&usage_id(owner), cmd, meta.clone())
            .await?;
        Ok(())
    }

    /// Reserve `bytes` of storage for an image of `owner` (over quota beyond the project's bytes).
    pub async fn take_bytes(
        &self,
        owner: &str,
        image_id: &str,
        bytes: u64,
        meta: &Metadata,
    ) -> Result<(), ImageError> {
        let cmd = ImageUsageCommand::TakeBytes {
            image_id: image_id.to_string(),
            bytes,
            limit: self.quota.bytes,
        };
        self.usage
            .execute(&usage_id(owner), cmd, meta.clone())
            .await?;
        Ok(())
    }

    /// Give back an image's slot and bytes.
    pub async fn free(&self, owner: &str, image_id: &str, meta: &Metadata) {
        let cmd = ImageUsageCommand::Free {
            image_id: image_id.to_string(),
        };
        if let Err(e) = self
            .usage
            .execute(&usage_id(owner), cmd, meta.clone())
            .await
        {
            tracing::error!(owner, image_id, error = %e, "releasing image quota failed");
        }
    }

    /// Record image `image_id` of `owner` for bytes another service hands over later (a server snapshot, a
    /// volume uploaded to an image): the quota slot first (a refusal is `OverQuota`), then `create` (an
    /// `ImageCommand::Create`); a refused record gives the slot back.
    pub async fn create_record(
        &self,
        owner: &str,
        image_id: &str,
        create: ImageCommand,
        meta: &Metadata,
    ) -> Result<(), ImageError> {
        self.take_slot(owner, image_id, meta).await?;
        if let Err(e) = self.run(image_id, create, meta).await {
            self.free(owner, image_id, meta).await;
            return Err(e);
        }
        Ok(())
    }

    /// Delete an image record whose bytes will not come (the hand-over did not start or failed) and give its
    /// quota back.
    pub async fn discard_record(&self, owner: &str, image_id: &str, meta: &Metadata) {
        if self.run(image_id, ImageCommand::Delete, meta).await.is_ok() {
            self.free(owner, image_id, meta).await;
        }
    }

    /// Bytes `owner` may still store (an upload stops streaming once it passes this).
    pub async fn bytes_left(&self, owner: &str) -> u64 {
        match self.usage.load(&usage_id(owner)).await {
            Ok((usage, _)) => self.quota.bytes.saturating_sub(usage.bytes()),
            Err(_) => self.quota.bytes,
        }
    }

    /// The image as a caller of `project_id` may see it: not found for images of other projects that are
    /// not shared with it (an admin sees every image).
    pub fn readable_by(
        &self,
        project_id: &str,
        is_admin: bool,
        id: &str,
    ) -> Result<ImageRow, ImageError> {
        let view = self.view.snapshot();
        if view.can_read(id, project_id, is_admin) {
            if let Some(row) = view.image(id) {
                return Ok(row.clone());
            }
        }
        Err(ImageError::image_not_found(id))
    }

    /// The image, which the caller must own (or be admin): not found if not readable, forbidden if only
    /// readable.
    pub fn owned_by(
        &self,
        project_id: &str,
        is_admin: bool,
        id: &str,
    ) -> Result<ImageRow, ImageError> {
        let row = self.readable_by(project_id, is_admin, id)?;
        if is_admin || row.owner == project_id {
            Ok(row)
        } else {
            Err(ImageError::Forbidden(format!(
                "You are not permitted to modify image {id}."
            )))
        }
    }
}
