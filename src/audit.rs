//! `strata audit ...`: the audit API (`/audit/v1`) from the command line.
//!
//! Two ways to reach the same answers:
//! - with `--data-dir DIR`, offline: the log is opened read-only (so it works beside a running server and on a
//!   copy an auditor took away), the `AuditIndex` is caught up from it, and the very functions the HTTP
//!   handlers wrap (`strata_api::audit::resources::*_of`) answer — there is no second copy of the logic;
//! - without it, through the running API: the cloud of clouds.yaml (`--os-cloud`, else `OS_CLOUD`, else
//!   `strata`) gives Keystone's URL and a password, the token's catalog gives the `audit` endpoint
//!   (`--url` and `--token` override either).
//!
//! Output is a table for people, or with `--json` the API's JSON (pages followed and merged).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::{json, Value};
use strata_api::audit::{resources, Audit, AuditError};
use strata_events::{EventLog, RocksLog};
use strata_projections::audit::AuditIndex;
use strata_projections::{runner, Live};

use crate::serve::log_dir;

/// Most events or resources one page asks for (the API's own maximum).
const PAGE: usize = resources::MAX_LIMIT;

#[derive(clap::Args)]
pub struct AuditArgs {
    #[command(flatten)]
    source: Source,
    #[command(subcommand)]
    command: AuditCommand,
}

