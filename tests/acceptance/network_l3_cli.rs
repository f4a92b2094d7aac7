//! Acceptance: routers, floating IPs and security groups through the real `openstack` CLI (openstacksdk
//! underneath), on the external network `public` the server bootstraps. One scenario, few calls (each
//! costs seconds); the network and subnet are made over HTTP, and the error cases are in
//! network_l3_http.rs and network_secgroup_http.rs.

use crate::common::neutron::*;
use crate::common::*;

#[test]
fn routers_floating_ips_and_security_groups_through_the_openstack_cli() {
    let Some(_cli) = require_cli() else { return };
    let server = Server::start();
    let os = |args: &[&str]| ok(&server, &args.join(" "), openstack(&server, args));
    let osj = |args: &[&str]| ok(&server, &args.join(" "), openstack_json(&server, args));
    let url = neutron(&server);
    let admin = server.admin_token();
    let (_net, subnet) =
        network_with_subnet(&url, &admin, "cli-net", "10.10.0.0/24", Some("cli-sub"));

    // Routers.
    let r = osj(&["router", "create", "r1"]);
    assert_eq!(r["name"], "r1", "{r}");
    assert_eq!(r["status"], "ACTIVE", "{r}");
    let router_id = r["id"].as_str().unwrap().to_string();
    os(&["router", "set", "--external-gateway", "public", "r1"]);
    os(&["router", "add", "subnet", "r1", "cli-sub"]);
    let shown = get(&format!("{url}/routers/{router_id}"), Some(&admin))
        .expect(200)
        .json()["router"]
        .clone();
    let gw = &shown["external_gateway_info"];
    assert_eq!(gw["enable_snat"], true, "{shown}");
    assert!(
        gw["external_fixed_ips"][0]["ip_address"]
            .as_str()
            .is_some_and(|a| a.starts_with("172.24.4.")),
        "the gateway has an address of public: {shown}"
    );
    let ports = get(
        &format!("{url}/ports?device_id={router_id}&device_owner=network:router_interface"),
        Some(&admin),
    )
    .expect(200)
    .json();
    assert_eq!(
        ports["ports"][0]["fixed_ips"][0]["subnet_id"],
        subnet.as_str(),
        "{ports}"
    );
    assert_eq!(
        ports["ports"][0]["fixed_ips"][0]["ip_address"], "10.10.0.1",
        "{ports}"
    );

    // Floating IPs.
    let fip = osj(&["floating", "ip", "create", "public"]);
    assert!(
        fip["floating_ip_address"]
            .as_str()
            .is_some_and(|a| a.starts_with("172.24.4.")),
        "{fip}"
    );
    assert_eq!(fip["status"], "DOWN", "{fip}");

    // Security groups.
    let sg = osj(&["security", "group", "create", "web"]);
    assert_eq!(sg["name"], "web", "{sg}");
    let rule = osj(&[
        "security",
        "group",
        "rule",
        "create",
        "--protocol",
        "tcp",
        "--dst-port",
        "22",
        "web",
    ]);
    assert_eq!(rule["protocol"], "tcp", "{rule}");
    assert_eq!(rule["port_range_min"], 22, "{rule}");
    assert_eq!(rule["port_range_max"], 22, "{rule}");
    assert_eq!(rule["direction"], "ingress", "{rule}");
    let rules = osj(&["security", "group", "rule", "list", "web"]);
    assert_eq!(
        column(&rules, "Port Range")
            .iter()
            .filter(|p| **p == "22:22")
            .count(),
        1,
        "{rules}"
    );
    assert_eq!(
        column(&rules, "Direction")
            .iter()
            .filter(|d| **d == "egress")
            .count(),
        2,
        "a new group egresses anywhere over IPv4 and IPv6: {rules}"
    );
}
