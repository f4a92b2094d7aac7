//! Neutron security groups over HTTP through the real binary: every project's `default` group (made once,
//! with Neutron's default rules, not deletable by its tenant), groups and rules (create, list with filters,
//! show, update with If-Match, delete; protocols by name and number, port ranges, remote prefixes and
//! groups), Neutron's refusals (duplicate rule 409 naming the existing rule, bad ranges / prefixes /
//! ethertypes 400, a group in use 409), quotas, tags, and another project's groups staying invisible. Every
//! refused request is checked to have appended nothing (the log head does not move).

use crate::common::neutron::*;
use crate::common::nova::new_member;
use crate::common::*;
use serde_json::{json, Value};

fn create_rule(url: &str, token: &str, rule: Value) -> Resp {
    post(
        &format!("{url}/security-group-rules"),
        Some(token),
        &json!({ "security_group_rule": rule }),
    )
}

fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn security_groups_and_rules_over_http() {
    let server = start_without_heartbeats();
    let url = neutron(&server);
    let admin = server.admin_token();
    let (pa, _, alice) = new_member(&server, &admin, "sg-a", "sg-alice");
    let (_pb, _, bob) = new_member(&server, &admin, "sg-b", "sg-bob");

    // --- the default group: made on first need, once, with Neutron's rules --------------------------------
    let list = get(&format!("{url}/security-groups"), Some(&alice))
        .expect(200)
        .json();
    let groups = list["security_groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "{list}");
    let default = &groups[0];
    assert_eq!(default["name"], "default");
    assert_eq!(default["project_id"], pa.as_str());
    let default_id = default["id"].as_str().unwrap().to_string();
    let rules = default["security_group_rules"].as_array().unwrap();
    assert_eq!(rules.len(), 4, "{default}");
    for ethertype in ["IPv4", "IPv6"] {
        assert!(rules.iter().any(|r| r["direction"] == "egress"
            && r["ethertype"] == ethertype
            && r["remote_group_id"].is_null()
            && r["protocol"].is_null()));
        assert!(rules.iter().any(|r| r["direction"] == "ingress"
            && r["ethertype"] == ethertype
            && r["remote_group_id"] == default_id.as_str()));
    }
    let again = get(&format!("{url}/security-groups"), Some(&alice))
        .expect(200)
        .json();
    assert_eq!(ids(&again["security_groups"]), [default_id.as_str()]);
    assert_eq!(quota_used(&url, &admin, &pa, "security_group"), 1);
    assert_eq!(quota_used(&url, &admin, &pa, "security_group_rule"), 4);

    // --- a group of our own --------------------------------------------------------------------------------
    let web = post(
        &format!("{url}/security-groups"),
        Some(&alice),
        &json!({"security_group": {"name": "web", "description": "web servers"}}),
    )
    .expect(201)
    .json()["security_group"]
        .clone();
    let web_id = web["id"].as_str().unwrap().to_string();
    assert_eq!(web["stateful"], true);
    assert_eq!(web["shared"], false);
    assert_eq!(web["revision_number"], 1);
    let egress: Vec<&Value> = web["security_group_rules"]
        .as_array()
        .unwrap()
        .iter()
        .collect();
    assert_eq!(egress.len(), 2, "{web}");
    assert!(egress.iter().all(|r| r["direction"] == "egress"));

    let ssh = create_rule(
        &url,
        &alice,
        json!({"security_group_id": web_id, "direction": "ingress", "protocol": "tcp",
               "port_range_min": 22, "port_range_max": 22, "remote_ip_prefix": "0.0.0.0/0"}),
    )
    .expect(201)
    .json()["security_group_rule"]
        .clone();
    let ssh_id = ssh["id"].as_str().unwrap().to_string();
    assert_eq!(ssh["ethertype"], "IPv4");
    assert_eq!(ssh["protocol"], "tcp");
    assert_eq!(ssh["revision_number"], 0);
    // Host bits of a prefix are dropped; protocol numbers are kept as given.
    let icmp = create_rule(
        &url,
        &alice,
        json!({"security_group_id": web_id, "direction": "ingress", "protocol": "1",
               "port_range_min": 8, "port_range_max": 0, "remote_ip_prefix": "192.168.7.9/16"}),
    )
    .expect(201)
    .json()["security_group_rule"]
        .clone();
    assert_eq!(icmp["remote_ip_prefix"], "192.168.0.0/16");
    assert_eq!(icmp["protocol"], "1");
    let from_default = create_rule(
        &url,
        &alice,
        json!({"security_group_id": web_id, "direction": "ingress", "ethertype": "IPv6",
               "protocol": "udp", "port_range_min": 53, "port_range_max": 53,
               "remote_group_id": default_id}),
    )
    .expect(201)
    .json()["security_group_rule"]
        .clone();
    let shown = get(&format!("{url}/security-groups/{web_id}"), Some(&alice))
        .expect(200)
        .json()["security_group"]
        .clone();
    assert_eq!(shown["security_group_rules"].as_array().unwrap().len(), 5);
    assert_eq!(
        shown["revision_number"], 4,
        "each rule bumps the group: {shown}"
    );

    // Rule lists filter like Neutron's.
    let ingress = get(
        &format!("{url}/security-group-rules?security_group_id={web_id}&direction=ingress"),
        Some(&alice),
    )
    .expect(200)
    .json();
    assert_eq!(ingress["security_group_rules"].as_array().unwrap().len(), 3);
    let tcp = get(
        &format!("{url}/security-group-rules?protocol=tcp"),
        Some(&alice),
    )
    .expect(200)
    .json();
    assert_eq!(ids(&tcp["security_group_rules"]), [ssh_id.as_str()]);
    let one = get(
        &format!("{url}/security-group-rules/{ssh_id}?fields=id&fields=port_range_min"),
        Some(&alice),
    )
    .expect(200)
    .json();
    assert_eq!(
        one["security_group_rule"],
        json!({"id": ssh_id, "port_range_min": 22})
    );

    // --- Neutron's refusals, none of which records anything ------------------------------------------------
    appends_nothing(&server, "bad rules", || {
        // The same rule, spelled differently (protocol number, "anywhere" as no prefix): 409 naming it.
        let m = fault(
            &create_rule(
                &url,
                &alice,
                json!({"security_group_id": web_id, "direction": "ingress", "protocol": "6",
                       "port_range_min": "22", "port_range_max": 22, "description": "again"}),
            ),
            409,
            "SecurityGroupRuleExists",
        );
        assert!(m.contains(&ssh_id), "{m}");
        let bad = |rule: Value, kind: &str| {
            let mut body = json!({"security_group_id": web_id, "direction": "ingress"});
            for (k, v) in rule.as_object().unwrap() {
                body[k] = v.clone();
            }
            fault(&create_rule(&url, &alice, body), 400, kind)
        };
        bad(
            json!({"protocol": "tcp", "port_range_min": 30, "port_range_max": 20}),
            "SecurityGroupInvalidPortRange",
        );
        bad(
            json!({"protocol": "tcp", "port_range_min": 1, "port_range_max": 70000}),
            "SecurityGroupInvalidPortValue",
        );
        bad(
            json!({"port_range_min": 1, "port_range_max": 2}),
            "SecurityGroupProtocolRequiredWithPorts",
        );
        bad(
            json!({"protocol": "icmp", "port_range_max": 0}),
            "SecurityGroupMissingIcmpType",
        );
        bad(
            json!({"protocol": "bogus"}),
            "SecurityGroupRuleInvalidProtocol",
        );
        bad(
            json!({"ethertype": "IPv6", "remote_ip_prefix": "10.0.0.0/8"}),
            "SecurityGroupRuleParameterConflict",
        );
        bad(
            json!({"remote_ip_prefix": "10.0.0.0/8", "remote_group_id": default_id}),
            "SecurityGroupRemoteGroupAndRemoteIpPrefix",
        );
        bad(json!({"remote_ip_prefix": "10.0.0.0/99"}), "InvalidCIDR");
        bad(json!({"direction": "sideways"}), "HTTPBadRequest");
        // Unknown groups, as the group or as the remote group.
        fault(
            &create_rule(
                &url,
                &alice,
                json!({"security_group_id": "00000000-0000-4000-8000-000000000000", "direction": "ingress"}),
            ),
            404,
            "SecurityGroupNotFound",
        );
        // A second group called "default" is refused.
        fault(
            &post(
                &format!("{url}/security-groups"),
                Some(&alice),
                &json!({"security_group": {"name": "default"}}),
            ),
            409,
            "SecurityGroupDefaultAlreadyExists",
        );
        fault(
            &put_json(
                &format!("{url}/security-groups/{web_id}"),
                &alice,
                &json!({"security_group": {"name": "default"}}),
            ),
            409,
            "SecurityGroupDefaultAlreadyExists",
        );
        fault(
            &put_json(
                &format!("{url}/security-groups/{default_id}"),
                &alice,
                &json!({"security_group": {"name": "other"}}),
            ),
            409,
            "SecurityGroupCannotUpdateDefault",
        );
        // The tenant's own default group stays.
        fault(
            &delete(&format!("{url}/security-groups/{default_id}"), Some(&alice)),
            409,
            "SecurityGroupCannotRemoveDefault",
        );
        // A stale If-Match.
        let stale = request_raw(
            "PUT",
            &format!("{url}/security-groups/{web_id}"),
            &[("X-Auth-Token", &alice), ("If-Match", "revision_number=1")],
            Some(&json!({"security_group": {"description": "x"}}).to_string()),
        )
        .unwrap();
        fault(&stale, 412, "RevisionNumberConstraintFailed");
    });

    // --- updates and tags --------------------------------------------------------------------------------
    let updated = request_raw(
        "PUT",
        &format!("{url}/security-groups/{web_id}"),
        &[("X-Auth-Token", &alice), ("If-Match", "revision_number=4")],
        Some(&json!({"security_group": {"name": "www", "description": "front"}}).to_string()),
    )
    .unwrap()
    .expect(200)
    .json()["security_group"]
        .clone();
    assert_eq!(
        (
            updated["name"].as_str(),
            updated["revision_number"].as_u64()
        ),
        (Some("www"), Some(5))
    );
    put_json(
        &format!("{url}/security-groups/{web_id}/tags"),
        &alice,
        &json!({"tags": ["blue", "green"]}),
    );
    let tagged = get(&format!("{url}/security-groups?tags=blue"), Some(&alice))
        .expect(200)
        .json();
    assert_eq!(ids(&tagged["security_groups"]), [web_id.as_str()]);

    // --- another project sees none of it ------------------------------------------------------------------
    let bobs = get(&format!("{url}/security-groups"), Some(&bob))
        .expect(200)
        .json();
    let bob_ids = ids(&bobs["security_groups"]);
    assert_eq!(
        bob_ids.len(),
        1,
        "bob sees only his own default group: {bobs}"
    );
    assert!(!bob_ids.contains(&web_id) && !bob_ids.contains(&default_id));
    let bob_rules = get(&format!("{url}/security-group-rules"), Some(&bob))
        .expect(200)
        .json();
    assert!(!ids(&bob_rules["security_group_rules"]).contains(&ssh_id));
    appends_nothing(&server, "another project's group", || {
        fault(
            &get(&format!("{url}/security-groups/{web_id}"), Some(&bob)),
            404,
            "SecurityGroupNotFound",
        );
        fault(
            &put_json(
                &format!("{url}/security-groups/{web_id}"),
                &bob,
                &json!({"security_group": {"name": "mine"}}),
            ),
            404,
            "SecurityGroupNotFound",
        );
        fault(
            &delete(&format!("{url}/security-groups/{web_id}"), Some(&bob)),
            404,
            "SecurityGroupNotFound",
        );
        fault(
            &get(&format!("{url}/security-group-rules/{ssh_id}"), Some(&bob)),
            404,
            "SecurityGroupRuleNotFound",
        );
        fault(
            &delete(&format!("{url}/security-group-rules/{ssh_id}"), Some(&bob)),
            404,
            "SecurityGroupRuleNotFound",
        );
        fault(
            &create_rule(
                &url,
                &bob,
                json!({"security_group_id": web_id, "direction": "ingress"}),
            ),
            404,
            "SecurityGroupNotFound",
        );
        fault(
            &get(&format!("{url}/security-groups/{web_id}/tags"), Some(&bob)),
            404,
            "SecurityGroupNotFound",
        );
    });

    // --- quotas --------------------------------------------------------------------------------------------
    let groups_used = quota_used(&url, &admin, &pa, "security_group");
    let rules_used = quota_used(&url, &admin, &pa, "security_group_rule");
    assert_eq!((groups_used, rules_used), (2, 9));
    put_json(
        &format!("{url}/quotas/{pa}"),
        &admin,
        &json!({"quota": {"security_group": groups_used, "security_group_rule": rules_used}}),
    )
    .expect(200);
    appends_nothing(&server, "over quota", || {
        fault(
            &post(
                &format!("{url}/security-groups"),
                Some(&alice),
                &json!({"security_group": {"name": "one-too-many"}}),
            ),
            409,
            "OverQuota",
        );
        fault(
            &create_rule(
                &url,
                &alice,
                json!({"security_group_id": web_id, "direction": "ingress", "protocol": "tcp",
                       "port_range_min": 80, "port_range_max": 80}),
            ),
            409,
            "OverQuota",
        );
    });
    // Deleting a rule gives its share back.
    delete(
        &format!(
            "{url}/security-group-rules/{}",
            icmp["id"].as_str().unwrap()
        ),
        Some(&alice),
    )
    .expect(204);
    assert_eq!(
        quota_used(&url, &admin, &pa, "security_group_rule"),
        rules_used - 1
    );
    create_rule(
        &url,
        &alice,
        json!({"security_group_id": web_id, "direction": "ingress", "protocol": "tcp",
               "port_range_min": 80, "port_range_max": 80}),
    )
    .expect(201);
    put_json(
        &format!("{url}/quotas/{pa}"),
        &admin,
        &json!({"quota": {"security_group": 10, "security_group_rule": 100}}),
    )
    .expect(200);

    // --- in use by a port: no delete; deleting a group takes the rules naming it along --------------------
    let (net, _) = network_with_subnet(&url, &alice, "sg-net", "10.20.0.0/24", None);
    let port = post(
        &format!("{url}/ports"),
        Some(&alice),
        &json!({"port": {"network_id": net, "security_groups": [web_id]}}),
    )
    .expect(201)
    .json()["port"]
        .clone();
    assert_eq!(port["security_groups"], json!([web_id]));
    let plain = post(
        &format!("{url}/ports"),
        Some(&alice),
        &json!({"port": {"network_id": net}}),
    )
    .expect(201)
    .json()["port"]
        .clone();
    assert_eq!(
        plain["security_groups"],
        json!([default_id]),
        "a port gets the default group"
    );
    let (bob_net, _) = network_with_subnet(&url, &bob, "bob-net", "10.30.0.0/24", None);
    appends_nothing(&server, "group in use", || {
        let m = fault(
            &delete(&format!("{url}/security-groups/{web_id}"), Some(&alice)),
            409,
            "SecurityGroupInUse",
        );
        assert!(m.contains(&web_id), "{m}");
        // A port cannot use another project's group.
        fault(
            &post(
                &format!("{url}/ports"),
                Some(&bob),
                &json!({"port": {"network_id": bob_net, "security_groups": [web_id]}}),
            ),
            404,
            "SecurityGroupNotFound",
        );
    });
    delete(
        &format!("{url}/ports/{}", port["id"].as_str().unwrap()),
        Some(&alice),
    )
    .expect(204);
    // A group named by web's rule as its remote: deleting it removes that rule.
    let db = post(
        &format!("{url}/security-groups"),
        Some(&alice),
        &json!({"security_group": {"name": "db"}}),
    )
    .expect(201)
    .json()["security_group"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let from_db = create_rule(
        &url,
        &alice,
        json!({"security_group_id": web_id, "direction": "ingress", "remote_group_id": db}),
    )
    .expect(201)
    .json()["security_group_rule"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    delete(&format!("{url}/security-groups/{db}"), Some(&alice)).expect(204);
    fault(
        &get(
            &format!("{url}/security-group-rules/{from_db}"),
            Some(&alice),
        ),
        404,
        "SecurityGroupRuleNotFound",
    );
    delete(&format!("{url}/security-groups/{web_id}"), Some(&alice)).expect(204);
    fault(
        &get(
            &format!(
                "{url}/security-group-rules/{}",
                from_default["id"].as_str().unwrap()
            ),
            Some(&alice),
        ),
        404,
        "SecurityGroupRuleNotFound",
    );
    // Only the default group and its rules are still counted.
    assert_eq!(quota_used(&url, &admin, &pa, "security_group"), 1);
    assert_eq!(quota_used(&url, &admin, &pa, "security_group_rule"), 4);
    // An admin may delete a project's default group (it comes back on the next need).
    delete(
        &format!("{url}/ports/{}", plain["id"].as_str().unwrap()),
        Some(&alice),
    )
    .expect(204);
    delete(&format!("{url}/security-groups/{default_id}"), Some(&admin)).expect(204);
    let back = get(&format!("{url}/security-groups"), Some(&alice))
        .expect(200)
        .json();
    assert_eq!(ids(&back["security_groups"]), [default_id.as_str()]);
    assert_eq!(quota_used(&url, &admin, &pa, "security_group_rule"), 4);

    let mut server = server;
    server.kill();
    let out = server.replay_verify();
    assert!(out.success, "replay --verify:\n{}", out.describe());
}