/// Where the answers come from, and how they are printed.
#[derive(clap::Args, Debug, Clone)]
struct Source {
    /// Read this data dir's log directly, read-only (beside a running server, or on a copy) instead of
    /// asking the running API.
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// The cloud of clouds.yaml to use [default: $OS_CLOUD, else strata].
    #[arg(long, global = true, value_name = "NAME")]
    os_cloud: Option<String>,
    /// The audit API's URL (`http://HOST:8999/audit/v1`) instead of the catalog's `audit` endpoint.
    #[arg(long, global = true)]
    url: Option<String>,
    /// A Keystone token to use instead of logging in with the cloud's password.
    #[arg(long, global = true)]
    token: Option<String>,
    /// Print JSON (the API's shapes) instead of a table.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(clap::Subcommand)]
enum AuditCommand {
    /// Every event of one resource in order, with time, principal, request id and the fields it changed.
    Timeline {
        /// The resource type: its stream-id prefix (`server`, `image`, `project`, `user`, `volume`, ...).
        #[arg(value_name = "TYPE")]
        kind: String,
        id: String,
        /// Only events after this log position.
        #[arg(long)]
        after: Option<u64>,
        /// At most this many events (default: all).
        #[arg(long)]
        limit: Option<usize>,
    },
    /// A resource's state as of an instant or a log position (default: now), rebuilt from its events.
    State {
        #[arg(value_name = "TYPE")]
        kind: String,
        id: String,
        /// An RFC 3339 time, e.g. 2026-11-26T10:00:00Z.
        #[arg(long, conflicts_with = "position")]
        at: Option<String>,
        /// A log position.
        #[arg(long)]
        position: Option<u64>,
    },
    /// Events by project, user, request id, category, type and time window, in log order.
    Events {
        #[arg(long)]
        project: Option<String>,
        /// A user id.
        #[arg(long)]
        user: Option<String>,
        /// A request id (`req-...`).
        #[arg(long)]
        request_id: Option<String>,
        /// A proto package: identity, image, compute, volume, network, object.
        #[arg(long)]
        category: Option<String>,
        /// A full event type, e.g. compute.ServerDeleted.v1.
        #[arg(long = "type", value_name = "TYPE")]
        event_type: Option<String>,
        /// Events recorded at or after this RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
        /// Events recorded at or before this RFC 3339 time.
        #[arg(long)]
        until: Option<String>,
        /// Only events after this log position (resume a listing).
        #[arg(long)]
        after: Option<u64>,
        /// At most this many events (default: all).
        #[arg(long)]
        limit: Option<usize>,
    },
    /// The resources that existed at an instant or position (default: now).
    Resources {
        #[arg(long)]
        project: Option<String>,
        /// A resource type (stream-id prefix).
        #[arg(long = "type", value_name = "TYPE")]
        kind: Option<String>,
        /// An RFC 3339 time.
        #[arg(long, conflicts_with = "position")]
        at: Option<String>,
        /// A log position.
        #[arg(long)]
        position: Option<u64>,
    },
    /// Check the hash chain from position 1, or from a checkpoint (`strata audit checkpoint`); exits 1 and
    /// names the first broken position when it does not hold.
    Verify {
        /// The checkpoint's position.
        #[arg(long, requires = "from_hash")]
        from_position: Option<u64>,
        /// The checkpoint's hash (64 hex digits).
        #[arg(long, requires = "from_position")]
        from_hash: Option<String>,
    },
    /// Check the chain and print the head digest (position and hash) to keep outside the system and give
    /// to `strata audit verify --from-position --from-hash` later.
    Checkpoint,
}

pub fn run(args: AuditArgs) -> anyhow::Result<ExitCode> {
    let needs_index = !matches!(
        args.command,
        AuditCommand::Verify { .. } | AuditCommand::Checkpoint
    );
    let backend = Backend::new(&args.source, needs_index)?;
    let json_out = args.source.json;
    match args.command {
        AuditCommand::Timeline {
            kind,
            id,
            after,
            limit,
        } => {
            let mut q = BTreeMap::new();
            put(&mut q, "after", after);
            let call = Call::Timeline(&kind, &id);
            let (mut first, events, next) = backend.pages(&call, q, "events", limit)?;
            first["events"] = Value::Array(events);
            first["next"] = next;
            show(json_out, &first, print_timeline);
        }
        AuditCommand::State {
            kind,
            id,
            at,
            position,
        } => {
            let mut q = BTreeMap::new();
            put(&mut q, "at", at);
            put(&mut q, "position", position);
            let v = backend.call(&Call::State(&kind, &id), &q)?;
            show(json_out, &v, print_state);
        }
        AuditCommand::Events {
            project,
            user,
            request_id,
            category,
            event_type,
            since,
            until,
            after,
            limit,
        } => {
            let mut q = BTreeMap::new();
            put(&mut q, "project", project);
            put(&mut q, "user", user);
            put(&mut q, "request_id", request_id);
            put(&mut q, "category", category);
            put(&mut q, "type", event_type);
            put(&mut q, "since", since);
            put(&mut q, "until", until);
            put(&mut q, "after", after);
            let (_, events, next) = backend.pages(&Call::Events, q, "events", limit)?;
            let v = json!({ "events": events, "next": next });
            show(json_out, &v, print_events);
        }
        AuditCommand::Resources {
            project,
            kind,
            at,
            position,
        } => {
            let mut q = BTreeMap::new();
            put(&mut q, "project", project);
            put(&mut q, "type", kind);
            put(&mut q, "at", at);
            put(&mut q, "position", position);
            let (first, list, _) = backend.pages(&Call::Resources, q, "resources", None)?;
            let v = json!({ "position": first["position"], "resources": list, "next": null });
            show(json_out, &v, print_resources);
        }
        AuditCommand::Verify {
            from_position,
            from_hash,
        } => {
            let mut q = BTreeMap::new();
            put(&mut q, "from_position", from_position);
            put(&mut q, "from_hash", from_hash);
            let v = backend.call(&Call::Integrity, &q)?;
            let ok = v["ok"].as_bool() == Some(true);
            if json_out {
                print_json(&v);
            } else if ok {
                println!(
                    "hash chain OK: {} events checked after position {}; head position {} hash {}",
                    v["checked"],
                    v["from_position"],
                    v["head"]["position"],
                    text(&v["head"]["hash"])
                );
            } else {
                println!(
                    "hash chain BROKEN at position {}: {}",
                    v["broken_at"],
                    text(&v["reason"])
                );
            }
            return Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
        AuditCommand::Checkpoint => {
            let v = backend.call(&Call::Integrity, &BTreeMap::new())?;
            if v["ok"].as_bool() != Some(true) {
                bail!(
                    "no checkpoint: the hash chain is broken at position {}: {}",
                    v["broken_at"],
                    text(&v["reason"])
                );
            }
            let position = v["head"]["position"].as_u64().unwrap_or(0);
            let hash = text(&v["head"]["hash"]);
            if json_out {
                print_json(&json!({ "position": position, "hash": hash }));
            } else {
                println!("position {position} hash {hash}");
                println!("verify later with: strata audit verify --from-position {position} --from-hash {hash}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn put(q: &mut BTreeMap<String, String>, key: &str, value: Option<impl ToString>) {
    if let Some(v) = value {
        q.insert(key.to_string(), v.to_string());
    }
}

/// One audit API call.
enum Call<'a> {
    Timeline(&'a str, &'a str),
    State(&'a str, &'a str),
    Resources,
    Events,
    Integrity,
}

impl Call<'_> {
    fn path(&self) -> String {
        match self {
            Call::Timeline(k, i) => format!("/resources/{}/{}/timeline", enc(k), enc(i)),
            Call::State(k, i) => format!("/resources/{}/{}/state", enc(k), enc(i)),
            Call::Resources => "/resources".into(),
            Call::Events => "/events".into(),
            Call::Integrity => "/integrity".into(),
        }
    }
}

/// Percent-encode everything but RFC 3986's unreserved characters.
fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

enum Backend {
    /// Offline: the log of a data dir, read-only, with its audit index caught up.
    Local {
        rt: tokio::runtime::Runtime,
        audit: Box<Audit>,
    },
    /// The running audit API.
    Remote {
        agent: ureq::Agent,
        url: String,
        token: String,
    },
}

impl Backend {
    fn new(source: &Source, needs_index: bool) -> anyhow::Result<Backend> {
        match &source.data_dir {
            Some(dir) => {
                if source.url.is_some() || source.token.is_some() || source.os_cloud.is_some() {
                    bail!("--data-dir reads the log directly; it does not go with --url, --token or --os-cloud");
                }
                open_local(dir, needs_index)
            }
            None => connect(source),
        }
    }

    fn call(&self, call: &Call, q: &BTreeMap<String, String>) -> anyhow::Result<Value> {
        match self {
            Backend::Local { rt, audit } => {
                let audit: &Audit = audit;
                let answer = rt.block_on(async move {
                    match call {
                        Call::Timeline(k, i) => resources::timeline_of(audit, k, i, q).await,
                        Call::State(k, i) => resources::state_of(audit, k, i, q).await,
                        Call::Resources => resources::resources_of(audit, q),
                        Call::Events => resources::events_of(audit, q).await,
                        Call::Integrity => resources::integrity_of(audit, q).await,
                    }
                });
                answer.map_err(|e: AuditError| {
                    anyhow::anyhow!(
                        "{} {}: {}",
                        e.status.as_u16(),
                        e.status.canonical_reason().unwrap_or(""),
                        e.message
                    )
                })
            }
            Backend::Remote { agent, url, token } => {
                let mut full = format!("{}{}", url.trim_end_matches('/'), call.path());
                let query: Vec<String> = q
                    .iter()
                    .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
                    .collect();
                if !query.is_empty() {
                    full.push('?');
                    full.push_str(&query.join("&"));
                }
                let resp = agent
                    .get(&full)
                    .set("X-Auth-Token", token)
                    .set("Accept", "application/json")
                    .call();
                match resp {
                    Ok(r) => r
                        .into_json::<Value>()
                        .with_context(|| format!("GET {full}: the answer is not JSON")),
                    Err(ureq::Error::Status(code, r)) => {
                        let body = r.into_string().unwrap_or_default();
                        let message = serde_json::from_str::<Value>(&body)
                            .ok()
                            .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
                            .unwrap_or(body);
                        bail!("the audit API answered {code} to GET {full}: {message}")
                    }
                    Err(e) => Err(e).with_context(|| format!("GET {full}")),
                }
            }
        }
    }

    /// Follow `next` (`after` or `marker`) until `limit` items of `list` (all when `None`) are in hand.
    /// Returns the first page, the items, and the `next` of the last page when items were left.
    fn pages(
        &self,
        call: &Call,
        mut q: BTreeMap<String, String>,
        list: &str,
        limit: Option<usize>,
    ) -> anyhow::Result<(Value, Vec<Value>, Value)> {
        let mut items = Vec::new();
        let mut first = None;
        loop {
            let left = limit.map(|l| l.saturating_sub(items.len()));
            if left == Some(0) {
                break;
            }
            q.insert(
                "limit".into(),
                left.unwrap_or(PAGE).clamp(1, PAGE).to_string(),
            );
            let mut page = self.call(call, &q)?;
            if let Some(Value::Array(a)) = page.get_mut(list).map(Value::take) {
                items.extend(a);
            }
            let next = page["next"].take();
            first.get_or_insert(page);
            let mut followed = false;
            for key in ["after", "marker"] {
                if let Some(v) = next.get(key) {
                    let v = match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    q.insert(key.into(), v);
                    followed = true;
                }
            }
            if !followed {
                return Ok((first.unwrap_or(Value::Null), items, Value::Null));
            }
            if limit.is_some_and(|l| items.len() >= l) {
                return Ok((first.unwrap_or(Value::Null), items, next));
            }
        }
        Ok((first.unwrap_or(Value::Null), items, Value::Null))
    }
}

/// Open the log of `data_dir` read-only and, when asked, catch the audit index up from it.
fn open_local(data_dir: &Path, needs_index: bool) -> anyhow::Result<Backend> {
    let dir = log_dir(data_dir);
    if !dir.join("CURRENT").exists() {
        bail!(
            "no event log in {} (is {} a Strata data dir?)",
            dir.display(),
            data_dir.display()
        );
    }
    // A server beside us may be deleting files it compacted just as we open them: try again briefly.
    let mut tries = 0;
    let log = loop {
        match RocksLog::open_read_only(&dir) {
            Ok(l) => break l,
            Err(_) if tries < 3 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => {
                return Err(e).with_context(|| format!("opening {} read-only", dir.display()))
            }
        }
    };
    let log: Arc<dyn EventLog> = Arc::new(log);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let (index, position) = if needs_index {
        rt.block_on(runner::catch_up::<AuditIndex>(&log))
            .with_context(|| format!("building the audit index from {}", dir.display()))?
    } else {
        (AuditIndex::default(), 0)
    };
    let mut audit = Audit::new(log, Live::fixed(index, position));
    // The log is read-only: point-in-time snapshots are read, never written.
    audit.write_snapshots = false;
    Ok(Backend::Local {
        rt,
        audit: Box::new(audit),
    })
}

// ---------------------------------------------------------------------------------------------------------
// The running API: clouds.yaml, Keystone, the catalog
// ---------------------------------------------------------------------------------------------------------

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(10))
        // A chain check over a large log takes a while.
        .timeout(Duration::from_secs(600))
        .build()
}

fn connect(source: &Source) -> anyhow::Result<Backend> {
    let agent = agent();
    if let (Some(url), Some(token)) = (&source.url, &source.token) {
        return Ok(Backend::Remote {
            agent,
            url: url.clone(),
            token: token.clone(),
        });
    }
    let name = source
        .os_cloud
        .clone()
        .or_else(|| std::env::var("OS_CLOUD").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "strata".to_string());
    let (path, cloud) = load_cloud(&name)?;
    let auth_url = identity_v3(
        cloud["auth"]["auth_url"]
            .as_str()
            .with_context(|| format!("cloud {name} in {} has no auth.auth_url", path.display()))?,
    );
    let (token, catalog) = match &source.token {
        Some(t) => (t.clone(), token_catalog(&agent, &auth_url, t)?),
        None => password_login(&agent, &auth_url, &cloud)
            .with_context(|| format!("logging in to cloud {name} of {}", path.display()))?,
    };
    let url = match &source.url {
        Some(u) => u.clone(),
        None => audit_endpoint(&catalog, &cloud).with_context(|| {
            format!("the catalog of cloud {name} has no audit endpoint (give --url)")
        })?,
    };
    Ok(Backend::Remote { agent, url, token })
}

/// clouds.yaml as openstacksdk finds it: `$OS_CLIENT_CONFIG_FILE`, else `./clouds.yaml`,
/// `~/.config/openstack/clouds.yaml`, `/etc/openstack/clouds.yaml`.
fn clouds_yaml() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("OS_CLIENT_CONFIG_FILE").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        if !p.is_file() {
            bail!(
                "OS_CLIENT_CONFIG_FILE names {}, which does not exist",
                p.display()
            );
        }
        return Ok(p);
    }
    let mut candidates = vec![PathBuf::from("clouds.yaml")];
    let config_home = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")));
    if let Some(c) = config_home {
        candidates.push(c.join("openstack").join("clouds.yaml"));
    }
    candidates.push(PathBuf::from("/etc/openstack/clouds.yaml"));
    candidates.into_iter().find(|p| p.is_file()).with_context(|| {
        "no clouds.yaml found (./clouds.yaml, ~/.config/openstack/clouds.yaml, /etc/openstack/clouds.yaml; \
         or set OS_CLIENT_CONFIG_FILE); give --data-dir to read a data dir, or --url and --token"
            .to_string()
    })
}

