//! Acceptance: Swift (object storage v1) over plain HTTP against the real binary — accounts, containers,
//! listings, objects (ETag checks, ranges, conditional requests, copies, metadata), ACLs and tenant isolation,
//! temp URLs, expiry, versioning, quotas, and bad input that must change nothing and leave no file behind.
//! Large objects and bulk delete are in object_large_http.rs; the real clients in object_cli.rs.

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::common::swift::*;
use crate::common::*;
use serde_json::json;

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A user with `role` on the admin project; returns a token scoped to it.
fn admin_project_user(server: &Server, admin: &str, user: &str, role: &str) -> String {
    let project = nova::project_id_of(server, admin, "admin");
    nova::new_user_with_role(server, admin, &project, user, role);
    get_token(
        server.identity_url(),
        user,
        &format!("pw-{user}"),
        Some("admin"),
    )
    .unwrap()
}

#[test]
fn accounts_containers_and_listings() {
    let server = Server::start();
    let a = Account::admin(&server);
    a.put("photos", b"").expect(201);
    a.put("photos", b"").expect(202);
    a.call("PUT", "docs", &[("X-Container-Meta-Color", "blue")], None)
        .expect(201);
    for name in ["a.txt", "b/1.txt", "b/2.txt", "b/c/3.txt", "c.txt"] {
        a.put(&format!("docs/{name}"), name.as_bytes()).expect(201);
    }

    let head = a.head("").expect(204);
    assert_eq!(head.header("x-account-container-count"), Some("2"));
    assert_eq!(head.header("x-account-object-count"), Some("5"));
    let bytes: usize = ["a.txt", "b/1.txt", "b/2.txt", "b/c/3.txt", "c.txt"]
        .iter()
        .map(|n| n.len())
        .sum();
    assert_eq!(
        head.header("x-account-bytes-used"),
        Some(bytes.to_string().as_str())
    );
    assert!(head.header("x-trans-id").is_some() && head.header("x-openstack-request-id").is_some());

    // Account listing in the three formats.
    assert_eq!(a.names(""), ["docs", "photos"]);
    let plain = a.get("").expect(200);
    assert_eq!(plain.text(), "docs\nphotos\n");
    let xml = a.get("?format=xml").expect(200).text();
    assert!(xml.contains("<name>docs</name><count>5</count>"), "{xml}");
    let json = a.get("?format=json&limit=1&marker=docs").expect(200).json();
    assert_eq!(json[0]["name"], "photos");
    assert_eq!(json[0]["count"], 0);

    // Container HEAD and listing parameters.
    let h = a.head("docs").expect(204);
    assert_eq!(h.header("x-container-object-count"), Some("5"));
    assert_eq!(h.header("x-container-meta-color"), Some("blue"));
    assert_eq!(a.names("docs?delimiter=/"), ["a.txt", "b/", "c.txt"]);
    assert_eq!(
        a.names("docs?prefix=b/&delimiter=/"),
        ["b/1.txt", "b/2.txt", "b/c/"]
    );
    assert_eq!(a.names("docs?path=b"), ["b/1.txt", "b/2.txt", "b/c/"]);
    assert_eq!(
        a.names("docs?marker=a.txt&end_marker=c.txt"),
        ["b/1.txt", "b/2.txt", "b/c/3.txt"]
    );
    assert_eq!(a.names("docs?reverse=true&limit=2"), ["c.txt", "b/c/3.txt"]);
    let listing = a.get("docs?format=json&prefix=a").expect(200).json();
    assert_eq!(listing[0]["hash"], md5_hex(b"a.txt"));
    assert_eq!(listing[0]["bytes"], 5);
    assert_eq!(listing[0]["content_type"], "text/plain");
    assert!(listing[0]["last_modified"].as_str().unwrap().contains('T'));
    assert_eq!(a.get("photos").status, 204, "an empty plain listing is 204");
    assert_eq!(a.get("photos?format=json").expect(200).json(), json!([]));
    assert_eq!(a.get("docs?limit=10001").status, 412);

    // Metadata POST, then removal.
    a.call("POST", "docs", &[("X-Container-Meta-Owner", "ann")], None)
        .expect(204);
    a.call("POST", "", &[("X-Account-Meta-Team", "blue")], None)
        .expect(204);
    assert_eq!(a.head("").header("x-account-meta-team"), Some("blue"));
    a.call(
        "POST",
        "docs",
        &[("X-Remove-Container-Meta-Color", "x")],
        None,
    )
    .expect(204);
    let h = a.head("docs");
    assert_eq!(h.header("x-container-meta-owner"), Some("ann"));
    assert_eq!(h.header("x-container-meta-color"), None);

    // DELETE only when empty; a missing container is 404.
    assert_eq!(a.delete("docs").status, 409);
    assert!(a.delete("docs").text().contains("Conflict"));
    a.delete("photos").expect(204);
    assert_eq!(a.delete("photos").status, 404);
    assert_eq!(a.head("photos").status, 404);
    assert_eq!(a.put("nope/x", b"x").status, 404);
    assert_eq!(a.names(""), ["docs"]);

    let replay = server.replay_verify();
    assert!(replay.success, "{}", replay.all_text());
}

