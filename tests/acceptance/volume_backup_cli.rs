//! Acceptance: Cinder backups through the real `openstack` CLI (python-openstackclient 10.5.0 on
//! openstacksdk): `volume backup create` full and `--incremental`, `list`, `set`, `show`, `restore` into a new
//! volume (whose data must equal what was backed up), `delete`. Waiting is done over HTTP to keep the
//! number of CLI calls (seconds each) small; error cases are in volume_backup_http.rs.

use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::common::nova::*;
use crate::common::*;
use serde_json::Value;

/// Poll `GET <cinder>/<path>` until `done` holds; returns the resource under `key`.
fn wait_http(server: &Server, token: &str, path: &str, key: &str, done: impl Fn(&Value) -> bool) {
    let url = format!(
        "{}/{path}",
        server.endpoint("volume").expect("volume endpoint")
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = get(&url, Some(token));
        let v = if r.status == 200 {
            r.json()[key].clone()
        } else {
            serde_json::json!({ "http_status": r.status })
        };
        if done(&v) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{path} never reached the expected state: {v}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn write_at(path: &PathBuf, offset: u64, data: &[u8]) {
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(data, offset).unwrap();
    f.sync_all().unwrap();
}

fn read_at(path: &PathBuf, offset: u64, len: usize) -> Vec<u8> {
    let f = std::fs::File::open(path).unwrap();
    let mut buf = vec![0; len];
    f.read_exact_at(&mut buf, offset).unwrap();
    buf
}

#[test]
fn volume_backups_through_the_openstack_cli() {
    let Some(_cli) = require_cli() else { return };
    let server = Server::start();
    let token = server.admin_token();
    let osj = |args: &[&str]| ok(&server, &args.join(" "), openstack_json(&server, args));
    let os = |args: &[&str]| ok(&server, &args.join(" "), openstack(&server, args));

    let v = osj(&["volume", "create", "--size", "1", "bv"]);
    let vol = v["id"].as_str().unwrap().to_string();
    wait_http(&server, &token, &format!("volumes/{vol}"), "volume", |v| {
        v["status"] == "available"
    });
    let file = volume_file(&server, &vol);
    let (first, second) = (random_bytes(100_000), random_bytes(50_000));
    write_at(&file, 0, &first);

    let b1 = osj(&["volume", "backup", "create", "--name", "b1", "bv"]);
    assert_eq!(b1["name"], "b1", "{b1}");
    assert_eq!(b1["volume_id"], vol.as_str(), "{b1}");
    let b1 = b1["id"].as_str().unwrap().to_string();
    wait_http(&server, &token, &format!("backups/{b1}"), "backup", |b| {
        b["status"] == "available"
    });
    wait_http(&server, &token, &format!("volumes/{vol}"), "volume", |v| {
        v["status"] == "available"
    });

    write_at(&file, 4 << 20, &second);
    let b2 = osj(&[
        "volume",
        "backup",
        "create",
        "--incremental",
        "--name",
        "b2",
        "bv",
    ]);
    let b2 = b2["id"].as_str().unwrap().to_string();
    wait_http(&server, &token, &format!("backups/{b2}"), "backup", |b| {
        b["status"] == "available"
    });

    let list = osj(&["volume", "backup", "list"]);
    let rows = list.as_array().expect("a list");
    assert_eq!(rows.len(), 2, "{list}");
    let incremental = |name: &str| {
        rows.iter()
            .find(|r| r["Name"] == name)
            .map(|r| r["Incremental"].clone())
    };
    assert_eq!(incremental("b1"), Some(Value::Bool(false)), "{list}");
    assert_eq!(incremental("b2"), Some(Value::Bool(true)), "{list}");

    os(&[
        "volume",
        "backup",
        "set",
        "--name",
        "b2-renamed",
        "--property",
        "k=v",
        "b2",
    ]);
    let shown = osj(&["volume", "backup", "show", "b2-renamed"]);
    assert_eq!(shown["id"], b2.as_str(), "{shown}");
    assert!(shown["metadata"].to_string().contains("\"k\""), "{shown}");
    assert_eq!(shown["status"], "available", "{shown}");
    assert_eq!(shown["is_incremental"], true, "{shown}");
    assert_eq!(shown["volume_id"], vol.as_str(), "{shown}");

    // A name that is no volume yet: the backup goes into a new volume of that name.
    let restored = osj(&["volume", "backup", "restore", "b2-renamed", "bv2"]);
    assert_eq!(restored["volume_name"], "bv2", "{restored}");
    let vol2 = restored["volume_id"].as_str().unwrap().to_string();
    wait_http(&server, &token, &format!("volumes/{vol2}"), "volume", |v| {
        v["status"] == "available"
    });
    let file2 = volume_file(&server, &vol2);
    assert_eq!(read_at(&file2, 0, first.len()), first);
    assert_eq!(read_at(&file2, 4 << 20, second.len()), second);
    assert_eq!(
        std::fs::metadata(&file2).unwrap().len(),
        std::fs::metadata(&file).unwrap().len()
    );
    wait_http(&server, &token, &format!("backups/{b2}"), "backup", |b| {
        b["status"] == "available"
    });

    // The incremental one first: the full one is its parent.
    os(&["volume", "backup", "delete", "b2-renamed"]);
    wait_http(&server, &token, &format!("backups/{b2}"), "backup", |b| {
        b["http_status"] == 404
    });
    os(&["volume", "backup", "delete", "b1"]);
    wait_http(&server, &token, &format!("backups/{b1}"), "backup", |b| {
        b["http_status"] == 404
    });
}
