//! Helpers for the networking acceptance tests: the Neutron URL, its fault body, and checking that refused
//! requests append nothing.

use serde_json::{json, Value};

use super::*;

/// `http://…/v2.0` of the READY line's network endpoint.
pub fn neutron(server: &Server) -> String {
    format!(
        "{}/v2.0",
        server
            .endpoint("network")
            .expect("READY line names the network endpoint")
    )
}

/// Neutron's fault body `{"NeutronError": {"type", "message", "detail"}}`; returns the message.
pub fn fault(r: &Resp, status: u16, kind: &str) -> String {
    assert_eq!(r.status, status, "{}", r.describe());
    let v = r.json();
    assert_eq!(v["NeutronError"]["type"], kind, "{}", r.describe());
    assert!(v["NeutronError"]["detail"].is_string(), "{v}");
    v["NeutronError"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no message in {v}"))
        .to_string()
}

/// A server whose agents heartbeat hourly (and count as down only after two hours), so that no heartbeat
/// lands in the log while a test checks with [`appends_nothing`] that refused requests append nothing.
pub fn start_without_heartbeats() -> Server {
    Server::start_with_args(&[
        "--heartbeat-interval",
        "3600",
        "--service-down-time",
        "7200",
    ])
}

/// How much of quota `resource` `project` uses (`GET /quotas/<project>/details`, as `admin`).
pub fn quota_used(url: &str, admin: &str, project: &str, resource: &str) -> i64 {
    let q = get(&format!("{url}/quotas/{project}/details"), Some(admin))
        .expect(200)
        .json();
    q["quota"][resource]["used"]
        .as_i64()
        .unwrap_or_else(|| panic!("no {resource} usage in {q}"))
}

/// The log's head position.
pub fn head(server: &Server) -> u64 {
    server
        .log_verify()
        .unwrap_or_else(|e| panic!("log verify: {e}"))
        .head_position
}

/// Run requests that must all be refused and check that the log did not move meanwhile.
pub fn appends_nothing(server: &Server, what: &str, f: impl FnOnce()) {
    let before = head(server);
    f();
    assert_eq!(
        head(server),
        before,
        "{what}: a refused request appended events"
    );
}

pub fn put_json(url: &str, token: &str, body: &Value) -> Resp {
    request("PUT", url, Some(token), Some(body))
}

/// A network `name` with one IPv4 subnet on `cidr` (named `subnet_name`, if given); returns (network id,
/// subnet id).
pub fn network_with_subnet(
    url: &str,
    token: &str,
    name: &str,
    cidr: &str,
    subnet_name: Option<&str>,
) -> (String, String) {
    let n = post(
        &format!("{url}/networks"),
        Some(token),
        &json!({"network": {"name": name}}),
    )
    .expect(201)
    .json();
    let net = n["network"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no network id in {n}"))
        .to_string();
    let mut subnet = json!({"network_id": net, "ip_version": 4, "cidr": cidr});
    if let Some(sn) = subnet_name {
        subnet["name"] = json!(sn);
    }
    let s = post(
        &format!("{url}/subnets"),
        Some(token),
        &json!({ "subnet": subnet }),
    )
    .expect(201)
    .json();
    let sub = s["subnet"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no subnet id in {s}"))
        .to_string();
    (net, sub)
}
