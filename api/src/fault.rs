//! The fault body Nova and Cinder answer errors with: `{"itemNotFound": {"code": 404, "message": "..."}}`,
//! the key naming the fault. One error type serves both; each API names the faults its own way
//! ([`FaultNames`]) and adds its own constructors and conversions.

use std::marker::PhantomData;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use strata_actors::{CommandError, DomainError};

use crate::auth::AuthError;

/// How an API names its faults beyond the names Nova and Cinder share ([`shared_fault_key`]).
pub trait FaultNames {
    /// The API's own key for `status`, where it differs from the shared one.
    fn own_fault_key(status: u16) -> Option<&'static str>;
}

/// The fault keys Nova and Cinder share; a status neither names is a `computeFault`.
fn shared_fault_key(status: u16) -> &'static str {
    match status {
        400 => "badRequest",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "itemNotFound",
        405 => "badMethod",
        409 => "conflictingRequest",
        413 => "overLimit",
        501 => "notImplemented",
        503 => "serviceUnavailable",
        _ => "computeFault",
    }
}

/// An error of the API `F`, answered as `F`'s fault body with `status`.
#[derive(Debug, thiserror::Error)]
#[error("{status}: {message}")]
pub struct Fault<F> {
    pub status: StatusCode,
    pub message: String,
    api: PhantomData<F>,
}

impl<F> Clone for Fault<F> {
    fn clone(&self) -> Self {
        Fault::new(self.status, self.message.clone())
    }
}

impl<F> Fault<F> {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Fault {
            status,
            message: message.into(),
            api: PhantomData,
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
    /// The answer when policy refuses an action (Nova and Cinder word it alike).
    pub fn policy(action: &str) -> Self {
        Self::forbidden(format!("Policy doesn't allow {action} to be performed."))
    }
}

impl<F: FaultNames> Fault<F> {
    /// The key naming this fault in the body.
    pub fn fault_key(&self) -> &'static str {
        let status = self.status.as_u16();
        F::own_fault_key(status).unwrap_or_else(|| shared_fault_key(status))
    }
}

impl<F: FaultNames + std::fmt::Debug> ResponseError for Fault<F> {
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

impl<F> From<AuthError> for Fault<F> {
    fn from(_: AuthError) -> Self {
        Fault::new(
            StatusCode::UNAUTHORIZED,
            "The request you have made requires authentication.",
        )
    }
}

impl<F> From<DomainError> for Fault<F>
where
    Fault<F>: From<CommandError>,
{
    fn from(e: DomainError) -> Self {
        CommandError::Domain(e).into()
    }
}

/// A refused microversion, in the API's fault body.
impl<F> From<crate::microversion::Refusal> for Fault<F> {
    fn from(r: crate::microversion::Refusal) -> Self {
        Fault::new(r.status, r.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nova_and_cinder_name_their_own_faults() {
        let nova = |s: u16| crate::compute::NovaError::new(StatusCode::from_u16(s).unwrap(), "m");
        let cinder =
            |s: u16| crate::volume::CinderError::new(StatusCode::from_u16(s).unwrap(), "m");
        assert_eq!(nova(404).fault_key(), "itemNotFound");
        assert_eq!(nova(406).fault_key(), "notAcceptable");
        assert_eq!(nova(429).fault_key(), "overLimit");
        assert_eq!(nova(415).fault_key(), "computeFault");
        assert_eq!(cinder(406).fault_key(), "computeFault");
        assert_eq!(cinder(415).fault_key(), "badMediaType");
        assert_eq!(cinder(429).fault_key(), "computeFault");
    }
}
