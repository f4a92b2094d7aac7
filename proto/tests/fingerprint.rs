//! Fails when a schema file changes without its fingerprint in `schemas.lock` being updated, so that every
//! schema change is a deliberate, reviewed act (see README.md for the rules it must follow).

use sha2::{Digest, Sha256};
use std::path::Path;

#[test]
fn schemas_match_their_recorded_fingerprints() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lock = std::fs::read_to_string(root.join("schemas.lock")).expect("read schemas.lock");
    let mut checked = 0;
    let mut mismatches = Vec::new();
    for line in lock
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
    {
        let (digest, file) = line
            .split_once("  ")
            .expect("line format: <sha256>  <path>");
        let bytes =
            std::fs::read(root.join(file)).expect("schema file listed in schemas.lock exists");
        let actual = hex::encode(Sha256::digest(&bytes));
        if actual != digest {
            mismatches.push(format!("{actual}  {file}"));
        }
        checked += 1;
    }
    let on_disk = std::fs::read_dir(root.join("schemas/strata"))
        .expect("schemas dir")
        .count();
    assert_eq!(
        checked, on_disk,
        "every schema file must be listed in schemas.lock"
    );
    assert!(
        mismatches.is_empty(),
        "schema changed; check proto/README.md rules, then put these lines in schemas.lock:\n{}",
        mismatches.join("\n")
    );
}
