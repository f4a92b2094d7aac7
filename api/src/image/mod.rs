//! Glance (image v2): image metadata as `Image` aggregates, bytes in a pluggable store, members for sharing,
//! and Glance's error bodies. Reads come from the `ImageView` projection.

mod data;
pub use data::SnapshotStore;
mod discovery;
mod error;
mod images;
mod members;
mod policy;

use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, FromRequest, HttpRequest};
use futures::future::LocalBoxFuture;
use strata_actors::image::store::ImageStores;
use strata_actors::image::{usage_id, Image, ImageCommand, ImageUsage, ImageUsageCommand};
use strata_actors::{Outcome, Repository, Runtime};
use strata_events::Metadata;
use strata_projections::image::{ImageRow, ImageView};
use strata_projections::Live;

pub use error::GlanceError;
pub use policy::POLICY;

use crate::auth::AuthContext;

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

/// What the image handlers share.
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
    ) -> Result<Outcome<Image>, GlanceError> {
        let out = self
            .repo
            .execute(id, cmd, meta.clone())
            .await
            .map_err(|e| match e {
                strata_actors::CommandError::Domain(strata_actors::DomainError::NotFound {
                    kind: "image",
                    ..
                }) => GlanceError::image_not_found(id),
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

    /// Reserve an image slot for `owner` (413 when the project holds its limit of images).
    pub async fn take_slot(
        &self,
        owner: &str,
        image_id: &str,
        meta: &Metadata,
    ) -> Result<(), GlanceError> {
        let cmd = ImageUsageCommand::TakeSlot {
            image_id: image_id.to_string(),
            limit: self.quota.images,
        };
        self.usage
            .execute(&usage_id(owner), cmd, meta.clone())
            .await?;
        Ok(())
    }

    /// Reserve `bytes` of storage for an image of `owner` (413 beyond the project's byte quota).
    pub async fn take_bytes(
        &self,
        owner: &str,
        image_id: &str,
        bytes: u64,
        meta: &Metadata,
    ) -> Result<(), GlanceError> {
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

    /// Bytes `owner` may still store (an upload stops streaming once it passes this).
    pub async fn bytes_left(&self, owner: &str) -> u64 {
        match self.usage.load(&usage_id(owner)).await {
            Ok((usage, _)) => self.quota.bytes.saturating_sub(usage.bytes()),
            Err(_) => self.quota.bytes,
        }
    }

    /// The image as `caller` may see it: 404 for images of other projects that are not shared with it.
    pub fn readable(&self, caller: &Caller, id: &str) -> Result<ImageRow, GlanceError> {
        let view = self.view.snapshot();
        if view.can_read(id, &caller.project_id, caller.is_admin) {
            if let Some(row) = view.image(id) {
                return Ok(row.clone());
            }
        }
        Err(GlanceError::image_not_found(id))
    }

    /// The image, which `caller` must own (or be admin): 404 if not readable, 403 if only readable.
    pub fn owned(&self, caller: &Caller, id: &str) -> Result<ImageRow, GlanceError> {
        let row = self.readable(caller, id)?;
        if caller.is_admin || row.owner == caller.project_id {
            Ok(row)
        } else {
            Err(GlanceError::forbidden(format!(
                "You are not permitted to modify image {id}."
            )))
        }
    }
}

/// The authenticated caller of an image request.
pub struct Caller {
    pub auth: AuthContext,
    pub project_id: String,
    pub is_admin: bool,
}

impl Caller {
    /// Glance's default policy for `action` in the caller's project (403 "You are not authorized to
    /// complete <action> action."). Which images the caller may touch is decided by `readable`/`owned`.
    pub fn enforce(&self, action: &str) -> Result<(), GlanceError> {
        POLICY.enforce(&self.auth, action, &self.project_id, |a| {
            GlanceError::forbidden(format!("You are not authorized to complete {a} action."))
        })
    }

    pub fn metadata(&self, req: &HttpRequest) -> Metadata {
        let rid = req
            .extensions()
            .get::<crate::common::RequestId>()
            .cloned()
            .unwrap_or_else(|| crate::common::RequestId(format!("req-{}", uuid::Uuid::new_v4())));
        rid.metadata(self.auth.principal())
    }
}

use actix_web::HttpMessage;

impl FromRequest for Caller {
    type Error = GlanceError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let auth = crate::auth::authenticate(req);
        Box::pin(async move {
            let auth = auth?;
            let Some(project_id) = auth.project_id().map(str::to_string) else {
                return Err(GlanceError::forbidden(
                    "The image service needs a project-scoped token.",
                ));
            };
            let is_admin = auth.is_admin();
            Ok(Caller {
                auth,
                project_id,
                is_admin,
            })
        })
    }
}

async fn not_found(req: HttpRequest) -> Result<actix_web::HttpResponse, GlanceError> {
    Err(GlanceError::not_found(format!(
        "The resource could not be found: {}",
        req.path()
    )))
}

/// Register every Glance route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    discovery::configure(cfg);
    images::configure(cfg);
    data::configure(cfg);
    members::configure(cfg);
    cfg.default_service(web::to(not_found));
}
