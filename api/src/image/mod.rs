//! Glance (image v2), the HTTP front end of the image service (`strata-image`): parse, check Glance's policy,
//! call the service, render Glance's shapes and error bodies. Reads come from the `ImageView` projection.

mod data;
mod discovery;
mod error;
mod images;
mod members;
mod policy;

use actix_web::{web, FromRequest, HttpRequest};
use futures::future::LocalBoxFuture;
use strata_events::Metadata;
use strata_projections::image::ImageRow;

pub use error::GlanceError;
pub use policy::POLICY;

use crate::auth::AuthContext;

pub use strata_image::{ImageError, ImageQuota, Images, SnapshotStore};

/// The image service's visibility checks for an HTTP caller, with Glance's error bodies.
pub trait ImagesExt {
    /// The image as `caller` may see it: 404 for images of other projects that are not shared with it.
    fn readable(&self, caller: &Caller, id: &str) -> Result<ImageRow, GlanceError>;
    /// The image, which `caller` must own (or be admin): 404 if not readable, 403 if only readable.
    fn owned(&self, caller: &Caller, id: &str) -> Result<ImageRow, GlanceError>;
}

impl ImagesExt for Images {
    fn readable(&self, caller: &Caller, id: &str) -> Result<ImageRow, GlanceError> {
        Ok(self.readable_by(&caller.project_id, caller.is_admin, id)?)
    }
    fn owned(&self, caller: &Caller, id: &str) -> Result<ImageRow, GlanceError> {
        Ok(self.owned_by(&caller.project_id, caller.is_admin, id)?)
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
        crate::common::RequestId::of(req).metadata(self.auth.principal())
    }
}

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
