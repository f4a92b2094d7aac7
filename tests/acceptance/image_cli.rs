//! Acceptance: Glance v2 through the real `openstack` CLI (python-openstackclient 10.5.0, openstacksdk 4.22.0),
//! the way a user types it: a real qcow2 made by `qemu-img`, upload/download, listing with filters, properties
//! and tags, deactivation, protection, sharing with another project, delete. Each CLI call costs seconds, so
//! this is ONE scenario in ONE test; set-up and checks that need no CLI are done over HTTP.

use std::process::Command;

use crate::common::*;
use serde_json::{json, Value};

fn field<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("no string field {key:?} in {v}"))
}

/// A number the CLI may print as a JSON number or as a string.
fn number(v: &Value, key: &str) -> u64 {
    match &v[key] {
        Value::Number(n) => n
            .as_u64()
            .unwrap_or_else(|| panic!("{key} is not a u64 in {v}")),
        Value::String(s) => s
            .parse()
            .unwrap_or_else(|_| panic!("{key} is not a number in {v}")),
        _ => panic!("no number field {key:?} in {v}"),
    }
}

/// The image's extra properties as `image show -f json` prints them (a JSON object, or a Python-ish string).
fn has_property(shown: &Value, key: &str, value: &str) -> bool {
    match &shown["properties"] {
        Value::Object(m) => m.get(key).and_then(Value::as_str) == Some(value),
        Value::String(s) => {
            s.contains(&format!("{key}='{value}'")) || s.contains(&format!("'{key}': '{value}'"))
        }
        _ => shown[key].as_str() == Some(value),
    }
}

fn tags_of(v: &Value) -> Vec<String> {
    match &v["tags"] {
        Value::Array(a) => a
            .iter()
            .filter_map(|t| t.as_str().map(str::to_string))
            .collect(),
        Value::String(s) => s
            .split(',')
            .map(|t| t.trim().trim_matches('\'').to_string())
            .filter(|t| !t.is_empty())
            .collect(),
        _ => Vec::new(),
    }
}