/// The cloud `name` of clouds.yaml, as JSON.
fn load_cloud(name: &str) -> anyhow::Result<(PathBuf, Value)> {
    let path = clouds_yaml()?;
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let doc: Value = serde_yaml::from_str(&text)
        .with_context(|| format!("{} is not valid YAML", path.display()))?;
    let cloud = &doc["clouds"][name];
    if !cloud.is_object() {
        let known: Vec<&str> = doc["clouds"]
            .as_object()
            .map(|m| m.keys().map(String::as_str).collect())
            .unwrap_or_default();
        bail!(
            "{} has no cloud {name:?} (it has: {}); choose one with --os-cloud or OS_CLOUD",
            path.display(),
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        );
    }
    Ok((path.clone(), cloud.clone()))
}

/// Keystone's v3 URL from an `auth_url` with or without the version.
fn identity_v3(auth_url: &str) -> String {
    let base = auth_url.trim_end_matches('/');
    if base.ends_with("/v3") {
        base.to_string()
    } else {
        format!("{base}/v3")
    }
}

fn s<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v[key].as_str().filter(|s| !s.is_empty())
}

/// `{"name": ..}` or `{"id": ..}` of a domain named by `<prefix>_domain_name` / `_id` (or `domain_*`).
fn domain_of(auth: &Value, prefix: &str) -> Value {
    if let Some(id) = s(auth, &format!("{prefix}_domain_id")).or_else(|| s(auth, "domain_id")) {
        json!({ "id": id })
    } else {
        let name = s(auth, &format!("{prefix}_domain_name"))
            .or_else(|| s(auth, "domain_name"))
            .unwrap_or("Default");
        json!({ "name": name })
    }
}

