//! Glance v2 (image service) at the HTTP level (fast): version discovery and schemas, image data round trips
//! with `Content-MD5` and byte ranges, list filters/sorting/paging, JSON-patch updates, Glance's error bodies,
//! aborted uploads and quotas leaving neither bytes nor half-active images, tenant isolation, sharing through
//! members, protected images, and that the log stays verifiable and replayable afterwards.
//!
//! Every response these tests receive over ureq must carry `X-OpenStack-Request-Id` (checked centrally).

use std::collections::BTreeSet;
use std::io::Write;
use std::net::TcpStream;
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::{json, Value};

const JSON_PATCH: &str = "application/openstack-images-v2.1-json-patch";

// ---------------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------------

fn uname(prefix: &str) -> String {
    format!("{prefix}-{}", unique_suffix())
}

fn image_root(server: &Server) -> String {
    server
        .endpoint("image")
        .unwrap_or_else(|| panic!("READY line has no image endpoint"))
        .trim_end_matches('/')
        .to_string()
}

fn assert_has_request_id_raw(what: &str, rid: Option<&str>) {
    assert!(
        rid.map(|r| !r.trim().is_empty()).unwrap_or(false),
        "every response must carry X-OpenStack-Request-Id: {what}"
    );
}

/// A JSON request (or none) with an optional token; asserts the request id.
fn call(method: &str, url: &str, token: Option<&str>, body: Option<&Value>) -> Resp {
    let r = request(method, url, token, body);
    assert_has_request_id_raw(&r.describe(), r.request_id());
    r
}

/// A request with a text body and explicit headers (token included by the caller); asserts the request id.
fn call_text(method: &str, url: &str, headers: &[(&str, &str)], body: Option<&str>) -> Resp {
    let r = request_raw(method, url, headers, body)
        .unwrap_or_else(|e| panic!("HTTP transport error: {e}"));
    assert_has_request_id_raw(&r.describe(), r.request_id());
    r
}

/// A raw-bytes request; asserts the request id.
fn call_bytes(
    method: &str,
    url: &str,
    token: &str,
    extra: &[(&str, &str)],
    body: Option<&[u8]>,
) -> RawResp {
    let mut headers: Vec<(&str, &str)> = vec![("X-Auth-Token", token)];
    headers.extend_from_slice(extra);
    let r = request_bytes(method, url, &headers, body)
        .unwrap_or_else(|e| panic!("HTTP transport error: {e}"));
    assert_has_request_id_raw(&r.describe(), r.request_id());
    r
}

/// Glance's (webob's) error body: `{"code": "400 Bad Request", "title": "Bad Request", "message": "..."}`.
fn assert_glance_error(r: &Resp, status: u16, title: &str) {
    assert_eq!(r.status, status, "unexpected status: {}", r.describe());
    let v: Value = serde_json::from_str(&r.body)
        .unwrap_or_else(|e| panic!("error body is not JSON ({e}): {}", r.describe()));
    assert_eq!(
        v["code"].as_str(),
        Some(format!("{status} {title}").as_str()),
        "error body `code`: {}",
        r.describe()
    );
    assert_eq!(
        v["title"].as_str(),
        Some(title),
        "error body `title`: {}",
        r.describe()
    );
    assert!(
        v["message"]
            .as_str()
            .map(|m| !m.is_empty())
            .unwrap_or(false),
        "error body `message` must be a non-empty string: {}",
        r.describe()
    );
}

fn images_url(img: &str) -> String {
    format!("{img}/v2/images")
}

fn image_url(img: &str, id: &str) -> String {
    format!("{img}/v2/images/{id}")
}

fn file_url(img: &str, id: &str) -> String {
    format!("{img}/v2/images/{id}/file")
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("no string field {key:?} in {v}"))
}

/// `POST /v2/images` that must succeed (201); returns the image.
fn create_image(img: &str, token: &str, body: &Value) -> Value {
    let r = call("POST", &images_url(img), Some(token), Some(body)).expect(201);
    r.json()
}

/// A qcow2/bare image named `name` (default visibility); returns its id.
fn create_named(img: &str, token: &str, name: &str) -> String {
    let v = create_image(
        img,
        token,
        &json!({"name": name, "disk_format": "raw", "container_format": "bare"}),
    );
    str_of(&v, "id").to_string()
}

fn upload(img: &str, token: &str, id: &str, data: &[u8]) -> RawResp {
    call_bytes(
        "PUT",
        &file_url(img, id),
        token,
        &[("Content-Type", "application/octet-stream")],
        Some(data),
    )
}

fn download(img: &str, token: &str, id: &str, range: Option<&str>) -> RawResp {
    let mut extra = Vec::new();
    if let Some(r) = range {
        extra.push(("Range", r));
    }
    call_bytes("GET", &file_url(img, id), token, &extra, None)
}

fn show(img: &str, token: &str, id: &str) -> Value {
    call("GET", &image_url(img, id), Some(token), None)
        .expect(200)
        .json()
}

fn patch_image(img: &str, token: &str, id: &str, ops: &Value) -> Resp {
    call_text(
        "PATCH",
        &image_url(img, id),
        &[("X-Auth-Token", token), ("Content-Type", JSON_PATCH)],
        Some(&ops.to_string()),
    )
}

/// `GET {img}{path_and_query}` as a list; returns (ids in order, the whole body).
fn list(img: &str, token: &str, path_and_query: &str) -> (Vec<String>, Value) {
    let r = call("GET", &format!("{img}{path_and_query}"), Some(token), None).expect(200);
    let v = r.json();
    let ids = v["images"]
        .as_array()
        .unwrap_or_else(|| panic!("no images list: {}", r.describe()))
        .iter()
        .map(|i| str_of(i, "id").to_string())
        .collect();
    (ids, v)
}

fn list_ids(img: &str, token: &str, query: &str) -> BTreeSet<String> {
    list(img, token, &format!("/v2/images?{query}"))
        .0
        .into_iter()
        .collect()
}