#[test]
fn objects_etags_ranges_conditions_copies_and_metadata() {
    let server = Server::start();
    let a = Account::admin(&server);
    a.put("c", b"").expect(201);
    let data = bytes_of(100_000, 7);
    let etag = md5_hex(&data);

    // PUT with the right ETag, headers kept.
    let r = a.call(
        "PUT",
        "c/data.bin",
        &[
            ("ETag", &etag),
            ("Content-Type", "application/x-test"),
            ("Content-Disposition", "attachment; filename=d.bin"),
            ("Content-Encoding", "identity"),
            ("X-Object-Meta-Owner", "ann"),
        ],
        Some(&data),
    );
    assert_eq!(r.status, 201, "{}", r.describe());
    assert_eq!(r.header("etag"), Some(etag.as_str()));
    let got = a.get("c/data.bin").expect(200);
    assert_eq!(got.body, data);
    assert_eq!(got.header("etag"), Some(etag.as_str()));
    assert_eq!(got.header("content-type"), Some("application/x-test"));
    assert_eq!(
        got.header("content-disposition"),
        Some("attachment; filename=d.bin")
    );
    assert_eq!(got.header("content-encoding"), Some("identity"));
    assert_eq!(got.header("x-object-meta-owner"), Some("ann"));
    let head = a.head("c/data.bin").expect(200);
    assert_eq!(head.header("content-length"), Some("100000"));
    assert!(head.body.is_empty());

    // A wrong ETag is 422 and leaves nothing; If-None-Match: * refuses an existing name.
    let before = blob_files(server.data_dir());
    let r = a.call("PUT", "c/bad", &[("ETag", &md5_hex(b"other"))], Some(&data));
    assert_eq!(r.status, 422, "{}", r.describe());
    assert_eq!(a.head("c/bad").status, 404);
    assert_eq!(
        blob_files(server.data_dir()),
        before,
        "no file left by a refused PUT"
    );
    let r = a.call("PUT", "c/data.bin", &[("If-None-Match", "*")], Some(b"new"));
    assert_eq!(r.status, 412, "{}", r.describe());
    assert_eq!(a.get("c/data.bin").body, data);
    a.call("PUT", "c/fresh", &[("If-None-Match", "*")], Some(b"x"))
        .expect(201);

    // Chunked transfer encoding.
    let url = a.url_of("c/chunked");
    let token = a.token.clone().unwrap();
    let r = swift_request("PUT", &url, &[("X-Auth-Token", &token)], Some(&data), true);
    assert_eq!(r.status, 201, "{}", r.describe());
    assert_eq!(a.get("c/chunked").body, data);

    // Ranges: one, a suffix, several (multipart/byteranges), unsatisfiable.
    let r = a
        .call("GET", "c/data.bin", &[("Range", "bytes=10-19")], None)
        .expect(206);
    assert_eq!(r.body, data[10..20]);
    assert_eq!(r.header("content-range"), Some("bytes 10-19/100000"));
    let r = a
        .call("GET", "c/data.bin", &[("Range", "bytes=-5")], None)
        .expect(206);
    assert_eq!(r.body, data[99_995..]);
    let r = a
        .call("GET", "c/data.bin", &[("Range", "bytes=0-1,50-52")], None)
        .expect(206);
    let ct = r.header("content-type").unwrap().to_string();
    assert!(ct.starts_with("multipart/byteranges"), "{ct}");
    let boundary = ct.split("boundary=").nth(1).unwrap().to_string();
    assert_eq!(
        r.header("content-length"),
        Some(r.body.len().to_string().as_str())
    );
    let text = String::from_utf8_lossy(&r.body).into_owned();
    assert!(text.contains("Content-Range: bytes 0-1/100000"), "{text}");
    assert!(text.contains("Content-Range: bytes 50-52/100000"), "{text}");
    assert!(
        text.trim_end().ends_with(&format!("--{boundary}--")),
        "{text}"
    );
    let r = a.call("GET", "c/data.bin", &[("Range", "bytes=200000-")], None);
    assert_eq!(r.status, 416);

    // Conditional requests.
    let quoted = format!("\"{etag}\"");
    assert_eq!(
        a.call("GET", "c/data.bin", &[("If-None-Match", &quoted)], None)
            .status,
        304
    );
    assert_eq!(
        a.call("GET", "c/data.bin", &[("If-Match", "\"nope\"")], None)
            .status,
        412
    );
    assert_eq!(
        a.call("GET", "c/data.bin", &[("If-Match", &quoted)], None)
            .status,
        200
    );
    let later = "Fri, 01 Jan 2100 00:00:00 GMT";
    assert_eq!(
        a.call("GET", "c/data.bin", &[("If-Modified-Since", later)], None)
            .status,
        304
    );

    // POST replaces user metadata; content type may change.
    a.call(
        "POST",
        "c/data.bin",
        &[("X-Object-Meta-Size", "L"), ("Content-Type", "text/plain")],
        None,
    )
    .expect(202);
    let h = a.head("c/data.bin");
    assert_eq!(h.header("x-object-meta-size"), Some("L"));
    assert_eq!(h.header("x-object-meta-owner"), None);
    assert_eq!(h.header("content-type"), Some("text/plain"));
    assert_eq!(a.call("POST", "c/missing", &[], None).status, 404);

    // COPY and PUT with X-Copy-From keep bytes and metadata, with overrides.
    a.put("d", b"").expect(201);
    let r = a.call(
        "COPY",
        "c/data.bin",
        &[("Destination", "d/copy1"), ("X-Object-Meta-Extra", "1")],
        None,
    );
    assert_eq!(r.status, 201, "{}", r.describe());
    assert_eq!(r.header("x-copied-from"), Some("c/data.bin"));
    let c1 = a.get("d/copy1").expect(200);
    assert_eq!(c1.body, data);
    assert_eq!(c1.header("x-object-meta-size"), Some("L"));
    assert_eq!(c1.header("x-object-meta-extra"), Some("1"));
    a.call(
        "PUT",
        "d/copy2",
        &[("X-Copy-From", "/c/data.bin"), ("Content-Length", "0")],
        Some(b""),
    )
    .expect(201);
    assert_eq!(a.get("d/copy2").body, data);
    assert_eq!(
        a.call("COPY", "c/data.bin", &[("Destination", "nowhere/x")], None)
            .status,
        404
    );
    assert_eq!(
        a.call("PUT", "d/x", &[("X-Copy-From", "c/none")], Some(b""))
            .status,
        404
    );
    // The copy owns its bytes: deleting the source keeps it readable.
    a.delete("c/data.bin").expect(204);
    assert_eq!(a.get("c/data.bin").status, 404);
    assert_eq!(a.delete("c/data.bin").status, 404);
    assert_eq!(a.get("d/copy1").body, data);

    // Every blob on disk belongs to a live object.
    let live = a.names("c").len() + a.names("d").len();
    assert_eq!(blob_files(server.data_dir()), (0, live));

    // The object's history is in the log.
    let events = server.log_dump().unwrap();
    let stored = events
        .iter()
        .filter(|e| ev_type(e).starts_with("object.ObjectStored"))
        .count();
    assert!(stored >= 5, "{stored} ObjectStored events");
}

