//! Small input defects a security probe found, each answered as its service answers it and leaving nothing
//! behind: names that become part of a stream id (keypairs, flavor and region ids, Swift paths), an action
//! body naming two actions, control characters in names (each service's own rule), `.` and `..` in Swift
//! paths.

use crate::common::nova::*;
use crate::common::*;
use serde_json::{json, Value};

/// The events the audit API has for request `rid` (every event carries its request's id).
fn events_of(server: &Server, admin: &str, rid: &str) -> usize {
    let audit = server.endpoint("audit").expect("audit");
    let v = get(&format!("{audit}/events?request_id={rid}"), Some(admin))
        .expect(200)
        .json();
    v["events"].as_array().map_or(0, Vec::len)
}

/// The request was refused with `status` and recorded nothing.
fn refused(server: &Server, admin: &str, r: &Resp, status: u16) {
    assert_eq!(r.status, status, "{}", r.describe());
    let rid = r.request_id().expect("request id");
    assert_eq!(events_of(server, admin, rid), 0, "{}", r.describe());
}

#[test]
fn names_that_become_stream_ids_are_checked_first() {
    let server = Server::start();
    let admin = server.admin_token();
    let nova = nova_url(&server);

    // A 10,000-character keypair name: Nova's 400, not the log's refusal of the stream id.
    let long = "k".repeat(10_000);
    let r = post(
        &format!("{nova}/os-keypairs"),
        Some(&admin),
        &json!({"keypair": {"name": long}}),
    );
    let message = nova_fault(&r, 400, "badRequest");
    assert!(message.contains("is too long"), "{message}");
    refused(&server, &admin, &r, 400);
    // Outside Nova's characters, or blank at an end.
    for bad in ["a/b", "tab\there", " lead", "é"] {
        let r = post(
            &format!("{nova}/os-keypairs"),
            Some(&admin),
            &json!({"keypair": {"name": bad}}),
        );
        nova_fault(&r, 400, "badRequest");
    }
    // The longest name Nova accepts, mostly spaces (its stream id is a digest): created, listed, deleted.
    let spaced = format!("a{}b", " ".repeat(253));
    let kp = post(
        &format!("{nova}/os-keypairs"),
        Some(&admin),
        &json!({"keypair": {"name": spaced}}),
    )
    .expect(200)
    .json();
    assert_eq!(kp["keypair"]["name"], spaced.as_str());
    let listed = get(&format!("{nova}/os-keypairs"), Some(&admin))
        .expect(200)
        .json();
    assert!(
        listed["keypairs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["keypair"]["name"] == spaced.as_str()),
        "{listed}"
    );
    let encoded: String = spaced.replace(' ', "%20");
    delete(&format!("{nova}/os-keypairs/{encoded}"), Some(&admin)).expect(202);
    get(&format!("{nova}/os-keypairs/{encoded}"), Some(&admin)).expect(404);

    // A flavor id the log cannot hold in a stream id, a region id outside Keystone's `id_string`.
    let r = post(
        &format!("{nova}/flavors"),
        Some(&admin),
        &json!({"flavor": {"name": "spaced", "id": "a b", "ram": 64, "vcpus": 1, "disk": 0}}),
    );
    refused(&server, &admin, &r, 400);
    let ks = server.identity_url();
    for id in ["a b", "x/y", &"r".repeat(300)] {
        let r = post(
            &format!("{ks}/regions"),
            Some(&admin),
            &json!({"region": {"id": id}}),
        );
        refused(&server, &admin, &r, 400);
        assert_keystone_error(&r, 400, "Bad Request");
    }
}

#[test]
fn an_action_body_names_exactly_one_action() {
    let server = Server::start();
    let admin = server.admin_token();
    let nova = nova_url(&server);
    let flavor = create_flavor(&nova, &admin, "probe.tiny", 1, 64, 0);
    let image = upload_image(&server, &admin, "probe", &random_bytes(1024));
    let id = boot(&nova, &admin, "probe", &flavor, &image, json!({}));
    wait_status(&nova, &admin, &id, "ACTIVE");
    let r = action(
        &nova,
        &admin,
        &id,
        json!({"os-stop": null, "os-start": null}),
    );
    assert_eq!(nova_fault(&r, 400, "badRequest"), "Malformed request body");
    refused(&server, &admin, &r, 400);
    let r = action(&nova, &admin, &id, json!({}));
    nova_fault(&r, 400, "badRequest");
    let r = action(&nova, &admin, &id, json!({"os-explode": null}));
    assert_eq!(
        nova_fault(&r, 400, "badRequest"),
        "There is no such action: os-explode"
    );
    assert_eq!(
        show(&nova, &admin, &id).json()["server"]["status"],
        "ACTIVE"
    );

    // Cinder answers the same way for volumes.
    let cinder = cinder_url(&server);
    let v = post(
        &format!("{cinder}/volumes"),
        Some(&admin),
        &json!({"volume": {"size": 1}}),
    )
    .expect(202)
    .json();
    let vid = v["volume"]["id"].as_str().unwrap().to_string();
    wait_volume(&cinder, &admin, &vid, "available");
    let r = post(
        &format!("{cinder}/volumes/{vid}/action"),
        Some(&admin),
        &json!({"os-extend": {"new_size": 2}, "os-set_bootable": {"bootable": true}}),
    );
    refused(&server, &admin, &r, 400);
    assert_eq!(r.json()["badRequest"]["message"], "Malformed request body");
    assert_eq!(
        get(&format!("{cinder}/volumes/{vid}"), Some(&admin)).json()["volume"]["size"],
        1
    );
}

/// Nova refuses control characters in names (its `name` format); Cinder and Neutron only bound the length,
/// as upstream does, and keep the name exactly as given.
#[test]
fn control_characters_in_names_follow_each_services_rule() {
    let server = Server::start();
    let admin = server.admin_token();
    let nova = nova_url(&server);
    let weird = "a\u{0}b\u{1b}[31mc\nd";
    let flavor = create_flavor(&nova, &admin, "cc.tiny", 1, 64, 0);
    let image = upload_image(&server, &admin, "cc", &random_bytes(1024));
    let r = at(
        60,
        "POST",
        &format!("{nova}/servers"),
        &admin,
        Some(
            &json!({"server": {"name": weird, "flavorRef": flavor, "imageRef": image, "networks": "none"}}),
        ),
    );
    nova_fault(&r, 400, "badRequest");
    refused(&server, &admin, &r, 400);

    let cinder = cinder_url(&server);
    let v = post(
        &format!("{cinder}/volumes"),
        Some(&admin),
        &json!({"volume": {"size": 1, "name": weird}}),
    )
    .expect(202)
    .json();
    let vid = v["volume"]["id"].as_str().unwrap();
    let shown: Value = get(&format!("{cinder}/volumes/{vid}"), Some(&admin))
        .expect(200)
        .json();
    assert_eq!(shown["volume"]["name"], weird);

    let neutron = format!("{}/v2.0", server.endpoint("network").unwrap());
    let n = post(
        &format!("{neutron}/networks"),
        Some(&admin),
        &json!({"network": {"name": weird}}),
    )
    .expect(201)
    .json();
    let nid = n["network"]["id"].as_str().unwrap();
    let shown = get(&format!("{neutron}/networks/{nid}"), Some(&admin))
        .expect(200)
        .json();
    assert_eq!(shown["network"]["name"], weird);
    // Neutron's rule is the length: 256 characters are refused.
    let r = post(
        &format!("{neutron}/networks"),
        Some(&admin),
        &json!({"network": {"name": "n".repeat(256)}}),
    );
    refused(&server, &admin, &r, 400);
}

/// A request with its path sent exactly as given (HTTP clients, following the URL standard, resolve `..`
/// and `%2e%2e` before sending): (status, body).
fn raw_request(base: &str, method: &str, path: &str, token: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let host = base
        .trim_start_matches("http://")
        .split('/')
        .next()
        .expect("host:port");
    let mut conn = std::net::TcpStream::connect(host).expect("connect");
    conn.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .expect("timeout");
    write!(
        conn,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nX-Auth-Token: {token}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut answer = String::new();
    conn.read_to_string(&mut answer).expect("read");
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, answer)
}

#[test]
fn swift_refuses_dot_segments_and_overlong_accounts() {
    let server = Server::start();
    let admin = server.admin_token();
    let account = server.swift_account_url(&nova::project_id_of(&server, &admin, "admin"));
    let base = account.split("/v1/").next().unwrap().to_string();
    let account_path = account.trim_start_matches(&base).to_string();
    for path in [
        "..", "%2e%2e", ".", "%2E", "c/..", "c/a/../b", "c/./x", "c/x/.",
    ] {
        let (status, answer) = raw_request(&base, "PUT", &format!("{account_path}/{path}"), &admin);
        assert_eq!(status, 400, "{path}: {answer}");
        assert!(answer.contains("forbidden substring"), "{path}: {answer}");
    }
    // Nothing was made: the account lists no container.
    let list = request_raw(
        "GET",
        &format!("{account}?format=json"),
        &[("X-Auth-Token", &admin)],
        None,
    )
    .expect("transport");
    assert!(matches!(list.status, 200 | 204), "{}", list.describe());
    assert!(!list.body.contains("\"."), "{}", list.body);
    // Names that only hold dots among other characters are fine.
    let (status, answer) = raw_request(&base, "PUT", &format!("{account_path}/..c"), &admin);
    assert_eq!(status, 201, "{answer}");
    let long = format!("/v1/AUTH_{}/c", "a".repeat(300));
    let (status, answer) = raw_request(&base, "PUT", &long, &admin);
    assert_eq!(status, 400, "{answer}");
    assert!(answer.contains("Account name length"), "{answer}");
}
