//! `/v2.0/subnets`: create (IPv4 and IPv6; gateway, pools, DNS servers, host routes, DHCP, IPv6 modes),
//! list, show, update, delete. A subnet lives inside its network's aggregate, so its address plan, the
//! overlap check with its siblings and its allocations are decided on one stream.

use serde_json::{Map, Value};
use strata_actors::network::ipam::{self, Cidr};
use strata_actors::network::{NetworkCommand, Subnet, SubnetSpec};
use strata_actors::Aggregate;
use strata_events::Metadata;
use strata_projections::network::NetworkRow;

use super::quotas::{release_quota, reserve_quota};
use super::{Caller, NetworkError, Networks};
use crate::input::{check_keys, opt_bool, opt_string, tags_value};

pub const IPV6_MODES: &[&str] = &["slaac", "dhcpv6-stateful", "dhcpv6-stateless"];

pub const MAX_DNS: usize = 5;

pub const MAX_ROUTES: usize = 20;

/// Whether `caller` may see a subnet: its own, one of a shared network, or any for admins.
pub fn visible(caller: &Caller, s: &Subnet, net: &NetworkRow) -> bool {
    caller.owns(&s.project_id) || caller.owns(&net.state.project_id) || net.state.shared
}

/// The subnet's network id, if `caller` may change the subnet (404 invisible, 403 not its own).
pub fn owned(
    networks: &Networks,
    caller: &Caller,
    id: &str,
    action: &str,
) -> Result<(String, Subnet), NetworkError> {
    let view = networks.view.snapshot();
    let (s, net, _) = view
        .subnet(id)
        .filter(|(s, net, _)| visible(caller, s, net))
        .ok_or_else(|| NetworkError::subnet_not_found(id))?;
    if !caller.owns(&s.project_id) && !caller.owns(&net.state.project_id) {
        return Err(NetworkError::policy(action));
    }
    Ok((net.id.clone(), s.clone()))
}

/// Record a validated subnet: decided against the network first (overlaps, pools: refused with nothing
/// recorded), then the quota, then the subnet.
pub async fn create_subnet(
    networks: &Networks,
    meta: &Metadata,
    network_id: &str,
    subnet_id: &str,
    spec: SubnetSpec,
) -> Result<(), NetworkError> {
    let cmd = NetworkCommand::AddSubnet {
        subnet_id: subnet_id.to_string(),
        spec: spec.clone(),
    };
    let (state, _) = networks.networks.load(network_id).await?;
    state.decide(&cmd)?;
    let holder = format!("subnet:{subnet_id}");
    reserve_quota(networks, meta, &spec.project_id, "subnet", &holder).await?;
    if let Err(e) = networks
        .run(&networks.networks, network_id, cmd, meta)
        .await
    {
        networks.undo_quota(&spec.project_id, &holder, meta).await;
        return Err(e.into());
    }
    Ok(())
}

/// Tags of subnets (inside their network's aggregate).
pub struct SubnetTags;

#[async_trait::async_trait]
impl super::TagResource for SubnetTags {
    fn collection(&self) -> &str {
        "subnets"
    }

    async fn tags(
        &self,
        networks: &Networks,
        caller: &Caller,
        id: &str,
    ) -> Result<Vec<String>, NetworkError> {
        let view = networks.view.snapshot();
        view.subnet(id)
            .filter(|(s, net, _)| visible(caller, s, net))
            .map(|(s, _, _)| s.tags.clone())
            .ok_or_else(|| NetworkError::subnet_not_found(id))
    }

    async fn set_tags(
        &self,
        networks: &Networks,
        caller: &Caller,
        id: &str,
        tags: Vec<String>,
    ) -> Result<(), NetworkError> {
        let (network_id, _) = owned(networks, caller, id, "update_subnet:tags")?;
        networks
            .run(
                &networks.networks,
                &network_id,
                NetworkCommand::SetSubnetTags {
                    subnet_id: id.to_string(),
                    tags,
                },
                &caller.meta,
            )
            .await?;
        Ok(())
    }
}

/// Remove subnet `id` from its network (refused while ports hold addresses on it), then give back its
/// quota.
pub async fn delete_subnet(
    networks: &Networks,
    caller: &Caller,
    id: &str,
) -> Result<(), NetworkError> {
    let (network_id, s) = owned(networks, caller, id, "delete_subnet")?;
    networks
        .run(
            &networks.networks,
            &network_id,
            NetworkCommand::RemoveSubnet {
                subnet_id: id.to_string(),
            },
            &caller.meta,
        )
        .await
        .map_err(|e| {
            let e = NetworkError::from(e);
            if e.kind() == "SubnetInUse" {
                NetworkError::conflict(
                    "SubnetInUse",
                    format!("Unable to complete operation on subnet {id}: One or more ports have an IP allocation from this subnet."),
                )
            } else {
                e
            }
        })?;
    release_quota(
        networks,
        &caller.meta,
        &s.project_id,
        &format!("subnet:{id}"),
    )
    .await;
    Ok(())
}

