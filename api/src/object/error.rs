//! Swift's error responses: a status and the short HTML (or plain text) body Swift's proxy sends.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use strata_object::ObjectError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwiftError {
    pub status: StatusCode,
    pub body: String,
    /// `text/html` for swob's standard pages, `text/plain` for messages written by middleware.
    pub html: bool,
}

impl std::fmt::Display for SwiftError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.body)
    }
}

impl SwiftError {
    fn page(status: StatusCode, title: &str, text: &str) -> Self {
        SwiftError {
            status,
            body: format!("<html><h1>{title}</h1><p>{text}</p></html>"),
            html: true,
        }
    }

    /// A plain-text message (what Swift's middlewares and validators answer with).
    pub fn text(status: StatusCode, message: impl Into<String>) -> Self {
        SwiftError {
            status,
            body: message.into(),
            html: false,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::text(StatusCode::BAD_REQUEST, message)
    }

    pub fn unauthorized() -> Self {
        Self::page(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "This server could not verify that you are authorized to access the document you requested.",
        )
    }

    pub fn forbidden() -> Self {
        Self::page(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "Access was denied to this resource.",
        )
    }

    pub fn not_found() -> Self {
        Self::page(
            StatusCode::NOT_FOUND,
            "Not Found",
            "The resource could not be found.",
        )
    }

    pub fn method_not_allowed() -> Self {
        Self::page(
            StatusCode::METHOD_NOT_ALLOWED,
            "Method Not Allowed",
            "The method is not allowed for this resource.",
        )
    }

    pub fn conflict() -> Self {
        Self::page(
            StatusCode::CONFLICT,
            "Conflict",
            "There was a conflict when trying to complete your request.",
        )
    }

    pub fn precondition_failed(text: &str) -> Self {
        Self::page(StatusCode::PRECONDITION_FAILED, "Precondition Failed", text)
    }

    pub fn unprocessable() -> Self {
        Self::page(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Unprocessable Entity",
            "Unable to process the contained instructions",
        )
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        Self::text(StatusCode::PAYLOAD_TOO_LARGE, message)
    }

    pub fn length_required() -> Self {
        Self::page(
            StatusCode::LENGTH_REQUIRED,
            "Length Required",
            "Length Required",
        )
    }

    pub fn range_not_satisfiable() -> Self {
        Self::page(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "Requested Range Not Satisfiable",
            "The Range requested is not available.",
        )
    }

    pub fn internal(message: impl std::fmt::Display) -> Self {
        tracing::error!(error = %message, "object storage request failed");
        Self::page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal Error",
            "The server has either erred or is incapable of performing the requested operation.",
        )
    }

    pub fn unavailable(message: impl std::fmt::Display) -> Self {
        tracing::warn!(error = %message, "object storage request could not be served now");
        Self::page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Service Unavailable",
            "The server is currently unavailable. Please try again at a later time.",
        )
    }
}

impl From<ObjectError> for SwiftError {
    fn from(e: ObjectError) -> Self {
        match e {
            ObjectError::NotFound(_) => SwiftError::not_found(),
            ObjectError::Conflict(_) => SwiftError::conflict(),
            ObjectError::PreconditionFailed => {
                SwiftError::precondition_failed("A precondition for this request was not met.")
            }
            ObjectError::EtagMismatch => SwiftError::unprocessable(),
            ObjectError::TooLarge(m) => SwiftError::too_large(m),
            ObjectError::Invalid(m) => SwiftError::bad_request(m),
            ObjectError::ClientDisconnect => SwiftError::text(
                StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
                "Client Disconnect",
            ),
            ObjectError::Unavailable(m) => SwiftError::unavailable(m),
            ObjectError::Internal(m) => SwiftError::internal(m),
        }
    }
}

impl ResponseError for SwiftError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let content_type = if self.html {
            "text/html; charset=UTF-8"
        } else {
            "text/plain; charset=UTF-8"
        };
        HttpResponse::build(self.status)
            .content_type(content_type)
            .body(self.body.clone())
    }
}
