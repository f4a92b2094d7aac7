//! Acceptance: Swift through the real clients — `openstack container/object ...` (openstacksdk underneath,
//! the catalog's `object-store` endpoint) and python-swiftclient's `swift` (upload, list with prefix and
//! delimiter, post, stat, download, tempurl fetched by a plain HTTP client without a token). Large object
//! uploads with `swift upload --segment-size` are in object_large_http.rs; error cases in object_http.rs.

use std::fs;

use crate::common::swift::*;
use crate::common::*;

#[test]
fn containers_and_objects_through_the_openstack_cli() {
    let Some(_cli) = require_cli() else { return };
    let server = Server::start();
    let os = |args: &[&str]| ok(&server, &args.join(" "), openstack(&server, args));
    let osj = |args: &[&str]| ok(&server, &args.join(" "), openstack_json(&server, args));
    let work = server.dir().join("cli-work");
    fs::create_dir_all(&work).unwrap();
    let file = work.join("notes.txt");
    let data = bytes_of(70_000, 3);
    fs::write(&file, &data).unwrap();
    // Object names are the paths given to `object create`: run it in the work directory for a relative one.
    let in_dir = |dir: &std::path::Path, args: &[&str]| {
        let mut cmd = std::process::Command::new(openstack_bin());
        cmd.current_dir(dir)
            .env("OS_CLIENT_CONFIG_FILE", server.clouds_yaml())
            .env("OS_CLOUD", "strata")
            .args(args);
        let out = run_with_timeout(cmd, std::time::Duration::from_secs(60));
        assert!(out.success, "{}", out.all_text());
        out.stdout
    };
    let file_arg = "notes.txt".to_string();

    let created = osj(&["container", "create", "box"]);
    assert_eq!(created[0]["container"], "box", "{created}");
    let obj: serde_json::Value = serde_json::from_str(&in_dir(
        &work,
        &["object", "create", "box", "notes.txt", "-f", "json"],
    ))
    .unwrap();
    assert_eq!(obj[0]["etag"], md5_hex(&data), "{obj}");
    let listed = osj(&["object", "list", "box"]);
    assert_eq!(listed[0]["Name"], file_arg, "{listed}");
    os(&[
        "object",
        "set",
        "--property",
        "color=blue",
        "box",
        &file_arg,
    ]);
    let shown = osj(&["object", "show", "box", &file_arg]);
    assert_eq!(shown["properties"]["color"], "blue", "{shown}");
    assert_eq!(shown["content-length"], "70000", "{shown}");
    assert_eq!(shown["content-type"], "text/plain", "{shown}");
    let c = osj(&["container", "show", "box"]);
    assert_eq!(c["object_count"], "1", "{c}");
    assert_eq!(c["bytes_used"], "70000", "{c}");
    let containers = osj(&["container", "list"]);
    assert!(
        row_with(&containers, "Name", "box").is_some(),
        "{containers}"
    );

    let saved = work.join("saved.txt");
    os(&[
        "object",
        "save",
        "--file",
        &saved.to_string_lossy(),
        "box",
        &file_arg,
    ]);
    assert_eq!(fs::read(&saved).unwrap(), data);
    // `container save` writes every object under its name, relative to the current directory.
    let all = work.join("all");
    fs::create_dir_all(&all).unwrap();
    in_dir(&all, &["container", "save", "box"]);
    assert_eq!(fs::read(all.join("notes.txt")).unwrap(), data);

    os(&["object", "delete", "box", &file_arg]);
    assert_eq!(
        osj(&["object", "list", "box"]).as_array().map(Vec::len),
        Some(0)
    );
    os(&["container", "delete", "box"]);
    let containers = osj(&["container", "list"]);
    assert!(
        row_with(&containers, "Name", "box").is_none(),
        "{containers}"
    );
}

