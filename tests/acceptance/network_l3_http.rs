//! Neutron routers and floating IPs over HTTP through the real binary, on the external network `public` the
//! server bootstraps: routers (external gateway with an address from `public`'s IPAM, SNAT on by default and
//! settable by admins only; interfaces by subnet and by port; static routes whose nexthop must be on an
//! attached subnet; delete refused while interfaces exist), floating IPs (allocated from `public`, or a
//! requested address; associated through a router with a gateway on their network and an interface on the
//! port's subnet, else 404 ExternalGatewayForFloatingIPNotFound; ACTIVE once the datapath has the NAT,
//! DOWN after disassociation; delete releases the address), quotas `router` and `floatingip`, tags,
//! If-Match, and another project's routers and floating IPs answering 404. Every refused request is checked
//! to have appended nothing (the log head does not move).

use std::time::{Duration, Instant};

use crate::common::neutron::*;
use crate::common::nova::new_member;
use crate::common::*;
use serde_json::{json, Value};

fn port(url: &str, token: &str, network: &str) -> Value {
    post(
        &format!("{url}/ports"),
        Some(token),
        &json!({"port": {"network_id": network}}),
    )
    .expect(201)
    .json()["port"]
        .clone()
}

fn router(url: &str, token: &str, id: &str) -> Value {
    get(&format!("{url}/routers/{id}"), Some(token))
        .expect(200)
        .json()["router"]
        .clone()
}

fn iface(url: &str, token: &str, router: &str, action: &str, body: Value) -> Resp {
    put_json(&format!("{url}/routers/{router}/{action}"), token, &body)
}

fn update_fip(url: &str, token: &str, id: &str, body: Value) -> Resp {
    put_json(
        &format!("{url}/floatingips/{id}"),
        token,
        &json!({ "floatingip": body }),
    )
}

