//! Keystone v3 at the HTTP level (fast): discovery documents, error format and status codes, "a rejected
//! request appends nothing", tenant isolation, token invalidation, request ids becoming correlation ids.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::common::*;
use serde_json::{json, Value};

/// A name unique to this test run (Keystone names: at most 64 characters).
fn uname(prefix: &str) -> String {
    format!("{prefix}-{}", unique_suffix())
}

fn id_of(resp: &Resp, kind: &str) -> String {
    let v = resp.json();
    v[kind]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no {kind}.id in {}", resp.describe()))
        .to_string()
}

fn create_project(id: &str, token: &str, name: &str) -> Resp {
    post(
        &format!("{id}/projects"),
        Some(token),
        &json!({"project": {"name": name, "description": "t", "enabled": true}}),
    )
}

fn project_names(id: &str, token: &str) -> BTreeSet<String> {
    let r = get(&format!("{id}/projects"), Some(token)).expect(200);
    r.json()["projects"]
        .as_array()
        .unwrap_or_else(|| panic!("no projects list: {}", r.describe()))
        .iter()
        .filter_map(|p| p["name"].as_str().map(str::to_string))
        .collect()
}

fn role_id(id: &str, token: &str, name: &str) -> String {
    let role = find_by_name(id, token, "roles", name)
        .unwrap_or_else(|| panic!("role {name} must exist at bootstrap"));
    role["id"].as_str().expect("role id").to_string()
}

/// Creates a user with a password and the role `member` on `project_id`; returns the user id.
fn create_member(id: &str, admin: &str, name: &str, password: &str, project_id: &str) -> String {
    let r = post(
        &format!("{id}/users"),
        Some(admin),
        &json!({"user": {"name": name, "password": password, "default_project_id": project_id, "enabled": true}}),
    )
    .expect(201);
    let user_id = id_of(&r, "user");
    let member = role_id(id, admin, "member");
    put(
        &format!("{id}/projects/{project_id}/users/{user_id}/roles/{member}"),
        Some(admin),
    )
    .expect(204);
    user_id
}

fn assert_has_request_id(r: &Resp) {
    let rid = r.request_id().unwrap_or("");
    assert!(
        !rid.trim().is_empty(),
        "every response must carry X-OpenStack-Request-Id: {}",
        r.describe()
    );
}

fn version_entry_ok(v: &Value, root: &str) -> Result<(), String> {
    let vid = v["id"].as_str().unwrap_or("");
    if !vid.starts_with("v3") {
        return Err(format!("version id {vid:?} must start with v3"));
    }
    let status = v["status"].as_str().unwrap_or("").to_lowercase();
    if status != "stable" && status != "current" {
        return Err(format!("version status {status:?} must be stable"));
    }
    let links = v["links"].as_array().ok_or("no links")?;
    let me = links
        .iter()
        .find(|l| l["rel"] == "self")
        .ok_or("no self link")?;
    let href = me["href"].as_str().unwrap_or("");
    if !href.starts_with(root) || !href.contains("/v3") {
        return Err(format!("self link {href:?} must point at {root}/v3/"));
    }
    if !v["media-types"].is_array() {
        return Err("no media-types".into());
    }
    Ok(())
}

#[test]
fn version_discovery_documents() {
    let server = Server::start();
    let root = server.identity_root();

    let r = get(&format!("{root}/"), None);
    assert!(
        r.status == 300 || r.status == 200,
        "GET / must answer 300 (or 200): {}",
        r.describe()
    );
    assert_has_request_id(&r);
    let v = r.json();
    let values = v["versions"]["values"]
        .as_array()
        .unwrap_or_else(|| panic!("no versions.values: {v}"));
    let v3 = values
        .iter()
        .find(|e| e["id"].as_str().unwrap_or("").starts_with("v3"))
        .unwrap_or_else(|| panic!("no v3 in versions.values: {v}"));
    version_entry_ok(v3, root).unwrap_or_else(|e| panic!("GET /: {e}: {v}"));

    // keystoneauth follows the self link, which Keystone writes with a trailing slash.
    for path in ["/v3", "/v3/"] {
        let r = get(&format!("{root}{path}"), None).expect(200);
        assert_has_request_id(&r);
        let v = r.json();
        version_entry_ok(&v["version"], root).unwrap_or_else(|e| panic!("GET {path}: {e}: {v}"));
    }
}

