//! `strata audit ...` through the real binary: the same answers through the running API (found through
//! clouds.yaml, or `--url`/`--token`) and offline with `--data-dir` (beside the running server, and on a copy
//! of its data dir), as tables and as `--json`; `verify` and `checkpoint`; a copy with one stored event
//! rewritten (the test-only `strata debug rewrite-event`) fails `verify` naming that position while the original
//! still verifies; errors are reported with context and a non-zero exit, never a panic.

use std::path::Path;
use std::process::Command;

use crate::common::nova::*;
use crate::common::*;
use serde_json::{json, Value};

fn stamp() -> String {
    std::thread::sleep(std::time::Duration::from_millis(20));
    let t = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    std::thread::sleep(std::time::Duration::from_millis(20));
    t
}

/// `strata audit ARGS` with a clean OS_* environment plus `env`, in `cwd` when given.
fn audit_cmd(args: &[&str], env: &[(&str, &str)], cwd: Option<&Path>) -> CmdOutput {
    let mut cmd = Command::new(STRATA_BIN);
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if k.starts_with("OS_") {
            cmd.env_remove(&k);
        }
    }
    cmd.env("RUST_BACKTRACE", "1").arg("audit").args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    if let Some(d) = cwd {
        cmd.current_dir(d);
    }
    run_with_timeout(cmd, TOOL_TIMEOUT)
}

fn succeeds(out: CmdOutput) -> String {
    assert!(out.success, "{}", out.describe());
    assert!(!out.stderr.contains("panicked"), "{}", out.describe());
    out.stdout
}

/// Exit 1 without a panic; the output.
fn fails_with(out: CmdOutput) -> CmdOutput {
    assert_eq!(out.code, Some(1), "{}", out.describe());
    assert!(!out.stderr.contains("panicked"), "{}", out.describe());
    out
}

/// Exit 1 without a panic; everything it said.
fn fails(out: CmdOutput) -> String {
    fails_with(out).all_text()
}

fn parse(stdout: &str) -> Value {
    serde_json::from_str(stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", truncate(stdout, 2000)))
}

fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 temp paths")
}

/// Every event of an API query (pages followed).
fn api_events(audit: &str, query: &str, token: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let v = get(
            &format!("{audit}/events?{query}&limit=1000&after={after}"),
            Some(token),
        )
        .expect(200)
        .json();
        out.extend(v["events"].as_array().unwrap().iter().cloned());
        match v["next"]["after"].as_u64() {
            Some(a) => after = a,
            None => return out,
        }
    }
}

