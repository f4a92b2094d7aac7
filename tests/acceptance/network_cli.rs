//! Acceptance: Neutron through the real `openstack` CLI (openstacksdk underneath, on the catalog's
//! version-less URL). One scenario, few calls (each costs seconds); error cases are in network_http.rs.

use crate::common::*;

#[test]
fn networks_subnets_ports_and_quotas_through_the_openstack_cli() {
    let Some(_cli) = require_cli() else { return };
    let server = Server::start();
    let os = |args: &[&str]| ok(&server, &args.join(" "), openstack(&server, args));
    let osj = |args: &[&str]| ok(&server, &args.join(" "), openstack_json(&server, args));

    let net = osj(&["network", "create", "--description", "first", "n1"]);
    assert_eq!(net["name"], "n1", "{net}");
    assert_eq!(net["mtu"], 1450, "{net}");
    let subnet = osj(&[
        "subnet",
        "create",
        "--network",
        "n1",
        "--subnet-range",
        "10.0.0.0/24",
        "--allocation-pool",
        "start=10.0.0.10,end=10.0.0.20",
        "s1",
    ]);
    assert_eq!(subnet["cidr"], "10.0.0.0/24", "{subnet}");
    assert_eq!(subnet["gateway_ip"], "10.0.0.1", "{subnet}");
    assert!(
        subnet["allocation_pools"].to_string().contains("10.0.0.20"),
        "{subnet}"
    );
    let v6 = osj(&[
        "subnet",
        "create",
        "--network",
        "n1",
        "--ip-version",
        "6",
        "--subnet-range",
        "2001:db8::/64",
        "--ipv6-ra-mode",
        "slaac",
        "--ipv6-address-mode",
        "slaac",
        "s6",
    ]);
    assert_eq!(v6["ip_version"], 6, "{v6}");
    let port = osj(&[
        "port",
        "create",
        "--network",
        "n1",
        "--fixed-ip",
        "subnet=s1,ip-address=10.0.0.15",
        "p1",
    ]);
    assert!(
        port["fixed_ips"].to_string().contains("10.0.0.15"),
        "{port}"
    );

    os(&[
        "network",
        "set",
        "--name",
        "n1b",
        "--description",
        "renamed",
        "n1",
    ]);
    let shown = osj(&["network", "show", "n1b"]);
    assert_eq!(shown["description"], "renamed", "{shown}");
    assert_eq!(
        shown["subnets"].as_array().map(Vec::len),
        Some(2),
        "{shown}"
    );

    let listed = osj(&["network", "list", "--external"]);
    assert_eq!(column(&listed, "Name"), ["public"], "{listed}");

    let quota = osj(&["quota", "show", "--network"]);
    let rows = quota.as_array().cloned().unwrap_or_default();
    let limit = |name: &str| {
        rows.iter()
            .find(|r| r["Resource"] == name)
            .map(|r| r["Limit"].clone())
            .unwrap_or_else(|| quota[name].clone())
    };
    assert_eq!(limit("networks"), 100, "{quota}");
    assert_eq!(limit("ports"), 500, "{quota}");

    let ext = osj(&["extension", "list", "--network"]);
    let aliases = column(&ext, "Alias");
    assert!(
        aliases.contains(&"external-net") && aliases.contains(&"quotas"),
        "{ext}"
    );

    os(&["port", "delete", "p1"]);
    os(&["network", "delete", "n1b"]);
    let left = osj(&["network", "list"]);
    assert_eq!(column(&left, "Name"), ["public"], "{left}");
}