/// Log in with the cloud's password (POST /v3/auth/tokens, scoped to its project); the token and catalog.
fn password_login(
    agent: &ureq::Agent,
    auth_url: &str,
    cloud: &Value,
) -> anyhow::Result<(String, Value)> {
    let auth = &cloud["auth"];
    let password = s(auth, "password")
        .map(str::to_string)
        .or_else(|| std::env::var("OS_PASSWORD").ok())
        .context("the cloud has no auth.password (and OS_PASSWORD is not set)")?;
    let mut user = json!({ "password": password });
    match (s(auth, "user_id"), s(auth, "username")) {
        (Some(id), _) => user["id"] = json!(id),
        (None, Some(name)) => {
            user["name"] = json!(name);
            user["domain"] = domain_of(auth, "user");
        }
        (None, None) => bail!("the cloud has neither auth.username nor auth.user_id"),
    }
    let mut body = json!({ "auth": { "identity": { "methods": ["password"], "password": { "user": user } } } });
    if let Some(id) = s(auth, "project_id") {
        body["auth"]["scope"] = json!({ "project": { "id": id } });
    } else if let Some(name) = s(auth, "project_name") {
        body["auth"]["scope"] =
            json!({ "project": { "name": name, "domain": domain_of(auth, "project") } });
    }
    let url = format!("{auth_url}/auth/tokens");
    let resp = match agent.post(&url).send_json(body) {
        Ok(r) => r,
        Err(ureq::Error::Status(code, r)) => {
            let body = r.into_string().unwrap_or_default();
            let message = serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
                .unwrap_or(body);
            bail!("Keystone refused the login ({code}): {message}")
        }
        Err(e) => return Err(e).with_context(|| format!("POST {url}")),
    };
    let token = resp
        .header("X-Subject-Token")
        .context("Keystone answered without X-Subject-Token")?
        .to_string();
    let v: Value = resp.into_json().context("Keystone's token is not JSON")?;
    Ok((token, v["token"]["catalog"].clone()))
}

