//! Acceptance: Swift large objects (DLO and SLO) and bulk delete over HTTP, and python-swiftclient's segmented
//! uploads (`swift upload --segment-size`, SLO by default and DLO with `--use-dlo`) downloaded byte-identical.

use std::fs;

use crate::common::swift::*;
use crate::common::*;
use serde_json::json;

#[test]
fn dynamic_and_static_large_objects_and_bulk_delete() {
    let server = Server::start();
    let a = Account::admin(&server);
    a.put("c", b"").expect(201);
    a.put("segs", b"").expect(201);
    let parts: Vec<Vec<u8>> = (0..3).map(|i| bytes_of(1000 + i * 10, i as u64)).collect();
    let whole: Vec<u8> = parts.concat();
    for (i, p) in parts.iter().enumerate() {
        a.put(&format!("segs/big/{i:03}"), p).expect(201);
    }
    let etags: Vec<String> = parts.iter().map(|p| md5_hex(p)).collect();

    // DLO: a zero-byte manifest naming a prefix.
    a.call(
        "PUT",
        "c/dlo",
        &[("X-Object-Manifest", "segs/big/")],
        Some(b""),
    )
    .expect(201);
    let got = a.get("c/dlo").expect(200);
    assert_eq!(got.body, whole);
    assert_eq!(
        got.header("etag"),
        Some(format!("\"{}\"", md5_hex(etags.concat().as_bytes()))).as_deref()
    );
    assert_eq!(got.header("x-object-manifest"), Some("segs/big/"));
    let r = a
        .call("GET", "c/dlo", &[("Range", "bytes=995-1004")], None)
        .expect(206);
    assert_eq!(
        r.body,
        whole[995..1005],
        "a range across a segment boundary"
    );
    let head = a.head("c/dlo").expect(200);
    assert_eq!(
        head.header("content-length"),
        Some(whole.len().to_string().as_str())
    );
    let manifest_only = a.get("c/dlo?multipart-manifest=get").expect(200);
    assert!(manifest_only.body.is_empty());
    assert_eq!(manifest_only.header("x-object-manifest"), Some("segs/big/"));
    assert_eq!(manifest_only.header("etag"), Some(md5_hex(b"").as_str()));

    // SLO: a manifest naming the segments; bad manifests store nothing.
    let manifest = json!([
        {"path": "/segs/big/000", "etag": etags[0], "size_bytes": 1000},
        {"path": "/segs/big/001", "etag": null, "size_bytes": null},
        {"path": "/segs/big/002", "etag": etags[2]},
    ]);
    let bad = [
        json!([{"path": "/segs/big/000", "etag": "0".repeat(32)}]).to_string(),
        json!([{"path": "/segs/missing"}]).to_string(),
        json!([{"path": "/segs/big/000", "size_bytes": 1}]).to_string(),
        "not json".to_string(),
        json!({"path": "/segs/big/000"}).to_string(),
        json!([{"path": "/segs/big/000", "range": "5000-6000"}]).to_string(),
        json!([{"path": "/c/slo"}]).to_string(),
        json!([{"path": "/segs/big/000", "color": "red"}]).to_string(),
    ];
    for body in &bad {
        let r = a.call(
            "PUT",
            "c/slo?multipart-manifest=put",
            &[],
            Some(body.as_bytes()),
        );
        assert_eq!(r.status, 400, "{body}: {}", r.describe());
    }
    assert!(a
        .call(
            "PUT",
            "c/slo?multipart-manifest=put",
            &[],
            Some(bad[0].as_bytes())
        )
        .text()
        .contains("Etag Mismatch"));
    assert_eq!(
        a.head("c/slo").status,
        404,
        "a refused manifest stores nothing"
    );
    let r = a.call(
        "PUT",
        "c/slo?multipart-manifest=put",
        &[("Content-Type", "application/x-big")],
        Some(manifest.to_string().as_bytes()),
    );
    assert_eq!(r.status, 201, "{}", r.describe());
    let slo_etag = md5_hex(etags.concat().as_bytes());
    assert_eq!(r.header("etag"), Some(format!("\"{slo_etag}\"")).as_deref());
    let head = a.head("c/slo").expect(200);
    assert_eq!(
        head.header("content-length"),
        Some(whole.len().to_string().as_str())
    );
    assert_eq!(head.header("x-static-large-object"), Some("True"));
    assert_eq!(a.get("c/slo").body, whole);
    let listing = a.get("c?format=json&prefix=slo").json();
    assert_eq!(listing[0]["bytes"], whole.len());
    let stored = a.get("c/slo?multipart-manifest=get").expect(200).json();
    assert_eq!(stored[1]["name"], "/segs/big/001");
    assert_eq!(stored[1]["hash"], etags[1]);
    let raw = a
        .get("c/slo?multipart-manifest=get&format=raw")
        .expect(200)
        .json();
    assert_eq!(raw[2]["path"], "/segs/big/002");
    assert_eq!(raw[2]["size_bytes"], 1020);

    // The client's ETag of the whole manifest (MD5 of the segment ETags) is checked: 422 when it differs.
    let r = a.call(
        "PUT",
        "c/checked?multipart-manifest=put",
        &[("ETag", "\"0123456789abcdef0123456789abcdef\"")],
        Some(manifest.to_string().as_bytes()),
    );
    assert_eq!(r.status, 422, "{}", r.describe());
    assert_eq!(a.head("c/checked").status, 404);
    let quoted = format!("\"{slo_etag}\"");
    a.call(
        "PUT",
        "c/checked?multipart-manifest=put",
        &[("ETag", quoted.as_str())],
        Some(manifest.to_string().as_bytes()),
    )
    .expect(201);

    // Ranged segments (normalized, the whole-object size kept) and an SLO nested in an SLO.
    let ranged = json!([
        {"path": "/segs/big/000", "range": "10-19"},
        {"path": "/segs/big/001", "range": "-5"},
        {"path": "c/slo"},
    ]);
    let r = a.call(
        "PUT",
        "c/nested?multipart-manifest=put",
        &[],
        Some(ranged.to_string().as_bytes()),
    );
    assert_eq!(r.status, 201, "{}", r.describe());
    let nested_etag =
        md5_hex(format!("{}:10-19;{}:1005-1009;{slo_etag}", etags[0], etags[1]).as_bytes());
    assert_eq!(
        r.header("etag"),
        Some(format!("\"{nested_etag}\"")).as_deref()
    );
    let expected: Vec<u8> = [&parts[0][10..20], &parts[1][1005..], &whole[..]].concat();
    let got = a.get("c/nested").expect(200);
    assert_eq!(got.body, expected);
    let r = a
        .call("GET", "c/nested", &[("Range", "bytes=12-2022")], None)
        .expect(206);
    assert_eq!(r.body, expected[12..2023]);
    let raw = a
        .get("c/nested?multipart-manifest=get&format=raw")
        .expect(200)
        .json();
    assert_eq!(raw[1]["range"], "1005-1009");
    assert_eq!(raw[1]["size_bytes"], 1010);
    assert_eq!(raw[2]["size_bytes"], whole.len());
    // heartbeat=on: 202 at once, the outcome in the body.
    let r = a
        .call(
            "PUT",
            "c/beat?multipart-manifest=put&heartbeat=on",
            &[("Accept", "application/json")],
            Some(manifest.to_string().as_bytes()),
        )
        .expect(202);
    let v: serde_json::Value = serde_json::from_str(r.text().trim()).unwrap();
    assert_eq!(v["Response Status"], "201 Created", "{v}");
    assert_eq!(a.get("c/beat").body, whole);

    // Copies of large objects are plain objects with the assembled bytes.
    a.call("COPY", "c/slo", &[("Destination", "c/copy")], None)
        .expect(201);
    let copy = a.head("c/copy");
    assert_eq!(copy.header("x-static-large-object"), None);
    assert_eq!(copy.header("etag"), Some(md5_hex(&whole).as_str()));
    assert_eq!(a.get("c/copy").body, whole);

    // A segment replaced under the manifest makes it unreadable rather than wrong.
    a.put("segs/big/001", b"changed").expect(201);
    assert_eq!(a.get("c/slo").status, 409);
    a.put("segs/big/001", &parts[1]).expect(201);
    assert_eq!(a.get("c/slo").body, whole);

    // multipart-manifest=delete removes the segments with the manifest.
    let r = a
        .call(
            "DELETE",
            "c/slo?multipart-manifest=delete",
            &[("Accept", "application/json")],
            None,
        )
        .expect(200);
    assert_eq!(r.json()["Number Deleted"], 4, "{}", r.text());
    assert_eq!(a.head("c/slo").status, 404);
    assert!(a.names("segs").is_empty());
    // The manifests built on those segments now answer 409 rather than wrong bytes.
    assert_eq!(a.get("c/nested").status, 409);
    assert_eq!(a.get("c/beat").status, 409);
    for m in ["c/nested", "c/beat", "c/checked"] {
        a.delete(m).expect(204);
    }
    // Not an SLO: nothing is deleted.
    let r = a
        .call("DELETE", "c/dlo?multipart-manifest=delete", &[], None)
        .expect(200);
    assert!(
        r.text().contains("Response Status: 400 Bad Request")
            && r.text().contains("/c/dlo, Not an SLO manifest"),
        "{}",
        r.text()
    );
    a.head("c/dlo").expect(200);

    // Bulk delete: objects, a missing one, a container that is not empty, and one that then is.
    for n in ["x", "y", "z"] {
        a.put(&format!("c/{n}"), n.as_bytes()).expect(201);
    }
    let body = "/c/x\n/c/y\n/c/nothing\n/segs\n/c/with%20space\n";
    let r = a
        .call(
            "POST",
            "?bulk-delete",
            &[
                ("Accept", "application/json"),
                ("Content-Type", "text/plain"),
            ],
            Some(body.as_bytes()),
        )
        .expect(200);
    let v = r.json();
    assert_eq!(v["Number Deleted"], 3, "{v}");
    assert_eq!(v["Number Not Found"], 2, "{v}");
    assert_eq!(a.names("c"), ["copy", "dlo", "z"]);
    let r = a.call(
        "POST",
        "?bulk-delete",
        &[("Content-Type", "text/plain")],
        Some(b"/c\n"),
    );
    assert!(r.text().contains("409 Conflict"), "{}", r.text());
    let other = a.as_caller(None);
    assert_eq!(
        other
            .call("POST", "?bulk-delete", &[], Some(b"/c/z\n"))
            .status,
        401
    );
    assert_eq!(a.get("c/z").body, b"z");

    // Objects go before containers whatever the order of the lines; XML when asked for.
    a.put("e", b"").expect(201);
    a.put("e/o%20p", b"1").expect(201);
    let r = a
        .call(
            "DELETE",
            "?bulk-delete",
            &[
                ("Accept", "application/xml"),
                ("Content-Type", "text/plain"),
            ],
            Some(b"/e\n/e/o%20p\n"),
        )
        .expect(200);
    assert!(
        r.text().contains("<number_deleted>2</number_deleted>")
            && r.text()
                .contains("<response_status>200 OK</response_status>"),
        "{}",
        r.text()
    );
    assert_eq!(a.head("e").status, 404);
    // Too many paths: nothing is deleted, the 413 is in the body.
    let many = "/c/z\n".repeat(10_001);
    let r = a
        .call(
            "POST",
            "?bulk-delete",
            &[("Accept", "application/json")],
            Some(many.as_bytes()),
        )
        .expect(200);
    assert_eq!(r.json()["Response Status"], "413 Request Entity Too Large");
    assert_eq!(a.get("c/z").body, b"z");
    let r = a
        .call(
            "POST",
            "?bulk-delete",
            &[("Content-Type", "application/json")],
            Some(b"/c/z\n"),
        )
        .expect(200);
    assert!(r.text().contains("406 Not Acceptable"), "{}", r.text());

    let replay = server.replay_verify();
    assert!(replay.success, "{}", replay.all_text());
}

