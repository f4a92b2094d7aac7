//! Nova's admin APIs over HTTP against the real binary with three fake compute hosts: os-hypervisors (usage,
//! ids and fields per microversion, patterns, paging, statistics), os-services (disable/enable/force down in
//! the legacy and the 2.53 forms), os-availability-zone and os-aggregates (names, hosts, metadata, zones), with
//! Nova's fault bodies, admin-only policy, and nothing changed by a rejected request.

use std::time::{Duration, Instant};

use crate::common::nova::*;
use crate::common::*;
use serde_json::{json, Value};

const SPEC: &str = "vcpus=8,ram_mb=8192,disk_gb=100";

fn start() -> Server {
    Server::start_with_args(&["--fake-hosts", "3", "--fake-host-spec", SPEC])
}

/// A request at microversion 2.`minor` (Nova's [`at`] with the arguments in this module's order).
fn call(method: &str, url: &str, token: &str, minor: u32, body: Option<&Value>) -> Resp {
    at(minor, method, url, token, body)
}

fn ok(r: Resp) -> Value {
    r.expect(200).json()
}

/// The fake hosts register in the background: wait until all three are hypervisors.
fn wait_for_hosts(url: &str, token: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = get_at(1, &format!("{url}/os-hypervisors"), token);
        let n = v["hypervisors"].as_array().map_or(0, Vec::len);
        if n == 3 {
            return;
        }
        assert!(Instant::now() < deadline, "3 hypervisors expected: {v}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A token of a user with the member role on a new project.
fn member_token(server: &Server) -> String {
    new_member(server, &server.admin_token(), "tenant-a", "ua").2
}

fn names(list: &Value, key: &str) -> Vec<String> {
    list.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r[key].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn is_uuid(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| s.len() == 36 && s.chars().filter(|c| *c == '-').count() == 4)
}

#[test]
fn hypervisors_show_hosts_and_usage_per_microversion() {
    let server = start();
    let url = nova_url(&server);
    let admin = server.admin_token();
    wait_for_hosts(&url, &admin);
    let max = max_minor(&nova_url(&server));

    // 2.1: integer ids in name order, summary fields only.
    let list = get_at(1, &format!("{url}/os-hypervisors"), &admin);
    let hyps = list["hypervisors"].as_array().unwrap();
    assert_eq!(
        names(&list["hypervisors"], "hypervisor_hostname"),
        ["fake-0", "fake-1", "fake-2"]
    );
    for (i, h) in hyps.iter().enumerate() {
        assert_eq!(h["id"], i + 1, "{h}");
        assert_eq!(h["state"], "up", "{h}");
        assert_eq!(h["status"], "enabled", "{h}");
        assert!(h.get("vcpus").is_none(), "summary has no usage: {h}");
    }

    // Detail: the inventory of --fake-host-spec and nothing used yet.
    let detail = get_at(1, &format!("{url}/os-hypervisors/detail"), &admin);
    let h = &detail["hypervisors"][0];
    assert_eq!(h["vcpus"], 8, "{h}");
    assert_eq!(h["memory_mb"], 8192, "{h}");
    assert_eq!(h["local_gb"], 100, "{h}");
    assert_eq!(h["vcpus_used"], 0, "{h}");
    assert_eq!(h["memory_mb_used"], 0, "{h}");
    assert_eq!(h["free_ram_mb"], 8192, "{h}");
    assert_eq!(h["free_disk_gb"], 100, "{h}");
    assert_eq!(h["running_vms"], 0, "{h}");
    assert_eq!(h["hypervisor_type"], "fake", "{h}");
    assert!(h["host_ip"].is_string(), "{h}");
    assert_eq!(h["service"]["host"], "fake-0", "{h}");
    assert!(
        h["service"]["id"].is_u64(),
        "integer service id before 2.53: {h}"
    );
    assert!(h["service"]["disabled_reason"].is_null(), "{h}");
    assert!(
        h["cpu_info"].is_string(),
        "cpu_info is a string before 2.28: {h}"
    );
    let h28 = get_at(28, &format!("{url}/os-hypervisors/1"), &admin);
    assert!(h28["hypervisor"]["cpu_info"].is_object(), "{h28}");

    // Show by integer id before 2.53, by uuid from 2.53.
    let one = get_at(1, &format!("{url}/os-hypervisors/2"), &admin);
    assert_eq!(one["hypervisor"]["hypervisor_hostname"], "fake-1");
    assert_faults(
        |m, p, b| call(m, &format!("{url}{p}"), &admin, 1, b),
        &[
            ("GET", "/os-hypervisors/9", None, 404, "itemNotFound"),
            ("GET", "/os-hypervisors/abc", None, 404, "itemNotFound"),
        ],
    );
    let d53 = get_at(53, &format!("{url}/os-hypervisors/detail"), &admin);
    let h53 = &d53["hypervisors"][1];
    assert!(is_uuid(&h53["id"]), "uuid id from 2.53: {h53}");
    assert!(
        is_uuid(&h53["service"]["id"]),
        "uuid service id from 2.53: {h53}"
    );
    let uuid = h53["id"].as_str().unwrap();
    let shown = get_at(53, &format!("{url}/os-hypervisors/{uuid}"), &admin);
    assert_eq!(shown["hypervisor"]["hypervisor_hostname"], "fake-1");
    assert_faults(
        |m, p, b| call(m, &format!("{url}{p}"), &admin, 53, b),
        &[
            ("GET", "/os-hypervisors/2", None, 400, "badRequest"),
            (
                "GET",
                &format!("/os-hypervisors/{}", uuid::Uuid::new_v4()),
                None,
                404,
                "itemNotFound",
            ),
        ],
    );
    // Uptime is not reported by the fake driver.
    nova_fault(
        &call(
            "GET",
            &format!("{url}/os-hypervisors/1/uptime"),
            &admin,
            1,
            None,
        ),
        501,
        "notImplemented",
    );

    // 2.53 query: hostname pattern, with_servers; paging with a pattern and unknown parameters are refused.
    let m = get_at(
        53,
        &format!("{url}/os-hypervisors?hypervisor_hostname_pattern=fake-2"),
        &admin,
    );
    assert_eq!(names(&m["hypervisors"], "hypervisor_hostname"), ["fake-2"]);
    assert_faults(
        |m, p, b| call(m, &format!("{url}{p}"), &admin, 53, b),
        &[
            (
                "GET",
                "/os-hypervisors?hypervisor_hostname_pattern=nope",
                None,
                404,
                "itemNotFound",
            ),
            (
                "GET",
                "/os-hypervisors?hypervisor_hostname_pattern=fake&limit=1",
                None,
                400,
                "badRequest",
            ),
            ("GET", "/os-hypervisors?bogus=1", None, 400, "badRequest"),
            (
                "GET",
                "/os-hypervisors?with_servers=maybe",
                None,
                400,
                "badRequest",
            ),
        ],
    );
    let ws = get_at(
        53,
        &format!("{url}/os-hypervisors?with_servers=true"),
        &admin,
    );
    assert!(
        ws["hypervisors"][0].get("servers").is_none(),
        "no servers key before 2.75: {ws}"
    );
    if max >= 75 {
        let ws = get_at(
            75,
            &format!("{url}/os-hypervisors?with_servers=true"),
            &admin,
        );
        assert_eq!(
            ws["hypervisors"][0]["servers"],
            json!([]),
            "always a list from 2.75: {ws}"
        );
    }

    // Before 2.53: the search and servers routes; from 2.53 they are gone.
    let s = get_at(1, &format!("{url}/os-hypervisors/fake/search"), &admin);
    assert_eq!(s["hypervisors"].as_array().map(Vec::len), Some(3), "{s}");
    let s = get_at(1, &format!("{url}/os-hypervisors/fake-1/servers"), &admin);
    assert_eq!(names(&s["hypervisors"], "hypervisor_hostname"), ["fake-1"]);
    nova_fault(
        &call(
            "GET",
            &format!("{url}/os-hypervisors/nope/search"),
            &admin,
            1,
            None,
        ),
        404,
        "itemNotFound",
    );
    nova_fault(
        &call(
            "GET",
            &format!("{url}/os-hypervisors/fake/search"),
            &admin,
            53,
            None,
        ),
        404,
        "itemNotFound",
    );

    // Paging from 2.33.
    let p = get_at(33, &format!("{url}/os-hypervisors?limit=2"), &admin);
    assert_eq!(p["hypervisors"].as_array().map(Vec::len), Some(2), "{p}");
    let next = p["hypervisors_links"][0]["href"]
        .as_str()
        .unwrap_or_default();
    assert!(next.contains("marker=2"), "next link after id 2: {p}");
    let p = get_at(33, &format!("{url}/os-hypervisors/detail?marker=2"), &admin);
    assert_eq!(names(&p["hypervisors"], "hypervisor_hostname"), ["fake-2"]);
    assert_faults(
        |m, p, b| call(m, &format!("{url}{p}"), &admin, 33, b),
        &[
            ("GET", "/os-hypervisors?marker=99", None, 400, "badRequest"),
            ("GET", "/os-hypervisors?limit=-1", None, 400, "badRequest"),
        ],
    );

    // Statistics over enabled hosts.
    let st = get_at(1, &format!("{url}/os-hypervisors/statistics"), &admin);
    let st = &st["hypervisor_statistics"];
    assert_eq!(st["count"], 3, "{st}");
    assert_eq!(st["vcpus"], 24, "{st}");
    assert_eq!(st["memory_mb"], 3 * 8192, "{st}");
    assert_eq!(st["free_disk_gb"], 300, "{st}");
    assert_eq!(st["running_vms"], 0, "{st}");

    // Admin only, with Nova's policy fault.
    let member = member_token(&server);
    let r = call("GET", &format!("{url}/os-hypervisors"), &member, 1, None);
    nova_fault(&r, 403, "forbidden");
    assert!(
        r.json()["forbidden"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("os_compute_api:os-hypervisors:list")),
        "{}",
        r.body
    );
    assert_faults(
        |m, p, b| call(m, &format!("{url}{p}"), &member, 1, b),
        &[("GET", "/os-hypervisors/statistics", None, 403, "forbidden")],
    );
}

fn service<'a>(list: &'a Value, host: &str, binary: &str) -> &'a Value {
    list["services"]
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|s| s["host"] == host && s["binary"] == binary)
        })
        .unwrap_or_else(|| panic!("no {binary} on {host}: {list}"))
}

