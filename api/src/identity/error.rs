//! Keystone's error format: `{"error": {"code": N, "message": "...", "title": "..."}}`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use strata_actors::{CommandError, DomainError};

use crate::auth::AuthError;

#[derive(Debug, Clone, thiserror::Error)]
#[error("{status}: {message}")]
pub struct KeystoneError {
    pub status: StatusCode,
    pub message: String,
}

impl KeystoneError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        KeystoneError {
            status,
            message: message.into(),
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "The request you have made requires authentication.",
        )
    }
    pub fn forbidden(action: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            format!("You are not authorized to perform the requested action: {action}."),
        )
    }
    pub fn not_found(kind: &str, id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            format!("Could not find {kind}: {id}."),
        )
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
}

impl ResponseError for KeystoneError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let title = self.status.canonical_reason().unwrap_or("Error");
        HttpResponse::build(self.status).json(serde_json::json!({
            "error": { "code": self.status.as_u16(), "message": self.message, "title": title }
        }))
    }
}

impl From<std::io::Error> for KeystoneError {
    fn from(e: std::io::Error) -> Self {
        tracing::error!(error = %e, "internal failure");
        KeystoneError::internal(
            "An unexpected error prevented the server from fulfilling your request.",
        )
    }
}

impl From<AuthError> for KeystoneError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::NotFound(_) => KeystoneError::new(StatusCode::NOT_FOUND, e.to_string()),
            _ => KeystoneError::unauthorized(),
        }
    }
}

impl From<DomainError> for KeystoneError {
    fn from(e: DomainError) -> Self {
        CommandError::Domain(e).into()
    }
}

impl From<CommandError> for KeystoneError {
    fn from(e: CommandError) -> Self {
        let (status, message) = crate::common::command_failure(e);
        KeystoneError::new(status, message)
    }
}

impl From<strata_identity::IdentityError> for KeystoneError {
    fn from(e: strata_identity::IdentityError) -> Self {
        use strata_identity::IdentityError as E;
        let status = match &e {
            E::Invalid(_) => StatusCode::BAD_REQUEST,
            E::Unauthorized => StatusCode::UNAUTHORIZED,
            E::Forbidden(_) => StatusCode::FORBIDDEN,
            E::NotFound(_) => StatusCode::NOT_FOUND,
            E::Conflict(_) => StatusCode::CONFLICT,
            E::OverQuota(_) => StatusCode::PAYLOAD_TOO_LARGE,
            E::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            E::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        };
        KeystoneError::new(status, e.to_string())
    }
}
