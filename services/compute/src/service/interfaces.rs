//! A running server's interfaces (`os-interface`): attach a port (given, or made on a network) and plug it
//! into the server's hypervisor; detach one and give it back. The caller checked that the server may have
//! its interfaces changed (state, lock, policy).

use strata_actors::compute::{ServerCommand, ServerPort};
use strata_network::servers::{
    give_back_server_ports, make_server_port, release_server_ports, Nic, DEVICE_OWNER,
};
use strata_projections::compute::ServerRow;
use strata_service::Caller;

use super::Compute;
use crate::driver::DriverError;
use crate::ComputeError;

/// Attach `nic` to server `row`: make (or take) the port, plug it on the server's host and bind it there,
/// then record it on the server. A failure after the port was made unplugs it and gives it back.
pub async fn attach_interface(
    compute: &Compute,
    caller: &Caller,
    row: &ServerRow,
    nic: &Nic,
) -> Result<ServerPort, ComputeError> {
    let id = &row.id;
    let host = &row.state.host;
    let port = make_server_port(&compute.networks, caller, id, nic, &None).await?;
    let plugged = async {
        if let Some(agent) = compute.engine.agent(host) {
            agent
                .driver
                .plug_port(id, &port.port_id)
                .await
                .map_err(ComputeError::Hypervisor)?;
            strata_network::bind_port(
                &compute.networks,
                caller,
                &port.port_id,
                host,
                id,
                DEVICE_OWNER,
            )
            .await?;
        }
        compute
            .run(
                &compute.servers,
                id,
                ServerCommand::AttachInterface {
                    port: port.clone(),
                    admin: caller.is_admin,
                },
                &caller.meta,
            )
            .await?;
        Ok::<(), ComputeError>(())
    }
    .await;
    if let Err(e) = plugged {
        if let Some(agent) = compute.engine.agent(host) {
            let _ = agent.driver.unplug_port(id, &port.port_id).await;
        }
        give_back_server_ports(&compute.networks, caller, std::slice::from_ref(&port)).await;
        return Err(ComputeError::AttachFailed(Box::new(e)));
    }
    Ok(port)
}

/// Detach port `port` from server `row`: unplug it from the hypervisor, record the detach, and give the
/// port back (deleted if Nova made it, unbound if the user gave it).
pub async fn detach_interface(
    compute: &Compute,
    caller: &Caller,
    row: &ServerRow,
    port: &ServerPort,
) -> Result<(), ComputeError> {
    let id = &row.id;
    if let Some(agent) = compute.engine.agent(&row.state.host) {
        match agent.driver.unplug_port(id, &port.port_id).await {
            Ok(()) | Err(DriverError::NotFound(_)) => {}
            Err(e) => return Err(ComputeError::Hypervisor(e)),
        }
    }
    compute
        .run(
            &compute.servers,
            id,
            ServerCommand::DetachInterface {
                port_id: port.port_id.clone(),
                admin: caller.is_admin,
            },
            &caller.meta,
        )
        .await?;
    if let Err(e) =
        release_server_ports(&compute.networks, caller, std::slice::from_ref(port)).await
    {
        tracing::warn!(server = %id, error = %e, "a detached port was not given back");
    }
    Ok(())
}