#[test]
fn services_disable_enable_and_force_down() {
    let server = start();
    let url = nova_url(&server);
    let admin = server.admin_token();
    wait_for_hosts(&url, &admin);
    let max = max_minor(&nova_url(&server));
    let services_url = format!("{url}/os-services");

    // 2.1: integer ids, no forced_down; compute rows plus the scheduler and conductor.
    let list = get_at(1, &services_url, &admin);
    assert_eq!(list["services"].as_array().map(Vec::len), Some(5), "{list}");
    let c0 = service(&list, "fake-0", "nova-compute");
    assert!(c0["id"].is_u64(), "{c0}");
    assert_eq!(c0["zone"], "nova", "{c0}");
    assert_eq!(c0["status"], "enabled", "{c0}");
    assert_eq!(c0["state"], "up", "{c0}");
    assert!(c0["disabled_reason"].is_null(), "{c0}");
    assert!(c0["updated_at"].is_string(), "{c0}");
    assert!(
        c0.get("forced_down").is_none(),
        "forced_down from 2.11: {c0}"
    );
    for binary in ["nova-scheduler", "nova-conductor"] {
        let s = service(&list, "strata", binary);
        assert_eq!(s["zone"], "internal", "{s}");
        assert_eq!(s["state"], "up", "{s}");
    }
    let filtered = get_at(1, &format!("{services_url}?host=fake-1"), &admin);
    assert_eq!(names(&filtered["services"], "host"), ["fake-1"]);
    let filtered = get_at(1, &format!("{services_url}?binary=nova-scheduler"), &admin);
    assert_eq!(names(&filtered["services"], "binary"), ["nova-scheduler"]);

    // Legacy actions (before 2.53): disable with a reason, enable, force down.
    let body =
        json!({"host": "fake-0", "binary": "nova-compute", "disabled_reason": "maintenance"});
    let r = ok(call(
        "PUT",
        &format!("{services_url}/disable-log-reason"),
        &admin,
        11,
        Some(&body),
    ));
    assert_eq!(r["service"]["status"], "disabled", "{r}");
    assert_eq!(r["service"]["disabled_reason"], "maintenance", "{r}");
    let list = get_at(11, &services_url, &admin);
    let c0 = service(&list, "fake-0", "nova-compute");
    assert_eq!(c0["status"], "disabled", "{c0}");
    assert_eq!(c0["disabled_reason"], "maintenance", "{c0}");
    assert_eq!(c0["forced_down"], false, "{c0}");
    // The hypervisor shows the service's status and reason.
    let h = get_at(1, &format!("{url}/os-hypervisors/1"), &admin);
    assert_eq!(h["hypervisor"]["status"], "disabled", "{h}");
    assert_eq!(
        h["hypervisor"]["service"]["disabled_reason"], "maintenance",
        "{h}"
    );
    // Disabled hosts leave the statistics.
    let st = get_at(1, &format!("{url}/os-hypervisors/statistics"), &admin);
    assert_eq!(st["hypervisor_statistics"]["count"], 2, "{st}");

    let body = json!({"host": "fake-0", "binary": "nova-compute"});
    let r = ok(call(
        "PUT",
        &format!("{services_url}/enable"),
        &admin,
        1,
        Some(&body),
    ));
    assert_eq!(r["service"]["status"], "enabled", "{r}");
    let body = json!({"host": "fake-0", "binary": "nova-compute", "forced_down": true});
    let r = ok(call(
        "PUT",
        &format!("{services_url}/force-down"),
        &admin,
        11,
        Some(&body),
    ));
    assert_eq!(r["service"]["forced_down"], true, "{r}");
    let list = get_at(11, &services_url, &admin);
    let c0 = service(&list, "fake-0", "nova-compute");
    assert_eq!(c0["state"], "down", "forced down: {c0}");
    assert_eq!(c0["status"], "enabled", "{c0}");
    assert!(c0["disabled_reason"].is_null(), "{c0}");
    let h = get_at(1, &format!("{url}/os-hypervisors/1"), &admin);
    assert_eq!(h["hypervisor"]["state"], "down", "{h}");
    let body = json!({"host": "fake-0", "binary": "nova-compute", "forced_down": false});
    ok(call(
        "PUT",
        &format!("{services_url}/force-down"),
        &admin,
        11,
        Some(&body),
    ));

    // Legacy bad requests: nothing changes.
    for (action, minor, body, status, key) in [
        (
            "disable",
            1,
            json!({"binary": "nova-compute"}),
            400,
            "badRequest",
        ),
        (
            "disable",
            1,
            json!({"host": "fake-1", "binary": "nova-compute", "x": 1}),
            400,
            "badRequest",
        ),
        (
            "disable-log-reason",
            1,
            json!({"host": "fake-1", "binary": "nova-compute"}),
            400,
            "badRequest",
        ),
        (
            "disable",
            1,
            json!({"host": "strata", "binary": "nova-scheduler"}),
            400,
            "badRequest",
        ),
        (
            "disable",
            1,
            json!({"host": "nope", "binary": "nova-compute"}),
            404,
            "itemNotFound",
        ),
        (
            "force-down",
            11,
            json!({"host": "fake-1", "binary": "nova-compute"}),
            400,
            "badRequest",
        ),
        (
            "force-down",
            1,
            json!({"host": "fake-1", "binary": "nova-compute"}),
            404,
            "itemNotFound",
        ),
        (
            "force-down",
            10,
            json!({"host": "fake-1", "binary": "nova-compute", "forced_down": true}),
            400,
            "badRequest",
        ),
        (
            "reboot",
            11,
            json!({"host": "fake-1", "binary": "nova-compute"}),
            404,
            "itemNotFound",
        ),
    ] {
        let r = call(
            "PUT",
            &format!("{services_url}/{action}"),
            &admin,
            minor,
            Some(&body),
        );
        nova_fault(&r, status, key);
    }
    let r = request_raw(
        "PUT",
        &format!("{services_url}/disable"),
        &[("X-Auth-Token", &admin)],
        Some("{not json"),
    )
    .unwrap();
    nova_fault(&r, 400, "badRequest");

    // 2.53: uuid ids and PUT /os-services/{uuid}.
    let list = get_at(53, &services_url, &admin);
    let c1 = service(&list, "fake-1", "nova-compute").clone();
    assert!(is_uuid(&c1["id"]), "{c1}");
    let id = c1["id"].as_str().unwrap();
    let r = ok(call(
        "PUT",
        &format!("{services_url}/{id}"),
        &admin,
        53,
        Some(&json!({"status": "disabled", "disabled_reason": "r"})),
    ));
    assert_eq!(r["service"]["id"], id, "{r}");
    assert_eq!(r["service"]["status"], "disabled", "{r}");
    assert_eq!(r["service"]["disabled_reason"], "r", "{r}");
    let r = ok(call(
        "PUT",
        &format!("{services_url}/{id}"),
        &admin,
        53,
        Some(&json!({"forced_down": true})),
    ));
    assert_eq!(r["service"]["state"], "down", "{r}");
    assert_eq!(r["service"]["forced_down"], true, "{r}");
    assert_eq!(r["service"]["status"], "disabled", "{r}");
    let r = ok(call(
        "PUT",
        &format!("{services_url}/{id}"),
        &admin,
        53,
        Some(&json!({"status": "enabled", "forced_down": false})),
    ));
    assert_eq!(r["service"]["state"], "up", "{r}");
    assert_eq!(r["service"]["status"], "enabled", "{r}");
    assert!(r["service"]["disabled_reason"].is_null(), "{r}");

    // 2.53 bad requests, and a non-admin: nothing changes.
    let scheduler = service(&list, "strata", "nova-scheduler")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let missing = uuid::Uuid::new_v4().to_string();
    for (target, body, status, key) in [
        (id, json!({}), 400, "badRequest"),
        (id, json!({"status": "bogus"}), 400, "badRequest"),
        (
            id,
            json!({"status": "enabled", "disabled_reason": "x"}),
            400,
            "badRequest",
        ),
        (
            id,
            json!({"status": "disabled", "extra": 1}),
            400,
            "badRequest",
        ),
        (id, json!({"forced_down": "perhaps"}), 400, "badRequest"),
        ("disable", json!({"status": "disabled"}), 400, "badRequest"),
        (
            scheduler.as_str(),
            json!({"status": "disabled"}),
            400,
            "badRequest",
        ),
        (
            missing.as_str(),
            json!({"status": "disabled"}),
            404,
            "itemNotFound",
        ),
    ] {
        let r = call(
            "PUT",
            &format!("{services_url}/{target}"),
            &admin,
            53,
            Some(&body),
        );
        nova_fault(&r, status, key);
    }
    let member = member_token(&server);
    assert_faults(
        |m, p, b| call(m, &format!("{services_url}{p}"), &member, 53, b),
        &[
            ("GET", "", None, 403, "forbidden"),
            (
                "PUT",
                &format!("/{id}"),
                Some(json!({"status": "disabled"})),
                403,
                "forbidden",
            ),
        ],
    );
    let list = get_at(53, &services_url, &admin);
    for host in ["fake-0", "fake-1", "fake-2"] {
        let s = service(&list, host, "nova-compute");
        assert_eq!(
            s["status"], "enabled",
            "rejected requests changed nothing: {s}"
        );
        assert_eq!(s["state"], "up", "{s}");
        assert_eq!(s["forced_down"], false, "{s}");
    }

    // Deleting: the scheduler is this server (409); a compute agent would register again (501).
    assert_faults(
        |m, p, b| call(m, &format!("{services_url}{p}"), &admin, 53, b),
        &[
            (
                "DELETE",
                &format!("/{scheduler}"),
                None,
                409,
                "conflictingRequest",
            ),
            ("DELETE", &format!("/{id}"), None, 501, "notImplemented"),
            ("DELETE", &format!("/{missing}"), None, 404, "itemNotFound"),
            ("DELETE", "/x", None, 400, "badRequest"),
        ],
    );

    if max >= 75 {
        nova_fault(
            &call("GET", &format!("{services_url}?bogus=1"), &admin, 75, None),
            400,
            "badRequest",
        );
    }
    get_at(53, &format!("{services_url}?bogus=1"), &admin);
}

