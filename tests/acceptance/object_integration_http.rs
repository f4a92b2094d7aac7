//! Swift underneath the other services, through the real binary: Glance's `swift` store (multi-store
//! selection per image by `X-Image-Meta-Store` and by import `stores`, `/v2/info/stores`, the bytes as an
//! ordinary object of the `service` project's account, a Swift-stored image booting a server) and Cinder's
//! swift backup target (`--backup-target swift`: full and incremental backups as objects of the project's
//! account, restored byte-identical, deleted with their objects). One `openstack` CLI scenario per part
//! (with `--image-default-store swift`, and with `--backup-target swift`).

use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use crate::common::nova::*;
use crate::common::swift::*;
use crate::common::*;
use serde_json::{json, Value};

const MIB: u64 = 1 << 20;

fn glance(server: &Server) -> String {
    server
        .endpoint("image")
        .expect("image endpoint")
        .to_string()
}

fn image_json(server: &Server, token: &str, id: &str) -> Value {
    get(&format!("{}/v2/images/{id}", glance(server)), Some(token))
        .expect(200)
        .json()
}

fn wait_image(server: &Server, token: &str, id: &str, status: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = image_json(server, token, id);
        if v["status"] == status {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "image {id} never became {status}: {v}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn new_image(server: &Server, token: &str, name: &str) -> String {
    post(
        &format!("{}/v2/images", glance(server)),
        Some(token),
        &json!({"name": name, "disk_format": "raw", "container_format": "bare", "visibility": "public"}),
    )
    .expect(201)
    .json()["id"]
        .as_str()
        .expect("image id")
        .to_string()
}

fn put_data(server: &Server, token: &str, path: &str, store: Option<&str>, data: &[u8]) -> RawResp {
    let mut headers = vec![
        ("X-Auth-Token", token),
        ("Content-Type", "application/octet-stream"),
    ];
    if let Some(s) = store {
        headers.push(("X-Image-Meta-Store", s));
    }
    request_bytes(
        "PUT",
        &format!("{}/v2/images/{path}", glance(server)),
        &headers,
        Some(data),
    )
    .expect("image data request")
}

/// The `glance` container of the `service` project's account, as the admin (a reseller) sees it.
fn service_account(server: &Server, token: &str) -> Account {
    let service = project_id_of(server, token, "service");
    Account {
        url: server.swift_account_url(&service),
        token: Some(token.to_string()),
    }
}

#[test]
fn images_in_the_swift_store_are_objects_and_boot_servers() {
    let mut server = Server::start();
    let token = server.admin_token();
    let g = glance(&server);

    // Both stores are enabled, `file` the default.
    let stores = get(&format!("{g}/v2/info/stores"), Some(&token))
        .expect(200)
        .json();
    let ids: Vec<&str> = stores["stores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["file", "swift"], "{stores}");
    assert_eq!(stores["stores"][0]["default"], true, "{stores}");
    assert!(stores["stores"][1].get("default").is_none(), "{stores}");

    // An upload naming the swift store lands there, as an object of the service account.
    let data = random_bytes(300_000);
    let id = new_image(&server, &token, "in-swift");
    put_data(&server, &token, &format!("{id}/file"), Some("swift"), &data).expect(204);
    let v = wait_image(&server, &token, &id, "active");
    assert_eq!(v["stores"], "swift", "{v}");
    assert_eq!(v["checksum"], md5_hex(&data), "{v}");
    assert_eq!(v["size"], data.len() as u64, "{v}");
    let svc = service_account(&server, &token);
    let obj = svc.get(&format!("glance/{id}"));
    assert_eq!(obj.status, 200, "{}", obj.describe());
    assert!(obj.body == data, "the object holds the image's bytes");
    assert_eq!(obj.header("etag"), Some(md5_hex(&data).as_str()));
    // Glance reads it back from there.
    let back = request_bytes(
        "GET",
        &format!("{g}/v2/images/{id}/file"),
        &[("X-Auth-Token", &token)],
        None,
    )
    .unwrap()
    .expect(200);
    assert!(back.body == data, "download is byte-identical");
    // A plain upload goes to the default store; no object appears for it.
    let plain = upload_image(&server, &token, "in-file", b"file store bytes");
    assert_eq!(image_json(&server, &token, &plain)["stores"], "file");
    assert_eq!(svc.get(&format!("glance/{plain}")).status, 404);

    // An unknown store is refused before anything changes.
    let other = new_image(&server, &token, "nowhere");
    let r = put_data(
        &server,
        &token,
        &format!("{other}/file"),
        Some("tape"),
        b"x",
    );
    assert_eq!(r.status, 400, "{}", r.describe());
    assert_eq!(image_json(&server, &token, &other)["status"], "queued");

    // Import: `stores` picks the store; more than one store is refused (one place per image).
    let staged = random_bytes(50_000);
    let imp = new_image(&server, &token, "imported");
    put_data(&server, &token, &format!("{imp}/stage"), None, &staged).expect(204);
    let r = post(
        &format!("{g}/v2/images/{imp}/import"),
        Some(&token),
        &json!({"method": {"name": "glance-direct"}, "stores": ["file", "swift"]}),
    );
    assert_eq!(r.status, 400, "{}", r.describe());
    let r = post(
        &format!("{g}/v2/images/{imp}/import"),
        Some(&token),
        &json!({"method": {"name": "glance-direct"}, "stores": ["tape"]}),
    );
    assert_eq!(r.status, 400, "{}", r.describe());
    post(
        &format!("{g}/v2/images/{imp}/import"),
        Some(&token),
        &json!({"method": {"name": "glance-direct"}, "stores": ["swift"]}),
    )
    .expect(202);
    let v = wait_image(&server, &token, &imp, "active");
    assert_eq!(v["stores"], "swift", "{v}");
    assert!(svc.get(&format!("glance/{imp}")).body == staged);

    // Deleting the data from its only store is refused; another store does not hold it.
    let r = request(
        "DELETE",
        &format!("{g}/v2/stores/swift/{id}"),
        Some(&token),
        None,
    );
    assert_eq!(r.status, 409, "{}", r.describe());
    let r = request(
        "DELETE",
        &format!("{g}/v2/stores/file/{id}"),
        Some(&token),
        None,
    );
    assert_eq!(r.status, 404, "{}", r.describe());

    // A server boots from the swift-stored image (the compute host's cache fetches it from Swift).
    let nova = nova_url(&server);
    let flavor = create_flavor(&nova, &token, "m1.tiny", 1, 512, 1);
    let vm = boot(&nova, &token, "from-swift", &flavor, &id, json!({}));
    let s = wait_status(&nova, &token, &vm, "ACTIVE");
    assert_eq!(s["image"]["id"], id.as_str(), "{s}");

    // Deleting the image deletes its object.
    request(
        "DELETE",
        &format!("{g}/v2/images/{imp}"),
        Some(&token),
        None,
    )
    .expect(204);
    assert_eq!(svc.get(&format!("glance/{imp}")).status, 404);

    server.kill();
    let events = server.log_dump().expect("log dump");
    assert!(
        events
            .iter()
            .any(|e| ev_type(e) == "compute.HostImageCached.v1"
                && serde_json::to_string(e).unwrap().contains(&id)),
        "the host cached the swift-stored image"
    );
    let out = server.replay_verify();
    assert!(out.success, "{}", out.all_text());
}

#[test]
fn images_into_the_swift_store_with_the_cli() {
    let Some(_cli) = require_cli() else { return };
    let server = Server::start_with_args(&["--image-default-store", "swift"]);
    let token = server.admin_token();
    let stores = get(&format!("{}/v2/info/stores", glance(&server)), Some(&token))
        .expect(200)
        .json();
    assert_eq!(stores["stores"][1]["id"], "swift", "{stores}");
    assert_eq!(stores["stores"][1]["default"], true, "{stores}");
    // A plain `image create --file` goes to the default store, now swift.
    let file = server.dir().join("disk.raw");
    let bytes = random_bytes(30_000);
    std::fs::write(&file, &bytes).unwrap();
    let created = ok(
        &server,
        "image create --file",
        openstack_json(
            &server,
            &[
                "image",
                "create",
                "--disk-format",
                "raw",
                "--container-format",
                "bare",
                "--file",
                file.to_str().unwrap(),
                "plain",
            ],
        ),
    );
    let plain = created["id"].as_str().unwrap().to_string();
    let v = wait_image(&server, &token, &plain, "active");
    assert_eq!(v["stores"], "swift", "{v}");
    assert!(
        service_account(&server, &token)
            .get(&format!("glance/{plain}"))
            .body
            == bytes
    );
    // An import naming a store.
    let data = random_bytes(20_000);
    let id = new_image(&server, &token, "cli-import");
    put_data(&server, &token, &format!("{id}/stage"), None, &data).expect(204);
    ok(
        &server,
        "image import --store swift",
        openstack(
            &server,
            // `--store` takes any number of values: the image goes first.
            &[
                "image",
                "import",
                &id,
                "--method",
                "glance-direct",
                "--store",
                "swift",
            ],
        ),
    );
    let v = wait_image(&server, &token, &id, "active");
    assert_eq!(v["stores"], "swift", "{v}");
    let shown = ok(
        &server,
        "image show",
        openstack_json(&server, &["image", "show", &id]),
    );
    // The CLI shows `stores` among the image's properties.
    assert_eq!(shown["properties"]["stores"], "swift", "{shown}");
    assert!(
        service_account(&server, &token)
            .get(&format!("glance/{id}"))
            .body
            == data
    );
}

// ---- backups ----

fn cinder_call(method: &str, url: &str, token: &str, body: Option<&Value>) -> Resp {
    let body = body.map(Value::to_string);
    request_raw(
        method,
        url,
        &[
            ("X-Auth-Token", token),
            ("OpenStack-API-Version", "volume 3.64"),
        ],
        body.as_deref(),
    )
    .unwrap_or_else(|e| panic!("HTTP transport error: {e}"))
}

fn wait_backup(url: &str, token: &str, id: &str, status: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = cinder_call("GET", &format!("{url}/backups/{id}"), token, None);
        let v = if r.status == 200 {
            r.json()["backup"].clone()
        } else {
            json!({ "http_status": r.status })
        };
        if v["status"] == status || (status == "gone" && v["http_status"] == 404) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "backup {id} never became {status}: {v}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A 1 GiB volume on the default backend, once available; returns its id.
fn new_volume(url: &str, token: &str, name: &str) -> String {
    let id = cinder_call(
        "POST",
        &format!("{url}/volumes"),
        token,
        Some(&json!({"volume": {"size": 1, "name": name}})),
    )
    .expect(202)
    .json()["volume"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_volume(url, token, &id, "available");
    id
}

/// Start a backup; returns its id.
fn new_backup(url: &str, token: &str, body: Value) -> String {
    cinder_call(
        "POST",
        &format!("{url}/backups"),
        token,
        Some(&json!({ "backup": body })),
    )
    .expect(202)
    .json()["backup"]["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The objects of backup `id` in `container` of `account`.
fn backup_objects(account: &Account, container: &str, id: &str) -> Vec<String> {
    let r = account.get(&format!("{container}?prefix={id}/&format=json"));
    if r.status == 404 {
        return Vec::new();
    }
    assert_eq!(r.status, 200, "{}", r.describe());
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn backups_in_the_swift_target_are_objects_and_restore() {
    let server = Server::start_with_args(&["--backup-target", "swift"]);
    let token = server.admin_token();
    let url = cinder_url(&server);
    let account = Account::admin(&server);

    let vol = new_volume(&url, &token, "src");
    let file = volume_file(&server, &vol);
    let f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
    let (a0, a1) = (random_bytes(64 << 10), random_bytes(5000));
    f.write_all_at(&a0, 0).unwrap();
    f.write_all_at(&a1, 3 * MIB + 7).unwrap();
    f.sync_all().unwrap();

    // A full backup: the manifest and two chunks become objects of the project's account.
    let full = new_backup(&url, &token, json!({"volume_id": vol, "name": "full"}));
    let b = wait_backup(&url, &token, &full, "available");
    assert_eq!(b["container"], "volumebackups", "{b}");
    assert_eq!(b["object_count"], 2, "{b}");
    let objs = backup_objects(&account, "volumebackups", &full);
    assert_eq!(objs.len(), 3, "manifest and two chunks: {objs:?}");
    assert!(objs.contains(&format!("{full}/manifest.json")), "{objs:?}");
    let local = server
        .data_dir()
        .join("volumes")
        .join("backups")
        .join(&full);
    assert!(!local.exists(), "no local copy is kept");
    wait_volume(&url, &token, &vol, "available");

    // An incremental one, into a container the request names: only the changed chunk is stored.
    let b1 = random_bytes(3000);
    f.write_all_at(&b1, 3 * MIB + 7).unwrap();
    f.sync_all().unwrap();
    let incr = new_backup(
        &url,
        &token,
        json!({"volume_id": vol, "name": "incr", "incremental": true, "container": "nightly"}),
    );
    let b = wait_backup(&url, &token, &incr, "available");
    assert_eq!(
        (b["container"].as_str(), b["object_count"].as_u64()),
        (Some("nightly"), Some(1)),
        "{b}"
    );
    assert_eq!(backup_objects(&account, "nightly", &incr).len(), 2);
    wait_volume(&url, &token, &vol, "available");

    // Restoring the incremental one into a new volume reads both backups back from Swift.
    let r = cinder_call(
        "POST",
        &format!("{url}/backups/{incr}/restore"),
        &token,
        Some(&json!({"restore": {"name": "restored"}})),
    )
    .expect(202)
    .json();
    let restored = r["restore"]["volume_id"].as_str().unwrap().to_string();
    wait_volume(&url, &token, &restored, "available");
    let mut expected = vec![0u8; (4 * MIB) as usize];
    expected[..a0.len()].copy_from_slice(&a0);
    let at = (3 * MIB + 7) as usize;
    expected[at..at + a1.len()].copy_from_slice(&a1);
    expected[at..at + b1.len()].copy_from_slice(&b1);
    let mut got = vec![0u8; expected.len()];
    std::fs::File::open(volume_file(&server, &restored))
        .unwrap()
        .read_exact_at(&mut got, 0)
        .unwrap();
    assert!(
        got == expected,
        "the restored volume holds the backed-up data"
    );
    let leftovers: Vec<_> = std::fs::read_dir(server.data_dir().join("volumes").join("backups"))
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "downloads removed: {leftovers:?}");

    // Deleting (incremental first) removes the objects.
    cinder_call("DELETE", &format!("{url}/backups/{incr}"), &token, None).expect(202);
    wait_backup(&url, &token, &incr, "gone");
    assert!(backup_objects(&account, "nightly", &incr).is_empty());
    cinder_call("DELETE", &format!("{url}/backups/{full}"), &token, None).expect(202);
    wait_backup(&url, &token, &full, "gone");
    assert!(backup_objects(&account, "volumebackups", &full).is_empty());
}

#[test]
fn a_backup_made_with_the_cli_lands_in_swift() {
    let Some(_cli) = require_cli() else { return };
    let server = Server::start_with_args(&["--backup-target", "swift"]);
    let token = server.admin_token();
    let url = cinder_url(&server);
    let vol = new_volume(&url, &token, "cli-src");
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(volume_file(&server, &vol))
        .unwrap();
    f.write_all_at(b"backed up through the CLI", 0).unwrap();
    f.sync_all().unwrap();
    let b = ok(
        &server,
        "volume backup create",
        openstack_json(
            &server,
            &[
                "volume",
                "backup",
                "create",
                "--container",
                "cli-backups",
                "--name",
                "b1",
                &vol,
            ],
        ),
    );
    let id = b["id"].as_str().unwrap().to_string();
    wait_backup(&url, &token, &id, "available");
    let listed = ok(
        &server,
        "object list",
        openstack_json(&server, &["object", "list", "cli-backups"]),
    );
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["Name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "manifest and one chunk: {listed}");
    assert!(
        names.contains(&format!("{id}/manifest.json").as_str()),
        "{listed}"
    );
}
