//! Acceptance: quotas, server groups and limits through the real `openstack` CLI. One scenario, few calls
//! (each costs seconds); error cases are in compute_usage_http.rs.

use crate::common::*;
use serde_json::Value;

/// The `Limit` of `resource` in `openstack quota show -f json` (rows of Resource / Limit).
fn quota_limit(rows: &Value, resource: &str) -> Value {
    row_with(rows, "Resource", resource)
        .map(|r| r["Limit"].clone())
        .unwrap_or_else(|| panic!("no {resource} row in {rows}"))
}

#[test]
fn quotas_server_groups_and_limits_through_the_openstack_cli() {
    let Some(_cli) = require_cli() else { return };
    let server = Server::start();
    let os = |args: &[&str]| ok(&server, &args.join(" "), openstack(&server, args));
    let osj = |args: &[&str]| ok(&server, &args.join(" "), openstack_json(&server, args));

    let quotas = osj(&["quota", "show", "--compute"]);
    assert_eq!(quota_limit(&quotas, "cores"), 20, "{quotas}");
    assert_eq!(quota_limit(&quotas, "instances"), 10, "{quotas}");
    os(&["quota", "set", "--cores", "30", "admin"]);
    let quotas = osj(&["quota", "show", "--compute", "admin"]);
    assert_eq!(quota_limit(&quotas, "cores"), 30, "{quotas}");

    let group = osj(&[
        "server",
        "group",
        "create",
        "--policy",
        "anti-affinity",
        "g1",
    ]);
    assert_eq!(group["name"], "g1", "{group}");
    assert!(
        group.to_string().contains("anti-affinity"),
        "the policy is shown: {group}"
    );
    let listed = osj(&["server", "group", "list"]);
    let row = row_with(&listed, "Name", "g1").unwrap_or_else(|| panic!("g1 listed: {listed}"));
    assert_eq!(row["ID"], group["id"], "{listed}");

    let usage = osj(&["quota", "show", "--compute", "--usage", "admin"]);
    let groups = row_with(&usage, "Resource", "server-groups")
        .unwrap_or_else(|| panic!("server-groups row: {usage}"));
    assert_eq!(groups["In Use"], 1, "{usage}");

    let limits = osj(&["limits", "show", "--absolute"]);
    // The CLI names the limits after openstacksdk's attributes (and their aliases).
    let value = |names: &[&str]| {
        names
            .iter()
            .find_map(|n| row_with(&limits, "Name", n))
            .map(|r| r["Value"].clone())
            .unwrap_or_else(|| panic!("none of {names:?} in {limits}"))
    };
    assert_eq!(value(&["max_total_cores", "total_cores"]), 30, "{limits}");
    assert_eq!(
        value(&["server_groups_used", "total_server_groups_used"]),
        1,
        "{limits}"
    );

    os(&["server", "group", "delete", "g1"]);
    let listed = osj(&["server", "group", "list"]);
    assert!(row_with(&listed, "Name", "g1").is_none(), "{listed}");
}
