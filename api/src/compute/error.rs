//! Nova's error format: `{"itemNotFound": {"code": 404, "message": "..."}}`, the key naming the fault.

use actix_web::http::StatusCode;
use strata_actors::CommandError;

/// The Nova API, as the shared error body and extractors name it.
#[derive(Debug, Clone, Copy)]
pub struct Nova;

/// An error answered in Nova's fault body.
pub type NovaError = crate::fault::Fault<Nova>;

/// Nova names 406 and 429 too.
impl crate::fault::FaultNames for Nova {
    fn own_fault_key(status: u16) -> Option<&'static str> {
        match status {
            406 => Some("notAcceptable"),
            429 => Some("overLimit"),
            _ => None,
        }
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
