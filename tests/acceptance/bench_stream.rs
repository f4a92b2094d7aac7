//! `strata bench stream` runs end to end at a tiny size: catch-up and live delivery, point-in-time state.
//! Only that it completes and reports every row is checked, never a figure.

use crate::common::*;

#[test]
fn bench_stream_runs_at_a_tiny_size() {
    let out = strata(&[
        "bench",
        "stream",
        "--events",
        "3000",
        "--consumers",
        "3",
        "--tail",
        "500",
        "--live-events",
        "40",
        "--state-events",
        "1500",
    ]);
    assert!(out.success, "{}", out.describe());
    for row in [
        "| catch-up from 0 | 1 | 4500 |",
        "| catch-up, last 500 each | 3 | 1500 |",
        "| live (Swift POSTs, 4 writers) | 1 | 40 |",
        "| live (Swift POSTs, 4 writers) | 3 | 120 |",
        "| without snapshots |",
        "| with snapshots |",
    ] {
        assert!(
            out.stdout.contains(row),
            "missing {row:?}:\n{}",
            out.describe()
        );
    }
}
