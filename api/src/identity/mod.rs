//! Keystone (identity v3): version discovery, tokens, domains, projects, users, roles, role assignments,
//! services, endpoints and regions, with Keystone's policy (identity management is for admins) and errors.

mod assignments;
mod catalog;
mod domains;
mod error;
mod kind;
mod policy;
mod projects;
mod roles;
mod tokens;
mod users;
mod util;

use actix_web::{web, FromRequest, HttpRequest};
use futures::future::LocalBoxFuture;

pub use error::KeystoneError;
pub use policy::POLICY;
pub use strata_identity::{bootstrap, new_id, Identity};

use crate::auth::AuthContext;

/// A request with a valid token. Extracting it answers 401 (Keystone format) when the token is missing or bad.
pub struct Authed(pub AuthContext);

impl FromRequest for Authed {
    type Error = KeystoneError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let token = req
            .headers()
            .get("x-auth-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let identity = req.app_data::<web::Data<Identity>>().cloned();
        Box::pin(async move {
            let (Some(token), Some(identity)) = (token, identity) else {
                return Err(KeystoneError::unauthorized());
            };
            let view = identity.view.snapshot();
            Ok(Authed(crate::auth::validate(
                &identity.tokens,
                &view,
                &token,
            )?))
        })
    }
}

impl Authed {
    /// Keystone's default policy for `action` (all of identity management is for admins).
    pub fn require_admin(&self, action: &str) -> Result<(), KeystoneError> {
        if POLICY.allows(&self.0, action, crate::policy::Target::default()) {
            Ok(())
        } else {
            Err(KeystoneError::forbidden(action))
        }
    }
}

async fn not_found(req: HttpRequest) -> Result<actix_web::HttpResponse, KeystoneError> {
    Err(KeystoneError::new(
        actix_web::http::StatusCode::NOT_FOUND,
        format!("The resource could not be found: {}.", req.path()),
    ))
}

/// Register every Keystone route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    tokens::configure(cfg);
    domains::configure(cfg);
    projects::configure(cfg);
    users::configure(cfg);
    roles::configure(cfg);
    assignments::configure(cfg);
    catalog::configure(cfg);
    cfg.default_service(web::to(not_found));
}
