//! Given/When/Then tests of the network, port and quota aggregates: subnet plans, IPAM, MACs, in-use
//! checks, revisions.

use std::collections::BTreeMap;

use super::*;
use crate::aggregate::{Aggregate, DomainError};
use crate::gwt::given;
use strata_proto::network as pb;
use strata_proto::NetworkEvent as E;

/// A deterministic UUID for a short test name (the aggregate keeps port and subnet ids as UUIDs).
fn u(name: &str) -> String {
    let h = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    });
    format!("00000000-0000-4000-8000-{:012x}", h & 0xffff_ffff_ffff)
}

/// Port `name`'s place in `s`.
fn place<'a>(s: &'a Network, name: &str) -> &'a PortPlace {
    s.port(&u(name)).unwrap_or_else(|| panic!("no port {name}"))
}

fn created() -> E {
    E::NetworkCreated(pb::NetworkCreated {
        project_id: "p".into(),
        name: "n".into(),
        admin_state_up: true,
        mtu: 1450,
        ..Default::default()
    })
}

/// A subnet event as the API would build it (10.0.0.0/28: gateway .1, pool .2-.14).
fn subnet(id: &str, cidr: &str, gateway: &str, pools: &[(&str, &str)]) -> E {
    E::SubnetAdded(pb::SubnetAdded {
        subnet_id: u(id),
        project_id: "p".into(),
        ip_version: if cidr.contains(':') { 6 } else { 4 },
        cidr: cidr.into(),
        gateway_ip: gateway.into(),
        allocation_pools: pools
            .iter()
            .map(|(s, e)| pb::AllocationPool {
                start: s.to_string(),
                end: e.to_string(),
            })
            .collect(),
        enable_dhcp: true,
        ..Default::default()
    })
}

fn small() -> Vec<E> {
    vec![
        created(),
        subnet(
            "s4",
            "10.0.0.0/28",
            "10.0.0.1",
            &[("10.0.0.2", "10.0.0.14")],
        ),
    ]
}

fn spec(cidr: &str, gateway: Option<&str>, pools: &[(&str, &str)]) -> SubnetSpec {
    SubnetSpec {
        project_id: "p".into(),
        cidr: cidr.into(),
        gateway_ip: gateway.map(str::to_string),
        allocation_pools: pools
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect(),
        enable_dhcp: true,
        ..Default::default()
    }
}

fn add(id: &str, s: SubnetSpec) -> NetworkCommand {
    NetworkCommand::AddSubnet {
        subnet_id: u(id),
        spec: s,
    }
}

fn alloc(port: &str, fixed: Option<Vec<(Option<&str>, Option<&str>)>>) -> NetworkCommand {
    NetworkCommand::AllocatePort {
        port_id: u(port),
        mac: None,
        mac_candidates: vec![format!(
            "fa:16:3e:00:{:02x}:{:02x}",
            port.len(),
            port.bytes()
                .fold(0u8, |h, b| h.wrapping_mul(31).wrapping_add(b))
        )],
        fixed_ips: fixed.map(|v| {
            v.into_iter()
                .map(|(s, ip)| IpRequest {
                    subnet_id: s.map(u),
                    ip_address: ip.map(str::to_string),
                })
                .collect()
        }),
        device_owner: String::new(),
    }
}

fn allocated(port: &str, mac: &str, ips: &[(&str, &str)]) -> E {
    E::NetworkPortAllocated(pb::NetworkPortAllocated {
        port_id: u(port),
        mac_address: mac.into(),
        fixed_ips: ips
            .iter()
            .map(|(s, a)| pb::FixedIp {
                subnet_id: u(s),
                ip_address: a.to_string(),
            })
            .collect(),
        device_owner: String::new(),
    })
}

