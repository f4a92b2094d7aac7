//! Acceptance: the first part of Nova (flavors, keypairs) through the real `openstack` CLI. One scenario,
//! few calls (each costs seconds); error cases are in compute_http.rs.

use crate::common::*;

const PUBLIC_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f strata-test";
const FINGERPRINT: &str = "0f:a2:0a:d7:38:3e:65:45:08:6b:63:84:1c:ff:dc:ba";

#[test]
fn flavors_and_keypairs_through_the_openstack_cli() {
    let Some(_cli) = require_cli() else { return };
    let server = Server::start();
    let os = |args: &[&str]| ok(&server, &args.join(" "), openstack(&server, args));
    let osj = |args: &[&str]| ok(&server, &args.join(" "), openstack_json(&server, args));

    let created = osj(&[
        "flavor",
        "create",
        "--ram",
        "512",
        "--vcpus",
        "1",
        "--disk",
        "1",
        "--property",
        "hw:cpu_policy=shared",
        "m1.tiny",
    ]);
    assert_eq!(created["name"], "m1.tiny", "{created}");
    assert_eq!(created["ram"], 512, "{created}");
    let shown = osj(&["flavor", "show", "m1.tiny"]);
    assert_eq!(shown["vcpus"], 1, "{shown}");
    assert_eq!(shown["disk"], 1, "{shown}");
    assert!(
        shown["properties"].to_string().contains("hw:cpu_policy"),
        "extra specs shown as properties: {shown}"
    );
    os(&[
        "flavor",
        "create",
        "--ram",
        "1024",
        "--vcpus",
        "2",
        "--disk",
        "10",
        "--private",
        "--project",
        "admin",
        "m1.private",
    ]);
    let listed = osj(&["flavor", "list", "--all"]);
    let listed = column(&listed, "Name");
    assert!(
        listed.contains(&"m1.tiny") && listed.contains(&"m1.private"),
        "{listed:?}"
    );
    os(&["flavor", "delete", "m1.tiny"]);
    assert!(
        openstack(&server, &["flavor", "show", "m1.tiny"]).is_err(),
        "deleted flavor is gone"
    );

    let key_file = server.dir().join("id_ed25519.pub");
    std::fs::write(&key_file, PUBLIC_KEY).unwrap();
    let kp = osj(&[
        "keypair",
        "create",
        "--public-key",
        key_file.to_str().unwrap(),
        "k1",
    ]);
    assert_eq!(kp["fingerprint"], FINGERPRINT, "{kp}");
    let kps = osj(&["keypair", "list"]);
    assert_eq!(column(&kps, "Name"), ["k1"], "{kps}");
    let shown = osj(&["keypair", "show", "k1"]);
    assert_eq!(shown["fingerprint"], FINGERPRINT, "{shown}");
    os(&["keypair", "delete", "k1"]);
    assert!(column(&osj(&["keypair", "list"]), "Name").is_empty());
    // A generated keypair: the CLI writes the private key where asked.
    let private_file = server.dir().join("k2.pem");
    os(&[
        "keypair",
        "create",
        "--private-key",
        private_file.to_str().unwrap(),
        "k2",
    ]);
    let private = std::fs::read_to_string(&private_file).unwrap();
    assert!(
        private.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"),
        "{private}"
    );
}
