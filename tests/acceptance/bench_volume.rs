//! `strata bench volume` runs end to end at a tiny size: every backend kind through Cinder's API, the drivers
//! alone and the raw create's system calls. Only that it completes and reports is checked, never a figure.

use crate::common::*;

#[test]
fn bench_volume_runs_at_a_tiny_size() {
    let scratch = scratch_dir();
    let dir = scratch.path().to_str().expect("utf-8 temp dir");
    let out = strata(&[
        "bench",
        "volume",
        "--volumes",
        "3",
        "--concurrency",
        "2",
        "--backends",
        "fake,raw,qcow2",
        "--driver-seconds",
        "0.05",
        "--dir",
        dir,
    ]);
    assert!(out.success, "{}", out.describe());
    for kind in ["fake", "file raw", "file qcow2"] {
        let line = out
            .stdout
            .lines()
            .find(|l| l.starts_with(kind) && l.contains("cycles/s   to available"));
        assert!(line.is_some(), "no API line for {kind}: {}", out.describe());
        let driver = out
            .stdout
            .lines()
            .find(|l| l.starts_with(kind) && l.contains("concurrency   2:"));
        assert!(
            driver.is_some(),
            "no driver line for {kind}: {}",
            out.describe()
        );
    }
    assert!(
        out.stdout.contains("a create, step by step (3 of 3 traced"),
        "{}",
        out.describe()
    );
    assert!(
        out.stdout.contains("fsync(directory)"),
        "{}",
        out.describe()
    );
    // The bench cleans up after itself.
    let left: Vec<_> = std::fs::read_dir(scratch.path())
        .expect("list the scratch dir")
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
