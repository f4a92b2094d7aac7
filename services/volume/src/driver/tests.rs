//! One contract suite run against every driver (and every file format), then tests of what only the file
//! driver does, checked from outside with `qemu-img` and `qemu-io`.

use std::collections::BTreeMap;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

use super::*;

const MIB: u64 = 1 << 20;

fn file_driver(root: &Path, format: VolumeFormat) -> FileDriver {
    FileDriver::new("file-1", root.join("volumes"), format, 100, BTreeMap::new()).unwrap()
}

fn run(program: &str, args: &[&str]) -> std::process::Output {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `qemu-img info` as qemu-img sees the file (format probed, as a consumer would).
fn qemu_info(path: &Path) -> serde_json::Value {
    let out = run(
        "qemu-img",
        &["info", "--output=json", path.to_str().unwrap()],
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Whether two images have the same content; `strict` also requires the same size. (`qemu-img compare -s`
/// would also compare what is allocated, which sparse copies legitimately change.)
fn same_content(a: &Path, fa: &str, b: &Path, fb: &str, strict: bool) -> bool {
    let size = |p: &Path, f: &str| {
        let out = run(
            "qemu-img",
            &["info", "--output=json", "-f", f, p.to_str().unwrap()],
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["virtual-size"]
            .as_u64()
            .unwrap()
    };
    if strict && size(a, fa) != size(b, fb) {
        return false;
    }
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    let status = Command::new("qemu-img")
        .args(["compare", "-q", "-f", fa, "-F", fb, a, b])
        .status()
        .unwrap();
    match status.code() {
        Some(0) => true,
        Some(1) => false,
        other => panic!("qemu-img compare {a} {b}: {other:?}"),
    }
}

/// Fill `len` bytes at `offset` of a volume of the file driver with `byte`.
fn fill(d: &FileDriver, id: &str, offset: u64, len: u64, byte: u8) {
    let path = d.volume_path(id);
    match d.format() {
        VolumeFormat::Raw => {
            let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            file.write_all_at(&vec![byte; len as usize], offset)
                .unwrap();
        }
        VolumeFormat::Qcow2 => {
            let cmd = format!("write -P {byte} {offset} {len}");
            run(
                "qemu-io",
                &["-f", "qcow2", "-c", &cmd, path.to_str().unwrap()],
            );
        }
    }
}

/// A raw view of a volume: the file itself, or a raw copy of a qcow2 one in `scratch`.
fn raw_view(d: &FileDriver, id: &str, scratch: &Path) -> PathBuf {
    match d.format() {
        VolumeFormat::Raw => d.volume_path(id),
        VolumeFormat::Qcow2 => raw_copy(d, id, scratch),
    }
}

/// A (sparse) raw copy of a volume's current content in `scratch`.
fn raw_copy(d: &FileDriver, id: &str, scratch: &Path) -> PathBuf {
    let out = scratch.join(format!("copy-{id}-{}.raw", uuid::Uuid::new_v4()));
    run(
        "qemu-img",
        &[
            "convert",
            "-f",
            d.format().as_str(),
            "-O",
            "raw",
            d.volume_path(id).to_str().unwrap(),
            out.to_str().unwrap(),
        ],
    );
    out
}

fn read_at(path: &Path, offset: u64, len: u64) -> Vec<u8> {
    let file = std::fs::File::open(path).unwrap();
    let mut buf = vec![0u8; len as usize];
    file.read_exact_at(&mut buf, offset).unwrap();
    buf
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

fn no_temporaries(dir: &Path) {
    let left: Vec<_> = names(dir)
        .into_iter()
        .filter(|n| n.starts_with(".tmp-"))
        .collect();
    assert!(
        left.is_empty(),
        "temporary files left in {}: {left:?}",
        dir.display()
    );
}

/// Bytes that differ from offset to offset, so misplaced data is noticed.
fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) | 1)
        .collect()
}

// ---------------------------------------------------------------------------------------------------------
// The contract every driver honours.

async fn contract(d: &dyn VolumeDriver, scratch: &Path) {
    let stats = d.stats().await.unwrap();
    assert_eq!(stats.provisioned_gb, 0);
    assert_eq!(stats.free_gb, stats.total_gb);
    assert!(stats.thin);
    let caps = d.capabilities();
    assert_eq!(caps["volume_backend_name"], d.name());
    assert_eq!(caps["vendor_name"], "Strata");
    assert_eq!(caps["storage_protocol"], d.driver_name());

    // Create: ids and sizes are checked, a second create is refused.
    assert!(!d.create_volume("v1", 1).await.unwrap().is_empty());
    assert!(matches!(
        d.create_volume("v1", 1).await,
        Err(DriverError::AlreadyExists { kind: "volume", .. })
    ));
    for bad in ["", "../v", "a/b", ".tmp-v", "v 1"] {
        assert!(
            matches!(d.create_volume(bad, 1).await, Err(DriverError::Invalid(_))),
            "{bad:?}"
        );
    }
    assert!(matches!(
        d.create_volume("v0", 0).await,
        Err(DriverError::Invalid(_))
    ));
    assert!(matches!(
        d.create_volume("v0", u64::MAX).await,
        Err(DriverError::Invalid(_))
    ));

    // Extend grows, never shrinks.
    d.extend_volume("v1", 2).await.unwrap();
    d.extend_volume("v1", 2).await.unwrap();
    assert!(matches!(
        d.extend_volume("v1", 1).await,
        Err(DriverError::Invalid(_))
    ));
    assert!(matches!(
        d.extend_volume("nope", 3).await,
        Err(DriverError::VolumeNotFound(_))
    ));

    // Snapshots.
    d.create_snapshot("v1", "s1").await.unwrap();
    assert!(matches!(
        d.create_snapshot("v1", "s1").await,
        Err(DriverError::AlreadyExists {
            kind: "snapshot",
            ..
        })
    ));
    assert!(matches!(
        d.create_snapshot("nope", "s2").await,
        Err(DriverError::VolumeNotFound(_))
    ));

    // Volumes from a snapshot and clones are at least as large as their source.
    assert!(matches!(
        d.create_volume_from_snapshot("v2", "v1", "s1", 1).await,
        Err(DriverError::Invalid(_))
    ));
    assert!(matches!(
        d.attach("v2", "host").await,
        Err(DriverError::VolumeNotFound(_))
    ));
    d.create_volume_from_snapshot("v2", "v1", "s1", 2)
        .await
        .unwrap();
    assert!(matches!(
        d.create_volume_from_snapshot("v9", "v1", "nope", 2).await,
        Err(DriverError::SnapshotNotFound(_))
    ));
    assert!(matches!(
        d.create_volume_from_snapshot("v2", "v1", "s1", 2).await,
        Err(DriverError::AlreadyExists { .. })
    ));
    assert!(matches!(
        d.clone_volume("v3", "v1", 1).await,
        Err(DriverError::Invalid(_))
    ));
    d.clone_volume("v3", "v1", 3).await.unwrap();
    assert!(matches!(
        d.clone_volume("v9", "nope", 3).await,
        Err(DriverError::VolumeNotFound(_))
    ));

    // Revert.
    d.revert_to_snapshot("v1", "s1").await.unwrap();
    assert!(matches!(
        d.revert_to_snapshot("v1", "nope").await,
        Err(DriverError::SnapshotNotFound(_))
    ));
    assert!(matches!(
        d.revert_to_snapshot("nope", "s1").await,
        Err(DriverError::VolumeNotFound(_))
    ));

    let stats = d.stats().await.unwrap();
    assert_eq!(stats.provisioned_gb, 2 + 2 + 3);
    assert_eq!(stats.free_gb, stats.total_gb - 7);

    // Connections.
    let conn = d.attach("v1", "host-a").await.unwrap();
    assert_eq!(conn.driver_volume_type, d.driver_name());
    assert_eq!(conn.data["volume_id"], "v1");
    d.detach("v1", "host-a").await.unwrap();
    d.detach("nope", "host-a").await.unwrap();

    // Export.
    let exported = d
        .export_volume("v1", "raw", &scratch.join("export"))
        .await
        .unwrap();
    assert_eq!(exported, scratch.join("export").join("volume-v1.raw"));
    assert!(exported.is_file());
    no_temporaries(&scratch.join("export"));
    assert!(matches!(
        d.export_volume("nope", "raw", scratch).await,
        Err(DriverError::VolumeNotFound(_))
    ));
    assert!(matches!(
        d.export_volume("v1", "ami", scratch).await,
        Err(DriverError::Invalid(_))
    ));

    // Backups.
    let b1 = scratch.join("backups").join("b1");
    let info = d.backup_volume("v1", &b1, None).await.unwrap();
    assert_eq!(info.manifest, b1.join(MANIFEST_FILE));
    assert_eq!(info.size_bytes, 2 * GIB);
    assert!(info.manifest.is_file());
    assert!(matches!(
        d.backup_volume("v1", &b1, None).await,
        Err(DriverError::AlreadyExists { kind: "backup", .. })
    ));
    assert!(matches!(
        d.backup_volume(
            "v2",
            &scratch.join("backups").join("b2"),
            Some(&info.manifest)
        )
        .await,
        Err(DriverError::Invalid(_))
    ));
    assert!(!scratch.join("backups").join("b2").exists());
    no_temporaries(&scratch.join("backups"));
    assert!(matches!(
        d.backup_volume("nope", &scratch.join("b3"), None).await,
        Err(DriverError::VolumeNotFound(_))
    ));
    d.restore_backup(&info.manifest, std::slice::from_ref(&b1), "v3")
        .await
        .unwrap();
    d.create_volume("v4", 1).await.unwrap();
    assert!(matches!(
        d.restore_backup(&info.manifest, std::slice::from_ref(&b1), "v4")
            .await,
        Err(DriverError::Invalid(_))
    ));
    assert!(matches!(
        d.restore_backup(
            &scratch.join("missing.json"),
            std::slice::from_ref(&b1),
            "v3"
        )
        .await,
        Err(DriverError::BadBackup { .. })
    ));
    assert!(matches!(
        d.restore_backup(&info.manifest, std::slice::from_ref(&b1), "nope")
            .await,
        Err(DriverError::VolumeNotFound(_))
    ));

    // Deletes; deleting what is absent succeeds.
    for _ in 0..2 {
        d.delete_snapshot("v1", "s1").await.unwrap();
        for id in ["v1", "v2", "v3", "v4"] {
            d.delete_volume(id).await.unwrap();
        }
    }
    assert!(matches!(
        d.create_volume_from_snapshot("v5", "v1", "s1", 2).await,
        Err(DriverError::SnapshotNotFound(_))
    ));
    assert_eq!(d.stats().await.unwrap().provisioned_gb, 0);
}

#[tokio::test]
async fn fake_driver_honours_the_contract() {
    let scratch = TempDir::new().unwrap();
    contract(&FakeDriver::new("fake-1", 100), scratch.path()).await;
}

#[tokio::test]
async fn raw_file_driver_honours_the_contract() {
    let scratch = TempDir::new().unwrap();
    let d = file_driver(scratch.path(), VolumeFormat::Raw);
    contract(&d, scratch.path()).await;
    assert!(names(d.dir()).is_empty());
}

#[tokio::test]
async fn qcow2_file_driver_honours_the_contract() {
    let scratch = TempDir::new().unwrap();
    let d = file_driver(scratch.path(), VolumeFormat::Qcow2);
    contract(&d, scratch.path()).await;
    assert!(names(d.dir()).is_empty());
}

#[tokio::test]
async fn drivers_are_object_safe_and_shareable() {
    let scratch = TempDir::new().unwrap();
    let drivers: Vec<std::sync::Arc<dyn VolumeDriver>> = vec![
        std::sync::Arc::new(FakeDriver::new("fake-1", 10)),
        std::sync::Arc::new(file_driver(scratch.path(), VolumeFormat::Raw)),
    ];
    let handles: Vec<_> = drivers
        .iter()
        .flat_map(|d| {
            (0..8).map(move |i| {
                let d = d.clone();
                tokio::spawn(async move { d.create_volume(&format!("v{i}"), 1).await })
            })
        })
        .collect();
    for h in handles {
        h.await.unwrap().unwrap();
    }
    for d in &drivers {
        assert_eq!(d.stats().await.unwrap().provisioned_gb, 8);
    }
}

// ---------------------------------------------------------------------------------------------------------
// The file driver.

#[tokio::test]
async fn file_volumes_are_what_qemu_img_expects() {
    let scratch = TempDir::new().unwrap();
    for format in [VolumeFormat::Raw, VolumeFormat::Qcow2] {
        let root = scratch.path().join(format.as_str());
        let d = file_driver(&root, format);
        let location = d.create_volume("a", 1).await.unwrap();
        assert_eq!(PathBuf::from(&location), d.volume_path("a"));
        let info = qemu_info(&d.volume_path("a"));
        assert_eq!(info["format"], format.as_str());
        assert_eq!(info["virtual-size"], GIB);
        // Thin: creating allocates (almost) nothing.
        assert!(info["actual-size"].as_u64().unwrap() < 4 * MIB, "{info}");

        d.extend_volume("a", 3).await.unwrap();
        let info = qemu_info(&d.volume_path("a"));
        assert_eq!(info["format"], format.as_str());
        assert_eq!(info["virtual-size"], 3 * GIB);

        d.create_volume("b", 2).await.unwrap();
        d.create_snapshot("a", "s").await.unwrap();
        assert_eq!(qemu_info(&d.snapshot_path("s"))["format"], format.as_str());
        assert_eq!(
            names(d.dir()),
            ["snapshot-s", "volume-a", "volume-b"],
            "{format}"
        );
        let caps = d.capabilities();
        assert_eq!(caps["volume_format"], format.as_str());
        assert_eq!(caps["thin_provisioning_support"], "True");

        // The sizes come from the files, so a restarted backend reports the same.
        let again = file_driver(&root, format);
        let stats = again.stats().await.unwrap();
        assert_eq!((stats.provisioned_gb, stats.free_gb), (5, 95));
    }
}

#[tokio::test]
async fn stats_survive_an_unreadable_volume_file() {
    let scratch = TempDir::new().unwrap();
    let d = file_driver(scratch.path(), VolumeFormat::Qcow2);
    d.create_volume("good", 2).await.unwrap();
    std::fs::write(d.volume_path("junk"), b"not qcow2").unwrap();
    // The junk file counts with its length (rounded up to 1 GiB) instead of failing the report.
    assert_eq!(d.stats().await.unwrap().provisioned_gb, 3);
    assert!(matches!(
        d.extend_volume("junk", 5).await,
        Err(DriverError::Io { .. })
    ));
}

#[tokio::test]
async fn configured_capabilities_override_the_drivers() {
    let scratch = TempDir::new().unwrap();
    let configured = BTreeMap::from([
        ("multiattach".to_string(), "False".to_string()),
        ("QoS_support".to_string(), "True".to_string()),
    ]);
    let d = FileDriver::new("gold", scratch.path(), VolumeFormat::Raw, 5, configured).unwrap();
    let caps = d.stats().await.unwrap().capabilities;
    assert_eq!(caps["multiattach"], "False");
    assert_eq!(caps["QoS_support"], "True");
    assert_eq!(caps["volume_backend_name"], "gold");
    assert_eq!(caps["driver_version"], file::DRIVER_VERSION);
}

#[tokio::test]
async fn revert_restores_the_snapshots_bytes() {
    let scratch = TempDir::new().unwrap();
    for format in [VolumeFormat::Raw, VolumeFormat::Qcow2] {
        let d = file_driver(&scratch.path().join(format.as_str()), format);
        d.create_volume("v", 1).await.unwrap();
        if format == VolumeFormat::Raw {
            // Written straight into the file, as a guest would.
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(d.volume_path("v"))
                .unwrap();
            file.write_all_at(&pattern(7, 4096), 0).unwrap();
            file.write_all_at(&pattern(9, 4096), 512 * MIB).unwrap();
        } else {
            fill(&d, "v", 0, 4096, 7);
            fill(&d, "v", 512 * MIB, 4096, 9);
        }
        let before = raw_view(&d, "v", scratch.path());
        let before_head = read_at(&before, 0, 4096);
        let before_mid = read_at(&before, 512 * MIB, 4096);

        d.create_snapshot("v", "s").await.unwrap();
        fill(&d, "v", 0, 4096, 0xee);
        fill(&d, "v", 700 * MIB, MIB, 0xdd);
        d.extend_volume("v", 2).await.unwrap();
        assert_eq!(read_at(&raw_view(&d, "v", scratch.path()), 0, 1)[0], 0xee);

        d.revert_to_snapshot("v", "s").await.unwrap();
        let after = raw_view(&d, "v", scratch.path());
        assert_eq!(read_at(&after, 0, 4096), before_head, "{format}");
        assert_eq!(read_at(&after, 512 * MIB, 4096), before_mid, "{format}");
        assert_eq!(read_at(&after, 700 * MIB, MIB), vec![0; MIB as usize]);
        // The volume keeps the size it was extended to.
        assert_eq!(qemu_info(&d.volume_path("v"))["virtual-size"], 2 * GIB);
        assert_eq!(qemu_info(&d.volume_path("v"))["format"], format.as_str());
        no_temporaries(d.dir());
    }
}

#[tokio::test]
async fn volumes_from_snapshots_and_clones_are_identical() {
    let scratch = TempDir::new().unwrap();
    for format in [VolumeFormat::Raw, VolumeFormat::Qcow2] {
        let d = file_driver(&scratch.path().join(format.as_str()), format);
        let f = format.as_str();
        d.create_volume("src", 1).await.unwrap();
        fill(&d, "src", 0, 3 * MIB, 0x5a);
        fill(&d, "src", 300 * MIB + 17, 10_000, 0xa5);
        fill(&d, "src", GIB - 4096, 4096, 0x33);
        d.create_snapshot("src", "snap").await.unwrap();
        // Later writes to the source reach neither the snapshot nor volumes made from it.
        let frozen = raw_copy(&d, "src", scratch.path());
        fill(&d, "src", 0, 4096, 0x01);

        d.create_volume_from_snapshot("from-snap", "src", "snap", 1)
            .await
            .unwrap();
        assert!(same_content(
            &d.volume_path("from-snap"),
            f,
            &frozen,
            "raw",
            true
        ));
        assert!(same_content(
            &d.snapshot_path("snap"),
            f,
            &frozen,
            "raw",
            true
        ));

        d.clone_volume("clone", "src", 1).await.unwrap();
        assert!(same_content(
            &d.volume_path("clone"),
            f,
            &d.volume_path("src"),
            f,
            true
        ));
        assert!(!same_content(
            &d.volume_path("clone"),
            f,
            &frozen,
            "raw",
            true
        ));

        // Larger targets: the same bytes, then zeros.
        d.clone_volume("bigger", "src", 2).await.unwrap();
        assert_eq!(qemu_info(&d.volume_path("bigger"))["virtual-size"], 2 * GIB);
        assert!(same_content(
            &d.volume_path("bigger"),
            f,
            &d.volume_path("src"),
            f,
            false
        ));
        assert!(!same_content(
            &d.volume_path("bigger"),
            f,
            &d.volume_path("src"),
            f,
            true
        ));
        no_temporaries(d.dir());
    }
}

#[tokio::test]
async fn raw_copies_stay_sparse() {
    let scratch = TempDir::new().unwrap();
    let d = file_driver(scratch.path(), VolumeFormat::Raw);
    d.create_volume("src", 4).await.unwrap();
    fill(&d, "src", GIB, MIB, 0x42);
    d.clone_volume("copy", "src", 4).await.unwrap();
    let info = qemu_info(&d.volume_path("copy"));
    assert_eq!(info["virtual-size"], 4 * GIB);
    assert!(info["actual-size"].as_u64().unwrap() < 8 * MIB, "{info}");
    assert!(same_content(
        &d.volume_path("copy"),
        "raw",
        &d.volume_path("src"),
        "raw",
        true
    ));
}

/// A 3 MiB raw image with a pattern, and the same image as qcow2.
fn images(dir: &Path) -> (Vec<u8>, PathBuf, PathBuf) {
    let bytes = pattern(3, 3 * MIB as usize);
    let raw = dir.join("image.raw");
    std::fs::write(&raw, &bytes).unwrap();
    let qcow2 = dir.join("image.qcow2");
    run(
        "qemu-img",
        &[
            "convert",
            "-f",
            "raw",
            "-O",
            "qcow2",
            raw.to_str().unwrap(),
            qcow2.to_str().unwrap(),
        ],
    );
    (bytes, raw, qcow2)
}

#[tokio::test]
async fn volumes_from_images_start_with_the_images_bytes() {
    let scratch = TempDir::new().unwrap();
    let (bytes, raw, qcow2) = images(scratch.path());
    for format in [VolumeFormat::Raw, VolumeFormat::Qcow2] {
        let d = file_driver(&scratch.path().join(format.as_str()), format);
        for (id, image, image_format) in
            [("from-raw", &raw, "raw"), ("from-qcow2", &qcow2, "qcow2")]
        {
            d.create_volume_from_image(id, image, image_format, 1)
                .await
                .unwrap();
            let info = qemu_info(&d.volume_path(id));
            assert_eq!(info["format"], format.as_str());
            assert_eq!(info["virtual-size"], GIB);
            let view = raw_view(&d, id, scratch.path());
            assert_eq!(
                read_at(&view, 0, bytes.len() as u64),
                bytes,
                "{format} {id}"
            );
            assert_eq!(read_at(&view, 3 * MIB, MIB), vec![0; MIB as usize]);
        }
        no_temporaries(d.dir());
    }
}

#[tokio::test]
async fn unusable_images_are_refused_and_leave_nothing() {
    let scratch = TempDir::new().unwrap();
    let (_, raw, qcow2) = images(scratch.path());
    let d = file_driver(scratch.path(), VolumeFormat::Qcow2);

    // Larger than the volume.
    let big = scratch.path().join("big.raw");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(GIB + MIB)
        .unwrap();
    assert!(matches!(
        d.create_volume_from_image("v", &big, "raw", 1).await,
        Err(DriverError::Invalid(m)) if m.contains("larger")
    ));

    // Not what it claims to be: the error names the command and carries qemu-img's complaint.
    match d.create_volume_from_image("v", &raw, "qcow2", 1).await {
        Err(e @ DriverError::Command { .. }) => {
            let text = e.to_string();
            assert!(text.contains("qemu-img info"), "{text}");
            assert!(text.contains("qcow2"), "{text}");
        }
        other => panic!("{other:?}"),
    }

    // A backing file would make qemu-img read another file.
    let overlay = scratch.path().join("overlay.qcow2");
    run(
        "qemu-img",
        &[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-F",
            "qcow2",
            "-b",
            qcow2.to_str().unwrap(),
            overlay.to_str().unwrap(),
        ],
    );
    assert!(matches!(
        d.create_volume_from_image("v", &overlay, "qcow2", 1).await,
        Err(DriverError::Invalid(m)) if m.contains("backing file")
    ));

    assert!(matches!(
        d.create_volume_from_image("v", &raw, "ami", 1).await,
        Err(DriverError::Invalid(_))
    ));
    assert!(matches!(
        d.create_volume_from_image("v", &scratch.path().join("none"), "raw", 1)
            .await,
        Err(DriverError::Invalid(_))
    ));
    assert!(names(d.dir()).is_empty());
}

#[tokio::test]
async fn failed_commands_leave_nothing_visible() {
    let scratch = TempDir::new().unwrap();
    let (_, raw, _) = images(scratch.path());
    let d = file_driver(scratch.path(), VolumeFormat::Qcow2).with_qemu_img("/nonexistent/qemu-img");
    match d.create_volume("v", 1).await {
        Err(e @ DriverError::Io { .. }) => {
            assert!(
                e.to_string().contains("/nonexistent/qemu-img create"),
                "{e}"
            )
        }
        other => panic!("{other:?}"),
    }
    // `false` accepts anything and fails: the conversion step fails after the temporary name was chosen.
    let d = file_driver(scratch.path(), VolumeFormat::Qcow2).with_qemu_img("false");
    assert!(matches!(
        d.create_volume_from_image("v", &raw, "raw", 1).await,
        Err(DriverError::Command { .. })
    ));
    assert!(names(d.dir()).is_empty());

    // What a crash leaves behind is swept at start-up.
    std::fs::write(d.dir().join(".tmp-volume-x-1"), b"partial").unwrap();
    std::fs::create_dir(d.dir().join(".tmp-backup-y-2")).unwrap();
    std::fs::write(d.dir().join("volume-kept"), b"").unwrap();
    assert_eq!(d.sweep_orphans().unwrap(), 2);
    assert_eq!(names(d.dir()), ["volume-kept"]);
}

#[tokio::test]
async fn exports_round_trip() {
    let scratch = TempDir::new().unwrap();
    for format in [VolumeFormat::Raw, VolumeFormat::Qcow2] {
        let d = file_driver(&scratch.path().join(format.as_str()), format);
        let f = format.as_str();
        d.create_volume("v", 1).await.unwrap();
        fill(&d, "v", 0, MIB, 0x10);
        fill(&d, "v", 600 * MIB + 5, 123_457, 0x20);
        let out_dir = scratch.path().join(f).join("upload");
        for export_format in ["qcow2", "raw"] {
            let exported = d.export_volume("v", export_format, &out_dir).await.unwrap();
            let info = qemu_info(&exported);
            assert_eq!(info["format"], export_format);
            assert_eq!(info["virtual-size"], GIB);
            assert!(same_content(
                &exported,
                export_format,
                &d.volume_path("v"),
                f,
                true
            ));
            // And back: a volume made from the upload has the same bytes.
            let id = format!("back-{export_format}");
            d.create_volume_from_image(&id, &exported, export_format, 1)
                .await
                .unwrap();
            assert!(same_content(
                &d.volume_path(&id),
                f,
                &d.volume_path("v"),
                f,
                true
            ));
        }
        no_temporaries(&out_dir);
    }
}

#[tokio::test]
async fn incremental_backups_store_only_changed_chunks() {
    let scratch = TempDir::new().unwrap();
    for format in [VolumeFormat::Raw, VolumeFormat::Qcow2] {
        let f = format.as_str();
        let d = file_driver(&scratch.path().join(f), format);
        let backups = scratch.path().join(f).join("backups");
        d.create_volume("v", 1).await.unwrap();
        fill(&d, "v", 0, MIB, 0x11);
        fill(&d, "v", 3 * MIB, MIB, 0x22);
        fill(&d, "v", 100 * MIB, MIB, 0x33);
        // Same bytes as chunk 0: stored once.
        fill(&d, "v", 7 * MIB, MIB, 0x11);

        let full = d
            .backup_volume("v", &backups.join("full"), None)
            .await
            .unwrap();
        assert_eq!(full.chunks_referenced, 4, "{f}");
        assert_eq!(full.chunks_stored, 3, "{f}");
        assert_eq!(full.bytes_stored, 3 * MIB, "{f}");
        assert_eq!(names(&backups.join("full")).len(), 3 + 1);
        let manifest = BackupManifest::read(&full.manifest).unwrap();
        let offsets: Vec<u64> = manifest.chunks.iter().map(|c| c.offset).collect();
        assert_eq!(offsets, [0, 3 * MIB, 7 * MIB, 100 * MIB]);
        assert_eq!(manifest.chunks[0].sha256, manifest.chunks[2].sha256);
        let old = raw_copy(&d, "v", scratch.path());

        // Change one MiB.
        fill(&d, "v", 3 * MIB, MIB, 0x44);
        let incr = d
            .backup_volume("v", &backups.join("incr"), Some(&full.manifest))
            .await
            .unwrap();
        assert_eq!(incr.chunks_referenced, 4, "{f}");
        assert_eq!(incr.chunks_stored, 1, "{f}");
        assert_eq!(incr.bytes_stored, MIB, "{f}");
        assert_eq!(names(&backups.join("incr")).len(), 1 + 1);

        // Restoring the incremental needs the whole chain and gives today's bytes.
        let chain = [backups.join("incr"), backups.join("full")];
        d.create_volume("r-incr", 1).await.unwrap();
        d.restore_backup(&incr.manifest, &chain, "r-incr")
            .await
            .unwrap();
        assert!(same_content(
            &d.volume_path("r-incr"),
            f,
            &d.volume_path("v"),
            f,
            true
        ));
        assert_eq!(qemu_info(&d.volume_path("r-incr"))["format"], f);

        // The full one still gives yesterday's.
        d.create_volume("r-full", 1).await.unwrap();
        fill(&d, "r-full", 500 * MIB, MIB, 0x77);
        d.restore_backup(&full.manifest, &chain[1..], "r-full")
            .await
            .unwrap();
        assert!(same_content(&d.volume_path("r-full"), f, &old, "raw", true));

        // Into a larger volume: the backup's bytes, then zeros.
        d.create_volume("r-big", 2).await.unwrap();
        d.restore_backup(&incr.manifest, &chain, "r-big")
            .await
            .unwrap();
        assert_eq!(qemu_info(&d.volume_path("r-big"))["virtual-size"], 2 * GIB);
        assert!(same_content(
            &d.volume_path("r-big"),
            f,
            &d.volume_path("v"),
            f,
            false
        ));

        // A broken chain or a damaged chunk is reported, and the volume is left as it was.
        let before = raw_copy(&d, "r-incr", scratch.path());
        assert!(matches!(
            d.restore_backup(&incr.manifest, &chain[..1], "r-incr").await,
            Err(DriverError::BadBackup { reason, .. }) if reason.contains("none of the backup directories")
        ));
        let damaged = backups.join("full").join(&manifest.chunks[3].sha256);
        std::fs::write(&damaged, vec![0x34; MIB as usize]).unwrap();
        assert!(matches!(
            d.restore_backup(&incr.manifest, &chain, "r-incr").await,
            Err(DriverError::BadBackup { reason, .. }) if reason.contains("does not match")
        ));
        assert!(
            same_content(&d.volume_path("r-incr"), f, &before, "raw", true),
            "{f}: a failed restore changed the volume"
        );
        no_temporaries(d.dir());
        no_temporaries(&backups);
    }
}

#[tokio::test]
async fn backups_restore_across_backends() {
    let scratch = TempDir::new().unwrap();
    let raw = file_driver(&scratch.path().join("raw"), VolumeFormat::Raw);
    let qcow2 = file_driver(&scratch.path().join("qcow2"), VolumeFormat::Qcow2);
    let fake = FakeDriver::new("fake-1", 10);
    raw.create_volume("v", 1).await.unwrap();
    fill(&raw, "v", 42 * MIB, 2 * MIB + 3, 0x99);
    let dir = scratch.path().join("b");
    let info = raw.backup_volume("v", &dir, None).await.unwrap();
    // Chunks 42 and 43 hold the same bytes; 44 holds the last 3.
    assert_eq!((info.chunks_referenced, info.chunks_stored), (3, 2));

    qcow2.create_volume("v", 1).await.unwrap();
    qcow2
        .restore_backup(&info.manifest, std::slice::from_ref(&dir), "v")
        .await
        .unwrap();
    assert!(same_content(
        &qcow2.volume_path("v"),
        "qcow2",
        &raw.volume_path("v"),
        "raw",
        true
    ));

    // The fake driver checks the manifest and the size, and keeps no bytes.
    fake.create_volume("v", 1).await.unwrap();
    fake.restore_backup(&info.manifest, std::slice::from_ref(&dir), "v")
        .await
        .unwrap();
}

#[tokio::test]
async fn malformed_manifests_are_refused() {
    let scratch = TempDir::new().unwrap();
    let d = FakeDriver::new("fake-1", 10);
    d.create_volume("v", 1).await.unwrap();
    let sha = "a".repeat(64);
    let manifest = |version: u32, size: u64, chunk_size: u64, chunks: &[(u64, &str)]| {
        let chunks: Vec<_> = chunks
            .iter()
            .map(|(offset, sha)| serde_json::json!({"offset": offset, "sha256": sha}))
            .collect();
        serde_json::json!({
            "version": version, "volume_id": "v", "size_bytes": size,
            "chunk_size": chunk_size, "chunks": chunks,
        })
        .to_string()
    };
    let cases = [
        "not json".to_string(),
        manifest(2, MIB, MIB, &[]),
        manifest(1, MIB, 4096, &[]),
        // Past the end, misaligned, not a hash, out of order.
        manifest(1, MIB, MIB, &[(MIB, &sha)]),
        manifest(1, 4 * MIB, MIB, &[(5, &sha)]),
        manifest(1, 4 * MIB, MIB, &[(0, "../../etc/passwd")]),
        manifest(1, 4 * MIB, MIB, &[(MIB, &sha), (0, &sha)]),
    ];
    for (i, text) in cases.iter().enumerate() {
        let path = scratch.path().join(format!("m{i}.json"));
        std::fs::write(&path, text).unwrap();
        assert!(
            matches!(
                d.restore_backup(&path, &[], "v").await,
                Err(DriverError::BadBackup { .. })
            ),
            "case {i}"
        );
    }
}

#[tokio::test]
async fn fake_driver_accounts_for_every_volume() {
    let scratch = TempDir::new().unwrap();
    let d = FakeDriver::new("fake-1", 100);
    for i in 1..=10u64 {
        d.create_volume(&format!("v{i}"), i).await.unwrap();
    }
    let stats = d.stats().await.unwrap();
    assert_eq!((stats.provisioned_gb, stats.free_gb), (55, 45));
    d.extend_volume("v1", 11).await.unwrap();
    d.create_snapshot("v10", "s").await.unwrap();
    d.create_volume_from_snapshot("from-s", "v10", "s", 12)
        .await
        .unwrap();
    d.clone_volume("c", "v2", 2).await.unwrap();
    d.create_volume_from_image("img", Path::new("/no/such/image"), "qcow2", 30)
        .await
        .unwrap();
    let stats = d.stats().await.unwrap();
    assert_eq!(stats.provisioned_gb, 55 + 10 + 12 + 2 + 30);
    // Thin: over-subscription is the scheduler's business, free never goes below zero.
    assert_eq!(stats.free_gb, 0);
    assert_eq!(d.volume_size("from-s"), Some(12));
    assert_eq!(d.counts(), (13, 1));

    d.attach("v3", "host-a").await.unwrap();
    d.attach("v3", "host-b").await.unwrap();
    d.detach("v3", "host-a").await.unwrap();
    assert_eq!(d.connected_hosts("v3"), ["host-b"]);

    let exported = d
        .export_volume("v3", "qcow2", scratch.path())
        .await
        .unwrap();
    assert_eq!(std::fs::metadata(&exported).unwrap().len(), 0);
    let full = d
        .backup_volume("v3", &scratch.path().join("b1"), None)
        .await
        .unwrap();
    assert_eq!(
        (full.size_bytes, full.chunks_stored, full.bytes_stored),
        (3 * GIB, 0, 0)
    );
    let incr = d
        .backup_volume("v3", &scratch.path().join("b2"), Some(&full.manifest))
        .await
        .unwrap();
    assert_eq!(incr.chunks_referenced, 0);
    d.restore_backup(&incr.manifest, &[], "v4").await.unwrap();

    for id in [
        "v1", "v2", "v3", "v4", "v5", "v6", "v7", "v8", "v9", "v10", "from-s", "c", "img",
    ] {
        d.delete_volume(id).await.unwrap();
    }
    d.delete_snapshot("v10", "s").await.unwrap();
    assert_eq!(d.counts(), (0, 0));
    assert_eq!(d.stats().await.unwrap().free_gb, 100);
}
