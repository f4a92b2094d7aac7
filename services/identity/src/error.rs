//! What an identity service call can refuse. The HTTP layer renders each as Keystone's
//! `{"error": {"code", "message", "title"}}` with the variant's status.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// 400
    #[error("{0}")]
    Invalid(String),
    /// 401: no valid credentials.
    #[error("The request you have made requires authentication.")]
    Unauthorized,
    /// 403: refused for the caller.
    #[error("{0}")]
    Forbidden(String),
    /// 404
    #[error("{0}")]
    NotFound(String),
    /// 409: a duplicate name, a state the request contradicts.
    #[error("{0}")]
    Conflict(String),
    /// 413
    #[error("{0}")]
    OverQuota(String),
    /// 500: a local failure (the key file, ...).
    #[error("An unexpected error prevented the server from fulfilling your request.")]
    Internal,
    /// 503
    #[error("The service is temporarily unavailable.")]
    Unavailable,
}

impl IdentityError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        IdentityError::Invalid(message.into())
    }
    pub fn forbidden(action: &str) -> Self {
        IdentityError::Forbidden(format!(
            "You are not authorized to perform the requested action: {action}."
        ))
    }
    pub fn not_found(kind: &str, id: &str) -> Self {
        IdentityError::NotFound(format!("Could not find {kind}: {id}."))
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        IdentityError::Conflict(message.into())
    }
}

impl From<std::io::Error> for IdentityError {
    fn from(e: std::io::Error) -> Self {
        tracing::error!(error = %e, "internal failure");
        IdentityError::Internal
    }
}

strata_service::refusals_from_commands!(IdentityError);
