//! Acceptance: servers with Neutron through the real `openstack` CLI — a server on a network shows its IP,
//! a floating IP through a router to `public`, security groups and a second port added and removed.
//! Waits poll over HTTP; the error cases are in compute_network_http.rs.

use crate::common::nova::*;
use crate::common::*;
use serde_json::Value;

/// Every address of a server as `server show` prints it (a JSON object or "net=ip, ip" text).
fn addresses_text(shown: &Value) -> String {
    shown["addresses"].to_string()
}

#[test]
fn servers_on_networks_through_the_openstack_cli() {
    let Some(_cli) = require_cli() else { return };
    let server = Server::start_with_args(&["--fake-hosts", "1"]);
    let os = |args: &[&str]| ok(&server, &args.join(" "), openstack(&server, args));
    let osj = |args: &[&str]| ok(&server, &args.join(" "), openstack_json(&server, args));
    let nova = nova_url(&server);
    let token = server.admin_token();

    cli_cirros_and_tiny(&server, 64 * 1024);
    os(&["network", "create", "private"]);
    os(&[
        "subnet",
        "create",
        "--network",
        "private",
        "--subnet-range",
        "10.3.0.0/24",
        "private-v4",
    ]);

    let created = osj(&[
        "server",
        "create",
        "--flavor",
        "m1.tiny",
        "--image",
        "cirros",
        "--network",
        "private",
        "--wait",
        "vm1",
    ]);
    assert_eq!(created["status"], "ACTIVE", "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    let shown = osj(&["server", "show", "vm1"]);
    assert!(addresses_text(&shown).contains("10.3.0."), "{shown}");

    // A floating IP from `public`, reachable through a router.
    os(&["router", "create", "r1"]);
    os(&["router", "set", "--external-gateway", "public", "r1"]);
    os(&["router", "add", "subnet", "r1", "private-v4"]);
    let fip = osj(&["floating", "ip", "create", "public"]);
    let fip_addr = fip["floating_ip_address"].as_str().unwrap().to_string();
    os(&["server", "add", "floating", "ip", "vm1", fip_addr.as_str()]);
    let s = show(&nova, &token, &id).expect(200).json();
    assert!(
        s["server"]["addresses"].to_string().contains(&fip_addr),
        "{s}"
    );

    // Security groups and a second port.
    os(&["security", "group", "create", "web"]);
    os(&["server", "add", "security", "group", "vm1", "web"]);
    let s = show(&nova, &token, &id).expect(200).json();
    assert!(
        s["server"]["security_groups"].to_string().contains("web"),
        "{s}"
    );
    os(&["server", "remove", "security", "group", "vm1", "web"]);
    os(&["port", "create", "--network", "private", "p2"]);
    os(&["server", "add", "port", "vm1", "p2"]);
    let ifaces = at(
        60,
        "GET",
        &format!("{nova}/servers/{id}/os-interface"),
        &token,
        None,
    )
    .expect(200)
    .json();
    assert_eq!(
        ifaces["interfaceAttachments"].as_array().map(Vec::len),
        Some(2),
        "{ifaces}"
    );
    os(&["server", "remove", "port", "vm1", "p2"]);

    os(&[
        "server",
        "remove",
        "floating",
        "ip",
        "vm1",
        fip_addr.as_str(),
    ]);
    os(&["server", "delete", "--wait", "vm1"]);
    let p2 = osj(&["port", "show", "p2"]);
    assert_eq!(p2["device_id"], "", "the given port is released: {p2}");
}
