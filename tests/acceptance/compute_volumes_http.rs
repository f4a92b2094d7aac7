//! Volumes attached to servers: Nova's os-volume_attachments with Cinder's volumes, through the real binary.
//! The attachment is one record (on the volume's stream) that both APIs show.

use crate::common::nova::*;
use crate::common::*;
use serde_json::{json, Value};

#[test]
fn attach_and_detach_a_volume_and_delete_the_server() {
    let server = Server::start_with_args(&["--fake-hosts", "1"]);
    let nova = nova_url(&server);
    let cinder = cinder_url(&server);
    let token = server.admin_token();
    let flavor = create_flavor(&nova, &token, "m1.tiny", 1, 512, 1);
    let image = upload_image(&server, &token, "cirros", &random_bytes(64 * 1024));
    let id = boot(&nova, &token, "vm", &flavor, &image, json!({}));
    wait_status(&nova, &token, &id, "ACTIVE");
    let v = post(
        &format!("{cinder}/volumes"),
        Some(&token),
        &json!({"volume": {"size": 1, "name": "data"}}),
    )
    .expect(202)
    .json();
    let vol = v["volume"]["id"].as_str().unwrap().to_string();
    wait_volume(&cinder, &token, &vol, "available");

    let url = format!("{nova}/servers/{id}/os-volume_attachments");
    let a = post(
        &url,
        Some(&token),
        &json!({"volumeAttachment": {"volumeId": vol}}),
    )
    .expect(200)
    .json();
    assert_eq!(a["volumeAttachment"]["device"], "/dev/vdb", "{a}");
    // Both sides show the attachment.
    let v = wait_volume(&cinder, &token, &vol, "in-use");
    assert_eq!(v["attachments"][0]["server_id"], id.as_str(), "{v}");
    assert!(
        v["attachments"][0]["attached_at"].is_string(),
        "the attachment shows when it was made: {v}"
    );
    let list = get(&url, Some(&token)).expect(200).json();
    assert_eq!(
        list["volumeAttachments"][0]["volumeId"],
        vol.as_str(),
        "{list}"
    );
    let s = show(&nova, &token, &id).expect(200).json();
    assert_eq!(
        s["server"]["os-extended-volumes:volumes_attached"][0]["id"],
        vol.as_str(),
        "{s}"
    );
    // A second attach of the same volume is refused; an unknown volume is a 404.
    let r = post(
        &url,
        Some(&token),
        &json!({"volumeAttachment": {"volumeId": vol}}),
    );
    assert_eq!(r.status, 400, "{}", r.describe());
    let r = post(
        &url,
        Some(&token),
        &json!({"volumeAttachment": {"volumeId": "nope"}}),
    );
    nova_fault(&r, 404, "itemNotFound");
    // Detach, attach again, then delete the server: the volume is available again.
    delete(&format!("{url}/{vol}"), Some(&token)).expect(202);
    wait_volume(&cinder, &token, &vol, "available");
    post(
        &url,
        Some(&token),
        &json!({"volumeAttachment": {"volumeId": vol, "device": "/dev/vdc"}}),
    )
    .expect(200);
    wait_volume(&cinder, &token, &vol, "in-use");
    delete(&format!("{nova}/servers/{id}"), Some(&token)).expect(204);
    wait_gone(&nova, &token, &id);
    let v = wait_volume(&cinder, &token, &vol, "available");
    assert_eq!(v["attachments"], json!([]), "{v}");
}

