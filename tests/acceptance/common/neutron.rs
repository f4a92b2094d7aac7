//! Helpers for the networking acceptance tests: the Neutron URL, its fault body, and checking that refused
//! requests append nothing.

use serde_json::Value;

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
