//! Nova's first endpoints over HTTP: version discovery, microversion negotiation, Nova fault bodies,
//! flavor policy and access lists, keypair validation and ownership.

use crate::common::nova::*;
use crate::common::*;
use serde_json::{json, Value};

const PUBLIC_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f strata-test";

#[test]
fn versions_and_microversions() {
    let server = Server::start();
    let url = nova_url(&server);
    let root = url.trim_end_matches("/v2.1");
    let v = get(&format!("{root}/"), None).expect(200).json();
    assert_eq!(v["versions"][0]["id"], "v2.1", "{v}");
    assert_eq!(v["versions"][0]["min_version"], "2.1");
    let token = server.admin_token();
    let r = request_raw(
        "GET",
        &format!("{url}/flavors"),
        &[
            ("X-Auth-Token", &token),
            ("OpenStack-API-Version", "compute 2.55"),
        ],
        None,
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(r.header("openstack-api-version"), Some("compute 2.55"));
    let r = request_raw(
        "GET",
        &format!("{url}/flavors"),
        &[
            ("X-Auth-Token", &token),
            ("OpenStack-API-Version", "compute 2.999"),
        ],
        None,
    )
    .unwrap();
    nova_fault(&r, 406, "notAcceptable");
    let r = request_raw(
        "GET",
        &format!("{url}/flavors"),
        &[
            ("X-Auth-Token", &token),
            ("OpenStack-API-Version", "compute two"),
        ],
        None,
    )
    .unwrap();
    nova_fault(&r, 400, "badRequest");
    let r = request_raw(
        "GET",
        &format!("{url}/flavors"),
        &[
            ("X-Auth-Token", &token),
            ("X-OpenStack-Nova-API-Version", "latest"),
        ],
        None,
    )
    .unwrap();
    assert_eq!(r.status, 200);
    assert!(r
        .header("x-openstack-nova-api-version")
        .is_some_and(|v| v.starts_with("2.")));
    assert_eq!(get(&format!("{url}/flavors"), None).status, 401);
}

#[test]
fn flavor_rules_policy_and_access() {
    let server = Server::start();
    let url = nova_url(&server);
    let admin = server.admin_token();
    let body = json!({"flavor": {"name": "f1", "ram": 256, "vcpus": 1, "disk": 0, "id": "f1-id"}});
    let f = post(&format!("{url}/flavors"), Some(&admin), &body)
        .expect(200)
        .json();
    assert_eq!(f["flavor"]["id"], "f1-id");
    assert_eq!(f["flavor"]["swap"], "", "swap 0 is \"\" before 2.75: {f}");
    nova_fault(
        &post(&format!("{url}/flavors"), Some(&admin), &body),
        409,
        "conflictingRequest",
    );
    let same_name = json!({"flavor": {"name": "f1", "ram": 256, "vcpus": 1, "disk": 0}});
    nova_fault(
        &post(&format!("{url}/flavors"), Some(&admin), &same_name),
        409,
        "conflictingRequest",
    );
    for bad in [
        json!({"flavor": {"name": "x", "ram": 0, "vcpus": 1, "disk": 0}}),
        json!({"flavor": {"name": "x", "ram": 1, "vcpus": "many", "disk": 0}}),
        json!({"flavor": {"ram": 1, "vcpus": 1, "disk": 0}}),
        json!({"nope": {}}),
    ] {
        nova_fault(
            &post(&format!("{url}/flavors"), Some(&admin), &bad),
            400,
            "badRequest",
        );
    }
    nova_fault(
        &get(&format!("{url}/flavors/nope"), Some(&admin)),
        404,
        "itemNotFound",
    );

    // A member may list and show public flavors but not manage them, nor see private ones it has no access to.
    let (project, _, ua) = new_member(&server, &admin, "tenant-a", "ua");
    assert_eq!(get(&format!("{url}/flavors/f1-id"), Some(&ua)).status, 200);
    nova_fault(
        &post(
            &format!("{url}/flavors"),
            Some(&ua),
            &json!({"flavor": {"name": "m", "ram": 1, "vcpus": 1, "disk": 0}}),
        ),
        403,
        "forbidden",
    );
    let private = json!({"flavor": {"name": "p1", "ram": 256, "vcpus": 1, "disk": 0, "id": "p1-id", "os-flavor-access:is_public": false}});
    post(&format!("{url}/flavors"), Some(&admin), &private).expect(200);
    nova_fault(
        &get(&format!("{url}/flavors/p1-id"), Some(&ua)),
        404,
        "itemNotFound",
    );
    let add = json!({"addTenantAccess": {"tenant": project}});
    let access = post(&format!("{url}/flavors/p1-id/action"), Some(&admin), &add)
        .expect(200)
        .json();
    assert_eq!(
        access["flavor_access"][0]["tenant_id"],
        Value::from(project.clone())
    );
    assert_eq!(
        get(&format!("{url}/flavors/p1-id"), Some(&ua)).status,
        200,
        "shared with tenant-a now"
    );
    nova_fault(
        &post(&format!("{url}/flavors/f1-id/action"), Some(&admin), &add),
        409,
        "conflictingRequest",
    );

    // Extra specs.
    let specs = json!({"extra_specs": {"hw:cpu_policy": "dedicated", "quota:cpu_shares": "1024"}});
    post(
        &format!("{url}/flavors/f1-id/os-extra_specs"),
        Some(&admin),
        &specs,
    )
    .expect(200);
    let got = get(
        &format!("{url}/flavors/f1-id/os-extra_specs/hw:cpu_policy"),
        Some(&admin),
    )
    .expect(200)
    .json();
    assert_eq!(got["hw:cpu_policy"], "dedicated");
    delete(
        &format!("{url}/flavors/f1-id/os-extra_specs/hw:cpu_policy"),
        Some(&admin),
    )
    .expect(200);
    nova_fault(
        &get(
            &format!("{url}/flavors/f1-id/os-extra_specs/hw:cpu_policy"),
            Some(&admin),
        ),
        404,
        "itemNotFound",
    );
    nova_fault(
        &delete(&format!("{url}/flavors/f1-id"), Some(&ua)),
        403,
        "forbidden",
    );
    delete(&format!("{url}/flavors/f1-id"), Some(&admin)).expect(202);
    nova_fault(
        &get(&format!("{url}/flavors/f1-id"), Some(&admin)),
        404,
        "itemNotFound",
    );
}

#[test]
fn keypairs_are_validated_and_private_to_their_user() {
    let server = Server::start();
    let url = nova_url(&server);
    let admin = server.admin_token();
    let kp = json!({"keypair": {"name": "k1", "public_key": PUBLIC_KEY}});
    let r = post(&format!("{url}/os-keypairs"), Some(&admin), &kp)
        .expect(200)
        .json();
    assert!(
        r["keypair"]["fingerprint"]
            .as_str()
            .is_some_and(|f| f.len() == 47),
        "{r}"
    );
    nova_fault(
        &post(&format!("{url}/os-keypairs"), Some(&admin), &kp),
        409,
        "conflictingRequest",
    );
    let bad = json!({"keypair": {"name": "k2", "public_key": "ssh-rsa not-base64!"}});
    nova_fault(
        &post(&format!("{url}/os-keypairs"), Some(&admin), &bad),
        400,
        "badRequest",
    );
    let bad_name = json!({"keypair": {"name": "k/3", "public_key": PUBLIC_KEY}});
    nova_fault(
        &post(&format!("{url}/os-keypairs"), Some(&admin), &bad_name),
        400,
        "badRequest",
    );
    let listed = get(&format!("{url}/os-keypairs"), Some(&admin))
        .expect(200)
        .json();
    assert_eq!(
        listed["keypairs"].as_array().map(Vec::len),
        Some(1),
        "{listed}"
    );
    nova_fault(
        &get(&format!("{url}/os-keypairs/nope"), Some(&admin)),
        404,
        "itemNotFound",
    );
    delete(&format!("{url}/os-keypairs/k1"), Some(&admin)).expect(202);
    // A deleted keypair's name can be used again.
    post(&format!("{url}/os-keypairs"), Some(&admin), &kp).expect(200);
    // Without a public key the server generates the pair and returns the private half once.
    let generated = post(
        &format!("{url}/os-keypairs"),
        Some(&admin),
        &json!({"keypair": {"name": "gen"}}),
    )
    .expect(200)
    .json();
    let private = generated["keypair"]["private_key"]
        .as_str()
        .unwrap_or_default();
    assert!(
        private.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"),
        "{generated}"
    );
    let shown = get(&format!("{url}/os-keypairs/gen"), Some(&admin))
        .expect(200)
        .json();
    assert!(
        shown["keypair"]["private_key"].is_null(),
        "the private key is never stored or shown again: {shown}"
    );
    assert_eq!(
        shown["keypair"]["fingerprint"],
        generated["keypair"]["fingerprint"]
    );
}
