//! Servers' ports, as Nova's conductor asks for them: bind a server's ports to the host it runs on (after a
//! spawn and after every move), and give them back when the server goes (delete the ports Nova made for it,
//! unbind the ones the user gave).

use strata_actors::compute::ServerPort;

use crate::{bind_port, delete_port, Caller, NetworkError, Networks};

/// The owner Nova gives the ports of servers (Neutron's `compute:<zone>`).
pub const DEVICE_OWNER: &str = "compute:nova";

/// Bind every port of server `server_id` to `host` (the port becomes ACTIVE there). Stops at the first
/// refusal, which names the port.
pub async fn bind_server_ports(
    networks: &Networks,
    caller: &Caller,
    server_id: &str,
    ports: &[ServerPort],
    host: &str,
) -> Result<(), NetworkError> {
    for p in ports {
        bind_port(networks, caller, &p.port_id, host, server_id, DEVICE_OWNER)
            .await
            .map_err(|e| in_port(&p.port_id, e))?;
    }
    Ok(())
}

/// Delete the ports Nova made for a server and unbind the others (no host, no device). A port already gone
/// is fine; every port is tried, and the first refusal is returned.
pub async fn release_server_ports(
    networks: &Networks,
    caller: &Caller,
    ports: &[ServerPort],
) -> Result<(), NetworkError> {
    let mut first = None;
    for p in ports {
        let result = if p.created {
            delete_port(networks, caller, &p.port_id).await
        } else {
            bind_port(networks, caller, &p.port_id, "", "", "")
                .await
                .map(|_| ())
        };
        match result {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => {
                tracing::warn!(port = %p.port_id, error = %e, "releasing a server's port failed");
                first.get_or_insert(in_port(&p.port_id, e));
            }
        }
    }
    first.map_or(Ok(()), Err)
}

/// The error, its message naming the port it concerns.
fn in_port(port_id: &str, e: NetworkError) -> NetworkError {
    match e {
        NetworkError::Conflict { kind, message } => NetworkError::Conflict {
            kind,
            message: format!("port {port_id}: {message}"),
        },
        NetworkError::Invalid { kind, message } => NetworkError::Invalid {
            kind,
            message: format!("port {port_id}: {message}"),
        },
        other => other,
    }
}