#[test]
fn upload_list_post_stat_download_and_tempurl_through_swiftclient() {
    let Some(_cli) = require_cli() else { return };
    let server = Server::start();
    let work = server.dir().join("swift-work");
    for (name, seed) in [("docs/a/1.txt", 1), ("docs/a/2.txt", 2), ("docs/b.txt", 3)] {
        let path = work.join(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, bytes_of(5_000 + seed as usize, seed)).unwrap();
    }
    swift_ok(&server, &work, &["upload", "c", "docs"]);
    let all = swift_ok(&server, &work, &["list", "c"]);
    assert_eq!(
        all.lines().collect::<Vec<_>>(),
        ["docs/a/1.txt", "docs/a/2.txt", "docs/b.txt"]
    );
    let under_a = swift_ok(&server, &work, &["list", "--prefix", "docs/a/", "c"]);
    assert_eq!(
        under_a.lines().collect::<Vec<_>>(),
        ["docs/a/1.txt", "docs/a/2.txt"]
    );
    let folders = swift_ok(
        &server,
        &work,
        &["list", "--prefix", "docs/", "--delimiter", "/", "c"],
    );
    assert_eq!(
        folders.lines().collect::<Vec<_>>(),
        ["docs/a/", "docs/b.txt"]
    );

    swift_ok(&server, &work, &["post", "-m", "color:blue", "c"]);
    let stat = swift_ok(&server, &work, &["stat", "c"]);
    assert!(stat.contains("Meta Color: blue"), "{stat}");
    assert!(stat.contains("Objects: 3"), "{stat}");
    let account = swift_ok(&server, &work, &["stat"]);
    assert!(account.contains("Containers: 1"), "{account}");
    assert!(account.contains("Objects: 3"), "{account}");

    let out = work.join("out");
    fs::create_dir_all(&out).unwrap();
    swift_ok(&server, &out, &["download", "c"]);
    for name in ["docs/a/1.txt", "docs/a/2.txt", "docs/b.txt"] {
        assert_eq!(
            fs::read(out.join(name)).unwrap(),
            fs::read(work.join(name)).unwrap(),
            "{name}"
        );
    }

    // A temp URL made by `swift tempurl`, fetched without a token.
    swift_ok(&server, &work, &["post", "-m", "Temp-URL-Key:sekrit"]);
    let account_line = account
        .lines()
        .find_map(|l| l.trim().strip_prefix("Account: "))
        .expect("swift stat names the account")
        .to_string();
    let path = format!("/v1/{account_line}/c/docs/b.txt");
    let signed = swift_ok(&server, &work, &["tempurl", "GET", "60", &path, "sekrit"]);
    let base = server
        .endpoint("object")
        .unwrap()
        .split("/v1/")
        .next()
        .unwrap()
        .to_string();
    let r = swift_request("GET", &format!("{base}{}", signed.trim()), &[], None, false).expect(200);
    assert_eq!(r.body, fs::read(work.join("docs/b.txt")).unwrap());
    let forged = signed.trim().replace("temp_url_sig=", "temp_url_sig=0");
    assert_eq!(
        swift_request("GET", &format!("{base}{forged}"), &[], None, false).status,
        401
    );

    swift_ok(&server, &work, &["delete", "c", "docs/b.txt"]);
    let left = swift_ok(&server, &work, &["list", "c"]);
    assert_eq!(left.lines().count(), 2, "{left}");
}

/// Listings with a delimiter end when the last entry is a pseudo-folder: `swift list --delimiter /` (which
/// pages with the last name as the next marker), `openstack object list --all --delimiter / --limit 1` (one
/// entry per page, the last subdir as the marker), and swiftclient's listing in reverse, paged the same way.
/// Before Swift's rule (a pseudo-folder equal to the marker is not listed again) each of these looped for
/// ever.
#[test]
fn folder_listings_end_when_the_last_entry_is_a_folder() {
    let Some(_cli) = require_cli() else { return };
    let server = Server::start();
    let work = server.dir().join("folders");
    for name in ["a.txt", "d1/x", "d2/y", "d2/z"] {
        let path = work.join(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, name.as_bytes()).unwrap();
    }
    swift_ok(&server, &work, &["upload", "c", "a.txt", "d1", "d2"]);
    let listed = swift_ok(&server, &work, &["list", "--delimiter", "/", "c"]);
    assert_eq!(listed.lines().collect::<Vec<_>>(), ["a.txt", "d1/", "d2/"]);
    let under = swift_ok(
        &server,
        &work,
        &["list", "--prefix", "d2/", "--delimiter", "/", "c"],
    );
    assert_eq!(under.lines().collect::<Vec<_>>(), ["d2/y", "d2/z"]);

    let paged = openstack_json(
        &server,
        &[
            "object",
            "list",
            "--all",
            "--delimiter",
            "/",
            "--limit",
            "1",
            "c",
        ],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    // The CLI shows a pseudo-folder's row with an empty name (it reads `name`, folders have `subdir`):
    // what matters is that the paging ends after the three entries.
    let rows = paged.as_array().expect("list");
    assert_eq!(rows.len(), 3, "{paged}");
    assert_eq!(rows[0]["Name"], "a.txt", "{paged}");

    let script = r#"
import json, openstack, swiftclient.client as sc
conn = openstack.connect(cloud="strata")
swift = sc.Connection(preauthurl=conn.object_store.get_endpoint(), preauthtoken=conn.auth_token)
def walk(**kw):
    # swiftclient's full_listing drops query_string, so page the way it does: the last name is the marker.
    out, marker = [], ""
    for _ in range(50):
        _, page = swift.get_container("c", delimiter="/", limit=1, marker=marker,
                                      query_string="reverse=on", **kw)
        if not page:
            return out
        marker = page[-1].get("name") or page[-1].get("subdir")
        out.append(marker)
    raise SystemExit("the reverse listing pages for ever: %r" % out)
print(json.dumps({"reverse": walk(), "reverse_prefix": walk(prefix="d")}))
"#;
    let mut cmd = std::process::Command::new(venv_dir().join("bin").join("python"));
    cmd.arg("-c")
        .arg(script)
        .env("OS_CLIENT_CONFIG_FILE", server.clouds_yaml())
        .env("OS_CLOUD", "strata");
    let out = run_with_timeout(cmd, std::time::Duration::from_secs(60));
    assert!(out.success, "{}", out.all_text());
    let v: serde_json::Value = serde_json::from_str(out.stdout.trim()).expect("json");
    assert_eq!(
        v["reverse"],
        serde_json::json!(["d2/", "d1/", "a.txt"]),
        "{v}"
    );
    assert_eq!(
        v["reverse_prefix"],
        serde_json::json!(["d2/", "d1/"]),
        "{v}"
    );
}