#[test]
fn bad_names_and_access_are_refused_without_a_trace() {
    let server = Server::start();
    let a = Account::admin(&server);
    let admin = a.token.clone().unwrap();
    a.put("c", b"").expect(201);
    a.put("c/o", b"data").expect(201);
    let before = neutron::head(&server);

    let long = "n".repeat(1025);
    let r = a.put(&format!("c/{long}"), b"x");
    assert_eq!(r.status, 400, "{}", r.describe());
    assert!(r.text().contains("longer than 1024"), "{}", r.text());
    assert_eq!(a.put(&format!("c/{}", "n".repeat(1024)), b"").status, 201);
    assert_eq!(a.put("c/bad%FFname", b"x").status, 412);
    assert_eq!(a.put("c/nul%00name", b"x").status, 412);
    assert_eq!(a.put(&"k".repeat(257), b"").status, 400);
    assert_eq!(
        a.call("PUT", "c2", &[("X-Versions-Location", "a/b")], None)
            .status,
        400
    );
    assert_eq!(
        a.call("PUT", "c2", &[("X-Container-Read", "nocolon")], None)
            .status,
        400
    );
    let big = "v".repeat(300);
    assert_eq!(
        a.call("POST", "c", &[("X-Container-Meta-Big", &big)], None)
            .status,
        400
    );
    assert_eq!(
        a.call("PUT", "c/past", &[("X-Delete-At", "1000")], Some(b"x"))
            .status,
        400
    );
    assert_eq!(
        a.call("PUT", "c/m", &[("X-Object-Manifest", "noslash")], Some(b""))
            .status,
        400
    );
    let r = a
        .as_caller(None)
        .call("GET", "c/o", &[("X-Auth-Token", "garbage")], None);
    assert!(r.status == 401, "{}", r.describe());
    // (the one name of 1024 bytes above was accepted: the log moved by exactly its event)
    assert_eq!(neutron::head(&server), before + 1);

    // No token: 401; another project's member: 403; nothing is revealed.
    let anon = a.as_caller(None);
    assert_eq!(anon.get("c/o").status, 401);
    assert_eq!(anon.get("").status, 401);
    let (_, _, other) = nova::new_member(&server, &admin, "other", "mallory");
    let m = a.as_caller(Some(&other));
    assert_eq!(m.get("c/o").status, 403);
    assert_eq!(m.get("c").status, 403);
    assert_eq!(m.head("").status, 403);
    assert_eq!(m.put("c/evil", b"x").status, 403);
    assert_eq!(m.delete("c/o").status, 403);
    assert_eq!(
        m.call("POST", "", &[("X-Account-Meta-X", "y")], None)
            .status,
        403
    );
    assert_eq!(a.get("c/o").body, b"data");

    // A reader of the project may read, not write.
    let reader = admin_project_user(&server, &admin, "rita", "reader");
    let r = a.as_caller(Some(&reader));
    assert_eq!(r.get("c/o").body, b"data");
    assert_eq!(r.put("c/new", b"x").status, 403);
    assert_eq!(
        r.call("POST", "c", &[("X-Container-Read", ".r:*")], None)
            .status,
        403
    );

    // ACLs: public read (objects, not listings, until .rlistings), and a write grant to another project.
    a.call("POST", "c", &[("X-Container-Read", ".r:*")], None)
        .expect(204);
    assert_eq!(anon.get("c/o").body, b"data");
    assert_eq!(anon.get("c").status, 401);
    assert_eq!(anon.put("c/anon", b"x").status, 401);
    a.call(
        "POST",
        "c",
        &[("X-Container-Read", ".r:*,.rlistings")],
        None,
    )
    .expect(204);
    assert!(anon.get("c").text().contains('o'));
    // The owner sees the ACL; others do not.
    assert_eq!(
        a.head("c").header("x-container-read"),
        Some(".r:*,.rlistings")
    );
    assert_eq!(anon.head("c").header("x-container-read"), None);
    let other_project = nova::project_id_of(&server, &admin, "other");
    a.call(
        "POST",
        "c",
        &[("X-Container-Write", &format!("{other_project}:*"))],
        None,
    )
    .expect(204);
    m.put("c/granted", b"ok").expect(201);
    assert_eq!(a.get("c/granted").body, b"ok");
    assert_eq!(
        m.delete("c").status,
        403,
        "a write ACL is not the container's ownership"
    );
}

