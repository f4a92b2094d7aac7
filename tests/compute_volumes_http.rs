//! Volumes attached to servers: Nova's os-volume_attachments with Cinder's volumes, through the real binary.
//! The attachment is one record (on the volume's stream) that both APIs show.

mod common;

use common::nova::*;
use common::*;
use serde_json::{json, Value};

fn cinder(server: &Server) -> String {
    server
        .endpoint("volume")
        .expect("READY line names the volume endpoint")
        .to_string()
}

fn wait_volume(cinder: &str, token: &str, id: &str, status: &str) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let r = get(&format!("{cinder}/volumes/{id}"), Some(token));
        if r.status == 200 && r.json()["volume"]["status"] == status {
            return r.json()["volume"].clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "volume {id} never became {status}: {}",
            r.describe()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn attach_and_detach_a_volume_and_delete_the_server() {
    let server = Server::start_with_args(&["--fake-hosts", "1"]);
    let nova = nova_url(&server);
    let cinder = cinder(&server);
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
