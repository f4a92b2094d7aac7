//! Cinder's error format: `{"itemNotFound": {"code": 404, "message": "..."}}`, the key naming the fault the
//! way Cinder's `Fault` names it (statuses it has no name for, 406 included, are a `computeFault`).

use actix_web::http::StatusCode;
use strata_actors::CommandError;

/// The Cinder API, as the shared error body and extractors name it.
#[derive(Debug, Clone, Copy)]
pub struct Cinder;

/// An error answered in Cinder's fault body.
pub type CinderError = crate::fault::Fault<Cinder>;

impl CinderError {
    /// Cinder's `InvalidInput`: "Invalid input received: <reason>".
    pub fn invalid_input(reason: impl std::fmt::Display) -> Self {
        Self::bad_request(format!("Invalid input received: {reason}"))
    }
    /// Cinder's `InvalidVolume`: "Invalid volume: <reason>".
    pub fn invalid_volume(reason: impl std::fmt::Display) -> Self {
        Self::bad_request(format!("Invalid volume: {reason}"))
    }
    pub fn not_implemented(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_IMPLEMENTED, message)
    }
    pub fn volume_not_found(id: &str) -> Self {
        Self::not_found(format!("Volume {id} could not be found."))
    }
    pub fn snapshot_not_found(id: &str) -> Self {
        Self::not_found(format!("Snapshot {id} could not be found."))
    }
    pub fn type_not_found(id: &str) -> Self {
        Self::not_found(format!("Volume type {id} could not be found."))
    }
}

/// Cinder names 415 too (and not 406, which stays a `computeFault`).
impl crate::fault::FaultNames for Cinder {
    fn own_fault_key(status: u16) -> Option<&'static str> {
        match status {
            415 => Some("badMediaType"),
            _ => None,
        }
    }
}

impl From<CommandError> for CinderError {
    fn from(e: CommandError) -> Self {
        let (status, message) = crate::common::command_failure(e);
        // The quota aggregate names the Cinder exception ("VolumeLimitExceeded: ..."); Cinder's body carries
        // only the exception's message.
        let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
            strip_exception_name(&message).to_string()
        } else {
            message
        };
        CinderError::new(status, message)
    }
}

impl From<crate::image::GlanceError> for CinderError {
    fn from(e: crate::image::GlanceError) -> Self {
        CinderError::new(e.status, e.message)
    }
}

impl From<strata_image::ImageError> for CinderError {
    fn from(e: strata_image::ImageError) -> Self {
        crate::image::GlanceError::from(e).into()
    }
}

/// "VolumeLimitExceeded: Maximum ..." -> "Maximum ...": a leading CamelCase word and ": " is dropped.
fn strip_exception_name(message: &str) -> &str {
    match message.split_once(": ") {
        Some((name, rest))
            if name.len() > 1
                && name.starts_with(|c: char| c.is_ascii_uppercase())
                && name.chars().all(|c| c.is_ascii_alphanumeric()) =>
        {
            rest
        }
        _ => message,
    }
}

impl From<strata_volume::VolumeError> for CinderError {
    fn from(e: strata_volume::VolumeError) -> Self {
        use strata_volume::VolumeError as E;
        let status = match &e {
            E::Invalid(_) => StatusCode::BAD_REQUEST,
            E::Forbidden(_) => StatusCode::FORBIDDEN,
            E::NotFound(_) => StatusCode::NOT_FOUND,
            E::Conflict(_) => StatusCode::CONFLICT,
            E::OverQuota(_) => StatusCode::PAYLOAD_TOO_LARGE,
            E::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            E::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        };
        CinderError::new(status, e.message())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_messages_lose_the_exception_name() {
        assert_eq!(
            strip_exception_name(
                "VolumeLimitExceeded: Maximum number of volumes allowed (1) exceeded"
            ),
            "Maximum number of volumes allowed (1) exceeded"
        );
        assert_eq!(
            strip_exception_name("Quota exceeded: x"),
            "Quota exceeded: x"
        );
    }

    #[test]
    fn fault_keys_follow_cinder() {
        let key = |s: u16| CinderError::new(StatusCode::from_u16(s).unwrap(), "m").fault_key();
        assert_eq!(key(413), "overLimit");
        assert_eq!(key(406), "computeFault");
        assert_eq!(key(409), "conflictingRequest");
    }
}