#[test]
fn temp_urls_expiry_versioning_and_quotas() {
    let server = Server::start();
    let a = Account::admin(&server);
    let admin = a.token.clone().unwrap();
    a.put("c", b"").expect(201);
    a.put("c/report.txt", b"quarterly").expect(201);
    a.call(
        "POST",
        "",
        &[("X-Account-Meta-Temp-URL-Key", "sekrit")],
        None,
    )
    .expect(204);

    // Temp URLs: signed with each digest, fetched without a token.
    let path = a.url_of("c/report.txt");
    let path_only = path
        .split_once("/v1/")
        .map(|(_, p)| format!("/v1/{p}"))
        .unwrap();
    let now = chrono::Utc::now().timestamp();
    for (algo, hexlen) in [("sha1", 40), ("sha256", 64), ("sha512", 128)] {
        let sig = python_hmac(algo, "sekrit", &format!("GET\n{}\n{path_only}", now + 60));
        assert_eq!(sig.len(), hexlen);
        let url = format!("{path}?temp_url_sig={sig}&temp_url_expires={}", now + 60);
        let r = swift_request("GET", &url, &[], None, false);
        assert_eq!(r.status, 200, "{algo}: {}", r.describe());
        assert_eq!(r.body, b"quarterly");
        assert!(r
            .header("content-disposition")
            .unwrap()
            .contains("report.txt"));
        // Tampered signatures, other objects and PUTs with a GET signature are refused.
        let bad = format!(
            "{path}?temp_url_sig={}0&temp_url_expires={}",
            &sig[1..],
            now + 60
        );
        assert_eq!(swift_request("GET", &bad, &[], None, false).status, 401);
        let other = url.replace("report.txt", "other.txt");
        assert_eq!(swift_request("GET", &other, &[], None, false).status, 401);
        assert_eq!(
            swift_request("PUT", &url, &[], Some(b"x"), false).status,
            401
        );
    }
    let sig = python_hmac(
        "sha256",
        "sekrit",
        &format!("GET\n{}\n{path_only}", now - 10),
    );
    let expired = format!("{path}?temp_url_sig={sig}&temp_url_expires={}", now - 10);
    assert_eq!(swift_request("GET", &expired, &[], None, false).status, 401);
    // A PUT temp URL uploads.
    let put_path = path_only.replace("report.txt", "upload.bin");
    let sig = python_hmac(
        "sha256",
        "sekrit",
        &format!("PUT\n{}\n{put_path}", now + 60),
    );
    let url = format!(
        "{}?temp_url_sig={sig}&temp_url_expires={}",
        a.url_of("c/upload.bin"),
        now + 60
    );
    swift_request("PUT", &url, &[], Some(b"via temp url"), false).expect(201);
    assert_eq!(a.get("c/upload.bin").body, b"via temp url");
    // Only the owner sees the key.
    let (_, _, other) = nova::new_member(&server, &admin, "other", "mallory");
    assert!(a.head("").header("x-account-meta-temp-url-key").is_some());

    // Expiry: gone from GET at once, and from the listing and the disk once the expirer ran.
    a.call("PUT", "c/short", &[("X-Delete-After", "1")], Some(b"brief"))
        .expect(201);
    assert!(a.head("c/short").header("x-delete-at").is_some());
    wait_until("the expirer", Duration::from_secs(15), || {
        a.get("c/short").status == 404 && !a.names("c").contains(&"short".to_string())
    });

    // Versioning (stack mode): overwrites are archived, a delete brings the previous version back.
    a.put("archive", b"").expect(201);
    a.call("PUT", "v", &[("X-Versions-Location", "archive")], None)
        .expect(201);
    a.put("v/doc", b"one").expect(201);
    a.put("v/doc", b"two").expect(201);
    a.put("v/doc", b"three").expect(201);
    assert_eq!(a.names("archive").len(), 2);
    assert!(
        a.names("archive")[0].starts_with("003doc/"),
        "{:?}",
        a.names("archive")
    );
    a.delete("v/doc").expect(204);
    assert_eq!(a.get("v/doc").body, b"two");
    a.delete("v/doc").expect(204);
    assert_eq!(a.get("v/doc").body, b"one");
    a.delete("v/doc").expect(204);
    assert_eq!(a.get("v/doc").status, 404);
    assert!(a.names("archive").is_empty());
    // History mode: a delete archives the current version.
    a.call("PUT", "h", &[("X-History-Location", "archive")], None)
        .expect(201);
    a.put("h/log", b"entry").expect(201);
    a.delete("h/log").expect(204);
    assert_eq!(a.get("h/log").status, 404);
    assert_eq!(a.names("archive").len(), 1);

    // Quotas: container bytes and count, account bytes (set by a reseller admin only).
    a.call(
        "PUT",
        "q",
        &[
            ("X-Container-Meta-Quota-Bytes", "10"),
            ("X-Container-Meta-Quota-Count", "2"),
        ],
        None,
    )
    .expect(201);
    a.put("q/a", b"12345").expect(201);
    assert_eq!(a.put("q/b", b"1234567").status, 413);
    a.put("q/b", b"12345").expect(201);
    assert_eq!(a.put("q/c", b"").status, 413);
    a.put("q/a", b"1").expect(201); // replacing stays within the quota
    assert_eq!(a.names("q"), ["a", "b"]);
    let m = a.as_caller(Some(&other));
    assert_eq!(
        m.call("POST", "", &[("X-Account-Meta-Quota-Bytes", "1")], None)
            .status,
        403
    );
    let used: u64 = a
        .head("")
        .header("x-account-bytes-used")
        .unwrap()
        .parse()
        .unwrap();
    a.call(
        "POST",
        "",
        &[("X-Account-Meta-Quota-Bytes", &(used + 3).to_string())],
        None,
    )
    .expect(204);
    assert_eq!(a.put("c/big", b"12345").status, 413);
    a.put("c/small", b"123").expect(201);

    let replay = server.replay_verify();
    assert!(replay.success, "{}", replay.all_text());
}

