//! Cinder over HTTP through the real binary: version discovery and microversions, Cinder's fault bodies,
//! volumes (create until available, show, list/detail with filters and paging, update, metadata, extend,
//! delete with and without cascade), snapshots and volumes made from them, volume types with extra specs
//! and access lists, quotas (413 with nothing changed) and usage, services/pools/zones, attachments and
//! volume actions, and another project's volumes staying invisible.

use std::time::{Duration, Instant};

use crate::common::nova::new_member;
use crate::common::nova::*;
use crate::common::*;
use serde_json::{json, Value};

/// The microversion most tests speak (what openstacksdk negotiates for snapshots).
const MV: u32 = 65;

fn call(method: &str, url: &str, token: &str, body: Option<&Value>) -> Resp {
    cinder_at(MV, method, url, token, body)
}

fn create_volume(url: &str, token: &str, body: Value) -> Value {
    let r = call(
        "POST",
        &format!("{url}/volumes"),
        token,
        Some(&json!({ "volume": body })),
    );
    r.expect(202).json()["volume"].clone()
}

/// Poll a volume until `done` holds (60 s at most); returns its last representation.
fn wait_volume(url: &str, token: &str, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    cinder_wait(MV, url, token, &format!("volumes/{id}"), "volume", done)
}

fn wait_status(url: &str, token: &str, id: &str, status: &str) -> Value {
    wait_volume(url, token, id, |v| v["status"] == status)
}

fn wait_gone(url: &str, token: &str, path: &str) {
    cinder_wait(MV, url, token, path, "x", |v| v["http_status"] == 404);
}

fn wait_snapshot(url: &str, token: &str, id: &str, status: &str) -> Value {
    cinder_wait(
        MV,
        url,
        token,
        &format!("snapshots/{id}"),
        "snapshot",
        |s| s["status"] == status,
    )
}

/// Percent-encode a query value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn ids(list: &Value, key: &str) -> Vec<String> {
    list[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} in {list}"))
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_string())
        .collect()
}

fn quota_usage(url: &str, token: &str, project: &str) -> Value {
    call(
        "GET",
        &format!("{url}/os-quota-sets/{project}?usage=True"),
        token,
        None,
    )
    .expect(200)
    .json()["quota_set"]
        .clone()
}

#[test]
fn versions_microversions_and_faults() {
    let server = Server::start();
    let url = cinder_url(&server);
    assert!(url.ends_with("/v3"), "{url}");
    let root = url.trim_end_matches("/v3");
    let all = get(&format!("{root}/"), None).expect(300).json();
    assert_eq!(all["versions"][0]["id"], "v3.0", "{all}");
    assert_eq!(all["versions"][0]["min_version"], "3.0");
    let v3 = get(&url, None).expect(200).json();
    let max = v3["versions"][0]["version"].as_str().unwrap().to_string();
    assert_eq!(max, "3.67", "{v3}");
    get(&format!("{url}/"), None).expect(200);

    let token = server.admin_token();
    let r = cinder_at(50, "GET", &format!("{url}/volumes"), &token, None).expect(200);
    assert_eq!(r.header("openstack-api-version"), Some("volume 3.50"));
    let r = request_raw(
        "GET",
        &format!("{url}/volumes"),
        &[("X-Auth-Token", &token)],
        None,
    )
    .unwrap()
    .expect(200);
    assert_eq!(r.header("openstack-api-version"), Some("volume 3.0"));
    let r = request_raw(
        "GET",
        &format!("{url}/volumes"),
        &[
            ("X-Auth-Token", &token),
            ("OpenStack-API-Version", "volume latest"),
        ],
        None,
    )
    .unwrap()
    .expect(200);
    assert_eq!(r.header("openstack-api-version"), Some("volume 3.67"));
    // Cinder names no fault for 406: it is a computeFault.
    let msg = nova_fault(
        &cinder_at(68, "GET", &format!("{url}/volumes"), &token, None),
        406,
        "computeFault",
    );
    assert!(msg.contains("Minimum is 3.0 and maximum is 3.67"), "{msg}");
    let r = request_raw(
        "GET",
        &format!("{url}/volumes"),
        &[
            ("X-Auth-Token", &token),
            ("OpenStack-API-Version", "volume 3"),
        ],
        None,
    )
    .unwrap();
    nova_fault(&r, 400, "badRequest");

    nova_fault(&get(&format!("{url}/volumes"), None), 401, "unauthorized");
    assert_faults(
        |m, p, b| call(m, &format!("{url}{p}"), &token, b),
        &[
            ("GET", "/nothing-here", None, 404, "itemNotFound"),
            ("GET", "/volumes/no-such-volume", None, 404, "itemNotFound"),
            ("POST", "/volumes", None, 400, "badRequest"),
            // Methods a resource does not serve are not found either, as Cinder's router answers.
            ("PATCH", "/volumes", Some(json!({})), 404, "itemNotFound"),
        ],
    );
    // APIs newer than the request's microversion are not there.
    nova_fault(
        &cinder_at(26, "GET", &format!("{url}/attachments"), &token, None),
        404,
        "itemNotFound",
    );

    // With a project id in the URL: the token's works, another is a malformed URL.
    let project = crate::common::nova::project_id_of(&server, &token, "admin");
    call(
        "GET",
        &format!("{url}/{project}/volumes/detail"),
        &token,
        None,
    )
    .expect(200);
    let msg = nova_fault(
        &call(
            "GET",
            &format!("{url}/0123456789abcdef0123456789abcdef/volumes"),
            &token,
            None,
        ),
        400,
        "badRequest",
    );
    assert_eq!(msg, "Malformed request url");
    // A project without backups lists none.
    let b = call("GET", &format!("{url}/backups/detail"), &token, None)
        .expect(200)
        .json();
    assert_eq!(b["backups"], json!([]));
}

