//! strata-identity: Keystone's behaviour — the identity state every service authenticates against, the
//! token service (signed claims, validation against the identity view, revocation), names unique within a
//! scope, and the bootstrap that makes the admin, the service project, the roles and the catalog.
//!
//! Architecture invariant: no HTTP types; functions take what a request means and return a domain value or
//! an [`IdentityError`]. Policy is the API's.

pub mod bootstrap;
mod error;
pub mod tokens;

use std::sync::Arc;

use strata_actors::identity::{
    name_claim_id, Assignment, Domain, Endpoint, NameClaim, NameClaimCommand, Project, Region,
    Revocation, Role, Service, User,
};
use strata_actors::{Aggregate, Outcome, Repository, Runtime};
use strata_events::Metadata;
use strata_projections::identity::IdentityView;
use strata_projections::Live;

pub use error::IdentityError;
pub use tokens::{AuthContext, AuthError, PasswordCache, TokenService};

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
    ) -> Result<Outcome<A>, IdentityError> {
        strata_service::run(repo, &self.view, id, cmd, meta)
            .await
            .map_err(|e| match e {
                // The aggregate cannot know the id it was asked for when its stream is empty; the caller can.
                strata_actors::CommandError::Domain(strata_actors::DomainError::NotFound {
                    kind,
                    ..
                }) => IdentityError::not_found(kind, id),
                other => other.into(),
            })
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
    ) -> Result<(), IdentityError> {
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
                Err(IdentityError::conflict(format!(
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
    ) -> Result<(), IdentityError> {
        self.claim_name(kind, scope, name, id, meta).await?;
        if let Err(e) = self.run(repo, id, cmd, meta).await {
            self.release_name(kind, scope, name, id, meta).await;
            return Err(e);
        }
        Ok(())
    }

    /// Run an update that may rename the resource: claim the new name first (a conflict if taken), then
    /// release whichever of the two names ended up unused.
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
    ) -> Result<(), IdentityError> {
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
    ) -> Result<(), IdentityError> {
        self.run(repo, id, cmd, meta).await?;
        self.release_name(kind, scope, name, id, meta).await;
        Ok(())
    }
}

/// A new Keystone-style id: 32 lowercase hex digits.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}
