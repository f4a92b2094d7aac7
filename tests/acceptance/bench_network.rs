//! `strata bench network` runs end to end at a tiny size: create/delete cycles, ports created, lists timed.
//! Only that it completes and reports is checked, never a figure.

use crate::common::*;

#[test]
fn bench_network_runs_at_a_tiny_size() {
    let out = strata(&[
        "bench",
        "network",
        "--cycles",
        "10",
        "--concurrency",
        "4",
        "--ports",
        "20",
        "--lists",
        "1",
    ]);
    assert!(out.success, "{}", out.describe());
    assert!(
        out.stdout
            .contains("10 cycles at concurrency 4 on one subnet"),
        "{}",
        out.describe()
    );
    assert!(
        out.stdout.contains("20 ports created at concurrency 4"),
        "{}",
        out.describe()
    );
    assert!(
        out.stdout
            .contains("list all ports with 20 ports present: 20 returned"),
        "{}",
        out.describe()
    );
    assert!(
        out.stdout
            .contains("list a page of 100 with 20 ports present: 20 returned"),
        "{}",
        out.describe()
    );
}
