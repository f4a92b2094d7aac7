//! `strata bench object` runs end to end at a tiny size: PUT and GET of both object sizes through Swift's API
//! beside plain files, a container filled and its listing walked. Only that it completes and reports (with
//! non-zero counts and rates) is checked, never a figure.

use crate::common::*;

/// The whitespace-separated fields of the first output line starting with `prefix`.
fn row<'a>(stdout: &'a str, prefix: &str) -> Option<Vec<&'a str>> {
    stdout
        .lines()
        .find(|l| l.starts_with(prefix))
        .map(|l| l[prefix.len()..].split_whitespace().collect())
}

fn positive(field: &str) -> bool {
    field.parse::<f64>().is_ok_and(|v| v > 0.0)
}

#[test]
fn bench_object_runs_at_a_tiny_size() {
    let scratch = scratch_dir();
    let dir = scratch.path().to_str().expect("utf-8 temp dir");
    let out = strata(&[
        "bench",
        "object",
        "--concurrency",
        "4",
        "--count",
        "12",
        "--objects",
        "2000",
        "--page",
        "300",
        "--dir",
        dir,
    ]);
    assert!(out.success, "{}", out.describe());
    for what in ["API PUT", "file write+fsync+rename", "API GET", "file read"] {
        for size in ["4 KiB", "4 MiB"] {
            let prefix = format!("{what} ");
            let fields = out
                .stdout
                .lines()
                .filter(|l| l.starts_with(&prefix))
                .map(|l| l[prefix.len()..].split_whitespace().collect::<Vec<_>>())
                .find(|f| f.len() >= 5 && format!("{} {}", f[0], f[1]) == size);
            let Some(f) = fields else {
                panic!("no row {what} {size}: {}", out.describe());
            };
            // size (2 fields), ops, ops/s, MiB/s
            assert_eq!(f[2], "12", "ops of {what} {size}: {}", out.describe());
            assert!(
                positive(f[3]) && positive(f[4]),
                "rates of {what} {size}: {}",
                out.describe()
            );
        }
    }
    let fill = row(&out.stdout, "fill:").unwrap_or_else(|| panic!("{}", out.describe()));
    assert_eq!(fill[0], "2000", "{}", out.describe());
    assert!(
        out.stdout.contains("objects/s in"),
        "no fill rate: {}",
        out.describe()
    );
    // 2000 objects in pages of 300: 7 pages, every object seen once.
    let walk = row(&out.stdout, "walk:").unwrap_or_else(|| panic!("{}", out.describe()));
    assert_eq!(walk[0], "7", "{}", out.describe());
    assert!(out.stdout.contains("2000 objects in"), "{}", out.describe());
    for (query, entries) in [
        // d042/ holds 20 of the 2000 names; 100 pseudo-folders.
        ("prefix=d042/ ", "20"),
        ("delimiter=/ ", "100"),
        ("prefix=d042/&delimiter=/ ", "20"),
        ("reverse=on ", "300"),
        ("plain text (no format=json) ", "300"),
    ] {
        let prefix = format!("page limit=300 {query}");
        let f = row(&out.stdout, &prefix)
            .unwrap_or_else(|| panic!("no page row {query}: {}", out.describe()));
        assert_eq!(f[0], entries, "{query}: {}", out.describe());
    }
    // The bench cleans up after itself.
    let left: Vec<_> = std::fs::read_dir(scratch.path())
        .expect("list the scratch dir")
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
