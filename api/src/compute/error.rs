//! Nova's error format: `{"itemNotFound": {"code": 404, "message": "..."}}`, the key naming the fault.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use strata_actors::{CommandError, DomainError};

use crate::auth::AuthError;

#[derive(Debug, Clone, thiserror::Error)]
#[error("{status}: {message}")]
pub struct NovaError {
    pub status: StatusCode,
    pub message: String,
}

impl NovaError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        NovaError {
            status,
            message: message.into(),
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }
    /// Nova's answer when policy refuses an action.
    pub fn policy(action: &str) -> Self {
        Self::forbidden(format!("Policy doesn't allow {action} to be performed."))
    }

    fn fault_key(&self) -> &'static str {
        match self.status.as_u16() {
            400 => "badRequest",
            401 => "unauthorized",
            403 => "forbidden",
            404 => "itemNotFound",
            405 => "badMethod",
            406 => "notAcceptable",
            409 => "conflictingRequest",
            413 | 429 => "overLimit",
            501 => "notImplemented",
            503 => "serviceUnavailable",
            _ => "computeFault",
        }
    }
}

impl ResponseError for NovaError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut body = serde_json::Map::new();
        body.insert(
            self.fault_key().to_string(),
            serde_json::json!({ "code": self.status.as_u16(), "message": self.message }),
        );
        HttpResponse::build(self.status).json(serde_json::Value::Object(body))
    }
}

impl From<AuthError> for NovaError {
    fn from(_: AuthError) -> Self {
        NovaError::new(
            StatusCode::UNAUTHORIZED,
            "The request you have made requires authentication.",
        )
    }
}

impl From<DomainError> for NovaError {
    fn from(e: DomainError) -> Self {
        CommandError::Domain(e).into()
    }
}

impl From<CommandError> for NovaError {
    fn from(e: CommandError) -> Self {
        let (status, message) = crate::common::command_failure(e);
        // Nova answers quota faults with 403, not 413.
        let status = if status == StatusCode::PAYLOAD_TOO_LARGE {
            StatusCode::FORBIDDEN
        } else {
            status
        };
        NovaError::new(status, message)
    }
}

impl From<strata_compute::ComputeError> for NovaError {
    fn from(e: strata_compute::ComputeError) -> Self {
        use strata_compute::ComputeError as E;
        match e {
            E::Refused(e) => e.into(),
            E::Network(e) => super::network::nova_error(e),
            E::BootVolume(e) => super::volumes::boot_volume_error(e),
            E::Hypervisor(e) => NovaError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
            E::AttachFailed(cause) => NovaError::from(*cause),
            E::AttachRefused(e) => NovaError::bad_request(NovaError::from(e).message),
        }
    }
}
