//! Glance's error format (webob's JSON body): `{"code": "404 Not Found", "title": "Not Found", "message": "..."}`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use strata_actors::{CommandError, DomainError};

use crate::auth::AuthError;

#[derive(Debug, Clone, thiserror::Error)]
#[error("{status}: {message}")]
pub struct GlanceError {
    pub status: StatusCode,
    pub message: String,
}

impl GlanceError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        GlanceError {
            status,
            message: message.into(),
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "This server could not verify that you are authorized to access the document you requested.")
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
    pub fn image_not_found(id: &str) -> Self {
        Self::not_found(format!("No image found with ID {id}"))
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
}

impl ResponseError for GlanceError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        // webob's reason phrases, which Glance clients see, differ from today's RFC names for a few codes.
        let title = match self.status.as_u16() {
            413 => "Request Entity Too Large",
            416 => "Requested Range Not Satisfiable",
            _ => self.status.canonical_reason().unwrap_or("Error"),
        };
        HttpResponse::build(self.status).json(serde_json::json!({
            "code": format!("{} {}", self.status.as_u16(), title),
            "title": title,
            "message": self.message,
        }))
    }
}

impl From<AuthError> for GlanceError {
    fn from(_: AuthError) -> Self {
        GlanceError::unauthorized()
    }
}

impl From<DomainError> for GlanceError {
    fn from(e: DomainError) -> Self {
        CommandError::Domain(e).into()
    }
}

impl From<CommandError> for GlanceError {
    fn from(e: CommandError) -> Self {
        let (status, message) = crate::common::command_failure(e);
        GlanceError::new(status, message)
    }
}

impl From<strata_image::ImageError> for GlanceError {
    fn from(e: strata_image::ImageError) -> Self {
        use strata_image::ImageError as E;
        let status = match &e {
            E::Invalid(_) => StatusCode::BAD_REQUEST,
            E::Forbidden(_) => StatusCode::FORBIDDEN,
            E::NotFound(_) => StatusCode::NOT_FOUND,
            E::Conflict(_) => StatusCode::CONFLICT,
            E::OverQuota(_) => StatusCode::PAYLOAD_TOO_LARGE,
            E::RangeNotSatisfiable => StatusCode::RANGE_NOT_SATISFIABLE,
            E::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            E::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        };
        GlanceError::new(status, e.message())
    }
}
