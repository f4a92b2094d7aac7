//! Acceptance: Cinder through the real `openstack` CLI (openstacksdk underneath, on the catalog's
//! project-less `/v3` URL). One scenario, few calls (each costs seconds); error cases are in
//! volume_http.rs.

use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::Value;

/// Poll `volume show` until the volume's status is `status`.
fn wait_status(server: &Server, name: &str, status: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = ok(
            server,
            "volume show",
            openstack_json(server, &["volume", "show", name]),
        );
        if v["status"] == status {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "volume {name} never {status}: {v}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn volumes_snapshots_types_and_services_through_the_openstack_cli() {
    let Some(_cli) = require_cli() else { return };
    let server = Server::start();
    let os = |args: &[&str]| ok(&server, &args.join(" "), openstack(&server, args));
    let osj = |args: &[&str]| ok(&server, &args.join(" "), openstack_json(&server, args));

    let created = osj(&["volume", "create", "--size", "1", "v1"]);
    assert_eq!(created["name"], "v1", "{created}");
    assert_eq!(created["size"], 1, "{created}");
    wait_status(&server, "v1", "available");

    let listed = osj(&["volume", "list", "--long"]);
    assert_eq!(column(&listed, "Name"), ["v1"], "{listed}");
    assert_eq!(column(&listed, "Status"), ["available"], "{listed}");
    assert_eq!(column(&listed, "Type"), ["__DEFAULT__"], "{listed}");

    os(&["volume", "set", "--property", "k=v", "--size", "2", "v1"]);
    let shown = wait_status(&server, "v1", "available");
    assert_eq!(shown["size"], 2, "{shown}");
    assert!(
        shown["properties"].to_string().contains("\"k\""),
        "metadata shown as properties: {shown}"
    );

    let snap = osj(&["volume", "snapshot", "create", "--volume", "v1", "s1"]);
    assert_eq!(snap["name"], "s1", "{snap}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = osj(&["volume", "snapshot", "show", "s1"]);
        if s["status"] == "available" {
            break;
        }
        assert!(Instant::now() < deadline, "snapshot never available: {s}");
        std::thread::sleep(Duration::from_millis(200));
    }

    let t = osj(&["volume", "type", "create", "--property", "k=v", "t1"]);
    assert_eq!(t["name"], "t1", "{t}");
    let types = osj(&["volume", "type", "list", "--long"]);
    let names = column(&types, "Name");
    assert!(
        names.contains(&"t1") && names.contains(&"__DEFAULT__"),
        "{types}"
    );

    let quota = osj(&["quota", "show", "--volume", "--usage"]);
    let text = quota.to_string();
    assert!(
        text.contains("\"volumes\"") && text.contains("\"gigabytes\""),
        "{quota}"
    );

    let services = osj(&["volume", "service", "list"]);
    assert!(
        column(&services, "Binary").contains(&"cinder-volume"),
        "{services}"
    );
    assert!(
        column(&services, "Host").contains(&"strata@lvm-1"),
        "{services}"
    );
    let backups = osj(&["volume", "backup", "list"]);
    assert_eq!(backups, Value::Array(vec![]), "{backups}");

    // A volume with snapshots is kept; without them it goes.
    assert!(
        openstack(&server, &["volume", "delete", "v1"]).is_err(),
        "a volume with snapshots is not deleted"
    );
    os(&["volume", "snapshot", "delete", "s1"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while openstack(&server, &["volume", "snapshot", "show", "s1"]).is_ok() {
        assert!(Instant::now() < deadline, "snapshot never deleted");
        std::thread::sleep(Duration::from_millis(200));
    }
    os(&["volume", "delete", "v1"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while openstack(&server, &["volume", "show", "v1"]).is_ok() {
        assert!(Instant::now() < deadline, "volume never deleted");
        std::thread::sleep(Duration::from_millis(200));
    }
    os(&["volume", "type", "delete", "t1"]);
}