fn set_of(ids: &[&String]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

/// Names of the entries of `<data_dir>/images` (temporary upload files included).
fn stored_files(server: &Server) -> Vec<String> {
    let dir: PathBuf = server.data_dir().join("images");
    let mut v: Vec<String> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

/// Polls `GET /v2/images/{id}` until its status is `status`; returns the last image seen.
fn wait_for_status(img: &str, token: &str, id: &str, status: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let v = show(img, token, id);
        if v["status"] == status || Instant::now() >= deadline {
            return v;
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// Polls `<data_dir>/images` until it holds exactly `want`; returns what it last held.
fn wait_for_files(server: &Server, want: &[String], within: Duration) -> Vec<String> {
    let deadline = Instant::now() + within;
    let mut want = want.to_vec();
    want.sort();
    loop {
        let now = stored_files(server);
        if now == want || Instant::now() >= deadline {
            return now;
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// Kill the server, then `strata replay --verify` and `strata log verify` must both pass.
fn verify_log_and_replay(server: &mut Server) {
    server.kill();
    let out = server.replay_verify();
    assert!(
        out.success,
        "strata replay --verify must pass:\n{}",
        out.describe()
    );
    let head = server
        .log_verify()
        .unwrap_or_else(|e| panic!("strata log verify must pass:\n{e}"));
    assert!(head.events > 0, "the log holds events: {head:?}");
}

// --- Keystone (projects, users, roles) ---------------------------------------------------------------------

fn create_project(id: &str, admin: &str, name: &str) -> String {
    let r = post(
        &format!("{id}/projects"),
        Some(admin),
        &json!({"project": {"name": name, "description": "image tests", "enabled": true}}),
    )
    .expect(201);
    str_of(&r.json()["project"], "id").to_string()
}

/// A user with the role `member` on `project_id`; returns a token for it scoped to that project.
fn member_token(id: &str, admin: &str, user: &str, password: &str, project: &str) -> String {
    let project_id = find_by_name(id, admin, "projects", project)
        .map(|p| p["id"].as_str().unwrap_or_default().to_string())
        .unwrap_or_else(|| panic!("no project {project}"));
    let r = post(
        &format!("{id}/users"),
        Some(admin),
        &json!({"user": {"name": user, "password": password, "default_project_id": project_id, "enabled": true}}),
    )
    .expect(201);
    let user_id = str_of(&r.json()["user"], "id").to_string();
    let role = find_by_name(id, admin, "roles", "member").expect("role member exists");
    let role_id = role["id"].as_str().expect("role id");
    put(
        &format!("{id}/projects/{project_id}/users/{user_id}/roles/{role_id}"),
        Some(admin),
    )
    .expect(204);
    get_token(id, user, password, Some(project)).expect("member token")
}

/// Two projects, each with one `member` user: (p1 id, u1 token, p2 id, u2 token).
fn two_tenants(server: &Server) -> (String, String, String, String) {
    let id = server.identity_url().to_string();
    let admin = server.admin_token();
    let p1n = uname("img-p1");
    let p2n = uname("img-p2");
    let p1 = create_project(&id, &admin, &p1n);
    let p2 = create_project(&id, &admin, &p2n);
    let t1 = member_token(&id, &admin, &uname("u1"), "pw-one", &p1n);
    let t2 = member_token(&id, &admin, &uname("u2"), "pw-two", &p2n);
    (p1, t1, p2, t2)
}

// ---------------------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------------------

#[test]
fn version_discovery_and_schemas() {
    let mut server = Server::start();
    let img = image_root(&server);
    assert!(
        img.starts_with("http://127.0.0.1:") && !img.contains("/v2"),
        "image endpoint on the READY line must be http://127.0.0.1:PORT, got {img}"
    );

    let r = call("GET", &format!("{img}/"), None, None);
    assert_eq!(
        r.status,
        300,
        "GET / must answer 300 Multiple Choices: {}",
        r.describe()
    );
    let v = r.json();
    let versions = v["versions"]
        .as_array()
        .unwrap_or_else(|| panic!("no versions list: {v}"));
    let current: Vec<&Value> = versions
        .iter()
        .filter(|e| e["status"] == "CURRENT")
        .collect();
    assert_eq!(current.len(), 1, "exactly one CURRENT version: {v}");
    let cur = current[0];
    assert!(
        str_of(cur, "id").starts_with("v2."),
        "the CURRENT version is a v2.x: {v}"
    );
    for e in versions {
        let links = e["links"]
            .as_array()
            .unwrap_or_else(|| panic!("no links: {e}"));
        let me = links
            .iter()
            .find(|l| l["rel"] == "self")
            .unwrap_or_else(|| panic!("no self link: {e}"));
        let href = str_of(me, "href");
        assert!(
            href.starts_with(&img) && href.ends_with("/v2/"),
            "self link {href:?} must be {img}/v2/"
        );
    }

    let r = call("GET", &format!("{img}/v2/schemas/image"), None, None).expect(200);
    let schema = r.json();
    assert_eq!(schema["name"], "image", "{schema}");
    let props = schema["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("image schema has no properties: {schema}"));
    for p in [
        "id",
        "name",
        "status",
        "visibility",
        "disk_format",
        "container_format",
        "size",
        "checksum",
        "tags",
        "protected",
    ] {
        assert!(props.contains_key(p), "image schema lacks {p}: {schema}");
    }
    let r = call("GET", &format!("{img}/v2/schemas/images"), None, None).expect(200);
    assert!(
        r.json()["properties"]["images"].is_object(),
        "{}",
        r.describe()
    );

    // Without a token the API refuses (still with a request id); an unknown path is 404.
    let r = call("GET", &images_url(&img), None, None);
    assert_eq!(r.status, 401, "no token: {}", r.describe());
    let admin = server.admin_token();
    let r = call("GET", &format!("{img}/v2/nothing-here"), Some(&admin), None);
    assert_eq!(r.status, 404, "unknown path: {}", r.describe());

    verify_log_and_replay(&mut server);
}

#[test]
fn upload_download_round_trip_with_content_md5_and_ranges() {
    let mut server = Server::start();
    let img = image_root(&server);
    let admin = server.admin_token();

    let name = uname("rt");
    let created = create_image(
        &img,
        &admin,
        &json!({"name": name, "disk_format": "raw", "container_format": "bare", "os_distro": "cirros"}),
    );
    let id = str_of(&created, "id").to_string();
    uuid_like(&id);
    assert_eq!(created["status"], "queued", "{created}");
    assert_eq!(created["name"], name.as_str(), "{created}");
    assert_eq!(created["size"], Value::Null, "{created}");
    assert_eq!(created["checksum"], Value::Null, "{created}");
    assert_eq!(
        created["visibility"], "shared",
        "Glance's default visibility: {created}"
    );
    assert_eq!(created["protected"], false, "{created}");
    assert_eq!(
        created["os_distro"], "cirros",
        "extra properties at the top level: {created}"
    );
    assert_eq!(
        created["self"],
        format!("/v2/images/{id}").as_str(),
        "{created}"
    );
    assert_eq!(
        created["file"],
        format!("/v2/images/{id}/file").as_str(),
        "{created}"
    );
    assert_eq!(created["schema"], "/v2/schemas/image", "{created}");

    // An image without data: GET /file answers 204 (Glance).
    let r = download(&img, &admin, &id, None);
    assert_eq!(
        r.status,
        204,
        "download of a queued image: {}",
        r.describe()
    );

    let data = random_bytes(70_000);
    let md5 = md5_hex(&data);
    upload(&img, &admin, &id, &data).expect(204);
    let v = show(&img, &admin, &id);
    assert_eq!(v["status"], "active", "{v}");
    assert_eq!(v["size"].as_u64(), Some(data.len() as u64), "{v}");
    assert_eq!(v["checksum"].as_str(), Some(md5.as_str()), "{v}");
    assert_eq!(v["os_hash_algo"], "sha512", "{v}");
    assert_eq!(
        v["os_hash_value"].as_str().map(str::len),
        Some(128),
        "os_hash_value is a sha512 hex digest: {v}"
    );
    assert_eq!(
        v["virtual_size"],
        Value::Null,
        "raw data has no qcow2 header: {v}"
    );
    assert_eq!(
        stored_files(&server),
        vec![id.clone()],
        "the bytes live in <data_dir>/images/<id>"
    );
    let on_disk = std::fs::read(server.data_dir().join("images").join(&id)).expect("stored file");
    assert_eq!(
        on_disk, data,
        "the stored file holds exactly the uploaded bytes"
    );

    let r = download(&img, &admin, &id, None).expect(200);
    assert_eq!(r.body.len(), data.len(), "{}", r.describe());
    assert!(
        r.body == data,
        "downloaded bytes differ from the uploaded ones"
    );
    assert_eq!(
        r.header("content-md5"),
        Some(md5.as_str()),
        "Content-MD5 is the image checksum: {:?}",
        r.headers
    );
    assert_eq!(
        r.header("content-length"),
        Some(data.len().to_string().as_str()),
        "{:?}",
        r.headers
    );

    let size = data.len();
    let r = download(&img, &admin, &id, Some("bytes=10-19"));
    assert_eq!(r.status, 206, "Range bytes=10-19: {}", r.describe());
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes 10-19/{size}").as_str()),
        "{:?}",
        r.headers
    );
    assert_eq!(r.body, &data[10..20], "the 10 bytes of the range");

    let r = download(&img, &admin, &id, Some("bytes=5-"));
    assert_eq!(r.status, 206, "Range bytes=5-: {}", r.describe());
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes 5-{}/{size}", size - 1).as_str()),
        "{:?}",
        r.headers
    );
    assert!(
        r.body == data[5..],
        "bytes=5- returns the rest ({} bytes)",
        r.body.len()
    );

    // A range past the end is not satisfiable.
    let r = download(
        &img,
        &admin,
        &id,
        Some(&format!("bytes={}-{}", size + 10, size + 20)),
    );
    assert_eq!(r.status, 416, "unsatisfiable range: {}", r.describe());

    verify_log_and_replay(&mut server);
}

fn uuid_like(id: &str) {
    let ok = id.len() == 36
        && id.chars().enumerate().all(|(i, c)| {
            if [8, 13, 18, 23].contains(&i) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        });
    assert!(ok, "image ids are UUIDs, got {id:?}");
}

#[test]
fn list_filters_sorting_and_paging() {
    let mut server = Server::start();
    let img = image_root(&server);
    let admin = server.admin_token();

    // Five images: a..e; a, b, c carry data of 100, 200, 300 bytes; tags and visibility vary.
    let mk = |name: &str, extra: Value| -> String {
        let mut body = json!({"name": name, "disk_format": "raw", "container_format": "bare"});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                b.insert(k.clone(), v.clone());
            }
        }
        str_of(&create_image(&img, &admin, &body), "id").to_string()
    };
    let a = mk("img-a", json!({"tags": ["t1"], "flavor": "x"}));
    let b = mk("img-b", json!({"tags": ["t1", "t2"], "flavor": "y"}));
    let c = mk("img-c", json!({"tags": ["t2"], "visibility": "private"}));
    let d = mk("img-d", json!({"tags": []}));
    let e = mk("img-e", json!({"tags": ["t1"], "visibility": "private"}));
    upload(&img, &admin, &a, &random_bytes(100)).expect(204);
    upload(&img, &admin, &b, &random_bytes(200)).expect(204);
    upload(&img, &admin, &c, &random_bytes(300)).expect(204);
    let all = set_of(&[&a, &b, &c, &d, &e]);

    let (ids, body) = list(&img, &admin, "/v2/images");
    assert_eq!(ids.iter().cloned().collect::<BTreeSet<_>>(), all, "{body}");
    assert_eq!(body["schema"], "/v2/schemas/images", "{body}");
    assert!(
        body["first"].as_str().is_some(),
        "list has a `first` link: {body}"
    );
    assert!(
        body.get("next").is_none() || body["next"].is_null(),
        "no next page: {body}"
    );

    assert_eq!(
        list_ids(&img, &admin, "name=img-b"),
        set_of(&[&b]),
        "name filter"
    );
    assert_eq!(
        list_ids(&img, &admin, "name=nope"),
        BTreeSet::new(),
        "name filter, no match"
    );
    assert_eq!(
        list_ids(&img, &admin, "status=active"),
        set_of(&[&a, &b, &c]),
        "status=active"
    );
    assert_eq!(
        list_ids(&img, &admin, "status=queued"),
        set_of(&[&d, &e]),
        "status=queued"
    );
    assert_eq!(
        list_ids(&img, &admin, "visibility=private"),
        set_of(&[&c, &e]),
        "visibility=private"
    );
    assert_eq!(
        list_ids(&img, &admin, "visibility=shared"),
        set_of(&[&a, &b, &d]),
        "visibility=shared"
    );
    assert_eq!(
        list_ids(&img, &admin, "tag=t1"),
        set_of(&[&a, &b, &e]),
        "tag=t1"
    );
    assert_eq!(
        list_ids(&img, &admin, "tag=t1&tag=t2"),
        set_of(&[&b]),
        "tag=t1&tag=t2 (all of them)"
    );
    assert_eq!(
        list_ids(&img, &admin, "size_min=150"),
        set_of(&[&b, &c]),
        "size_min"
    );
    assert_eq!(
        list_ids(&img, &admin, "size_max=250"),
        set_of(&[&a, &b]),
        "size_max"
    );
    assert_eq!(
        list_ids(&img, &admin, "size_min=150&size_max=250"),
        set_of(&[&b]),
        "size_min+size_max"
    );
    assert_eq!(
        list_ids(&img, &admin, "name=in:img-a,img-d"),
        set_of(&[&a, &d]),
        "name=in:a,d"
    );
    assert_eq!(
        list_ids(&img, &admin, "name=in:%22img-a%22,%22img-e%22"),
        set_of(&[&a, &e]),
        "name=in:\"a\",\"e\" (quoted values)"
    );
    assert_eq!(
        list_ids(&img, &admin, "flavor=y"),
        set_of(&[&b]),
        "extra-property filter"
    );
    assert_eq!(
        list_ids(&img, &admin, "status=active&visibility=private"),
        set_of(&[&c]),
        "filters combine"
    );

    let names = |query: &str| -> Vec<String> {
        let (_, v) = list(&img, &admin, &format!("/v2/images?{query}"));
        v["images"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| str_of(i, "name").to_string())
            .collect()
    };
    let asc: Vec<String> = ["img-a", "img-b", "img-c", "img-d", "img-e"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let desc: Vec<String> = asc.iter().rev().cloned().collect();
    assert_eq!(
        names("sort_key=name&sort_dir=asc"),
        asc,
        "sort_key=name&sort_dir=asc"
    );
    assert_eq!(
        names("sort_key=name&sort_dir=desc"),
        desc,
        "sort_key=name&sort_dir=desc"
    );
    assert_eq!(names("sort=name:asc"), asc, "sort=name:asc");
    assert_eq!(names("sort=name:desc"), desc, "sort=name:desc");
    let by_size = names("sort_key=size&sort_dir=desc&status=active");
    assert_eq!(
        by_size,
        vec!["img-c", "img-b", "img-a"],
        "sort by size desc"
    );

    // Paging: limit 2 and the `next` link, in name order; the pages together are the whole list, once each.
    let (first, page) = list(
        &img,
        &admin,
        "/v2/images?limit=2&sort_key=name&sort_dir=asc",
    );
    assert_eq!(first.len(), 2, "limit=2: {page}");
    let mut seen: Vec<String> = first.clone();
    let mut next = page["next"].as_str().map(str::to_string);
    let mut pages = 1;
    while let Some(n) = next {
        assert!(
            n.starts_with("/v2/images?"),
            "next link {n:?} is a /v2/images path"
        );
        assert!(n.contains("marker="), "next link {n:?} carries a marker");
        let (ids, page) = list(&img, &admin, &n);
        assert!(
            !ids.is_empty(),
            "a next link never leads to an empty page: {page}"
        );
        assert!(
            ids.len() <= 2,
            "the limit carries over to the next page: {page}"
        );
        seen.extend(ids);
        next = page["next"].as_str().map(str::to_string);
        pages += 1;
        assert!(pages <= 5, "paging does not terminate");
    }
    assert_eq!(pages, 3, "5 images in pages of 2");
    let seen_names: Vec<String> = seen
        .iter()
        .map(|id| str_of(&show(&img, &admin, id), "name").to_string())
        .collect();
    assert_eq!(seen_names, asc, "the pages in order are the sorted list");

    // An explicit marker continues after that image.
    let (after_b, _) = list(
        &img,
        &admin,
        &format!("/v2/images?sort_key=name&sort_dir=asc&marker={b}"),
    );
    assert_eq!(after_b, vec![c.clone(), d.clone(), e.clone()], "marker=b");

    // Bad paging/sorting input is a 400 in Glance's shape.
    let r = call(
        "GET",
        &format!("{img}/v2/images?marker={}", uuid_str()),
        Some(&admin),
        None,
    );
    assert_glance_error(&r, 400, "Bad Request");
    let r = call(
        "GET",
        &format!("{img}/v2/images?sort_key=bogus"),
        Some(&admin),
        None,
    );
    assert_glance_error(&r, 400, "Bad Request");
    let r = call(
        "GET",
        &format!("{img}/v2/images?limit=abc"),
        Some(&admin),
        None,
    );
    assert_glance_error(&r, 400, "Bad Request");

    verify_log_and_replay(&mut server);
}

/// A fresh random UUID (v4 layout) that no image has.
fn uuid_str() -> String {
    let b = random_bytes(16);
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

#[test]
fn json_patch_updates_properties_and_tags_and_refuses_read_only_attributes() {
    let mut server = Server::start();
    let img = image_root(&server);
    let admin = server.admin_token();
    let created = create_image(
        &img,
        &admin,
        &json!({"name": "p", "disk_format": "raw", "container_format": "bare", "k1": "v1", "tags": ["a"]}),
    );
    let id = str_of(&created, "id").to_string();
    upload(&img, &admin, &id, b"0123456789").expect(204);
    let before = show(&img, &admin, &id);

    // add / replace / remove of an extra property
    let r = patch_image(
        &img,
        &admin,
        &id,
        &json!([{"op": "add", "path": "/k2", "value": "v2"}]),
    )
    .expect(200);
    assert_eq!(
        r.json()["k2"],
        "v2",
        "PATCH answers the updated image: {}",
        r.describe()
    );
    assert_eq!(show(&img, &admin, &id)["k2"], "v2");
    let r = patch_image(
        &img,
        &admin,
        &id,
        &json!([{"op": "replace", "path": "/k1", "value": "new"}]),
    )
    .expect(200);
    assert_eq!(r.json()["k1"], "new", "{}", r.describe());
    let r = patch_image(&img, &admin, &id, &json!([{"op": "remove", "path": "/k1"}])).expect(200);
    assert!(r.json().get("k1").is_none(), "k1 removed: {}", r.describe());
    let v = show(&img, &admin, &id);
    assert!(v.get("k1").is_none(), "{v}");
    assert_eq!(v["k2"], "v2", "{v}");

    // Several operations in one PATCH; name is a core attribute.
    let r = patch_image(
        &img,
        &admin,
        &id,
        &json!([
            {"op": "replace", "path": "/name", "value": "renamed"},
            {"op": "add", "path": "/k3", "value": "v3"},
            {"op": "add", "path": "/min_ram", "value": 128}
        ]),
    )
    .expect(200);
    let v = r.json();
    assert_eq!(v["name"], "renamed", "{v}");
    assert_eq!(v["k3"], "v3", "{v}");
    assert_eq!(v["min_ram"], 128, "{v}");

    // tags: add (replaces the list, as Glance does for a top-level path), replace
    let r = patch_image(
        &img,
        &admin,
        &id,
        &json!([{"op": "add", "path": "/tags", "value": ["x", "y"]}]),
    )
    .expect(200);
    let tags: BTreeSet<String> = serde_json::from_value(r.json()["tags"].clone()).unwrap();
    assert_eq!(
        tags,
        ["x", "y"].iter().map(|s| s.to_string()).collect(),
        "{}",
        r.describe()
    );
    let r = patch_image(
        &img,
        &admin,
        &id,
        &json!([{"op": "replace", "path": "/tags", "value": ["z"]}]),
    )
    .expect(200);
    assert_eq!(r.json()["tags"], json!(["z"]), "{}", r.describe());
    // ... and through the tags sub-resource.
    call(
        "PUT",
        &format!("{}/tags/w", image_url(&img, &id)),
        Some(&admin),
        None,
    )
    .expect(204);
    let tags: BTreeSet<String> =
        serde_json::from_value(show(&img, &admin, &id)["tags"].clone()).unwrap();
    assert_eq!(tags, ["w", "z"].iter().map(|s| s.to_string()).collect());
    call(
        "DELETE",
        &format!("{}/tags/z", image_url(&img, &id)),
        Some(&admin),
        None,
    )
    .expect(204);
    assert_eq!(show(&img, &admin, &id)["tags"], json!(["w"]));
    let r = call(
        "DELETE",
        &format!("{}/tags/nope", image_url(&img, &id)),
        Some(&admin),
        None,
    );
    assert_glance_error(&r, 404, "Not Found");

    // Read-only attributes: 403, nothing changes.
    for (path, value) in [
        ("/size", json!(5)),
        ("/checksum", json!("00000000000000000000000000000000")),
        ("/status", json!("queued")),
        ("/id", json!(uuid_str())),
        ("/os_hash_value", json!("x")),
        ("/created_at", json!("2000-01-01T00:00:00Z")),
    ] {
        let r = patch_image(
            &img,
            &admin,
            &id,
            &json!([{"op": "replace", "path": path, "value": value}]),
        );
        assert_glance_error(&r, 403, "Forbidden");
        let r = patch_image(
            &img,
            &admin,
            &id,
            &json!([{"op": "add", "path": path, "value": value}]),
        );
        assert_glance_error(&r, 403, "Forbidden");
    }
    let after = show(&img, &admin, &id);
    for k in [
        "size",
        "checksum",
        "status",
        "id",
        "os_hash_value",
        "created_at",
    ] {
        assert_eq!(after[k], before[k], "read-only {k} changed: {after}");
    }

    // Conflicts and bad patches.
    let r = patch_image(
        &img,
        &admin,
        &id,
        &json!([{"op": "remove", "path": "/nope"}]),
    );
    assert_glance_error(&r, 409, "Conflict");
    let r = patch_image(
        &img,
        &admin,
        &id,
        &json!([{"op": "replace", "path": "/nope", "value": "v"}]),
    );
    assert_glance_error(&r, 409, "Conflict");
    let r = patch_image(
        &img,
        &admin,
        &id,
        &json!([{"op": "add", "path": "/k9", "value": 5}]),
    );
    assert_glance_error(&r, 400, "Bad Request");
    let r = patch_image(
        &img,
        &admin,
        &id,
        &json!([{"op": "move", "path": "/k2", "from": "/k3"}]),
    );
    assert_glance_error(&r, 400, "Bad Request");
    let r = call_text(
        "PATCH",
        &image_url(&img, &id),
        &[("X-Auth-Token", &admin), ("Content-Type", JSON_PATCH)],
        Some("[{\"op\": "),
    );
    assert_glance_error(&r, 400, "Bad Request");
    let r = call_text(
        "PATCH",
        &image_url(&img, &id),
        &[
            ("X-Auth-Token", &admin),
            ("Content-Type", "application/json"),
        ],
        Some(&json!([{"op": "add", "path": "/k8", "value": "v"}]).to_string()),
    );
    assert_glance_error(&r, 415, "Unsupported Media Type");
    // Formats of an image with data cannot change.
    let r = patch_image(
        &img,
        &admin,
        &id,
        &json!([{"op": "replace", "path": "/disk_format", "value": "qcow2"}]),
    );
    assert_glance_error(&r, 403, "Forbidden");
    let v = show(&img, &admin, &id);
    assert!(
        v.get("k8").is_none() && v.get("k9").is_none(),
        "refused patches changed nothing: {v}"
    );
    assert_eq!(v["disk_format"], "raw", "{v}");

    // Glance: core attributes such as tags cannot be removed ("Property tags may not be removed.", 403).
    let r = patch_image(
        &img,
        &admin,
        &id,
        &json!([{"op": "remove", "path": "/tags"}]),
    );
    assert_glance_error(&r, 403, "Forbidden");
    assert_eq!(
        show(&img, &admin, &id)["tags"],
        json!(["w"]),
        "a refused remove of /tags keeps them"
    );

    verify_log_and_replay(&mut server);
}

#[test]
fn bad_input_and_conflicts_are_refused_with_glance_errors() {
    let mut server = Server::start();
    let img = image_root(&server);
    let admin = server.admin_token();
    let url = images_url(&img);

    let r = call(
        "POST",
        &url,
        Some(&admin),
        Some(&json!({"name": "x", "disk_format": "floppy", "container_format": "bare"})),
    );
    assert_glance_error(&r, 400, "Bad Request");
    let r = call(
        "POST",
        &url,
        Some(&admin),
        Some(&json!({"name": "x", "disk_format": "raw", "container_format": "crate"})),
    );
    assert_glance_error(&r, 400, "Bad Request");
    let r = call_text(
        "POST",
        &url,
        &[("X-Auth-Token", &admin)],
        Some("{\"name\": "),
    );
    assert_glance_error(&r, 400, "Bad Request");
    let r = call(
        "POST",
        &url,
        Some(&admin),
        Some(&json!({"id": "not-a-uuid", "name": "x"})),
    );
    assert_glance_error(&r, 400, "Bad Request");
    let r = call(
        "POST",
        &url,
        Some(&admin),
        Some(&json!({"name": "x", "visibility": "everyone"})),
    );
    assert_glance_error(&r, 400, "Bad Request");
    let r = call(
        "POST",
        &url,
        Some(&admin),
        Some(&json!({"name": "x", "min_ram": "lots"})),
    );
    assert_glance_error(&r, 400, "Bad Request");
    // Read-only attributes cannot be given at create (Glance: 403 "Attribute 'status' is read-only.").
    let r = call(
        "POST",
        &url,
        Some(&admin),
        Some(&json!({"name": "x", "status": "active"})),
    );
    assert_glance_error(&r, 403, "Forbidden");
    let r = call(
        "POST",
        &url,
        Some(&admin),
        Some(&json!({"name": "x", "size": 10})),
    );
    assert_glance_error(&r, 403, "Forbidden");
    let (ids, _) = list(&img, &admin, "/v2/images");
    assert!(ids.is_empty(), "refused creates create nothing: {ids:?}");

    // An unknown or malformed image id: 404 (Glance looks it up and finds nothing).
    let r = call("GET", &image_url(&img, "not-a-uuid"), Some(&admin), None);
    assert_glance_error(&r, 404, "Not Found");
    let r = call("GET", &image_url(&img, &uuid_str()), Some(&admin), None);
    assert_glance_error(&r, 404, "Not Found");

    // An explicit id is used; creating it twice conflicts.
    let given = uuid_str();
    let v = create_image(
        &img,
        &admin,
        &json!({"id": given, "name": "given", "disk_format": "raw", "container_format": "bare"}),
    );
    assert_eq!(v["id"], given.as_str(), "{v}");
    let r = call(
        "POST",
        &url,
        Some(&admin),
        Some(&json!({"id": given, "name": "again"})),
    );
    assert_glance_error(&r, 409, "Conflict");

    // Upload twice: 409, the data stays the first upload's.
    let id = create_named(&img, &admin, "twice");
    let first = random_bytes(1000);
    upload(&img, &admin, &id, &first).expect(204);
    let r = upload(&img, &admin, &id, &random_bytes(500));
    assert_glance_error(&r.to_resp(), 409, "Conflict");
    let v = show(&img, &admin, &id);
    assert_eq!(v["status"], "active", "{v}");
    assert_eq!(
        v["checksum"].as_str(),
        Some(md5_hex(&first).as_str()),
        "{v}"
    );
    assert!(download(&img, &admin, &id, None).expect(200).body == first);

    // Upload to a deactivated image: 409; reactivated, it is active again with its data.
    call(
        "POST",
        &format!("{}/actions/deactivate", image_url(&img, &id)),
        Some(&admin),
        None,
    )
    .expect(204);
    assert_eq!(show(&img, &admin, &id)["status"], "deactivated");
    let r = upload(&img, &admin, &id, &random_bytes(10));
    assert_glance_error(&r.to_resp(), 409, "Conflict");
    call(
        "POST",
        &format!("{}/actions/reactivate", image_url(&img, &id)),
        Some(&admin),
        None,
    )
    .expect(204);
    assert_eq!(show(&img, &admin, &id)["status"], "active");
    assert!(download(&img, &admin, &id, None).expect(200).body == first);

    // Upload to a deleted image: 404, and nothing is stored for it.
    let gone = create_named(&img, &admin, "gone");
    call("DELETE", &image_url(&img, &gone), Some(&admin), None).expect(204);
    let r = upload(&img, &admin, &gone, &random_bytes(10));
    assert_glance_error(&r.to_resp(), 404, "Not Found");
    let r = call("GET", &image_url(&img, &gone), Some(&admin), None);
    assert_glance_error(&r, 404, "Not Found");
    let r = call("DELETE", &image_url(&img, &gone), Some(&admin), None);
    assert_glance_error(&r, 404, "Not Found");
    assert!(
        !stored_files(&server).contains(&gone),
        "a deleted image has no file: {:?}",
        stored_files(&server)
    );

    // Upload before the formats are set: Glance refuses (400) and the image stays queued.
    let bare = str_of(
        &create_image(&img, &admin, &json!({"name": "noformats"})),
        "id",
    )
    .to_string();
    let r = upload(&img, &admin, &bare, &random_bytes(10));
    assert_glance_error(&r.to_resp(), 400, "Bad Request");
    assert_eq!(show(&img, &admin, &bare)["status"], "queued");

    assert_eq!(
        stored_files(&server),
        vec![id.clone()],
        "only the one successful upload is stored"
    );
    verify_log_and_replay(&mut server);
}

#[test]
fn an_interrupted_upload_returns_the_image_to_queued_and_stores_nothing() {
    let mut server = Server::start();
    let img = image_root(&server);
    let admin = server.admin_token();
    let id = create_named(&img, &admin, "cut");

    // Declare 1 MiB, send the headers and 64 KiB, then close the connection.
    let addr = img.trim_start_matches("http://").to_string();
    {
        let mut s = TcpStream::connect(&addr).expect("connect to the image API");
        s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
        let head = format!(
            "PUT /v2/images/{id}/file HTTP/1.1\r\nHost: {addr}\r\nX-Auth-Token: {admin}\r\n\
             Content-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
            1 << 20
        );
        s.write_all(head.as_bytes()).expect("send headers");
        s.write_all(&random_bytes(64 * 1024))
            .expect("send part of the body");
        s.flush().unwrap();
        // While the body is streaming the image is `saving` (Glance), then the client goes away.
        let during = wait_for_status(&img, &admin, &id, "saving", Duration::from_secs(5));
        assert_eq!(
            during["status"], "saving",
            "an upload in progress shows `saving`: {during}"
        );
        thread::sleep(Duration::from_millis(300));
        let _ = s.shutdown(std::net::Shutdown::Both);
    }

    let v = wait_for_status(&img, &admin, &id, "queued", Duration::from_secs(15));
    let files = wait_for_files(&server, &[], Duration::from_secs(5));
    assert_eq!(
        v["status"], "queued",
        "after a client dropped mid-upload the image must be back to queued: {v}"
    );
    assert_eq!(
        v["size"],
        Value::Null,
        "no size after an aborted upload: {v}"
    );
    assert_eq!(
        v["checksum"],
        Value::Null,
        "no checksum after an aborted upload: {v}"
    );
    assert!(
        files.is_empty(),
        "an aborted upload leaves no file (temporary or final) in <data_dir>/images: {files:?}"
    );

    // The image can be uploaded properly afterwards.
    let data = random_bytes(4096);
    upload(&img, &admin, &id, &data).expect(204);
    let v = show(&img, &admin, &id);
    assert_eq!(v["status"], "active", "{v}");
    assert_eq!(v["checksum"].as_str(), Some(md5_hex(&data).as_str()), "{v}");
    assert_eq!(stored_files(&server), vec![id.clone()]);

    verify_log_and_replay(&mut server);
}

#[test]
fn image_count_quota_refuses_the_third_image() {
    let mut server = Server::start_with_args(&["--image-quota-count", "2"]);
    let img = image_root(&server);
    let admin = server.admin_token();
    create_named(&img, &admin, "q1");
    let second = create_named(&img, &admin, "q2");
    let r = call(
        "POST",
        &images_url(&img),
        Some(&admin),
        Some(&json!({"name": "q3", "disk_format": "raw", "container_format": "bare"})),
    );
    assert_eq!(
        r.status,
        413,
        "the third image is over the count quota: {}",
        r.describe()
    );
    let (ids, _) = list(&img, &admin, "/v2/images");
    assert_eq!(ids.len(), 2, "a refused create creates nothing: {ids:?}");

    // Deleting one frees room for another.
    call("DELETE", &image_url(&img, &second), Some(&admin), None).expect(204);
    create_named(&img, &admin, "q3");

    assert_glance_error(&r, 413, "Request Entity Too Large");
    verify_log_and_replay(&mut server);
}

#[test]
fn image_bytes_quota_refuses_an_upload_and_stores_nothing() {
    let mut server = Server::start_with_args(&["--image-quota-bytes", "1000"]);
    let img = image_root(&server);
    let admin = server.admin_token();
    let big = create_named(&img, &admin, "big");
    let r = upload(&img, &admin, &big, &random_bytes(2000));
    assert_eq!(
        r.status,
        413,
        "2000 bytes over a 1000-byte quota: {}",
        r.describe()
    );
    let v = wait_for_status(&img, &admin, &big, "queued", Duration::from_secs(5));
    assert_eq!(
        v["status"], "queued",
        "a refused upload leaves the image queued: {v}"
    );
    assert_eq!(v["size"], Value::Null, "{v}");
    assert_eq!(v["checksum"], Value::Null, "{v}");
    let files = wait_for_files(&server, &[], Duration::from_secs(5));
    assert!(
        files.is_empty(),
        "a refused upload stores nothing: {files:?}"
    );

    // Within the quota it works; then the remaining room is what counts.
    let small = create_named(&img, &admin, "small");
    upload(&img, &admin, &small, &random_bytes(600)).expect(204);
    let r2 = upload(&img, &admin, &big, &random_bytes(600));
    assert_eq!(
        r2.status,
        413,
        "600 + 600 bytes over a 1000-byte quota: {}",
        r2.describe()
    );
    assert_eq!(show(&img, &admin, &big)["status"], "queued");
    upload(&img, &admin, &big, &random_bytes(400)).expect(204);
    let mut want = vec![small.clone(), big.clone()];
    want.sort();
    assert_eq!(stored_files(&server), want);

    assert_glance_error(&r.to_resp(), 413, "Request Entity Too Large");
    verify_log_and_replay(&mut server);
}

#[test]
fn tenant_isolation_and_sharing_through_members() {
    let mut server = Server::start();
    let img = image_root(&server);
    let (p1, t1, p2, t2) = two_tenants(&server);

    // A private image of p1 does not exist for p2.
    let private = str_of(
        &create_image(
            &img,
            &t1,
            &json!({"name": "secret", "disk_format": "raw", "container_format": "bare", "visibility": "private"}),
        ),
        "id",
    )
    .to_string();
    let v = show(&img, &t1, &private);
    assert_eq!(
        v["owner"],
        p1.as_str(),
        "the owner is the caller's project: {v}"
    );
    upload(&img, &t1, &private, b"private bytes").expect(204);
    let r = call("GET", &image_url(&img, &private), Some(&t2), None);
    assert_glance_error(&r, 404, "Not Found");
    let r = download(&img, &t2, &private, None);
    assert_glance_error(&r.to_resp(), 404, "Not Found");
    let r = patch_image(
        &img,
        &t2,
        &private,
        &json!([{"op": "add", "path": "/k", "value": "v"}]),
    );
    assert_glance_error(&r, 404, "Not Found");
    let r = call("DELETE", &image_url(&img, &private), Some(&t2), None);
    assert_glance_error(&r, 404, "Not Found");
    assert!(
        !list_ids(&img, &t2, "").contains(&private),
        "p2 does not list p1's private image"
    );
    assert!(
        list_ids(&img, &t1, "").contains(&private),
        "p1 lists its own image"
    );
    // Members of a private image: Glance refuses (403, only shared images have members).
    let r = call(
        "POST",
        &format!("{}/members", image_url(&img, &private)),
        Some(&t1),
        Some(&json!({"member": p2})),
    );
    assert_glance_error(&r, 403, "Forbidden");
    // A member cannot create an image owned by another project.
    let r = call(
        "POST",
        &images_url(&img),
        Some(&t2),
        Some(&json!({"name": "steal", "owner": p1})),
    );
    assert_glance_error(&r, 403, "Forbidden");

    // A shared image: p1 adds p2 as a member.
    let shared = str_of(
        &create_image(
            &img,
            &t1,
            &json!({"name": "shared", "disk_format": "raw", "container_format": "bare", "visibility": "shared"}),
        ),
        "id",
    )
    .to_string();
    let data = random_bytes(3000);
    upload(&img, &t1, &shared, &data).expect(204);
    let r = call("GET", &image_url(&img, &shared), Some(&t2), None);
    assert_glance_error(&r, 404, "Not Found");

    let members_url = format!("{}/members", image_url(&img, &shared));
    let r = call(
        "POST",
        &members_url,
        Some(&t1),
        Some(&json!({"member": p2})),
    )
    .expect(200);
    let m = r.json();
    assert_eq!(m["member_id"], p2.as_str(), "{m}");
    assert_eq!(m["image_id"], shared.as_str(), "{m}");
    assert_eq!(m["status"], "pending", "{m}");
    let r = call(
        "POST",
        &members_url,
        Some(&t1),
        Some(&json!({"member": p2})),
    );
    assert_glance_error(&r, 409, "Conflict");
    // Only the owner adds members.
    let r = call(
        "POST",
        &members_url,
        Some(&t2),
        Some(&json!({"member": p2})),
    );
    assert_eq!(
        r.status,
        403,
        "a member cannot add members: {}",
        r.describe()
    );

    // p2 can read it (pending) but does not list it by default.
    let v = show(&img, &t2, &shared);
    assert_eq!(v["id"], shared.as_str(), "{v}");
    assert!(
        !list_ids(&img, &t2, "").contains(&shared),
        "a pending shared image is not in the member's default list"
    );
    assert!(
        list_ids(&img, &t2, "member_status=pending").contains(&shared),
        "member_status=pending lists it"
    );
    let r = call("GET", &members_url, Some(&t2), None).expect(200);
    let listed = r.json()["members"].as_array().cloned().unwrap_or_default();
    assert_eq!(listed.len(), 1, "{}", r.describe());

    // Only the member sets its status: the owner is refused.
    let mine = format!("{members_url}/{p2}");
    let r = call(
        "PUT",
        &mine,
        Some(&t1),
        Some(&json!({"status": "accepted"})),
    );
    assert_glance_error(&r, 403, "Forbidden");
    assert!(
        !list_ids(&img, &t2, "").contains(&shared),
        "the owner's refused PUT accepted nothing"
    );
    let r = call("PUT", &mine, Some(&t2), Some(&json!({"status": "maybe"})));
    assert_glance_error(&r, 400, "Bad Request");
    let r = call(
        "PUT",
        &mine,
        Some(&t2),
        Some(&json!({"status": "accepted"})),
    )
    .expect(200);
    assert_eq!(r.json()["status"], "accepted", "{}", r.describe());
    let r = call("GET", &mine, Some(&t1), None).expect(200);
    assert_eq!(
        r.json()["status"],
        "accepted",
        "the owner sees the new status: {}",
        r.describe()
    );

    // Accepted: in p2's default list, downloadable, but still not p2's to change.
    assert!(
        list_ids(&img, &t2, "").contains(&shared),
        "an accepted shared image is listed"
    );
    assert!(download(&img, &t2, &shared, None).expect(200).body == data);
    let r = patch_image(
        &img,
        &t2,
        &shared,
        &json!([{"op": "add", "path": "/k", "value": "v"}]),
    );
    assert_glance_error(&r, 403, "Forbidden");
    let r = call("DELETE", &image_url(&img, &shared), Some(&t2), None);
    assert_glance_error(&r, 403, "Forbidden");

    // Rejecting takes it out of the list again (still readable); removing the member ends access.
    call(
        "PUT",
        &mine,
        Some(&t2),
        Some(&json!({"status": "rejected"})),
    )
    .expect(200);
    assert!(
        !list_ids(&img, &t2, "").contains(&shared),
        "a rejected shared image is not listed"
    );
    call("DELETE", &mine, Some(&t1), None).expect(204);
    let r = call("GET", &image_url(&img, &shared), Some(&t2), None);
    assert_glance_error(&r, 404, "Not Found");

    verify_log_and_replay(&mut server);
}

#[test]
fn protected_images_cannot_be_deleted_and_delete_removes_the_file() {
    let mut server = Server::start();
    let img = image_root(&server);
    let admin = server.admin_token();
    let v = create_image(
        &img,
        &admin,
        &json!({"name": "keep", "disk_format": "raw", "container_format": "bare", "protected": true}),
    );
    let id = str_of(&v, "id").to_string();
    assert_eq!(v["protected"], true, "{v}");
    upload(&img, &admin, &id, &random_bytes(1234)).expect(204);
    assert_eq!(stored_files(&server), vec![id.clone()]);

    let r = call("DELETE", &image_url(&img, &id), Some(&admin), None);
    assert_glance_error(&r, 403, "Forbidden");
    assert_eq!(show(&img, &admin, &id)["status"], "active");
    assert_eq!(
        stored_files(&server),
        vec![id.clone()],
        "a refused delete keeps the bytes"
    );

    patch_image(
        &img,
        &admin,
        &id,
        &json!([{"op": "replace", "path": "/protected", "value": false}]),
    )
    .expect(200);
    call("DELETE", &image_url(&img, &id), Some(&admin), None).expect(204);
    let files = wait_for_files(&server, &[], Duration::from_secs(5));
    assert!(
        files.is_empty(),
        "deleting an image removes its file: {files:?}"
    );
    let r = call("GET", &image_url(&img, &id), Some(&admin), None);
    assert_glance_error(&r, 404, "Not Found");
    let r = download(&img, &admin, &id, None);
    assert_glance_error(&r.to_resp(), 404, "Not Found");
    assert!(
        !list_ids(&img, &admin, "").contains(&id),
        "a deleted image is not listed"
    );

    verify_log_and_replay(&mut server);
}

#[test]
fn suffix_byte_range_returns_the_last_bytes() {
    let mut server = Server::start();
    let img = image_root(&server);
    let admin = server.admin_token();
    let id = create_named(&img, &admin, "suffix");
    let data = random_bytes(1000);
    upload(&img, &admin, &id, &data).expect(204);

    // RFC 7233 suffix range, which Glance supports ("bytes=-N": the last N bytes).
    let r = download(&img, &admin, &id, Some("bytes=-5"));
    assert_eq!(r.status, 206, "Range bytes=-5: {}", r.describe());
    assert_eq!(
        r.header("content-range"),
        Some("bytes 995-999/1000"),
        "{:?}",
        r.headers
    );
    assert_eq!(r.body, &data[995..], "the last 5 bytes");

    verify_log_and_replay(&mut server);
}

#[test]
fn chunked_upload_and_data_survive_a_restart() {
    let mut server = Server::start();
    let img = image_root(&server);
    let admin = server.admin_token();
    let id = create_named(&img, &admin, "chunked");
    let data = random_bytes(50_000);

    // A chunked upload (no Content-Length), as clients streaming from a pipe send it.
    let addr = img.trim_start_matches("http://").to_string();
    let response = {
        let mut s = TcpStream::connect(&addr).expect("connect to the image API");
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let head = format!(
            "PUT /v2/images/{id}/file HTTP/1.1\r\nHost: {addr}\r\nX-Auth-Token: {admin}\r\n\
             Content-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        );
        s.write_all(head.as_bytes()).unwrap();
        for chunk in data.chunks(7_000) {
            s.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                .unwrap();
            s.write_all(chunk).unwrap();
            s.write_all(b"\r\n").unwrap();
        }
        s.write_all(b"0\r\n\r\n").unwrap();
        let mut buf = Vec::new();
        let _ = std::io::Read::read_to_end(&mut s, &mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    };
    assert!(
        response.starts_with("HTTP/1.1 204"),
        "a chunked upload answers 204: {response}"
    );
    let v = show(&img, &admin, &id);
    assert_eq!(v["status"], "active", "{v}");
    assert_eq!(v["size"].as_u64(), Some(data.len() as u64), "{v}");
    assert_eq!(v["checksum"].as_str(), Some(md5_hex(&data).as_str()), "{v}");

    // After a restart (SIGKILL) the image and its bytes are still there.
    server.restart();
    let img = image_root(&server);
    let admin = server.admin_token();
    let v = show(&img, &admin, &id);
    assert_eq!(v["status"], "active", "after a restart: {v}");
    assert_eq!(v["checksum"].as_str(), Some(md5_hex(&data).as_str()), "{v}");
    let r = download(&img, &admin, &id, None).expect(200);
    assert!(r.body == data, "the bytes survive a restart");
    assert_eq!(stored_files(&server), vec![id.clone()]);

    verify_log_and_replay(&mut server);
}

/// Interoperable import: stage + `glance-direct`, and `web-download` from a loopback HTTP server, with
/// `validation_data` checked; non-loopback sources are refused.
#[test]
fn stage_and_import_by_glance_direct_and_web_download() {
    let mut server = Server::start();
    let img = image_root(&server);
    let token = server.admin_token();
    let data = random_bytes(300_000);

    // glance-direct: stage (uploading), import (202), then active with the staged bytes; staging is cleaned up.
    let id = create_named(&img, &token, &uname("staged"));
    let r = call_bytes(
        "PUT",
        &format!("{}/stage", image_url(&img, &id)),
        &token,
        &[("Content-Type", "application/octet-stream")],
        Some(&data),
    );
    assert_eq!(r.status, 204, "{}", r.describe());
    assert_eq!(show(&img, &token, &id)["status"], "uploading");
    let body = json!({"method": {"name": "glance-direct"}});
    assert_eq!(
        call(
            "POST",
            &format!("{}/import", image_url(&img, &id)),
            Some(&token),
            Some(&body)
        )
        .status,
        202
    );
    let v = wait_for_status(&img, &token, &id, "active", Duration::from_secs(20));
    assert_eq!(v["status"], "active", "{v}");
    assert_eq!(v["checksum"], md5_hex(&data));
    assert_eq!(download(&img, &token, &id, None).body, data);
    assert_eq!(
        wait_for_files(&server, std::slice::from_ref(&id), Duration::from_secs(10)),
        vec![id.clone()]
    );

    // web-download from a tiny HTTP server on loopback that serves `data` once per connection.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let served = data.clone();
    thread::spawn(move || {
        for stream in listener.incoming().take(3) {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = std::io::Read::read(&mut stream, &mut buf);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                served.len()
            );
            let _ = std::io::Write::write_all(&mut stream, head.as_bytes());
            let _ = std::io::Write::write_all(&mut stream, &served);
        }
    });
    let uri = format!("http://127.0.0.1:{port}/image.raw");
    let web = create_named(&img, &token, &uname("web"));
    let body = json!({"method": {"name": "web-download", "uri": uri, "validation_data": {"checksum": md5_hex(&data)}}});
    assert_eq!(
        call(
            "POST",
            &format!("{}/import", image_url(&img, &web)),
            Some(&token),
            Some(&body)
        )
        .status,
        202
    );
    let v = wait_for_status(&img, &token, &web, "active", Duration::from_secs(20));
    assert_eq!(
        (v["status"].as_str(), v["size"].as_u64()),
        (Some("active"), Some(data.len() as u64)),
        "{v}"
    );

    // A checksum that does not match fails the import: back to queued, no bytes kept.
    let bad = create_named(&img, &token, &uname("bad-sum"));
    let body = json!({"method": {"name": "web-download", "uri": uri, "validation_data": {"checksum": "0".repeat(32)}}});
    assert_eq!(
        call(
            "POST",
            &format!("{}/import", image_url(&img, &bad)),
            Some(&token),
            Some(&body)
        )
        .status,
        202
    );
    thread::sleep(Duration::from_millis(300));
    let v = wait_for_status(&img, &token, &bad, "queued", Duration::from_secs(20));
    assert_eq!(v["status"], "queued", "{v}");
    assert!(
        !stored_files(&server).contains(&bad),
        "no bytes kept after a failed import"
    );

    // Only loopback sources; unknown methods are refused.
    let other = create_named(&img, &token, &uname("remote"));
    for (body, status) in [
        (
            json!({"method": {"name": "web-download", "uri": "http://192.0.2.1/x.img"}}),
            400,
        ),
        (json!({"method": {"name": "copy-image"}}), 400),
        (json!({"method": {}}), 400),
    ] {
        let r = call(
            "POST",
            &format!("{}/import", image_url(&img, &other)),
            Some(&token),
            Some(&body),
        );
        assert_glance_error(&r, status, "Bad Request");
    }
    assert_eq!(show(&img, &token, &other)["status"], "queued");
    verify_log_and_replay(&mut server);
}

#[test]
fn created_at_and_updated_at_filters_take_comparison_operators() {
    let server = Server::start();
    let img = image_root(&server);
    let token = server.admin_token();
    let id = create_named(&img, &token, &uname("timed"));
    let past = "2000-01-01T00:00:00Z";
    let future = "2999-01-01T00:00:00Z";
    let q = |filter: &str| list_ids(&img, &token, filter);
    assert!(q(&format!("created_at=gt:{past}")).contains(&id));
    assert!(q(&format!("updated_at=gte:{past}")).contains(&id));
    assert!(!q(&format!("created_at=lt:{past}")).contains(&id));
    assert!(q(&format!("created_at=lt:{future}")).contains(&id));
    assert!(!q(&format!("created_at=gt:{future}")).contains(&id));
    let r = call(
        "GET",
        &format!("{}?created_at=gt:yesterday", images_url(&img)),
        Some(&token),
        None,
    );
    assert_glance_error(&r, 400, "Bad Request");
}

/// The image-count quota is a reservation appended with optimistic concurrency: concurrent creates can
/// never overshoot it.
#[test]
fn concurrent_creates_never_exceed_the_image_quota() {
    let server = Server::start_with_args(&["--image-quota-count", "3"]);
    let img = image_root(&server);
    let token = server.admin_token();
    let handles: Vec<_> = (0..10)
        .map(|i| {
            let (img, token) = (img.clone(), token.clone());
            thread::spawn(move || {
                let body = json!({"name": format!("race-{i}"), "disk_format": "raw", "container_format": "bare"});
                call("POST", &images_url(&img), Some(&token), Some(&body)).status
            })
        })
        .collect();
    let statuses: Vec<u16> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        3,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 413).count(),
        7,
        "{statuses:?}"
    );
    assert_eq!(list_ids(&img, &token, "").len(), 3);
}
