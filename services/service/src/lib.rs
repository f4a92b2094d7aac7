//! strata-service: what every service crate shares — the caller context a service call takes, and the one
//! way to run a command and read its result back from a view (read-your-writes).
//!
//! Architecture invariant: no HTTP here and no service's logic; the service crates
//! (`strata-identity`, `strata-image`, `strata-compute`, `strata-volume`, `strata-network`, `strata-object`)
//! depend on it, never the other way round. Policy is the API's: a service trusts the caller context it is
//! given (who the caller is, whether it is an admin) and decides only what its domain decides.

use std::time::Duration;

use strata_actors::{Aggregate, CommandError, Outcome, Repository};
use strata_events::{Metadata, Principal};
use strata_projections::{Live, Projection};

/// Who is asking, as every service call takes it: the project the request acts in, the user, whether the
/// caller holds the admin role, and the request's metadata (request id = the events' correlation id, the
/// principal recorded on them).
#[derive(Debug, Clone)]
pub struct Caller {
    pub project_id: String,
    pub user_id: String,
    pub is_admin: bool,
    pub meta: Metadata,
}

impl Caller {
    /// Strata acting on its own (a conductor or agent step for a resource of `project_id`): admin, with the
    /// system principal and `request_id` as the correlation id.
    pub fn system(project_id: &str, request_id: &str) -> Caller {
        Caller {
            project_id: project_id.to_string(),
            user_id: String::new(),
            is_admin: true,
            meta: Metadata {
                correlation_id: request_id.to_string(),
                causation_id: String::new(),
                principal: Principal::system(),
            },
        }
    }

    /// Whether the caller may see a resource of `project_id`: its own project's, or any for an admin.
    pub fn owns(&self, project_id: &str) -> bool {
        self.is_admin || self.project_id == project_id
    }
}

/// How long a write waits for its view to show it before answering anyway.
pub const READ_YOUR_WRITES: Duration = Duration::from_secs(10);

/// Run `cmd` on aggregate `id` and wait (at most [`READ_YOUR_WRITES`]) until `view` has applied what it
/// appended, so the caller's next read of the view sees its own write.
pub async fn run<A: Aggregate, P: Projection>(
    repo: &Repository<A>,
    view: &Live<P>,
    id: &str,
    cmd: A::Command,
    meta: &Metadata,
) -> Result<Outcome<A>, CommandError> {
    let out = repo.execute(id, cmd, meta.clone()).await?;
    if let Some(p) = out.position {
        if !view.wait_for(p, READ_YOUR_WRITES).await {
            tracing::warn!(
                position = p,
                view = P::NAME,
                "the view did not reach a write's position in time"
            );
        }
    }
    Ok(out)
}

/// What kind of refusal a failed command is, for the service error types (each keeps its own wording).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    Invalid,
    Forbidden,
    NotFound,
    Conflict,
    OverQuota,
    /// The log or an actor failed; nothing about the request is wrong.
    Unavailable,
}

/// Classify a failed command and give its message. An identifier the log refuses as a stream id is the
/// request's fault (too long, or holding characters a stream id may not), not an outage.
pub fn classify(e: strata_actors::CommandError) -> (Failure, String) {
    use strata_actors::{CommandError, DomainError};
    match e {
        CommandError::Domain(d) => {
            let failure = match &d {
                DomainError::NotFound { .. } => Failure::NotFound,
                DomainError::AlreadyExists { .. } | DomainError::Conflict(_) => Failure::Conflict,
                DomainError::Invalid(_) => Failure::Invalid,
                DomainError::Forbidden(_) => Failure::Forbidden,
                DomainError::OverQuota(_) => Failure::OverQuota,
            };
            (failure, d.to_string())
        }
        CommandError::Contention(_) => (Failure::Conflict, e.to_string()),
        CommandError::Log(strata_events::LogError::InvalidStream(_)) => (
            Failure::Invalid,
            "Invalid input: an identifier or name of the request is too long or holds characters this \
             service does not accept."
                .to_string(),
        ),
        other => {
            tracing::error!(error = %other, "command failed");
            (
                Failure::Unavailable,
                "The service is temporarily unavailable.".to_string(),
            )
        }
    }
}

/// `From<CommandError>` and `From<DomainError>` for a service error enum whose variants `Invalid`,
/// `Forbidden`, `NotFound`, `Conflict` and `OverQuota` carry the message [`classify`] gives, and whose
/// `Unavailable` carries none.
#[macro_export]
macro_rules! refusals_from_commands {
    ($error:ident) => {
        impl From<strata_actors::DomainError> for $error {
            fn from(e: strata_actors::DomainError) -> Self {
                strata_actors::CommandError::Domain(e).into()
            }
        }

        impl From<strata_actors::CommandError> for $error {
            fn from(e: strata_actors::CommandError) -> Self {
                use $crate::Failure;
                let (failure, message) = $crate::classify(e);
                match failure {
                    Failure::Invalid => $error::Invalid(message),
                    Failure::Forbidden => $error::Forbidden(message),
                    Failure::NotFound => $error::NotFound(message),
                    Failure::Conflict => $error::Conflict(message),
                    Failure::OverQuota => $error::OverQuota(message),
                    Failure::Unavailable => $error::Unavailable,
                }
            }
        }
    };
}
