//! Nova servers over HTTP through the real binary: the boot flow to ACTIVE, the server representation per
//! microversion, listing filters and paging, update and metadata, power actions, moves, shelve, rebuild,
//! snapshots, the scheduler's decisions (no valid host, anti-affinity), fault injection, power-state sync, the
//! build timeout, a restart in the middle of a flow, and Nova's answers to bad input.

use crate::common::nova::*;
use crate::common::*;
use serde_json::{json, Value};

const PUBLIC_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f strata-test";

struct Cloud {
    server: Server,
    nova: String,
    token: String,
    flavor: String,
    image: String,
}

fn cloud(args: &[&str]) -> Cloud {
    let server = Server::start_with_args(args);
    let nova = nova_url(&server);
    let token = server.admin_token();
    let flavor = create_flavor(&nova, &token, "m1.tiny", 1, 512, 1);
    let image = upload_image(&server, &token, "cirros", &random_bytes(64 * 1024));
    Cloud {
        server,
        nova,
        token,
        flavor,
        image,
    }
}

/// POST /servers with this cloud's flavor and image (and `extra` in the server body); returns the id.
fn boot_on(c: &Cloud, name: &str, extra: Value) -> String {
    boot(&c.nova, &c.token, name, &c.flavor, &c.image, extra)
}

/// Boot `name` (see [`boot_on`]) and wait until it is `status` with no task running; returns (id, server).
fn boot_until(c: &Cloud, name: &str, extra: Value, status: &str) -> (String, Value) {
    let id = boot_on(c, name, extra);
    let v = wait_status(&c.nova, &c.token, &id, status);
    (id, v)
}

fn act(c: &Cloud, id: &str, body: Value, status: u16) -> Resp {
    action(&c.nova, &c.token, id, body).expect(status)
}

fn cores_in_use(c: &Cloud, project: &str) -> i64 {
    let q = get(
        &format!("{}/os-quota-sets/{project}/detail", c.nova),
        Some(&c.token),
    )
    .expect(200)
    .json();
    q["quota_set"]["cores"]["in_use"]
        .as_i64()
        .unwrap_or_else(|| panic!("no cores usage in {q}"))
}

#[test]
fn boot_shows_novas_fields_and_lists_with_filters_and_paging() {
    let c = cloud(&["--fake-hosts", "2"]);
    let (id, v) = boot_until(&c, "web-1", json!({"metadata": {"role": "web"}}), "ACTIVE");
    assert_eq!(v["OS-EXT-STS:vm_state"], "active", "{v}");
    assert_eq!(v["OS-EXT-STS:power_state"], 1, "{v}");
    assert_eq!(v["OS-EXT-AZ:availability_zone"], "nova");
    assert!(
        v["OS-EXT-SRV-ATTR:host"]
            .as_str()
            .unwrap()
            .starts_with("fake-"),
        "{v}"
    );
    assert_eq!(v["hostId"].as_str().unwrap().len(), 56, "sha224 hex: {v}");
    assert_eq!(v["metadata"]["role"], "web");
    assert_eq!(v["image"]["id"], c.image.as_str());
    assert!(v["OS-SRV-USG:launched_at"].is_string(), "{v}");
    // 2.47+: the embedded flavor; before: a link by id.
    let v47 = get_at(47, &format!("{}/servers/{id}", c.nova), &c.token);
    assert_eq!(v47["server"]["flavor"]["vcpus"], 1, "{v47}");
    assert_eq!(v47["server"]["flavor"]["original_name"], "m1.tiny");
    let v1 = get_at(1, &format!("{}/servers/{id}", c.nova), &c.token);
    assert_eq!(v1["server"]["flavor"]["id"], c.flavor.as_str(), "{v1}");
    assert!(
        v1["server"].get("locked").is_none(),
        "locked appears at 2.9: {v1}"
    );
    let v73 = get_at(73, &format!("{}/servers/{id}", c.nova), &c.token);
    assert!(
        v73["server"]["locked_reason"].is_null() && v73["server"]["server_groups"].is_array(),
        "{v73}"
    );

    for n in 2..=4 {
        boot(
            &c.nova,
            &c.token,
            &format!("web-{n}"),
            &c.flavor,
            &c.image,
            json!({}),
        );
    }
    boot(&c.nova, &c.token, "db-1", &c.flavor, &c.image, json!({}));
    let all = get(&format!("{}/servers", c.nova), Some(&c.token))
        .expect(200)
        .json();
    assert_eq!(all["servers"].as_array().unwrap().len(), 5, "{all}");
    let webs = get(
        &format!("{}/servers/detail?name=web", c.nova),
        Some(&c.token),
    )
    .expect(200)
    .json();
    assert_eq!(webs["servers"].as_array().unwrap().len(), 4, "{webs}");
    let exact = get(
        &format!("{}/servers?name=%5Edb-1%24", c.nova),
        Some(&c.token),
    )
    .expect(200)
    .json();
    assert_eq!(exact["servers"][0]["name"], "db-1", "{exact}");
    // Paging: 2 per page, following the next links, sees every server once.
    let mut seen = Vec::new();
    let mut url = format!("{}/servers?limit=2", c.nova);
    loop {
        let page = get(&url, Some(&c.token)).expect(200).json();
        for s in page["servers"].as_array().unwrap() {
            seen.push(s["id"].as_str().unwrap().to_string());
        }
        match page["servers_links"][0]["href"].as_str() {
            Some(next) => url = next.to_string(),
            None => break,
        }
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 5, "{seen:?}");
    let bad = get(&format!("{}/servers?marker=nope", c.nova), Some(&c.token));
    nova_fault(&bad, 400, "badRequest");
    // Status filter.
    wait_status(&c.nova, &c.token, &id, "ACTIVE");
    act(&c, &id, json!({"os-stop": null}), 202);
    wait_status(&c.nova, &c.token, &id, "SHUTOFF");
    let off = get(
        &format!("{}/servers?status=SHUTOFF", c.nova),
        Some(&c.token),
    )
    .expect(200)
    .json();
    assert_eq!(off["servers"].as_array().unwrap().len(), 1, "{off}");
    assert_eq!(off["servers"][0]["id"], id.as_str());
}

