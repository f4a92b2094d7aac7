//! What an image service call can refuse. The HTTP layer renders each variant as Glance's webob body
//! (`{"code": "404 Not Found", "title": ..., "message": ...}`) with the variant's status.

use strata_actors::image::store::StoreError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    /// 400: malformed input, a size or checksum that does not match the bytes.
    #[error("{0}")]
    Invalid(String),
    /// 403: the caller may see the image but not change it.
    #[error("{0}")]
    Forbidden(String),
    /// 404: an image (or its data) that does not exist or that the caller may not see.
    #[error("{0}")]
    NotFound(String),
    /// 409: the image's state refuses the request.
    #[error("{0}")]
    Conflict(String),
    /// 413: the project's image or byte quota is used up.
    #[error("{0}")]
    OverQuota(String),
    /// 416: a byte range outside the image.
    #[error("Requested range not satisfiable.")]
    RangeNotSatisfiable,
    /// 500: the store failed (logged where it happened).
    #[error("{0}")]
    Internal(String),
    /// 503: the log or an actor failed.
    #[error("The service is temporarily unavailable.")]
    Unavailable,
}

impl ImageError {
    /// Glance's message for an image that is not there (or not visible).
    pub fn image_not_found(id: &str) -> Self {
        ImageError::NotFound(format!("No image found with ID {id}"))
    }

    /// The message the API shows.
    pub fn message(&self) -> String {
        self.to_string()
    }
}

impl From<StoreError> for ImageError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::TooLarge { max } => ImageError::OverQuota(format!(
                "Image storage quota exceeded: at most {max} more bytes may be stored by this project."
            )),
            StoreError::SizeMismatch { expected, actual } => ImageError::Invalid(format!(
                "Image size mismatch: expected {expected} bytes, received {actual}."
            )),
            StoreError::ChecksumMismatch { expected, actual } => ImageError::Invalid(format!(
                "Checksum verification failed: expected {expected}, computed {actual}."
            )),
            StoreError::NotFound => ImageError::NotFound("Image data could not be found.".into()),
            StoreError::InvalidRange => ImageError::RangeNotSatisfiable,
            StoreError::Io(m) => {
                tracing::error!(error = %m, "image store failure");
                ImageError::Internal("The image store failed.".into())
            }
        }
    }
}

strata_service::refusals_from_commands!(ImageError);
