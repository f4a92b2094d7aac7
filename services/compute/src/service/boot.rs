//! Booting servers (`POST /servers`): the request was parsed and checked by the caller (flavor, image, key,
//! block device mapping, networks, zone, hints, group visibility); here it takes, in order, what the servers
//! need, each from the service that owns it, and gives back everything taken when a later step refuses:
//!
//! 1. quota: `max_count` servers reserved in one append, or as many as fit down to `min_count`;
//! 2. the server group: the new servers become members (the group's member limit is checked there);
//! 3. boot volumes: new volumes (from an image, a snapshot, or blank) made through the volume service;
//! 4. ports: each server's ports made or taken through the network service;
//! 5. the servers, each recorded (`ServerCreated`) with its ports and volumes.
//!
//! A refusal at step N leaves compensating events for steps 1..N-1 (quota released, volumes deleted, ports
//! deleted or unbound), all with the request's id as correlation id; nothing is left held.

use strata_actors::compute::quota::{Amounts, Limits, UsageCommand};
use strata_actors::compute::{
    BlockDevice, FlavorSpec, ServerCommand, ServerGroupCommand, ServerPort,
};
use strata_identity::Identity;
use strata_network::servers::{give_back_server_ports, make_server_ports, Requested};
use strata_proto::compute as pb;
use strata_service::Caller;
use strata_volume::{create_volume, discard_volume, NewVolume, Volumes};

use super::Compute;
use crate::ComputeError;

/// A checked server create.
pub struct BootRequest {
    /// What every server of the request records; the per-server fields (a `-N` name suffix when there are
    /// several, hostname, launch index, reservation id, request id, volumes and ports) are filled in here.
    pub server: pb::ServerCreated,
    pub flavor: FlavorSpec,
    pub min_count: u32,
    pub max_count: u32,
    pub networks: Requested,
    /// Security groups for new ports (`None`: the project's default group).
    pub security_groups: Option<Vec<String>>,
    /// The Cinder volumes of the block device mapping, the boot volume first; new ones have no id yet.
    pub block_devices: Vec<BlockDevice>,
}

/// The servers a boot recorded.
pub struct Booted {
    pub ids: Vec<String>,
    pub reservation_id: String,
}

fn flavor_amounts(f: &FlavorSpec) -> Amounts {
    Amounts {
        instances: 1,
        cores: f.vcpus as i64,
        ram: f.ram_mb as i64,
    }
}

