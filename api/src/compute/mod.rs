//! Nova (compute v2.1): version discovery, microversions, flavors (with extra specs and access lists) and
//! keypairs, with Nova's policy and fault bodies. Servers, the scheduler, conductor and compute agents build on
//! this (see the compute issue).

mod admin;
/// The helpers every Nova module shares.
mod common;
mod error;
mod flavors;
mod keypairs;
pub mod network;
mod policy;
mod servers;
mod usage;
mod volumes;

use actix_web::dev::ServiceRequest;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use futures::future::{ready, Ready};
use serde_json::json;

pub use error::{Nova, NovaError};
pub use policy::POLICY;

/// The microversions this server implements: 2.1 up to [`MAX_MINOR`].
pub const MIN_MINOR: u32 = 1;
pub const MAX_MINOR: u32 = 81;

pub use strata_compute::{Compute, Views};

/// The negotiated microversion's minor number (2.X).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Microversion(pub u32);

/// Nova's microversions (`OpenStack-API-Version: compute 2.X`, or the legacy
/// `X-OpenStack-Nova-API-Version: 2.X`).
pub static MICROVERSIONS: crate::microversion::Negotiator = crate::microversion::Negotiator {
    service: "compute",
    major: 2,
    min_minor: MIN_MINOR,
    max_minor: MAX_MINOR,
    legacy_header: Some("x-openstack-nova-api-version"),
    malformed: |value| format!("Invalid API version request: {value}"),
};

/// Middleware: negotiate the microversion, refuse unsupported ones, and echo the version in the response.
pub fn microversion_middleware<S: crate::microversion::Inner<B>, B: 'static>(
    req: ServiceRequest,
    srv: &S,
) -> crate::microversion::Answer<B> {
    MICROVERSIONS.middleware::<S, B, NovaError>(req, srv)
}

impl FromRequest for Microversion {
    type Error = NovaError;
    type Future = Ready<Result<Self, NovaError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        ready(Ok(Microversion(MICROVERSIONS.of(req))))
    }
}

/// The authenticated caller of a Nova request (project-scoped token): its token, for policy, and the caller
/// context the services take (`Deref`s to it).
pub type Caller = crate::common::ProjectCaller<Nova>;

impl crate::common::CallerScope for Nova {
    type Error = NovaError;
    fn unscoped() -> NovaError {
        NovaError::forbidden("The compute API needs a project-scoped token.")
    }
}

impl Caller {
    /// Nova's default policy for `action` on a resource of `project` (403 "Policy doesn't allow ...").
    pub fn enforce(&self, action: &str, project: &str) -> Result<(), NovaError> {
        POLICY.enforce(&self.auth, action, project, NovaError::policy)
    }
}

fn version_doc(base: &str) -> serde_json::Value {
    json!({
        "id": "v2.1",
        "status": "CURRENT",
        "version": format!("2.{MAX_MINOR}"),
        "min_version": format!("2.{MIN_MINOR}"),
        "updated": "2013-07-23T11:33:21Z",
        "links": [{ "rel": "self", "href": format!("{base}/v2.1/") }],
        "media-types": [{ "base": "application/json", "type": "application/vnd.openstack.compute+json;version=2.1" }],
    })
}

async fn versions(req: HttpRequest) -> HttpResponse {
    let base = crate::common::base_url(&req);
    HttpResponse::Ok().json(json!({ "versions": [version_doc(&base)] }))
}

async fn version_v21(req: HttpRequest) -> HttpResponse {
    let base = crate::common::base_url(&req);
    HttpResponse::Ok().json(json!({ "version": version_doc(&base) }))
}

async fn not_found(req: HttpRequest) -> Result<HttpResponse, NovaError> {
    Err(NovaError::not_found(format!(
        "The resource could not be found: {}",
        req.path()
    )))
}

/// Register every Nova route (the app wraps them in [`microversion_middleware`]).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(versions))
        .route("/v2.1", web::get().to(version_v21))
        .route("/v2.1/", web::get().to(version_v21));
    flavors::configure(cfg);
    keypairs::configure(cfg);
    servers::configure(cfg);
    admin::configure(cfg);
    usage::configure(cfg);
    volumes::configure(cfg);
    network::configure(cfg);
    cfg.default_service(web::to(not_found));
}