pub fn ip_of(v: &Value, v6: bool, what: &str) -> Result<String, NetworkError> {
    let s = v.as_str().ok_or_else(|| {
        NetworkError::invalid_input(format!("'{v}' is not a valid IP address for {what}"))
    })?;
    let a = ipam::parse_ip_of(s, v6).ok_or_else(|| {
        NetworkError::invalid_input(format!(
            "'{s}' is not a valid IPv{} address for {what}",
            if v6 { 6 } else { 4 }
        ))
    })?;
    Ok(ipam::fmt_ip(a, v6))
}

pub fn parse_pools(v: &Value, v6: bool) -> Result<Vec<(String, String)>, NetworkError> {
    let Value::Array(items) = v else {
        return Err(NetworkError::invalid_input(format!(
            "'{v}' is not a list of allocation pools"
        )));
    };
    items
        .iter()
        .map(|p| {
            let (Some(start), Some(end)) = (p.get("start"), p.get("end")) else {
                return Err(NetworkError::invalid_input(format!(
                    "'{p}' is not an allocation pool: it needs 'start' and 'end'"
                )));
            };
            Ok((
                ip_of(start, v6, "allocation_pools")?,
                ip_of(end, v6, "allocation_pools")?,
            ))
        })
        .collect()
}

pub fn parse_dns(v: &Value, v6: bool) -> Result<Vec<String>, NetworkError> {
    let Value::Array(items) = v else {
        return Err(NetworkError::invalid_input(format!(
            "'{v}' is not a list of name servers"
        )));
    };
    if items.len() > MAX_DNS {
        return Err(NetworkError::bad_request(format!(
            "Unable to complete operation for the subnet. The number of DNS nameservers exceeds the limit {MAX_DNS}."
        )));
    }
    let mut out: Vec<String> = Vec::new();
    for item in items {
        let s = item.as_str().ok_or_else(|| {
            NetworkError::invalid_input(format!("'{item}' is not a valid nameserver"))
        })?;
        let (iv6, a) = ipam::parse_ip(s).ok_or_else(|| {
            NetworkError::invalid_input(format!("'{s}' is not a valid nameserver"))
        })?;
        let _ = v6;
        let text = ipam::fmt_ip(a, iv6);
        if out.contains(&text) {
            return Err(NetworkError::invalid_input(format!(
                "Duplicate nameserver '{s}'"
            )));
        }
        out.push(text);
    }
    Ok(out)
}

pub fn parse_routes(v: &Value, v6: bool) -> Result<Vec<(String, String)>, NetworkError> {
    let Value::Array(items) = v else {
        return Err(NetworkError::invalid_input(format!(
            "'{v}' is not a list of host routes"
        )));
    };
    if items.len() > MAX_ROUTES {
        return Err(NetworkError::bad_request(format!(
            "Unable to complete operation for the subnet. The number of host routes exceeds the limit {MAX_ROUTES}."
        )));
    }
    let mut out: Vec<(String, String)> = Vec::new();
    for r in items {
        let (Some(Value::String(d)), Some(n)) = (r.get("destination"), r.get("nexthop")) else {
            return Err(NetworkError::invalid_input(format!(
                "'{r}' is not a host route: it needs 'destination' and 'nexthop'"
            )));
        };
        let dest = Cidr::parse(d).map_err(NetworkError::invalid_input)?;
        if dest.v6 != v6 {
            return Err(NetworkError::invalid_input(format!(
                "the host route destination {d} is not of the subnet's IP version"
            )));
        }
        let route = (dest.to_string(), ip_of(n, v6, "host_routes")?);
        if out.contains(&route) {
            return Err(NetworkError::invalid_input(format!(
                "Duplicate hostroute '{r}'"
            )));
        }
        out.push(route);
    }
    Ok(out)
}

pub const CREATE_KEYS: &[&str] = &[
    "name",
    "description",
    "network_id",
    "ip_version",
    "cidr",
    "gateway_ip",
    "allocation_pools",
    "dns_nameservers",
    "host_routes",
    "enable_dhcp",
    "ipv6_ra_mode",
    "ipv6_address_mode",
    "tags",
    "tenant_id",
    "project_id",
    "service_types",
    "subnetpool_id",
    "use_default_subnet_pool",
    "prefixlen",
];