/// Boot the servers of `request` for `caller`.
pub async fn boot(
    compute: &Compute,
    volumes: &Volumes,
    identity: &Identity,
    caller: &Caller,
    request: BootRequest,
) -> Result<Booted, ComputeError> {
    let BootRequest {
        server,
        flavor,
        min_count,
        max_count,
        networks,
        security_groups,
        mut block_devices,
    } = request;
    let ids = reserve(compute, caller, &flavor, min_count, max_count).await?;
    if !server.group_id.is_empty() {
        let limit = compute
            .limits(&caller.project_id)
            .get("server_group_members")
            .copied()
            .unwrap_or(-1);
        let added = compute
            .groups
            .execute(
                &server.group_id,
                ServerGroupCommand::AddMembers {
                    servers: ids.clone(),
                    limit,
                },
                caller.meta.clone(),
            )
            .await;
        if let Err(e) = added {
            release(compute, caller, &ids).await;
            return Err(e.into());
        }
    }
    // New volumes (from an image, a snapshot or blank) are made through Cinder before the server exists.
    if let Err(e) = make_boot_volumes(volumes, identity, caller, &mut block_devices).await {
        release(compute, caller, &ids).await;
        return Err(ComputeError::BootVolume(e));
    }
    // Each server's ports, made through Neutron before the servers are recorded.
    let mut server_ports: Vec<Vec<ServerPort>> = Vec::new();
    for id in &ids {
        match make_server_ports(&compute.networks, caller, id, &networks, &security_groups).await {
            Ok(p) => server_ports.push(p),
            Err(e) => {
                for made in &server_ports {
                    give_back_server_ports(&compute.networks, caller, made).await;
                }
                discard_boot_volumes(volumes, caller, &block_devices).await;
                release(compute, caller, &ids).await;
                return Err(e.into());
            }
        }
    }
    let reservation_id = format!("r-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let multiple = ids.len() > 1;
    for (i, id) in ids.iter().enumerate() {
        let mut created = server.clone();
        if multiple {
            created.name = format!("{}-{}", server.name, i + 1);
        }
        created.hostname = hostname(&created.name);
        created.reservation_id = reservation_id.clone();
        created.launch_index = i as u32;
        created.request_id = caller.meta.correlation_id.clone();
        created.block_devices = block_devices.iter().map(|b| b.to_pb()).collect();
        created.ports = server_ports[i].iter().map(|p| p.to_pb()).collect();
        if let Err(e) = compute
            .run(
                &compute.servers,
                id,
                ServerCommand::Create(Box::new(created)),
                &caller.meta,
            )
            .await
        {
            release(compute, caller, &ids[i..]).await;
            discard_boot_volumes(volumes, caller, &block_devices).await;
            for made in &server_ports[i..] {
                give_back_server_ports(&compute.networks, caller, made).await;
            }
            return Err(e.into());
        }
    }
    Ok(Booted {
        ids,
        reservation_id,
    })
}

/// A server's hostname: its name with every character other than ASCII letters, digits and `-` made `-`,
/// lower-cased.
fn hostname(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

/// Reserve quota for `max_count` new servers, or as many as fit down to `min_count`; their new ids.
async fn reserve(
    compute: &Compute,
    caller: &Caller,
    flavor: &FlavorSpec,
    min_count: u32,
    max_count: u32,
) -> Result<Vec<String>, ComputeError> {
    let limits = Limits::from_map(&compute.limits(&caller.project_id));
    let mut n = max_count;
    loop {
        let ids: Vec<String> = (0..n).map(|_| uuid::Uuid::new_v4().to_string()).collect();
        let holders = ids
            .iter()
            .map(|id| (id.clone(), flavor_amounts(flavor)))
            .collect();
        let reserved = compute
            .usage
            .execute(
                &caller.project_id,
                UsageCommand::Reserve { holders, limits },
                caller.meta.clone(),
            )
            .await;
        match reserved {
            Ok(_) => return Ok(ids),
            Err(e) if n <= min_count => return Err(e.into()),
            Err(_) => n -= 1,
        }
    }
}

/// Give back the quota held for `ids`.
async fn release(compute: &Compute, caller: &Caller, ids: &[String]) {
    for id in ids {
        let released = compute
            .usage
            .execute(
                &caller.project_id,
                UsageCommand::Release { holder: id.clone() },
                caller.meta.clone(),
            )
            .await;
        if let Err(e) = released {
            tracing::error!(server = %id, error = %e, "releasing a refused server's quota failed");
        }
    }
}

/// Make the new volumes of a boot-from-volume request through Cinder (quota, type, zone as for `POST
/// /volumes`) and fill in their ids. On a refusal, the volumes made so far are deleted again.
async fn make_boot_volumes(
    volumes: &Volumes,
    identity: &Identity,
    caller: &Caller,
    disks: &mut [BlockDevice],
) -> Result<(), strata_volume::VolumeError> {
    let mut made: Vec<String> = Vec::new();
    for b in disks.iter_mut().filter(|b| b.source_type != "volume") {
        let request = NewVolume {
            size_gb: Some(b.size_gb),
            image_ref: (b.source_type == "image").then(|| b.source_id.clone()),
            snapshot_id: (b.source_type == "snapshot").then(|| b.source_id.clone()),
            ..Default::default()
        };
        match create_volume(volumes, identity, caller, request).await {
            Ok(row) => {
                b.volume_id = row.id.clone();
                made.push(row.id);
            }
            Err(e) => {
                for id in made {
                    discard_volume(volumes, caller, &id).await;
                }
                return Err(e);
            }
        }
    }
    Ok(())
}

/// Delete the volumes `make_boot_volumes` made (the server they were for was not created).
async fn discard_boot_volumes(volumes: &Volumes, caller: &Caller, disks: &[BlockDevice]) {
    for b in disks.iter().filter(|b| b.source_type != "volume") {
        discard_volume(volumes, caller, &b.volume_id).await;
    }
}