fn zone<'a>(detail: &'a Value, name: &str) -> Option<&'a Value> {
    detail["availabilityZoneInfo"]
        .as_array()
        .and_then(|a| a.iter().find(|z| z["zoneName"] == name))
}

fn zone_hosts(detail: &Value, name: &str) -> Vec<String> {
    zone(detail, name)
        .and_then(|z| z["hosts"].as_object())
        .map(|h| h.keys().cloned().collect())
        .unwrap_or_default()
}

#[test]
fn availability_zones_and_aggregates() {
    let server = start();
    let url = nova_url(&server);
    let admin = server.admin_token();
    wait_for_hosts(&url, &admin);
    let max = max_minor(&nova_url(&server));
    let member = member_token(&server);
    let az_url = format!("{url}/os-availability-zone");
    let aggs = format!("{url}/os-aggregates");

    // Zones: everyone sees "nova" (not "internal"); admins see hosts and services.
    for token in [&admin, &member] {
        let z = get_at(1, &az_url, token);
        assert_eq!(
            z["availabilityZoneInfo"],
            json!([{"zoneName": "nova", "zoneState": {"available": true}, "hosts": null}]),
            "{z}"
        );
    }
    let d = get_at(1, &format!("{az_url}/detail"), &admin);
    assert_eq!(
        zone_hosts(&d, "nova"),
        ["fake-0", "fake-1", "fake-2"],
        "{d}"
    );
    let svc = &zone(&d, "nova").unwrap()["hosts"]["fake-0"]["nova-compute"];
    assert_eq!(svc["available"], true, "{svc}");
    assert_eq!(svc["active"], true, "{svc}");
    assert_eq!(zone_hosts(&d, "internal"), ["strata"], "{d}");
    assert!(zone(&d, "internal").unwrap()["hosts"]["strata"]["nova-conductor"].is_object());
    nova_fault(
        &call("GET", &format!("{az_url}/detail"), &member, 1, None),
        403,
        "forbidden",
    );

    // Create: the answer has no hosts or metadata; uuid from 2.41.
    let a1 = ok(call(
        "POST",
        &aggs,
        &admin,
        41,
        Some(&json!({"aggregate": {"name": "a1", "availability_zone": "z1"}})),
    ));
    let a1 = &a1["aggregate"];
    assert_eq!(a1["name"], "a1", "{a1}");
    assert_eq!(a1["availability_zone"], "z1", "{a1}");
    assert!(a1["id"].is_i64(), "{a1}");
    assert!(is_uuid(&a1["uuid"]), "{a1}");
    assert_eq!(a1["deleted"], false, "{a1}");
    assert!(
        a1.get("hosts").is_none() && a1.get("metadata").is_none(),
        "{a1}"
    );
    let id1 = a1["id"].as_i64().unwrap();
    let a1_url = format!("{aggs}/{id1}");
    let shown = get_at(1, &a1_url, &admin);
    assert!(
        shown["aggregate"].get("uuid").is_none(),
        "no uuid before 2.41: {shown}"
    );
    assert_eq!(
        shown["aggregate"]["metadata"],
        json!({"availability_zone": "z1"}),
        "{shown}"
    );

    // Names are unique; bad bodies and non-admins are refused; none of it creates anything.
    nova_fault(
        &call(
            "POST",
            &aggs,
            &admin,
            41,
            Some(&json!({"aggregate": {"name": "a1"}})),
        ),
        409,
        "conflictingRequest",
    );
    for bad in [
        json!({}),
        json!({"aggregate": {}}),
        json!({"aggregate": {"name": ""}}),
        json!({"aggregate": {"name": " padded "}}),
        json!({"aggregate": {"name": "x", "color": "red"}}),
        json!({"aggregate": {"name": "x", "availability_zone": "a:b"}}),
        json!({"aggregate": {"name": 7}}),
        json!({"aggregate": {"name": "x"}, "more": 1}),
    ] {
        nova_fault(
            &call("POST", &aggs, &admin, 41, Some(&bad)),
            400,
            "badRequest",
        );
    }
    assert_faults(
        |m, p, b| call(m, &format!("{aggs}{p}"), &member, 41, b),
        &[
            (
                "POST",
                "",
                Some(json!({"aggregate": {"name": "m"}})),
                403,
                "forbidden",
            ),
            ("GET", "", None, 403, "forbidden"),
        ],
    );
    let list = get_at(41, &aggs, &admin);
    assert_eq!(names(&list["aggregates"], "name"), ["a1"], "{list}");
    assert_faults(
        |m, p, b| call(m, &format!("{aggs}{p}"), &admin, 1, b),
        &[
            ("GET", "/abc", None, 400, "badRequest"),
            ("GET", "/999", None, 404, "itemNotFound"),
        ],
    );

    // add_host moves the host into the aggregate's zone.
    let add = |host: &str| json!({"add_host": {"host": host}});
    let r = ok(call(
        "POST",
        &format!("{a1_url}/action"),
        &admin,
        41,
        Some(&add("fake-0")),
    ));
    assert_eq!(r["aggregate"]["hosts"], json!(["fake-0"]), "{r}");
    let d = get_at(1, &format!("{az_url}/detail"), &admin);
    assert_eq!(zone_hosts(&d, "z1"), ["fake-0"], "{d}");
    assert_eq!(zone_hosts(&d, "nova"), ["fake-1", "fake-2"], "{d}");
    let s = get_at(1, &format!("{url}/os-services?host=fake-0"), &admin);
    assert_eq!(s["services"][0]["zone"], "z1", "{s}");
    assert_faults(
        |m, p, b| call(m, &format!("{a1_url}{p}"), &admin, 41, b),
        &[
            ("POST", "/action", Some(add("nope")), 404, "itemNotFound"),
            (
                "POST",
                "/action",
                Some(add("fake-0")),
                409,
                "conflictingRequest",
            ),
        ],
    );

    // A host cannot be in two zones.
    let a2 = ok(call(
        "POST",
        &aggs,
        &admin,
        41,
        Some(&json!({"aggregate": {"name": "a2", "availability_zone": "z2"}})),
    ));
    let id2 = a2["aggregate"]["id"].as_i64().unwrap();
    let a2_url = format!("{aggs}/{id2}");
    nova_fault(
        &call(
            "POST",
            &format!("{a2_url}/action"),
            &admin,
            41,
            Some(&add("fake-0")),
        ),
        409,
        "conflictingRequest",
    );
    let shown = get_at(41, &a2_url, &admin);
    assert_eq!(
        shown["aggregate"]["hosts"],
        json!([]),
        "refused add changed nothing: {shown}"
    );
    // Nor through an aggregate without a zone that later gets one.
    let a3 = ok(call(
        "POST",
        &aggs,
        &admin,
        41,
        Some(&json!({"aggregate": {"name": "a3"}})),
    ));
    let id3 = a3["aggregate"]["id"].as_i64().unwrap();
    assert!(a3["aggregate"]["availability_zone"].is_null(), "{a3}");
    let a3_url = format!("{aggs}/{id3}");
    ok(call(
        "POST",
        &format!("{a3_url}/action"),
        &admin,
        41,
        Some(&add("fake-0")),
    ));
    nova_fault(
        &call(
            "PUT",
            &a3_url,
            &admin,
            41,
            Some(&json!({"aggregate": {"availability_zone": "z9"}})),
        ),
        400,
        "badRequest",
    );
    ok(call(
        "POST",
        &format!("{a3_url}/action"),
        &admin,
        41,
        Some(&json!({"remove_host": {"host": "fake-0"}})),
    ));

    // set_metadata: plain keys, and availability_zone changes the zone; null removes a key.
    let md = |m: Value| json!({"set_metadata": {"metadata": m}});
    let r = ok(call(
        "POST",
        &format!("{a1_url}/action"),
        &admin,
        41,
        Some(&md(json!({"ssd": "true", "availability_zone": "z3"}))),
    ));
    assert_eq!(r["aggregate"]["availability_zone"], "z3", "{r}");
    assert_eq!(
        r["aggregate"]["metadata"],
        json!({"ssd": "true", "availability_zone": "z3"}),
        "{r}"
    );
    let d = get_at(1, &format!("{az_url}/detail"), &admin);
    assert_eq!(zone_hosts(&d, "z3"), ["fake-0"], "{d}");
    assert!(zone(&d, "z1").is_none(), "z1 has no hosts left: {d}");
    let r = ok(call(
        "POST",
        &format!("{a1_url}/action"),
        &admin,
        41,
        Some(&md(json!({"ssd": null}))),
    ));
    assert_eq!(
        r["aggregate"]["metadata"],
        json!({"availability_zone": "z3"}),
        "{r}"
    );
    for bad in [
        md(json!({"availability_zone": null})),
        md(json!({"availability_zone": ""})),
        md(json!({"k": 1})),
        md(json!({"bad/key": "v"})),
        md(json!("not an object")),
        json!({"set_metadata": {}}),
        json!({"reboot": {}}),
        json!({"add_host": {"host": "fake-1", "extra": true}}),
    ] {
        nova_fault(
            &call("POST", &format!("{a1_url}/action"), &admin, 41, Some(&bad)),
            400,
            "badRequest",
        );
    }
    nova_fault(
        &call(
            "POST",
            &format!("{a1_url}/action"),
            &member,
            41,
            Some(&md(json!({"k": "v"}))),
        ),
        403,
        "forbidden",
    );
    let shown = get_at(41, &a1_url, &admin);
    assert_eq!(
        shown["aggregate"]["metadata"],
        json!({"availability_zone": "z3"}),
        "rejected requests changed nothing: {shown}"
    );

    // A zone whose only service is disabled is listed as unavailable.
    let services = get_at(53, &format!("{url}/os-services?host=fake-0"), &admin);
    let sid = services["services"][0]["id"].as_str().unwrap().to_string();
    ok(call(
        "PUT",
        &format!("{url}/os-services/{sid}"),
        &admin,
        53,
        Some(&json!({"status": "disabled"})),
    ));
    let z = get_at(1, &az_url, &member);
    assert!(
        z["availabilityZoneInfo"]
            .as_array()
            .unwrap()
            .contains(&json!({"zoneName": "z3", "zoneState": {"available": false}, "hosts": null})),
        "{z}"
    );
    ok(call(
        "PUT",
        &format!("{url}/os-services/{sid}"),
        &admin,
        53,
        Some(&json!({"status": "enabled"})),
    ));

    // Rename: the old name is free again, a taken name is refused.
    let r = ok(call(
        "PUT",
        &a1_url,
        &admin,
        41,
        Some(&json!({"aggregate": {"name": "a1-renamed"}})),
    ));
    assert_eq!(r["aggregate"]["name"], "a1-renamed", "{r}");
    assert_eq!(r["aggregate"]["hosts"], json!(["fake-0"]), "{r}");
    assert_faults(
        |m, p, b| call(m, &format!("{a1_url}{p}"), &admin, 41, b),
        &[
            (
                "PUT",
                "",
                Some(json!({"aggregate": {"name": "a2"}})),
                409,
                "conflictingRequest",
            ),
            ("PUT", "", Some(json!({"aggregate": {}})), 400, "badRequest"),
        ],
    );
    let again = ok(call(
        "POST",
        &aggs,
        &admin,
        41,
        Some(&json!({"aggregate": {"name": "a1"}})),
    ));
    assert_ne!(again["aggregate"]["id"], id1, "{again}");

    // Remove the host; delete refuses an aggregate with hosts and frees the name.
    nova_fault(
        &call("DELETE", &a1_url, &admin, 41, None),
        400,
        "badRequest",
    );
    let rm = json!({"remove_host": {"host": "fake-0"}});
    let r = ok(call(
        "POST",
        &format!("{a1_url}/action"),
        &admin,
        41,
        Some(&rm),
    ));
    assert_eq!(r["aggregate"]["hosts"], json!([]), "{r}");
    nova_fault(
        &call("POST", &format!("{a1_url}/action"), &admin, 41, Some(&rm)),
        404,
        "itemNotFound",
    );
    let d = get_at(1, &format!("{az_url}/detail"), &admin);
    assert_eq!(
        zone_hosts(&d, "nova"),
        ["fake-0", "fake-1", "fake-2"],
        "{d}"
    );
    call("DELETE", &a2_url, &admin, 41, None).expect(200);
    nova_fault(&call("GET", &a2_url, &admin, 41, None), 404, "itemNotFound");
    ok(call(
        "POST",
        &aggs,
        &admin,
        41,
        Some(&json!({"aggregate": {"name": "a2"}})),
    ));

    // Image caching is 2.81.
    let cache = json!({"cache": [{"id": uuid::Uuid::new_v4().to_string()}]});
    assert_faults(
        |m, p, b| call(m, &format!("{a1_url}{p}"), &admin, 60.min(max), b),
        &[("POST", "/images", Some(cache.clone()), 404, "itemNotFound")],
    );
    if max >= 81 {
        assert_faults(
            |m, p, b| call(m, &format!("{a1_url}{p}"), &admin, 81, b),
            &[
                ("POST", "/images", Some(cache.clone()), 400, "badRequest"),
                (
                    "POST",
                    "/images",
                    Some(json!({"cache": []})),
                    400,
                    "badRequest",
                ),
            ],
        );
        let img = server
            .endpoint("image")
            .expect("image endpoint")
            .to_string();
        let image = post(
            &format!("{img}/v2/images"),
            Some(&admin),
            &json!({"name": "cirros", "disk_format": "qcow2", "container_format": "bare"}),
        )
        .expect(201)
        .json();
        let image_id = image["id"].as_str().unwrap();
        let cache = json!({"cache": [{"id": image_id}]});
        call(
            "POST",
            &format!("{a1_url}/images"),
            &admin,
            81,
            Some(&cache),
        )
        .expect(202);
        let dup = json!({"cache": [{"id": image_id}, {"id": image_id}]});
        nova_fault(
            &call("POST", &format!("{a1_url}/images"), &admin, 81, Some(&dup)),
            400,
            "badRequest",
        );
        assert_faults(
            |m, p, b| call(m, &format!("{a1_url}{p}"), &member, 81, b),
            &[("POST", "/images", Some(cache.clone()), 403, "forbidden")],
        );
    }
}