/// Validate a subnet create body against network `net` (nothing recorded); defaults filled in.
pub fn parse_subnet(
    net: &NetworkRow,
    project_id: &str,
    m: &Map<String, Value>,
) -> Result<SubnetSpec, NetworkError> {
    check_keys(m, CREATE_KEYS)?;
    if m.get("subnetpool_id").is_some_and(|v| !v.is_null())
        || opt_bool(m, "use_default_subnet_pool")? == Some(true)
        || m.get("prefixlen").is_some_and(|v| !v.is_null())
    {
        return Err(NetworkError::bad_request(
            "Subnet pools are not supported: give a cidr.",
        ));
    }
    if m.get("service_types")
        .is_some_and(|v| v.as_array().is_some_and(|a| !a.is_empty()))
    {
        return Err(NetworkError::bad_request(
            "Subnet service types are not supported.",
        ));
    }
    let cidr_text = match m.get("cidr") {
        Some(Value::String(c)) => c.clone(),
        None | Some(Value::Null) => {
            return Err(NetworkError::bad_request(
                "a cidr must be specified in the absence of a subnet pool",
            ))
        }
        Some(v) => {
            return Err(NetworkError::invalid_input(format!(
                "'{v}' is not a valid IP subnet"
            )))
        }
    };
    let cidr = Cidr::parse(&cidr_text).map_err(NetworkError::invalid_input)?;
    let ip_version = match m.get("ip_version") {
        Some(v) => match v
            .as_u64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        {
            Some(4) => 4,
            Some(6) => 6,
            _ => return Err(NetworkError::invalid_input(format!("{v} is not in [4, 6]"))),
        },
        None => return Err(NetworkError::bad_request("ip_version must be specified")),
    };
    if ip_version != cidr.ip_version() {
        return Err(NetworkError::invalid_input(
            "Cidr and IP version are not compatible",
        ));
    }
    if (!cidr.v6 && cidr.prefix > 30) || (cidr.v6 && cidr.prefix > 126) {
        return Err(NetworkError::invalid_input(format!(
            "the subnet {cidr} is too small to hold a gateway and addresses"
        )));
    }
    let gateway_ip = match m.get("gateway_ip") {
        None => Some(ipam::fmt_ip(cidr.first() + 1, cidr.v6)),
        Some(Value::Null) => None,
        Some(v) => {
            let g = ip_of(v, cidr.v6, "gateway_ip")?;
            let a = ipam::parse_ip_of(&g, cidr.v6).unwrap_or_default();
            if !cidr.contains(a) || cidr.is_reserved(a) {
                return Err(NetworkError::invalid_input(format!(
                    "Gateway is not valid on subnet: {g} is not a usable address of {cidr}"
                )));
            }
            Some(g)
        }
    };
    let allocation_pools = match m.get("allocation_pools") {
        None | Some(Value::Null) => {
            let gw = gateway_ip
                .as_deref()
                .and_then(|g| ipam::parse_ip_of(g, cidr.v6));
            ipam::default_pools(&cidr, gw)
                .iter()
                .map(|r| (ipam::fmt_ip(r.start, cidr.v6), ipam::fmt_ip(r.end, cidr.v6)))
                .collect()
        }
        Some(v) => parse_pools(v, cidr.v6)?,
    };
    let mode = |key: &str| -> Result<String, NetworkError> {
        match m.get(key) {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(s)) if IPV6_MODES.contains(&s.as_str()) => Ok(s.clone()),
            Some(v) => Err(NetworkError::invalid_input(format!(
                "'{v}' is not in {IPV6_MODES:?}"
            ))),
        }
    };
    let ra = mode("ipv6_ra_mode")?;
    let addr = mode("ipv6_address_mode")?;
    if !cidr.v6 && (!ra.is_empty() || !addr.is_empty()) {
        return Err(NetworkError::invalid_input(
            "ipv6_ra_mode or ipv6_address_mode cannot be set when enable_dhcp is set to False or ip_version is 4",
        ));
    }
    if !ra.is_empty() && !addr.is_empty() && ra != addr {
        return Err(NetworkError::invalid_input(format!(
            "ipv6_ra_mode set to '{ra}' with ipv6_address_mode set to '{addr}' is not valid. If both attributes are set, they must be the same value"
        )));
    }
    let auto = matches!(addr.as_str(), "slaac" | "dhcpv6-stateless")
        || (addr.is_empty() && matches!(ra.as_str(), "slaac" | "dhcpv6-stateless"));
    if auto && cidr.prefix != 64 {
        return Err(NetworkError::invalid_input(format!(
            "Invalid CIDR {cidr} for IPv6 address mode. OpenStack uses the EUI-64 address format, which requires the prefix to be /64"
        )));
    }
    let enable_dhcp = opt_bool(m, "enable_dhcp")?.unwrap_or(true);
    if !enable_dhcp
        && (!ra.is_empty() || !addr.is_empty())
        && cidr.v6
        && addr != "slaac"
        && !addr.is_empty()
    {
        return Err(NetworkError::invalid_input(
            "ipv6_address_mode cannot be set when enable_dhcp is set to False",
        ));
    }
    let _ = net;
    Ok(SubnetSpec {
        project_id: project_id.to_string(),
        name: opt_string(m, "name", 255)?.unwrap_or_default(),
        description: opt_string(m, "description", 255)?.unwrap_or_default(),
        cidr: cidr.to_string(),
        gateway_ip,
        allocation_pools,
        dns_nameservers: match m.get("dns_nameservers") {
            None | Some(Value::Null) => vec![],
            Some(v) => parse_dns(v, cidr.v6)?,
        },
        host_routes: match m.get("host_routes") {
            None | Some(Value::Null) => vec![],
            Some(v) => parse_routes(v, cidr.v6)?,
        },
        enable_dhcp,
        ipv6_ra_mode: ra,
        ipv6_address_mode: if addr.is_empty() { String::new() } else { addr },
        tags: tags_value(m)?,
    })
}
