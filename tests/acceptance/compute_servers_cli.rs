//! Acceptance: servers through the real `openstack` CLI, as a user drives them. One scenario with the
//! commands the compute issue lists; waiting between steps polls over HTTP (each CLI call costs seconds).
//! Error cases and exact shapes are in compute_servers_http.rs.

use crate::common::nova::*;
use crate::common::*;

const PUBLIC_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f strata-test";

#[test]
fn servers_through_the_openstack_cli() {
    let Some(_cli) = require_cli() else { return };
    let server = Server::start_with_args(&[
        "--fake-hosts",
        "2",
        "--service-down-time",
        "3",
        "--heartbeat-interval",
        "1",
    ]);
    let os = |args: &[&str]| ok(&server, &args.join(" "), openstack(&server, args));
    let osj = |args: &[&str]| ok(&server, &args.join(" "), openstack_json(&server, args));
    let nova = nova_url(&server);
    let token = server.admin_token();
    let wait = |id: &str, status: &str| wait_status(&nova, &token, id, status);

    // What a first boot needs: an image uploaded through Glance, flavors, a keypair.
    cli_cirros_and_tiny(&server, 256 * 1024);
    os(&[
        "flavor", "create", "--vcpus", "2", "--ram", "1024", "--disk", "2", "m1.small",
    ]);
    let key = server.dir().join("k.pub");
    std::fs::write(&key, PUBLIC_KEY).unwrap();
    os(&[
        "keypair",
        "create",
        "--public-key",
        key.to_str().unwrap(),
        "k1",
    ]);

    let created = osj(&[
        "server",
        "create",
        "--flavor",
        "m1.tiny",
        "--image",
        "cirros",
        "--key-name",
        "k1",
        "--nic",
        "none",
        "--property",
        "role=web",
        "--wait",
        "vm1",
    ]);
    assert_eq!(created["status"], "ACTIVE", "{created}");
    assert_eq!(created["key_name"], "k1", "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    let long = osj(&["server", "list", "--long"]);
    assert_eq!(column(&long, "Name"), ["vm1"], "{long}");
    assert_eq!(long[0]["Status"], "ACTIVE", "{long}");
    assert!(
        long[0]["Host"].as_str().unwrap_or("").starts_with("fake-"),
        "{long}"
    );
    let filtered = osj(&["server", "list", "--status", "SHUTOFF"]);
    assert!(column(&filtered, "Name").is_empty(), "{filtered}");
    os(&[
        "server",
        "set",
        "--name",
        "web1",
        "--property",
        "tier=front",
        id.as_str(),
    ]);
    let shown = osj(&["server", "show", id.as_str()]);
    assert_eq!(shown["name"], "web1", "{shown}");
    assert!(shown["properties"].to_string().contains("tier"), "{shown}");

    // Power actions.
    for (cmd, status) in [
        ("stop", "SHUTOFF"),
        ("start", "ACTIVE"),
        ("reboot", "ACTIVE"),
        ("pause", "PAUSED"),
        ("unpause", "ACTIVE"),
        ("suspend", "SUSPENDED"),
        ("resume", "ACTIVE"),
    ] {
        os(&["server", cmd, id.as_str()]);
        wait(&id, status);
    }
    os(&["server", "lock", id.as_str()]);
    assert_eq!(osj(&["server", "show", id.as_str()])["locked"], true);
    os(&["server", "unlock", id.as_str()]);

    // Resize with confirm, then a revert.
    os(&[
        "server",
        "resize",
        "--flavor",
        "m1.small",
        "--wait",
        id.as_str(),
    ]);
    wait(&id, "VERIFY_RESIZE");
    os(&["server", "resize", "confirm", id.as_str()]);
    let v = wait(&id, "ACTIVE");
    assert_eq!(v["flavor"]["original_name"], "m1.small");
    // m1.tiny has a smaller disk: the CLI reports Nova's refusal and the server stays as it was.
    assert!(openstack(
        &server,
        &["server", "resize", "--flavor", "m1.tiny", id.as_str()]
    )
    .is_err());
    // Moves.
    let before = v["OS-EXT-SRV-ATTR:host"].as_str().unwrap().to_string();
    os(&["server", "migrate", "--wait", id.as_str()]);
    wait(&id, "VERIFY_RESIZE");
    os(&["server", "resize", "revert", id.as_str()]);
    let v = wait(&id, "ACTIVE");
    assert_eq!(
        v["OS-EXT-SRV-ATTR:host"],
        before.as_str(),
        "reverted to the source"
    );
    os(&["server", "migrate", "--live-migration", id.as_str()]);
    wait_server(&nova, &token, &id, |v| {
        v["status"] == "ACTIVE" && v["OS-EXT-SRV-ATTR:host"] != before.as_str()
    });

    // Rebuild, snapshot, shelve/unshelve.
    os(&[
        "server",
        "rebuild",
        "--image",
        "cirros",
        "--wait",
        id.as_str(),
    ]);
    let snap = osj(&[
        "server",
        "image",
        "create",
        "--name",
        "snap1",
        "--wait",
        id.as_str(),
    ]);
    assert_eq!(snap["status"], "active", "{snap}");
    os(&["server", "shelve", id.as_str()]);
    wait(&id, "SHELVED_OFFLOADED");
    os(&["server", "unshelve", id.as_str()]);
    wait(&id, "ACTIVE");

    // History and console.
    let events = osj(&["server", "event", "list", id.as_str()]);
    let actions: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["Action"].as_str())
        .collect();
    for a in [
        "create",
        "stop",
        "resize",
        "live-migration",
        "rebuild",
        "createImage",
        "shelve",
        "unshelve",
    ] {
        assert!(actions.contains(&a), "{a} missing from {actions:?}");
    }
    let create_req = events
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["Action"] == "create")
        .and_then(|e| e["Request ID"].as_str())
        .unwrap()
        .to_string();
    let ev = osj(&["server", "event", "show", id.as_str(), create_req.as_str()]);
    assert!(
        ev.to_string()
            .contains("compute__do_build_and_run_instance"),
        "{ev}"
    );
    let console = os(&["console", "log", "show", "--lines", "3", id.as_str()]);
    assert!(console.contains("login"), "{console}");

    // Evacuate off a host forced down.
    let host = wait(&id, "ACTIVE")["OS-EXT-SRV-ATTR:host"]
        .as_str()
        .unwrap()
        .to_string();
    os(&[
        "compute",
        "service",
        "set",
        "--down",
        host.as_str(),
        "nova-compute",
    ]);
    os(&["server", "evacuate", id.as_str()]);
    let v = wait_server(&nova, &token, &id, |v| {
        v["status"] == "ACTIVE" && v["OS-EXT-SRV-ATTR:host"] != host.as_str()
    });
    assert_ne!(v["OS-EXT-SRV-ATTR:host"], host.as_str());
    os(&[
        "compute",
        "service",
        "set",
        "--up",
        host.as_str(),
        "nova-compute",
    ]);

    // A server group hint, usage, zones, quota.
    let group = osj(&[
        "server",
        "group",
        "create",
        "--policy",
        "anti-affinity",
        "spread",
    ]);
    let gid = group["id"].as_str().unwrap().to_string();
    let hinted = osj(&[
        "server",
        "create",
        "--flavor",
        "m1.tiny",
        "--image",
        "cirros",
        "--nic",
        "none",
        "--hint",
        &format!("group={gid}"),
        "--wait",
        "vm2",
    ]);
    assert_eq!(hinted["status"], "ACTIVE", "{hinted}");
    let g = osj(&["server", "group", "show", gid.as_str()]);
    assert!(
        g.to_string().contains(hinted["id"].as_str().unwrap()),
        "{g}"
    );
    let usage = os(&["usage", "list"]);
    assert!(
        usage.contains("admin") || usage.contains("Servers"),
        "{usage}"
    );
    os(&["aggregate", "create", "--zone", "nova", "agg1"]);
    os(&["aggregate", "add", "host", "agg1", "fake-0"]);
    os(&["aggregate", "cache", "image", "agg1", "cirros"]);
    let zones = os(&["availability", "zone", "list", "--compute"]);
    assert!(zones.contains("nova"), "{zones}");
    let quota = osj(&["quota", "show", "--compute"]);
    assert!(quota.to_string().contains("instances"), "{quota}");

    os(&["server", "delete", "--wait", id.as_str()]);
    assert!(
        openstack(&server, &["server", "show", id.as_str()]).is_err(),
        "deleted"
    );
}
