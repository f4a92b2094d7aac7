//! Helpers for the compute acceptance tests: a flavor, an image uploaded through Glance, booting and
//! waiting for servers, and microversioned requests.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::*;

pub fn nova_url(server: &Server) -> String {
    server
        .endpoint("compute")
        .expect("READY line names the compute endpoint")
        .to_string()
}

/// A request with `OpenStack-API-Version: <version>` (`compute 2.60`, `volume 3.64`).
fn at_version(version: &str, method: &str, url: &str, token: &str, body: Option<&Value>) -> Resp {
    let body = body.map(Value::to_string);
    request_raw(
        method,
        url,
        &[("X-Auth-Token", token), ("OpenStack-API-Version", version)],
        body.as_deref(),
    )
    .unwrap_or_else(|e| panic!("HTTP transport error: {e}"))
}

/// A request at microversion `2.<minor>`.
pub fn at(minor: u32, method: &str, url: &str, token: &str, body: Option<&Value>) -> Resp {
    at_version(&format!("compute 2.{minor}"), method, url, token, body)
}

/// Nova's (and Cinder's) fault body: `{"<key>": {"code": status, "message": ...}}`; returns the message.
pub fn nova_fault(r: &Resp, status: u16, key: &str) -> String {
    assert_eq!(r.status, status, "{}", r.describe());
    let v = r.json();
    assert_eq!(v[key]["code"], status, "fault body {key}: {}", r.describe());
    v[key]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no message in {}", r.describe()))
        .to_string()
}

/// One request that must be refused: (method, path, JSON body if any, status, fault key).
pub type FaultProbe<'a> = (&'a str, &'a str, Option<Value>, u16, &'a str);

/// Sends each probe with `send(method, path, body)` (which makes the path a URL and picks the token and the
/// microversion), in order, and checks its fault body with [`nova_fault`] (a failure names the request and
/// shows the response body).
pub fn assert_faults(send: impl Fn(&str, &str, Option<&Value>) -> Resp, probes: &[FaultProbe]) {
    for (method, path, body, status, key) in probes {
        nova_fault(&send(method, path, body.as_ref()), *status, key);
    }
}

/// A GET at microversion `2.<minor>` that must answer 200; returns the body.
pub fn get_at(minor: u32, url: &str, token: &str) -> Value {
    at(minor, "GET", url, token, None).expect(200).json()
}

/// The highest microversion the Nova at `nova` (`…/v2.1`) offers (2.X -> X).
pub fn max_minor(nova: &str) -> u32 {
    let root = nova.trim_end_matches("/v2.1");
    let v = get(&format!("{root}/"), None).expect(200).json();
    v["versions"][0]["version"]
        .as_str()
        .and_then(|s| s.strip_prefix("2."))
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("no max version in {v}"))
}

pub fn create_flavor(
    nova: &str,
    token: &str,
    name: &str,
    vcpus: u32,
    ram: u64,
    disk: u64,
) -> String {
    let f = post(
        &format!("{nova}/flavors"),
        Some(token),
        &json!({"flavor": {"name": name, "vcpus": vcpus, "ram": ram, "disk": disk}}),
    )
    .expect(200)
    .json();
    f["flavor"]["id"].as_str().expect("flavor id").to_string()
}

/// A public active image with `data`, uploaded through Glance; returns its id.
pub fn upload_image(server: &Server, token: &str, name: &str, data: &[u8]) -> String {
    let img = server
        .endpoint("image")
        .expect("image endpoint")
        .to_string();
    let v = post(
        &format!("{img}/v2/images"),
        Some(token),
        &json!({"name": name, "disk_format": "raw", "container_format": "bare", "visibility": "public"}),
    )
    .expect(201)
    .json();
    let id = v["id"].as_str().expect("image id").to_string();
    request_bytes(
        "PUT",
        &format!("{img}/v2/images/{id}/file"),
        &[
            ("X-Auth-Token", token),
            ("Content-Type", "application/octet-stream"),
        ],
        Some(data),
    )
    .expect("upload")
    .expect(204);
    id
}

/// POST /servers at 2.latest-ish (2.60) with `extra` merged into the server body; returns the id.
pub fn boot(
    nova: &str,
    token: &str,
    name: &str,
    flavor: &str,
    image: &str,
    extra: Value,
) -> String {
    let mut body = json!({"server": {"name": name, "flavorRef": flavor, "imageRef": image, "networks": "none"}});
    if let Value::Object(m) = extra {
        for (k, v) in m {
            body["server"][k] = v;
        }
    }
    let r = at(60, "POST", &format!("{nova}/servers"), token, Some(&body)).expect(202);
    r.json()["server"]["id"]
        .as_str()
        .expect("server id")
        .to_string()
}

pub fn show(nova: &str, token: &str, id: &str) -> Resp {
    at(60, "GET", &format!("{nova}/servers/{id}"), token, None)
}