#[test]
fn update_metadata_power_actions_console_and_delete() {
    let c = cloud(&["--fake-hosts", "1"]);
    let (id, _) = boot_until(&c, "vm", json!({}), "ACTIVE");
    let url = format!("{}/servers/{id}", c.nova);
    let r = at(
        60,
        "PUT",
        &url,
        &c.token,
        Some(&json!({"server": {"name": "vm2", "description": "d"}})),
    )
    .expect(200)
    .json();
    assert_eq!(
        (
            r["server"]["name"].as_str(),
            r["server"]["description"].as_str()
        ),
        (Some("vm2"), Some("d"))
    );
    // Metadata APIs.
    post(
        &format!("{url}/metadata"),
        Some(&c.token),
        &json!({"metadata": {"a": "1", "b": "2"}}),
    )
    .expect(200);
    let m = request(
        "PUT",
        &format!("{url}/metadata/a"),
        Some(&c.token),
        Some(&json!({"meta": {"a": "9"}})),
    )
    .expect(200)
    .json();
    assert_eq!(m["meta"]["a"], "9");
    delete(&format!("{url}/metadata/b"), Some(&c.token)).expect(204);
    nova_fault(
        &delete(&format!("{url}/metadata/b"), Some(&c.token)),
        404,
        "itemNotFound",
    );
    let m = get(&format!("{url}/metadata"), Some(&c.token))
        .expect(200)
        .json();
    assert_eq!(m["metadata"], json!({"a": "9"}));
    let m = request(
        "PUT",
        &format!("{url}/metadata"),
        Some(&c.token),
        Some(&json!({"metadata": {"c": "3"}})),
    )
    .expect(200)
    .json();
    assert_eq!(m["metadata"], json!({"c": "3"}), "replace");

    // Power actions, each ending in its state; a wrong-state action is a 409.
    for (body, status) in [
        (json!({"os-stop": null}), "SHUTOFF"),
        (json!({"os-start": null}), "ACTIVE"),
        (json!({"reboot": {"type": "SOFT"}}), "ACTIVE"),
        (json!({"pause": null}), "PAUSED"),
        (json!({"unpause": null}), "ACTIVE"),
        (json!({"suspend": null}), "SUSPENDED"),
        (json!({"resume": null}), "ACTIVE"),
        (json!({"reboot": {"type": "HARD"}}), "ACTIVE"),
    ] {
        act(&c, &id, body.clone(), 202);
        let v = wait_status(&c.nova, &c.token, &id, status);
        assert_eq!(v["status"], status, "after {body}: {v}");
    }
    let r = action(&c.nova, &c.token, &id, json!({"os-start": null}));
    let msg = nova_fault(&r, 409, "conflictingRequest");
    assert!(msg.contains("vm_state active"), "{msg}");
    let r = action(
        &c.nova,
        &c.token,
        &id,
        json!({"reboot": {"type": "GENTLE"}}),
    );
    nova_fault(&r, 400, "badRequest");
    let r = action(&c.nova, &c.token, &id, json!({"no-such-action": null}));
    nova_fault(&r, 400, "badRequest");

    // Console output, limited to the last lines.
    let out = act(&c, &id, json!({"os-getConsoleOutput": {"length": 2}}), 200).json();
    let text = out["output"].as_str().unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(text.contains("reboot"), "{text}");

    // Instance actions, with the steps the conductor and agent recorded.
    let acts = get_at(60, &format!("{url}/os-instance-actions"), &c.token);
    let names: Vec<&str> = acts["instanceActions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"create") && names.contains(&"pause"),
        "{names:?}"
    );
    let create = acts["instanceActions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["action"] == "create")
        .unwrap();
    let rid = create["request_id"].as_str().unwrap();
    let one = get_at(60, &format!("{url}/os-instance-actions/{rid}"), &c.token);
    let events: Vec<&str> = one["instanceAction"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        events,
        [
            "conductor_schedule_and_build_instances",
            "compute__do_build_and_run_instance"
        ],
        "{one}"
    );

    delete(&url, Some(&c.token)).expect(204);
    wait_gone(&c.nova, &c.token, &id);
    let project = project_id_of(&c.server, &c.token, "admin");
    assert_eq!(
        cores_in_use(&c, &project),
        0,
        "quota usage released on delete"
    );
}

#[test]
fn locks_and_tenant_isolation() {
    let c = cloud(&["--fake-hosts", "1"]);
    let (_, _, alice) = new_member(&c.server, &c.token, "pa", "alice");
    let (_, _, bob) = new_member(&c.server, &c.token, "pb", "bob");
    let id = boot(&c.nova, &alice, "a1", &c.flavor, &c.image, json!({}));
    wait_status(&c.nova, &alice, &id, "ACTIVE");
    // Another project's server does not exist for bob.
    nova_fault(&show(&c.nova, &bob, &id), 404, "itemNotFound");
    nova_fault(
        &action(&c.nova, &bob, &id, json!({"os-stop": null})),
        404,
        "itemNotFound",
    );
    let listed = get(&format!("{}/servers", c.nova), Some(&bob))
        .expect(200)
        .json();
    assert_eq!(listed["servers"], json!([]));
    // all_tenants is for admins.
    let all = get(&format!("{}/servers?all_tenants=1", c.nova), Some(&c.token))
        .expect(200)
        .json();
    assert_eq!(all["servers"].as_array().unwrap().len(), 1, "{all}");
    let mine = get(&format!("{}/servers?all_tenants=1", c.nova), Some(&bob))
        .expect(200)
        .json();
    assert_eq!(mine["servers"], json!([]));
    // An admin lock stops the owner (409), and only an admin can lift it.
    action(&c.nova, &c.token, &id, json!({"lock": null})).expect(202);
    let msg = nova_fault(
        &action(&c.nova, &alice, &id, json!({"os-stop": null})),
        409,
        "conflictingRequest",
    );
    assert!(msg.contains(&id) && msg.contains("locked"), "{msg}");
    nova_fault(
        &action(&c.nova, &alice, &id, json!({"unlock": null})),
        403,
        "forbidden",
    );
    action(&c.nova, &c.token, &id, json!({"unlock": null})).expect(202);
    action(&c.nova, &alice, &id, json!({"os-stop": null})).expect(202);
    wait_status(&c.nova, &alice, &id, "SHUTOFF");
    // Moves are for admins.
    nova_fault(
        &action(&c.nova, &alice, &id, json!({"migrate": null})),
        403,
        "forbidden",
    );
}

#[test]
fn bad_input_gets_novas_faults_and_changes_nothing() {
    let c = cloud(&["--fake-hosts", "1"]);
    let servers = format!("{}/servers", c.nova);
    let base = json!({"server": {"name": "x", "flavorRef": c.flavor, "imageRef": c.image, "networks": "none"}});
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b["server"][k] = v;
        b
    };
    let cases = [
        (
            with("flavorRef", json!("nope")),
            400,
            "Flavor nope could not be found.",
        ),
        (
            with("imageRef", json!("00000000-0000-0000-0000-000000000000")),
            400,
            "could not be found",
        ),
        (
            with("key_name", json!("nokey")),
            400,
            "Invalid key_name provided.",
        ),
        (
            with(
                "networks",
                json!([{"uuid": "6c0d1e58-2f7e-4a55-9d1f-000000000000"}]),
            ),
            400,
            "Network 6c0d1e58-2f7e-4a55-9d1f-000000000000 could not be found.",
        ),
        (
            with("networks", json!([{"uuid": "n1"}])),
            400,
            "network uuid is not in proper format (n1)",
        ),
        (with("name", json!("")), 400, "name"),
        (with("user_data", json!("not base64!")), 400, "base 64"),
        (
            with("availability_zone", json!("nowhere")),
            400,
            "availability zone",
        ),
        (with("min_count", json!(0)), 400, "min_count"),
        (json!({"server": {"name": "x"}}), 400, "flavorRef"),
        (json!({"nothing": 1}), 400, "server"),
    ];
    for (body, status, text) in cases {
        let r = at(60, "POST", &servers, &c.token, Some(&body));
        let msg = nova_fault(&r, status, "badRequest");
        assert!(msg.contains(text), "{body}: {msg}");
    }
    // networks is required from 2.37.
    let mut no_net = base.clone();
    no_net["server"].as_object_mut().unwrap().remove("networks");
    nova_fault(
        &at(37, "POST", &servers, &c.token, Some(&no_net)),
        400,
        "badRequest",
    );
    let r = request_raw(
        "POST",
        &servers,
        &[("X-Auth-Token", &c.token)],
        Some("{not json"),
    )
    .unwrap();
    nova_fault(&r, 400, "badRequest");
    // Over quota: 403 with Nova's message, nothing created.
    let project = project_id_of(&c.server, &c.token, "admin");
    request(
        "PUT",
        &format!("{}/os-quota-sets/{project}", c.nova),
        Some(&c.token),
        Some(&json!({"quota_set": {"cores": 2}})),
    )
    .expect(200);
    let r = at(
        60,
        "POST",
        &servers,
        &c.token,
        Some(&with("max_count", json!(3))),
    );
    assert_eq!(
        r.status,
        202,
        "max_count shrinks to what fits: {}",
        r.describe()
    );
    let r = at(60, "POST", &servers, &c.token, Some(&base));
    let msg = nova_fault(&r, 403, "forbidden");
    assert!(
        msg.starts_with("Quota exceeded for cores: Requested 1, but already used 2 of 2 cores"),
        "{msg}"
    );
    let listed = get(&servers, Some(&c.token)).expect(200).json();
    assert_eq!(
        listed["servers"].as_array().unwrap().len(),
        2,
        "only the two that fit: {listed}"
    );
    assert_eq!(cores_in_use(&c, &project), 2);
    // Metadata beyond metadata_items.
    request(
        "PUT",
        &format!("{}/os-quota-sets/{project}", c.nova),
        Some(&c.token),
        Some(&json!({"quota_set": {"metadata_items": 1, "cores": 20}})),
    )
    .expect(200);
    let r = at(
        60,
        "POST",
        &servers,
        &c.token,
        Some(&with("metadata", json!({"a": "1", "b": "2"}))),
    );
    nova_fault(&r, 403, "forbidden");
    assert_eq!(
        get(&servers, Some(&c.token)).expect(200).json()["servers"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // Keypairs are per user and checked at boot.
    post(
        &format!("{}/os-keypairs", c.nova),
        Some(&c.token),
        &json!({"keypair": {"name": "k1", "public_key": PUBLIC_KEY}}),
    )
    .expect(200);
    let (_, v) = boot_until(&c, "keyed", json!({"key_name": "k1"}), "ACTIVE");
    assert_eq!(v["key_name"], "k1");
}

#[test]
fn no_valid_host_and_anti_affinity() {
    let c = cloud(&[
        "--fake-hosts",
        "2",
        "--fake-host-spec",
        "vcpus=1,ram_mb=1024,disk_gb=20",
    ]);
    let project = project_id_of(&c.server, &c.token, "admin");
    // Too big for any host: ERROR with Nova's fault, quota released.
    let big = create_flavor(&c.nova, &c.token, "huge", 1, 4096, 1);
    let id = boot(&c.nova, &c.token, "huge", &big, &c.image, json!({}));
    let v = wait_status(&c.nova, &c.token, &id, "ERROR");
    let fault = &v["fault"];
    assert!(
        fault["message"]
            .as_str()
            .unwrap()
            .starts_with("No valid host was found"),
        "{v}"
    );
    assert_eq!(fault["code"], 500);
    assert!(
        fault["details"].as_str().unwrap().contains("RamFilter"),
        "admin sees details: {v}"
    );
    assert_eq!(
        cores_in_use(&c, &project),
        0,
        "quota released after no valid host"
    );
    // Anti-affinity over two hosts: two fit on different hosts, the third has nowhere to go.
    let g = post(
        &format!("{}/os-server-groups", c.nova),
        Some(&c.token),
        &json!({"server_group": {"name": "spread", "policies": ["anti-affinity"]}}),
    )
    .expect(200)
    .json();
    let group = g["server_group"]["id"].as_str().unwrap().to_string();
    let tiny = create_flavor(&c.nova, &c.token, "nano", 1, 64, 0);
    let mut hosts = Vec::new();
    for n in 0..2 {
        let body = json!({"server": {"name": format!("g{n}"), "flavorRef": tiny, "imageRef": c.image, "networks": "none"},
                          "os:scheduler_hints": {"group": group}});
        let r = at(
            60,
            "POST",
            &format!("{}/servers", c.nova),
            &c.token,
            Some(&body),
        )
        .expect(202);
        let id = r.json()["server"]["id"].as_str().unwrap().to_string();
        let v = wait_status(&c.nova, &c.token, &id, "ACTIVE");
        hosts.push(v["OS-EXT-SRV-ATTR:host"].as_str().unwrap().to_string());
    }
    assert_ne!(hosts[0], hosts[1], "anti-affinity spreads: {hosts:?}");
    let body = json!({"server": {"name": "g2", "flavorRef": tiny, "imageRef": c.image, "networks": "none"},
                      "os:scheduler_hints": {"group": group}});
    let r = at(
        60,
        "POST",
        &format!("{}/servers", c.nova),
        &c.token,
        Some(&body),
    )
    .expect(202);
    let id = r.json()["server"]["id"].as_str().unwrap().to_string();
    let v = wait_status(&c.nova, &c.token, &id, "ERROR");
    assert!(
        v["fault"]["details"]
            .as_str()
            .unwrap()
            .contains("ServerGroupAntiAffinityFilter"),
        "{v}"
    );
    let g = get(
        &format!("{}/os-server-groups/{group}", c.nova),
        Some(&c.token),
    )
    .expect(200)
    .json();
    assert_eq!(
        g["server_group"]["members"].as_array().unwrap().len(),
        2,
        "the failed boot left the group: {g}"
    );
}

#[test]
fn resize_migrate_live_migrate_shelve_rebuild_snapshot_and_evacuate() {
    let c = cloud(&[
        "--fake-hosts",
        "2",
        "--service-down-time",
        "3",
        "--heartbeat-interval",
        "1",
    ]);
    let project = project_id_of(&c.server, &c.token, "admin");
    let small = create_flavor(&c.nova, &c.token, "m1.small", 2, 1024, 2);
    let (id, v) = boot_until(&c, "mover", json!({}), "ACTIVE");
    let first = v["OS-EXT-SRV-ATTR:host"].as_str().unwrap().to_string();
    let host_of = |v: &Value| v["OS-EXT-SRV-ATTR:host"].as_str().unwrap().to_string();

    // Resize + confirm: new flavor, another host, usage follows the flavor.
    act(&c, &id, json!({"resize": {"flavorRef": small}}), 202);
    let v = wait_status(&c.nova, &c.token, &id, "VERIFY_RESIZE");
    assert_ne!(host_of(&v), first);
    assert_eq!(cores_in_use(&c, &project), 2);
    act(&c, &id, json!({"confirmResize": null}), 204);
    let v = wait_status(&c.nova, &c.token, &id, "ACTIVE");
    assert_eq!(v["flavor"]["original_name"], "m1.small");
    // Resize + revert: back where it was, with the old flavor and usage.
    let here = host_of(&v);
    let big = create_flavor(&c.nova, &c.token, "m1.big", 4, 2048, 4);
    act(&c, &id, json!({"resize": {"flavorRef": big}}), 202);
    wait_status(&c.nova, &c.token, &id, "VERIFY_RESIZE");
    assert_eq!(cores_in_use(&c, &project), 4);
    act(&c, &id, json!({"revertResize": null}), 202);
    let v = wait_status(&c.nova, &c.token, &id, "ACTIVE");
    assert_eq!(
        (host_of(&v), v["flavor"]["original_name"].as_str()),
        (here.clone(), Some("m1.small"))
    );
    assert_eq!(cores_in_use(&c, &project), 2);
    // Cold migrate + confirm, live migrate to a named host.
    act(&c, &id, json!({"migrate": null}), 202);
    let v = wait_status(&c.nova, &c.token, &id, "VERIFY_RESIZE");
    let there = host_of(&v);
    assert_ne!(there, here);
    act(&c, &id, json!({"confirmResize": null}), 204);
    wait_status(&c.nova, &c.token, &id, "ACTIVE");
    act(
        &c,
        &id,
        json!({"os-migrateLive": {"host": here, "block_migration": "auto"}}),
        202,
    );
    let v = wait_server(&c.nova, &c.token, &id, |v| {
        v["status"] == "ACTIVE" && v["OS-EXT-SRV-ATTR:host"] == here.as_str()
    });
    assert_eq!(host_of(&v), here);
    let migs = get_at(60, &format!("{}/os-migrations", c.nova), &c.token);
    let kinds: Vec<&str> = migs["migrations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["migration_type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.len(), 4, "{migs}");
    for k in ["resize", "migration", "live-migration"] {
        assert!(kinds.contains(&k), "{kinds:?}");
    }
    // Claims follow the server: only its current host holds it.
    let hyp = get(&format!("{}/os-hypervisors/detail", c.nova), Some(&c.token))
        .expect(200)
        .json();
    let used: i64 = hyp["hypervisors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["vcpus_used"].as_i64().unwrap())
        .sum();
    assert_eq!(used, 2, "one claim of m1.small after the moves: {hyp}");

    // Shelve (offloaded at once) and unshelve.
    act(&c, &id, json!({"shelve": null}), 202);
    let v = wait_status(&c.nova, &c.token, &id, "SHELVED_OFFLOADED");
    assert!(v["OS-EXT-SRV-ATTR:host"].is_null(), "{v}");
    assert_eq!(
        cores_in_use(&c, &project),
        0,
        "an offloaded server holds no cores"
    );
    act(&c, &id, json!({"unshelve": null}), 202);
    wait_status(&c.nova, &c.token, &id, "ACTIVE");
    assert_eq!(cores_in_use(&c, &project), 2);

    // Rebuild with another image, and a snapshot into Glance.
    let other = upload_image(&c.server, &c.token, "other", b"other image bytes");
    let r = act(
        &c,
        &id,
        json!({"rebuild": {"imageRef": other, "name": "rebuilt"}}),
        202,
    )
    .json();
    assert_eq!(r["server"]["name"], "rebuilt", "{r}");
    let v = wait_status(&c.nova, &c.token, &id, "ACTIVE");
    assert_eq!(v["image"]["id"], other.as_str());
    let r = act(
        &c,
        &id,
        json!({"createImage": {"name": "snap", "metadata": {"k": "v"}}}),
        202,
    )
    .json();
    let snap = r["image_id"]
        .as_str()
        .expect("image_id at 2.45+")
        .to_string();
    let img = c.server.endpoint("image").unwrap().to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let image = loop {
        let i = get(&format!("{img}/v2/images/{snap}"), Some(&c.token))
            .expect(200)
            .json();
        if i["status"] == "active" {
            break i;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "snapshot never became active: {i}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(image["image_type"], "snapshot", "{image}");
    assert_eq!(image["instance_uuid"], id.as_str());
    assert_eq!(image["k"], "v");
    assert_eq!(
        image["checksum"],
        md5_hex(b"other image bytes"),
        "the snapshot holds the server's disk"
    );

    // Evacuate from a host forced down.
    let host = host_of(&wait_status(&c.nova, &c.token, &id, "ACTIVE"));
    let r = act(&c, &id, json!({"evacuate": {}}), 400);
    assert!(r.describe().contains("still in use"), "{}", r.describe());
    let services = get_at(
        60,
        &format!("{}/os-services?binary=nova-compute&host={host}", c.nova),
        &c.token,
    );
    let svc = services["services"][0]["id"].as_str().unwrap().to_string();
    at(
        60,
        "PUT",
        &format!("{}/os-services/{svc}", c.nova),
        &c.token,
        Some(&json!({"forced_down": true})),
    )
    .expect(200);
    act(&c, &id, json!({"evacuate": {}}), 200);
    let v = wait_server(&c.nova, &c.token, &id, |v| {
        v["status"] == "ACTIVE" && v["OS-EXT-SRV-ATTR:host"] != host.as_str()
    });
    assert_ne!(host_of(&v), host);
}

#[test]
fn fault_injection_power_sync_and_build_timeout() {
    let c = cloud(&[
        "--fake-hosts",
        "1",
        "--power-sync-interval",
        "1",
        "--build-timeout",
        "3",
    ]);
    // A spawn failure: ERROR with the driver's message, the claim given back.
    let (_, v) = boot_until(
        &c,
        "broken",
        json!({"metadata": {"fake:fail": "spawn"}}),
        "ERROR",
    );
    assert!(
        v["fault"]["message"]
            .as_str()
            .unwrap()
            .contains("Build of instance"),
        "{v}"
    );
    // A guest that powers itself off is recorded SHUTOFF by the power-state sync.
    let (_, v) = boot_until(
        &c,
        "flaky",
        json!({"metadata": {"fake:power_off_after_ms": "100"}}),
        "SHUTOFF",
    );
    assert_eq!(v["OS-EXT-STS:power_state"], 4, "{v}");
    // A failing power action keeps the server as it was and records the error in its action.
    let (id2, _) = boot_until(
        &c,
        "noreboot",
        json!({"metadata": {"fake:fail": "reboot"}}),
        "ACTIVE",
    );
    act(&c, &id2, json!({"reboot": {"type": "SOFT"}}), 202);
    wait_status(&c.nova, &c.token, &id2, "ACTIVE");
    let acts = get(
        &format!("{}/servers/{id2}/os-instance-actions", c.nova),
        Some(&c.token),
    )
    .expect(200)
    .json();
    let reboot = acts["instanceActions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["action"] == "reboot")
        .unwrap();
    assert_eq!(reboot["message"], "Error", "{acts}");
    // A build that outlives the build timeout ends in ERROR.
    let (_, v) = boot_until(
        &c,
        "slow",
        json!({"metadata": {"fake:spawn_delay_ms": "60000"}}),
        "ERROR",
    );
    assert!(
        v["fault"]["message"]
            .as_str()
            .unwrap()
            .contains("build timeout"),
        "{v}"
    );
    let hyp = get(&format!("{}/os-hypervisors/detail", c.nova), Some(&c.token))
        .expect(200)
        .json();
    assert_eq!(
        hyp["hypervisors"][0]["vcpus_used"], 2,
        "only the two running servers hold claims: {hyp}"
    );
}

#[test]
fn a_flow_interrupted_by_a_crash_resumes_after_restart() {
    let mut c = cloud(&["--fake-hosts", "1", "--fake-driver-latency-ms", "1500"]);
    let id = boot_on(&c, "survivor", json!({}));
    // Kill the server while the boot is in the hypervisor.
    wait_server(&c.nova, &c.token, &id, |v| {
        v["OS-EXT-STS:task_state"] == "spawning"
    });
    c.server.kill();
    c.server.restart();
    c.nova = nova_url(&c.server);
    c.token = c.server.admin_token();
    let v = wait_status(&c.nova, &c.token, &id, "ACTIVE");
    assert_eq!(v["OS-EXT-STS:power_state"], 1);
    // And a stop interrupted the same way.
    act(&c, &id, json!({"os-stop": null}), 202);
    c.server.kill();
    c.server.restart();
    c.nova = nova_url(&c.server);
    c.token = c.server.admin_token();
    wait_status(&c.nova, &c.token, &id, "SHUTOFF");
    // The read models rebuilt from the log equal the live ones.
    c.server.kill();
    let out = c.server.replay_verify();
    assert!(out.success, "{}", out.describe());
}

#[test]
fn image_cache_fills_once_and_aggregate_pre_caching() {
    let mut c = cloud(&["--fake-hosts", "2"]);
    let a = boot_on(&c, "a", json!({"availability_zone": "nova:fake-0"}));
    let b = boot_on(&c, "b", json!({"availability_zone": "nova:fake-0"}));
    wait_status(&c.nova, &c.token, &a, "ACTIVE");
    let v = wait_status(&c.nova, &c.token, &b, "ACTIVE");
    assert_eq!(v["OS-EXT-SRV-ATTR:host"], "fake-0");
    // Pre-cache another image on fake-1 through its aggregate (2.81).
    let other = upload_image(&c.server, &c.token, "other", b"pre-cached");
    let agg = at(
        81,
        "POST",
        &format!("{}/os-aggregates", c.nova),
        &c.token,
        Some(&json!({"aggregate": {"name": "agg1"}})),
    )
    .expect(200)
    .json();
    let agg_id = agg["aggregate"]["id"].as_i64().unwrap();
    at(
        81,
        "POST",
        &format!("{}/os-aggregates/{agg_id}/action", c.nova),
        &c.token,
        Some(&json!({"add_host": {"host": "fake-1"}})),
    )
    .expect(200);
    at(
        81,
        "POST",
        &format!("{}/os-aggregates/{agg_id}/images", c.nova),
        &c.token,
        Some(&json!({"cache": [{"id": other}]})),
    )
    .expect(202);
    std::thread::sleep(std::time::Duration::from_secs(2));
    c.server.kill();
    let events = c.server.log_dump().expect("log dump");
    let of = |t: &str, host: &str| {
        events
            .iter()
            .filter(|e| ev_type(e) == t && e["stream_id"] == format!("compute-host-{host}"))
            .count()
    };
    assert_eq!(
        of("compute.HostImageCached.v1", "fake-0"),
        1,
        "fetched once on fake-0"
    );
    assert_eq!(
        of("compute.HostImageCacheHit.v1", "fake-0"),
        1,
        "the second boot hit the cache"
    );
    assert_eq!(
        of("compute.HostImageCached.v1", "fake-1"),
        1,
        "pre-cached on fake-1"
    );
    c.server.restart();
}

#[test]
fn concurrent_boots_onto_scarce_capacity_never_overcommit() {
    // Two hosts of 1 vCPU at allocation ratio 16: 32 one-vCPU servers fit; 64 boots race for them.
    let c = cloud(&[
        "--fake-hosts",
        "2",
        "--fake-host-spec",
        "vcpus=1,ram_mb=65536,disk_gb=1000",
        "--workers",
        "4",
    ]);
    let project = project_id_of(&c.server, &c.token, "admin");
    request(
        "PUT",
        &format!("{}/os-quota-sets/{project}", c.nova),
        Some(&c.token),
        Some(&json!({"quota_set": {"instances": -1, "cores": -1, "ram": -1}})),
    )
    .expect(200);
    let tiny = create_flavor(&c.nova, &c.token, "nano", 1, 64, 0);
    let ids: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|t| {
                let (nova, token, image, tiny) = (&c.nova, &c.token, &c.image, &tiny);
                s.spawn(move || {
                    (0..8)
                        .map(|i| boot(nova, token, &format!("r{t}-{i}"), tiny, image, json!({})))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert_eq!(ids.len(), 64);
    let mut active = 0;
    let mut no_host = 0;
    for id in &ids {
        let v = wait_server(&c.nova, &c.token, id, |v| {
            v["status"] == "ACTIVE" || v["status"] == "ERROR"
        });
        if v["status"] == "ACTIVE" {
            active += 1;
        } else {
            assert!(
                v["fault"]["message"]
                    .as_str()
                    .unwrap()
                    .starts_with("No valid host was found"),
                "{v}"
            );
            no_host += 1;
        }
    }
    assert_eq!((active, no_host), (32, 32), "exactly the capacity booted");
    let hyp = get(&format!("{}/os-hypervisors/detail", c.nova), Some(&c.token))
        .expect(200)
        .json();
    for h in hyp["hypervisors"].as_array().unwrap() {
        assert_eq!(h["vcpus_used"], 16, "each host full, never over: {h}");
    }
    assert_eq!(
        cores_in_use(&c, &project),
        32,
        "usage follows the servers that exist"
    );
}

#[test]
fn key_pair_and_server_group_quotas_are_reservations() {
    let c = cloud(&["--fake-hosts", "1"]);
    let project = project_id_of(&c.server, &c.token, "admin");
    request(
        "PUT",
        &format!("{}/os-quota-sets/{project}", c.nova),
        Some(&c.token),
        Some(&json!({"quota_set": {"key_pairs": 1, "server_groups": 1}})),
    )
    .expect(200);
    let kp = |name: &str| {
        post(
            &format!("{}/os-keypairs", c.nova),
            Some(&c.token),
            &json!({"keypair": {"name": name, "public_key": PUBLIC_KEY}}),
        )
    };
    kp("k1").expect(200);
    let msg = nova_fault(&kp("k2"), 403, "forbidden");
    assert_eq!(msg, "Quota exceeded, too many key pairs.");
    // A duplicate name is a 409, and does not free the slot.
    nova_fault(&kp("k1"), 409, "conflictingRequest");
    nova_fault(&kp("k2"), 403, "forbidden");
    delete(&format!("{}/os-keypairs/k1", c.nova), Some(&c.token)).expect(202);
    kp("k2").expect(200);
    let group = |name: &str| {
        post(
            &format!("{}/os-server-groups", c.nova),
            Some(&c.token),
            &json!({"server_group": {"name": name, "policies": ["affinity"]}}),
        )
    };
    let g = group("g1").expect(200).json();
    let msg = nova_fault(&group("g2"), 403, "forbidden");
    assert_eq!(msg, "Quota exceeded, too many server groups.");
    let gid = g["server_group"]["id"].as_str().unwrap();
    delete(
        &format!("{}/os-server-groups/{gid}", c.nova),
        Some(&c.token),
    )
    .expect(204);
    group("g2").expect(200);
}
