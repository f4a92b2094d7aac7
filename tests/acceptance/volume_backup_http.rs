//! Cinder backups over HTTP through the real binary: full and incremental backups of a `file` volume (what
//! each stores), restores to the same volume and to new ones that are byte-identical to the data backed up,
//! a backup of a snapshot, backups and restores resumed after SIGKILL, the delete rules (incremental children first), quotas (413 with nothing
//! recorded), bad input with Cinder's faults, admin actions, and other projects' backups staying invisible.

use crate::common::nova::*;
use crate::common::nova::{new_member, project_id_of};
use crate::common::*;
use serde_json::{json, Value};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

const MIB: u64 = 1 << 20;

/// What openstacksdk speaks for backups.
const MV: u32 = 64;

fn call(method: &str, url: &str, token: &str, body: Option<&Value>) -> Resp {
    cinder_at(MV, method, url, token, body)
}

fn wait_volume(url: &str, token: &str, id: &str, status: &str) -> Value {
    cinder_wait(MV, url, token, &format!("volumes/{id}"), "volume", |v| {
        v["status"] == status
    })
}

fn wait_backup(url: &str, token: &str, id: &str, status: &str) -> Value {
    cinder_wait(MV, url, token, &format!("backups/{id}"), "backup", |v| {
        v["status"] == status
    })
}

fn wait_gone(url: &str, token: &str, path: &str) {
    cinder_wait(MV, url, token, path, "x", |v| v["http_status"] == 404);
}