/// Poll a floating IP until its status is `status` (the datapath agent reports it).
fn wait_fip(url: &str, token: &str, id: &str, status: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let f = get(&format!("{url}/floatingips/{id}"), Some(token))
            .expect(200)
            .json()["floatingip"]
            .clone();
        if f["status"] == status {
            return f;
        }
        assert!(
            Instant::now() < deadline,
            "floating IP {id} never {status}: {f}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn in_public(ip: &Value) -> bool {
    ip.as_str().is_some_and(|a| a.starts_with("172.24.4."))
}

#[test]
fn routers_and_floating_ips_over_http() {
    let server = start_without_heartbeats();
    let url = neutron(&server);
    let admin = server.admin_token();
    let (pa, _, alice) = new_member(&server, &admin, "l3-a", "l3-alice");
    let (_pb, _, bob) = new_member(&server, &admin, "l3-b", "l3-bob");
    let public = get(&format!("{url}/networks?name=public"), Some(&alice))
        .expect(200)
        .json()["networks"][0]
        .clone();
    assert_eq!(public["router:external"], true, "{public}");
    let public_id = public["id"].as_str().unwrap().to_string();
    let (n1, s1) = network_with_subnet(&url, &alice, "n1", "10.0.0.0/24", Some("n1-sub"));
    let (n2, s2) = network_with_subnet(&url, &alice, "n2", "10.1.0.0/24", Some("n2-sub"));
    let (_n3, s3) = network_with_subnet(&url, &alice, "n3", "10.0.0.0/16", Some("n3-sub"));

    // --- a router with a gateway on public -----------------------------------------------------------------
    let r = post(
        &format!("{url}/routers"),
        Some(&alice),
        &json!({"router": {"name": "r1", "external_gateway_info": {"network_id": public_id}}}),
    )
    .expect(201)
    .json()["router"]
        .clone();
    let r1 = r["id"].as_str().unwrap().to_string();
    let gw = &r["external_gateway_info"];
    assert_eq!(gw["network_id"], public_id.as_str());
    assert_eq!(gw["enable_snat"], true);
    assert!(in_public(&gw["external_fixed_ips"][0]["ip_address"]), "{r}");
    assert_eq!(r["status"], "ACTIVE");
    assert_eq!(r["revision_number"], 2, "created with its gateway: {r}");
    assert!(
        r.get("distributed").is_none() && r.get("ha").is_none(),
        "admin-only attributes: {r}"
    );
    let seen_by_admin = router(&url, &admin, &r1);
    assert_eq!(
        (
            seen_by_admin["distributed"].as_bool(),
            seen_by_admin["ha"].as_bool()
        ),
        (Some(false), Some(false))
    );
    assert_eq!(quota_used(&url, &admin, &pa, "router"), 1);

    appends_nothing(&server, "bad gateways and router requests", || {
        fault(
            &put_json(
                &format!("{url}/routers/{r1}"),
                &alice,
                &json!({"router": {"external_gateway_info": {"network_id": public_id, "enable_snat": false}}}),
            ),
            403,
            "PolicyNotAuthorized",
        );
        fault(
            &post(
                &format!("{url}/routers"),
                Some(&alice),
                &json!({"router": {"name": "x", "external_gateway_info": {"network_id": n1}}}),
            ),
            400,
            "BadRequest",
        );
        fault(
            &post(
                &format!("{url}/routers"),
                Some(&alice),
                &json!({"router": {"external_gateway_info": {"network_id": "00000000-0000-4000-8000-000000000000"}}}),
            ),
            404,
            "NetworkNotFound",
        );
        fault(
            &post(
                &format!("{url}/routers"),
                Some(&alice),
                &json!({"router": {"distributed": true}}),
            ),
            403,
            "PolicyNotAuthorized",
        );
        fault(
            &post(
                &format!("{url}/routers"),
                Some(&alice),
                &json!({"router": {"colour": "red"}}),
            ),
            400,
            "HTTPBadRequest",
        );
    });
    // Admins may turn SNAT off.
    let snat_off = put_json(
        &format!("{url}/routers/{r1}"),
        &admin,
        &json!({"router": {"external_gateway_info": {"network_id": public_id, "enable_snat": false}}}),
    )
    .expect(200)
    .json()["router"]
        .clone();
    assert_eq!(snat_off["external_gateway_info"]["enable_snat"], false);
    assert_eq!(
        snat_off["external_gateway_info"]["external_fixed_ips"], gw["external_fixed_ips"],
        "the same gateway port keeps its address"
    );

    // --- interfaces ------------------------------------------------------------------------------------------
    let info = iface(
        &url,
        &alice,
        &r1,
        "add_router_interface",
        json!({"subnet_id": s1}),
    )
    .expect(200)
    .json();
    assert_eq!(info["id"], r1.as_str());
    assert_eq!(info["subnet_id"], s1.as_str());
    assert_eq!(info["network_id"], n1.as_str());
    let if1 = info["port_id"].as_str().unwrap().to_string();
    let p = get(&format!("{url}/ports/{if1}"), Some(&alice))
        .expect(200)
        .json()["port"]
        .clone();
    assert_eq!(p["device_owner"], "network:router_interface");
    assert_eq!(p["device_id"], r1.as_str());
    // A router's port goes with its interface, not through the port API.
    appends_nothing(&server, "deleting a router port", || {
        let r = delete(&format!("{url}/ports/{if1}"), Some(&alice));
        fault(&r, 409, "L3PortInUse");
    });
    assert_eq!(
        p["fixed_ips"][0]["ip_address"], "10.0.0.1",
        "the subnet's gateway address: {p}"
    );
    // By port: an unbound port of n2.
    let p2 = port(&url, &alice, &n2);
    let p2_id = p2["id"].as_str().unwrap().to_string();
    let info2 = iface(
        &url,
        &alice,
        &r1,
        "add_router_interface",
        json!({"port_id": p2_id}),
    )
    .expect(200)
    .json();
    assert_eq!(info2["subnet_ids"], json!([s2]));
    let p2 = get(&format!("{url}/ports/{p2_id}"), Some(&alice))
        .expect(200)
        .json()["port"]
        .clone();
    assert_eq!(
        (p2["device_owner"].as_str(), p2["device_id"].as_str()),
        (Some("network:router_interface"), Some(r1.as_str()))
    );

    appends_nothing(&server, "bad interfaces and routes", || {
        let m = fault(
            &iface(
                &url,
                &alice,
                &r1,
                "add_router_interface",
                json!({"subnet_id": s1}),
            ),
            400,
            "BadRequest",
        );
        assert!(m.contains("already has a port on subnet"), "{m}");
        let m = fault(
            &iface(
                &url,
                &alice,
                &r1,
                "add_router_interface",
                json!({"subnet_id": s3}),
            ),
            400,
            "BadRequest",
        );
        assert!(m.contains("overlaps"), "{m}");
        fault(
            &iface(
                &url,
                &alice,
                &r1,
                "add_router_interface",
                json!({"subnet_id": s1, "port_id": p2_id}),
            ),
            400,
            "BadRequest",
        );
        fault(
            &iface(&url, &alice, &r1, "add_router_interface", json!({})),
            400,
            "BadRequest",
        );
        fault(
            &iface(
                &url,
                &alice,
                &r1,
                "add_router_interface",
                json!({"port_id": if1}),
            ),
            409,
            "PortInUse",
        );
        fault(
            &iface(
                &url,
                &alice,
                &r1,
                "remove_router_interface",
                json!({"subnet_id": s3}),
            ),
            404,
            "RouterInterfaceNotFoundForSubnet",
        );
        let m = fault(
            &put_json(
                &format!("{url}/routers/{r1}"),
                &alice,
                &json!({"router": {"routes": [{"destination": "192.168.0.0/16", "nexthop": "10.9.9.9"}]}}),
            ),
            400,
            "InvalidRoutes",
        );
        assert!(m.contains("not connected with router"), "{m}");
        fault(
            &put_json(
                &format!("{url}/routers/{r1}"),
                &alice,
                &json!({"router": {"routes": [{"destination": "nowhere", "nexthop": "10.0.0.9"}]}}),
            ),
            400,
            "InvalidRoutes",
        );
        fault(
            &delete(&format!("{url}/routers/{r1}"), Some(&alice)),
            409,
            "RouterInUse",
        );
        let stale = request_raw(
            "PUT",
            &format!("{url}/routers/{r1}"),
            &[("X-Auth-Token", &alice), ("If-Match", "revision_number=1")],
            Some(&json!({"router": {"name": "stale"}}).to_string()),
        )
        .unwrap();
        fault(&stale, 412, "RevisionNumberConstraintFailed");
    });

    // Static routes through an attached subnet; an interface a route needs stays.
    let routed = put_json(
        &format!("{url}/routers/{r1}"),
        &alice,
        &json!({"router": {"routes": [{"destination": "192.168.0.0/16", "nexthop": "10.1.0.50"}]}}),
    )
    .expect(200)
    .json()["router"]
        .clone();
    assert_eq!(
        routed["routes"],
        json!([{"destination": "192.168.0.0/16", "nexthop": "10.1.0.50"}])
    );
    appends_nothing(&server, "an interface a route needs", || {
        fault(
            &iface(
                &url,
                &alice,
                &r1,
                "remove_router_interface",
                json!({"port_id": p2_id}),
            ),
            409,
            "RouterInterfaceInUseByRoute",
        );
    });
    put_json(
        &format!("{url}/routers/{r1}"),
        &alice,
        &json!({"router": {"routes": []}}),
    )
    .expect(200);
    iface(
        &url,
        &alice,
        &r1,
        "remove_router_interface",
        json!({"port_id": p2_id}),
    )
    .expect(200);
    fault(
        &get(&format!("{url}/ports/{p2_id}"), Some(&alice)),
        404,
        "PortNotFound",
    );

    // --- floating IPs ------------------------------------------------------------------------------------------
    let fip = post(
        &format!("{url}/floatingips"),
        Some(&alice),
        &json!({"floatingip": {"floating_network_id": public_id, "description": "web"}}),
    )
    .expect(201)
    .json()["floatingip"]
        .clone();
    let f1 = fip["id"].as_str().unwrap().to_string();
    assert!(in_public(&fip["floating_ip_address"]), "{fip}");
    assert_eq!(fip["status"], "DOWN");
    assert!(fip["port_id"].is_null() && fip["router_id"].is_null());
    assert_eq!(quota_used(&url, &admin, &pa, "floatingip"), 1);

    let vm = port(&url, &alice, &n1);
    let vm_id = vm["id"].as_str().unwrap().to_string();
    let vm_ip = vm["fixed_ips"][0]["ip_address"]
        .as_str()
        .unwrap()
        .to_string();
    let assoc = update_fip(&url, &alice, &f1, json!({"port_id": vm_id}))
        .expect(200)
        .json()["floatingip"]
        .clone();
    assert_eq!(assoc["router_id"], r1.as_str());
    assert_eq!(assoc["fixed_ip_address"], vm_ip.as_str());
    assert_eq!(assoc["port_details"]["network_id"], n1.as_str());
    let active = wait_fip(&url, &alice, &f1, "ACTIVE");
    assert_eq!(active["port_id"], vm_id.as_str());

    let vm2 = port(&url, &alice, &n2);
    let vm2_id = vm2["id"].as_str().unwrap().to_string();
    let f2 = post(
        &format!("{url}/floatingips"),
        Some(&alice),
        &json!({"floatingip": {"floating_network_id": public_id}}),
    )
    .expect(201)
    .json()["floatingip"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    appends_nothing(&server, "bad associations", || {
        // n2 is no longer attached to a router with a gateway on public.
        let m = fault(
            &update_fip(&url, &alice, &f2, json!({"port_id": vm2_id})),
            404,
            "ExternalGatewayForFloatingIPNotFound",
        );
        assert!(m.contains(&vm2_id) && m.contains(&public_id), "{m}");
        fault(
            &update_fip(&url, &alice, &f2, json!({"port_id": vm_id})),
            409,
            "FloatingIPPortAlreadyAssociated",
        );
        fault(
            &update_fip(
                &url,
                &alice,
                &f2,
                json!({"port_id": vm_id, "fixed_ip_address": "10.0.0.250"}),
            ),
            400,
            "BadRequest",
        );
        fault(
            &post(
                &format!("{url}/floatingips"),
                Some(&alice),
                &json!({"floatingip": {"floating_network_id": n1}}),
            ),
            400,
            "BadRequest",
        );
        fault(
            &post(
                &format!("{url}/floatingips"),
                Some(&alice),
                &json!({"floatingip": {"floating_network_id": public_id, "floating_ip_address": "172.24.4.200"}}),
            ),
            403,
            "PolicyNotAuthorized",
        );
        fault(
            &iface(
                &url,
                &alice,
                &r1,
                "remove_router_interface",
                json!({"subnet_id": s1}),
            ),
            409,
            "RouterInterfaceInUseByFloatingIP",
        );
        fault(
            &put_json(
                &format!("{url}/routers/{r1}"),
                &alice,
                &json!({"router": {"external_gateway_info": {}}}),
            ),
            409,
            "RouterExternalGatewayInUseByFloatingIp",
        );
    });

    // Disassociate: DOWN again.
    let off = update_fip(&url, &alice, &f1, json!({"port_id": null}))
        .expect(200)
        .json()["floatingip"]
        .clone();
    assert!(
        off["port_id"].is_null() && off["router_id"].is_null(),
        "{off}"
    );
    wait_fip(&url, &alice, &f1, "DOWN");
    // Associated at create, through the same router.
    let f3 = post(
        &format!("{url}/floatingips"),
        Some(&alice),
        &json!({"floatingip": {"floating_network_id": public_id, "port_id": vm_id}}),
    )
    .expect(201)
    .json()["floatingip"]
        .clone();
    assert_eq!(f3["router_id"], r1.as_str());
    let f3_id = f3["id"].as_str().unwrap().to_string();
    wait_fip(&url, &alice, &f3_id, "ACTIVE");

    // An admin may ask for an address; a held address is refused; a released one is free again.
    let wanted = post(
        &format!("{url}/floatingips"),
        Some(&admin),
        &json!({"floatingip": {"floating_network_id": public_id, "floating_ip_address": "172.24.4.200", "project_id": pa}}),
    )
    .expect(201)
    .json()["floatingip"]
        .clone();
    assert_eq!(wanted["floating_ip_address"], "172.24.4.200");
    assert_eq!(wanted["project_id"], pa.as_str());
    let wanted_id = wanted["id"].as_str().unwrap().to_string();
    appends_nothing(&server, "an address in use", || {
        fault(
            &post(
                &format!("{url}/floatingips"),
                Some(&admin),
                &json!({"floatingip": {"floating_network_id": public_id, "floating_ip_address": "172.24.4.200"}}),
            ),
            409,
            "IpAddressAlreadyAllocated",
        );
    });
    delete(&format!("{url}/floatingips/{wanted_id}"), Some(&alice)).expect(204);
    let again = post(
        &format!("{url}/floatingips"),
        Some(&admin),
        &json!({"floatingip": {"floating_network_id": public_id, "floating_ip_address": "172.24.4.200"}}),
    )
    .expect(201)
    .json()["floatingip"]
        .clone();
    delete(
        &format!("{url}/floatingips/{}", again["id"].as_str().unwrap()),
        Some(&admin),
    )
    .expect(204);

    // Tags and list filters.
    put_json(
        &format!("{url}/floatingips/{f1}/tags"),
        &alice,
        &json!({"tags": ["spare"]}),
    )
    .expect(200);
    put_json(
        &format!("{url}/routers/{r1}/tags"),
        &alice,
        &json!({"tags": ["edge"]}),
    )
    .expect(200);
    let tagged = get(&format!("{url}/floatingips?tags=spare"), Some(&alice))
        .expect(200)
        .json();
    assert_eq!(
        tagged["floatingips"].as_array().unwrap().len(),
        1,
        "{tagged}"
    );
    let by_port = get(&format!("{url}/floatingips?port_id={vm_id}"), Some(&alice))
        .expect(200)
        .json();
    assert_eq!(by_port["floatingips"][0]["id"], f3_id.as_str(), "{by_port}");
    let tagged = get(&format!("{url}/routers?tags=edge"), Some(&alice))
        .expect(200)
        .json();
    assert_eq!(tagged["routers"][0]["id"], r1.as_str(), "{tagged}");

    // --- another project sees none of it -----------------------------------------------------------------------
    assert!(get(&format!("{url}/routers"), Some(&bob))
        .expect(200)
        .json()["routers"]
        .as_array()
        .unwrap()
        .is_empty());
    assert!(get(&format!("{url}/floatingips"), Some(&bob))
        .expect(200)
        .json()["floatingips"]
        .as_array()
        .unwrap()
        .is_empty());
    appends_nothing(&server, "another project's router and floating IP", || {
        fault(
            &get(&format!("{url}/routers/{r1}"), Some(&bob)),
            404,
            "RouterNotFound",
        );
        fault(
            &put_json(
                &format!("{url}/routers/{r1}"),
                &bob,
                &json!({"router": {"name": "mine"}}),
            ),
            404,
            "RouterNotFound",
        );
        fault(
            &delete(&format!("{url}/routers/{r1}"), Some(&bob)),
            404,
            "RouterNotFound",
        );
        fault(
            &iface(
                &url,
                &bob,
                &r1,
                "add_router_interface",
                json!({"subnet_id": s2}),
            ),
            404,
            "RouterNotFound",
        );
        fault(
            &get(&format!("{url}/floatingips/{f1}"), Some(&bob)),
            404,
            "FloatingIPNotFound",
        );
        fault(
            &update_fip(&url, &bob, &f1, json!({"description": "mine"})),
            404,
            "FloatingIPNotFound",
        );
        fault(
            &delete(&format!("{url}/floatingips/{f1}"), Some(&bob)),
            404,
            "FloatingIPNotFound",
        );
        fault(
            &get(&format!("{url}/routers/{r1}/tags"), Some(&bob)),
            404,
            "RouterNotFound",
        );
    });

    // --- quotas -----------------------------------------------------------------------------------------------
    assert_eq!(quota_used(&url, &admin, &pa, "floatingip"), 3);
    put_json(
        &format!("{url}/quotas/{pa}"),
        &admin,
        &json!({"quota": {"router": 1, "floatingip": 3}}),
    )
    .expect(200);
    appends_nothing(&server, "over quota", || {
        fault(
            &post(
                &format!("{url}/routers"),
                Some(&alice),
                &json!({"router": {"name": "r2"}}),
            ),
            409,
            "OverQuota",
        );
        fault(
            &post(
                &format!("{url}/floatingips"),
                Some(&alice),
                &json!({"floatingip": {"floating_network_id": public_id}}),
            ),
            409,
            "OverQuota",
        );
    });

    // --- a restart keeps everything (the start-up sweep finds nothing to undo) and re-plumbs the datapath ---
    let before = (
        router(&url, &alice, &r1),
        get(&format!("{url}/ports?device_id={r1}"), Some(&admin))
            .expect(200)
            .json(),
    );
    let mut server = server;
    server.restart();
    let url = neutron(&server);
    assert_eq!(router(&url, &alice, &r1), before.0);
    assert_eq!(
        get(&format!("{url}/ports?device_id={r1}"), Some(&admin))
            .expect(200)
            .json(),
        before.1
    );
    wait_fip(&url, &alice, &f3_id, "ACTIVE");

    // --- teardown: floating IPs, interfaces, then the router and its gateway port ---------------------------
    let gw_port = router(&url, &alice, &r1)["external_gateway_info"]["external_fixed_ips"][0]
        ["ip_address"]
        .as_str()
        .unwrap()
        .to_string();
    for f in [&f1, &f2, &f3_id] {
        delete(&format!("{url}/floatingips/{f}"), Some(&alice)).expect(204);
    }
    assert_eq!(quota_used(&url, &admin, &pa, "floatingip"), 0);
    iface(
        &url,
        &alice,
        &r1,
        "remove_router_interface",
        json!({"subnet_id": s1}),
    )
    .expect(200);
    fault(
        &get(&format!("{url}/ports/{if1}"), Some(&alice)),
        404,
        "PortNotFound",
    );
    delete(&format!("{url}/routers/{r1}"), Some(&alice)).expect(204);
    fault(
        &get(&format!("{url}/routers/{r1}"), Some(&alice)),
        404,
        "RouterNotFound",
    );
    assert_eq!(quota_used(&url, &admin, &pa, "router"), 0);
    let gw_ports = get(
        &format!("{url}/ports?device_owner=network:router_gateway"),
        Some(&admin),
    )
    .expect(200)
    .json();
    assert!(
        !gw_ports.to_string().contains(&gw_port),
        "the gateway port went with the router: {gw_ports}"
    );

    server.kill();
    let out = server.replay_verify();
    assert!(out.success, "replay --verify:\n{}", out.describe());
}