/// The catalog of an existing token (GET /v3/auth/tokens).
fn token_catalog(agent: &ureq::Agent, auth_url: &str, token: &str) -> anyhow::Result<Value> {
    let url = format!("{auth_url}/auth/tokens");
    let v: Value = match agent
        .get(&url)
        .set("X-Auth-Token", token)
        .set("X-Subject-Token", token)
        .call()
    {
        Ok(r) => r.into_json().context("Keystone's token is not JSON")?,
        Err(ureq::Error::Status(code, _)) => bail!("Keystone refused the token ({code})"),
        Err(e) => return Err(e).with_context(|| format!("GET {url}")),
    };
    Ok(v["token"]["catalog"].clone())
}

/// The `audit` service's URL in a catalog, for the cloud's interface (default public) and region.
fn audit_endpoint(catalog: &Value, cloud: &Value) -> Option<String> {
    let interface = s(cloud, "interface").unwrap_or("public");
    let region = s(cloud, "region_name");
    catalog
        .as_array()?
        .iter()
        .filter(|svc| svc["type"] == "audit")
        .flat_map(|svc| svc["endpoints"].as_array().into_iter().flatten())
        .find(|e| {
            e["interface"] == interface
                && region.is_none_or(|r| e["region_id"] == r || e["region"] == r)
        })
        .and_then(|e| e["url"].as_str())
        .map(str::to_string)
}