fn create_volume(url: &str, token: &str, body: Value) -> String {
    let r = call(
        "POST",
        &format!("{url}/volumes"),
        token,
        Some(&json!({ "volume": body })),
    );
    let id = r.expect(202).json()["volume"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_volume(url, token, &id, "available");
    id
}

/// Start a backup; returns its id.
fn create_backup(url: &str, token: &str, body: Value) -> String {
    let r = call(
        "POST",
        &format!("{url}/backups"),
        token,
        Some(&json!({ "backup": body })),
    )
    .expect(202)
    .json();
    let b = &r["backup"];
    // Cinder answers a create with the summary view.
    assert_eq!(
        b.as_object().map(|o| o.len()),
        Some(3),
        "id, name and links: {r}"
    );
    assert!(b["links"][0]["href"]
        .as_str()
        .unwrap()
        .contains("/backups/"));
    b["id"].as_str().unwrap().to_string()
}

fn backup_dir(server: &Server, id: &str) -> PathBuf {
    server.data_dir().join("volumes").join("backups").join(id)
}

fn write_at(path: &Path, offset: u64, data: &[u8]) {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    f.write_all_at(data, offset).unwrap();
    f.sync_all().unwrap();
}

/// The file holds exactly `pieces` (offset, bytes) and zeros everywhere else, and is `size` bytes long.
fn assert_content(path: &Path, size: u64, pieces: &[(u64, &[u8])]) {
    let f = std::fs::File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    assert_eq!(f.metadata().unwrap().len(), size, "{}", path.display());
    let mut expected = vec![0u8; MIB as usize];
    let mut actual = vec![0u8; MIB as usize];
    let mut offset = 0;
    while offset < size {
        expected.fill(0);
        for (at, data) in pieces {
            let (start, end) = (*at, *at + data.len() as u64);
            if end > offset && start < offset + MIB {
                let from = start.max(offset);
                let to = end.min(offset + MIB);
                expected[(from - offset) as usize..(to - offset) as usize]
                    .copy_from_slice(&data[(from - start) as usize..(to - start) as usize]);
            }
        }
        f.read_exact_at(&mut actual, offset).unwrap();
        assert!(
            actual == expected,
            "{} differs from the expected content in the MiB at {offset}",
            path.display()
        );
        offset += MIB;
    }
}

fn ids(list: &Value) -> Vec<String> {
    list["backups"]
        .as_array()
        .unwrap_or_else(|| panic!("no backups in {list}"))
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn full_and_incremental_backups_restore_byte_identical_data() {
    let mut server = Server::start();
    let url = cinder_url(&server);
    let token = server.admin_token();
    let project = project_id_of(&server, &token, "admin");

    let vol = create_volume(&url, &token, json!({"size": 1, "name": "src"}));
    let file = volume_file(&server, &vol);
    let (a0, a1) = (random_bytes(64 << 10), random_bytes(4096));
    write_at(&file, 0, &a0);
    write_at(&file, 3 * MIB + 100, &a1);

    // A full backup stores the two non-zero chunks.
    let full = create_backup(
        &url,
        &token,
        json!({"volume_id": vol, "name": "full", "description": "first", "container": "c1"}),
    );
    let b = wait_backup(&url, &token, &full, "available");
    assert_eq!(b["name"], "full", "{b}");
    assert_eq!(b["description"], "first", "{b}");
    assert_eq!(b["container"], "c1", "{b}");
    assert_eq!(b["volume_id"], vol.as_str(), "{b}");
    assert_eq!(b["size"], 1, "{b}");
    assert_eq!(b["object_count"], 2, "{b}");
    assert_eq!(b["is_incremental"], false, "{b}");
    assert_eq!(b["has_dependent_backups"], false, "{b}");
    assert_eq!(b["snapshot_id"], Value::Null, "{b}");
    assert_eq!(b["fail_reason"], Value::Null, "{b}");
    assert_eq!(b["availability_zone"], "nova", "{b}");
    assert_eq!(b["data_timestamp"], b["created_at"], "{b}");
    assert_eq!(b["metadata"], json!({}), "{b}");
    assert_eq!(b["os-backup-project-attr:project_id"], project.as_str());
    assert!(b["links"][0]["href"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/v3/{project}/backups/{full}")));
    assert!(backup_dir(&server, &full).join("manifest.json").is_file());
    wait_volume(&url, &token, &vol, "available");

    // An incremental backup stores only the changed and the new chunk.
    let b0 = random_bytes(64 << 10);
    let b2 = random_bytes(10_000);
    write_at(&file, 0, &b0);
    write_at(&file, 5 * MIB, &b2);
    let incr = create_backup(
        &url,
        &token,
        json!({"volume_id": vol, "name": "incr", "incremental": true}),
    );
    let b = wait_backup(&url, &token, &incr, "available");
    assert_eq!(b["is_incremental"], true, "{b}");
    assert_eq!(b["object_count"], 2, "{b}");
    let f = call("GET", &format!("{url}/backups/{full}"), &token, None)
        .expect(200)
        .json();
    assert_eq!(f["backup"]["has_dependent_backups"], true, "{f}");
    wait_volume(&url, &token, &vol, "available");
    let full_content: [(u64, &[u8]); 2] = [(0, &a0), (3 * MIB + 100, &a1)];
    let incr_content: [(u64, &[u8]); 3] = [(0, &b0), (3 * MIB + 100, &a1), (5 * MIB, &b2)];

    // A snapshot, then damage; a backup of the snapshot holds the data of the snapshot's time.
    let snap = call(
        "POST",
        &format!("{url}/snapshots"),
        &token,
        Some(&json!({"snapshot": {"volume_id": vol, "name": "s"}})),
    )
    .expect(202)
    .json()["snapshot"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let s = cinder_wait(
        MV,
        &url,
        &token,
        &format!("snapshots/{snap}"),
        "snapshot",
        |s| s["status"] == "available",
    );
    let junk = random_bytes(8192);
    write_at(&file, 0, &junk);
    write_at(&file, 7 * MIB, &junk);
    let of_snap = create_backup(
        &url,
        &token,
        json!({"volume_id": vol, "snapshot_id": snap, "name": "of-snap"}),
    );
    // The volume itself is not busy while its snapshot is read.
    let v = call("GET", &format!("{url}/volumes/{vol}"), &token, None)
        .expect(200)
        .json();
    assert_eq!(v["volume"]["status"], "available", "{v}");
    let b = wait_backup(&url, &token, &of_snap, "available");
    assert_eq!(b["snapshot_id"], snap.as_str(), "{b}");
    assert_eq!(b["data_timestamp"], s["created_at"], "{b}");
    assert_eq!(b["is_incremental"], false, "{b}");

    // Restore the incremental backup over the damaged volume: the whole chain is read back.
    let r = call(
        "POST",
        &format!("{url}/backups/{incr}/restore"),
        &token,
        Some(&json!({"restore": {"volume_id": vol}})),
    )
    .expect(202)
    .json();
    assert_eq!(
        r,
        json!({"restore": {"backup_id": incr, "volume_id": vol, "volume_name": "src"}})
    );
    wait_volume(&url, &token, &vol, "available");
    wait_backup(&url, &token, &incr, "available");
    assert_content(&file, 1 << 30, &incr_content);

    // Restore the full backup into a new volume, named as asked.
    let r = call(
        "POST",
        &format!("{url}/backups/{full}/restore"),
        &token,
        Some(&json!({"restore": {"name": "from-full"}})),
    )
    .expect(202)
    .json();
    assert_eq!(r["restore"]["backup_id"], full.as_str(), "{r}");
    assert_eq!(r["restore"]["volume_name"], "from-full", "{r}");
    let new_vol = r["restore"]["volume_id"].as_str().unwrap().to_string();
    let nv = wait_volume(&url, &token, &new_vol, "available");
    assert_eq!(nv["size"], 1, "{nv}");
    assert_eq!(nv["name"], "from-full", "{nv}");
    wait_backup(&url, &token, &full, "available");
    assert_content(&volume_file(&server, &new_vol), 1 << 30, &full_content);

    // A volume created from the backup (POST /volumes with backup_id, 3.47): the same content, 2 GB.
    let r = cinder_at(
        47,
        "POST",
        &format!("{url}/volumes"),
        &token,
        Some(&json!({"volume": {"backup_id": full, "size": 2, "name": "from-backup"}})),
    )
    .expect(202)
    .json();
    let from_backup = r["volume"]["id"].as_str().unwrap().to_string();
    let fb = wait_volume(&url, &token, &from_backup, "available");
    assert_eq!(fb["size"], 2, "{fb}");
    wait_backup(&url, &token, &full, "available");
    assert_content(&volume_file(&server, &from_backup), 2 << 30, &full_content);

    // The snapshot's backup into a new volume with the default name.
    let r = call(
        "POST",
        &format!("{url}/backups/{of_snap}/restore"),
        &token,
        Some(&json!({"restore": null})),
    )
    .expect(202)
    .json();
    assert_eq!(
        r["restore"]["volume_name"],
        format!("restore_backup_{of_snap}"),
        "{r}"
    );
    let snap_vol = r["restore"]["volume_id"].as_str().unwrap().to_string();
    wait_volume(&url, &token, &snap_vol, "available");
    wait_backup(&url, &token, &of_snap, "available");
    assert_content(&volume_file(&server, &snap_vol), 1 << 30, &incr_content);

    // Restoring into a volume that does not exist is refused.
    let msg = nova_fault(
        &call(
            "POST",
            &format!("{url}/backups/{full}/restore"),
            &token,
            Some(&json!({"restore": {"volume_id": uuid_like(9)}})),
        ),
        404,
        "itemNotFound",
    );
    assert!(msg.contains("could not be found"), "{msg}");

    assert_backup_usage(&url, &token, &project, 3, 3);

    // The full backup goes only after the incremental one built on it.
    let msg = nova_fault(
        &call("DELETE", &format!("{url}/backups/{full}"), &token, None),
        400,
        "badRequest",
    );
    assert_eq!(
        msg,
        "Invalid backup: Incremental backups exist for this backup."
    );
    for id in [&incr, &full, &of_snap] {
        call("DELETE", &format!("{url}/backups/{id}"), &token, None).expect(202);
        wait_gone(&url, &token, &format!("backups/{id}"));
        assert!(!backup_dir(&server, id).exists(), "{id}'s data removed");
    }
    assert_backup_usage(&url, &token, &project, 0, 0);
    // Nothing was left under a temporary name.
    let leftovers: Vec<_> = std::fs::read_dir(server.data_dir().join("volumes").join("backups"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // A backup, then a restore, each cut short by SIGKILL: the service finishes them when it starts again.
    let crash = create_backup(&url, &token, json!({"volume_id": vol, "name": "crash"}));
    server.restart();
    let url = cinder_url(&server);
    let token = server.admin_token();
    wait_backup(&url, &token, &crash, "available");
    wait_volume(&url, &token, &vol, "available");
    let r = call(
        "POST",
        &format!("{url}/backups/{crash}/restore"),
        &token,
        Some(&json!({"restore": {"name": "after-crash"}})),
    )
    .expect(202)
    .json();
    let crash_vol = r["restore"]["volume_id"].as_str().unwrap().to_string();
    server.restart();
    let url = cinder_url(&server);
    let token = server.admin_token();
    wait_volume(&url, &token, &crash_vol, "available");
    wait_backup(&url, &token, &crash, "available");
    assert_content(&volume_file(&server, &crash_vol), 1 << 30, &incr_content);
    call("DELETE", &format!("{url}/backups/{crash}"), &token, None).expect(202);
    wait_gone(&url, &token, &format!("backups/{crash}"));

    let verify = server.replay_verify();
    assert!(verify.success, "{}", verify.describe());
}

/// The project's backup quota usage is `backups` backups of `gigabytes` GB in all.
fn assert_backup_usage(url: &str, token: &str, project: &str, backups: u64, gigabytes: u64) {
    let q = call(
        "GET",
        &format!("{url}/os-quota-sets/{project}?usage=True"),
        token,
        None,
    )
    .expect(200)
    .json();
    assert_eq!(q["quota_set"]["backups"]["in_use"], backups, "{q}");
    assert_eq!(
        q["quota_set"]["backup_gigabytes"]["in_use"], gigabytes,
        "{q}"
    );
}

/// A UUID that names nothing.
fn uuid_like(n: u8) -> String {
    format!("{n:08x}-0000-4000-8000-000000000000")
}

#[test]
fn backup_bad_input_quotas_admin_actions_and_other_projects() {
    let server = Server::start();
    let url = cinder_url(&server);
    let admin = server.admin_token();
    let (project, _, member) = new_member(&server, &admin, "b-proj", "b-user");
    let (_, _, other) = new_member(&server, &admin, "ob-proj", "ob-user");
    let vol = create_volume(&url, &member, json!({"size": 1, "name": "mine"}));

    // Refused requests, each with Cinder's fault; none records anything.
    let mut refused: Vec<String> = Vec::new();
    let mut refuse = |r: Resp, status: u16, key: &str| -> String {
        refused.push(r.request_id().expect("request id").to_string());
        nova_fault(&r, status, key)
    };
    let post =
        |token: &str, body: Value| call("POST", &format!("{url}/backups"), token, Some(&body));
    let msg = refuse(
        post(&member, json!({"backup": {"name": "x"}})),
        400,
        "badRequest",
    );
    assert!(msg.contains("'volume_id' is a required property"), "{msg}");
    refuse(
        post(&member, json!({"backup": {"volume_id": "nope"}})),
        400,
        "badRequest",
    );
    let msg = refuse(
        post(&member, json!({"backup": {"volume_id": vol, "bogus": 1}})),
        400,
        "badRequest",
    );
    assert_eq!(
        msg,
        "Additional properties are not allowed ('bogus' was unexpected)"
    );
    // Metadata only from 3.43.
    refuse(
        cinder_at(
            42,
            "POST",
            &format!("{url}/backups"),
            &member,
            Some(&json!({"backup": {"volume_id": vol, "metadata": {"k": "v"}}})),
        ),
        400,
        "badRequest",
    );
    refuse(
        post(
            &member,
            json!({"backup": {"volume_id": vol, "incremental": "maybe"}}),
        ),
        400,
        "badRequest",
    );
    let msg = refuse(
        post(
            &member,
            json!({"backup": {"volume_id": vol, "incremental": true}}),
        ),
        400,
        "badRequest",
    );
    assert_eq!(
        msg,
        "Invalid backup: No backups available to do an incremental backup."
    );
    let msg = refuse(
        post(&other, json!({"backup": {"volume_id": vol}})),
        404,
        "itemNotFound",
    );
    assert_eq!(msg, format!("Volume {vol} could not be found."));
    // A volume that is not available (an admin marks it in error).
    call(
        "POST",
        &format!("{url}/volumes/{vol}/action"),
        &admin,
        Some(&json!({"os-reset_status": {"status": "error"}})),
    )
    .expect(202);
    let msg = refuse(
        post(&member, json!({"backup": {"volume_id": vol}})),
        400,
        "badRequest",
    );
    assert_eq!(
        msg,
        "Invalid volume: Volume to be backed up must be available or in-use, but the current status is \"error\"."
    );
    call(
        "POST",
        &format!("{url}/volumes/{vol}/action"),
        &admin,
        Some(&json!({"os-reset_status": {"status": "available"}})),
    )
    .expect(202);

    // A backup with metadata (3.43), then updates (3.9; metadata 3.43).
    let b1 = create_backup(
        &url,
        &member,
        json!({"volume_id": vol, "name": "one", "metadata": {"k": "v"}}),
    );
    let b = wait_backup(&url, &member, &b1, "available");
    assert_eq!(b["metadata"], json!({"k": "v"}), "{b}");
    // The project and user attributes are for admins.
    assert!(b.get("os-backup-project-attr:project_id").is_none(), "{b}");
    assert!(b.get("user_id").is_none(), "{b}");
    wait_volume(&url, &member, &vol, "available");
    refuse(
        cinder_at(
            8,
            "PUT",
            &format!("{url}/backups/{b1}"),
            &member,
            Some(&json!({"backup": {"name": "x"}})),
        ),
        404,
        "itemNotFound",
    );
    let u = cinder_at(
        9,
        "PUT",
        &format!("{url}/backups/{b1}"),
        &member,
        Some(&json!({"backup": {"name": "renamed", "description": "d"}})),
    )
    .expect(200)
    .json();
    assert_eq!(u["backup"]["name"], "renamed", "{u}");
    refuse(
        cinder_at(
            9,
            "PUT",
            &format!("{url}/backups/{b1}"),
            &member,
            Some(&json!({"backup": {"metadata": {"a": "b"}}})),
        ),
        400,
        "badRequest",
    );
    call(
        "PUT",
        &format!("{url}/backups/{b1}"),
        &member,
        Some(&json!({"backup": {"metadata": {"a": "b"}}})),
    )
    .expect(200);
    let b = call("GET", &format!("{url}/backups/{b1}"), &member, None)
        .expect(200)
        .json();
    assert_eq!(
        (
            &b["backup"]["name"],
            &b["backup"]["description"],
            &b["backup"]["metadata"]
        ),
        (&json!("renamed"), &json!("d"), &json!({"a": "b"}))
    );

    // Restore refusals.
    let big = create_volume(&url, &member, json!({"size": 2, "name": "big"}));
    let b2 = create_backup(&url, &member, json!({"volume_id": big, "name": "two"}));
    wait_backup(&url, &member, &b2, "available");
    wait_volume(&url, &member, &big, "available");
    let msg = refuse(
        call(
            "POST",
            &format!("{url}/backups/{b2}/restore"),
            &member,
            Some(&json!({"restore": {"volume_id": vol}})),
        ),
        400,
        "badRequest",
    );
    assert_eq!(
        msg,
        "Invalid volume: volume size 1 is too small to restore backup of size 2."
    );
    refuse(
        call(
            "POST",
            &format!("{url}/backups/{b1}/restore"),
            &member,
            Some(&json!({"restore": {"volume_id": vol, "size": 1}})),
        ),
        400,
        "badRequest",
    );
    refuse(
        call(
            "POST",
            &format!("{url}/backups/{b1}/restore"),
            &member,
            Some(&json!({"nothing": {}})),
        ),
        400,
        "badRequest",
    );

    // Listing: filters, sorting, paging; non-admins may only use the backup filters (3.31+).
    let list = call("GET", &format!("{url}/backups"), &member, None)
        .expect(200)
        .json();
    let mut all = ids(&list);
    all.sort();
    let mut want = vec![b1.clone(), b2.clone()];
    want.sort();
    assert_eq!(all, want, "{list}");
    assert_eq!(
        list["backups"][0].as_object().map(|o| o.len()),
        Some(3),
        "summary: {list}"
    );
    let l = call(
        "GET",
        &format!("{url}/backups/detail?volume_id={big}"),
        &member,
        None,
    )
    .expect(200)
    .json();
    assert_eq!(ids(&l), [b2.as_str()], "{l}");
    assert_eq!(l["backups"][0]["status"], "available", "{l}");
    let l = call("GET", &format!("{url}/backups?name=renamed"), &member, None)
        .expect(200)
        .json();
    assert_eq!(ids(&l), [b1.as_str()], "{l}");
    let l = call(
        "GET",
        &format!("{url}/backups?sort=name:asc&limit=1"),
        &member,
        None,
    )
    .expect(200)
    .json();
    assert_eq!(ids(&l), [b1.as_str()], "{l}");
    assert!(l["backups_links"][0]["href"]
        .as_str()
        .unwrap()
        .contains(&format!("marker={b1}")));
    let l = call(
        "GET",
        &format!("{url}/backups?sort=name:asc&marker={b1}"),
        &member,
        None,
    )
    .expect(200)
    .json();
    assert_eq!(ids(&l), [b2.as_str()], "{l}");
    refuse(
        call("GET", &format!("{url}/backups?bogus=1"), &member, None),
        400,
        "badRequest",
    );

    // Other projects see nothing of these backups; admins see them with all_tenants.
    let l = call("GET", &format!("{url}/backups/detail"), &other, None)
        .expect(200)
        .json();
    assert_eq!(l["backups"], json!([]), "{l}");
    let msg = refuse(
        call("GET", &format!("{url}/backups/{b1}"), &other, None),
        404,
        "itemNotFound",
    );
    assert_eq!(msg, format!("Backup {b1} could not be found."));
    refuse(
        call("DELETE", &format!("{url}/backups/{b1}"), &other, None),
        404,
        "itemNotFound",
    );
    refuse(
        call(
            "POST",
            &format!("{url}/backups/{b1}/restore"),
            &other,
            Some(&json!({"restore": {"name": "stolen"}})),
        ),
        404,
        "itemNotFound",
    );
    refuse(
        call(
            "PUT",
            &format!("{url}/backups/{b1}"),
            &other,
            Some(&json!({"backup": {"name": "x"}})),
        ),
        404,
        "itemNotFound",
    );
    let l = call("GET", &format!("{url}/backups"), &admin, None)
        .expect(200)
        .json();
    assert_eq!(
        l["backups"],
        json!([]),
        "the admin's own project has none: {l}"
    );
    let l = call(
        "GET",
        &format!("{url}/backups/detail?all_tenants=1&project_id={project}"),
        &admin,
        None,
    )
    .expect(200)
    .json();
    assert_eq!(l["backups"].as_array().unwrap().len(), 2, "{l}");
    assert_eq!(
        l["backups"][0]["os-backup-project-attr:project_id"],
        project.as_str(),
        "{l}"
    );

    // Admin actions.
    let action = |token: &str, id: &str, body: Value| {
        call(
            "POST",
            &format!("{url}/backups/{id}/action"),
            token,
            Some(&body),
        )
    };
    refuse(
        action(
            &member,
            &b1,
            json!({"os-reset_status": {"status": "error"}}),
        ),
        403,
        "forbidden",
    );
    refuse(
        action(&member, &b1, json!({"os-force_delete": {}})),
        403,
        "forbidden",
    );
    refuse(
        action(
            &admin,
            &b1,
            json!({"os-reset_status": {"status": "creating"}}),
        ),
        400,
        "badRequest",
    );
    action(&admin, &b1, json!({"os-reset_status": {"status": "error"}})).expect(202);
    let b = call("GET", &format!("{url}/backups/{b1}"), &member, None)
        .expect(200)
        .json();
    assert_eq!(b["backup"]["status"], "error", "{b}");
    let msg = refuse(
        call(
            "POST",
            &format!("{url}/backups/{b1}/restore"),
            &member,
            Some(&json!({"restore": {"volume_id": vol}})),
        ),
        400,
        "badRequest",
    );
    assert_eq!(msg, "Invalid backup: Backup status must be available");

    // Quotas: the number of backups, then their gigabytes (3 of 1 + 2 GB used).
    call(
        "PUT",
        &format!("{url}/os-quota-sets/{project}"),
        &admin,
        Some(&json!({"quota_set": {"backups": 2}})),
    )
    .expect(200);
    let msg = refuse(
        post(&member, json!({"backup": {"volume_id": vol}})),
        413,
        "overLimit",
    );
    assert_eq!(msg, "Maximum number of backups allowed (2) exceeded");
    call(
        "PUT",
        &format!("{url}/os-quota-sets/{project}"),
        &admin,
        Some(&json!({"quota_set": {"backups": 10, "backup_gigabytes": 3}})),
    )
    .expect(200);
    let msg = refuse(
        post(&member, json!({"backup": {"volume_id": big}})),
        413,
        "overLimit",
    );
    assert_eq!(
        msg,
        "Requested backup exceeds allowed Backup gigabytes quota. Requested 2G, quota is 3G and 3G has been consumed."
    );
    // A restore into a new volume needs volume quota.
    call(
        "PUT",
        &format!("{url}/os-quota-sets/{project}"),
        &admin,
        Some(&json!({"quota_set": {"volumes": 2}})),
    )
    .expect(200);
    refuse(
        call(
            "POST",
            &format!("{url}/backups/{b2}/restore"),
            &member,
            Some(&json!({"restore": {"name": "third"}})),
        ),
        413,
        "overLimit",
    );
    let l = call("GET", &format!("{url}/volumes"), &member, None)
        .expect(200)
        .json();
    assert_eq!(l["volumes"].as_array().unwrap().len(), 2, "{l}");

    // Force delete (admin) takes a backup in error.
    action(&admin, &b1, json!({"os-force_delete": {}})).expect(202);
    wait_gone(&url, &member, &format!("backups/{b1}"));
    call("DELETE", &format!("{url}/backups/{b2}"), &member, None).expect(202);
    wait_gone(&url, &member, &format!("backups/{b2}"));

    // None of the refused requests recorded anything.
    let events = server.log_dump().expect("log dump");
    let touched: Vec<String> = events
        .iter()
        .filter(|e| refused.iter().any(|r| ev_correlation(e) == r))
        .map(|e| ev_type(e).to_string())
        .collect();
    assert!(touched.is_empty(), "refused requests recorded {touched:?}");
    assert!(refused.len() > 20, "{}", refused.len());
}