#[test]
fn bad_input_is_rejected_with_keystone_errors_and_appends_nothing() {
    let mut server = Server::start();
    let id = server.identity_url().to_string();
    let admin = server.admin_token();
    let projects_url = format!("{id}/projects");
    let before = project_names(&id, &admin);

    let mut accepted: Vec<String> = Vec::new(); // request ids of the writes that succeeded
    let mut rejected: Vec<(String, String)> = Vec::new(); // (what, request id) of every refused request
    let mut refuse = |what: &str, r: &Resp, status: u16, title: &str| {
        assert_keystone_error(r, status, title);
        let rid = r
            .request_id()
            .unwrap_or_else(|| panic!("{what}: no request id: {}", r.describe()));
        rejected.push((what.to_string(), rid.to_string()));
    };

    // The one write everything else is compared against.
    let dup = uname("dup");
    let r = create_project(&id, &admin, &dup).expect(201);
    accepted.push(r.request_id().expect("request id").to_string());
    let dup_id = id_of(&r, "project");

    // Malformed JSON.
    let r = request_raw(
        "POST",
        &projects_url,
        &[("X-Auth-Token", &admin)],
        Some("{\"project\": {\"name\": "),
    )
    .unwrap();
    refuse("malformed JSON", &r, 400, "Bad Request");
    let r = request_raw(
        "PATCH",
        &format!("{projects_url}/{dup_id}"),
        &[("X-Auth-Token", &admin)],
        Some("{not json"),
    )
    .unwrap();
    refuse("malformed JSON on update", &r, 400, "Bad Request");

    // Missing or mistyped required fields.
    let r = post(
        &projects_url,
        Some(&admin),
        &json!({"project": {"description": "no name"}}),
    );
    refuse("project without name", &r, 400, "Bad Request");
    let r = post(
        &projects_url,
        Some(&admin),
        &json!({"name": uname("nowrap")}),
    );
    refuse(
        "project without the project wrapper",
        &r,
        400,
        "Bad Request",
    );
    let r = post(
        &projects_url,
        Some(&admin),
        &json!({"project": {"name": 42}}),
    );
    refuse("project name not a string", &r, 400, "Bad Request");
    let r = post(
        &projects_url,
        Some(&admin),
        &json!({"project": {"name": uname("en"), "enabled": "yes"}}),
    );
    refuse("project enabled not a boolean", &r, 400, "Bad Request");
    let r = post(
        &format!("{id}/users"),
        Some(&admin),
        &json!({"user": {"password": "x"}}),
    );
    refuse("user without name", &r, 400, "Bad Request");

    // Wrong password, unknown user.
    let r = try_issue_token(&id, "admin", "not-the-password", Some("admin")).unwrap();
    refuse("wrong password", &r, 401, "Unauthorized");
    assert!(
        r.subject_token().is_none(),
        "a refused login must not return a token"
    );
    let r = try_issue_token(&id, &uname("nobody"), "x", None).unwrap();
    refuse("unknown user", &r, 401, "Unauthorized");

    // Duplicate name in a domain.
    let r = create_project(&id, &admin, &dup);
    refuse("duplicate project name", &r, 409, "Conflict");

    // Over-long name (Keystone: at most 64 characters); exactly 64 is fine.
    let long = format!("l{}", "x".repeat(64));
    assert_eq!(long.len(), 65);
    let r = create_project(&id, &admin, &long);
    refuse("65-character name", &r, 400, "Bad Request");
    let r = patch(
        &format!("{projects_url}/{dup_id}"),
        Some(&admin),
        &json!({"project": {"name": long}}),
    );
    refuse("rename to a 65-character name", &r, 400, "Bad Request");
    let name64 = format!("{}{}", uname("m"), "y".repeat(64))
        .chars()
        .take(64)
        .collect::<String>();
    let r = create_project(&id, &admin, &name64).expect(201);
    accepted.push(r.request_id().expect("request id").to_string());

    // User names may be longer (Keystone: at most 255 characters); 256 is refused.
    let user255: String = format!("{}{}", uname("u"), "z".repeat(255))
        .chars()
        .take(255)
        .collect();
    let r = post(
        &format!("{id}/users"),
        Some(&admin),
        &json!({"user": {"name": format!("{user255}z")}}),
    );
    refuse("256-character user name", &r, 400, "Bad Request");
    let r = post(
        &format!("{id}/users"),
        Some(&admin),
        &json!({"user": {"name": user255}}),
    )
    .expect(201);
    accepted.push(r.request_id().expect("request id").to_string());

    // Unknown ids.
    let unknown = "0123456789abcdef0123456789abcdef";
    let r = get(&format!("{projects_url}/{unknown}"), Some(&admin));
    refuse("get unknown project", &r, 404, "Not Found");
    let r = patch(
        &format!("{projects_url}/{unknown}"),
        Some(&admin),
        &json!({"project": {"description": "z"}}),
    );
    refuse("update unknown project", &r, 404, "Not Found");
    let r = delete(&format!("{projects_url}/{unknown}"), Some(&admin));
    refuse("delete unknown project", &r, 404, "Not Found");
    let r = delete(&format!("{id}/users/{unknown}"), Some(&admin));
    refuse("delete unknown user", &r, 404, "Not Found");
    let member = role_id(&id, &admin, "member");
    let r = put(
        &format!("{projects_url}/{unknown}/users/{unknown}/roles/{member}"),
        Some(&admin),
    );
    assert!(
        r.status == 404,
        "grant on unknown project/user must be 404: {}",
        r.describe()
    );
    rejected.push((
        "grant on unknown ids".into(),
        r.request_id().unwrap_or_default().to_string(),
    ));

    // Nothing but the two accepted creates changed what the API shows.
    let after = project_names(&id, &admin);
    let added: BTreeSet<String> = after.difference(&before).cloned().collect();
    let expected: BTreeSet<String> = [dup.clone(), name64.clone()].into_iter().collect();
    assert_eq!(
        added, expected,
        "only the accepted creates may add projects"
    );
    assert_eq!(after.len(), before.len() + 2, "no project may disappear");
    let shown = get(&format!("{projects_url}/{dup_id}"), Some(&admin))
        .expect(200)
        .json();
    assert_eq!(
        shown["project"]["name"].as_str(),
        Some(dup.as_str()),
        "a refused update changed the project: {shown}"
    );

    // And nothing reached the log.
    server.kill();
    let events = server
        .log_dump()
        .unwrap_or_else(|e| panic!("log dump: {e}"));
    check_dump_invariants(&events).unwrap_or_else(|e| panic!("log dump: {e}"));
    for (what, rid) in &rejected {
        assert!(!rid.is_empty(), "{what}: no request id");
        let hits: Vec<&Value> = events.iter().filter(|e| ev_correlation(e) == rid).collect();
        assert!(
            hits.is_empty(),
            "the refused request '{what}' ({rid}) appended events: {hits:?}"
        );
    }
    let created: BTreeMap<&str, &Value> = events
        .iter()
        .filter(|e| ev_type(e) == "identity.ProjectCreated.v1")
        .filter_map(|e| payload_str(e, "name").map(|n| (n, e)))
        .collect();
    for (name, rid) in [(&dup, &accepted[0]), (&name64, &accepted[1])] {
        let ev = created
            .get(name.as_str())
            .unwrap_or_else(|| panic!("no ProjectCreated for {name} in the log"));
        assert_eq!(
            ev_correlation(ev),
            rid,
            "ProjectCreated {name} must carry its request's id: {ev}"
        );
    }
    // Strict form: from the first accepted write on, every event belongs to an accepted request.
    let first = events
        .iter()
        .position(|e| ev_correlation(e) == accepted[0])
        .expect("the first accepted request appended events");
    for ev in &events[first..] {
        assert!(
            accepted.iter().any(|a| a == ev_correlation(ev)),
            "an event not caused by an accepted request was appended during the test: {ev}"
        );
    }
}

