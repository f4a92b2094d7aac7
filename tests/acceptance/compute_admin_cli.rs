//! Acceptance: Nova's admin APIs through the real `openstack` CLI (hypervisors, compute services, aggregates,
//! availability zones). One scenario, few calls (each costs seconds); error cases are in compute_admin_http.rs.

use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::Value;

/// The value of `column` in the row whose `key` column is `value`.
fn cell<'a>(list: &'a Value, key: &str, value: &str, column: &str) -> &'a Value {
    &row_with(list, key, value).unwrap_or_else(|| panic!("no row {key}={value}: {list}"))[column]
}

#[test]
fn admin_apis_through_the_openstack_cli() {
    let Some(_cli) = require_cli() else { return };
    let server = Server::start_with_args(&["--fake-hosts", "3"]);
    let os = |args: &[&str]| ok(&server, &args.join(" "), openstack(&server, args));
    let osj = |args: &[&str]| ok(&server, &args.join(" "), openstack_json(&server, args));

    // The fake hosts register in the background.
    let deadline = Instant::now() + Duration::from_secs(30);
    let hypervisors = loop {
        let list = osj(&["hypervisor", "list"]);
        if list.as_array().map_or(0, Vec::len) == 3 || Instant::now() > deadline {
            break list;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    for host in ["fake-0", "fake-1", "fake-2"] {
        assert_eq!(
            cell(&hypervisors, "Hypervisor Hostname", host, "State"),
            "up",
            "{hypervisors}"
        );
    }

    let services = osj(&["compute", "service", "list"]);
    assert_eq!(
        cell(&services, "Host", "fake-0", "Status"),
        "enabled",
        "{services}"
    );
    assert!(
        row_with(&services, "Binary", "nova-scheduler").is_some(),
        "{services}"
    );
    os(&[
        "compute",
        "service",
        "set",
        "--disable",
        "--disable-reason",
        "r",
        "fake-0",
        "nova-compute",
    ]);
    let services = osj(&["compute", "service", "list", "--long"]);
    assert_eq!(
        cell(&services, "Host", "fake-0", "Status"),
        "disabled",
        "{services}"
    );
    assert_eq!(
        cell(&services, "Host", "fake-0", "Disabled Reason"),
        "r",
        "{services}"
    );

    let created = osj(&["aggregate", "create", "--zone", "z1", "a1"]);
    assert_eq!(created["name"], "a1", "{created}");
    assert_eq!(created["availability_zone"], "z1", "{created}");
    os(&["aggregate", "add", "host", "a1", "fake-0"]);
    let shown = osj(&["aggregate", "show", "a1"]);
    assert!(
        shown["hosts"].to_string().contains("fake-0"),
        "host added: {shown}"
    );

    let zones = osj(&["availability", "zone", "list", "--compute"]);
    // fake-0 (now in z1) is disabled, so z1 is listed as not available; nova still has fake-1 and fake-2.
    assert_eq!(
        cell(&zones, "Zone Name", "nova", "Zone Status"),
        "available",
        "{zones}"
    );
    assert_eq!(
        cell(&zones, "Zone Name", "z1", "Zone Status"),
        "not available",
        "{zones}"
    );
}