// ---------------------------------------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------------------------------------

/// `v` as JSON (`--json`) or through `table`.
fn show(json_out: bool, v: &Value, table: fn(&Value)) {
    if json_out {
        print_json(v);
    } else {
        table(v);
    }
}

fn print_json(v: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
    );
}

/// A JSON value as text: strings bare, null empty, the rest as JSON.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// At most `n` characters, with an ellipsis when cut.
fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(n.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

/// A time as `2026-11-26T10:00:00.123Z` (the API's microseconds cut to milliseconds).
fn short_time(v: &Value) -> String {
    let t = text(v);
    match chrono::DateTime::parse_from_rfc3339(&t) {
        Ok(d) => d
            .with_timezone(&chrono::Utc)
            .format("%Y-%m-%dT%H:%M:%S%.3fZ")
            .to_string(),
        Err(_) => t,
    }
}

fn who(e: &Value) -> String {
    let p = &e["principal"];
    s(p, "user_name")
        .or_else(|| s(p, "user_id"))
        .unwrap_or("-")
        .to_string()
}

fn print_timeline(v: &Value) {
    let r = &v["resource"];
    let events = v["events"].as_array().cloned().unwrap_or_default();
    println!(
        "{} {} (stream {}, project {}): {} events",
        text(&r["type"]),
        text(&r["id"]),
        text(&r["stream"]),
        non_empty(&text(&r["project"])),
        r["events"]
    );
    println!(
        "{:>9}  {:<24}  {:>4}  {:<36}  {:<16}  REQUEST",
        "POSITION", "TIME", "VER", "TYPE", "USER"
    );
    for e in &events {
        println!(
            "{:>9}  {:<24}  {:>4}  {:<36}  {:<16}  {}",
            e["position"],
            short_time(&e["time"]),
            e["stream_version"],
            text(&e["type"]),
            clip(&who(e), 16),
            non_empty(&text(&e["request_id"]))
        );
        for c in e["changes"].as_array().into_iter().flatten() {
            println!(
                "{:>13}{}: {} -> {}",
                "",
                text(&c["field"]),
                clip(&c["before"].to_string(), 60),
                clip(&c["after"].to_string(), 60)
            );
        }
    }
    if let Some(after) = v["next"].get("after") {
        println!("(more: --after {after})");
    }
}

fn non_empty(s: &str) -> &str {
    if s.is_empty() {
        "-"
    } else {
        s
    }
}

/// `field.sub = value` lines for a JSON object (arrays and scalars as JSON).
fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, x) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&p, x, out);
            }
        }
        other => out.push((prefix.to_string(), other.to_string())),
    }
}

fn print_state(v: &Value) {
    let r = &v["resource"];
    println!(
        "resource: {} {} (stream {}, project {})",
        text(&r["type"]),
        text(&r["id"]),
        text(&r["stream"]),
        non_empty(&text(&r["project"]))
    );
    println!(
        "as of:    position {} ({})",
        v["position"],
        non_empty(&text(&v["time"]))
    );
    println!("version:  {} of {} events", v["version"], r["events"]);
    println!(
        "exists:   {}",
        if v["exists"] == true { "yes" } else { "no" }
    );
    if v["state"].is_null() {
        println!("state:    none (no event of the resource yet)");
        return;
    }
    println!("state:");
    let mut lines = Vec::new();
    flatten("", &v["state"], &mut lines);
    let width = lines.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, val) in lines {
        println!("  {k:<width$} = {val}");
    }
}

