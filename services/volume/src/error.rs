//! What a volume service call can refuse. The HTTP layer renders each variant as Cinder's fault with its
//! status (`badRequest`, `itemNotFound`, `conflictingRequest`, `overLimit` ...).

use strata_actors::{CommandError, DomainError};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VolumeError {
    /// 400: malformed or unacceptable input, an invalid volume state for the request.
    #[error("{0}")]
    Invalid(String),
    /// 403: refused for the caller (a policy-like rule of Cinder's own code).
    #[error("{0}")]
    Forbidden(String),
    /// 404: a volume, snapshot, backup or type that does not exist or that the caller may not see.
    #[error("{0}")]
    NotFound(String),
    /// 409: the request contradicts the current state.
    #[error("{0}")]
    Conflict(String),
    /// 413: a quota limit was reached.
    #[error("{0}")]
    OverQuota(String),
    /// 501: a Cinder feature this deployment does not offer.
    #[error("{0}")]
    NotImplemented(String),
    /// 503: the log or an actor failed.
    #[error("The service is temporarily unavailable.")]
    Unavailable,
}

impl VolumeError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        VolumeError::Invalid(message.into())
    }
    /// Cinder's `InvalidInput`: "Invalid input received: <reason>".
    pub fn invalid_input(reason: impl std::fmt::Display) -> Self {
        Self::bad_request(format!("Invalid input received: {reason}"))
    }
    /// Cinder's `InvalidVolume`: "Invalid volume: <reason>".
    pub fn invalid_volume(reason: impl std::fmt::Display) -> Self {
        Self::bad_request(format!("Invalid volume: {reason}"))
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        VolumeError::Forbidden(message.into())
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        VolumeError::NotFound(message.into())
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        VolumeError::Conflict(message.into())
    }
    pub fn over_quota(message: impl Into<String>) -> Self {
        VolumeError::OverQuota(message.into())
    }
    pub fn not_implemented(message: impl Into<String>) -> Self {
        VolumeError::NotImplemented(message.into())
    }
    /// Cinder's answer when its own rules refuse `action` to the caller.
    pub fn policy(action: &str) -> Self {
        Self::forbidden(format!("Policy doesn't allow {action} to be performed."))
    }
    pub fn volume_not_found(id: &str) -> Self {
        Self::not_found(format!("Volume {id} could not be found."))
    }
    pub fn snapshot_not_found(id: &str) -> Self {
        Self::not_found(format!("Snapshot {id} could not be found."))
    }
    pub fn backup_not_found(id: &str) -> Self {
        Self::not_found(format!("Backup {id} could not be found."))
    }
    pub fn type_not_found(id: &str) -> Self {
        Self::not_found(format!("Volume type {id} could not be found."))
    }
    pub fn is_not_found(&self) -> bool {
        matches!(self, VolumeError::NotFound(_))
    }
    /// The message Cinder shows.
    pub fn message(&self) -> String {
        self.to_string()
    }
}

impl From<DomainError> for VolumeError {
    fn from(e: DomainError) -> Self {
        CommandError::Domain(e).into()
    }
}

impl From<CommandError> for VolumeError {
    fn from(e: CommandError) -> Self {
        use strata_service::Failure;
        let (failure, message) = strata_service::classify(e);
        match failure {
            Failure::Invalid => VolumeError::Invalid(message),
            Failure::Forbidden => VolumeError::Forbidden(message),
            Failure::NotFound => VolumeError::NotFound(message),
            Failure::Conflict => VolumeError::Conflict(message),
            // The quota aggregate names the Cinder exception ("VolumeLimitExceeded: ..."); Cinder's body
            // carries only its message.
            Failure::OverQuota => {
                VolumeError::OverQuota(strip_exception_name(&message).to_string())
            }
            Failure::Unavailable => VolumeError::Unavailable,
        }
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

/// The image service's refusals as Cinder reports them (an upload to an image records the image first).
impl From<strata_image::ImageError> for VolumeError {
    fn from(e: strata_image::ImageError) -> Self {
        use strata_image::ImageError as I;
        match e {
            I::Invalid(m) => VolumeError::Invalid(m),
            I::Forbidden(m) => VolumeError::Forbidden(m),
            I::NotFound(m) => VolumeError::NotFound(m),
            I::Conflict(m) => VolumeError::Conflict(m),
            I::OverQuota(m) => VolumeError::OverQuota(m),
            I::RangeNotSatisfiable | I::Internal(_) | I::Unavailable => VolumeError::Unavailable,
        }
    }
}
