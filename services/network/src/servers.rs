//! Servers' ports, as Nova asks for them: make (or take) the ports of a server being created, bind a
//! server's ports to the host it runs on (the conductor, after a spawn and after every move), and give them
//! back when the server goes or its create is refused (delete the ports Nova made for it, unbind the ones
//! the user gave).

use strata_actors::compute::ServerPort;

use crate::{
    bind_port, create_port, delete_port, Caller, IpRequest, NetworkError, Networks, NewPort,
};

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

/// One entry of a server create's `networks` list: a network (with an optional fixed IP) or a port.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Nic {
    pub network_id: Option<String>,
    pub port_id: Option<String>,
    pub fixed_ip: Option<String>,
}

/// What a server create asks of the network.
#[derive(Debug, Clone, PartialEq)]
pub enum Requested {
    /// No NIC at all.
    None,
    /// A NIC on the project's network, made by auto-allocation when the project has none.
    Auto,
    /// These NICs.
    List(Vec<Nic>),
}

impl Requested {
    /// The value `ServerCreated.networks` records ("none", "auto", or "list").
    pub fn label(&self) -> &'static str {
        match self {
            Requested::None => "none",
            Requested::Auto => "auto",
            Requested::List(_) => "list",
        }
    }
}

/// Make (or take) the ports of server `server_id`, which is about to be created: new ports on the networks
/// asked for (with the security groups given, or the project's default group), and the ports the user gave
/// (each must be free) bound to the server. On a refusal the ports made so far are deleted and the ports
/// taken are released, so a refused create leaves no port behind.
pub async fn make_server_ports(
    networks: &Networks,
    caller: &Caller,
    server_id: &str,
    requested: &Requested,
    security_groups: &Option<Vec<String>>,
) -> Result<Vec<ServerPort>, NetworkError> {
    let nics = match requested {
        Requested::None => return Ok(vec![]),
        Requested::Auto => {
            let id = crate::auto::auto_network(networks, &caller.project_id, &caller.meta).await?;
            vec![Nic {
                network_id: Some(id),
                ..Nic::default()
            }]
        }
        Requested::List(nics) => nics.clone(),
    };
    let mut made: Vec<ServerPort> = Vec::new();
    for nic in nics {
        match make_server_port(networks, caller, server_id, &nic, security_groups).await {
            Ok(p) => made.push(p),
            Err(e) => {
                give_back_server_ports(networks, caller, &made).await;
                return Err(e);
            }
        }
    }
    Ok(made)
}

/// One NIC of server `server_id` (at create, or attached later): a port the user gave (it must be free; it
/// is bound to the server) or a new port on a network the caller may use.
pub async fn make_server_port(
    networks: &Networks,
    caller: &Caller,
    server_id: &str,
    nic: &Nic,
    security_groups: &Option<Vec<String>>,
) -> Result<ServerPort, NetworkError> {
    if let Some(port_id) = &nic.port_id {
        let port = networks
            .view
            .snapshot()
            .port(port_id)
            .filter(|p| p.state.is_live() && caller.owns(&p.state.project_id))
            .cloned()
            .ok_or_else(|| NetworkError::NotFound {
                kind: "PortNotFound".into(),
                message: format!("Port id {port_id} could not be found."),
            })?;
        if !port.state.device_id.is_empty() {
            return Err(NetworkError::Conflict {
                kind: "PortInUse".into(),
                message: format!("Port {port_id} is still in use."),
            });
        }
        bind_port(networks, caller, port_id, "", server_id, DEVICE_OWNER).await?;
        return Ok(ServerPort {
            port_id: port_id.clone(),
            network_id: port.state.network_id.clone(),
            created: false,
        });
    }
    let network_id = nic.network_id.clone().unwrap_or_default();
    let visible = networks
        .view
        .snapshot()
        .network(&network_id)
        .is_some_and(|n| !n.state.deleted && (caller.owns(&n.state.project_id) || n.state.shared));
    if !visible {
        return Err(NetworkError::NotFound {
            kind: "NetworkNotFound".into(),
            message: format!("Network {network_id} could not be found."),
        });
    }
    let req = NewPort {
        network_id: network_id.clone(),
        fixed_ips: nic.fixed_ip.as_ref().map(|ip| {
            vec![IpRequest {
                subnet_id: None,
                ip_address: Some(ip.clone()),
            }]
        }),
        device_id: server_id.to_string(),
        device_owner: DEVICE_OWNER.into(),
        security_groups: security_groups.clone(),
        ..NewPort::default()
    };
    let row = create_port(networks, caller, req).await?;
    Ok(ServerPort {
        port_id: row.id,
        network_id,
        created: true,
    })
}

/// Give back the ports made or taken for a server whose create was then refused; a failure is logged.
pub async fn give_back_server_ports(networks: &Networks, caller: &Caller, ports: &[ServerPort]) {
    if let Err(e) = release_server_ports(networks, caller, ports).await {
        tracing::error!(error = %e, "could not give back a port of a refused server");
    }
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
