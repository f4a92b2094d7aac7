//! Nova keeps answering under a mixed load: clients booting and deleting servers while others list servers,
//! hypervisors and services at microversion 2.79 (which renders `host_status`). This shape froze every Nova
//! request once (a listing took the compute view's lock twice while the projection waited to write); the
//! run is `strata bench soak` at a CI size, which fails when any request goes unanswered, any answer is a
//! 5xx, or a server never finishes its delete.

use crate::common::*;

#[test]
fn nova_answers_every_request_while_servers_boot_and_lists_render() {
    let out = strata(&[
        "bench",
        "soak",
        "--seconds",
        "20",
        "--boot-clients",
        "16",
        "--list-clients",
        "8",
        "--microversion",
        "2.79",
        "--request-timeout",
        "30",
    ]);
    assert!(out.success, "{}", out.describe());
    assert!(
        out.stdout.contains("requests unanswered within 30s: 0"),
        "{}",
        out.describe()
    );
    assert!(
        out.stdout.contains("answers with a 5xx status: 0"),
        "{}",
        out.describe()
    );
    // The load really ran: boots, deletes and listings were answered.
    for kind in [
        "POST /servers ",
        "DELETE /servers/{id} ",
        "GET /servers/detail ",
    ] {
        assert!(
            out.stdout.contains(kind),
            "no {kind:?} rows\n{}",
            out.describe()
        );
    }
}