/// Poll `GET /servers/{id}` (as `token`) until `done` holds, 60 s at most; returns the server.
fn wait_server(url: &str, token: &str, id: &str, done: impl Fn(&Resp) -> bool) -> Resp {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = call("GET", &format!("{url}/servers/{id}"), token, 60, None);
        if done(&r) {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "server {id} never got there: {}",
            r.describe()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_server_shows_in_hypervisor_usage_and_pins_its_host() {
    let server = start();
    let url = nova_url(&server);
    let admin = server.admin_token();
    wait_for_hosts(&url, &admin);
    post(
        &format!("{url}/flavors"),
        Some(&admin),
        &json!({"flavor": {"name": "m1.usage", "ram": 1024, "vcpus": 2, "disk": 10, "id": "u1"}}),
    )
    .expect(200);
    let img = server
        .endpoint("image")
        .expect("image endpoint")
        .to_string();
    let image = post(
        &format!("{img}/v2/images"),
        Some(&admin),
        &json!({"name": "tiny", "disk_format": "raw", "container_format": "bare"}),
    )
    .expect(201)
    .json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let up = request_bytes(
        "PUT",
        &format!("{img}/v2/images/{image}/file"),
        &[
            ("X-Auth-Token", &admin),
            ("Content-Type", "application/octet-stream"),
        ],
        Some(&random_bytes(4096)),
    )
    .unwrap();
    assert_eq!(up.status, 204, "{}", up.describe());
    let boot = json!({"server": {"name": "vm1", "flavorRef": "u1", "imageRef": image, "networks": "none"}});
    let created = call("POST", &format!("{url}/servers"), &admin, 60, Some(&boot))
        .expect(202)
        .json();
    let id = created["server"]["id"].as_str().unwrap().to_string();
    let shown = wait_server(&url, &admin, &id, |r| {
        r.json()["server"]["status"] == "ACTIVE"
    })
    .json();
    let host = shown["server"]["OS-EXT-SRV-ATTR:host"]
        .as_str()
        .unwrap()
        .to_string();

    // The host's usage counts the server's flavor; the others stay empty.
    let detail = get_at(53, &format!("{url}/os-hypervisors/detail"), &admin);
    for h in detail["hypervisors"].as_array().unwrap() {
        let mine = h["hypervisor_hostname"] == host.as_str();
        assert_eq!(h["vcpus_used"], if mine { 2 } else { 0 }, "{h}");
        assert_eq!(h["memory_mb_used"], if mine { 1024 } else { 0 }, "{h}");
        assert_eq!(h["local_gb_used"], if mine { 10 } else { 0 }, "{h}");
        assert_eq!(
            h["free_ram_mb"],
            if mine { 8192 - 1024 } else { 8192 },
            "{h}"
        );
        assert_eq!(h["running_vms"], u64::from(mine), "{h}");
    }
    let st = get_at(1, &format!("{url}/os-hypervisors/statistics"), &admin);
    assert_eq!(st["hypervisor_statistics"]["vcpus_used"], 2, "{st}");
    assert_eq!(st["hypervisor_statistics"]["running_vms"], 1, "{st}");
    let ws = get_at(
        53,
        &format!("{url}/os-hypervisors?with_servers=true&hypervisor_hostname_pattern={host}"),
        &admin,
    );
    assert_eq!(
        ws["hypervisors"][0]["servers"],
        json!([{"name": "vm1", "uuid": id}]),
        "{ws}"
    );
    let legacy = get_at(1, &format!("{url}/os-hypervisors/{host}/servers"), &admin);
    assert_eq!(
        legacy["hypervisors"][0]["servers"][0]["uuid"],
        id.as_str(),
        "{legacy}"
    );

    // A host with a server: its service cannot be deleted, its aggregate's zone cannot change.
    let services = get_at(53, &format!("{url}/os-services?host={host}"), &admin);
    let sid = services["services"][0]["id"].as_str().unwrap().to_string();
    nova_fault(
        &call(
            "DELETE",
            &format!("{url}/os-services/{sid}"),
            &admin,
            53,
            None,
        ),
        409,
        "conflictingRequest",
    );
    let agg = ok(call(
        "POST",
        &format!("{url}/os-aggregates"),
        &admin,
        41,
        Some(&json!({"aggregate": {"name": "busy", "availability_zone": "z1"}})),
    ));
    let agg_url = format!("{url}/os-aggregates/{}", agg["aggregate"]["id"]);
    ok(call(
        "POST",
        &format!("{agg_url}/action"),
        &admin,
        41,
        Some(&json!({"add_host": {"host": host}})),
    ));
    assert_faults(
        |m, p, b| call(m, &format!("{agg_url}{p}"), &admin, 41, b),
        &[
            (
                "PUT",
                "",
                Some(json!({"aggregate": {"availability_zone": "z2"}})),
                400,
                "badRequest",
            ),
            (
                "POST",
                "/action",
                Some(json!({"set_metadata": {"metadata": {"availability_zone": "z2"}}})),
                400,
                "badRequest",
            ),
        ],
    );
    let shown = get_at(41, &agg_url, &admin);
    assert_eq!(shown["aggregate"]["availability_zone"], "z1", "{shown}");

    // Deleting the server gives the resources back.
    call("DELETE", &format!("{url}/servers/{id}"), &admin, 60, None).expect(204);
    wait_server(&url, &admin, &id, |r| r.status == 404);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let st = get_at(1, &format!("{url}/os-hypervisors/statistics"), &admin);
        if st["hypervisor_statistics"]["vcpus_used"] == 0
            && st["hypervisor_statistics"]["running_vms"] == 0
        {
            break;
        }
        assert!(Instant::now() < deadline, "usage not released: {st}");
        std::thread::sleep(Duration::from_millis(200));
    }
}