fn err_type(e: &DomainError) -> String {
    e.to_string()
        .split(':')
        .next()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn a_network_is_created_once_and_deleted_only_without_ports_in_use() {
    let s = given::<Network>([])
        .when(NetworkCommand::Create(NetworkSpec {
            project_id: "p".into(),
            ..Default::default()
        }))
        .then_ok();
    assert!(s.is_live());
    assert_eq!(s.revision, 1);
    given::<Network>([created()])
        .when(NetworkCommand::Create(NetworkSpec::default()))
        .then_err_where(|e| matches!(e, DomainError::AlreadyExists { .. }));
    let mut h = small();
    h.push(allocated("p1", "fa:16:3e:00:00:01", &[("s4", "10.0.0.2")]));
    given::<Network>(h.clone())
        .when(NetworkCommand::Delete)
        .then_err_where(|e| err_type(e) == "NetworkInUse");
    // A DHCP port does not keep the network.
    let mut dhcp = small();
    dhcp.push(E::NetworkPortAllocated(pb::NetworkPortAllocated {
        port_id: u("d"),
        mac_address: "fa:16:3e:00:00:09".into(),
        device_owner: "network:dhcp".into(),
        ..Default::default()
    }));
    let gone = given::<Network>(dhcp)
        .when(NetworkCommand::Delete)
        .then_ok();
    assert!(!gone.is_live());
    given::<Network>(vec![created(), E::NetworkDeleted(pb::NetworkDeleted {})])
        .when(alloc("p9", None))
        .then_err_where(|e| matches!(e, DomainError::NotFound { .. }));
}

#[test]
fn updates_honour_if_match_and_record_only_changes() {
    let s = given::<Network>([created()])
        .when(NetworkCommand::Update {
            changes: NetworkChanges {
                name: Some("m".into()),
                ..Default::default()
            },
            if_revision: Some(1),
        })
        .then_ok();
    assert_eq!((s.name.as_str(), s.revision), ("m", 2));
    given::<Network>([created()])
        .when(NetworkCommand::Update {
            changes: NetworkChanges {
                name: Some("m".into()),
                ..Default::default()
            },
            if_revision: Some(7),
        })
        .then_err_where(|e| err_type(e) == "RevisionNumberConstraintFailed");
    given::<Network>([created()])
        .when(NetworkCommand::Update {
            changes: NetworkChanges {
                name: Some("n".into()),
                ..Default::default()
            },
            if_revision: None,
        })
        .then_nothing();
}

#[test]
fn subnet_plans_are_checked() {
    let base = vec![created()];
    let ok = given::<Network>(base.clone())
        .when(add(
            "a",
            spec(
                "10.0.0.0/24",
                Some("10.0.0.1"),
                &[("10.0.0.2", "10.0.0.254")],
            ),
        ))
        .then_ok();
    assert_eq!(ok.subnets[&u("a")].revision, 1);
    let with_a = vec![
        created(),
        subnet(
            "a",
            "10.0.0.0/24",
            "10.0.0.1",
            &[("10.0.0.2", "10.0.0.254")],
        ),
    ];
    // Overlapping subnets on one network: 400.
    given::<Network>(with_a.clone())
        .when(add(
            "b",
            spec("10.0.0.128/25", None, &[("10.0.0.129", "10.0.0.130")]),
        ))
        .then_invalid();
    // Another family or range is fine.
    given::<Network>(with_a)
        .when(add(
            "b",
            spec("10.0.1.0/24", None, &[("10.0.1.1", "10.0.1.254")]),
        ))
        .then_ok();
    let bad = |s: SubnetSpec, ty: &str| {
        let ty = ty.to_string();
        given::<Network>(base.clone())
            .when(add("x", s))
            .then_err_where(move |e| err_type(e) == ty);
    };
    bad(
        spec(
            "10.0.0.0/24",
            Some("10.0.0.1"),
            &[("10.0.0.2", "10.0.0.50"), ("10.0.0.40", "10.0.0.60")],
        ),
        "OverlappingAllocationPools",
    );
    bad(
        spec(
            "10.0.0.0/24",
            Some("10.0.0.5"),
            &[("10.0.0.2", "10.0.0.50")],
        ),
        "GatewayConflictWithAllocationPools",
    );
    bad(
        spec("10.0.0.0/24", Some("10.0.0.1"), &[("10.0.0.2", "10.0.1.5")]),
        "OutOfBoundsAllocationPool",
    );
    bad(
        spec("10.0.0.0/24", Some("10.0.0.1"), &[("10.0.0.9", "10.0.0.3")]),
        "InvalidAllocationPool",
    );
    bad(spec("10.0.0.1/24", None, &[]), "InvalidInput");
    // The gateway conflict is a 409, the others 400.
    given::<Network>(base)
        .when(add(
            "x",
            spec(
                "10.0.0.0/24",
                Some("10.0.0.5"),
                &[("10.0.0.2", "10.0.0.50")],
            ),
        ))
        .then_err_where(|e| matches!(e, DomainError::Conflict(_)));
}

#[test]
fn ipam_hands_out_the_lowest_free_address_and_refuses_taken_or_foreign_ones() {
    let s = given::<Network>(small()).when(alloc("p1", None)).then_ok();
    assert_eq!(
        s.fixed_ips_of(&u("p1")),
        [(u("s4"), "10.0.0.2".to_string())]
    );
    assert_eq!(s.subnets[&u("s4")].allocations.len(), 1);
    let mut h = small();
    h.push(allocated("p1", "fa:16:3e:00:00:01", &[("s4", "10.0.0.2")]));
    h.push(allocated("p2", "fa:16:3e:00:00:02", &[("s4", "10.0.0.4")]));
    let s = given::<Network>(h.clone())
        .when(alloc("p3", None))
        .then_ok();
    assert_eq!(s.fixed_ips_of(&u("p3"))[0].1, "10.0.0.3");
    // Two entries of one request never take the same address.
    let s = given::<Network>(h.clone())
        .when(alloc(
            "p3",
            Some(vec![(Some("s4"), None), (Some("s4"), None)]),
        ))
        .then_ok();
    let ips: Vec<String> = s
        .fixed_ips_of(&u("p3"))
        .into_iter()
        .map(|(_, a)| a)
        .collect();
    assert_eq!(ips, ["10.0.0.3", "10.0.0.5"]);
    let refuse = |cmd: NetworkCommand, ty: &str| {
        let ty = ty.to_string();
        given::<Network>(h.clone())
            .when(cmd)
            .then_err_where(move |e| err_type(e) == ty);
    };
    refuse(
        alloc("p3", Some(vec![(Some("s4"), Some("10.0.0.4"))])),
        "IpAddressAlreadyAllocated",
    );
    refuse(
        alloc("p3", Some(vec![(None, Some("10.0.0.4"))])),
        "IpAddressAlreadyAllocated",
    );
    refuse(
        alloc("p3", Some(vec![(Some("s4"), Some("10.0.1.4"))])),
        "InvalidIpForSubnet",
    );
    refuse(
        alloc("p3", Some(vec![(Some("s4"), Some("10.0.0.15"))])),
        "InvalidIpForSubnet",
    );
    refuse(
        alloc("p3", Some(vec![(None, Some("192.168.1.1"))])),
        "InvalidIpForNetwork",
    );
    refuse(
        alloc("p3", Some(vec![(Some("nope"), None)])),
        "InvalidInput",
    );
    refuse(
        alloc("p3", Some(vec![(Some("s4"), Some("10.0.0.1"))])),
        "IpAddressAlreadyAllocated",
    );
    refuse(
        alloc(
            "p3",
            Some(vec![
                (Some("s4"), Some("10.0.0.9")),
                (None, Some("10.0.0.9")),
            ]),
        ),
        "IpAddressAlreadyAllocated",
    );
    // An address outside the pools but inside the subnet may be asked for.
    given::<Network>(small())
        .when(alloc("p3", Some(vec![(Some("s4"), Some("10.0.0.1"))])))
        .then_err_where(|e| err_type(e) == "IpAddressAlreadyAllocated");
    // A router interface takes the gateway.
    let mut router = alloc("r", Some(vec![(Some("s4"), Some("10.0.0.1"))]));
    if let NetworkCommand::AllocatePort { device_owner, .. } = &mut router {
        *device_owner = "network:router_interface".into();
    }
    given::<Network>(small()).when(router).then_ok();
}

#[test]
fn an_exhausted_subnet_refuses_with_ip_address_generation_failure() {
    let mut state = given::<Network>(small()).state();
    for i in 0..13 {
        let events = state.decide(&alloc(&format!("p{i:02}"), None)).unwrap();
        // Each port its own MAC.
        let events: Vec<E> = events
            .into_iter()
            .map(|e| match e {
                E::NetworkPortAllocated(mut a) => {
                    a.mac_address = format!("fa:16:3e:00:01:{i:02x}");
                    E::NetworkPortAllocated(a)
                }
                other => other,
            })
            .collect();
        state = events.iter().fold(state, |s, e| s.apply(e));
    }
    let taken: Vec<&u128> = state.subnets[&u("s4")].allocations.keys().collect();
    assert_eq!(taken.len(), 13, "the whole pool .2-.14");
    assert_eq!(state.subnets[&u("s4")].pool_usage(), (13, 13));
    let e = state.decide(&alloc("last", None)).unwrap_err();
    assert_eq!(err_type(&e), "IpAddressGenerationFailure");
    assert!(matches!(e, DomainError::Conflict(_)));
    let e = state
        .decide(&alloc("last", Some(vec![(Some("s4"), None)])))
        .unwrap_err();
    assert_eq!(err_type(&e), "IpAddressGenerationFailure");
    // Releasing one makes room again, at that address.
    let released = state.apply(&E::NetworkPortReleased(pb::NetworkPortReleased {
        port_id: u("p05"),
    }));
    let events = released.decide(&alloc("last", None)).unwrap();
    let s = events.iter().fold(released, |s, e| s.apply(e));
    assert_eq!(s.fixed_ips_of(&u("last"))[0].1, "10.0.0.7");
}

#[test]
fn macs_are_unique_on_the_network() {
    let mut h = small();
    h.push(allocated("p1", "fa:16:3e:00:00:01", &[("s4", "10.0.0.2")]));
    let given_mac = |mac: &str| NetworkCommand::AllocatePort {
        port_id: u("p2"),
        mac: Some(mac.into()),
        mac_candidates: vec![],
        fixed_ips: None,
        device_owner: String::new(),
    };
    given::<Network>(h.clone())
        .when(given_mac("FA:16:3E:00:00:01"))
        .then_err_where(|e| err_type(e) == "MacAddressInUse");
    given::<Network>(h.clone())
        .when(given_mac("fa:16:3e:00:00:02"))
        .then_ok();
    given::<Network>(h.clone())
        .when(given_mac("01:00:5e:00:00:01"))
        .then_invalid();
    // Generated: the first free candidate.
    let s = given::<Network>(h.clone())
        .when(NetworkCommand::AllocatePort {
            port_id: u("p2"),
            mac: None,
            mac_candidates: vec!["fa:16:3e:00:00:01".into(), "fa:16:3e:00:00:07".into()],
            fixed_ips: None,
            device_owner: String::new(),
        })
        .then_ok();
    assert_eq!(place(&s, "p2").mac_address(), "fa:16:3e:00:00:07");
    given::<Network>(h.clone())
        .when(NetworkCommand::AllocatePort {
            port_id: u("p2"),
            mac: None,
            mac_candidates: vec!["fa:16:3e:00:00:01".into()],
            fixed_ips: None,
            device_owner: String::new(),
        })
        .then_err_where(|e| err_type(e) == "MacAddressGenerationFailure");
    // Released MACs are free again.
    let s = given::<Network>(h)
        .when(NetworkCommand::ReleasePort { port_id: u("p1") })
        .then_ok();
    assert!(s.macs.is_empty() && s.subnets[&u("s4")].allocations.is_empty());
}

#[test]
fn slaac_subnets_give_the_mac_derived_address() {
    let h = vec![
        created(),
        subnet(
            "s4",
            "10.0.0.0/24",
            "10.0.0.1",
            &[("10.0.0.2", "10.0.0.254")],
        ),
        E::SubnetAdded(pb::SubnetAdded {
            subnet_id: u("s6"),
            ip_version: 6,
            cidr: "2001:db8::/64".into(),
            gateway_ip: "2001:db8::1".into(),
            allocation_pools: vec![pb::AllocationPool {
                start: "2001:db8::2".into(),
                end: "2001:db8::ffff:ffff:ffff:ffff".into(),
            }],
            ipv6_ra_mode: "slaac".into(),
            ipv6_address_mode: "slaac".into(),
            ..Default::default()
        }),
    ];
    let s = given::<Network>(h)
        .when(NetworkCommand::AllocatePort {
            port_id: u("p"),
            mac: Some("fa:16:3e:01:02:03".into()),
            mac_candidates: vec![],
            fixed_ips: None,
            device_owner: String::new(),
        })
        .then_ok();
    let mut want = vec![
        (u("s4"), "10.0.0.2".to_string()),
        (u("s6"), "2001:db8::f816:3eff:fe01:203".to_string()),
    ];
    want.sort();
    assert_eq!(s.fixed_ips_of(&u("p")), want);
}

#[test]
fn reallocation_keeps_what_is_named_again_and_frees_the_rest() {
    let mut h = small();
    h.push(allocated("p1", "fa:16:3e:00:00:01", &[("s4", "10.0.0.2")]));
    let s = given::<Network>(h.clone())
        .when(NetworkCommand::ReallocatePort {
            port_id: u("p1"),
            fixed_ips: vec![
                IpRequest {
                    subnet_id: Some(u("s4")),
                    ip_address: None,
                },
                IpRequest {
                    subnet_id: None,
                    ip_address: Some("10.0.0.9".into()),
                },
            ],
        })
        .then_ok();
    assert_eq!(
        s.fixed_ips_of(&u("p1")),
        [
            (u("s4"), "10.0.0.2".to_string()),
            (u("s4"), "10.0.0.9".to_string())
        ]
    );
    let s = given::<Network>(h.clone())
        .when(NetworkCommand::ReallocatePort {
            port_id: u("p1"),
            fixed_ips: vec![IpRequest {
                subnet_id: None,
                ip_address: Some("10.0.0.3".into()),
            }],
        })
        .then_ok();
    let held: Vec<&u128> = s.subnets[&u("s4")].allocations.keys().collect();
    assert_eq!(held.len(), 1);
    assert_eq!(s.fixed_ips_of(&u("p1"))[0].1, "10.0.0.3");
    // Naming what it holds changes nothing.
    given::<Network>(h)
        .when(NetworkCommand::ReallocatePort {
            port_id: u("p1"),
            fixed_ips: vec![IpRequest {
                subnet_id: Some(u("s4")),
                ip_address: Some("10.0.0.2".into()),
            }],
        })
        .then_nothing();
}

#[test]
fn subnets_in_use_are_kept_and_updates_are_checked() {
    let mut h = small();
    h.push(allocated("p1", "fa:16:3e:00:00:01", &[("s4", "10.0.0.2")]));
    given::<Network>(h.clone())
        .when(NetworkCommand::RemoveSubnet { subnet_id: u("s4") })
        .then_err_where(|e| err_type(e) == "SubnetInUse");
    let s = given::<Network>(small())
        .when(NetworkCommand::RemoveSubnet { subnet_id: u("s4") })
        .then_ok();
    assert!(s.subnets.is_empty());
    let update = |changes: SubnetChanges| NetworkCommand::UpdateSubnet {
        subnet_id: u("s4"),
        changes,
        if_revision: None,
    };
    // The gateway moved into a pool: 409; onto an address in use: 409.
    given::<Network>(h.clone())
        .when(update(SubnetChanges {
            gateway_ip: Some("10.0.0.5".into()),
            ..Default::default()
        }))
        .then_err_where(|e| err_type(e) == "GatewayConflictWithAllocationPools");
    let mut shrunk = h.clone();
    shrunk.push(E::SubnetUpdated(pb::SubnetUpdated {
        subnet_id: u("s4"),
        set_allocation_pools: true,
        allocation_pools: vec![pb::AllocationPool {
            start: "10.0.0.10".into(),
            end: "10.0.0.14".into(),
        }],
        ..Default::default()
    }));
    given::<Network>(shrunk)
        .when(update(SubnetChanges {
            gateway_ip: Some("10.0.0.2".into()),
            ..Default::default()
        }))
        .then_err_where(|e| err_type(e) == "GatewayIpInUse");
    let s = given::<Network>(h.clone())
        .when(update(SubnetChanges {
            name: Some("renamed".into()),
            dns_nameservers: Some(vec!["8.8.8.8".into()]),
            gateway_ip: Some(String::new()),
            ..Default::default()
        }))
        .then_ok();
    let sub = &s.subnets[&u("s4")];
    assert_eq!(
        (sub.name.as_str(), sub.gateway_ip.as_str(), sub.revision),
        ("renamed", "", 2)
    );
    given::<Network>(h)
        .when(NetworkCommand::UpdateSubnet {
            subnet_id: u("s4"),
            changes: SubnetChanges {
                name: Some("x".into()),
                ..Default::default()
            },
            if_revision: Some(5),
        })
        .then_err_where(|e| err_type(e) == "RevisionNumberConstraintFailed");
}

#[test]
fn ports_are_active_once_bound_to_a_host_as_compute_ports() {
    let created = E::PortCreated(pb::PortCreated {
        project_id: "p".into(),
        network_id: "n".into(),
        admin_state_up: true,
        device_owner: "compute:nova".into(),
        ..Default::default()
    });
    let s = given::<Port>([created.clone()]).state();
    assert_eq!((s.status(), s.revision), ("DOWN", 1));
    let s = given::<Port>([created.clone()])
        .when(PortCommand::Bind(Binding {
            host_id: "fake-0".into(),
            vif_type: "ovs".into(),
            ..Default::default()
        }))
        .then_ok();
    assert_eq!((s.status(), s.revision), ("ACTIVE", 2));
    given::<Port>([created.clone()])
        .when(PortCommand::Update {
            changes: PortChanges {
                name: Some("x".into()),
                ..Default::default()
            },
            if_revision: Some(2),
        })
        .then_err_where(|e| err_type(e) == "RevisionNumberConstraintFailed");
    let s = given::<Port>([created]).when(PortCommand::Delete).then_ok();
    assert!(!s.is_live());
    given::<Port>([])
        .when(PortCommand::SetTags(vec!["a".into()]))
        .then_err_where(|e| matches!(e, DomainError::NotFound { .. }));
}

#[test]
fn quota_reservations_stop_at_the_limit() {
    let reserve = |h: &str, limit: i64| NetworkUsageCommand::Reserve {
        holder: h.into(),
        resource: "port".into(),
        limit,
    };
    let held = E::NetworkUsageReserved(pb::NetworkUsageReserved {
        holder: "port:a".into(),
        resource: "port".into(),
    });
    given::<NetworkUsage>([held.clone()])
        .when(reserve("port:b", 1))
        .then_err_where(|e| matches!(e, DomainError::OverQuota(_)));
    given::<NetworkUsage>([held.clone()])
        .when(reserve("port:a", 1))
        .then_nothing();
    let s = given::<NetworkUsage>([held.clone()])
        .when(reserve("port:b", -1))
        .then_ok();
    assert_eq!(s.used("port"), 2);
    let s = given::<NetworkUsage>([held])
        .when(NetworkUsageCommand::Release {
            holder: "port:a".into(),
        })
        .then_ok();
    assert_eq!(s.used("port"), 0);
    // Holders named <resource>:<uuid> are kept compactly, others as text; both count and release.
    let compact = format!("port:{}", u("q"));
    let s = given::<NetworkUsage>([])
        .when(reserve(&compact, 2))
        .then_ok();
    let s = s.apply(&E::NetworkUsageReserved(pb::NetworkUsageReserved {
        holder: "port:odd".into(),
        resource: "port".into(),
    }));
    assert_eq!(s.used("port"), 2);
    let mut names: Vec<String> = s.holders.keys().collect();
    names.sort();
    assert_eq!(names, [compact.clone(), "port:odd".to_string()]);
    given::<NetworkUsage>([])
        .when(reserve(&compact, 2))
        .then_ok();
    let e = s.decide(&reserve("port:third", 2)).unwrap_err();
    assert!(matches!(e, DomainError::OverQuota(_)));
    let s = s.apply(&E::NetworkUsageReleased(pb::NetworkUsageReleased {
        holder: compact.clone(),
    }));
    assert_eq!(s.used("port"), 1);
    assert!(!s.holders.contains_key(&compact));
    let limits: BTreeMap<String, i64> = [("port".to_string(), 5)].into_iter().collect();
    let q = given::<NetworkQuota>([])
        .when(NetworkQuotaCommand::Set(limits))
        .then_ok();
    assert_eq!(q.limits["port"], 5);
    let bad: BTreeMap<String, i64> = [("colour".to_string(), 5)].into_iter().collect();
    given::<NetworkQuota>([])
        .when(NetworkQuotaCommand::Set(bad))
        .then_invalid();
    assert_eq!(default_network_limits()["port"], 500);
}
