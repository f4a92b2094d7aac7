//! Everything that follows the log survives read errors: with every third read of the log failing
//! (`strata serve --debug-log-read-faults 3`, turned on once the cloud is up), servers still boot to ACTIVE
//! and are deleted, volumes still become available and are deleted, and `/metrics` and `/healthcheck` show
//! the followers' errors and resumes. Before the shared follower, one such error stopped the conductor (or
//! the volume service) for good and every later server stayed in BUILD.

use crate::common::nova::*;
use crate::common::*;
use serde_json::{json, Value};

/// `strata_log_follower_<metric>{follower="<name>"} <value>` from a Prometheus text page.
fn metric(page: &str, metric: &str, follower: &str) -> Option<u64> {
    let prefix = format!("strata_log_follower_{metric}{{follower=\"{follower}\"}} ");
    page.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

#[test]
fn servers_and_volumes_reach_their_end_states_while_log_reads_fail() {
    let server = Server::start_with_args(&["--fake-hosts", "2", "--debug-log-read-faults", "3"]);
    let token = server.admin_token();
    let nova = nova_url(&server);
    let cinder = cinder_url(&server);
    let audit = server
        .endpoint("audit")
        .expect("audit endpoint")
        .to_string();
    let root = audit.trim_end_matches("/audit/v1");

    let flavor = create_flavor(&nova, &token, "faults.tiny", 1, 256, 1);
    let image = upload_image(&server, &token, "faults-image", &random_bytes(32 * 1024));
    let servers: Vec<String> = (0..6)
        .map(|i| {
            boot(
                &nova,
                &token,
                &format!("faulty-{i}"),
                &flavor,
                &image,
                json!({}),
            )
        })
        .collect();
    let volumes: Vec<String> = (0..4)
        .map(|i| {
            let r = post(
                &format!("{cinder}/volumes"),
                Some(&token),
                &json!({"volume": {"size": 1, "name": format!("faulty-{i}")}}),
            )
            .expect(202);
            r.json()["volume"]["id"]
                .as_str()
                .expect("volume id")
                .to_string()
        })
        .collect();
    for id in &servers {
        wait_status(&nova, &token, id, "ACTIVE");
    }
    for id in &volumes {
        wait_volume(&cinder, &token, id, "available");
    }
    for id in &servers {
        action(&nova, &token, id, json!({"os-stop": null})).expect(202);
    }
    for id in &servers {
        wait_status(&nova, &token, id, "SHUTOFF");
        delete(&format!("{nova}/servers/{id}"), Some(&token)).expect(204);
    }
    for id in &volumes {
        delete(&format!("{cinder}/volumes/{id}"), Some(&token)).expect(202);
    }
    for id in &servers {
        wait_gone(&nova, &token, id);
    }
    for id in &volumes {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while get(&format!("{cinder}/volumes/{id}"), Some(&token)).status != 404 {
            assert!(
                std::time::Instant::now() < deadline,
                "volume {id} never went"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    // The followers met the faults and resumed; the operator can see it.
    let page = get(&format!("{root}/metrics"), None).expect(200).body;
    let mut resumes = 0;
    for follower in [
        "conductor",
        "volume-service",
        "network-datapath",
        "compute",
        "volume",
    ] {
        let position = metric(&page, "position", follower)
            .unwrap_or_else(|| panic!("no position of {follower} in /metrics:\n{page}"));
        assert!(position > 0, "{follower} never moved:\n{page}");
        resumes += metric(&page, "resumes_total", follower).unwrap_or(0);
    }
    assert!(resumes > 0, "no follower resumed:\n{page}");
    assert!(page.contains("strata_log_head_position "), "{page}");
    let health = get(&format!("{root}/healthcheck"), None);
    assert!(matches!(health.status, 200 | 503), "{}", health.describe());
    let h: Value = health.json();
    let conductor = h["followers"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["name"] == "conductor"))
        .unwrap_or_else(|| panic!("no conductor in {h}"));
    assert!(conductor["position"].as_u64().unwrap_or(0) > 0, "{h}");
    let log = server.log_tail(100_000);
    assert!(
        log.contains("reading the log failed; resuming after a pause"),
        "the server did not log the errors"
    );
    assert!(
        log.contains("following the log again"),
        "the server did not log the resumes"
    );
    drop(server);
}

#[test]
fn healthcheck_and_metrics_of_a_healthy_cloud() {
    let server = Server::start();
    let audit = server
        .endpoint("audit")
        .expect("audit endpoint")
        .to_string();
    let root = audit.trim_end_matches("/audit/v1");
    let h = get(&format!("{root}/healthcheck"), None).expect(200).json();
    assert_eq!(h["status"], "OK", "{h}");
    let names: Vec<&str> = h["followers"]
        .as_array()
        .expect("followers")
        .iter()
        .filter_map(|f| f["name"].as_str())
        .collect();
    for expected in [
        "conductor",
        "volume-service",
        "network-datapath",
        "identity",
        "audit",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    for f in h["followers"].as_array().expect("followers") {
        assert_eq!(f["healthy"], true, "{f}");
        assert_eq!(f["read_errors"], 0, "{f}");
    }
    let page = get(&format!("{root}/metrics"), None).expect(200).body;
    assert_eq!(metric(&page, "up", "conductor"), Some(1), "{page}");
    assert_eq!(
        metric(&page, "read_errors_total", "conductor"),
        Some(0),
        "{page}"
    );
}
