//! What a compute service call can refuse, by where the refusal came from: a compute aggregate (quota,
//! server group, the server itself), Neutron (a port), or Cinder (a boot volume). The HTTP layer renders
//! each as Nova does (quota as 403, a refused port as Neutron's refusal worded by Nova, a refused boot
//! volume as "Block Device Mapping is Invalid").

use strata_actors::CommandError;
use strata_network::NetworkError;
use strata_volume::VolumeError;

#[derive(Debug, thiserror::Error)]
pub enum ComputeError {
    /// A compute aggregate refused the command, or the log failed.
    #[error(transparent)]
    Refused(#[from] CommandError),
    /// The network service refused a port of the request.
    #[error(transparent)]
    Network(#[from] NetworkError),
    /// The volume service refused a volume the request asked it to make.
    #[error(transparent)]
    BootVolume(VolumeError),
    /// The volume refused the attachment (its status, or it is attached already).
    #[error("{0}")]
    AttachRefused(CommandError),
    /// The server's hypervisor failed the operation.
    #[error("{0}")]
    Hypervisor(crate::driver::DriverError),
    /// Attaching an interface failed after the port was made (it was given back): the cause.
    #[error("{0}")]
    AttachFailed(Box<ComputeError>),
}
