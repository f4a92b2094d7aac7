//! Keystone (identity v3): version discovery, tokens, domains, projects, users, roles, role assignments,
//! services, endpoints and regions, with Keystone's policy (identity management is for admins) and errors.

mod assignments;
pub mod bootstrap;
mod catalog;
mod domains;
mod error;
mod policy;
mod projects;
mod roles;
mod tokens;
mod users;
mod util;

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use futures::future::LocalBoxFuture;
use serde_json::Value;
use strata_actors::identity::{
    name_claim_id, Assignment, Domain, Endpoint, NameClaim, NameClaimCommand, Project, Region,
    Revocation, Role, Service, User,
};
use strata_actors::{Aggregate, Outcome, Repository, Runtime};
use strata_events::Metadata;
use strata_projections::identity::IdentityView;
use strata_projections::persistent::OrdMap;
use strata_projections::Live;

pub use error::KeystoneError;
pub use policy::POLICY;

use crate::auth::{AuthContext, PasswordCache, TokenService};

/// Everything the identity handlers need: the read model, the token service, and a repository per aggregate.
pub struct Identity {
    pub view: Live<IdentityView>,
    pub tokens: TokenService,
    pub passwords: PasswordCache,
    pub region: String,
    pub domains: Repository<Domain>,
    pub projects: Repository<Project>,
    pub users: Repository<User>,
    pub roles: Repository<Role>,
    pub assignments: Repository<Assignment>,
    pub services: Repository<Service>,
    pub endpoints: Repository<Endpoint>,
    pub regions: Repository<Region>,
    pub revocations: Repository<Revocation>,
    pub names: Repository<NameClaim>,
}

/// How long a write waits for the read model to show it before answering anyway.
const READ_YOUR_WRITES: Duration = Duration::from_secs(10);

impl Identity {
    pub fn new(
        runtime: Arc<Runtime>,
        view: Live<IdentityView>,
        tokens: TokenService,
        region: String,
    ) -> Self {
        Identity {
            view,
            tokens,
            passwords: PasswordCache::default(),
            region,
            domains: Repository::new(runtime.clone()),
            projects: Repository::new(runtime.clone()),
            users: Repository::new(runtime.clone()),
            roles: Repository::new(runtime.clone()),
            assignments: Repository::new(runtime.clone()),
            services: Repository::new(runtime.clone()),
            endpoints: Repository::new(runtime.clone()),
            regions: Repository::new(runtime.clone()),
            revocations: Repository::new(runtime.clone()),
            names: Repository::new(runtime),
        }
    }

    /// Run a command and wait until the identity view shows its events (read-your-writes).
    pub async fn run<A: Aggregate>(
        &self,
        repo: &Repository<A>,
        id: &str,
        cmd: A::Command,
        meta: &Metadata,
    ) -> Result<Outcome<A>, KeystoneError> {
        let out = repo
            .execute(id, cmd, meta.clone())
            .await
            .map_err(|e| match e {
                // The aggregate cannot know the id it was asked for when its stream is empty; the caller can.
                strata_actors::CommandError::Domain(strata_actors::DomainError::NotFound {
                    kind,
                    ..
                }) => KeystoneError::not_found(kind, id),
                other => other.into(),
            })?;
        if let Some(p) = out.position {
            if !self.view.wait_for(p, READ_YOUR_WRITES).await {
                tracing::warn!(
                    position = p,
                    "identity view did not reach the write's position in time"
                );
            }
        }
        Ok(out)
    }
}