#[test]
fn segmented_uploads_through_swiftclient() {
    let Some(_cli) = require_cli() else { return };
    let server = Server::start();
    let work = server.dir().join("large-work");
    fs::create_dir_all(&work).unwrap();
    let data = bytes_of(3 * 1024 * 1024 + 123, 9);
    fs::write(work.join("bigfile"), &data).unwrap();

    swift_ok(
        &server,
        &work,
        &["upload", "--segment-size", "1048576", "c", "bigfile"],
    );
    let segs = swift_ok(&server, &work, &["list", "c_segments"]);
    assert_eq!(segs.lines().count(), 4, "{segs}");
    let stat = swift_ok(&server, &work, &["stat", "c", "bigfile"]);
    assert!(stat.contains("X-Static-Large-Object: True"), "{stat}");
    swift_ok(
        &server,
        &work,
        &[
            "upload",
            "--use-dlo",
            "--segment-size",
            "1048576",
            "d",
            "bigfile",
        ],
    );
    let stat = swift_ok(&server, &work, &["stat", "d", "bigfile"]);
    assert!(stat.contains("Manifest: d_segments/bigfile/"), "{stat}");

    for container in ["c", "d"] {
        let out = work.join(format!("out-{container}"));
        fs::create_dir_all(&out).unwrap();
        swift_ok(&server, &out, &["download", container, "bigfile"]);
        assert_eq!(fs::read(out.join("bigfile")).unwrap(), data, "{container}");
    }

    swift_ok(&server, &work, &["delete", "c", "bigfile"]);
    swift_ok(&server, &work, &["delete", "d", "bigfile"]);
    for segments in ["c_segments", "d_segments"] {
        let left = swift_ok(&server, &work, &["list", segments]);
        assert!(left.trim().is_empty(), "{segments}: {left}");
    }
}