fn names_in(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .filter_map(|r| r["Name"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn image_scenario_through_the_openstack_cli() {
    let Some(_cli) = require_cli() else { return };
    let server = Server::start();
    let id_url = server.identity_url().to_string();
    let img = server
        .endpoint("image")
        .expect("READY line names the image endpoint")
        .to_string();
    let admin_token = server.admin_token();
    let os = |args: &[&str]| ok(&server, &args.join(" "), openstack(&server, args));
    let osj = |args: &[&str]| ok(&server, &args.join(" "), openstack_json(&server, args));

    // Files: a real qcow2 (64 MiB virtual) and a small raw image of random bytes.
    let qcow = server.dir().join("disk.qcow2");
    let qcow_s = qcow.to_str().unwrap().to_string();
    let mut cmd = Command::new("qemu-img");
    cmd.args(["create", "-f", "qcow2", &qcow_s, "64M"]);
    let out = run_with_timeout(cmd, TOOL_TIMEOUT);
    assert!(out.success, "qemu-img create failed:\n{}", out.describe());
    let qcow_bytes = std::fs::read(&qcow).expect("read the qcow2");
    let qcow_md5 = md5_hex(&qcow_bytes);
    let raw = server.dir().join("small.raw");
    let raw_bytes = random_bytes(12_345);
    std::fs::write(&raw, &raw_bytes).unwrap();
    let raw_s = raw.to_str().unwrap().to_string();

    // 1. image create --file (qcow2)
    let created = osj(&[
        "image",
        "create",
        "--file",
        &qcow_s,
        "--disk-format",
        "qcow2",
        "--container-format",
        "bare",
        "cirros-q",
    ]);
    assert_eq!(field(&created, "status"), "active", "{created}");
    assert_eq!(field(&created, "name"), "cirros-q", "{created}");
    assert_eq!(
        number(&created, "size"),
        qcow_bytes.len() as u64,
        "size is the file size: {created}"
    );
    assert_eq!(
        field(&created, "checksum"),
        qcow_md5,
        "checksum is the md5 of the file: {created}"
    );
    assert_eq!(
        number(&created, "virtual_size"),
        64 << 20,
        "virtual_size from the qcow2 header: {created}"
    );
    assert_eq!(field(&created, "disk_format"), "qcow2", "{created}");
    let qid = field(&created, "id").to_string();
    assert!(
        server.data_dir().join("images").join(&qid).is_file(),
        "the bytes are stored under <data_dir>/images/<id>"
    );

    // 2. a second image (raw), tagged and with a property from the start
    let second = osj(&[
        "image",
        "create",
        "--file",
        &raw_s,
        "--disk-format",
        "raw",
        "--container-format",
        "bare",
        "--tag",
        "t",
        "--property",
        "flavor=small",
        "aaa-raw",
    ]);
    assert_eq!(field(&second, "status"), "active", "{second}");
    assert_eq!(number(&second, "size"), raw_bytes.len() as u64, "{second}");
    assert_eq!(field(&second, "checksum"), md5_hex(&raw_bytes), "{second}");
    let rid = field(&second, "id").to_string();

    // 3. image save: byte-identical
    let saved = server.dir().join("saved.qcow2");
    let saved_s = saved.to_str().unwrap().to_string();
    os(&["image", "save", "--file", &saved_s, "cirros-q"]);
    let back = std::fs::read(&saved).expect("image save wrote the file");
    assert!(
        back == qcow_bytes,
        "image save must be byte-identical ({} vs {} bytes)",
        back.len(),
        qcow_bytes.len()
    );

    // 4. image list / list --long
    let list = osj(&["image", "list"]);
    let row = row_with(&list, "Name", "cirros-q")
        .unwrap_or_else(|| panic!("image list lacks cirros-q: {list}"));
    assert_eq!(row["ID"].as_str(), Some(qid.as_str()), "{list}");
    assert_eq!(row["Status"].as_str(), Some("active"), "{list}");
    assert!(row_with(&list, "Name", "aaa-raw").is_some(), "{list}");
    let long = osj(&["image", "list", "--long"]);
    let row = row_with(&long, "Name", "cirros-q")
        .unwrap_or_else(|| panic!("image list --long lacks cirros-q: {long}"));
    assert_eq!(row["Disk Format"].as_str(), Some("qcow2"), "{long}");
    assert_eq!(row["Container Format"].as_str(), Some("bare"), "{long}");
    assert_eq!(row["Checksum"].as_str(), Some(qcow_md5.as_str()), "{long}");
    assert_eq!(number(row, "Size"), qcow_bytes.len() as u64, "{long}");

    // 5. image set --property --tag; list by tag (sorted, limited) and by property
    os(&[
        "image",
        "set",
        "--property",
        "os_distro=cirros",
        "--property",
        "k=v",
        "--tag",
        "t",
        "cirros-q",
    ]);
    let shown = osj(&["image", "show", "cirros-q"]);
    assert!(
        has_property(&shown, "k", "v"),
        "image set --property k=v did not take: {shown}"
    );
    assert!(
        tags_of(&shown).contains(&"t".to_string()),
        "image set --tag t did not take: {shown}"
    );
    // The client sorts what the server returns; the server applies the tag filter and the limit
    // in Glance's default order (created_at, then id, both descending), so with two images made
    // in the same second either one may be the first page of one.
    let by_tag = osj(&["image", "list", "--tag", "t", "--sort", "name:asc"]);
    assert_eq!(
        names_in(&by_tag),
        vec!["aaa-raw".to_string(), "cirros-q".to_string()],
        "two images carry tag t, sorted by name: {by_tag}"
    );
    let one = osj(&["image", "list", "--tag", "t", "--limit", "1"]);
    let one = names_in(&one);
    assert!(
        one.len() == 1 && (one[0] == "aaa-raw" || one[0] == "cirros-q"),
        "--limit 1 gives one of the two tagged images: {one:?}"
    );
    let by_prop = osj(&["image", "list", "--property", "k=v"]);
    assert_eq!(
        names_in(&by_prop),
        vec!["cirros-q".to_string()],
        "image list --property k=v: {by_prop}"
    );

    // 6. image unset --property (checked over HTTP)
    os(&["image", "unset", "--property", "k", "cirros-q"]);
    let v = get(&format!("{img}/v2/images/{qid}"), Some(&admin_token))
        .expect(200)
        .json();
    assert!(
        v.get("k").is_none(),
        "image unset --property k did not take: {v}"
    );
    assert_eq!(v["os_distro"], "cirros", "the other property stays: {v}");

    // 7. deactivate / activate
    os(&["image", "set", "--deactivate", "cirros-q"]);
    let shown = osj(&["image", "show", "cirros-q"]);
    assert_eq!(field(&shown, "status"), "deactivated", "{shown}");
    os(&["image", "set", "--activate", "cirros-q"]);
    let v = get(&format!("{img}/v2/images/{qid}"), Some(&admin_token))
        .expect(200)
        .json();
    assert_eq!(
        v["status"], "active",
        "image set --activate did not take: {v}"
    );

    // 8. protected images cannot be deleted (403)
    os(&["image", "set", "--protected", "cirros-q"]);
    match openstack(&server, &["image", "delete", "cirros-q"]) {
        Ok(out) => panic!("image delete of a protected image must fail, got {out:?}"),
        Err(e) => {
            let text = e.text_lower();
            assert!(
                text.contains("403") || text.contains("forbidden") || text.contains("protected"),
                "image delete of a protected image must fail with 403:\n{e}"
            );
        }
    }
    let v = get(&format!("{img}/v2/images/{qid}"), Some(&admin_token))
        .expect(200)
        .json();
    assert_eq!(
        v["status"], "active",
        "a refused delete keeps the image: {v}"
    );
    os(&["image", "set", "--unprotected", "cirros-q"]);

    // 9. sharing with project p2 (project and user made over HTTP to save time)
    let p2 = post(
        &format!("{id_url}/projects"),
        Some(&admin_token),
        &json!({"project": {"name": "p2", "enabled": true}}),
    )
    .expect(201)
    .json()["project"]["id"]
        .as_str()
        .expect("project id")
        .to_string();
    let u2 = post(
        &format!("{id_url}/users"),
        Some(&admin_token),
        &json!({"user": {"name": "u2", "password": "pw-u2", "default_project_id": p2, "enabled": true}}),
    )
    .expect(201)
    .json()["user"]["id"]
        .as_str()
        .expect("user id")
        .to_string();
    let member = find_by_name(&id_url, &admin_token, "roles", "member").expect("role member");
    put(
        &format!(
            "{id_url}/projects/{p2}/users/{u2}/roles/{}",
            member["id"].as_str().unwrap()
        ),
        Some(&admin_token),
    )
    .expect(204);

    let added = osj(&["image", "add", "project", "cirros-q", "p2"]);
    assert_eq!(field(&added, "member_id"), p2, "{added}");
    assert_eq!(field(&added, "status"), "pending", "{added}");
    let members = osj(&["image", "member", "list", "cirros-q"]);
    let m = row_with(&members, "Member ID", &p2)
        .unwrap_or_else(|| panic!("image member list lacks p2: {members}"));
    assert_eq!(m["Status"].as_str(), Some("pending"), "{members}");

    let as_u2 = Cli::for_user(&server, "u2", "pw-u2", "p2");
    ok(
        &server,
        "image set --accept (u2)",
        as_u2.run(&["image", "set", "--accept", &qid]),
    );
    let u2_list = ok(&server, "image list (u2)", as_u2.json(&["image", "list"]));
    assert!(
        row_with(&u2_list, "ID", &qid).is_some(),
        "after accepting, u2's image list shows the shared image: {u2_list}"
    );
    assert!(
        row_with(&u2_list, "ID", &rid).is_none(),
        "u2 sees only what was shared with it: {u2_list}"
    );

    // 10. delete
    os(&["image", "delete", "cirros-q"]);
    get(&format!("{img}/v2/images/{qid}"), Some(&admin_token)).expect(404);
    assert!(
        !server.data_dir().join("images").join(&qid).exists(),
        "image delete removes the stored bytes"
    );

    // 11. a staged import: the image record over HTTP (the CLI would read image data from stdin), then
    // `image stage --file` and `image import --method glance-direct`.
    let staged = post(
        &format!("{img}/v2/images"),
        Some(&admin_token),
        &serde_json::json!({"name": "staged-q", "disk_format": "raw", "container_format": "bare"}),
    )
    .expect(201)
    .json();
    let sid = staged["id"].as_str().expect("id").to_string();
    let blob = server.dir().join("staged.raw");
    std::fs::write(&blob, random_bytes(200_000)).unwrap();
    os(&["image", "stage", "--file", blob.to_str().unwrap(), &sid]);
    os(&["image", "import", "--method", "glance-direct", &sid]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let shown = loop {
        let v = get(&format!("{img}/v2/images/{sid}"), Some(&admin_token))
            .expect(200)
            .json();
        if v["status"] == "active" || std::time::Instant::now() > deadline {
            break v;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(shown["status"], "active", "{shown}");
    assert_eq!(
        shown["checksum"].as_str(),
        Some(md5_hex(&std::fs::read(&blob).unwrap()).as_str())
    );
}
