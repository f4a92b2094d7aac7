//! Acceptance: Keystone through the real `openstack` CLI (python-openstackclient 10.5.0, openstacksdk 4.22.0),
//! the way a user types it. Each CLI call costs seconds, so this is ONE scenario in ONE test; checks that need
//! no CLI are done over HTTP.

use crate::common::*;
use serde_json::Value;

fn field<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("no string field {key:?} in {v}"))
}

/// Asserts a CLI call was refused for lack of authorization (exit non-zero, message says 403/not authorized).
fn assert_forbidden<T: std::fmt::Debug>(server: &Server, what: &str, r: Result<T, CliError>) {
    match r {
        Ok(v) => panic!(
            "`openstack {what}` as a project member must be refused, but it succeeded: {v:?}"
        ),
        Err(e) => {
            let text = e.text_lower();
            assert!(
                text.contains("403") || text.contains("not authorized") || text.contains("forbidden"),
                "`openstack {what}` failed, but not with 403 / not authorized:\n{e}\n--- server stderr ---\n{}",
                server.log_tail(20)
            );
        }
    }
}

#[test]
fn identity_scenario_through_the_openstack_cli() {
    let Some(_cli) = require_cli() else { return };
    let server = Server::start();
    let id = server.identity_url().to_string();
    let os = |args: &[&str]| ok(&server, &args.join(" "), openstack(&server, args));
    let osj = |args: &[&str]| ok(&server, &args.join(" "), openstack_json(&server, args));

    // 1. token issue
    let token = osj(&["token", "issue"]);
    let admin_cli_token = field(&token, "id").to_string();
    assert!(!field(&token, "expires").is_empty(), "token issue: {token}");
    assert!(
        !field(&token, "project_id").is_empty(),
        "token issue: {token}"
    );
    assert!(!field(&token, "user_id").is_empty(), "token issue: {token}");
    get(&format!("{id}/projects"), Some(&admin_cli_token)).expect(200);

    // 2. project create / list / show / set
    let demo = osj(&["project", "create", "demo", "--description", "D"]);
    assert_eq!(field(&demo, "name"), "demo", "{demo}");
    assert_eq!(field(&demo, "description"), "D", "{demo}");
    assert_eq!(demo["enabled"], Value::Bool(true), "{demo}");
    let demo_id = field(&demo, "id").to_string();

    let projects = osj(&["project", "list"]);
    assert!(
        row_with(&projects, "Name", "demo").is_some(),
        "project list lacks demo: {projects}"
    );
    assert!(
        row_with(&projects, "Name", "admin").is_some(),
        "project list lacks admin: {projects}"
    );
    assert_eq!(
        row_with(&projects, "Name", "demo").unwrap()["ID"].as_str(),
        Some(demo_id.as_str())
    );

    let shown = osj(&["project", "show", "demo"]);
    assert_eq!(field(&shown, "id"), demo_id);
    assert_eq!(field(&shown, "description"), "D");

    let out = os(&["project", "set", "demo", "--description", "X"]);
    assert!(
        out.trim().is_empty(),
        "project set prints nothing, got {out:?}"
    );
    let shown = osj(&["project", "show", demo_id.as_str()]);
    assert_eq!(
        field(&shown, "description"),
        "X",
        "project set did not take: {shown}"
    );
    assert_eq!(field(&shown, "name"), "demo");

    // 3. user create / list / show / set
    let alice = osj(&[
        "user",
        "create",
        "alice",
        "--password",
        "secret",
        "--project",
        "demo",
    ]);
    assert_eq!(field(&alice, "name"), "alice", "{alice}");
    assert_eq!(field(&alice, "default_project_id"), demo_id, "{alice}");
    let alice_id = field(&alice, "id").to_string();
    assert!(
        !alice.to_string().contains("secret"),
        "the password must never be echoed: {alice}"
    );

    let users = osj(&["user", "list"]);
    assert!(
        row_with(&users, "Name", "alice").is_some(),
        "user list lacks alice: {users}"
    );
    assert!(
        row_with(&users, "Name", "admin").is_some(),
        "user list lacks admin: {users}"
    );

    let shown = osj(&["user", "show", "alice"]);
    assert_eq!(field(&shown, "id"), alice_id);
    assert_eq!(shown["enabled"], Value::Bool(true), "{shown}");

    os(&["user", "set", "alice", "--email", "a@example.com"]);
    let shown = osj(&["user", "show", alice_id.as_str()]);
    assert_eq!(
        field(&shown, "email"),
        "a@example.com",
        "user set --email did not take: {shown}"
    );

    // 4. roles
    let roles = osj(&["role", "list"]);
    for r in ["admin", "member", "reader"] {
        assert!(
            row_with(&roles, "Name", r).is_some(),
            "role list lacks {r}: {roles}"
        );
    }
    let out = os(&[
        "role",
        "add",
        "--project",
        "demo",
        "--user",
        "alice",
        "member",
    ]);
    assert!(
        out.trim().is_empty(),
        "role add prints nothing, got {out:?}"
    );
    let assignments = osj(&["role", "assignment", "list", "--names", "--project", "demo"]);
    let rows = assignments
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {assignments}"));
    assert!(
        rows.iter().any(|r| r["User"] == "alice@Default" && r["Role"] == "member" && r["Project"] == "demo@Default"),
        "role assignment list --names --project demo lacks alice@Default/member/demo@Default: {assignments}"
    );

    // 5. catalog
    let catalog = osj(&["catalog", "list"]);
    let identity = row_with(&catalog, "Type", "identity")
        .unwrap_or_else(|| panic!("no identity service: {catalog}"));
    assert_eq!(identity["Name"].as_str(), Some("keystone"), "{catalog}");
    assert!(
        identity.to_string().contains(server.identity_root()),
        "the identity endpoints must point at this server ({}): {identity}",
        server.identity_root()
    );

    // 6. token revoke: the revoked token is refused over HTTP
    os(&["token", "revoke", admin_cli_token.as_str()]);
    let r = get(&format!("{id}/projects"), Some(&admin_cli_token));
    assert_keystone_error(&r, 401, "Unauthorized");

    // 7. alice, a member of demo, logs in with her own clouds.yaml entry
    let as_alice = Cli::for_user(&server, "alice", "secret", "demo");
    let t = ok(
        &server,
        "token issue (alice)",
        as_alice.json(&["token", "issue"]),
    );
    assert_eq!(
        field(&t, "project_id"),
        demo_id,
        "alice's token must be scoped to demo: {t}"
    );
    assert_eq!(field(&t, "user_id"), alice_id, "{t}");
    assert_forbidden(
        &server,
        "project create x (alice)",
        as_alice.json(&["project", "create", "x"]),
    );
    assert_forbidden(
        &server,
        "user list (alice)",
        as_alice.json(&["user", "list"]),
    );
    let admin = server.admin_token();
    assert!(
        find_by_name(&id, &admin, "projects", "x").is_none(),
        "a refused project create must not create the project"
    );
    let alice_http_token =
        get_token(&id, "alice", "secret", Some("demo")).expect("alice logs in over HTTP");
    get(&format!("{id}/projects/{demo_id}"), Some(&alice_http_token)).expect(200);

    // 8. cleanup: user delete, project delete; deleted things are gone
    let out = os(&["user", "delete", "alice"]);
    assert!(
        out.trim().is_empty(),
        "user delete prints nothing, got {out:?}"
    );
    let r = get(&format!("{id}/projects/{demo_id}"), Some(&alice_http_token));
    assert_eq!(
        r.status,
        401,
        "a deleted user's token must stop validating: {}",
        r.describe()
    );
    get(&format!("{id}/users/{alice_id}"), Some(&admin)).expect(404);

    os(&["project", "delete", "demo"]);
    match openstack_json(&server, &["project", "show", "demo"]) {
        Ok(v) => panic!("project show demo must fail after project delete, got {v}"),
        Err(e) => assert!(e.output.code.is_some(), "project show timed out: {e}"),
    }
    get(&format!("{id}/projects/{demo_id}"), Some(&admin)).expect(404);
}
