//! Acceptance: Cinder volumes with Nova servers through the real `openstack` CLI — volumes made from an
//! image, a snapshot and another volume on a qcow2 backend (checked on disk with `qemu-img info`), boot
//! from a volume and from a new volume, add/remove a volume, and an image made from a volume. Waits poll
//! over HTTP; error cases are in compute_volumes_http.rs and volume_http.rs.

use std::path::Path;
use std::process::Command;

use crate::common::nova::*;
use crate::common::*;
use serde_json::Value;

const GIB: u64 = 1 << 30;

/// `qemu-img info` of a volume's backing file: (format, virtual size in bytes).
fn qemu_info(path: &Path) -> (String, u64) {
    let out = Command::new("qemu-img")
        .args(["info", "--output=json"])
        .arg(path)
        .output()
        .expect("qemu-img runs");
    assert!(out.status.success(), "qemu-img info {}", path.display());
    let v: Value = serde_json::from_slice(&out.stdout).expect("qemu-img json");
    (
        v["format"].as_str().unwrap_or_default().to_string(),
        v["virtual-size"].as_u64().unwrap_or_default(),
    )
}

#[test]
fn volumes_and_servers_through_the_openstack_cli() {
    let Some(_cli) = require_cli() else { return };
    let server = Server::start_with_args(&[
        "--fake-hosts",
        "1",
        "--volume-backend",
        "raw-1:file:50:raw",
        "--volume-backend",
        "qcow-1:file:50:qcow2",
    ]);
    let os = |args: &[&str]| ok(&server, &args.join(" "), openstack(&server, args));
    let osj = |args: &[&str]| ok(&server, &args.join(" "), openstack_json(&server, args));
    let nova = nova_url(&server);
    let cinder = cinder_url(&server);
    let token = server.admin_token();
    let file_of = |backend: &str, id: &str| {
        server
            .data_dir()
            .join("volumes")
            .join(backend)
            .join(format!("volume-{id}"))
    };

    cli_cirros_and_tiny(&server, 256 * 1024);

    // A type that lands on the qcow2 backend; a volume from the image, then from its snapshot and from it.
    os(&[
        "volume",
        "type",
        "create",
        "--property",
        "volume_backend_name=qcow-1",
        "cow",
    ]);
    let v = osj(&[
        "volume", "create", "--image", "cirros", "--size", "2", "--type", "cow", "root",
    ]);
    let root = v["id"].as_str().unwrap().to_string();
    let shown = wait_volume(&cinder, &token, &root, "available");
    assert_eq!(shown["bootable"], "true", "{shown}");
    assert_eq!(
        qemu_info(&file_of("qcow-1", &root)),
        ("qcow2".to_string(), 2 * GIB)
    );
    osj(&["volume", "snapshot", "create", "--volume", "root", "snap"]);
    let snap = osj(&["volume", "snapshot", "show", "snap"]);
    let mut status = snap["status"].as_str().unwrap_or_default().to_string();
    for _ in 0..50 {
        if status == "available" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
        status = osj(&["volume", "snapshot", "show", "snap"])["status"]
            .as_str()
            .unwrap_or_default()
            .to_string();
    }
    assert_eq!(status, "available");
    let from_snap = osj(&["volume", "create", "--snapshot", "snap", "from-snap"]);
    let from_snap = from_snap["id"].as_str().unwrap().to_string();
    let clone = osj(&[
        "volume", "create", "--source", "root", "--size", "3", "copy",
    ]);
    let clone = clone["id"].as_str().unwrap().to_string();
    wait_volume(&cinder, &token, &from_snap, "available");
    wait_volume(&cinder, &token, &clone, "available");
    assert_eq!(
        qemu_info(&file_of("qcow-1", &clone)),
        ("qcow2".to_string(), 3 * GIB)
    );
    // A plain volume on the raw backend (the default type goes to the roomiest backend).
    let plain = osj(&["volume", "create", "--size", "1", "data"]);
    let plain = plain["id"].as_str().unwrap().to_string();
    let plain_row = wait_volume(&cinder, &token, &plain, "available");
    let backend = plain_row["os-vol-host-attr:host"]
        .as_str()
        .and_then(|h| h.rsplit('#').next())
        .unwrap_or_default()
        .to_string();
    let (format, size) = qemu_info(&file_of(&backend, &plain));
    assert_eq!(size, GIB);
    assert_eq!(format, if backend == "raw-1" { "raw" } else { "qcow2" });

    // Boot from the existing volume, and from a new 2 GB volume made from the image.
    let s1 = osj(&[
        "server",
        "create",
        "--flavor",
        "m1.tiny",
        "--volume",
        "from-snap",
        "--nic",
        "none",
        "--wait",
        "bfv1",
    ]);
    assert_eq!(s1["status"], "ACTIVE", "{s1}");
    let s1_id = s1["id"].as_str().unwrap().to_string();
    wait_volume(&cinder, &token, &from_snap, "in-use");
    let s2 = osj(&[
        "server",
        "create",
        "--flavor",
        "m1.tiny",
        "--image",
        "cirros",
        "--boot-from-volume",
        "2",
        "--nic",
        "none",
        "--wait",
        "bfv2",
    ]);
    assert_eq!(s2["status"], "ACTIVE", "{s2}");
    let s2_id = s2["id"].as_str().unwrap().to_string();
    let attached = show(&nova, &token, &s2_id).expect(200).json();
    let boot_volume = attached["server"]["os-extended-volumes:volumes_attached"][0]["id"]
        .as_str()
        .expect("a boot volume")
        .to_string();
    let bv = wait_volume(&cinder, &token, &boot_volume, "in-use");
    assert_eq!(bv["size"], 2, "{bv}");

    // Add and remove a data volume.
    os(&["server", "add", "volume", "bfv2", "data"]);
    let d = wait_volume(&cinder, &token, &plain, "in-use");
    assert_eq!(d["attachments"][0]["server_id"], s2_id.as_str(), "{d}");
    os(&["server", "remove", "volume", "bfv2", "data"]);
    wait_volume(&cinder, &token, &plain, "available");

    // An image from a volume (os-volume_upload_image).
    os(&["image", "create", "--volume", "copy", "from-volume"]);
    let mut img = Value::Null;
    for _ in 0..100 {
        img = osj(&["image", "show", "from-volume"]);
        if img["status"] == "active" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(img["status"], "active", "{img}");
    wait_volume(&cinder, &token, &clone, "available");

    // Deleting the servers gives the volumes back (the new boot volume was not delete_on_termination).
    os(&["server", "delete", "--wait", "bfv1", "bfv2"]);
    wait_gone(&nova, &token, &s1_id);
    wait_volume(&cinder, &token, &from_snap, "available");
    wait_volume(&cinder, &token, &boot_volume, "available");
}
