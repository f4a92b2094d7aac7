//! Nova's bookkeeping APIs over HTTP: quota sets, limits, server groups (both request formats, quota,
//! isolation between projects), and the policy and validation of simple tenant usage, migrations and
//! instance actions. The scenario that boots a server checks instance actions and usage end to end.

use crate::common::nova::*;
use crate::common::*;
use serde_json::{json, Value};

const PUBLIC_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f strata-test";

fn message(r: &Resp) -> String {
    let v = r.json();
    v.as_object()
        .and_then(|o| o.values().next())
        .and_then(|f| f["message"].as_str())
        .unwrap_or_default()
        .to_string()
}

fn id_of(v: &Value, kind: &str) -> String {
    v[kind]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no {kind} id in {v}"))
        .to_string()
}

fn keys(v: &Value) -> Vec<String> {
    v.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

#[test]
fn quota_sets_show_detail_defaults_update_and_reset() {
    let server = Server::start();
    let url = nova_url(&server);
    let admin = server.admin_token();
    let ap = project_id_of(&server, &admin, "admin");
    let qs = format!("{url}/os-quota-sets/{ap}");

    // The fields follow the microversion: network quotas until 2.36, file quotas until 2.57.
    let v21 = get_at(1, &qs, &admin);
    let set = &v21["quota_set"];
    assert_eq!(set["id"], json!(ap), "{v21}");
    assert_eq!(set["floating_ips"], -1, "{v21}");
    assert_eq!(set["security_groups"], -1, "{v21}");
    assert_eq!(set["injected_files"], 5, "{v21}");
    assert_eq!(
        (
            set["instances"].clone(),
            set["cores"].clone(),
            set["ram"].clone()
        ),
        (json!(10), json!(20), json!(51200))
    );
    let v236 = get_at(36, &qs, &admin);
    assert!(v236["quota_set"].get("floating_ips").is_none(), "{v236}");
    assert_eq!(v236["quota_set"]["injected_files"], 5, "{v236}");
    let v257 = get_at(57, &qs, &admin);
    assert_eq!(
        keys(&v257["quota_set"]),
        vec![
            "cores",
            "id",
            "instances",
            "key_pairs",
            "metadata_items",
            "ram",
            "server_group_members",
            "server_groups"
        ],
        "{v257}"
    );
    // Unknown query parameters are ignored until 2.75 and refused from it.
    at(74, "GET", &format!("{qs}?foo=1"), &admin, None).expect(200);
    nova_fault(
        &at(75, "GET", &format!("{qs}?foo=1"), &admin, None),
        400,
        "badRequest",
    );
    at(75, "GET", &format!("{qs}?user_id=someone"), &admin, None).expect(200);
    nova_fault(
        &at(75, "GET", &format!("{url}/limits?foo=1"), &admin, None),
        400,
        "badRequest",
    );
    let defaults = get_at(57, &format!("{qs}/defaults"), &admin);
    assert_eq!(defaults["quota_set"]["server_groups"], 10, "{defaults}");
    nova_fault(
        &at(
            57,
            "GET",
            &format!("{url}/os-quota-sets/no-such-project/defaults"),
            &admin,
            None,
        ),
        400,
        "badRequest",
    );

    // Detail: limit, in_use, reserved; keypairs count for the caller, server groups for the project.
    post(
        &format!("{url}/os-keypairs"),
        Some(&admin),
        &json!({"keypair": {"name": "k1", "public_key": PUBLIC_KEY}}),
    )
    .expect(200);
    for name in ["g1", "g2"] {
        at(
            57,
            "POST",
            &format!("{url}/os-server-groups"),
            &admin,
            Some(&json!({"server_group": {"name": name, "policies": ["affinity"]}})),
        )
        .expect(200);
    }
    let detail = get_at(57, &format!("{qs}/detail"), &admin);
    let d = &detail["quota_set"];
    assert_eq!(
        d["cores"],
        json!({"limit": 20, "in_use": 0, "reserved": 0}),
        "{detail}"
    );
    assert_eq!(d["key_pairs"]["in_use"], 1, "{detail}");
    assert_eq!(d["server_groups"]["in_use"], 2, "{detail}");
    assert!(d.get("injected_files").is_none(), "{detail}");
    let old_detail = get_at(1, &format!("{qs}/detail"), &admin);
    assert_eq!(
        old_detail["quota_set"]["fixed_ips"],
        json!({"limit": -1, "in_use": 0, "reserved": 0}),
        "{old_detail}"
    );

    // Update: integers or digit strings, the new set without an id.
    let updated = at(
        57,
        "PUT",
        &qs,
        &admin,
        Some(&json!({"quota_set": {"cores": 30, "instances": "12"}})),
    )
    .expect(200)
    .json();
    assert_eq!(updated["quota_set"]["cores"], 30, "{updated}");
    assert_eq!(updated["quota_set"]["instances"], 12, "{updated}");
    assert!(updated["quota_set"].get("id").is_none(), "{updated}");
    let shown = get_at(57, &qs, &admin);
    assert_eq!(shown["quota_set"]["cores"], 30, "{shown}");
    assert_eq!(
        shown["quota_set"]["ram"], 51200,
        "untouched limits stay: {shown}"
    );

    for bad in [
        json!({"quota_set": {"cores": -2}}),
        json!({"quota_set": {"cores": "many"}}),
        json!({"quota_set": {"cores": 1.5}}),
        json!({"quota_set": {"cores": 2147483648_i64}}),
        json!({"quota_set": {"bogus": 1}}),
        json!({"quota_set": {"floating_ips": 1}}),
        json!({"quota_set": {"injected_files": 1}}),
        json!({"quota_set": {"cores": 1, "force": "maybe"}}),
        json!({"quota_set": "cores"}),
        json!({"cores": 1}),
        json!({"quota_set": {"cores": 1}, "extra": 1}),
    ] {
        nova_fault(&at(57, "PUT", &qs, &admin, Some(&bad)), 400, "badRequest");
    }
    let r = request_raw(
        "PUT",
        &qs,
        &[
            ("X-Auth-Token", &admin),
            ("OpenStack-API-Version", "compute 2.57"),
        ],
        Some("{not json"),
    )
    .unwrap();
    nova_fault(&r, 400, "badRequest");
    // Before 2.36 the network quotas are accepted (and stay unlimited: there is no nova-network).
    let old = at(
        1,
        "PUT",
        &qs,
        &admin,
        Some(&json!({"quota_set": {"floating_ips": 5}})),
    )
    .expect(200)
    .json();
    assert_eq!(old["quota_set"]["floating_ips"], -1, "{old}");
    nova_fault(
        &at(
            57,
            "PUT",
            &format!("{url}/os-quota-sets/no-such-project"),
            &admin,
            Some(&json!({"quota_set": {"cores": 1}})),
        ),
        400,
        "badRequest",
    );

    // A limit below the current usage is refused unless forced.
    let r = at(
        57,
        "PUT",
        &qs,
        &admin,
        Some(&json!({"quota_set": {"server_groups": 1}})),
    );
    nova_fault(&r, 400, "badRequest");
    assert!(
        message(&r).contains("must be greater than or equal to already used and reserved 2"),
        "{}",
        r.describe()
    );
    let forced = at(
        57,
        "PUT",
        &qs,
        &admin,
        Some(&json!({"quota_set": {"server_groups": 1, "force": "True"}})),
    )
    .expect(200)
    .json();
    assert_eq!(forced["quota_set"]["server_groups"], 1, "{forced}");
    // -1 is unlimited and always fits.
    at(
        57,
        "PUT",
        &qs,
        &admin,
        Some(&json!({"quota_set": {"server_groups": -1}})),
    )
    .expect(200);

    // Reset: back to the defaults.
    at(57, "DELETE", &qs, &admin, None).expect(202);
    let reset = get_at(57, &qs, &admin);
    assert_eq!(reset["quota_set"]["cores"], 20, "{reset}");
    assert_eq!(reset["quota_set"]["server_groups"], 10, "{reset}");

    // Members read their own project's quotas only, and change none.
    let (mp, _mu, mt) = new_member(&server, &admin, "quota-p", "quota-u");
    let mine = get_at(57, &format!("{url}/os-quota-sets/{mp}"), &mt);
    assert_eq!(mine["quota_set"]["id"], json!(mp), "{mine}");
    at(
        57,
        "GET",
        &format!("{url}/os-quota-sets/{mp}/detail"),
        &mt,
        None,
    )
    .expect(200);
    at(
        57,
        "GET",
        &format!("{url}/os-quota-sets/{ap}/defaults"),
        &mt,
        None,
    )
    .expect(200);
    assert_faults(
        |m, p, b| at(57, m, &format!("{qs}{p}"), &mt, b),
        &[
            ("GET", "", None, 403, "forbidden"),
            ("GET", "/detail", None, 403, "forbidden"),
        ],
    );
    let body = json!({"quota_set": {"cores": 100}});
    assert_faults(
        |m, p, b| at(57, m, &format!("{url}{p}"), &mt, b),
        &[
            (
                "PUT",
                &format!("/os-quota-sets/{mp}"),
                Some(body.clone()),
                403,
                "forbidden",
            ),
            (
                "DELETE",
                &format!("/os-quota-sets/{mp}"),
                None,
                403,
                "forbidden",
            ),
        ],
    );
    assert_eq!(get(&qs, None).status, 401);

    // The quota class `default` shows the defaults, with the fields of its own microversions.
    let class = get_at(1, &format!("{url}/os-quota-class-sets/default"), &admin);
    assert_eq!(class["quota_class_set"]["id"], "default", "{class}");
    assert_eq!(class["quota_class_set"]["floating_ips"], -1, "{class}");
    assert!(
        class["quota_class_set"].get("server_groups").is_none(),
        "{class}"
    );
    let class = get_at(57, &format!("{url}/os-quota-class-sets/default"), &admin);
    assert_eq!(class["quota_class_set"]["server_groups"], 10, "{class}");
    assert!(
        class["quota_class_set"].get("injected_files").is_none(),
        "{class}"
    );
    nova_fault(
        &at(
            57,
            "GET",
            &format!("{url}/os-quota-class-sets/default"),
            &mt,
            None,
        ),
        403,
        "forbidden",
    );
}

#[test]
fn limits_follow_quotas_usage_and_microversions() {
    let server = Server::start();
    let url = nova_url(&server);
    let admin = server.admin_token();
    let (mp, _mu, mt) = new_member(&server, &admin, "limits-p", "limits-u");

    let v21 = get_at(1, &format!("{url}/limits"), &mt);
    assert_eq!(v21["limits"]["rate"], json!([]), "{v21}");
    let abs = &v21["limits"]["absolute"];
    for (k, v) in [
        ("maxTotalInstances", 10),
        ("maxTotalCores", 20),
        ("maxTotalRAMSize", 51200),
        ("maxServerMeta", 128),
        ("maxImageMeta", 128),
        ("maxPersonality", 5),
        ("maxPersonalitySize", 10240),
        ("maxTotalKeypairs", 100),
        ("maxServerGroups", 10),
        ("maxServerGroupMembers", 10),
        ("maxSecurityGroups", -1),
        ("maxSecurityGroupRules", -1),
        ("maxTotalFloatingIps", -1),
        ("totalInstancesUsed", 0),
        ("totalCoresUsed", 0),
        ("totalRAMUsed", 0),
        ("totalServerGroupsUsed", 0),
        ("totalSecurityGroupsUsed", 0),
        ("totalFloatingIpsUsed", 0),
    ] {
        assert_eq!(abs[k], v, "{k} in {v21}");
    }
    let v236 = get_at(36, &format!("{url}/limits"), &mt);
    assert!(
        v236["limits"]["absolute"]
            .get("maxTotalFloatingIps")
            .is_none(),
        "{v236}"
    );
    assert_eq!(v236["limits"]["absolute"]["maxImageMeta"], 128, "{v236}");
    let v239 = get_at(39, &format!("{url}/limits"), &mt);
    assert!(
        v239["limits"]["absolute"].get("maxImageMeta").is_none(),
        "{v239}"
    );
    assert_eq!(v239["limits"]["absolute"]["maxPersonality"], 5, "{v239}");

    // Limits follow the project's quotas and its server groups.
    at(
        57,
        "PUT",
        &format!("{url}/os-quota-sets/{mp}"),
        &admin,
        Some(&json!({"quota_set": {"cores": 7}})),
    )
    .expect(200);
    at(
        57,
        "POST",
        &format!("{url}/os-server-groups"),
        &mt,
        Some(&json!({"server_group": {"name": "lg", "policies": ["anti-affinity"]}})),
    )
    .expect(200);
    let v257 = get_at(57, &format!("{url}/limits"), &mt);
    let abs = &v257["limits"]["absolute"];
    assert_eq!(abs["maxTotalCores"], 7, "{v257}");
    assert_eq!(abs["totalServerGroupsUsed"], 1, "{v257}");
    assert!(abs.get("maxPersonality").is_none(), "{v257}");
    assert_eq!(keys(abs).len(), 11, "{v257}");

    // Another project's limits: admins only.
    let theirs = get_at(57, &format!("{url}/limits?tenant_id={mp}"), &admin);
    assert_eq!(theirs["limits"]["absolute"]["maxTotalCores"], 7, "{theirs}");
    let ap = project_id_of(&server, &admin, "admin");
    nova_fault(
        &at(
            57,
            "GET",
            &format!("{url}/limits?tenant_id={ap}"),
            &mt,
            None,
        ),
        403,
        "forbidden",
    );
    at(
        57,
        "GET",
        &format!("{url}/limits?tenant_id={mp}"),
        &mt,
        None,
    )
    .expect(200);
    let own = get_at(57, &format!("{url}/limits"), &admin);
    assert_eq!(own["limits"]["absolute"]["maxTotalCores"], 20, "{own}");
}

#[test]
fn server_groups_in_both_formats_with_quota_and_isolation() {
    let server = Server::start();
    let url = nova_url(&server);
    let max = max_minor(&url);
    let admin = server.admin_token();
    let groups = format!("{url}/os-server-groups");

    // Before 2.64: `policies` (one), `metadata`; project and user ids from 2.13.
    let g = at(
        1,
        "POST",
        &groups,
        &admin,
        Some(&json!({"server_group": {"name": "web", "policies": ["anti-affinity"]}})),
    )
    .expect(200)
    .json();
    let sg = &g["server_group"];
    assert_eq!(sg["name"], "web", "{g}");
    assert_eq!(sg["policies"], json!(["anti-affinity"]), "{g}");
    assert_eq!(sg["metadata"], json!({}), "{g}");
    assert_eq!(sg["members"], json!([]), "{g}");
    assert!(
        sg.get("project_id").is_none() && sg.get("policy").is_none(),
        "{g}"
    );
    let web = id_of(&g, "server_group");
    assert_eq!(web.len(), 36, "a uuid: {web}");
    let shown = get_at(13, &format!("{groups}/{web}"), &admin);
    assert_eq!(
        shown["server_group"]["project_id"],
        json!(project_id_of(&server, &admin, "admin")),
        "{shown}"
    );
    assert!(shown["server_group"]["user_id"].is_string(), "{shown}");

    // soft-* policies from 2.15.
    let soft = json!({"server_group": {"name": "soft", "policies": ["soft-affinity"]}});
    nova_fault(
        &at(14, "POST", &groups, &admin, Some(&soft)),
        400,
        "badRequest",
    );
    at(15, "POST", &groups, &admin, Some(&soft)).expect(200);
    for bad in [
        json!({"server_group": {"name": "x", "policies": ["affinity", "anti-affinity"]}}),
        json!({"server_group": {"name": "x", "policies": []}}),
        json!({"server_group": {"name": "x", "policies": ["spread"]}}),
        json!({"server_group": {"name": "x", "policies": "affinity"}}),
        json!({"server_group": {"policies": ["affinity"]}}),
        json!({"server_group": {"name": "", "policies": ["affinity"]}}),
        json!({"server_group": {"name": " x", "policies": ["affinity"]}}),
        json!({"server_group": {"name": "x".repeat(256), "policies": ["affinity"]}}),
        json!({"server_group": {"name": "x", "policy": "affinity"}}),
        json!({"server_group": {"name": "x", "policies": ["affinity"], "rules": {}}}),
        json!({"server_group": "x"}),
        json!({"group": {"name": "x", "policies": ["affinity"]}}),
    ] {
        nova_fault(
            &at(15, "POST", &groups, &admin, Some(&bad)),
            400,
            "badRequest",
        );
    }

    // From 2.64: `policy` and `rules`.
    if max >= 64 {
        let g = at(
            64,
            "POST",
            &groups,
            &admin,
            Some(&json!({"server_group": {"name": "db", "policy": "anti-affinity", "rules": {"max_server_per_host": 2}}})),
        )
        .expect(200)
        .json();
        let sg = &g["server_group"];
        assert_eq!(sg["policy"], "anti-affinity", "{g}");
        assert_eq!(sg["rules"], json!({"max_server_per_host": 2}), "{g}");
        assert!(
            sg.get("policies").is_none() && sg.get("metadata").is_none(),
            "{g}"
        );
        assert!(sg["project_id"].is_string(), "{g}");
        // Groups made in the old format read in the new one and back.
        let old = get_at(64, &format!("{groups}/{web}"), &admin);
        assert_eq!(old["server_group"]["policy"], "anti-affinity", "{old}");
        assert_eq!(old["server_group"]["rules"], json!({}), "{old}");
        let db = id_of(&g, "server_group");
        let back = get_at(63, &format!("{groups}/{db}"), &admin);
        assert_eq!(
            back["server_group"]["policies"],
            json!(["anti-affinity"]),
            "{back}"
        );
        at(
            64,
            "POST",
            &groups,
            &admin,
            Some(&json!({"server_group": {"name": "aff", "policy": "soft-affinity"}})),
        )
        .expect(200);
        for bad in [
            json!({"server_group": {"name": "x", "policy": "affinity", "rules": {"max_server_per_host": 2}}}),
            json!({"server_group": {"name": "x", "policy": "anti-affinity", "rules": {"max_server_per_host": 0}}}),
            json!({"server_group": {"name": "x", "policy": "anti-affinity", "rules": {"other": 1}}}),
            json!({"server_group": {"name": "x", "policies": ["affinity"]}}),
            json!({"server_group": {"name": "x"}}),
        ] {
            nova_fault(
                &at(64, "POST", &groups, &admin, Some(&bad)),
                400,
                "badRequest",
            );
        }
        at(64, "DELETE", &format!("{groups}/{db}"), &admin, None).expect(204);
    } else {
        eprintln!("server offers 2.{max}: the 2.64 server group format is not checked");
    }

    // Listing with limit and offset.
    let all = get_at(13, &groups, &admin);
    let n = all["server_groups"].as_array().map(Vec::len).unwrap_or(0);
    assert!(n >= 2, "{all}");
    let page = get_at(13, &format!("{groups}?limit=1"), &admin);
    assert_eq!(
        page["server_groups"].as_array().map(Vec::len),
        Some(1),
        "{page}"
    );
    let rest = get_at(13, &format!("{groups}?offset=1"), &admin);
    assert_eq!(
        rest["server_groups"].as_array().map(Vec::len),
        Some(n - 1),
        "{rest}"
    );
    assert_faults(
        |m, p, b| at(13, m, &format!("{groups}{p}"), &admin, b),
        &[
            ("GET", "?limit=-1", None, 400, "badRequest"),
            ("GET", "?offset=x", None, 400, "badRequest"),
        ],
    );

    // Isolation: a member sees and touches only its project's groups; admins list all with all_projects.
    let (mp, _mu, mt) = new_member(&server, &admin, "groups-p", "groups-u");
    let mine = get_at(13, &groups, &mt);
    assert_eq!(mine["server_groups"], json!([]), "{mine}");
    assert_faults(
        |m, p, b| at(13, m, &format!("{groups}{p}"), &mt, b),
        &[
            ("GET", &format!("/{web}"), None, 404, "itemNotFound"),
            ("DELETE", &format!("/{web}"), None, 404, "itemNotFound"),
        ],
    );
    let g = at(
        13,
        "POST",
        &groups,
        &mt,
        Some(&json!({"server_group": {"name": "m1", "policies": ["affinity"]}})),
    )
    .expect(200)
    .json();
    assert_eq!(g["server_group"]["project_id"], json!(mp), "{g}");
    let m1 = id_of(&g, "server_group");
    let mine = get_at(13, &format!("{groups}?all_projects=True"), &mt);
    assert_eq!(
        mine["server_groups"].as_array().map(Vec::len),
        Some(1),
        "{mine}"
    );
    let own = get_at(13, &groups, &admin);
    assert!(
        !own.to_string().contains(&m1),
        "admins list their own project by default: {own}"
    );
    let every = get_at(13, &format!("{groups}?all_projects=True"), &admin);
    assert!(
        every.to_string().contains(&m1) && every.to_string().contains(&web),
        "{every}"
    );
    at(13, "GET", &format!("{groups}/{m1}"), &admin, None).expect(200);

    // Quota: the project's server_groups limit.
    at(
        57,
        "PUT",
        &format!("{url}/os-quota-sets/{mp}"),
        &admin,
        Some(&json!({"quota_set": {"server_groups": 2}})),
    )
    .expect(200);
    at(
        13,
        "POST",
        &groups,
        &mt,
        Some(&json!({"server_group": {"name": "m2", "policies": ["affinity"]}})),
    )
    .expect(200);
    let r = at(
        13,
        "POST",
        &groups,
        &mt,
        Some(&json!({"server_group": {"name": "m3", "policies": ["affinity"]}})),
    );
    nova_fault(&r, 403, "forbidden");
    assert_eq!(message(&r), "Quota exceeded, too many server groups.");
    // Deleting frees a slot.
    at(13, "DELETE", &format!("{groups}/{m1}"), &mt, None).expect(204);
    assert_faults(
        |m, p, b| at(13, m, &format!("{groups}{p}"), &mt, b),
        &[
            ("GET", &format!("/{m1}"), None, 404, "itemNotFound"),
            ("DELETE", &format!("/{m1}"), None, 404, "itemNotFound"),
        ],
    );
    at(
        13,
        "POST",
        &groups,
        &mt,
        Some(&json!({"server_group": {"name": "m3", "policies": ["affinity"]}})),
    )
    .expect(200);

    // Admins delete other projects' groups.
    at(13, "DELETE", &format!("{groups}/{web}"), &admin, None).expect(204);
    nova_fault(
        &at(13, "GET", &format!("{groups}/nope"), &admin, None),
        404,
        "itemNotFound",
    );
}

#[test]
fn usage_migrations_and_actions_policy_and_validation() {
    let server = Server::start();
    let url = nova_url(&server);
    let admin = server.admin_token();
    let (mp, _mu, mt) = new_member(&server, &admin, "usage-p", "usage-u");
    let ap = project_id_of(&server, &admin, "admin");

    // Simple tenant usage: everything for admins, a member its own project.
    let window = "start=2020-01-01T00:00:00&end=2020-01-02T00:00:00.000000";
    let all = get_at(
        40,
        &format!("{url}/os-simple-tenant-usage?{window}&detailed=1"),
        &admin,
    );
    assert_eq!(all["tenant_usages"], json!([]), "{all}");
    let mine = get_at(
        40,
        &format!("{url}/os-simple-tenant-usage/{mp}?{window}"),
        &mt,
    );
    assert_eq!(mine["tenant_usage"], json!({}), "{mine}");
    at(
        1,
        "GET",
        &format!("{url}/os-simple-tenant-usage/{mp}"),
        &mt,
        None,
    )
    .expect(200);
    assert_faults(
        |m, p, b| at(40, m, &format!("{url}{p}"), &mt, b),
        &[
            ("GET", "/os-simple-tenant-usage", None, 403, "forbidden"),
            (
                "GET",
                &format!("/os-simple-tenant-usage/{ap}"),
                None,
                403,
                "forbidden",
            ),
        ],
    );
    for bad in [
        "start=2020-01-02T00:00:00&end=2020-01-01T00:00:00",
        "start=yesterday",
        "end=2000-01-01T00:00:00",
        "start=2020-01-01T00:00:00&end=2020-01-02T00:00:00&limit=-1",
        "start=2020-01-01T00:00:00&end=2020-01-02T00:00:00&marker=nope",
    ] {
        nova_fault(
            &at(
                40,
                "GET",
                &format!("{url}/os-simple-tenant-usage?{bad}"),
                &admin,
                None,
            ),
            400,
            "badRequest",
        );
    }

    // os-migrations: admins only; paging and filters from 2.59 (unknown parameters refused there).
    let m = get_at(1, &format!("{url}/os-migrations"), &admin);
    assert_eq!(m["migrations"], json!([]), "{m}");
    at(
        1,
        "GET",
        &format!("{url}/os-migrations?whatever=1"),
        &admin,
        None,
    )
    .expect(200);
    let m = get_at(
        59,
        &format!("{url}/os-migrations?limit=5&status=done&changes-since=2020-01-01T00:00:00Z"),
        &admin,
    );
    assert_eq!(m["migrations"], json!([]), "{m}");
    nova_fault(
        &at(59, "GET", &format!("{url}/os-migrations"), &mt, None),
        403,
        "forbidden",
    );
    for bad in [
        "whatever=1",
        "limit=-1",
        "limit=x",
        "marker=nope",
        "changes-since=soon",
        "user_id=u",
    ] {
        nova_fault(
            &at(
                59,
                "GET",
                &format!("{url}/os-migrations?{bad}"),
                &admin,
                None,
            ),
            400,
            "badRequest",
        );
    }

    // A server's migrations (2.23+) and instance actions: unknown servers are 404, migrations admin-only.
    let nope = "00000000-0000-4000-8000-000000000000";
    nova_fault(
        &at(
            23,
            "GET",
            &format!("{url}/servers/{nope}/migrations"),
            &admin,
            None,
        ),
        404,
        "itemNotFound",
    );
    nova_fault(
        &at(
            22,
            "GET",
            &format!("{url}/servers/{nope}/migrations"),
            &admin,
            None,
        ),
        404,
        "itemNotFound",
    );
    nova_fault(
        &at(
            23,
            "GET",
            &format!("{url}/servers/{nope}/migrations"),
            &mt,
            None,
        ),
        403,
        "forbidden",
    );
    nova_fault(
        &at(
            24,
            "DELETE",
            &format!("{url}/servers/{nope}/migrations/1"),
            &admin,
            None,
        ),
        404,
        "itemNotFound",
    );
    nova_fault(
        &at(
            1,
            "GET",
            &format!("{url}/servers/{nope}/os-instance-actions"),
            &admin,
            None,
        ),
        404,
        "itemNotFound",
    );
    nova_fault(
        &at(
            58,
            "GET",
            &format!("{url}/servers/{nope}/os-instance-actions/req-x"),
            &mt,
            None,
        ),
        404,
        "itemNotFound",
    );
}

/// Poll `GET /servers/{id}` until `done` holds for the server (60 s at most); returns the server.
fn wait_server(
    url: &str,
    token: &str,
    id: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let s = get_at(81, &format!("{url}/servers/{id}"), token);
        if done(&s["server"]) {
            return s["server"].clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "server {id} never became {what}: {s}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

fn action_names(list: &Value) -> Vec<String> {
    list["instanceActions"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x["action"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_booted_server_has_instance_actions_usage_and_migrations() {
    let server = Server::start_with_args(&["--fake-hosts", "2"]);
    let url = nova_url(&server);
    let admin = server.admin_token();
    let (mp, _mu, mt) = new_member(&server, &admin, "vm-p", "vm-u");
    let (_op, _ou, other) = new_member(&server, &admin, "other-p", "other-u");
    post(
        &format!("{url}/flavors"),
        Some(&admin),
        &json!({"flavor": {"name": "m1.small", "ram": 512, "vcpus": 1, "disk": 1, "id": "1"}}),
    )
    .expect(200);
    let image = upload_image(&server, &admin, "tiny", &random_bytes(64 * 1024));
    let before = chrono_now_minus_minutes(5);

    // The member boots a server; it becomes ACTIVE on a fake host.
    let created = at(
        81,
        "POST",
        &format!("{url}/servers"),
        &mt,
        Some(&json!({"server": {"name": "vm1", "flavorRef": "1", "imageRef": image, "networks": "none"}})),
    )
    .expect(202)
    .json();
    let id = id_of(&created, "server");
    wait_server(&url, &mt, &id, "ACTIVE", |s| s["status"] == "ACTIVE");

    // Admins live-migrate it to the other host: os-migrations records the move.
    let source = get_at(81, &format!("{url}/servers/{id}"), &admin)["server"]
        ["OS-EXT-SRV-ATTR:host"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(!source.is_empty(), "an admin sees the host");
    at(
        81,
        "POST",
        &format!("{url}/servers/{id}/action"),
        &admin,
        Some(&json!({"os-migrateLive": {"host": null, "block_migration": "auto"}})),
    )
    .expect(202);
    let moved = wait_server(&url, &admin, &id, "moved", |s| {
        s["status"] == "ACTIVE"
            && s["OS-EXT-STS:task_state"].is_null()
            && s["OS-EXT-SRV-ATTR:host"]
                .as_str()
                .is_some_and(|h| h != source)
    });
    let dest = moved["OS-EXT-SRV-ATTR:host"].as_str().unwrap().to_string();
    let migrations = get_at(80, &format!("{url}/os-migrations"), &admin);
    let m = &migrations["migrations"][0];
    assert_eq!(
        migrations["migrations"].as_array().map(Vec::len),
        Some(1),
        "{migrations}"
    );
    assert_eq!(m["instance_uuid"], json!(id), "{migrations}");
    assert_eq!(m["migration_type"], "live-migration", "{migrations}");
    assert_eq!(m["status"], "completed", "{migrations}");
    assert_eq!(m["source_compute"], json!(source), "{migrations}");
    assert_eq!(m["dest_compute"], json!(dest), "{migrations}");
    assert_eq!(m["project_id"], json!(mp), "{migrations}");
    assert!(
        m["uuid"].is_string() && m["user_id"].is_string(),
        "{migrations}"
    );
    assert!(
        m.get("links").is_none(),
        "links only while in progress: {migrations}"
    );
    let old = get_at(1, &format!("{url}/os-migrations"), &admin);
    assert!(
        old["migrations"][0].get("migration_type").is_none(),
        "{old}"
    );
    assert!(old["migrations"][0].get("uuid").is_none(), "{old}");
    for (query, n) in [
        (format!("instance_uuid={id}"), 1),
        (format!("host={dest}"), 1),
        (format!("source_compute={dest}"), 0),
        ("migration_type=resize".to_string(), 0),
        ("status=completed".to_string(), 1),
        (format!("project_id={mp}"), 1),
        ("user_id=nobody".to_string(), 0),
        ("changes-since=2999-01-01T00:00:00Z".to_string(), 0),
    ] {
        let l = get_at(80, &format!("{url}/os-migrations?{query}"), &admin);
        assert_eq!(
            l["migrations"].as_array().map(Vec::len),
            Some(n),
            "{query}: {l}"
        );
    }
    let page = get_at(59, &format!("{url}/os-migrations?limit=1"), &admin);
    let next = page["migrations_links"][0]["href"]
        .as_str()
        .unwrap_or_default();
    assert!(next.contains("marker="), "{page}");
    let after = get_at(
        59,
        &format!("{url}/os-migrations?marker={}", m["uuid"].as_str().unwrap()),
        &admin,
    );
    assert_eq!(after["migrations"], json!([]), "{after}");
    // Nothing is in progress any more.
    let live = get_at(80, &format!("{url}/servers/{id}/migrations"), &admin);
    assert_eq!(live["migrations"], json!([]), "{live}");
    let mid = m["id"].as_u64().unwrap();
    assert_faults(
        |m, p, b| at(80, m, &format!("{url}{p}"), &admin, b),
        &[
            (
                "GET",
                &format!("/servers/{id}/migrations/{mid}"),
                None,
                404,
                "itemNotFound",
            ),
            (
                "DELETE",
                &format!("/servers/{id}/migrations/{mid}"),
                None,
                409,
                "conflictingRequest",
            ),
        ],
    );

    // The member stops it.
    at(
        81,
        "POST",
        &format!("{url}/servers/{id}/action"),
        &mt,
        Some(&json!({"os-stop": null})),
    )
    .expect(202);
    wait_server(&url, &mt, &id, "SHUTOFF", |s| {
        s["status"] == "SHUTOFF" && s["OS-EXT-STS:task_state"].is_null()
    });

    // Instance actions, newest first.
    let actions_url = format!("{url}/servers/{id}/os-instance-actions");
    let list = get_at(58, &actions_url, &mt);
    assert_eq!(
        action_names(&list),
        vec!["stop", "live-migration", "create"],
        "{list}"
    );
    let stop = &list["instanceActions"][0];
    assert_eq!(stop["instance_uuid"], json!(id), "{list}");
    assert_eq!(stop["project_id"], json!(mp), "{list}");
    assert!(
        stop["message"].is_null() && stop["updated_at"].is_string(),
        "{list}"
    );
    let stop_req = stop["request_id"].as_str().unwrap().to_string();
    assert!(stop_req.starts_with("req-"), "{list}");
    let v21 = get_at(1, &actions_url, &mt);
    assert!(
        v21["instanceActions"][0].get("updated_at").is_none(),
        "{v21}"
    );
    // Paging (2.58).
    let page = get_at(58, &format!("{actions_url}?limit=1"), &mt);
    assert_eq!(action_names(&page), vec!["stop"], "{page}");
    assert!(
        page["links"][0]["href"]
            .as_str()
            .is_some_and(|h| h.contains(&stop_req)),
        "{page}"
    );
    let rest = get_at(58, &format!("{actions_url}?marker={stop_req}"), &mt);
    assert_eq!(
        action_names(&rest),
        vec!["live-migration", "create"],
        "{rest}"
    );
    let none = get_at(
        58,
        &format!("{actions_url}?changes-since=2999-01-01T00:00:00Z"),
        &mt,
    );
    assert_eq!(none["instanceActions"], json!([]), "{none}");
    assert_faults(
        |m, p, b| at(58, m, &format!("{actions_url}{p}"), &mt, b),
        &[
            ("GET", "?marker=req-nope", None, 400, "badRequest"),
            ("GET", "?limit=-1", None, 400, "badRequest"),
        ],
    );
    nova_fault(
        &at(66, "GET", &format!("{actions_url}?changes-since=2020-01-02T00:00:00Z&changes-before=2020-01-01T00:00:00Z"), &mt, None),
        400,
        "badRequest",
    );

    // Events: members from 2.51, without traceback or host; admins always, with both (host from 2.62).
    let show = format!("{actions_url}/{stop_req}");
    let v50 = get_at(50, &show, &mt);
    assert!(v50["instanceAction"].get("events").is_none(), "{v50}");
    let v62 = get_at(62, &show, &mt);
    let ev = &v62["instanceAction"]["events"][0];
    assert_eq!(ev["event"], "compute_stop_instance", "{v62}");
    assert_eq!(ev["result"], "Success", "{v62}");
    assert!(
        ev["start_time"].is_string() && ev["finish_time"].is_string(),
        "{v62}"
    );
    assert_eq!(ev["hostId"].as_str().map(str::len), Some(56), "{v62}");
    assert!(
        ev.get("host").is_none() && ev.get("traceback").is_none(),
        "{v62}"
    );
    let adm = get_at(62, &show, &admin);
    let ev = &adm["instanceAction"]["events"][0];
    assert_eq!(ev["host"], json!(dest), "{adm}");
    assert!(ev["traceback"].is_null(), "{adm}");
    let adm = get_at(1, &show, &admin);
    assert!(adm["instanceAction"]["events"].is_array(), "{adm}");
    let create_req = list["instanceActions"][2]["request_id"]
        .as_str()
        .unwrap()
        .to_string();
    let create = get_at(51, &format!("{actions_url}/{create_req}"), &mt);
    let events: Vec<&str> = create["instanceAction"]["events"]
        .as_array()
        .map(|a| a.iter().filter_map(|e| e["event"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        events.contains(&"compute__do_build_and_run_instance"),
        "{create}"
    );
    nova_fault(
        &at(58, "GET", &format!("{actions_url}/req-nope"), &mt, None),
        404,
        "itemNotFound",
    );
    // Another project's server is not found.
    nova_fault(
        &at(58, "GET", &actions_url, &other, None),
        404,
        "itemNotFound",
    );
    nova_fault(&at(58, "GET", &show, &other, None), 404, "itemNotFound");

    // Quota usage and limits count the server.
    let detail = get_at(81, &format!("{url}/os-quota-sets/{mp}/detail"), &mt);
    assert_eq!(detail["quota_set"]["instances"]["in_use"], 1, "{detail}");
    assert_eq!(detail["quota_set"]["cores"]["in_use"], 1, "{detail}");
    assert_eq!(detail["quota_set"]["ram"]["in_use"], 512, "{detail}");
    let limits = get_at(81, &format!("{url}/limits"), &mt);
    assert_eq!(
        limits["limits"]["absolute"]["totalRAMUsed"], 512,
        "{limits}"
    );
    // A limit below the usage is refused unless forced.
    nova_fault(
        &at(
            81,
            "PUT",
            &format!("{url}/os-quota-sets/{mp}"),
            &admin,
            Some(&json!({"quota_set": {"instances": 0}})),
        ),
        400,
        "badRequest",
    );

    // Usage: the server counts from its launch, whatever its power state.
    let window = format!("start={before}&end=2999-01-01T00:00:00");
    let usage = get_at(
        40,
        &format!("{url}/os-simple-tenant-usage/{mp}?{window}"),
        &mt,
    );
    let u = &usage["tenant_usage"];
    assert_eq!(u["tenant_id"], json!(mp), "{usage}");
    assert!(
        u["total_hours"].as_f64().is_some_and(|h| h > 0.0),
        "{usage}"
    );
    let su = &u["server_usages"][0];
    assert_eq!(su["instance_id"], json!(id), "{usage}");
    assert_eq!(su["name"], "vm1", "{usage}");
    assert_eq!(su["flavor"], "m1.small", "{usage}");
    assert_eq!(
        (
            su["vcpus"].clone(),
            su["memory_mb"].clone(),
            su["local_gb"].clone()
        ),
        (json!(1), json!(512), json!(1)),
        "{usage}"
    );
    assert_eq!(su["state"], "stopped", "{usage}");
    assert!(
        su["ended_at"].is_null() && su["started_at"].is_string(),
        "{usage}"
    );
    let total_vcpus = u["total_vcpus_usage"].as_f64().unwrap();
    assert!(
        (total_vcpus - u["total_hours"].as_f64().unwrap()).abs() < 1e-9,
        "{usage}"
    );
    let all = get_at(
        40,
        &format!("{url}/os-simple-tenant-usage?{window}&limit=1"),
        &admin,
    );
    assert_eq!(all["tenant_usages"][0]["tenant_id"], json!(mp), "{all}");
    assert!(
        all["tenant_usages"][0].get("server_usages").is_none(),
        "not detailed: {all}"
    );
    assert!(
        all["tenant_usages_links"][0]["href"]
            .as_str()
            .is_some_and(|h| h.contains(&id)),
        "{all}"
    );
    let detailed = get_at(
        40,
        &format!("{url}/os-simple-tenant-usage?{window}&detailed=1"),
        &admin,
    );
    assert_eq!(
        detailed["tenant_usages"][0]["server_usages"][0]["instance_id"],
        json!(id),
        "{detailed}"
    );
    let earlier = get_at(
        40,
        &format!(
            "{url}/os-simple-tenant-usage/{mp}?start=2000-01-01T00:00:00&end=2000-01-02T00:00:00"
        ),
        &mt,
    );
    assert_eq!(earlier["tenant_usage"], json!({}), "{earlier}");

    // Deleted: its actions stay readable from 2.21, and usage shows it terminated.
    at(81, "DELETE", &format!("{url}/servers/{id}"), &mt, None).expect(204);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while at(81, "GET", &format!("{url}/servers/{id}"), &mt, None).status != 404 {
        assert!(
            std::time::Instant::now() < deadline,
            "server {id} was never deleted"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    nova_fault(&at(20, "GET", &actions_url, &mt, None), 404, "itemNotFound");
    let gone = get_at(21, &actions_url, &admin);
    assert_eq!(action_names(&gone)[0], "delete", "{gone}");
    at(21, "GET", &actions_url, &mt, None).expect(200);
    let usage = get_at(
        40,
        &format!("{url}/os-simple-tenant-usage/{mp}?{window}"),
        &mt,
    );
    let su = &usage["tenant_usage"]["server_usages"][0];
    assert_eq!(su["state"], "terminated", "{usage}");
    assert!(su["ended_at"].is_string(), "{usage}");
}

/// `now - minutes` in Nova's query format (naive UTC).
fn chrono_now_minus_minutes(minutes: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::minutes(minutes))
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string()
}