#[test]
fn audit_commands_through_the_api_offline_and_on_a_damaged_copy() {
    let mut server = Server::start_with_args(&["--fake-hosts", "1"]);
    let audit = server
        .endpoint("audit")
        .expect("audit endpoint")
        .to_string();
    let nova = nova_url(&server);
    let admin = server.admin_token();
    let project = project_id_of(&server, &admin, "admin");
    let flavor = create_flavor(&nova, &admin, "c.tiny", 1, 512, 1);
    let image = upload_image(&server, &admin, "cli-cirros", &random_bytes(16 * 1024));
    let t0 = stamp();
    let s = boot(&nova, &admin, "cli-audited", &flavor, &image, json!({}));
    wait_status(&nova, &admin, &s, "ACTIVE");
    let t_active = stamp();
    action(&nova, &admin, &s, json!({"os-stop": null})).expect(202);
    wait_status(&nova, &admin, &s, "SHUTOFF");
    let t_stopped = stamp();
    let (pa, _ua, _tok_a) = new_member(&server, &admin, "cli-a", "cli-alice");
    let t_end = stamp();
    let yaml = server.clouds_yaml().to_path_buf();
    let api_env = [("OS_CLIENT_CONFIG_FILE", path(&yaml))];
    let api = |args: &[&str]| audit_cmd(args, &api_env, None);
    // The audit index follows the log: wait until it has the last write (the member's role assignment).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while api_events(
        &audit,
        &format!("project={pa}&type=identity.RoleGranted.v1"),
        &admin,
    )
    .is_empty()
    {
        assert!(std::time::Instant::now() < deadline, "the audit index lags");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }

    // ---- through the API (clouds.yaml, cloud `strata`) ----
    let api_timeline = get(
        &format!("{audit}/resources/server/{s}/timeline"),
        Some(&admin),
    )
    .expect(200)
    .json();
    let n = api_timeline["events"].as_array().unwrap().len();
    assert!(n >= 5, "{api_timeline}");
    let table = succeeds(api(&["timeline", "server", &s]));
    assert!(table.contains(&s), "{table}");
    assert!(table.contains("POSITION"), "{table}");
    assert!(table.contains("compute.ServerCreated.v1"), "{table}");
    assert!(
        table.contains("vm_state: \"\" -> \"building\""),
        "the table shows field changes: {table}"
    );
    assert!(table.contains("\"active\" -> \"stopped\""), "{table}");
    let cli_timeline = parse(&succeeds(api(&["timeline", "server", &s, "--json"])));
    assert_eq!(cli_timeline, api_timeline, "--json is the API's answer");
    let first_two = parse(&succeeds(api(&[
        "timeline", "server", &s, "--json", "--limit", "2",
    ])));
    assert_eq!(first_two["events"].as_array().unwrap().len(), 2);
    assert_eq!(
        first_two["next"]["after"],
        api_timeline["events"][1]["position"]
    );

    let state = |env_args: &dyn Fn(&[&str]) -> CmdOutput, at: &str| -> Value {
        parse(&succeeds(env_args(&[
            "state", "server", &s, "--at", at, "--json",
        ])))
    };
    let active = state(&api, &t_active);
    assert_eq!(active["state"]["vm_state"], "active", "{active}");
    assert_eq!(active["exists"], true);
    let stopped = state(&api, &t_stopped);
    assert_eq!(stopped["state"]["vm_state"], "stopped", "{stopped}");
    let before = state(&api, &t0);
    assert_eq!(before["exists"], false);
    assert!(before["state"].is_null());
    let pos = active["position"].as_u64().unwrap().to_string();
    let by_pos = parse(&succeeds(api(&[
        "--json",
        "state",
        "server",
        &s,
        "--position",
        &pos,
    ])));
    assert_eq!(by_pos["state"], active["state"]);
    let table = succeeds(api(&["state", "server", &s, "--at", &t_stopped]));
    assert!(table.contains("exists:   yes"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.trim_start().starts_with("vm_state") && l.ends_with("= \"stopped\"")),
        "{table}"
    );
    assert!(table.contains("flavor.name"), "{table}");

    let query = format!("project={project}&since={t_active}&until={t_end}");
    let want = api_events(&audit, &query, &admin);
    assert!(!want.is_empty());
    let events_args = [
        "events",
        "--project",
        &project,
        "--since",
        &t_active,
        "--until",
        &t_end,
    ];
    let mut with_json = events_args.to_vec();
    with_json.push("--json");
    let got = parse(&succeeds(api(&with_json)));
    assert_eq!(got["events"], json!(want), "CLI events = API events");
    assert!(got["next"].is_null());
    let table = succeeds(api(&events_args));
    for e in &want {
        assert!(
            table.contains(e["type"].as_str().unwrap()),
            "{e} not in {table}"
        );
    }
    assert!(
        table.contains(&format!("({} events)", want.len())),
        "{table}"
    );
    // --limit stops early and says where to resume.
    let mut limited = with_json.clone();
    limited.extend(["--limit", "1"]);
    let one = parse(&succeeds(api(&limited)));
    assert_eq!(one["events"], json!(want[..1]));
    assert_eq!(one["next"]["after"], want[0]["position"]);

    let res = parse(&succeeds(api(&[
        "resources",
        "--project",
        &project,
        "--type",
        "server",
        "--json",
    ])));
    assert_eq!(res["resources"][0]["id"], s.as_str(), "{res}");
    let table = succeeds(api(&["resources", "--type", "server"]));
    assert!(table.contains(&s), "{table}");

    let ok_text = succeeds(api(&["verify"]));
    assert!(ok_text.contains("hash chain OK"), "{ok_text}");
    let checkpoint = succeeds(api(&["checkpoint"]));
    let first = checkpoint.lines().next().unwrap_or_default();
    let words: Vec<&str> = first.split_whitespace().collect();
    assert!(
        words.len() == 4 && words[0] == "position" && words[2] == "hash",
        "{checkpoint}"
    );
    let (cp_pos, cp_hash) = (words[1].to_string(), words[3].to_string());
    assert_eq!(cp_hash.len(), 64);
    let v = parse(&succeeds(api(&[
        "verify",
        "--from-position",
        &cp_pos,
        "--from-hash",
        &cp_hash,
        "--json",
    ])));
    assert_eq!(v["ok"], true, "{v}");

    // Choosing the cloud and the endpoint.
    let text = fails(audit_cmd(
        &["timeline", "server", &s],
        &[("OS_CLIENT_CONFIG_FILE", path(&yaml)), ("OS_CLOUD", "nope")],
        None,
    ));
    assert!(text.contains("no cloud \"nope\""), "{text}");
    succeeds(audit_cmd(
        &["--os-cloud", "strata", "timeline", "server", &s],
        &[("OS_CLIENT_CONFIG_FILE", path(&yaml)), ("OS_CLOUD", "nope")],
        None,
    ));
    let empty = tempfile::tempdir().unwrap();
    let bare_env = [
        ("HOME", path(empty.path())),
        ("XDG_CONFIG_HOME", path(empty.path())),
    ];
    // ./clouds.yaml is found in the working directory.
    succeeds(audit_cmd(
        &["timeline", "server", &s],
        &bare_env,
        Some(server.dir()),
    ));
    let text = fails(audit_cmd(
        &["timeline", "server", &s],
        &bare_env,
        Some(empty.path()),
    ));
    assert!(text.contains("no clouds.yaml found"), "{text}");
    let direct = parse(&succeeds(audit_cmd(
        &[
            "--url", &audit, "--token", &admin, "timeline", "server", &s, "--json",
        ],
        &bare_env,
        Some(empty.path()),
    )));
    assert_eq!(direct, api_timeline);
    // A member's cloud: the audit API refuses, and the CLI says so.
    let member = Cli::for_user(&server, "cli-alice", "pw-cli-alice", "cli-a");
    let text = fails(audit_cmd(
        &["--os-cloud", &member.cloud, "events"],
        &[("OS_CLIENT_CONFIG_FILE", path(&member.config_file))],
        None,
    ));
    assert!(text.contains("403"), "{text}");
    // Bad input is the API's 400 or 404, with its message.
    let text = fails(api(&["state", "server", &s, "--at", "yesterday"]));
    assert!(text.contains("400") && text.contains("RFC 3339"), "{text}");
    let text = fails(api(&["timeline", "server", "no-such-server"]));
    assert!(
        text.contains("404") && text.contains("no resource"),
        "{text}"
    );

    // ---- offline, beside the running server ----
    let data = server.data_dir().to_path_buf();
    let offline = |args: &[&str]| {
        let mut all = vec!["--data-dir", path(&data)];
        all.extend_from_slice(args);
        audit_cmd(&all, &[], None)
    };
    let v = parse(&succeeds(offline(&["timeline", "server", &s, "--json"])));
    assert_eq!(v, api_timeline, "offline timeline = the API's");
    assert_eq!(state(&offline, &t_active)["state"], active["state"]);
    assert_eq!(state(&offline, &t_stopped)["state"], stopped["state"]);
    let got = parse(&succeeds(offline(&with_json)));
    assert_eq!(got["events"], json!(want), "offline events = the API's");
    let table = succeeds(offline(&events_args));
    assert!(
        table.contains(&format!("({} events)", want.len())),
        "{table}"
    );
    let table = succeeds(offline(&["timeline", "server", &s]));
    assert!(table.contains("compute.ServerCreated.v1"), "{table}");
    succeeds(offline(&["verify"]));
    let text = fails(offline(&["--url", &audit, "events"]));
    assert!(text.contains("--data-dir"), "{text}");
    let text = fails(offline(&["state", "server", &s, "--at", "yesterday"]));
    assert!(text.contains("400") && text.contains("RFC 3339"), "{text}");
    // The test-only rewrite refuses a data dir a server holds.
    let created = api_timeline["events"][0]["position"].as_u64().unwrap();
    let out = strata(&[
        "debug",
        "rewrite-event",
        "--data-dir",
        path(&data),
        "--position",
        &created.to_string(),
    ]);
    assert!(
        !out.success,
        "rewrote a live server's log: {}",
        out.describe()
    );

    // ---- a copy taken away ----
    server.kill();
    let copy = server.dir().join("copy");
    copy_dir(&data, &copy);
    let on_copy = |dir: &Path, args: &[&str]| {
        let mut all = vec!["--data-dir", path(dir)];
        all.extend_from_slice(args);
        audit_cmd(&all, &[], None)
    };
    let v = parse(&succeeds(on_copy(
        &copy,
        &["timeline", "server", &s, "--json"],
    )));
    assert_eq!(v, api_timeline, "timeline on the copy");
    let v = parse(&succeeds(on_copy(
        &copy,
        &["state", "server", &s, "--at", &t_active, "--json"],
    )));
    assert_eq!(v["state"], active["state"]);
    let got = parse(&succeeds(on_copy(&copy, &with_json)));
    assert_eq!(got["events"], json!(want), "events on the copy");
    let head = parse(&succeeds(on_copy(&copy, &["checkpoint", "--json"])));
    let head_pos = head["position"].as_u64().unwrap();
    let head_hash = head["hash"].as_str().unwrap().to_string();
    assert!(head_pos >= cp_pos.parse::<u64>().unwrap());
    // The event before the rewritten one, as a checkpoint from before the damage.
    let prev = parse(&succeeds(on_copy(
        &copy,
        &[
            "events",
            "--after",
            &(created - 2).to_string(),
            "--limit",
            "1",
            "--json",
        ],
    )));
    let prev_hash = prev["events"][0]["hash"].as_str().unwrap().to_string();
    assert_eq!(prev["events"][0]["position"], created - 1);

    let out = strata(&[
        "debug",
        "rewrite-event",
        "--data-dir",
        path(&copy),
        "--position",
        &created.to_string(),
        "--payload-byte",
        "3",
    ]);
    assert!(out.success, "{}", out.describe());
    let text = fails(on_copy(&copy, &["verify"]));
    assert!(
        text.contains(&format!("BROKEN at position {created}:")),
        "verify must name position {created}: {text}"
    );
    let v = parse(&fails_with(on_copy(&copy, &["verify", "--json"])).stdout);
    assert_eq!(v["ok"], false);
    assert_eq!(v["broken_at"], created, "{v}");
    // From a checkpoint before the damage: found; from the head's checkpoint (after it): not checked.
    let text = fails(on_copy(
        &copy,
        &[
            "verify",
            "--from-position",
            &(created - 1).to_string(),
            "--from-hash",
            &prev_hash,
        ],
    ));
    assert!(text.contains(&format!("position {created}")), "{text}");
    succeeds(on_copy(
        &copy,
        &[
            "verify",
            "--from-position",
            &head_pos.to_string(),
            "--from-hash",
            &head_hash,
        ],
    ));
    let text = fails(on_copy(&copy, &["checkpoint"]));
    assert!(text.contains(&format!("position {created}")), "{text}");
    // The original still verifies, from position 1 and from the checkpoint taken through the API.
    let ok_text = succeeds(on_copy(&data, &["verify"]));
    assert!(ok_text.contains("hash chain OK"), "{ok_text}");
    succeeds(on_copy(
        &data,
        &[
            "verify",
            "--from-position",
            &cp_pos,
            "--from-hash",
            &cp_hash,
        ],
    ));
    // A wrong checkpoint hash is a failure at the checkpoint's position.
    let wrong = format!(
        "{}{}",
        if cp_hash.starts_with('0') { "1" } else { "0" },
        &cp_hash[1..]
    );
    let text = fails(on_copy(
        &data,
        &["verify", "--from-position", &cp_pos, "--from-hash", &wrong],
    ));
    assert!(
        text.contains(&format!("BROKEN at position {cp_pos}")),
        "{text}"
    );

    // Bytes that are not an event at all (a storage-level corruption) are found too.
    let copy2 = server.dir().join("copy2");
    copy_dir(&data, &copy2);
    let out = strata(&[
        "debug",
        "rewrite-event",
        "--data-dir",
        path(&copy2),
        "--position",
        &created.to_string(),
        "--garbage",
    ]);
    assert!(out.success, "{}", out.describe());
    let text = fails(on_copy(&copy2, &["verify"]));
    assert!(
        text.contains(&format!("BROKEN at position {created}:")),
        "{text}"
    );
    // Commands that read the damaged event say so instead of panicking.
    fails(on_copy(&copy2, &["timeline", "server", &s]));
    let text = fails(on_copy(&server.dir().join("nothing"), &["verify"]));
    assert!(text.contains("no event log"), "{text}");
}
