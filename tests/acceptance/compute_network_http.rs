//! Servers with Neutron ports, through the real binary: networks, fixed IPs and given ports at boot, the
//! project's auto network, addresses, os-interface, security group actions, floating IPs in `addresses`,
//! ports bound to the server's host (also after a migration) and given back when it is deleted.

use crate::common::neutron::*;
use crate::common::nova::*;
use crate::common::*;
use serde_json::{json, Value};

fn ports_of(neutron: &str, token: &str, device: &str) -> Vec<Value> {
    get(&format!("{neutron}/ports?device_id={device}"), Some(token))
        .expect(200)
        .json()["ports"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn port_count(neutron: &str, token: &str) -> usize {
    get(&format!("{neutron}/ports"), Some(token))
        .expect(200)
        .json()["ports"]
        .as_array()
        .map_or(0, Vec::len)
}

fn fixed_addrs(server: &Value, network: &str) -> Vec<String> {
    server["addresses"][network]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|x| x["OS-EXT-IPS:type"] == "fixed")
                .filter_map(|x| x["addr"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn servers_get_ports_addresses_and_give_them_back() {
    let server = Server::start_with_args(&["--fake-hosts", "2"]);
    let nova = nova_url(&server);
    let neutron = neutron(&server);
    let token = server.admin_token();
    let flavor = create_flavor(&nova, &token, "m1.net", 1, 512, 1);
    let image = upload_image(&server, &token, "cirros", &random_bytes(64 * 1024));
    let (net, subnet) = network_with_subnet(
        &neutron,
        &token,
        "private",
        "10.1.0.0/24",
        Some("private-v4"),
    );

    // A port on a network, and a fixed address.
    let a = boot(
        &nova,
        &token,
        "a",
        &flavor,
        &image,
        json!({"networks": [{"uuid": net}]}),
    );
    let b = boot(
        &nova,
        &token,
        "b",
        &flavor,
        &image,
        json!({"networks": [{"uuid": net, "fixed_ip": "10.1.0.50"}]}),
    );
    let sa = wait_status(&nova, &token, &a, "ACTIVE");
    let sb = wait_status(&nova, &token, &b, "ACTIVE");
    let a_ips = fixed_addrs(&sa, "private");
    assert_eq!(a_ips.len(), 1, "{sa}");
    assert!(a_ips[0].starts_with("10.1.0."), "{sa}");
    assert_eq!(fixed_addrs(&sb, "private"), ["10.1.0.50"], "{sb}");
    let pa = ports_of(&neutron, &token, &a);
    assert_eq!(pa.len(), 1);
    assert_eq!(pa[0]["device_owner"], "compute:nova");
    assert_eq!(pa[0]["status"], "ACTIVE", "{}", pa[0]);
    assert_eq!(
        pa[0]["binding:host_id"], sa["OS-EXT-SRV-ATTR:host"],
        "the port is bound to the server's host"
    );
    assert_eq!(
        pa[0]["mac_address"],
        sa["addresses"]["private"][0]["OS-EXT-IPS-MAC:mac_addr"]
    );
    let ips = get_at(60, &format!("{nova}/servers/{a}/ips"), &token);
    assert_eq!(ips["addresses"]["private"][0]["addr"], a_ips[0].as_str());

    // The same fixed address again, an unknown network: refused, nothing left behind.
    let ports_before = port_count(&neutron, &token);
    let body = |networks: Value| json!({"server": {"name": "bad", "flavorRef": flavor, "imageRef": image, "networks": networks}});
    let url = format!("{nova}/servers");
    let r = at(
        60,
        "POST",
        &url,
        &token,
        Some(&body(json!([{"uuid": net, "fixed_ip": "10.1.0.50"}]))),
    );
    assert!(matches!(r.status, 400 | 409), "{}", r.describe());
    let r = at(
        60,
        "POST",
        &url,
        &token,
        Some(&body(
            json!([{"uuid": "2b1d6a3e-0000-4000-8000-000000000000"}]),
        )),
    );
    nova_fault(&r, 400, "badRequest");
    let r = at(
        60,
        "POST",
        &url,
        &token,
        Some(&body(json!([{"uuid": "not-a-uuid"}]))),
    );
    nova_fault(&r, 400, "badRequest");
    assert_eq!(
        port_count(&neutron, &token),
        ports_before,
        "no port left behind"
    );

    // A port made beforehand: the server takes it; deleting the server releases it (it stays).
    let p = post(
        &format!("{neutron}/ports"),
        Some(&token),
        &json!({"port": {"network_id": net, "name": "given"}}),
    )
    .expect(201)
    .json();
    let given = p["port"]["id"].as_str().unwrap().to_string();
    let c = boot(
        &nova,
        &token,
        "c",
        &flavor,
        &image,
        json!({"networks": [{"port": given}]}),
    );
    wait_status(&nova, &token, &c, "ACTIVE");
    let r = at(
        60,
        "POST",
        &url,
        &token,
        Some(&body(json!([{"port": given}]))),
    );
    nova_fault(&r, 409, "conflictingRequest");

    // os-interface: attach a second port on another network, list, detach.
    let (net2, _) =
        network_with_subnet(&neutron, &token, "second", "10.2.0.0/24", Some("second-v4"));
    let iface = format!("{nova}/servers/{a}/os-interface");
    let att = post(
        &iface,
        Some(&token),
        &json!({"interfaceAttachment": {"net_id": net2}}),
    )
    .expect(200)
    .json();
    let p2 = att["interfaceAttachment"]["port_id"]
        .as_str()
        .unwrap()
        .to_string();
    let list = get(&iface, Some(&token)).expect(200).json();
    assert_eq!(
        list["interfaceAttachments"].as_array().map(Vec::len),
        Some(2),
        "{list}"
    );
    let sa = show(&nova, &token, &a).expect(200).json();
    assert_eq!(fixed_addrs(&sa["server"], "second").len(), 1, "{sa}");
    delete(&format!("{iface}/{p2}"), Some(&token)).expect(202);
    let list = get(&iface, Some(&token)).expect(200).json();
    assert_eq!(
        list["interfaceAttachments"].as_array().map(Vec::len),
        Some(1),
        "{list}"
    );
    get(&format!("{neutron}/ports/{p2}"), Some(&token)).expect(404);

    // Security groups through Nova's actions.
    let g = post(
        &format!("{neutron}/security-groups"),
        Some(&token),
        &json!({"security_group": {"name": "web"}}),
    )
    .expect(201)
    .json();
    let web = g["security_group"]["id"].as_str().unwrap().to_string();
    action(
        &nova,
        &token,
        &a,
        json!({"addSecurityGroup": {"name": "web"}}),
    )
    .expect(202);
    let pa = ports_of(&neutron, &token, &a);
    assert!(
        pa[0]["security_groups"]
            .as_array()
            .unwrap()
            .contains(&json!(web)),
        "{}",
        pa[0]
    );
    let sa = show(&nova, &token, &a).expect(200).json();
    let names: Vec<&str> = sa["server"]["security_groups"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|g| g["name"].as_str())
        .collect();
    assert!(names.contains(&"web"), "{sa}");
    let r = action(
        &nova,
        &token,
        &a,
        json!({"addSecurityGroup": {"name": "web"}}),
    );
    nova_fault(&r, 400, "badRequest");
    action(
        &nova,
        &token,
        &a,
        json!({"removeSecurityGroup": {"name": "web"}}),
    )
    .expect(202);

    // "auto" with two networks to choose from: Nova asks for one (409), nothing is made.
    let r = at(60, "POST", &url, &token, Some(&body(json!("auto"))));
    let m = nova_fault(&r, 409, "conflictingRequest");
    assert!(m.contains("Multiple possible networks"), "{m}");
    let _ = subnet;

    // A cold migration: the port's binding follows the server.
    action(&nova, &token, &a, json!({"migrate": null})).expect(202);
    wait_status(&nova, &token, &a, "VERIFY_RESIZE");
    action(&nova, &token, &a, json!({"confirmResize": null})).expect(204);
    let sa = wait_status(&nova, &token, &a, "ACTIVE");
    let pa = ports_of(&neutron, &token, &a);
    assert_eq!(
        pa[0]["binding:host_id"], sa["OS-EXT-SRV-ATTR:host"],
        "{}",
        pa[0]
    );

    // Deleting servers: Nova's ports go, the given one stays, unbound.
    for id in [&a, &b, &c] {
        delete(&format!("{nova}/servers/{id}"), Some(&token)).expect(204);
    }
    for id in [&a, &b, &c] {
        wait_gone(&nova, &token, id);
    }
    assert!(ports_of(&neutron, &token, &a).is_empty());
    let g = get(&format!("{neutron}/ports/{given}"), Some(&token))
        .expect(200)
        .json();
    assert_eq!(g["port"]["device_id"], "", "{g}");
    let mut server = server;
    server.kill();
    let r = server.replay_verify();
    assert!(r.success, "{}", r.describe());
}

#[test]
fn auto_gives_a_project_without_networks_its_own() {
    let server = Server::start_with_args(&["--fake-hosts", "1"]);
    let nova = nova_url(&server);
    let neutron = neutron(&server);
    let token = server.admin_token();
    let flavor = create_flavor(&nova, &token, "m1.auto", 1, 512, 1);
    let image = upload_image(&server, &token, "cirros", &random_bytes(64 * 1024));
    let a = boot(
        &nova,
        &token,
        "a",
        &flavor,
        &image,
        json!({"networks": "auto"}),
    );
    let b = boot(
        &nova,
        &token,
        "b",
        &flavor,
        &image,
        json!({"networks": "auto"}),
    );
    let sa = wait_status(&nova, &token, &a, "ACTIVE");
    let sb = wait_status(&nova, &token, &b, "ACTIVE");
    let net = "auto_allocated_network";
    assert_eq!(fixed_addrs(&sa, net).len(), 1, "{sa}");
    assert_eq!(fixed_addrs(&sb, net).len(), 1, "{sb}");
    assert_ne!(fixed_addrs(&sa, net), fixed_addrs(&sb, net));
    let nets = get(&format!("{neutron}/networks?name={net}"), Some(&token))
        .expect(200)
        .json();
    assert_eq!(nets["networks"].as_array().map(Vec::len), Some(1), "{nets}");
    // "none": no port.
    let c = boot(
        &nova,
        &token,
        "c",
        &flavor,
        &image,
        json!({"networks": "none"}),
    );
    let sc = wait_status(&nova, &token, &c, "ACTIVE");
    assert_eq!(sc["addresses"], json!({}), "{sc}");
}