fn console(nova: &str, token: &str, id: &str) -> String {
    action(nova, token, id, json!({"os-getConsoleOutput": {}}))
        .expect(200)
        .json()["output"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn volume_count(cinder: &str, token: &str) -> usize {
    get(&format!("{cinder}/volumes"), Some(token))
        .expect(200)
        .json()["volumes"]
        .as_array()
        .map_or(0, Vec::len)
}

/// Boot from a new volume made from an image and from an existing volume; the attachments follow a cold
/// migration; deleting the servers detaches their volumes and deletes the delete_on_termination one.
#[test]
fn boot_from_volume_and_volumes_follow_the_server() {
    let server = Server::start_with_args(&["--fake-hosts", "2"]);
    let nova = nova_url(&server);
    let cinder = cinder_url(&server);
    let token = server.admin_token();
    let flavor = create_flavor(&nova, &token, "m1.bfv", 1, 512, 1);
    let image = upload_image(&server, &token, "cirros", &random_bytes(64 * 1024));

    // From an image, into a new 1 GB volume that goes with the server.
    let bdm = json!([{"uuid": image, "source_type": "image", "destination_type": "volume",
        "boot_index": 0, "volume_size": 1, "delete_on_termination": true}]);
    let a = boot(
        &nova,
        &token,
        "bfv-a",
        &flavor,
        "",
        json!({"block_device_mapping_v2": bdm}),
    );
    let s = wait_status(&nova, &token, &a, "ACTIVE");
    assert_eq!(s["image"], "", "a volume-backed server has no image: {s}");
    let attached = &s["os-extended-volumes:volumes_attached"];
    assert_eq!(attached[0]["delete_on_termination"], true, "{s}");
    let root = attached[0]["id"].as_str().expect("boot volume").to_string();
    let v = wait_volume(&cinder, &token, &root, "in-use");
    assert_eq!(v["bootable"], "true", "{v}");
    assert_eq!(v["size"], 1, "{v}");
    assert_eq!(
        v["volume_image_metadata"]["image_id"],
        image.as_str(),
        "{v}"
    );
    assert_eq!(v["attachments"][0]["server_id"], a.as_str(), "{v}");
    assert_eq!(v["attachments"][0]["device"], "/dev/vda", "{v}");
    let first_host = s["OS-EXT-SRV-ATTR:host"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(v["attachments"][0]["host_name"], first_host.as_str(), "{v}");
    assert!(
        console(&nova, &token, &a).contains(&format!("/dev/vda: volume {root}")),
        "the fake hypervisor has the boot volume"
    );

    // A cold migration: the attachment moves with the server to its new host.
    action(&nova, &token, &a, json!({"migrate": null})).expect(202);
    wait_status(&nova, &token, &a, "VERIFY_RESIZE");
    action(&nova, &token, &a, json!({"confirmResize": null})).expect(204);
    let s = wait_status(&nova, &token, &a, "ACTIVE");
    let new_host = s["OS-EXT-SRV-ATTR:host"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_ne!(new_host, first_host, "{s}");
    let v = wait_volume(&cinder, &token, &root, "in-use");
    assert_eq!(v["attachments"][0]["host_name"], new_host.as_str(), "{v}");
    assert!(console(&nova, &token, &a).contains(&format!("/dev/vda: volume {root}")));

    // From an existing volume (not deleted with the server).
    let made = post(
        &format!("{cinder}/volumes"),
        Some(&token),
        &json!({"volume": {"size": 1, "name": "root-b", "imageRef": image}}),
    )
    .expect(202)
    .json();
    let vb = made["volume"]["id"].as_str().unwrap().to_string();
    wait_volume(&cinder, &token, &vb, "available");
    let bdm = json!([{"uuid": vb, "source_type": "volume", "destination_type": "volume", "boot_index": 0}]);
    let b = boot(
        &nova,
        &token,
        "bfv-b",
        &flavor,
        "",
        json!({"block_device_mapping_v2": bdm.clone()}),
    );
    let s = wait_status(&nova, &token, &b, "ACTIVE");
    assert_eq!(
        s["os-extended-volumes:volumes_attached"][0]["delete_on_termination"], false,
        "{s}"
    );
    wait_volume(&cinder, &token, &vb, "in-use");

    // Bad input: an in-use volume, an unknown volume, a blank volume without a size, several servers with
    // volumes, too little volume quota. Nothing is created.
    let before = volume_count(&cinder, &token);
    let body = |bdm: Value, extra: Value| {
        let mut b = json!({"server": {"name": "bad", "flavorRef": flavor, "networks": "none",
            "block_device_mapping_v2": bdm}});
        if let Value::Object(m) = extra {
            for (k, v) in m {
                b["server"][k] = v;
            }
        }
        b
    };
    let servers_url = format!("{nova}/servers");
    let r = at(
        60,
        "POST",
        &servers_url,
        &token,
        Some(&body(bdm.clone(), json!({}))),
    );
    let m = nova_fault(&r, 400, "badRequest");
    assert!(m.contains("Invalid volume"), "{m}");
    let unknown = json!([{"uuid": "8f0b1c4e-0000-4000-8000-000000000000", "source_type": "volume",
        "destination_type": "volume", "boot_index": 0}]);
    let r = at(
        60,
        "POST",
        &servers_url,
        &token,
        Some(&body(unknown, json!({}))),
    );
    nova_fault(&r, 400, "badRequest");
    let blank = json!([{"source_type": "blank", "destination_type": "volume", "boot_index": 0}]);
    let r = at(
        60,
        "POST",
        &servers_url,
        &token,
        Some(&body(blank, json!({}))),
    );
    nova_fault(&r, 400, "badRequest");
    let from_image = json!([{"uuid": image, "source_type": "image", "destination_type": "volume",
        "boot_index": 0, "volume_size": 1}]);
    let r = at(
        60,
        "POST",
        &servers_url,
        &token,
        Some(&body(from_image.clone(), json!({"min_count": 2}))),
    );
    nova_fault(&r, 400, "badRequest");
    let project = project_id_of(&server, &token, "admin");
    request(
        "PUT",
        &format!("{cinder}/os-quota-sets/{project}"),
        Some(&token),
        Some(&json!({"quota_set": {"gigabytes": 2}})),
    )
    .expect(200);
    let r = at(
        60,
        "POST",
        &servers_url,
        &token,
        Some(&body(from_image, json!({}))),
    );
    nova_fault(&r, 403, "forbidden");
    assert_eq!(
        volume_count(&cinder, &token),
        before,
        "no volume left behind"
    );
    let list = get_at(60, &servers_url, &token);
    assert_eq!(list["servers"].as_array().map(Vec::len), Some(2), "{list}");

    // Deleting the servers: the existing volume is available again, the made one is deleted.
    delete(&format!("{nova}/servers/{b}"), Some(&token)).expect(204);
    delete(&format!("{nova}/servers/{a}"), Some(&token)).expect(204);
    wait_gone(&nova, &token, &a);
    wait_gone(&nova, &token, &b);
    let v = wait_volume(&cinder, &token, &vb, "available");
    assert_eq!(v["attachments"], json!([]), "{v}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while get(&format!("{cinder}/volumes/{root}"), Some(&token)).status != 404 {
        assert!(
            std::time::Instant::now() < deadline,
            "the delete_on_termination volume stayed"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let mut server = server;
    server.kill();
    let r = server.replay_verify();
    assert!(r.success, "{}", r.describe());
}