/// HMAC hex digest computed by Python's hmac module (an implementation independent of the server's).
fn python_hmac(algo: &str, key: &str, msg: &str) -> String {
    let py = venv_dir().join("bin/python");
    let python = if py.exists() { py } else { "python3".into() };
    let out = std::process::Command::new(python)
        .args([
            "-c",
            "import hmac,hashlib,sys; print(hmac.new(sys.argv[1].encode(), sys.argv[3].encode(), getattr(hashlib, sys.argv[2])).hexdigest())",
            key,
            algo,
            msg,
        ])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn an_interrupted_upload_leaves_nothing_and_a_restart_keeps_everything() {
    let mut server = Server::start();
    let a = Account::admin(&server);
    a.put("c", b"").expect(201);
    a.put("c/kept", b"kept bytes").expect(201);

    // A client that sends part of its body and hangs up.
    let url = a.url_of("c/partial");
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let mut s = TcpStream::connect(host).unwrap();
    let token = a.token.clone().unwrap();
    write!(
        s,
        "PUT /{path} HTTP/1.1\r\nHost: {host}\r\nX-Auth-Token: {token}\r\nContent-Length: 1000000\r\n\r\n"
    )
    .unwrap();
    s.write_all(&[7u8; 10_000]).unwrap();
    s.flush().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    drop(s);
    wait_until(
        "the aborted upload's temp file to go",
        Duration::from_secs(10),
        || blob_files(server.data_dir()).0 == 0,
    );
    assert_eq!(a.head("c/partial").status, 404);
    assert_eq!(blob_files(server.data_dir()), (0, 1));

    // Leftovers of a crash (an unfinished upload, an unreferenced blob) are swept at start.
    server.kill();
    let objects = server.data_dir().join("objects");
    std::fs::write(objects.join(".tmp-crashed"), b"half").unwrap();
    std::fs::create_dir_all(objects.join("ab")).unwrap();
    std::fs::write(
        objects.join("ab").join("ab000000000000000000000000000000"),
        b"orphan",
    )
    .unwrap();
    server.restart();
    assert_eq!(blob_files(server.data_dir()), (0, 1));
    let a = Account::admin(&server);
    assert_eq!(a.get("c/kept").body, b"kept bytes");
    assert_eq!(a.names("c"), ["kept"]);
}