impl Identity {
    /// Claim `name` within `scope` for `owner`: a name is held by one resource at a time. A name held by
    /// another resource is a 409 in Keystone's words.
    pub async fn claim_name(
        &self,
        kind: &'static str,
        scope: &str,
        name: &str,
        owner: &str,
        meta: &Metadata,
    ) -> Result<(), KeystoneError> {
        let id = name_claim_id(kind, scope, name);
        let cmd = NameClaimCommand::Claim {
            kind,
            scope: scope.to_string(),
            name: name.to_string(),
            owner_id: owner.to_string(),
        };
        match self.names.execute(&id, cmd, meta.clone()).await {
            Ok(_) => Ok(()),
            Err(strata_actors::CommandError::Domain(
                strata_actors::DomainError::AlreadyExists { .. },
            )) => {
                let at = if scope.is_empty() {
                    String::new()
                } else {
                    format!(" at domain ID {scope}")
                };
                Err(KeystoneError::conflict(format!(
                    "Conflict occurred attempting to store {kind} - Duplicate entry found with name {name}{at}."
                )))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Give a name back (after a delete, a rename, or a create that failed after claiming it).
    pub async fn release_name(
        &self,
        kind: &'static str,
        scope: &str,
        name: &str,
        owner: &str,
        meta: &Metadata,
    ) {
        let id = name_claim_id(kind, scope, name);
        let cmd = NameClaimCommand::Release {
            owner_id: owner.to_string(),
        };
        if let Err(e) = self.names.execute(&id, cmd, meta.clone()).await {
            tracing::error!(kind, scope, name, error = %e, "releasing a name failed; it stays reserved");
        }
    }
}

impl Identity {
    /// Answer `{"<key>": <row as JSON>}` with `status` for row `id` of one of the view's tables, or 404.
    pub fn answer<R>(
        &self,
        status: StatusCode,
        key: &'static str,
        id: &str,
        table: fn(&IdentityView) -> &OrdMap<String, R>,
        to_json: impl Fn(&R) -> Value,
    ) -> Result<HttpResponse, KeystoneError> {
        let view = self.view.snapshot();
        let row = table(&view)
            .get(id)
            .ok_or_else(|| KeystoneError::not_found(key, id))?;
        Ok(HttpResponse::build(status).json(serde_json::json!({ key: to_json(row) })))
    }

    /// Create a resource whose name is unique in `scope`: claim the name, run the create, and give the name
    /// back if the create fails.
    #[allow(clippy::too_many_arguments)]
    pub async fn create_named<A: Aggregate>(
        &self,
        repo: &Repository<A>,
        kind: &'static str,
        scope: &str,
        name: &str,
        id: &str,
        cmd: A::Command,
        meta: &Metadata,
    ) -> Result<(), KeystoneError> {
        self.claim_name(kind, scope, name, id, meta).await?;
        if let Err(e) = self.run(repo, id, cmd, meta).await {
            self.release_name(kind, scope, name, id, meta).await;
            return Err(e);
        }
        Ok(())
    }

    /// Run an update that may rename the resource: claim the new name first (409 if taken), then release
    /// whichever of the two names ended up unused.
    #[allow(clippy::too_many_arguments)]
    pub async fn update_named<A: Aggregate>(
        &self,
        repo: &Repository<A>,
        kind: &'static str,
        scope: &str,
        old_name: &str,
        new_name: Option<&str>,
        id: &str,
        cmd: A::Command,
        meta: &Metadata,
    ) -> Result<(), KeystoneError> {
        let rename = new_name.filter(|n| *n != old_name);
        if let Some(n) = rename {
            self.claim_name(kind, scope, n, id, meta).await?;
        }
        let result = self.run(repo, id, cmd, meta).await;
        if let Some(n) = rename {
            let unused = if result.is_ok() { old_name } else { n };
            self.release_name(kind, scope, unused, id, meta).await;
        }
        result.map(|_| ())
    }

    /// Delete a named resource and release its name.
    #[allow(clippy::too_many_arguments)]
    pub async fn delete_named<A: Aggregate>(
        &self,
        repo: &Repository<A>,
        kind: &'static str,
        scope: &str,
        name: &str,
        id: &str,
        cmd: A::Command,
        meta: &Metadata,
    ) -> Result<(), KeystoneError> {
        self.run(repo, id, cmd, meta).await?;
        self.release_name(kind, scope, name, id, meta).await;
        Ok(())
    }
}

/// A new Keystone-style id: 32 lowercase hex digits.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

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