fn print_events(v: &Value) {
    let events = v["events"].as_array().cloned().unwrap_or_default();
    println!(
        "{:>9}  {:<24}  {:<36}  {:<50}  {:<32}  {:<16}  REQUEST",
        "POSITION", "TIME", "TYPE", "RESOURCE", "PROJECT", "USER"
    );
    for e in &events {
        println!(
            "{:>9}  {:<24}  {:<36}  {:<50}  {:<32}  {:<16}  {}",
            e["position"],
            short_time(&e["time"]),
            text(&e["type"]),
            format!(
                "{}/{}",
                text(&e["resource"]["type"]),
                text(&e["resource"]["id"])
            ),
            non_empty(&text(&e["project"])),
            clip(&who(e), 16),
            non_empty(&text(&e["request_id"]))
        );
    }
    println!("({} events)", events.len());
    if let Some(after) = v["next"].get("after") {
        println!("(more: --after {after})");
    }
}

fn print_resources(v: &Value) {
    let list = v["resources"].as_array().cloned().unwrap_or_default();
    println!(
        "{} resources existed at position {}",
        list.len(),
        v["position"]
    );
    println!("{:<20}  {:<50}  {:<32}  CREATED", "TYPE", "ID", "PROJECT");
    for r in &list {
        println!(
            "{:<20}  {:<50}  {:<32}  {}",
            text(&r["type"]),
            text(&r["id"]),
            non_empty(&text(&r["project"])),
            short_time(&r["created_at"])
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_queries_are_encoded() {
        assert_eq!(enc("abc-1.2_~"), "abc-1.2_~");
        assert_eq!(enc("a b/c%"), "a%20b%2Fc%25");
        assert_eq!(
            enc("2026-11-26T10:00:00+01:00"),
            "2026-11-26T10%3A00%3A00%2B01%3A00"
        );
        assert_eq!(
            Call::Timeline("server", "x y").path(),
            "/resources/server/x%20y/timeline"
        );
    }

    #[test]
    fn identity_urls_get_their_version() {
        assert_eq!(identity_v3("http://h:5000"), "http://h:5000/v3");
        assert_eq!(identity_v3("http://h:5000/v3/"), "http://h:5000/v3");
    }

    #[test]
    fn the_audit_endpoint_is_found_by_interface_and_region() {
        let catalog = json!([
            {"type": "identity", "endpoints": [{"interface": "public", "region_id": "r", "url": "http://k"}]},
            {"type": "audit", "endpoints": [
                {"interface": "internal", "region_id": "r", "url": "http://internal/audit/v1"},
                {"interface": "public", "region_id": "r", "url": "http://public/audit/v1"}
            ]}
        ]);
        assert_eq!(
            audit_endpoint(&catalog, &json!({"region_name": "r"})).as_deref(),
            Some("http://public/audit/v1")
        );
        assert_eq!(
            audit_endpoint(&catalog, &json!({"interface": "internal"})).as_deref(),
            Some("http://internal/audit/v1")
        );
        assert_eq!(
            audit_endpoint(&catalog, &json!({"region_name": "other"})),
            None
        );
    }

    #[test]
    fn domains_by_id_or_name() {
        assert_eq!(domain_of(&json!({}), "user"), json!({"name": "Default"}));
        assert_eq!(
            domain_of(&json!({"user_domain_id": "d1"}), "user"),
            json!({"id": "d1"})
        );
        assert_eq!(
            domain_of(&json!({"project_domain_name": "X"}), "project"),
            json!({"name": "X"})
        );
    }

    #[test]
    fn states_flatten_to_dotted_fields() {
        let mut out = Vec::new();
        flatten(
            "",
            &json!({"a": 1, "b": {"c": "x", "d": [1]}, "e": {}}),
            &mut out,
        );
        let keys: Vec<&str> = out.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["a", "b.c", "b.d", "e"]);
    }
}