#[test]
fn volume_lifecycle_snapshots_and_cascade() {
    let server = Server::start();
    let url = cinder_url(&server);
    let token = server.admin_token();
    let project = crate::common::nova::project_id_of(&server, &token, "admin");

    let v = create_volume(
        &url,
        &token,
        json!({"size": 1, "name": "v1", "description": "first", "metadata": {"a": "1"}}),
    );
    let id = v["id"].as_str().unwrap().to_string();
    assert_eq!(v["status"], "creating", "{v}");
    assert_eq!(v["volume_type"], "__DEFAULT__", "{v}");
    assert_eq!(v["bootable"], "false");
    assert_eq!(v["size"], 1);
    assert_eq!(v["os-vol-tenant-attr:tenant_id"], project.as_str());
    assert!(
        v["volume_type_id"].is_string(),
        "3.63 shows the type id: {v}"
    );
    let v = wait_status(&url, &token, &id, "available");
    assert!(
        v["os-vol-host-attr:host"]
            .as_str()
            .unwrap()
            .starts_with("strata@"),
        "{v}"
    );
    assert_eq!(v["metadata"], json!({"a": "1"}));

    // More volumes for listing: names, metadata, sizes.
    let mut all = vec![id.clone()];
    for (name, meta) in [
        ("v2", json!({"a": "2"})),
        ("w3", json!({"a": "1", "b": "x"})),
    ] {
        let v = create_volume(
            &url,
            &token,
            json!({"size": 1, "name": name, "metadata": meta}),
        );
        all.push(v["id"].as_str().unwrap().to_string());
    }
    for i in &all {
        wait_status(&url, &token, i, "available");
    }
    let list = call("GET", &format!("{url}/volumes"), &token, None)
        .expect(200)
        .json();
    assert_eq!(ids(&list, "volumes").len(), 3, "{list}");
    assert!(
        list["volumes"][0].get("status").is_none(),
        "summary view: {list}"
    );
    let named = call(
        "GET",
        &format!("{url}/volumes/detail?name=v2"),
        &token,
        None,
    )
    .expect(200)
    .json();
    assert_eq!(named["volumes"].as_array().unwrap().len(), 1, "{named}");
    assert_eq!(named["volumes"][0]["name"], "v2");
    let like = cinder_at(
        34,
        "GET",
        &format!("{url}/volumes/detail?name~=v"),
        &token,
        None,
    )
    .expect(200)
    .json();
    assert_eq!(like["volumes"].as_array().unwrap().len(), 2, "{like}");
    let meta = call(
        "GET",
        &format!("{url}/volumes/detail?metadata={}", encode("{'a': '1'}")),
        &token,
        None,
    )
    .expect(200)
    .json();
    let mut got = ids(&meta, "volumes");
    got.sort();
    let mut want = vec![all[0].clone(), all[2].clone()];
    want.sort();
    assert_eq!(got, want, "{meta}");
    let bad = call(
        "GET",
        &format!("{url}/volumes/detail?bootable=maybe"),
        &token,
        None,
    );
    nova_fault(&bad, 400, "badRequest");

    // Paging: two per page, following volumes_links; sorted by name.
    let first = call(
        "GET",
        &format!("{url}/volumes/detail?limit=2&sort=name:asc&with_count=true"),
        &token,
        None,
    )
    .expect(200)
    .json();
    assert_eq!(first["count"], 3, "{first}");
    let names: Vec<&str> = first["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["v1", "v2"]);
    let next = first["volumes_links"][0]["href"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(next.contains("marker="), "{next}");
    let second = call("GET", &next, &token, None).expect(200).json();
    assert_eq!(second["volumes"][0]["name"], "w3", "{second}");
    assert!(second.get("volumes_links").is_none(), "{second}");

    // Update and metadata.
    let u = call(
        "PUT",
        &format!("{url}/volumes/{id}"),
        &token,
        Some(&json!({"volume": {"name": "v1-renamed", "description": null}})),
    )
    .expect(200)
    .json();
    assert_eq!(u["volume"]["name"], "v1-renamed");
    assert!(u["volume"]["description"].is_null(), "{u}");
    nova_fault(
        &call(
            "PUT",
            &format!("{url}/volumes/{id}"),
            &token,
            Some(&json!({"volume": {}})),
        ),
        400,
        "badRequest",
    );
    let m = call(
        "POST",
        &format!("{url}/volumes/{id}/metadata"),
        &token,
        Some(&json!({"metadata": {"b": "2"}})),
    )
    .expect(200)
    .json();
    assert_eq!(m["metadata"], json!({"a": "1", "b": "2"}));
    let m = call(
        "PUT",
        &format!("{url}/volumes/{id}/metadata"),
        &token,
        Some(&json!({"metadata": {"c": "3"}})),
    )
    .expect(200)
    .json();
    assert_eq!(m["metadata"], json!({"c": "3"}));
    call(
        "PUT",
        &format!("{url}/volumes/{id}/metadata/d"),
        &token,
        Some(&json!({"meta": {"d": "4"}})),
    )
    .expect(200);
    nova_fault(
        &call(
            "PUT",
            &format!("{url}/volumes/{id}/metadata/d"),
            &token,
            Some(&json!({"meta": {"e": "4"}})),
        ),
        400,
        "badRequest",
    );
    let k = call(
        "GET",
        &format!("{url}/volumes/{id}/metadata/d"),
        &token,
        None,
    )
    .expect(200)
    .json();
    assert_eq!(k, json!({"meta": {"d": "4"}}));
    call(
        "DELETE",
        &format!("{url}/volumes/{id}/metadata/d"),
        &token,
        None,
    )
    .expect(200);
    nova_fault(
        &call(
            "GET",
            &format!("{url}/volumes/{id}/metadata/d"),
            &token,
            None,
        ),
        404,
        "itemNotFound",
    );

    // Extend: quota for the new size, then the volume service grows it.
    call(
        "POST",
        &format!("{url}/volumes/{id}/action"),
        &token,
        Some(&json!({"os-extend": {"new_size": 3}})),
    )
    .expect(202);
    let v = wait_volume(&url, &token, &id, |v| {
        v["status"] == "available" && v["size"] == 3
    });
    assert_eq!(v["size"], 3);
    let msg = nova_fault(
        &call(
            "POST",
            &format!("{url}/volumes/{id}/action"),
            &token,
            Some(&json!({"os-extend": {"new_size": 2}})),
        ),
        400,
        "badRequest",
    );
    assert!(msg.contains("must be greater than current size"), "{msg}");
    let q = quota_usage(&url, &token, &project);
    assert_eq!(q["volumes"]["in_use"], 3, "{q}");
    assert_eq!(q["gigabytes"]["in_use"], 5, "{q}");

    // A snapshot, and a volume made from it (its size when none is given).
    let s = call(
        "POST",
        &format!("{url}/snapshots"),
        &token,
        Some(&json!({"snapshot": {"volume_id": id, "name": "s1", "metadata": {"k": "v"}}})),
    )
    .expect(202)
    .json();
    let sid = s["snapshot"]["id"].as_str().unwrap().to_string();
    assert_eq!(s["snapshot"]["size"], 3, "{s}");
    let s = wait_snapshot(&url, &token, &sid, "available");
    assert_eq!(s["os-extended-snapshot-attributes:progress"], "100%", "{s}");
    let snaps = call(
        "GET",
        &format!("{url}/snapshots/detail?volume_id={id}"),
        &token,
        None,
    )
    .expect(200)
    .json();
    assert_eq!(ids(&snaps, "snapshots"), vec![sid.clone()]);
    let c = create_volume(&url, &token, json!({"snapshot_id": sid, "name": "clone"}));
    assert_eq!(c["size"], 3, "{c}");
    assert_eq!(c["snapshot_id"], sid.as_str());
    let cid = c["id"].as_str().unwrap().to_string();
    wait_status(&url, &token, &cid, "available");
    let msg = nova_fault(
        &call(
            "POST",
            &format!("{url}/volumes"),
            &token,
            Some(&json!({"volume": {"snapshot_id": sid, "size": 1}})),
        ),
        400,
        "badRequest",
    );
    assert!(
        msg.contains("cannot be smaller than the snapshot size"),
        "{msg}"
    );
    let q = quota_usage(&url, &token, &project);
    assert_eq!(q["snapshots"]["in_use"], 1, "{q}");
    assert_eq!(
        q["gigabytes"]["in_use"], 11,
        "volumes 3+1+1+3 and the snapshot's 3: {q}"
    );

    // Delete: refused while it has snapshots (nothing changes), then with cascade.
    let msg = nova_fault(
        &call("DELETE", &format!("{url}/volumes/{id}"), &token, None),
        400,
        "badRequest",
    );
    assert!(msg.contains("have snapshots"), "{msg}");
    let v = call("GET", &format!("{url}/volumes/{id}"), &token, None)
        .expect(200)
        .json();
    assert_eq!(v["volume"]["status"], "available");
    wait_snapshot(&url, &token, &sid, "available");
    // The clone first (it is independent of the snapshot once made).
    call("DELETE", &format!("{url}/volumes/{cid}"), &token, None).expect(202);
    wait_gone(&url, &token, &format!("volumes/{cid}"));
    call(
        "DELETE",
        &format!("{url}/volumes/{id}?cascade=true"),
        &token,
        None,
    )
    .expect(202);
    wait_gone(&url, &token, &format!("snapshots/{sid}"));
    wait_gone(&url, &token, &format!("volumes/{id}"));
    for i in &all[1..] {
        call("DELETE", &format!("{url}/volumes/{i}"), &token, None).expect(202);
    }
    for i in &all[1..] {
        wait_gone(&url, &token, &format!("volumes/{i}"));
    }
    let q = quota_usage(&url, &token, &project);
    assert_eq!(q["volumes"]["in_use"], 0, "{q}");
    assert_eq!(q["gigabytes"]["in_use"], 0, "{q}");
    assert_eq!(q["snapshots"]["in_use"], 0, "{q}");
}

#[test]
fn volume_types_extra_specs_and_access() {
    let server = Server::start();
    let url = cinder_url(&server);
    let token = server.admin_token();
    let (member_project, _, member) = new_member(&server, &token, "vt-proj", "vt-user");

    // The default type is there from the start.
    let d = call("GET", &format!("{url}/types/default"), &member, None)
        .expect(200)
        .json();
    assert_eq!(d["volume_type"]["name"], "__DEFAULT__", "{d}");

    let t = call(
        "POST",
        &format!("{url}/types"),
        &token,
        Some(&json!({"volume_type": {"name": "ssd", "description": "fast", "extra_specs": {"volume_backend_name": "lvm-1"}}})),
    )
    .expect(200)
    .json();
    let tid = t["volume_type"]["id"].as_str().unwrap().to_string();
    assert_eq!(t["volume_type"]["is_public"], true, "{t}");
    assert_eq!(t["volume_type"]["os-volume-type-access:is_public"], true);
    assert_eq!(
        t["volume_type"]["extra_specs"]["volume_backend_name"],
        "lvm-1"
    );
    let msg = nova_fault(
        &call(
            "POST",
            &format!("{url}/types"),
            &token,
            Some(&json!({"volume_type": {"name": "ssd"}})),
        ),
        409,
        "conflictingRequest",
    );
    assert!(msg.contains("ssd"), "{msg}");
    nova_fault(
        &call(
            "POST",
            &format!("{url}/types"),
            &member,
            Some(&json!({"volume_type": {"name": "x"}})),
        ),
        403,
        "forbidden",
    );

    // Extra specs.
    call(
        "POST",
        &format!("{url}/types/{tid}/extra_specs"),
        &token,
        Some(&json!({"extra_specs": {"k1": "v1", "k2": "v2"}})),
    )
    .expect(200);
    let specs = call(
        "GET",
        &format!("{url}/types/{tid}/extra_specs"),
        &member,
        None,
    )
    .expect(200)
    .json();
    assert_eq!(specs["extra_specs"]["k2"], "v2", "{specs}");
    let one = call(
        "GET",
        &format!("{url}/types/{tid}/extra_specs/k1"),
        &token,
        None,
    )
    .expect(200)
    .json();
    assert_eq!(one, json!({"k1": "v1"}));
    call(
        "PUT",
        &format!("{url}/types/{tid}/extra_specs/k1"),
        &token,
        Some(&json!({"k1": "v9"})),
    )
    .expect(200);
    nova_fault(
        &call(
            "PUT",
            &format!("{url}/types/{tid}/extra_specs/k1"),
            &token,
            Some(&json!({"k2": "v9"})),
        ),
        400,
        "badRequest",
    );
    call(
        "DELETE",
        &format!("{url}/types/{tid}/extra_specs/k2"),
        &token,
        None,
    )
    .expect(202);
    nova_fault(
        &call(
            "GET",
            &format!("{url}/types/{tid}/extra_specs/k2"),
            &token,
            None,
        ),
        404,
        "itemNotFound",
    );

    // A private type: invisible to the member until shared.
    let p = call(
        "POST",
        &format!("{url}/types"),
        &token,
        Some(&json!({"volume_type": {"name": "gold", "os-volume-type-access:is_public": false}})),
    )
    .expect(200)
    .json();
    let pid = p["volume_type"]["id"].as_str().unwrap().to_string();
    nova_fault(
        &call("GET", &format!("{url}/types/{pid}"), &member, None),
        404,
        "itemNotFound",
    );
    let listed = call("GET", &format!("{url}/types"), &member, None)
        .expect(200)
        .json();
    assert!(!ids(&listed, "volume_types").contains(&pid), "{listed}");
    let msg = nova_fault(
        &call(
            "POST",
            &format!("{url}/volumes"),
            &member,
            Some(&json!({"volume": {"size": 1, "volume_type": "gold"}})),
        ),
        404,
        "itemNotFound",
    );
    assert!(msg.contains("gold"), "{msg}");
    call(
        "POST",
        &format!("{url}/types/{pid}/action"),
        &token,
        Some(&json!({"addProjectAccess": {"project": member_project}})),
    )
    .expect(202);
    nova_fault(
        &call(
            "POST",
            &format!("{url}/types/{pid}/action"),
            &token,
            Some(&json!({"addProjectAccess": {"project": member_project}})),
        ),
        409,
        "conflictingRequest",
    );
    let access = call(
        "GET",
        &format!("{url}/types/{pid}/os-volume-type-access"),
        &token,
        None,
    )
    .expect(200)
    .json();
    assert_eq!(
        access["volume_type_access"],
        json!([{"volume_type_id": pid, "project_id": member_project}])
    );
    let listed = call("GET", &format!("{url}/types"), &member, None)
        .expect(200)
        .json();
    assert!(ids(&listed, "volume_types").contains(&pid), "{listed}");
    let all = call("GET", &format!("{url}/types?is_public=None"), &token, None)
        .expect(200)
        .json();
    assert_eq!(
        ids(&all, "volume_types").len(),
        3,
        "__DEFAULT__, ssd, gold: {all}"
    );

    // A volume of the type (by name) shows it; the type cannot go while used.
    let v = create_volume(&url, &member, json!({"size": 1, "volume_type": "gold"}));
    assert_eq!(v["volume_type"], "gold", "{v}");
    let vid = v["id"].as_str().unwrap().to_string();
    wait_status(&url, &member, &vid, "available");
    let msg = nova_fault(
        &call("DELETE", &format!("{url}/types/{pid}"), &token, None),
        400,
        "badRequest",
    );
    assert!(msg.contains("in use"), "{msg}");
    nova_fault(
        &call(
            "POST",
            &format!("{url}/types/{pid}/extra_specs"),
            &token,
            Some(&json!({"extra_specs": {"a": "b"}})),
        ),
        400,
        "badRequest",
    );
    // Per-type quota keys name every type.
    let q = quota_usage(&url, &member, &member_project);
    assert_eq!(q["volumes_gold"]["in_use"], 1, "{q}");
    assert_eq!(q["gigabytes_ssd"]["limit"], -1, "{q}");

    call(
        "POST",
        &format!("{url}/types/{pid}/action"),
        &token,
        Some(&json!({"removeProjectAccess": {"project": member_project}})),
    )
    .expect(202);
    nova_fault(
        &call("GET", &format!("{url}/types/{pid}"), &member, None),
        404,
        "itemNotFound",
    );

    // Update and delete.
    let u = call(
        "PUT",
        &format!("{url}/types/{tid}"),
        &token,
        Some(&json!({"volume_type": {"name": "ssd2", "description": "faster"}})),
    )
    .expect(200)
    .json();
    assert_eq!(u["volume_type"]["name"], "ssd2", "{u}");
    // The old name is free again.
    call(
        "POST",
        &format!("{url}/types"),
        &token,
        Some(&json!({"volume_type": {"name": "ssd"}})),
    )
    .expect(200);
    call("DELETE", &format!("{url}/types/{tid}"), &token, None).expect(202);
    nova_fault(
        &call("GET", &format!("{url}/types/{tid}"), &token, None),
        404,
        "itemNotFound",
    );
    let d = call("GET", &format!("{url}/types/default"), &token, None)
        .expect(200)
        .json();
    let did = d["volume_type"]["id"].as_str().unwrap().to_string();
    nova_fault(
        &call("DELETE", &format!("{url}/types/{did}"), &token, None),
        400,
        "badRequest",
    );
}

#[test]
fn quotas_bad_input_and_other_projects() {
    let server = Server::start();
    let url = cinder_url(&server);
    let admin = server.admin_token();
    let (project, _, member) = new_member(&server, &admin, "q-proj", "q-user");
    let (_, _, other) = new_member(&server, &admin, "o-proj", "o-user");

    nova_fault(
        &call(
            "PUT",
            &format!("{url}/os-quota-sets/{project}"),
            &member,
            Some(&json!({"quota_set": {"volumes": 100}})),
        ),
        403,
        "forbidden",
    );
    let q = call(
        "PUT",
        &format!("{url}/os-quota-sets/{project}"),
        &admin,
        Some(&json!({"quota_set": {"volumes": 2, "gigabytes": 5}})),
    )
    .expect(200)
    .json();
    assert_eq!(q["quota_set"]["volumes"], 2, "{q}");
    nova_fault(
        &call(
            "PUT",
            &format!("{url}/os-quota-sets/{project}"),
            &admin,
            Some(&json!({"quota_set": {"bogus": 1}})),
        ),
        400,
        "badRequest",
    );
    let d = call(
        "GET",
        &format!("{url}/os-quota-sets/{project}/defaults"),
        &member,
        None,
    )
    .expect(200)
    .json();
    assert_eq!(d["quota_set"]["volumes"], 10, "{d}");
    nova_fault(
        &call(
            "GET",
            &format!("{url}/os-quota-sets/{project}"),
            &other,
            None,
        ),
        403,
        "forbidden",
    );

    // The first volume of the deployment, refused by quota: nothing at all is recorded for it (not even
    // the default type it would have had).
    let other_project = crate::common::nova::project_id_of(&server, &admin, "o-proj");
    call(
        "PUT",
        &format!("{url}/os-quota-sets/{other_project}"),
        &admin,
        Some(&json!({"quota_set": {"volumes": 0}})),
    )
    .expect(200);
    let msg = nova_fault(
        &call(
            "POST",
            &format!("{url}/volumes"),
            &other,
            Some(&json!({"volume": {"size": 1}})),
        ),
        413,
        "overLimit",
    );
    assert_eq!(
        msg,
        "Maximum number of volumes allowed (0) exceeded for quota 'volumes'."
    );
    let events = server.log_dump().expect("log dump");
    let volume_events: Vec<&str> = events
        .iter()
        .map(ev_type)
        .filter(|t| t.starts_with("volume.") && !t.contains("Backend") && !t.contains("Quota"))
        .collect();
    assert!(volume_events.is_empty(), "{volume_events:?}");
    call(
        "DELETE",
        &format!("{url}/os-quota-sets/{other_project}"),
        &admin,
        None,
    )
    .expect(200);

    let a = create_volume(&url, &member, json!({"size": 2, "name": "a"}));
    let a = a["id"].as_str().unwrap().to_string();
    // Over the gigabytes quota: 2 + 4 > 5.
    let msg = nova_fault(
        &call(
            "POST",
            &format!("{url}/volumes"),
            &member,
            Some(&json!({"volume": {"size": 4}})),
        ),
        413,
        "overLimit",
    );
    assert!(
        msg.starts_with("Requested volume or snapshot exceeds allowed gigabytes quota"),
        "{msg}"
    );
    create_volume(&url, &member, json!({"size": 1, "name": "b"}));
    let msg = nova_fault(
        &call(
            "POST",
            &format!("{url}/volumes"),
            &member,
            Some(&json!({"volume": {"size": 1, "name": "c"}})),
        ),
        413,
        "overLimit",
    );
    assert_eq!(
        msg,
        "Maximum number of volumes allowed (2) exceeded for quota 'volumes'."
    );
    // Nothing of the refused requests was recorded.
    let list = call("GET", &format!("{url}/volumes"), &member, None)
        .expect(200)
        .json();
    assert_eq!(list["volumes"].as_array().unwrap().len(), 2, "{list}");
    let q = quota_usage(&url, &member, &project);
    assert_eq!(
        q["volumes"],
        json!({"limit": 2, "in_use": 2, "reserved": 0}),
        "{q}"
    );
    assert_eq!(q["gigabytes"]["in_use"], 3, "{q}");
    let l = call("GET", &format!("{url}/limits"), &member, None)
        .expect(200)
        .json();
    assert_eq!(l["limits"]["absolute"]["maxTotalVolumes"], 2, "{l}");
    assert_eq!(l["limits"]["absolute"]["totalVolumesUsed"], 2, "{l}");
    assert_eq!(l["limits"]["absolute"]["totalGigabytesUsed"], 3, "{l}");
    assert_eq!(l["limits"]["rate"], json!([]));
    // Extending past the quota is refused before the volume changes.
    wait_status(&url, &member, &a, "available");
    nova_fault(
        &call(
            "POST",
            &format!("{url}/volumes/{a}/action"),
            &member,
            Some(&json!({"os-extend": {"new_size": 5}})),
        ),
        413,
        "overLimit",
    );
    let v = call("GET", &format!("{url}/volumes/{a}"), &member, None)
        .expect(200)
        .json();
    assert_eq!(
        (v["volume"]["size"].as_u64(), v["volume"]["status"].as_str()),
        (Some(2), Some("available"))
    );
    call(
        "DELETE",
        &format!("{url}/os-quota-sets/{project}"),
        &admin,
        None,
    )
    .expect(200);
    let q = quota_usage(&url, &member, &project);
    assert_eq!(q["volumes"]["limit"], 10, "{q}");

    // Bad input: Cinder's 400/404 bodies, nothing recorded.
    let bad = |body: Value, status: u16, key: &str| {
        nova_fault(
            &call("POST", &format!("{url}/volumes"), &member, Some(&body)),
            status,
            key,
        )
    };
    bad(json!({"volume": {"size": 0}}), 400, "badRequest");
    bad(json!({"volume": {"size": "big"}}), 400, "badRequest");
    bad(json!({"volume": {"name": "no size"}}), 400, "badRequest");
    bad(
        json!({"volume": {"size": 1, "colour": "red"}}),
        400,
        "badRequest",
    );
    bad(
        json!({"volume": {"size": 1, "multiattach": true}}),
        400,
        "badRequest",
    );
    bad(
        json!({"volume": {"size": 1, "availability_zone": "mars"}}),
        400,
        "badRequest",
    );
    bad(
        json!({"volume": {"size": 1, "name": "x".repeat(256)}}),
        400,
        "badRequest",
    );
    bad(
        json!({"volume": {"size": 1, "metadata": {"k": 1}}}),
        400,
        "badRequest",
    );
    bad(
        json!({"volume": {"size": 1, "imageRef": "no-such-image"}}),
        400,
        "badRequest",
    );
    bad(
        json!({"volume": {"size": 1, "volume_type": "nope"}}),
        404,
        "itemNotFound",
    );
    bad(
        json!({"volume": {"snapshot_id": "8f6b3a3e-6f4c-4b36-9e51-0a4d9c1f2b3a"}}),
        404,
        "itemNotFound",
    );
    bad(
        json!({"volume": {"source_volid": "8f6b3a3e-6f4c-4b36-9e51-0a4d9c1f2b3a"}}),
        404,
        "itemNotFound",
    );
    bad(
        json!({"volume": {"snapshot_id": "not-a-uuid"}}),
        400,
        "badRequest",
    );
    let r = request_raw(
        "POST",
        &format!("{url}/volumes"),
        &[("X-Auth-Token", &member)],
        Some("{not json"),
    )
    .unwrap();
    nova_fault(&r, 400, "badRequest");
    let list = call("GET", &format!("{url}/volumes"), &member, None)
        .expect(200)
        .json();
    assert_eq!(list["volumes"].as_array().unwrap().len(), 2, "{list}");
    assert_faults(
        |m, p, b| call(m, &format!("{url}{p}"), &member, b),
        &[("GET", "/volumes/detail?colour=red", None, 400, "badRequest")],
    );

    // Another project's volume does not exist for this one.
    for (method, path, body) in [
        ("GET", format!("volumes/{a}"), None),
        (
            "PUT",
            format!("volumes/{a}"),
            Some(json!({"volume": {"name": "mine"}})),
        ),
        ("DELETE", format!("volumes/{a}"), None),
        ("GET", format!("volumes/{a}/metadata"), None),
        (
            "POST",
            format!("volumes/{a}/action"),
            Some(json!({"os-extend": {"new_size": 3}})),
        ),
        (
            "POST",
            "snapshots".to_string(),
            Some(json!({"snapshot": {"volume_id": a}})),
        ),
    ] {
        let r = call(method, &format!("{url}/{path}"), &other, body.as_ref());
        nova_fault(&r, 404, "itemNotFound");
    }
    let theirs = call("GET", &format!("{url}/volumes/detail"), &other, None)
        .expect(200)
        .json();
    assert_eq!(theirs["volumes"], json!([]));
    // An admin sees every project's with all_tenants.
    let everyone = call(
        "GET",
        &format!("{url}/volumes/detail?all_tenants=1"),
        &admin,
        None,
    )
    .expect(200)
    .json();
    assert!(ids(&everyone, "volumes").contains(&a), "{everyone}");
    let mine = call("GET", &format!("{url}/volumes/detail"), &admin, None)
        .expect(200)
        .json();
    assert!(!ids(&mine, "volumes").contains(&a), "{mine}");
    // Admin-only actions.
    nova_fault(
        &call(
            "POST",
            &format!("{url}/volumes/{a}/action"),
            &member,
            Some(&json!({"os-reset_status": {"status": "error"}})),
        ),
        403,
        "forbidden",
    );
}

#[test]
fn services_pools_and_zones() {
    let server = Server::start();
    let url = cinder_url(&server);
    let admin = server.admin_token();
    let (_, _, member) = new_member(&server, &admin, "s-proj", "s-user");

    let s = cinder_at(49, "GET", &format!("{url}/os-services"), &admin, None)
        .expect(200)
        .json();
    let services = s["services"].as_array().unwrap();
    let volume = services
        .iter()
        .find(|r| r["binary"] == "cinder-volume")
        .unwrap_or_else(|| panic!("{s}"));
    assert_eq!(volume["host"], "strata@lvm-1", "{s}");
    assert_eq!(volume["state"], "up");
    assert_eq!(volume["status"], "enabled");
    assert_eq!(volume["backend_state"], "up");
    assert!(services
        .iter()
        .any(|r| r["binary"] == "cinder-scheduler" && r["host"] == "strata"));
    nova_fault(
        &call("GET", &format!("{url}/os-services"), &member, None),
        403,
        "forbidden",
    );

    let r = call(
        "PUT",
        &format!("{url}/os-services/disable-log-reason"),
        &admin,
        Some(&json!({"host": "strata@lvm-1", "binary": "cinder-volume", "disabled_reason": "maintenance"})),
    )
    .expect(200)
    .json();
    assert_eq!(r["status"], "disabled", "{r}");
    assert_eq!(r["disabled_reason"], "maintenance");
    let s = call(
        "GET",
        &format!("{url}/os-services?binary=cinder-volume"),
        &admin,
        None,
    )
    .expect(200)
    .json();
    assert_eq!(s["services"].as_array().unwrap().len(), 1, "{s}");
    assert_eq!(s["services"][0]["status"], "disabled");
    assert_eq!(s["services"][0]["disabled_reason"], "maintenance");
    // A volume made while its only backend is disabled cannot be placed.
    let v = create_volume(&url, &admin, json!({"size": 1}));
    let id = v["id"].as_str().unwrap().to_string();
    wait_status(&url, &admin, &id, "error");
    call(
        "PUT",
        &format!("{url}/os-services/enable"),
        &admin,
        Some(&json!({"host": "strata@lvm-1", "binary": "cinder-volume"})),
    )
    .expect(200);
    nova_fault(
        &call(
            "PUT",
            &format!("{url}/os-services/enable"),
            &admin,
            Some(&json!({"host": "elsewhere", "binary": "cinder-volume"})),
        ),
        404,
        "itemNotFound",
    );
    call("DELETE", &format!("{url}/volumes/{id}"), &admin, None).expect(202);
    wait_gone(&url, &admin, &format!("volumes/{id}"));

    let p = call(
        "GET",
        &format!("{url}/scheduler-stats/get_pools?detail=True"),
        &admin,
        None,
    )
    .expect(200)
    .json();
    let pool = &p["pools"][0];
    assert_eq!(pool["name"], "strata@lvm-1#lvm-1", "{p}");
    let caps = &pool["capabilities"];
    assert_eq!(caps["total_capacity_gb"], 100, "{caps}");
    assert_eq!(caps["volume_backend_name"], "lvm-1", "{caps}");
    for key in [
        "free_capacity_gb",
        "allocated_capacity_gb",
        "provisioned_capacity_gb",
        "max_over_subscription_ratio",
        "thin_provisioning_support",
        "driver_version",
        "storage_protocol",
        "vendor_name",
        "reserved_percentage",
        "pool_name",
    ] {
        assert!(!caps[key].is_null(), "{key} missing: {caps}");
    }
    let names = call(
        "GET",
        &format!("{url}/scheduler-stats/get_pools"),
        &admin,
        None,
    )
    .expect(200)
    .json();
    assert_eq!(names["pools"], json!([{"name": "strata@lvm-1#lvm-1"}]));
    assert_faults(
        |m, p, b| call(m, &format!("{url}{p}"), &member, b),
        &[("GET", "/scheduler-stats/get_pools", None, 403, "forbidden")],
    );

    let z = call("GET", &format!("{url}/os-availability-zone"), &member, None)
        .expect(200)
        .json();
    assert_eq!(
        z["availabilityZoneInfo"],
        json!([{"zoneName": "nova", "zoneState": {"available": true}}])
    );
}

#[test]
fn attachments_and_volume_actions() {
    let server = Server::start();
    let url = cinder_url(&server);
    let token = server.admin_token();
    let server_id = "3b8b6631-1cf7-4fd7-9afb-c01e541a073c";

    let v = create_volume(&url, &token, json!({"size": 1, "name": "att"}));
    let id = v["id"].as_str().unwrap().to_string();
    wait_status(&url, &token, &id, "available");

    // The attachments API (3.27, os-complete 3.44).
    let a = cinder_at(
        54,
        "POST",
        &format!("{url}/attachments"),
        &token,
        Some(&json!({"attachment": {"volume_uuid": id, "instance_uuid": server_id, "mode": "rw"}})),
    )
    .expect(200)
    .json();
    let aid = a["attachment"]["id"].as_str().unwrap().to_string();
    assert_eq!(a["attachment"]["status"], "reserved", "{a}");
    assert_eq!(a["attachment"]["instance"], server_id);
    let v = call("GET", &format!("{url}/volumes/{id}"), &token, None)
        .expect(200)
        .json();
    assert_eq!(v["volume"]["status"], "attaching", "{v}");
    let u = call(
        "PUT",
        &format!("{url}/attachments/{aid}"),
        &token,
        Some(
            &json!({"attachment": {"connector": {"host": "compute-1", "mountpoint": "/dev/vdb"}}}),
        ),
    )
    .expect(200)
    .json();
    assert_eq!(
        u["attachment"]["connection_info"]["driver_volume_type"], "file",
        "{u}"
    );
    assert!(
        u["attachment"]["connection_info"]["data"]["path"].is_string(),
        "{u}"
    );
    cinder_at(
        44,
        "POST",
        &format!("{url}/attachments/{aid}/action"),
        &token,
        Some(&json!({"os-complete": aid})),
    )
    .expect(204);
    let v = call("GET", &format!("{url}/volumes/{id}"), &token, None)
        .expect(200)
        .json();
    assert_eq!(v["volume"]["status"], "in-use", "{v}");
    assert_eq!(v["volume"]["attachments"][0]["server_id"], server_id, "{v}");
    assert_eq!(v["volume"]["attachments"][0]["attachment_id"], aid.as_str());
    let list = call(
        "GET",
        &format!("{url}/attachments?volume_id={id}"),
        &token,
        None,
    )
    .expect(200)
    .json();
    assert_eq!(list["attachments"][0]["status"], "attached", "{list}");
    let msg = nova_fault(
        &call("DELETE", &format!("{url}/volumes/{id}"), &token, None),
        400,
        "badRequest",
    );
    assert!(msg.contains("attached"), "{msg}");
    let d = call("DELETE", &format!("{url}/attachments/{aid}"), &token, None)
        .expect(200)
        .json();
    assert_eq!(d["attachments"], json!([]));
    wait_status(&url, &token, &id, "available");

    // The legacy flow.
    let act = |body: Value| {
        call(
            "POST",
            &format!("{url}/volumes/{id}/action"),
            &token,
            Some(&body),
        )
    };
    act(json!({"os-reserve": null})).expect(202);
    assert_eq!(
        wait_status(&url, &token, &id, "attaching")["status"],
        "attaching"
    );
    act(json!({"os-unreserve": {}})).expect(202);
    wait_status(&url, &token, &id, "available");
    let c = act(json!({"os-initialize_connection": {"connector": {"host": "compute-1"}}}))
        .expect(200)
        .json();
    assert_eq!(c["connection_info"]["driver_volume_type"], "file", "{c}");
    act(json!({"os-attach": {"instance_uuid": server_id, "mountpoint": "/dev/vdc"}})).expect(202);
    let v = wait_status(&url, &token, &id, "in-use");
    assert_eq!(v["attachments"][0]["device"], "/dev/vdc", "{v}");
    // in-use -> detaching -> (rolled back) in-use -> detaching -> available.
    act(json!({"os-begin_detaching": {}})).expect(202);
    wait_status(&url, &token, &id, "detaching");
    act(json!({"os-roll_detaching": {}})).expect(202);
    wait_status(&url, &token, &id, "in-use");
    act(json!({"os-begin_detaching": {}})).expect(202);
    let v = wait_status(&url, &token, &id, "detaching");
    assert_eq!(v["attachments"][0]["device"], "/dev/vdc", "{v}");
    act(json!({"os-terminate_connection": {"connector": {"host": "compute-1"}}})).expect(202);
    act(json!({"os-detach": {}})).expect(202);
    wait_status(&url, &token, &id, "available");
    nova_fault(&act(json!({"os-detach": {}})), 400, "badRequest");
    nova_fault(&act(json!({"os-frobnicate": {}})), 400, "badRequest");

    // Flags and admin actions.
    act(json!({"os-set_bootable": {"bootable": "True"}})).expect(200);
    act(json!({"os-update_readonly_flag": {"readonly": false}})).expect(202);
    let v = call("GET", &format!("{url}/volumes/{id}"), &token, None)
        .expect(200)
        .json();
    assert_eq!(v["volume"]["bootable"], "true", "{v}");
    act(json!({"os-reset_status": {"status": "error"}})).expect(202);
    wait_status(&url, &token, &id, "error");
    nova_fault(
        &act(json!({"os-reset_status": {"status": "sleepy"}})),
        400,
        "badRequest",
    );
    act(json!({"os-reset_status": {"status": "available"}})).expect(202);
    wait_status(&url, &token, &id, "available");

    // Retype.
    call(
        "POST",
        &format!("{url}/types"),
        &token,
        Some(&json!({"volume_type": {"name": "t2"}})),
    )
    .expect(200);
    act(json!({"os-retype": {"new_type": "t2", "migration_policy": "never"}})).expect(202);
    let v = wait_volume(&url, &token, &id, |v| {
        v["volume_type"] == "t2" && v["status"] == "available"
    });
    assert_eq!(v["volume_type"], "t2");
    nova_fault(
        &act(json!({"os-retype": {"new_type": "t2"}})),
        400,
        "badRequest",
    );

    // Revert to the latest snapshot only (3.40).
    let snap = |name: &str| {
        let s = call(
            "POST",
            &format!("{url}/snapshots"),
            &token,
            Some(&json!({"snapshot": {"volume_id": id, "name": name}})),
        )
        .expect(202)
        .json();
        let sid = s["snapshot"]["id"].as_str().unwrap().to_string();
        wait_snapshot(&url, &token, &sid, "available");
        sid
    };
    let s1 = snap("s1");
    std::thread::sleep(Duration::from_millis(10));
    let s2 = snap("s2");
    let msg = nova_fault(
        &act(json!({"revert": {"snapshot_id": s1}})),
        400,
        "badRequest",
    );
    assert!(msg.contains("not the latest"), "{msg}");
    nova_fault(
        &cinder_at(
            39,
            "POST",
            &format!("{url}/volumes/{id}/action"),
            &token,
            Some(&json!({"revert": {"snapshot_id": s2}})),
        ),
        404,
        "itemNotFound",
    );
    act(json!({"revert": {"snapshot_id": s2}})).expect(202);
    wait_status(&url, &token, &id, "available");

    // Upload to image: a Glance image the volume service fills.
    let up =
        act(json!({"os-volume_upload_image": {"image_name": "from-volume", "disk_format": "raw"}}))
            .expect(202)
            .json();
    let image_id = up["os-volume_upload_image"]["image_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(up["os-volume_upload_image"]["status"], "uploading", "{up}");
    assert_eq!(up["os-volume_upload_image"]["image_name"], "from-volume");
    let glance = server.endpoint("image").unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let i = get(&format!("{glance}/v2/images/{image_id}"), Some(&token))
            .expect(200)
            .json();
        if i["status"] == "active" {
            assert_eq!(i["size"], 1u64 << 30, "{i}");
            break;
        }
        assert!(Instant::now() < deadline, "image never active: {i}");
        std::thread::sleep(Duration::from_millis(100));
    }
    wait_status(&url, &token, &id, "available");
    nova_fault(
        &act(json!({"os-volume_upload_image": {"image_name": "x", "disk_format": "vmdk"}})),
        400,
        "badRequest",
    );

    // A volume from that image is bootable and needs at least its size.
    let v = create_volume(&url, &token, json!({"size": 1, "imageRef": image_id}));
    let vid = v["id"].as_str().unwrap().to_string();
    let v = wait_status(&url, &token, &vid, "available");
    assert_eq!(v["bootable"], "true", "{v}");

    // Force delete (admin) with its snapshots gone first.
    for s in [&s1, &s2] {
        call("DELETE", &format!("{url}/snapshots/{s}"), &token, None).expect(202);
        wait_gone(&url, &token, &format!("snapshots/{s}"));
    }
    act(json!({"os-force_delete": {}})).expect(202);
    wait_gone(&url, &token, &format!("volumes/{id}"));
}
