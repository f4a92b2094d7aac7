//! Neutron over HTTP through the real binary: version discovery and extensions, networks, subnets (IPv4 and
//! IPv6) and ports, the bad-input list (Neutron's fault bodies, nothing recorded), tenant isolation,
//! If-Match, list conventions (filters, sorting, paging, fields), tags, quotas, the bootstrap network, and
//! concurrent port creation on a small subnet (no duplicate address or MAC; exhaustion is refused).

use std::collections::BTreeSet;

use crate::common::neutron::*;
use crate::common::nova::new_member;
use crate::common::*;
use serde_json::{json, Value};

/// Events of networking streams recorded so far (the log read beside the running server).
fn network_events(server: &Server) -> Vec<Value> {
    server
        .log_dump()
        .expect("log dump")
        .into_iter()
        .filter(|e| ev_type(e).starts_with("network."))
        .collect()
}

fn create(url: &str, token: &str, kind: &str, body: Value) -> Value {
    post(
        &format!("{url}/{kind}s"),
        Some(token),
        &json!({ kind: body }),
    )
    .expect(201)
    .json()[kind]
        .clone()
}

fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_string()
}

fn names(v: &Value, collection: &str) -> Vec<String> {
    v[collection]
        .as_array()
        .unwrap_or_else(|| panic!("no {collection} in {v}"))
        .iter()
        .map(|r| r["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn with_if_match(method: &str, url: &str, token: &str, body: &Value, revision: u64) -> Resp {
    let m = format!("revision_number={revision}");
    request_raw(
        method,
        url,
        &[("X-Auth-Token", token), ("If-Match", &m)],
        Some(&body.to_string()),
    )
    .unwrap()
}

#[test]
fn networks_subnets_ports_tags_quotas_and_bad_input_over_http() {
    let server = Server::start();
    let url = neutron(&server);
    let admin = server.admin_token();
    let (project, _, member) = new_member(&server, &admin, "net-proj", "net-user");
    let (_, _, other) = new_member(&server, &admin, "other-proj", "other-user");

    // Version discovery and extensions.
    let root = server.endpoint("network").unwrap().to_string();
    let v = get(&format!("{root}/"), None).expect(200).json();
    assert_eq!(v["versions"][0]["id"], "v2.0", "{v}");
    let v = get(&url, Some(&member)).expect(200).json();
    assert!(v["resources"].as_array().unwrap().len() >= 3, "{v}");
    let ext = get(&format!("{url}/extensions"), Some(&member))
        .expect(200)
        .json();
    let aliases: BTreeSet<&str> = ext["extensions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["alias"].as_str().unwrap())
        .collect();
    for a in [
        "external-net",
        "standard-attr-revisions",
        "standard-attr-tag",
        "quotas",
        "quota_details",
        "allowed-address-pairs",
        "port-security",
        "binding",
        "provider",
        "availability_zone",
        "network_availability_zone",
        "revision-if-match",
        "pagination",
        "sorting",
    ] {
        assert!(aliases.contains(a), "{a} missing from {aliases:?}");
    }
    assert!(!aliases.contains("subnet_allocation"), "no subnet pools");
    get(&format!("{url}/extensions/quotas"), Some(&member)).expect(200);
    fault(
        &get(&format!("{url}/extensions/nope"), Some(&member)),
        404,
        "ExtensionNotFound",
    );
    fault(
        &get(&format!("{url}/networks"), None),
        401,
        "HTTPUnauthorized",
    );

    // The bootstrap network: external, the admin's, visible to tenants (its subnet is not).
    let public = get(
        &format!("{url}/networks?router:external=True"),
        Some(&member),
    )
    .expect(200)
    .json();
    assert_eq!(names(&public, "networks"), ["public"], "{public}");
    assert!(
        public["networks"][0].get("provider:network_type").is_none(),
        "admin-only attributes"
    );
    let subnets = get(&format!("{url}/subnets"), Some(&member))
        .expect(200)
        .json();
    assert!(
        subnets["subnets"].as_array().unwrap().is_empty(),
        "{subnets}"
    );
    let admin_view = get(&format!("{url}/networks?name=public"), Some(&admin))
        .expect(200)
        .json();
    assert_eq!(admin_view["networks"][0]["provider:network_type"], "flat");
    assert_eq!(admin_view["networks"][0]["mtu"], 1500);

    // A tenant network, a v4 subnet with pools, an IPv6 SLAAC subnet.
    let net = create(
        &url,
        &member,
        "network",
        json!({"name": "n1", "tags": ["blue"]}),
    );
    let net_id = id(&net);
    assert_eq!(net["status"], "ACTIVE");
    assert_eq!(net["mtu"], 1450, "vxlan's MTU: {net}");
    assert_eq!(net["revision_number"], 1);
    assert_eq!(net["project_id"], project);
    assert_eq!(net["tags"], json!(["blue"]));
    assert!(net.get("provider:segmentation_id").is_none());
    let s4 = create(
        &url,
        &member,
        "subnet",
        json!({"network_id": net_id, "name": "s4", "ip_version": 4, "cidr": "10.0.0.0/24",
               "allocation_pools": [{"start": "10.0.0.10", "end": "10.0.0.20"}],
               "dns_nameservers": ["8.8.8.8"], "host_routes": [{"destination": "192.168.0.0/24", "nexthop": "10.0.0.254"}]}),
    );
    let s4_id = id(&s4);
    assert_eq!(s4["gateway_ip"], "10.0.0.1");
    assert_eq!(
        s4["allocation_pools"],
        json!([{"start": "10.0.0.10", "end": "10.0.0.20"}])
    );
    assert_eq!(s4["enable_dhcp"], true);
    let defaults = create(
        &url,
        &member,
        "subnet",
        json!({"network_id": net_id, "name": "sd", "ip_version": 4, "cidr": "10.1.0.0/29", "gateway_ip": null}),
    );
    assert_eq!(defaults["gateway_ip"], Value::Null);
    assert_eq!(
        defaults["allocation_pools"],
        json!([{"start": "10.1.0.1", "end": "10.1.0.6"}])
    );
    let s6 = create(
        &url,
        &member,
        "subnet",
        json!({"network_id": net_id, "name": "s6", "ip_version": 6, "cidr": "2001:db8::/64",
               "ipv6_ra_mode": "slaac", "ipv6_address_mode": "slaac"}),
    );
    assert_eq!(s6["gateway_ip"], "2001:db8::1");
    assert_eq!(s6["allocation_pools"][0]["start"], "2001:db8::2");
    let net = get(&format!("{url}/networks/{net_id}"), Some(&member))
        .expect(200)
        .json()["network"]
        .clone();
    assert_eq!(net["subnets"].as_array().unwrap().len(), 3, "{net}");

    // Ports: an address asked for, the lowest free one by default, a fa:16:3e MAC, the SLAAC address.
    let p1 = create(
        &url,
        &member,
        "port",
        json!({"network_id": net_id, "name": "p1", "fixed_ips": [{"subnet_id": s4_id, "ip_address": "10.0.0.15"}]}),
    );
    assert_eq!(
        p1["fixed_ips"],
        json!([{"subnet_id": s4_id, "ip_address": "10.0.0.15"}])
    );
    assert_eq!(p1["status"], "DOWN");
    let p2 = create(
        &url,
        &member,
        "port",
        json!({"network_id": net_id, "name": "p2"}),
    );
    let mac = p2["mac_address"].as_str().unwrap();
    assert!(mac.starts_with("fa:16:3e:"), "{p2}");
    let ips: Vec<&str> = p2["fixed_ips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["ip_address"].as_str().unwrap())
        .collect();
    assert_eq!(ips[0], "10.0.0.10", "{p2}");
    assert!(ips[1].starts_with("2001:db8::f"), "EUI-64 address: {p2}");
    assert!(
        p2.get("binding:host_id").is_none(),
        "admin-only binding attributes"
    );
    let p2_id = id(&p2);
    let filtered = get(
        &format!("{url}/ports?fixed_ips=ip_address%3D10.0.0.15"),
        Some(&member),
    )
    .expect(200)
    .json();
    assert_eq!(names(&filtered, "ports"), ["p1"], "{filtered}");

    // The bad-input list: Neutron's faults, and nothing recorded for any of them.
    let before = network_events(&server).len();
    let sub = |body: Value| {
        post(
            &format!("{url}/subnets"),
            Some(&member),
            &json!({ "subnet": body }),
        )
    };
    fault(
        &sub(json!({"network_id": net_id, "ip_version": 4, "cidr": "10.9.0.0/33"})),
        400,
        "InvalidInput",
    );
    fault(
        &sub(json!({"network_id": net_id, "ip_version": 4, "cidr": "banana"})),
        400,
        "InvalidInput",
    );
    fault(
        &sub(json!({"network_id": net_id, "ip_version": 6, "cidr": "10.9.0.0/24"})),
        400,
        "InvalidInput",
    );
    fault(
        &sub(
            json!({"network_id": net_id, "ip_version": 4, "cidr": "10.9.0.0/24",
                    "allocation_pools": [{"start": "10.9.0.10", "end": "10.9.0.50"}, {"start": "10.9.0.40", "end": "10.9.0.60"}]}),
        ),
        400,
        "OverlappingAllocationPools",
    );
    fault(
        &sub(
            json!({"network_id": net_id, "ip_version": 4, "cidr": "10.9.0.0/24", "gateway_ip": "10.9.0.20",
                    "allocation_pools": [{"start": "10.9.0.10", "end": "10.9.0.50"}]}),
        ),
        409,
        "GatewayConflictWithAllocationPools",
    );
    fault(
        &sub(
            json!({"network_id": net_id, "ip_version": 4, "cidr": "10.9.0.0/24",
                    "allocation_pools": [{"start": "10.9.0.10", "end": "10.9.1.5"}]}),
        ),
        400,
        "OutOfBoundsAllocationPool",
    );
    fault(
        &sub(json!({"network_id": net_id, "ip_version": 4, "cidr": "10.0.0.128/25"})),
        400,
        "InvalidInput",
    );
    fault(
        &sub(json!({"network_id": "nope", "ip_version": 4, "cidr": "10.9.0.0/24"})),
        404,
        "NetworkNotFound",
    );
    let port = |body: Value| {
        post(
            &format!("{url}/ports"),
            Some(&member),
            &json!({ "port": body }),
        )
    };
    fault(
        &port(
            json!({"network_id": net_id, "fixed_ips": [{"subnet_id": s4_id, "ip_address": "10.0.1.5"}]}),
        ),
        400,
        "InvalidIpForSubnet",
    );
    fault(
        &port(json!({"network_id": net_id, "fixed_ips": [{"ip_address": "10.0.0.15"}]})),
        409,
        "IpAddressAlreadyAllocated",
    );
    fault(
        &port(json!({"network_id": net_id, "fixed_ips": [{"ip_address": "172.16.0.1"}]})),
        400,
        "InvalidIpForNetwork",
    );
    fault(
        &port(json!({"network_id": net_id, "mac_address": mac})),
        409,
        "MacAddressInUse",
    );
    fault(
        &port(json!({"network_id": net_id, "colour": "red"})),
        400,
        "HTTPBadRequest",
    );
    fault(
        &port(json!({"network_id": net_id, "binding:host_id": "fake-0"})),
        403,
        "PolicyNotAuthorized",
    );
    fault(
        &post(
            &format!("{url}/networks"),
            Some(&member),
            &json!({"network": {"name": "x", "shared": true}}),
        ),
        403,
        "PolicyNotAuthorized",
    );
    fault(
        &post(
            &format!("{url}/networks"),
            Some(&member),
            &json!({"network": {"mtu": 9000}}),
        ),
        400,
        "InvalidInput",
    );
    fault(
        &post(
            &format!("{url}/networks"),
            Some(&member),
            &json!({"net": {}}),
        ),
        400,
        "HTTPBadRequest",
    );
    fault(
        &delete(&format!("{url}/networks/{net_id}"), Some(&member)),
        409,
        "NetworkInUse",
    );
    fault(
        &delete(&format!("{url}/subnets/{s4_id}"), Some(&member)),
        409,
        "SubnetInUse",
    );
    fault(
        &with_if_match(
            "PUT",
            &format!("{url}/networks/{net_id}"),
            &member,
            &json!({"network": {"name": "n2"}}),
            99,
        ),
        412,
        "RevisionNumberConstraintFailed",
    );
    fault(
        &with_if_match(
            "PUT",
            &format!("{url}/ports/{p2_id}"),
            &member,
            &json!({"port": {"name": "x"}}),
            99,
        ),
        412,
        "RevisionNumberConstraintFailed",
    );
    fault(
        &request(
            "PUT",
            &format!("{url}/networks/{net_id}"),
            Some(&member),
            Some(&json!({"network": {"id": "x"}})),
        ),
        400,
        "HTTPBadRequest",
    );
    fault(
        &request(
            "PUT",
            &format!("{url}/subnets/{s4_id}"),
            Some(&member),
            Some(&json!({"subnet": {"gateway_ip": "10.0.0.12"}})),
        ),
        409,
        "GatewayConflictWithAllocationPools",
    );
    assert_eq!(
        network_events(&server).len(),
        before,
        "a refused request recorded something"
    );

    // If-Match with the current revision, updates.
    let updated = with_if_match(
        "PUT",
        &format!("{url}/networks/{net_id}"),
        &member,
        &json!({"network": {"name": "n1b"}}),
        4,
    )
    .expect(200)
    .json();
    assert_eq!(updated["network"]["name"], "n1b");
    assert_eq!(updated["network"]["revision_number"], 5);
    let s = request(
        "PUT",
        &format!("{url}/subnets/{s4_id}"),
        Some(&member),
        Some(&json!({"subnet": {"name": "s4b", "dns_nameservers": [], "allocation_pools": [{"start": "10.0.0.10", "end": "10.0.0.30"}]}})),
    )
    .expect(200)
    .json();
    assert_eq!(s["subnet"]["allocation_pools"][0]["end"], "10.0.0.30");
    assert_eq!(s["subnet"]["revision_number"], 2);
    let p = request(
        "PUT",
        &format!("{url}/ports/{p2_id}"),
        Some(&member),
        Some(&json!({"port": {"name": "p2b", "fixed_ips": [{"subnet_id": s4_id, "ip_address": "10.0.0.25"}],
                                "allowed_address_pairs": [{"ip_address": "10.0.0.100"}]}})),
    )
    .expect(200)
    .json();
    assert_eq!(
        p["port"]["fixed_ips"],
        json!([{"subnet_id": s4_id, "ip_address": "10.0.0.25"}])
    );
    assert_eq!(p["port"]["allowed_address_pairs"][0]["mac_address"], mac);
    // The released address is free again.
    create(
        &url,
        &member,
        "port",
        json!({"network_id": net_id, "name": "p3", "fixed_ips": [{"ip_address": "10.0.0.10"}]}),
    );

    // Binding (admin): ACTIVE once a compute port is bound.
    let bound = request(
        "PUT",
        &format!("{url}/ports/{p2_id}"),
        Some(&admin),
        Some(&json!({"port": {"binding:host_id": "fake-0", "device_owner": "compute:nova", "device_id": "vm-1"}})),
    )
    .expect(200)
    .json();
    assert_eq!(bound["port"]["status"], "ACTIVE", "{bound}");
    assert_eq!(bound["port"]["binding:vif_type"], "ovs");
    let by_device = get(&format!("{url}/ports?device_id=vm-1"), Some(&member))
        .expect(200)
        .json();
    assert_eq!(names(&by_device, "ports"), ["p2b"]);

    // Tenant isolation: another project sees none of it (404), and cannot use the network.
    fault(
        &get(&format!("{url}/networks/{net_id}"), Some(&other)),
        404,
        "NetworkNotFound",
    );
    fault(
        &get(&format!("{url}/subnets/{s4_id}"), Some(&other)),
        404,
        "SubnetNotFound",
    );
    fault(
        &get(&format!("{url}/ports/{p2_id}"), Some(&other)),
        404,
        "PortNotFound",
    );
    fault(
        &delete(&format!("{url}/networks/{net_id}"), Some(&other)),
        404,
        "NetworkNotFound",
    );
    fault(
        &post(
            &format!("{url}/ports"),
            Some(&other),
            &json!({"port": {"network_id": net_id}}),
        ),
        404,
        "NetworkNotFound",
    );
    let theirs = get(&format!("{url}/networks"), Some(&other))
        .expect(200)
        .json();
    assert_eq!(names(&theirs, "networks"), ["public"]);
    assert!(get(&format!("{url}/ports"), Some(&other))
        .expect(200)
        .json()["ports"]
        .as_array()
        .unwrap()
        .is_empty());
    // Admins see everything.
    let all = get(&format!("{url}/ports"), Some(&admin))
        .expect(200)
        .json();
    assert_eq!(all["ports"].as_array().unwrap().len(), 3);

    // Tags: replace, add one, check one, remove one, remove all; list filters.
    let tags = format!("{url}/networks/{net_id}/tags");
    let t = request(
        "PUT",
        &tags,
        Some(&member),
        Some(&json!({"tags": ["red", "green", "red"]})),
    )
    .expect(200)
    .json();
    assert_eq!(t["tags"], json!(["green", "red"]));
    put(&format!("{tags}/blue"), Some(&member)).expect(201);
    get(&format!("{tags}/blue"), Some(&member)).expect(204);
    fault(
        &get(&format!("{tags}/pink"), Some(&member)),
        404,
        "TagNotFound",
    );
    delete(&format!("{tags}/green"), Some(&member)).expect(204);
    assert_eq!(
        get(&tags, Some(&member)).expect(200).json()["tags"],
        json!(["blue", "red"])
    );
    let ptags = format!("{url}/ports/{p2_id}/tags");
    put(&format!("{ptags}/web"), Some(&member)).expect(201);
    let stags = format!("{url}/subnets/{s4_id}/tags");
    put(&format!("{stags}/v4"), Some(&member)).expect(201);
    assert_eq!(
        get(&stags, Some(&member)).expect(200).json()["tags"],
        json!(["v4"])
    );
    fault(
        &put(
            &format!("{url}/networks/{net_id}/tags/{}", "x".repeat(61)),
            Some(&member),
        ),
        400,
        "InvalidInput",
    );
    fault(
        &get(&format!("{url}/networks/{net_id}/tags"), Some(&other)),
        404,
        "NetworkNotFound",
    );
    let n2 = create(
        &url,
        &member,
        "network",
        json!({"name": "n2", "tags": ["red"]}),
    );
    let q = |query: &str| {
        names(
            &get(&format!("{url}/networks?{query}"), Some(&member))
                .expect(200)
                .json(),
            "networks",
        )
    };
    assert_eq!(q("tags=blue,red"), ["n1b"]);
    assert_eq!(q("tags-any=red&sort_key=name"), ["n1b", "n2"]);
    assert_eq!(q("not-tags=blue&sort_key=name"), ["n2", "public"]);
    assert_eq!(q("not-tags-any=red"), ["public"]);
    assert_eq!(q("tags=web&sort_key=name"), Vec::<String>::new());
    assert_eq!(
        names(
            &get(&format!("{url}/ports?tags=web"), Some(&member))
                .expect(200)
                .json(),
            "ports"
        ),
        ["p2b"]
    );
    delete(&tags, Some(&member)).expect(204);
    assert_eq!(
        get(&tags, Some(&member)).expect(200).json()["tags"],
        json!([])
    );

    // Lists: sorting, paging with links both ways, fields.
    for n in ["pa", "pb", "pc", "pd"] {
        create(&url, &member, "network", json!({"name": n}));
    }
    assert_eq!(
        q("sort_key=name&sort_dir=desc&name=pa&name=pc"),
        ["pc", "pa"]
    );
    let mut seen = Vec::new();
    let mut next = Some(format!("{url}/networks?sort_key=name&sort_dir=asc&limit=2"));
    let mut pages = 0;
    while let Some(u) = next {
        let page = get(&u, Some(&member)).expect(200).json();
        seen.extend(names(&page, "networks"));
        next = page["networks_links"]
            .as_array()
            .and_then(|l| l.iter().find(|x| x["rel"] == "next"))
            .and_then(|x| x["href"].as_str().map(str::to_string));
        pages += 1;
        assert!(pages < 10, "paging never ends");
    }
    assert_eq!(seen, ["n1b", "n2", "pa", "pb", "pc", "pd", "public"]);
    let page2 = get(
        &format!("{url}/networks?sort_key=name&limit=2&marker={}", id(&n2)),
        Some(&member),
    )
    .expect(200)
    .json();
    assert_eq!(names(&page2, "networks"), ["pa", "pb"]);
    let prev = page2["networks_links"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["rel"] == "previous")
        .expect("a previous link")["href"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        names(&get(&prev, Some(&member)).expect(200).json(), "networks"),
        ["n1b", "n2"]
    );
    let f = get(
        &format!("{url}/networks?fields=id&fields=name&name=pa"),
        Some(&member),
    )
    .expect(200)
    .json();
    let keys: BTreeSet<&String> = f["networks"][0].as_object().unwrap().keys().collect();
    assert_eq!(
        keys.into_iter().cloned().collect::<Vec<_>>(),
        ["id", "name"]
    );
    let one = get(
        &format!("{url}/ports/{p2_id}?fields=mac_address"),
        Some(&member),
    )
    .expect(200)
    .json();
    assert_eq!(one["port"], json!({"mac_address": mac}));
    fault(
        &get(&format!("{url}/networks?sort_key=colour"), Some(&member)),
        400,
        "HTTPBadRequest",
    );
    fault(
        &get(&format!("{url}/networks?limit=x"), Some(&member)),
        400,
        "HTTPBadRequest",
    );

    // Quotas: defaults, details with usage, update (admin), over quota refused with nothing recorded.
    let qurl = format!("{url}/quotas/{project}");
    let quota = get(&qurl, Some(&member)).expect(200).json();
    for (k, v) in [
        ("network", 100),
        ("subnet", 100),
        ("port", 500),
        ("router", 10),
        ("floatingip", 50),
        ("security_group", 10),
        ("security_group_rule", 100),
    ] {
        assert_eq!(quota["quota"][k], v, "{quota}");
    }
    let details = get(&format!("{qurl}/details"), Some(&member))
        .expect(200)
        .json();
    assert_eq!(details["quota"]["network"]["used"], 6, "{details}");
    assert_eq!(details["quota"]["subnet"]["used"], 3);
    assert_eq!(details["quota"]["port"]["used"], 3);
    assert_eq!(details["quota"]["port"]["reserved"], 0);
    assert_eq!(
        get(&format!("{qurl}/default"), Some(&member))
            .expect(200)
            .json()["quota"]["port"],
        500
    );
    fault(
        &request(
            "PUT",
            &qurl,
            Some(&member),
            Some(&json!({"quota": {"network": 1}})),
        ),
        403,
        "PolicyNotAuthorized",
    );
    fault(
        &get(&format!("{url}/quotas/{}", "0".repeat(32)), Some(&member)),
        403,
        "PolicyNotAuthorized",
    );
    let set = request(
        "PUT",
        &qurl,
        Some(&admin),
        Some(&json!({"quota": {"network": 6, "port": "3"}})),
    )
    .expect(200)
    .json();
    assert_eq!(
        (
            set["quota"]["network"].as_i64(),
            set["quota"]["port"].as_i64()
        ),
        (Some(6), Some(3))
    );
    fault(
        &request(
            "PUT",
            &qurl,
            Some(&admin),
            Some(&json!({"quota": {"network": 1, "check_limit": true}})),
        ),
        400,
        "HTTPBadRequest",
    );
    let listed = get(&format!("{url}/quotas"), Some(&admin))
        .expect(200)
        .json();
    assert!(
        listed["quotas"]
            .as_array()
            .unwrap()
            .iter()
            .any(|q| q["project_id"] == project),
        "{listed}"
    );
    let before = network_events(&server).len();
    fault(
        &post(
            &format!("{url}/networks"),
            Some(&member),
            &json!({"network": {"name": "too-many"}}),
        ),
        409,
        "OverQuota",
    );
    fault(&port(json!({"network_id": net_id})), 409, "OverQuota");
    assert_eq!(
        network_events(&server).len(),
        before,
        "an over-quota request recorded something"
    );
    delete(&qurl, Some(&admin)).expect(204);
    assert_eq!(
        get(&qurl, Some(&member)).expect(200).json()["quota"]["network"],
        100
    );

    // Deletes: ports, then the subnets and network go (quota given back).
    for p in get(&format!("{url}/ports?network_id={net_id}"), Some(&member))
        .expect(200)
        .json()["ports"]
        .as_array()
        .unwrap()
    {
        delete(&format!("{url}/ports/{}", id(p)), Some(&member)).expect(204);
    }
    fault(
        &delete(&format!("{url}/ports/{p2_id}"), Some(&member)),
        404,
        "PortNotFound",
    );
    delete(&format!("{url}/subnets/{s4_id}"), Some(&member)).expect(204);
    delete(&format!("{url}/networks/{net_id}"), Some(&member)).expect(204);
    fault(
        &get(&format!("{url}/subnets/{}", id(&s6)), Some(&member)),
        404,
        "SubnetNotFound",
    );
    let details = get(&format!("{qurl}/details"), Some(&member))
        .expect(200)
        .json();
    assert_eq!(details["quota"]["port"]["used"], 0, "{details}");
    assert_eq!(details["quota"]["subnet"]["used"], 0, "{details}");
    assert_eq!(details["quota"]["network"]["used"], 5, "{details}");

    let replay = server.replay_verify();
    assert!(replay.success, "{}", replay.describe());
    assert!(replay.stdout.contains("network"), "{}", replay.stdout);
}

#[test]
fn concurrent_ports_on_a_small_subnet_get_distinct_addresses_until_it_is_exhausted() {
    let server = Server::start_with_args(&["--no-public-network"]);
    let url = neutron(&server);
    let admin = server.admin_token();
    let (project, _, member) = new_member(&server, &admin, "busy", "busy-user");
    assert!(get(&format!("{url}/networks"), Some(&admin))
        .expect(200)
        .json()["networks"]
        .as_array()
        .unwrap()
        .is_empty());
    let net = id(&create(&url, &member, "network", json!({"name": "small"})));
    // A /28: gateway .1, 13 addresses (.2-.14) to hand out.
    let subnet = id(&create(
        &url,
        &member,
        "subnet",
        json!({"network_id": net, "ip_version": 4, "cidr": "10.20.0.0/28"}),
    ));
    let clients = 24;
    let results: Vec<Resp> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|i| {
                let (url, member, net) = (&url, &member, &net);
                s.spawn(move || {
                    post(
                        &format!("{url}/ports"),
                        Some(member),
                        &json!({"port": {"network_id": net, "name": format!("c{i}")}}),
                    )
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let created: Vec<Value> = results
        .iter()
        .filter(|r| r.status == 201)
        .map(|r| r.json()["port"].clone())
        .collect();
    for r in results.iter().filter(|r| r.status != 201) {
        fault(r, 409, "IpAddressGenerationFailure");
    }
    assert_eq!(created.len(), 13, "every address of the pool, and no more");
    let ips: BTreeSet<String> = created
        .iter()
        .map(|p| {
            p["fixed_ips"][0]["ip_address"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let macs: BTreeSet<&str> = created
        .iter()
        .map(|p| p["mac_address"].as_str().unwrap())
        .collect();
    assert_eq!(ips.len(), 13, "duplicate addresses: {ips:?}");
    assert_eq!(macs.len(), 13, "duplicate MACs");
    let expected: BTreeSet<String> = (2..=14).map(|i| format!("10.20.0.{i}")).collect();
    assert_eq!(ips, expected);
    assert!(created
        .iter()
        .all(|p| p["fixed_ips"][0]["subnet_id"] == subnet.as_str()));
    // The refused requests recorded nothing: 13 allocations, 13 ports, 13 reservations, no releases.
    let events = network_events(&server);
    let count = |t: &str| events.iter().filter(|e| ev_type(e) == t).count();
    assert_eq!(count("network.NetworkPortAllocated.v1"), 13);
    assert_eq!(count("network.PortCreated.v1"), 13);
    // (The project's default security group and its rules, made with the first port, hold quota too.)
    let reserved_for = |resource: &str| {
        events
            .iter()
            .filter(|e| ev_type(e) == "network.NetworkUsageReserved.v1")
            .filter(|e| e["payload"]["resource"] == resource)
            .count()
    };
    assert_eq!(
        (
            reserved_for("network"),
            reserved_for("subnet"),
            reserved_for("port")
        ),
        (1, 1, 13),
        "1 network + 1 subnet + 13 ports"
    );
    assert_eq!(count("network.NetworkPortReleased.v1"), 0);
    assert_eq!(count("network.NetworkUsageReleased.v1"), 0);
    let details = get(&format!("{url}/quotas/{project}/details"), Some(&member))
        .expect(200)
        .json();
    assert_eq!(details["quota"]["port"]["used"], 13);

    // Concurrent creates at the quota limit: exactly the limit succeeds.
    let big = id(&create(&url, &member, "network", json!({"name": "big"})));
    create(
        &url,
        &member,
        "subnet",
        json!({"network_id": big, "ip_version": 4, "cidr": "10.30.0.0/24"}),
    );
    request(
        "PUT",
        &format!("{url}/quotas/{project}"),
        Some(&admin),
        Some(&json!({"quota": {"port": 18}})),
    )
    .expect(200);
    let results: Vec<Resp> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..12)
            .map(|_| {
                let (url, member, big) = (&url, &member, &big);
                s.spawn(move || {
                    post(
                        &format!("{url}/ports"),
                        Some(member),
                        &json!({"port": {"network_id": big}}),
                    )
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let ok = results.iter().filter(|r| r.status == 201).count();
    for r in results.iter().filter(|r| r.status != 201) {
        fault(r, 409, "OverQuota");
    }
    assert_eq!(ok, 5, "18 - 13 ports");
    let details = get(&format!("{url}/quotas/{project}/details"), Some(&member))
        .expect(200)
        .json();
    assert_eq!(details["quota"]["port"]["used"], 18);
    let ports = get(&format!("{url}/ports"), Some(&member))
        .expect(200)
        .json();
    assert_eq!(ports["ports"].as_array().unwrap().len(), 18);
    let replay = server.replay_verify();
    assert!(replay.success, "{}", replay.describe());
}

#[test]
fn the_public_network_is_made_once_with_the_configured_cidr() {
    let mut server = Server::start_with_args(&["--public-network-cidr", "10.99.0.0/24"]);
    let url = neutron(&server);
    let admin = server.admin_token();
    let nets = get(&format!("{url}/networks"), Some(&admin))
        .expect(200)
        .json();
    assert_eq!(names(&nets, "networks"), ["public"]);
    let public = &nets["networks"][0];
    assert_eq!(public["router:external"], true);
    assert_eq!(public["shared"], false);
    let subnets = get(&format!("{url}/subnets"), Some(&admin))
        .expect(200)
        .json();
    assert_eq!(subnets["subnets"][0]["cidr"], "10.99.0.0/24", "{subnets}");
    assert_eq!(subnets["subnets"][0]["enable_dhcp"], false);
    // Deleted, it stays deleted across a restart: it is made once per deployment.
    delete(
        &format!("{url}/subnets/{}", id(&subnets["subnets"][0])),
        Some(&admin),
    )
    .expect(204);
    delete(&format!("{url}/networks/{}", id(public)), Some(&admin)).expect(204);
    server.restart();
    let url = neutron(&server);
    let admin = server.admin_token();
    let nets = get(&format!("{url}/networks"), Some(&admin))
        .expect(200)
        .json();
    assert!(nets["networks"].as_array().unwrap().is_empty(), "{nets}");
}