#[test]
fn tenant_isolation_for_a_project_member() {
    let server = Server::start();
    let id = server.identity_url().to_string();
    let admin = server.admin_token();

    let (a_name, b_name) = (uname("iso-a"), uname("iso-b"));
    let a = id_of(&create_project(&id, &admin, &a_name).expect(201), "project");
    let b = id_of(&create_project(&id, &admin, &b_name).expect(201), "project");
    let user = uname("ua");
    let ua = create_member(&id, &admin, &user, "pw-a", &a);

    // A token scoped to A carries the member role and a catalog.
    let r = try_issue_token(&id, &user, "pw-a", Some(&a_name))
        .unwrap()
        .expect(201);
    let tok = r.subject_token().expect("X-Subject-Token").to_string();
    let body = r.json();
    assert_eq!(
        body["token"]["project"]["id"].as_str(),
        Some(a.as_str()),
        "{body}"
    );
    assert_eq!(
        body["token"]["user"]["id"].as_str(),
        Some(ua.as_str()),
        "{body}"
    );
    let roles: Vec<&str> = body["token"]["roles"]
        .as_array()
        .map(|v| v.iter().filter_map(|r| r["name"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        roles.contains(&"member") && !roles.contains(&"admin"),
        "roles: {body}"
    );
    assert!(
        body["token"]["catalog"].is_array(),
        "a scoped token carries the catalog: {body}"
    );

    // Scoping to a project without a role there is refused.
    let r = try_issue_token(&id, &user, "pw-a", Some(&b_name)).unwrap();
    assert_keystone_error(&r, 401, "Unauthorized");

    // Identity admin calls: 403 in Keystone's format.
    let t = Some(tok.as_str());
    let admin_role = role_id(&id, &admin, "admin");
    let forbidden = [
        get(&format!("{id}/projects"), t),
        get(&format!("{id}/users"), t),
        create_project(&id, &tok, &uname("by-member")),
        post(
            &format!("{id}/users"),
            t,
            &json!({"user": {"name": uname("by-member"), "password": "x"}}),
        ),
        patch(
            &format!("{id}/projects/{a}"),
            t,
            &json!({"project": {"description": "mine now"}}),
        ),
        put(
            &format!("{id}/projects/{a}/users/{ua}/roles/{admin_role}"),
            t,
        ),
        put(
            &format!("{id}/projects/{b}/users/{ua}/roles/{admin_role}"),
            t,
        ),
        get(&format!("{id}/role_assignments"), t),
    ];
    for r in &forbidden {
        assert_keystone_error(r, 403, "Forbidden");
    }

    // Project B is invisible: 403 or 404, and its name never shows.
    for r in [
        get(&format!("{id}/projects/{b}"), t),
        delete(&format!("{id}/projects/{b}"), t),
    ] {
        assert!(
            r.status == 403 || r.status == 404,
            "member of A touching B: {}",
            r.describe()
        );
        assert!(
            !r.body.contains(&b_name),
            "B's name leaked: {}",
            r.describe()
        );
    }

    // What the member may see: their own project and user, and only A in their project lists.
    let r = get(&format!("{id}/projects/{a}"), t).expect(200);
    assert_eq!(r.json()["project"]["name"].as_str(), Some(a_name.as_str()));
    get(&format!("{id}/users/{ua}"), t).expect(200);
    for url in [
        format!("{id}/auth/projects"),
        format!("{id}/users/{ua}/projects"),
    ] {
        let r = get(&url, t).expect(200);
        let v = r.json();
        let ids: Vec<&str> = v["projects"]
            .as_array()
            .map(|v| v.iter().filter_map(|p| p["id"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(
            ids,
            vec![a.as_str()],
            "{url} must list exactly project A: {}",
            r.describe()
        );
        assert!(!r.body.contains(&b_name), "{url} shows B: {}", r.describe());
    }

    // Nothing the member tried changed anything.
    let names = project_names(&id, &admin);
    assert!(names.contains(&a_name) && names.contains(&b_name));
    assert!(
        !names.iter().any(|n| n.starts_with("by-member")),
        "a member created a project: {names:?}"
    );
    let shown = get(&format!("{id}/projects/{a}"), Some(&admin))
        .expect(200)
        .json();
    assert_eq!(
        shown["project"]["description"].as_str(),
        Some("t"),
        "{shown}"
    );
    let r = get(&format!("{id}/role_assignments?user.id={ua}"), Some(&admin)).expect(200);
    assert_eq!(
        r.json()["role_assignments"].as_array().map(Vec::len),
        Some(1),
        "{}",
        r.describe()
    );

    // No token at all.
    let r = get(&format!("{id}/projects"), None);
    assert_keystone_error(&r, 401, "Unauthorized");
}

#[test]
fn revoked_invalidated_and_forged_tokens_are_refused() {
    let server = Server::start();
    let id = server.identity_url().to_string();
    let admin = server.admin_token();
    let projects = format!("{id}/projects");

    // Validate, revoke, then it is refused; other tokens are unaffected.
    let other = server.admin_token();
    let validate = |subject: &str| {
        request_raw(
            "GET",
            &format!("{id}/auth/tokens"),
            &[("X-Auth-Token", &admin), ("X-Subject-Token", subject)],
            None,
        )
        .unwrap()
    };
    let r = validate(&other).expect(200);
    assert!(
        r.json()["token"]["expires_at"].is_string(),
        "{}",
        r.describe()
    );
    assert_eq!(
        r.subject_token(),
        Some(other.as_str()),
        "validation echoes X-Subject-Token: {}",
        r.describe()
    );
    get(&projects, Some(&other)).expect(200);
    request_raw(
        "DELETE",
        &format!("{id}/auth/tokens"),
        &[("X-Auth-Token", &admin), ("X-Subject-Token", &other)],
        None,
    )
    .unwrap()
    .expect(204);
    assert_keystone_error(&get(&projects, Some(&other)), 401, "Unauthorized");
    assert_keystone_error(&validate(&other), 404, "Not Found");
    get(&projects, Some(&admin)).expect(200);

    // Forged and garbage tokens.
    let mut forged = admin.clone().into_bytes();
    // Change a character near the end (inside a signature, away from base64's unused trailing bits).
    let i = forged.len().saturating_sub(5);
    forged[i] = if forged[i] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    assert_keystone_error(&get(&projects, Some(&forged)), 401, "Unauthorized");
    assert_keystone_error(&get(&projects, Some("not-a-token")), 401, "Unauthorized");
    assert_keystone_error(&get(&projects, Some("")), 401, "Unauthorized");

    // A password change invalidates the user's earlier tokens; the old password stops working.
    let pname = uname("pw");
    let p = id_of(&create_project(&id, &admin, &pname).expect(201), "project");
    let user = uname("uc");
    let uc = create_member(&id, &admin, &user, "p1", &p);
    let t1 = get_token(&id, &user, "p1", Some(&pname)).unwrap();
    get(&format!("{projects}/{p}"), Some(&t1)).expect(200);
    std::thread::sleep(Duration::from_millis(1100)); // Keystone compares revocations at one-second granularity
    post(
        &format!("{id}/users/{uc}/password"),
        Some(&t1),
        &json!({"user": {"original_password": "p1", "password": "p2"}}),
    )
    .expect(204);
    std::thread::sleep(Duration::from_millis(1100));
    assert_keystone_error(
        &get(&format!("{projects}/{p}"), Some(&t1)),
        401,
        "Unauthorized",
    );
    assert_keystone_error(
        &try_issue_token(&id, &user, "p1", Some(&pname)).unwrap(),
        401,
        "Unauthorized",
    );
    let t2 = get_token(&id, &user, "p2", Some(&pname)).unwrap();
    get(&format!("{projects}/{p}"), Some(&t2)).expect(200);

    // Disabling the user invalidates their tokens and logins.
    patch(
        &format!("{id}/users/{uc}"),
        Some(&admin),
        &json!({"user": {"enabled": false}}),
    )
    .expect(200);
    assert_keystone_error(
        &get(&format!("{projects}/{p}"), Some(&t2)),
        401,
        "Unauthorized",
    );
    assert_keystone_error(
        &try_issue_token(&id, &user, "p2", Some(&pname)).unwrap(),
        401,
        "Unauthorized",
    );
}

#[test]
fn request_ids_become_correlation_ids_and_the_log_verifies() {
    let mut server = Server::start();
    let id = server.identity_url().to_string();
    let root = server.identity_root().to_string();
    let admin = server.admin_token();

    let mut all: Vec<Resp> = Vec::new();
    let mut writes: Vec<(&str, String, Option<String>)> = Vec::new(); // (event type, request id, name)

    let pname = uname("corr");
    let r = create_project(&id, &admin, &pname).expect(201);
    let p = id_of(&r, "project");
    writes.push((
        "identity.ProjectCreated.v1",
        r.request_id().unwrap_or_default().into(),
        Some(pname.clone()),
    ));
    all.push(r);

    let uname_ = uname("cu");
    let r = post(
        &format!("{id}/users"),
        Some(&admin),
        &json!({"user": {"name": uname_, "password": "pw"}}),
    )
    .expect(201);
    let u = id_of(&r, "user");
    writes.push((
        "identity.UserCreated.v1",
        r.request_id().unwrap_or_default().into(),
        Some(uname_.clone()),
    ));
    all.push(r);

    let member = role_id(&id, &admin, "member");
    let r = put(
        &format!("{id}/projects/{p}/users/{u}/roles/{member}"),
        Some(&admin),
    )
    .expect(204);
    writes.push((
        "identity.RoleGranted.v1",
        r.request_id().unwrap_or_default().into(),
        None,
    ));
    all.push(r);

    let r = patch(
        &format!("{id}/projects/{p}"),
        Some(&admin),
        &json!({"project": {"description": "changed"}}),
    )
    .expect(200);
    writes.push((
        "identity.ProjectUpdated.v1",
        r.request_id().unwrap_or_default().into(),
        None,
    ));
    all.push(r);

    let t = get_token(&id, &uname_, "pw", Some(&pname)).unwrap();
    let r = request_raw(
        "DELETE",
        &format!("{id}/auth/tokens"),
        &[("X-Auth-Token", &admin), ("X-Subject-Token", &t)],
        None,
    )
    .unwrap()
    .expect(204);
    writes.push((
        "identity.TokenRevoked.v1",
        r.request_id().unwrap_or_default().into(),
        None,
    ));
    all.push(r);

    let r = delete(&format!("{id}/users/{u}"), Some(&admin)).expect(204);
    writes.push((
        "identity.UserDeleted.v1",
        r.request_id().unwrap_or_default().into(),
        None,
    ));
    all.push(r);

    // Every kind of response carries a request id, and each request gets its own.
    all.push(get(&format!("{root}/"), None));
    all.push(get(&id.to_string(), None));
    all.push(get(&format!("{id}/projects"), Some(&admin)).expect(200));
    all.push(get(&format!("{id}/projects"), None).expect(401));
    all.push(get(&format!("{id}/projects/{p}"), Some(&admin)).expect(200));
    all.push(get(&format!("{id}/no-such-thing"), Some(&admin)).expect(404));
    all.push(get(&format!("{root}/definitely/not/here"), None).expect(404));
    all.push(
        try_issue_token(&id, "admin", "wrong", None)
            .unwrap()
            .expect(401),
    );
    all.push(
        try_issue_token(&id, "admin", server.admin_password(), Some("admin"))
            .unwrap()
            .expect(201),
    );
    all.push(
        request_raw(
            "POST",
            &format!("{id}/projects"),
            &[("X-Auth-Token", &admin)],
            Some("["),
        )
        .unwrap()
        .expect(400),
    );
    let mut seen = BTreeSet::new();
    for r in &all {
        assert_has_request_id(r);
        assert!(
            seen.insert(r.request_id().unwrap().to_string()),
            "request id reused: {}",
            r.describe()
        );
    }

    server.kill();
    let head = server
        .log_verify()
        .unwrap_or_else(|e| panic!("log verify: {e}"));
    let events = server
        .log_dump()
        .unwrap_or_else(|e| panic!("log dump: {e}"));
    check_dump_invariants(&events).unwrap_or_else(|e| panic!("log dump: {e}"));
    assert_eq!(
        head.events,
        events.len() as u64,
        "log verify counts every dumped event: {head:?}"
    );
    assert_eq!(
        head.head_position,
        events.len() as u64,
        "head_position is the last position: {head:?}"
    );
    assert!(
        head.head_hash.len() == 64 && head.head_hash.chars().all(|c| c.is_ascii_hexdigit()),
        "head_hash must be 64 hex digits: {head:?}"
    );
    assert_eq!(
        server.log_verify().unwrap(),
        head,
        "log verify is deterministic"
    );

    for (ty, rid, name) in &writes {
        assert!(!rid.is_empty(), "{ty}: the write had no request id");
        let mine: Vec<&Value> = events.iter().filter(|e| ev_correlation(e) == rid).collect();
        let hit = mine.iter().find(|e| ev_type(e) == *ty);
        let hit = hit.unwrap_or_else(|| panic!("request {rid} should have appended a {ty} with correlation_id = {rid}; it appended {mine:?}"));
        if let Some(n) = name {
            assert_eq!(payload_str(hit, "name"), Some(n.as_str()), "{hit}");
        }
    }
    let write_ids: BTreeSet<&str> = writes.iter().map(|(_, r, _)| r.as_str()).collect();
    for r in &all {
        let rid = r.request_id().unwrap();
        if !write_ids.contains(rid) {
            assert!(
                !events.iter().any(|e| ev_correlation(e) == rid),
                "a read or refused request appended events: {}",
                r.describe()
            );
        }
    }

    let out = server.replay_verify();
    assert!(
        out.success,
        "replay --verify must pass:\n{}",
        out.describe()
    );
}

#[test]
fn tokens_expire_and_then_get_401() {
    let server = Server::start_with_args(&["--token-ttl", "2"]);
    let id = server.identity_url().to_string();
    let token = server.admin_token();
    let projects = format!("{id}/projects");
    get(&projects, Some(&token)).expect(200);
    let issued = request_raw(
        "GET",
        &format!("{id}/auth/tokens"),
        &[("X-Auth-Token", &token), ("X-Subject-Token", &token)],
        None,
    )
    .unwrap()
    .expect(200);
    let body = issued.json();
    let (iss, exp) = (
        body["token"]["issued_at"].as_str().unwrap(),
        body["token"]["expires_at"].as_str().unwrap(),
    );
    assert!(iss < exp, "expires_at {exp} after issued_at {iss}");
    std::thread::sleep(Duration::from_millis(2500));
    assert_keystone_error(&get(&projects, Some(&token)), 401, "Unauthorized");
    // A fresh token works again.
    get(&projects, Some(&server.admin_token())).expect(200);
}

#[test]
fn every_start_updates_the_catalog_and_a_new_admin_password_resets_it() {
    let mut server = Server::start();
    let first_url = server.identity_url().to_string();
    let old_password = server.admin_password().to_string();
    server.kill();
    server.set_admin_password("a-brand-new-password");
    server.restart();
    let url = server.identity_url().to_string();

    // The catalog names the address bound now, once per interface, and nothing else for identity.
    let token = server.admin_token();
    let catalog = get(&format!("{url}/auth/catalog"), Some(&token))
        .expect(200)
        .json();
    let identity = catalog["catalog"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["type"] == "identity")
        .cloned()
        .expect("identity in the catalog");
    let urls: Vec<&str> = identity["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["url"].as_str().unwrap())
        .collect();
    assert_eq!(urls, vec![url.as_str(); 3], "first start was {first_url}");

    // The old password is refused, the new one works, and clouds.yaml carries the new one.
    let refused = try_issue_token(&url, "admin", &old_password, Some("admin")).unwrap();
    assert_keystone_error(&refused, 401, "Unauthorized");
    let yaml = std::fs::read_to_string(server.clouds_yaml()).unwrap();
    assert!(
        yaml.contains("a-brand-new-password") && yaml.contains(&url),
        "{yaml}"
    );

    // Both changes are events recorded by the bootstrap, not edits.
    server.kill();
    let dump = server.log_dump().unwrap();
    let bootstrap_events: Vec<&str> = dump
        .iter()
        .filter(|e| {
            e["correlation_id"]
                .as_str()
                .unwrap_or_default()
                .starts_with("bootstrap-")
        })
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert!(
        bootstrap_events.contains(&"identity.UserPasswordChanged.v1"),
        "{bootstrap_events:?}"
    );
    if url != first_url {
        assert!(
            bootstrap_events.contains(&"identity.EndpointUpdated.v1"),
            "{bootstrap_events:?}"
        );
    }
}