/// Poll the server until `done` holds (30 s at most); returns its last representation.
pub fn wait_server(nova: &str, token: &str, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = show(nova, token, id);
        let v = if r.status == 200 {
            r.json()["server"].clone()
        } else {
            Value::Null
        };
        if done(&v) {
            return v;
        }
        if Instant::now() > deadline {
            panic!(
                "server {id} never reached the expected state; last: {}",
                r.describe()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Wait until the server shows `status` with no task running.
pub fn wait_status(nova: &str, token: &str, id: &str, status: &str) -> Value {
    wait_server(nova, token, id, |v| {
        v["status"] == status && v["OS-EXT-STS:task_state"].is_null()
    })
}

/// Wait until the server is gone (404).
pub fn wait_gone(nova: &str, token: &str, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while show(nova, token, id).status != 404 {
        assert!(Instant::now() < deadline, "server {id} was never deleted");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn action(nova: &str, token: &str, id: &str, body: Value) -> Resp {
    at(
        60,
        "POST",
        &format!("{nova}/servers/{id}/action"),
        token,
        Some(&body),
    )
}

/// A new user `user` (password `pw-<user>`) with `role` on the project `project_id`; returns the user's id.
pub fn new_user_with_role(
    server: &Server,
    admin: &str,
    project_id: &str,
    user: &str,
    role: &str,
) -> String {
    let id_url = server.identity_url();
    let u = post(
        &format!("{id_url}/users"),
        Some(admin),
        &json!({"user": {"name": user, "password": format!("pw-{user}")}}),
    )
    .expect(201)
    .json();
    let u = u["user"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no user id in {u}"))
        .to_string();
    let role = find_by_name(id_url, admin, "roles", role).expect("role")["id"]
        .as_str()
        .unwrap()
        .to_string();
    put(
        &format!("{id_url}/projects/{project_id}/users/{u}/roles/{role}"),
        Some(admin),
    )
    .expect(204);
    u
}

/// A new project with a new member user; returns (project id, user id, project-scoped token).
pub fn new_member(
    server: &Server,
    admin: &str,
    project: &str,
    user: &str,
) -> (String, String, String) {
    let id_url = server.identity_url();
    let p = post(
        &format!("{id_url}/projects"),
        Some(admin),
        &json!({"project": {"name": project}}),
    )
    .expect(201)
    .json();
    let p = p["project"]["id"].as_str().unwrap().to_string();
    let u = new_user_with_role(server, admin, &p, user, "member");
    let token = get_token(id_url, user, &format!("pw-{user}"), Some(project)).unwrap();
    (p, u, token)
}

pub fn project_id_of(server: &Server, admin: &str, name: &str) -> String {
    find_by_name(server.identity_url(), admin, "projects", name).expect("project")["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The Cinder endpoint (`/v3/<project>`) of the READY line.
pub fn cinder_url(server: &Server) -> String {
    server
        .endpoint("volume")
        .expect("READY line names the volume endpoint")
        .to_string()
}

/// Poll a volume over HTTP until its status is `status` (30 s at most); returns it.
pub fn wait_volume(cinder: &str, token: &str, id: &str, status: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = get(&format!("{cinder}/volumes/{id}"), Some(token));
        if r.status == 200 && r.json()["volume"]["status"] == status {
            return r.json()["volume"].clone();
        }
        assert!(
            Instant::now() < deadline,
            "volume {id} never became {status}: {}",
            r.describe()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Poll `<cinder>/<path>` (a volume, a snapshot, a backup) at microversion `3.<minor>` until `done` holds for
/// the body's `key` member, 60 s at most; returns it. A non-200 answer is seen as `{"http_status": N}`.
pub fn cinder_wait(
    minor: u32,
    cinder: &str,
    token: &str,
    path: &str,
    key: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = cinder_at(minor, "GET", &format!("{cinder}/{path}"), token, None);
        let v = if r.status == 200 {
            r.json()[key].clone()
        } else {
            json!({ "http_status": r.status })
        };
        if done(&v) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{path} never reached the expected state; last: {}",
            r.describe()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The file that backs volume `id` on the default LVM backend.
pub fn volume_file(server: &Server, id: &str) -> std::path::PathBuf {
    server
        .data_dir()
        .join("volumes")
        .join("lvm-1")
        .join(format!("volume-{id}"))
}

/// A Cinder request at microversion `3.<minor>`.
pub fn cinder_at(minor: u32, method: &str, url: &str, token: &str, body: Option<&Value>) -> Resp {
    at_version(&format!("volume 3.{minor}"), method, url, token, body)
}

/// Through the `openstack` CLI as admin, what a first boot needs: the public raw image `cirros` made of
/// `size` random bytes, and the flavor `m1.tiny` (1 vCPU, 512 MB RAM, 1 GB disk).
pub fn cli_cirros_and_tiny(server: &Server, size: usize) {
    let os = |args: &[&str]| ok(server, &args.join(" "), openstack(server, args));
    let disk = server.dir().join("cirros.img");
    std::fs::write(&disk, random_bytes(size)).unwrap();
    os(&[
        "image",
        "create",
        "--file",
        disk.to_str().unwrap(),
        "--disk-format",
        "raw",
        "--container-format",
        "bare",
        "--public",
        "cirros",
    ]);
    os(&[
        "flavor", "create", "--vcpus", "1", "--ram", "512", "--disk", "1", "m1.tiny",
    ]);
}
