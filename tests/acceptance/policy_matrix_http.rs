//! The default policy of every service, as a matrix: every write route of Keystone, Nova, Cinder, Glance,
//! Neutron and Swift, each tried by a project A `reader`, a project A `member`, an `admin` and a project B
//! `member`, against resources of project A made afresh for each try that must succeed.
//!
//! - A reader is refused with its service's 403 body naming the rule (Swift: its 403 page), except where
//!   upstream lets any user act on what is their own (Nova keypairs).
//! - A member succeeds in its project, and is refused what only admins may do.
//! - An admin succeeds everywhere.
//! - Project B's member finds nothing of project A (404; 403 where upstream answers so).
//! - A refused request appends nothing: the audit API finds no event carrying its request id.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use crate::common::nova::*;
use crate::common::*;
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------------------------
// The cloud, the personas, and how a service says no
// ---------------------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Svc {
    Keystone,
    Nova,
    Cinder,
    Glance,
    Neutron,
    Swift,
}

/// Who may perform a row's request (upstream's default rule).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Who {
    /// Members of the owning project and admins.
    Member,
    /// Admins only.
    Admin,
    /// The user themself whatever the role, and admins (Nova keypairs).
    OwnUser,
}

struct Persona {
    label: &'static str,
    token: String,
    project: String,
}

struct Cloud {
    server: Server,
    admin: Persona,
    reader: Persona,
    member: Persona,
    other: Persona,
    keystone: String,
    nova: String,
    cinder: String,
    glance: String,
    neutron: String,
    audit: String,
    flavor: String,
    image: String,
    public_net: String,
    /// Unique names.
    counter: RefCell<u32>,
}

/// One HTTP request of a row.
struct Call {
    method: &'static str,
    url: String,
    body: Option<Value>,
    headers: Vec<(String, String)>,
}

impl Call {
    fn new(method: &'static str, url: String, body: Option<Value>) -> Call {
        Call {
            method,
            url,
            body,
            headers: Vec::new(),
        }
    }

    fn header(mut self, k: &str, v: &str) -> Call {
        self.headers.push((k.to_string(), v.to_string()));
        self
    }

    fn send(&self, token: &str) -> Resp {
        let body = self.body.as_ref().map(|b| match b {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        });
        let mut headers: Vec<(&str, &str)> = vec![("X-Auth-Token", token)];
        for (k, v) in &self.headers {
            headers.push((k.as_str(), v.as_str()));
        }
        request_raw(self.method, &self.url, &headers, body.as_deref())
            .unwrap_or_else(|e| panic!("transport: {e}"))
    }
}

type Fixture = Box<dyn Fn(&Cloud) -> Call>;

struct Row {
    svc: Svc,
    /// The policy rule (its name appears in the 403 body).
    action: &'static str,
    who: Who,
    /// What a caller allowed to act answers (empty: any answer but 401/403/404/5xx, for requests whose
    /// outcome also depends on the resource's state).
    ok: &'static [u16],
    /// Project B's member: `None` when the request does not name project A's resources (a create in one's
    /// own project), else the statuses it may get (404 as upstream; 403 where upstream checks the rule
    /// against the named project first).
    other: Option<&'static [u16]>,
    /// Rules a refusal may name instead of `action` (an earlier check of the same request: a reader
    /// creating a public image is refused `add_image` before `publicize_image` is asked).
    also: &'static [&'static str],
    /// A fresh request on fresh resources of project A.
    call: Fixture,
}

fn row(
    svc: Svc,
    action: &'static str,
    who: Who,
    ok: &'static [u16],
    other: Option<&'static [u16]>,
    call: impl Fn(&Cloud) -> Call + 'static,
) -> Row {
    Row {
        svc,
        action,
        who,
        ok,
        other,
        also: &[],
        call: Box::new(call),
    }
}

impl Row {
    fn or_refused_as(mut self, also: &'static [&'static str]) -> Row {
        self.also = also;
        self
    }
}

const NF: Option<&[u16]> = Some(&[404]);
const FORBIDDEN: Option<&[u16]> = Some(&[403]);

impl Cloud {
    fn name(&self, prefix: &str) -> String {
        let mut c = self.counter.borrow_mut();
        *c += 1;
        format!("{prefix}-{}", *c)
    }

    fn member_token(&self) -> &str {
        &self.member.token
    }

    /// POST as project A's member and return the JSON answer (`status` expected).
    fn create(&self, url: String, body: Value, status: u16) -> Value {
        post(&url, Some(self.member_token()), &body)
            .expect(status)
            .json()
    }

    // --- Nova fixtures ---

    fn server(&self) -> String {
        let id = boot(
            &self.nova,
            self.member_token(),
            &self.name("srv"),
            &self.flavor,
            &self.image,
            json!({}),
        );
        wait_status(&self.nova, self.member_token(), &id, "ACTIVE");
        id
    }

    fn nova_call(&self, method: &'static str, path: String, body: Option<Value>) -> Call {
        Call::new(method, format!("{}{path}", self.nova), body)
            .header("OpenStack-API-Version", "compute 2.79")
    }

    fn admin_flavor(&self) -> String {
        create_flavor(&self.nova, &self.admin.token, &self.name("flv"), 1, 64, 0)
    }

    fn aggregate(&self) -> i64 {
        let a = post(
            &format!("{}/os-aggregates", self.nova),
            Some(&self.admin.token),
            &json!({"aggregate": {"name": self.name("agg")}}),
        )
        .expect(200)
        .json();
        a["aggregate"]["id"].as_i64().expect("aggregate id")
    }

    // --- Cinder fixtures ---

    fn volume(&self) -> String {
        let v = self.create(
            format!("{}/volumes", self.cinder),
            json!({"volume": {"size": 1, "name": self.name("vol")}}),
            202,
        );
        let id = v["volume"]["id"].as_str().expect("volume id").to_string();
        wait_volume(&self.cinder, self.member_token(), &id, "available");
        id
    }

    fn cinder_call(&self, method: &'static str, path: String, body: Option<Value>) -> Call {
        Call::new(method, format!("{}{path}", self.cinder), body)
            .header("OpenStack-API-Version", "volume 3.65")
    }

    fn snapshot(&self) -> String {
        let vol = self.volume();
        let s = self.create(
            format!("{}/snapshots", self.cinder),
            json!({"snapshot": {"volume_id": vol, "name": self.name("snap")}}),
            202,
        );
        let id = s["snapshot"]["id"]
            .as_str()
            .expect("snapshot id")
            .to_string();
        wait_until(|| {
            get(
                &format!("{}/snapshots/{id}", self.cinder),
                Some(self.member_token()),
            )
            .json()["snapshot"]["status"]
                == "available"
        });
        id
    }

    fn backup(&self) -> String {
        let vol = self.volume();
        let b = self.create(
            format!("{}/backups", self.cinder),
            json!({"backup": {"volume_id": vol, "name": self.name("bak")}}),
            202,
        );
        let id = b["backup"]["id"].as_str().expect("backup id").to_string();
        wait_until(|| {
            get(
                &format!("{}/backups/{id}", self.cinder),
                Some(self.member_token()),
            )
            .json()["backup"]["status"]
                == "available"
        });
        id
    }

    fn volume_type(&self) -> String {
        let t = post(
            &format!("{}/types", self.cinder),
            Some(&self.admin.token),
            &json!({"volume_type": {"name": self.name("type")}}),
        )
        .expect(200)
        .json();
        t["volume_type"]["id"]
            .as_str()
            .expect("type id")
            .to_string()
    }

    // --- Glance fixtures ---

    fn glance_image(&self, data: bool) -> String {
        let v = self.create(
            format!("{}/v2/images", self.glance),
            json!({"name": self.name("img"), "disk_format": "raw", "container_format": "bare"}),
            201,
        );
        let id = v["id"].as_str().expect("image id").to_string();
        if data {
            request_bytes(
                "PUT",
                &format!("{}/v2/images/{id}/file", self.glance),
                &[
                    ("X-Auth-Token", self.member_token()),
                    ("Content-Type", "application/octet-stream"),
                ],
                Some(&[7u8; 1024]),
            )
            .expect("upload")
            .expect(204);
        }
        id
    }

    // --- Neutron fixtures ---

    fn network(&self) -> String {
        let n = self.create(
            format!("{}/networks", self.neutron),
            json!({"network": {"name": self.name("net")}}),
            201,
        );
        n["network"]["id"].as_str().expect("network id").to_string()
    }

    fn subnet(&self) -> (String, String) {
        let net = self.network();
        let s = self.create(
            format!("{}/subnets", self.neutron),
            json!({"subnet": {"network_id": net, "cidr": "10.9.0.0/24", "ip_version": 4}}),
            201,
        );
        (
            net,
            s["subnet"]["id"].as_str().expect("subnet id").to_string(),
        )
    }

    fn port(&self) -> String {
        let (net, _) = self.subnet();
        let p = self.create(
            format!("{}/ports", self.neutron),
            json!({"port": {"network_id": net}}),
            201,
        );
        p["port"]["id"].as_str().expect("port id").to_string()
    }

    fn router(&self) -> String {
        let r = self.create(
            format!("{}/routers", self.neutron),
            json!({"router": {"name": self.name("rtr")}}),
            201,
        );
        r["router"]["id"].as_str().expect("router id").to_string()
    }

    fn floating_ip(&self) -> String {
        let f = self.create(
            format!("{}/floatingips", self.neutron),
            json!({"floatingip": {"floating_network_id": self.public_net}}),
            201,
        );
        f["floatingip"]["id"].as_str().expect("fip id").to_string()
    }

    fn security_group(&self) -> String {
        let g = self.create(
            format!("{}/security-groups", self.neutron),
            json!({"security_group": {"name": self.name("sg")}}),
            201,
        );
        g["security_group"]["id"]
            .as_str()
            .expect("sg id")
            .to_string()
    }

    fn rule(&self) -> String {
        let g = self.security_group();
        let r = self.create(
            format!("{}/security-group-rules", self.neutron),
            json!({"security_group_rule": {"security_group_id": g, "direction": "ingress",
                "protocol": "tcp", "port_range_min": 22, "port_range_max": 22}}),
            201,
        );
        r["security_group_rule"]["id"]
            .as_str()
            .expect("rule id")
            .to_string()
    }

    // --- Keystone fixtures (made by the admin) ---

    fn ks_create(&self, collection: &str, key: &str, body: Value) -> String {
        let v = post(
            &format!("{}/{collection}", self.keystone),
            Some(&self.admin.token),
            &json!({ key: body }),
        )
        .expect(201)
        .json();
        v[key]["id"].as_str().expect("id").to_string()
    }

    fn ks_project(&self) -> String {
        self.ks_create("projects", "project", json!({"name": self.name("prj")}))
    }

    fn ks_user(&self) -> String {
        self.ks_create(
            "users",
            "user",
            json!({"name": self.name("usr"), "password": "pw-secret-1"}),
        )
    }

    fn ks_role(&self) -> String {
        self.ks_create("roles", "role", json!({"name": self.name("role")}))
    }

    fn ks_service(&self) -> String {
        self.ks_create(
            "services",
            "service",
            json!({"type": self.name("svc"), "name": self.name("svc")}),
        )
    }

    // --- Swift ---

    fn swift(&self, path: &str) -> String {
        format!(
            "{}/{path}",
            self.server.swift_account_url(&self.member.project)
        )
        .trim_end_matches('/')
        .to_string()
    }

    fn container(&self) -> String {
        let name = self.name("ctr");
        put(&self.swift(&name), Some(self.member_token())).expect(201);
        name
    }

    fn object(&self) -> String {
        let c = self.container();
        let path = format!("{c}/obj");
        request_raw(
            "PUT",
            &self.swift(&path),
            &[("X-Auth-Token", self.member_token())],
            Some("data"),
        )
        .expect("put object")
        .expect(201);
        path
    }
}

fn wait_until(done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "a fixture never got ready");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A token of a new user holding only `roles` in `project`.
fn persona(
    server: &Server,
    admin: &str,
    label: &'static str,
    project: &str,
    roles: &[&str],
) -> Persona {
    let ks = server.identity_url();
    let name = format!("{label}-{}", unique_suffix());
    let password = format!("pw-{name}");
    let u = post(
        &format!("{ks}/users"),
        Some(admin),
        &json!({"user": {"name": name, "password": password}}),
    )
    .expect(201)
    .json();
    let uid = u["user"]["id"].as_str().unwrap().to_string();
    let pid = find_by_name(ks, admin, "projects", project).expect("project")["id"]
        .as_str()
        .unwrap()
        .to_string();
    for role in roles {
        let rid = find_by_name(ks, admin, "roles", role).expect("role")["id"]
            .as_str()
            .unwrap()
            .to_string();
        put(
            &format!("{ks}/projects/{pid}/users/{uid}/roles/{rid}"),
            Some(admin),
        )
        .expect(204);
    }
    let token = get_token(ks, &name, &password, Some(project)).expect("token");
    Persona {
        label,
        token,
        project: pid,
    }
}

fn cloud() -> Cloud {
    let server = Server::start_with_args(&["--fake-hosts", "2"]);
    let admin_token = server.admin_token();
    let ks = server.identity_url().to_string();
    for p in ["matrix-a", "matrix-b"] {
        post(
            &format!("{ks}/projects"),
            Some(&admin_token),
            &json!({"project": {"name": p}}),
        )
        .expect(201);
    }
    let reader = persona(&server, &admin_token, "reader", "matrix-a", &["reader"]);
    let member = persona(&server, &admin_token, "member", "matrix-a", &["member"]);
    let other = persona(&server, &admin_token, "other", "matrix-b", &["member"]);
    let admin_project = find_by_name(&ks, &admin_token, "projects", "admin").expect("admin")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let nova = nova_url(&server);
    let cinder = cinder_url(&server);
    let glance = server.endpoint("image").expect("image").to_string();
    let neutron = format!("{}/v2.0", server.endpoint("network").expect("network"));
    let audit = server.endpoint("audit").expect("audit").to_string();
    // Project A may hold everything the matrix makes.
    put_json(
        &format!("{nova}/os-quota-sets/{}", member.project),
        &admin_token,
        &json!({"quota_set": {"instances": -1, "cores": -1, "ram": -1, "key_pairs": -1, "server_groups": -1}}),
    );
    put_json(
        &format!("{cinder}/os-quota-sets/{}", member.project),
        &admin_token,
        &json!({"quota_set": {"volumes": -1, "gigabytes": -1, "snapshots": -1, "backups": -1, "backup_gigabytes": -1}}),
    );
    put_json(
        &format!("{neutron}/quotas/{}", member.project),
        &admin_token,
        &json!({"quota": {"network": -1, "subnet": -1, "port": -1, "router": -1, "floatingip": -1,
            "security_group": -1, "security_group_rule": -1}}),
    );
    let flavor = create_flavor(&nova, &admin_token, "matrix.tiny", 1, 64, 1);
    let image = upload_image(&server, &admin_token, "matrix-image", &random_bytes(4096));
    let nets = get(
        &format!("{neutron}/networks?name=public"),
        Some(&admin_token),
    )
    .expect(200)
    .json();
    let public_net = nets["networks"][0]["id"]
        .as_str()
        .expect("public")
        .to_string();
    Cloud {
        admin: Persona {
            label: "admin",
            token: admin_token,
            project: admin_project,
        },
        keystone: ks,
        reader,
        member,
        other,
        nova,
        cinder,
        glance,
        neutron,
        audit,
        flavor,
        image,
        public_net,
        server,
        counter: RefCell::new(0),
    }
}

fn put_json(url: &str, token: &str, body: &Value) -> Resp {
    request("PUT", url, Some(token), Some(body))
}

/// The service's refusal: 403 with its own body naming the rule.
fn check_refused(svc: Svc, actions: &[&str], r: &Resp) {
    let action = actions[0];
    assert_eq!(r.status, 403, "{action}: {}", r.describe());
    if svc == Svc::Swift {
        return;
    }
    let v = r.json();
    let message = match svc {
        Svc::Keystone => {
            assert_eq!(v["error"]["code"], 403, "{v}");
            v["error"]["message"].clone()
        }
        Svc::Nova | Svc::Cinder => {
            assert_eq!(v["forbidden"]["code"], 403, "{v}");
            v["forbidden"]["message"].clone()
        }
        Svc::Glance => {
            assert_eq!(v["code"], "403 Forbidden", "{v}");
            v["message"].clone()
        }
        Svc::Neutron => {
            assert_eq!(v["NeutronError"]["type"], "PolicyNotAuthorized", "{v}");
            v["NeutronError"]["message"].clone()
        }
        Svc::Swift => unreachable!(),
    };
    let message = message.as_str().unwrap_or_default();
    assert!(
        actions.iter().any(|a| message.contains(a)),
        "{action}: the refusal does not name the rule: {message}"
    );
}

fn is_allowed(r: &Resp, ok: &[u16]) -> bool {
    if ok.is_empty() {
        !matches!(r.status, 401 | 403 | 404) && r.status < 500
    } else {
        ok.contains(&r.status)
    }
}

// ---------------------------------------------------------------------------------------------------------
// The rows
// ---------------------------------------------------------------------------------------------------------

fn keystone_rows() -> Vec<Row> {
    use Svc::Keystone as K;
    use Who::Admin as A;
    let ks = |c: &Cloud, m: &'static str, path: String, body: Option<Value>| {
        Call::new(m, format!("{}{path}", c.keystone), body)
    };
    vec![
        row(K, "identity:create_project", A, &[201], None, move |c| {
            ks(
                c,
                "POST",
                "/projects".into(),
                Some(json!({"project": {"name": c.name("p")}})),
            )
        }),
        row(K, "identity:update_project", A, &[200], None, move |c| {
            ks(
                c,
                "PATCH",
                format!("/projects/{}", c.ks_project()),
                Some(json!({"project": {"description": "x"}})),
            )
        }),
        row(K, "identity:delete_project", A, &[204], None, move |c| {
            ks(c, "DELETE", format!("/projects/{}", c.ks_project()), None)
        }),
        row(K, "identity:create_user", A, &[201], None, move |c| {
            ks(
                c,
                "POST",
                "/users".into(),
                Some(json!({"user": {"name": c.name("u"), "password": "pw-123456"}})),
            )
        }),
        row(K, "identity:update_user", A, &[200], None, move |c| {
            ks(
                c,
                "PATCH",
                format!("/users/{}", c.ks_user()),
                Some(json!({"user": {"email": "a@b.c"}})),
            )
        }),
        row(K, "identity:delete_user", A, &[204], None, move |c| {
            ks(c, "DELETE", format!("/users/{}", c.ks_user()), None)
        }),
        row(K, "identity:create_role", A, &[201], None, move |c| {
            ks(
                c,
                "POST",
                "/roles".into(),
                Some(json!({"role": {"name": c.name("r")}})),
            )
        }),
        row(K, "identity:update_role", A, &[200], None, move |c| {
            ks(
                c,
                "PATCH",
                format!("/roles/{}", c.ks_role()),
                Some(json!({"role": {"description": "x"}})),
            )
        }),
        row(K, "identity:delete_role", A, &[204], None, move |c| {
            ks(c, "DELETE", format!("/roles/{}", c.ks_role()), None)
        }),
        row(
            K,
            "identity:create_implied_role",
            A,
            &[201],
            None,
            move |c| {
                ks(
                    c,
                    "PUT",
                    format!("/roles/{}/implies/{}", c.ks_role(), c.ks_role()),
                    None,
                )
            },
        ),
        row(
            K,
            "identity:delete_implied_role",
            A,
            &[204],
            None,
            move |c| {
                let (prior, implied) = (c.ks_role(), c.ks_role());
                put(
                    &format!("{}/roles/{prior}/implies/{implied}", c.keystone),
                    Some(&c.admin.token),
                )
                .expect(201);
                ks(
                    c,
                    "DELETE",
                    format!("/roles/{prior}/implies/{implied}"),
                    None,
                )
            },
        ),
        row(K, "identity:create_domain", A, &[201], None, move |c| {
            ks(
                c,
                "POST",
                "/domains".into(),
                Some(json!({"domain": {"name": c.name("d")}})),
            )
        }),
        row(K, "identity:update_domain", A, &[200], None, move |c| {
            let d = c.ks_create("domains", "domain", json!({"name": c.name("d")}));
            ks(
                c,
                "PATCH",
                format!("/domains/{d}"),
                Some(json!({"domain": {"description": "x"}})),
            )
        }),
        row(K, "identity:delete_domain", A, &[204], None, move |c| {
            let d = c.ks_create(
                "domains",
                "domain",
                json!({"name": c.name("d"), "enabled": false}),
            );
            ks(c, "DELETE", format!("/domains/{d}"), None)
        }),
        row(K, "identity:create_region", A, &[201], None, move |c| {
            ks(
                c,
                "POST",
                "/regions".into(),
                Some(json!({"region": {"id": c.name("reg")}})),
            )
        }),
        row(K, "identity:update_region", A, &[200], None, move |c| {
            let r = c.ks_create("regions", "region", json!({"id": c.name("reg")}));
            ks(
                c,
                "PATCH",
                format!("/regions/{r}"),
                Some(json!({"region": {"description": "x"}})),
            )
        }),
        row(K, "identity:delete_region", A, &[204], None, move |c| {
            let r = c.ks_create("regions", "region", json!({"id": c.name("reg")}));
            ks(c, "DELETE", format!("/regions/{r}"), None)
        }),
        row(K, "identity:create_service", A, &[201], None, move |c| {
            ks(
                c,
                "POST",
                "/services".into(),
                Some(json!({"service": {"type": c.name("t")}})),
            )
        }),
        row(K, "identity:update_service", A, &[200], None, move |c| {
            ks(
                c,
                "PATCH",
                format!("/services/{}", c.ks_service()),
                Some(json!({"service": {"description": "x"}})),
            )
        }),
        row(K, "identity:delete_service", A, &[204], None, move |c| {
            ks(c, "DELETE", format!("/services/{}", c.ks_service()), None)
        }),
        row(K, "identity:create_endpoint", A, &[201], None, move |c| {
            ks(
                c,
                "POST",
                "/endpoints".into(),
                Some(json!({"endpoint": {"service_id": c.ks_service(),
                "interface": "public", "url": "http://127.0.0.1:1/x"}})),
            )
        }),
        row(K, "identity:update_endpoint", A, &[200], None, move |c| {
            let e = c.ks_create(
                "endpoints",
                "endpoint",
                json!({"service_id": c.ks_service(),
                "interface": "public", "url": "http://127.0.0.1:1/x"}),
            );
            ks(
                c,
                "PATCH",
                format!("/endpoints/{e}"),
                Some(json!({"endpoint": {"url": "http://127.0.0.1:2/y"}})),
            )
        }),
        row(K, "identity:delete_endpoint", A, &[204], None, move |c| {
            let e = c.ks_create(
                "endpoints",
                "endpoint",
                json!({"service_id": c.ks_service(),
                "interface": "public", "url": "http://127.0.0.1:1/x"}),
            );
            ks(c, "DELETE", format!("/endpoints/{e}"), None)
        }),
        row(K, "identity:create_grant", A, &[204], None, move |c| {
            ks(
                c,
                "PUT",
                format!(
                    "/projects/{}/users/{}/roles/{}",
                    c.ks_project(),
                    c.ks_user(),
                    c.ks_role()
                ),
                None,
            )
        }),
        row(K, "identity:revoke_grant", A, &[204], None, move |c| {
            let (p, u, r) = (c.ks_project(), c.ks_user(), c.ks_role());
            let path = format!("/projects/{p}/users/{u}/roles/{r}");
            put(&format!("{}{path}", c.keystone), Some(&c.admin.token)).expect(204);
            ks(c, "DELETE", path, None)
        }),
    ]
}

fn nova_rows() -> Vec<Row> {
    use Svc::Nova as N;
    use Who::{Admin as A, Member as M, OwnUser as U};
    let mut rows =
        vec![
            row(
                N,
                "os_compute_api:servers:create",
                M,
                &[202],
                None,
                move |c| {
                    c.nova_call(
                        "POST",
                        "/servers".into(),
                        Some(json!({"server": {"name": c.name("s"),
                "flavorRef": c.flavor, "imageRef": c.image, "networks": "none"}})),
                    )
                },
            ),
            row(
                N,
                "os_compute_api:servers:update",
                M,
                &[200],
                NF,
                move |c| {
                    c.nova_call(
                        "PUT",
                        format!("/servers/{}", c.server()),
                        Some(json!({"server": {"name": "renamed"}})),
                    )
                },
            ),
            row(
                N,
                "os_compute_api:servers:delete",
                M,
                &[204],
                NF,
                move |c| c.nova_call("DELETE", format!("/servers/{}", c.server()), None),
            ),
            row(
                N,
                "os_compute_api:server-metadata:create",
                M,
                &[200],
                NF,
                move |c| {
                    c.nova_call(
                        "POST",
                        format!("/servers/{}/metadata", c.server()),
                        Some(json!({"metadata": {"a": "1"}})),
                    )
                },
            ),
            row(
                N,
                "os_compute_api:server-metadata:update_all",
                M,
                &[200],
                NF,
                move |c| {
                    c.nova_call(
                        "PUT",
                        format!("/servers/{}/metadata", c.server()),
                        Some(json!({"metadata": {"a": "1"}})),
                    )
                },
            ),
            row(
                N,
                "os_compute_api:server-metadata:update",
                M,
                &[200],
                NF,
                move |c| {
                    c.nova_call(
                        "PUT",
                        format!("/servers/{}/metadata/a", c.server()),
                        Some(json!({"meta": {"a": "2"}})),
                    )
                },
            ),
            row(
                N,
                "os_compute_api:server-metadata:delete",
                M,
                &[204],
                NF,
                move |c| {
                    let s = c.server();
                    post(
                        &format!("{}/servers/{s}/metadata", c.nova),
                        Some(c.member_token()),
                        &json!({"metadata": {"a": "1"}}),
                    )
                    .expect(200);
                    c.nova_call("DELETE", format!("/servers/{s}/metadata/a"), None)
                },
            ),
            row(
                N,
                "os_compute_api:os-attach-interfaces:create",
                M,
                &[200],
                NF,
                move |c| {
                    let (net, _) = c.subnet();
                    c.nova_call(
                        "POST",
                        format!("/servers/{}/os-interface", c.server()),
                        Some(json!({"interfaceAttachment": {"net_id": net}})),
                    )
                },
            ),
            row(
                N,
                "os_compute_api:os-attach-interfaces:delete",
                M,
                &[202],
                NF,
                move |c| {
                    let (net, _) = c.subnet();
                    let s = c.server();
                    let a = post(
                        &format!("{}/servers/{s}/os-interface", c.nova),
                        Some(c.member_token()),
                        &json!({"interfaceAttachment": {"net_id": net}}),
                    )
                    .expect(200)
                    .json();
                    let port = a["interfaceAttachment"]["port_id"]
                        .as_str()
                        .unwrap()
                        .to_string();
                    c.nova_call("DELETE", format!("/servers/{s}/os-interface/{port}"), None)
                },
            ),
            row(
                N,
                "os_compute_api:os-volumes-attachments:create",
                M,
                &[200],
                NF,
                move |c| {
                    c.nova_call(
                        "POST",
                        format!("/servers/{}/os-volume_attachments", c.server()),
                        Some(json!({"volumeAttachment": {"volumeId": c.volume()}})),
                    )
                },
            ),
            row(
                N,
                "os_compute_api:os-volumes-attachments:delete",
                M,
                &[202],
                NF,
                move |c| {
                    let (s, v) = (c.server(), c.volume());
                    post(
                        &format!("{}/servers/{s}/os-volume_attachments", c.nova),
                        Some(c.member_token()),
                        &json!({"volumeAttachment": {"volumeId": v}}),
                    )
                    .expect(200);
                    wait_volume(&c.cinder, c.member_token(), &v, "in-use");
                    c.nova_call(
                        "DELETE",
                        format!("/servers/{s}/os-volume_attachments/{v}"),
                        None,
                    )
                },
            ),
            row(
                N,
                "os_compute_api:os-keypairs:create",
                U,
                &[201],
                None,
                move |c| {
                    c.nova_call(
                        "POST",
                        "/os-keypairs".into(),
                        Some(json!({"keypair": {"name": c.name("kp")}})),
                    )
                },
            ),
            row(
                N,
                "os_compute_api:os-server-groups:create",
                M,
                &[200],
                None,
                move |c| {
                    c.nova_call(
                        "POST",
                        "/os-server-groups".into(),
                        Some(json!({"server_group": {"name": c.name("g"), "policy": "affinity"}})),
                    )
                },
            ),
            row(
                N,
                "os_compute_api:os-server-groups:delete",
                M,
                &[204],
                NF,
                move |c| {
                    let g = c.create(
                        format!("{}/os-server-groups", c.nova),
                        json!({"server_group": {"name": c.name("g"), "policies": ["affinity"]}}),
                        200,
                    );
                    c.nova_call(
                        "DELETE",
                        format!(
                            "/os-server-groups/{}",
                            g["server_group"]["id"].as_str().unwrap()
                        ),
                        None,
                    )
                },
            ),
            row(
                N,
                "os_compute_api:os-quota-sets:update",
                A,
                &[200],
                FORBIDDEN,
                move |c| {
                    c.nova_call(
                        "PUT",
                        format!("/os-quota-sets/{}", c.member.project),
                        Some(json!({"quota_set": {"instances": -1}})),
                    )
                },
            ),
            row(
                N,
                "os_compute_api:os-quota-sets:delete",
                A,
                &[202],
                FORBIDDEN,
                move |c| c.nova_call("DELETE", format!("/os-quota-sets/{}", c.ks_project()), None),
            ),
            row(
                N,
                "os_compute_api:os-flavor-manage:create",
                A,
                &[200],
                None,
                move |c| {
                    c.nova_call("POST", "/flavors".into(),
                Some(json!({"flavor": {"name": c.name("f"), "ram": 64, "vcpus": 1, "disk": 0}})))
                },
            ),
            row(
                N,
                "os_compute_api:os-flavor-manage:update",
                A,
                &[200],
                None,
                move |c| {
                    c.nova_call(
                        "PUT",
                        format!("/flavors/{}", c.admin_flavor()),
                        Some(json!({"flavor": {"description": "x"}})),
                    )
                },
            ),
            row(
                N,
                "os_compute_api:os-flavor-manage:delete",
                A,
                &[202],
                None,
                move |c| c.nova_call("DELETE", format!("/flavors/{}", c.admin_flavor()), None),
            ),
            row(
                N,
                "os_compute_api:os-flavor-extra-specs:create",
                A,
                &[200],
                None,
                move |c| {
                    c.nova_call(
                        "POST",
                        format!("/flavors/{}/os-extra_specs", c.admin_flavor()),
                        Some(json!({"extra_specs": {"hw:cpu_policy": "shared"}})),
                    )
                },
            ),
            row(
                N,
                "os_compute_api:os-flavor-extra-specs:update",
                A,
                &[200],
                None,
                move |c| {
                    c.nova_call(
                        "PUT",
                        format!("/flavors/{}/os-extra_specs/hw:cpu_policy", c.admin_flavor()),
                        Some(json!({"hw:cpu_policy": "shared"})),
                    )
                },
            ),
            row(
                N,
                "os_compute_api:os-flavor-extra-specs:delete",
                A,
                &[200],
                None,
                move |c| {
                    let f = c.admin_flavor();
                    post(
                        &format!("{}/flavors/{f}/os-extra_specs", c.nova),
                        Some(&c.admin.token),
                        &json!({"extra_specs": {"hw:cpu_policy": "shared"}}),
                    )
                    .expect(200);
                    c.nova_call(
                        "DELETE",
                        format!("/flavors/{f}/os-extra_specs/hw:cpu_policy"),
                        None,
                    )
                },
            ),
            row(
                N,
                "os_compute_api:os-flavor-access:add_tenant_access",
                A,
                &[200],
                None,
                move |c| {
                    let f = post(
                        &format!("{}/flavors", c.nova),
                        Some(&c.admin.token),
                        &json!({"flavor": {"name": c.name("pf"), "ram": 64, "vcpus": 1, "disk": 0,
                    "os-flavor-access:is_public": false}}),
                    )
                    .expect(200)
                    .json();
                    c.nova_call(
                        "POST",
                        format!("/flavors/{}/action", f["flavor"]["id"].as_str().unwrap()),
                        Some(json!({"addTenantAccess": {"tenant": c.member.project}})),
                    )
                },
            ),
            row(
                N,
                "os_compute_api:os-aggregates:create",
                A,
                &[200],
                None,
                move |c| {
                    c.nova_call(
                        "POST",
                        "/os-aggregates".into(),
                        Some(json!({"aggregate": {"name": c.name("a")}})),
                    )
                },
            ),
            row(
                N,
                "os_compute_api:os-aggregates:update",
                A,
                &[200],
                None,
                move |c| {
                    c.nova_call(
                        "PUT",
                        format!("/os-aggregates/{}", c.aggregate()),
                        Some(json!({"aggregate": {"name": c.name("a")}})),
                    )
                },
            ),
            row(
                N,
                "os_compute_api:os-aggregates:delete",
                A,
                &[200],
                None,
                move |c| c.nova_call("DELETE", format!("/os-aggregates/{}", c.aggregate()), None),
            ),
            row(
                N,
                "os_compute_api:os-aggregates:set_metadata",
                A,
                &[200],
                None,
                move |c| {
                    c.nova_call(
                        "POST",
                        format!("/os-aggregates/{}/action", c.aggregate()),
                        Some(json!({"set_metadata": {"metadata": {"k": "v"}}})),
                    )
                },
            ),
            row(N, "compute:aggregates:images", A, &[202], None, move |c| {
                c.nova_call(
                    "POST",
                    format!("/os-aggregates/{}/images", c.aggregate()),
                    Some(json!({"cache": [{"id": c.image}]})),
                )
                .header("OpenStack-API-Version", "compute 2.81")
            }),
        ];
    // Server actions: policy first (readers 403, another project 404), then the state the server is in.
    for (key, action, who, body) in [
        ("os-stop", "os_compute_api:servers:stop", M, json!(null)),
        (
            "reboot",
            "os_compute_api:servers:reboot",
            M,
            json!({"type": "SOFT"}),
        ),
        (
            "pause",
            "os_compute_api:os-pause-server:pause",
            M,
            json!(null),
        ),
        (
            "suspend",
            "os_compute_api:os-suspend-server:suspend",
            M,
            json!(null),
        ),
        ("lock", "os_compute_api:os-lock-server:lock", M, json!(null)),
        ("shelve", "os_compute_api:os-shelve:shelve", M, json!(null)),
        (
            "resize",
            "os_compute_api:servers:resize",
            M,
            json!({"flavorRef": "FLAVOR"}),
        ),
        (
            "rebuild",
            "os_compute_api:servers:rebuild",
            M,
            json!({"imageRef": "IMAGE"}),
        ),
        (
            "createImage",
            "os_compute_api:servers:create_image",
            M,
            json!({"name": "snap"}),
        ),
        (
            "os-getConsoleOutput",
            "os_compute_api:os-console-output",
            M,
            json!({}),
        ),
        (
            "migrate",
            "os_compute_api:os-migrate-server:migrate",
            A,
            json!(null),
        ),
        (
            "os-migrateLive",
            "os_compute_api:os-migrate-server:migrate_live",
            A,
            json!({"host": null, "block_migration": "auto"}),
        ),
        ("evacuate", "os_compute_api:os-evacuate", A, json!({})),
        (
            "shelveOffload",
            "os_compute_api:os-shelve:shelve_offload",
            A,
            json!(null),
        ),
        // The undo of a state: allowed callers may still get 409 on an ACTIVE server.
        ("os-start", "os_compute_api:servers:start", M, json!(null)),
        (
            "unpause",
            "os_compute_api:os-pause-server:unpause",
            M,
            json!(null),
        ),
        (
            "resume",
            "os_compute_api:os-suspend-server:resume",
            M,
            json!(null),
        ),
        (
            "unlock",
            "os_compute_api:os-lock-server:unlock",
            M,
            json!(null),
        ),
        (
            "unshelve",
            "os_compute_api:os-shelve:unshelve",
            M,
            json!(null),
        ),
        (
            "confirmResize",
            "os_compute_api:servers:confirm_resize",
            M,
            json!(null),
        ),
        (
            "revertResize",
            "os_compute_api:servers:revert_resize",
            M,
            json!(null),
        ),
        (
            "addSecurityGroup",
            "os_compute_api:os-security-groups:add",
            M,
            json!({"name": "default"}),
        ),
        (
            "removeSecurityGroup",
            "os_compute_api:os-security-groups:remove",
            M,
            json!({"name": "default"}),
        ),
    ] {
        rows.push(row(N, action, who, &[], NF, move |c| {
            let body = match body.to_string().as_str() {
                r#"{"flavorRef":"FLAVOR"}"# => json!({"flavorRef": c.admin_flavor()}),
                r#"{"imageRef":"IMAGE"}"# => json!({"imageRef": c.image}),
                _ => body.clone(),
            };
            c.nova_call(
                "POST",
                format!("/servers/{}/action", c.server()),
                Some(json!({ key: body })),
            )
        }));
    }
    rows
}

fn cinder_rows() -> Vec<Row> {
    use Svc::Cinder as C;
    use Who::{Admin as A, Member as M};
    let mut rows = vec![
        row(C, "volume:create", M, &[202], None, move |c| {
            c.cinder_call(
                "POST",
                "/volumes".into(),
                Some(json!({"volume": {"size": 1}})),
            )
        }),
        row(C, "volume:update", M, &[200], NF, move |c| {
            c.cinder_call(
                "PUT",
                format!("/volumes/{}", c.volume()),
                Some(json!({"volume": {"name": "x"}})),
            )
        }),
        row(C, "volume:delete", M, &[202], NF, move |c| {
            c.cinder_call("DELETE", format!("/volumes/{}", c.volume()), None)
        }),
        row(
            C,
            "volume:create_volume_metadata",
            M,
            &[200],
            NF,
            move |c| {
                c.cinder_call(
                    "POST",
                    format!("/volumes/{}/metadata", c.volume()),
                    Some(json!({"metadata": {"a": "1"}})),
                )
            },
        ),
        row(
            C,
            "volume:update_volume_metadata",
            M,
            &[200],
            NF,
            move |c| {
                c.cinder_call(
                    "PUT",
                    format!("/volumes/{}/metadata", c.volume()),
                    Some(json!({"metadata": {"a": "1"}})),
                )
            },
        ),
        row(
            C,
            "volume:delete_volume_metadata",
            M,
            &[200],
            NF,
            move |c| {
                let v = c.volume();
                post(
                    &format!("{}/volumes/{v}/metadata", c.cinder),
                    Some(c.member_token()),
                    &json!({"metadata": {"a": "1"}}),
                )
                .expect(200);
                c.cinder_call("DELETE", format!("/volumes/{v}/metadata/a"), None)
            },
        ),
        row(C, "volume:create_snapshot", M, &[202], NF, move |c| {
            c.cinder_call(
                "POST",
                "/snapshots".into(),
                Some(json!({"snapshot": {"volume_id": c.volume()}})),
            )
        }),
        row(C, "volume:update_snapshot", M, &[200], NF, move |c| {
            c.cinder_call(
                "PUT",
                format!("/snapshots/{}", c.snapshot()),
                Some(json!({"snapshot": {"name": "x"}})),
            )
        }),
        row(C, "volume:delete_snapshot", M, &[202], NF, move |c| {
            c.cinder_call("DELETE", format!("/snapshots/{}", c.snapshot()), None)
        }),
        row(
            C,
            "volume:update_snapshot_metadata",
            M,
            &[200],
            NF,
            move |c| {
                c.cinder_call(
                    "POST",
                    format!("/snapshots/{}/metadata", c.snapshot()),
                    Some(json!({"metadata": {"a": "1"}})),
                )
            },
        ),
        row(C, "backup:create", M, &[202], NF, move |c| {
            c.cinder_call(
                "POST",
                "/backups".into(),
                Some(json!({"backup": {"volume_id": c.volume()}})),
            )
        }),
        row(C, "backup:update", M, &[200], NF, move |c| {
            c.cinder_call(
                "PUT",
                format!("/backups/{}", c.backup()),
                Some(json!({"backup": {"name": "x"}})),
            )
        }),
        row(C, "backup:delete", M, &[202], NF, move |c| {
            c.cinder_call("DELETE", format!("/backups/{}", c.backup()), None)
        }),
        row(C, "backup:restore", M, &[202], NF, move |c| {
            c.cinder_call(
                "POST",
                format!("/backups/{}/restore", c.backup()),
                Some(json!({"restore": {}})),
            )
        }),
        row(C, "volume:attachment_create", M, &[200], NF, move |c| {
            c.cinder_call(
                "POST",
                "/attachments".into(),
                Some(json!({"attachment": {"volume_uuid": c.volume()}})),
            )
        }),
        row(C, "volume:attachment_delete", M, &[200], NF, move |c| {
            let a = request_raw(
                "POST",
                &format!("{}/attachments", c.cinder),
                &[
                    ("X-Auth-Token", c.member_token()),
                    ("OpenStack-API-Version", "volume 3.65"),
                ],
                Some(&json!({"attachment": {"volume_uuid": c.volume()}}).to_string()),
            )
            .unwrap_or_else(|e| panic!("transport: {e}"))
            .expect(200)
            .json();
            let id = a["attachment"]["id"]
                .as_str()
                .expect("attachment id")
                .to_string();
            c.cinder_call("DELETE", format!("/attachments/{id}"), None)
        }),
        row(
            C,
            "volume_extension:types_manage",
            A,
            &[200],
            None,
            move |c| {
                c.cinder_call(
                    "POST",
                    "/types".into(),
                    Some(json!({"volume_type": {"name": c.name("t")}})),
                )
            },
        ),
        row(
            C,
            "volume_extension:types_extra_specs:create",
            A,
            &[200],
            None,
            move |c| {
                c.cinder_call(
                    "POST",
                    format!("/types/{}/extra_specs", c.volume_type()),
                    Some(json!({"extra_specs": {"k": "v"}})),
                )
            },
        ),
        row(
            C,
            "volume_extension:quotas:update",
            A,
            &[200],
            FORBIDDEN,
            move |c| {
                c.cinder_call(
                    "PUT",
                    format!("/os-quota-sets/{}", c.member.project),
                    Some(json!({"quota_set": {"volumes": -1}})),
                )
            },
        ),
    ];
    for (key, action, who, body) in [
        ("os-extend", "volume:extend", M, json!({"new_size": 2})),
        (
            "os-set_bootable",
            "volume:update",
            M,
            json!({"bootable": true}),
        ),
        (
            "os-update_readonly_flag",
            "volume:update_readonly_flag",
            M,
            json!({"readonly": true}),
        ),
        (
            "os-retype",
            "volume:retype",
            M,
            json!({"new_type": "__DEFAULT__"}),
        ),
        (
            "os-reserve",
            "volume_extension:volume_actions:reserve",
            M,
            json!(null),
        ),
        (
            "os-volume_upload_image",
            "volume_extension:volume_actions:upload_image",
            M,
            json!({"image_name": "from-volume"}),
        ),
        (
            "os-initialize_connection",
            "volume_extension:volume_actions:initialize_connection",
            M,
            json!({"connector": {"host": "h"}}),
        ),
        (
            "os-reset_status",
            "volume_extension:volume_admin_actions:reset_status",
            A,
            json!({"status": "available"}),
        ),
        (
            "os-force_delete",
            "volume_extension:volume_admin_actions:force_delete",
            A,
            json!(null),
        ),
    ] {
        // Cinder checks an admin action's rule before it looks the volume up.
        let other = if who == A { FORBIDDEN } else { NF };
        rows.push(row(C, action, who, &[], other, move |c| {
            c.cinder_call(
                "POST",
                format!("/volumes/{}/action", c.volume()),
                Some(json!({ key: body })),
            )
        }));
    }
    rows
}

fn glance_rows() -> Vec<Row> {
    use Svc::Glance as G;
    use Who::{Admin as A, Member as M};
    let patch = "application/openstack-images-v2.1-json-patch";
    vec![
        row(G, "add_image", M, &[201], None, move |c| {
            Call::new(
                "POST",
                format!("{}/v2/images", c.glance),
                Some(
                    json!({"name": c.name("i"), "disk_format": "raw", "container_format": "bare"}),
                ),
            )
        }),
        row(G, "publicize_image", A, &[201], None, move |c| {
            Call::new(
                "POST",
                format!("{}/v2/images", c.glance),
                Some(json!({"name": c.name("i"), "visibility": "public"})),
            )
        })
        .or_refused_as(&["add_image"]),
        row(G, "modify_image", M, &[200], NF, move |c| {
            Call::new(
                "PATCH",
                format!("{}/v2/images/{}", c.glance, c.glance_image(false)),
                Some(json!([{"op": "replace", "path": "/name", "value": "x"}])),
            )
            .header("Content-Type", patch)
        }),
        row(G, "delete_image", M, &[204], NF, move |c| {
            Call::new(
                "DELETE",
                format!("{}/v2/images/{}", c.glance, c.glance_image(false)),
                None,
            )
        }),
        row(G, "upload_image", M, &[204], NF, move |c| {
            Call::new(
                "PUT",
                format!("{}/v2/images/{}/file", c.glance, c.glance_image(false)),
                Some(json!("raw bytes")),
            )
            .header("Content-Type", "application/octet-stream")
        }),
        row(G, "download_image", M, &[200], NF, move |c| {
            Call::new(
                "GET",
                format!("{}/v2/images/{}/file", c.glance, c.glance_image(true)),
                None,
            )
        }),
        row(G, "deactivate", M, &[204], NF, move |c| {
            Call::new(
                "POST",
                format!(
                    "{}/v2/images/{}/actions/deactivate",
                    c.glance,
                    c.glance_image(true)
                ),
                None,
            )
        }),
        row(G, "reactivate", M, &[204], NF, move |c| {
            let id = c.glance_image(true);
            post(
                &format!("{}/v2/images/{id}/actions/deactivate", c.glance),
                Some(c.member_token()),
                &json!({}),
            )
            .expect(204);
            Call::new(
                "POST",
                format!("{}/v2/images/{id}/actions/reactivate", c.glance),
                None,
            )
        }),
        row(G, "modify_image", M, &[204], NF, move |c| {
            Call::new(
                "PUT",
                format!("{}/v2/images/{}/tags/t1", c.glance, c.glance_image(false)),
                None,
            )
        }),
        row(G, "add_member", M, &[200], NF, move |c| {
            let id = c.glance_image(false);
            request_raw(
                "PATCH",
                &format!("{}/v2/images/{id}", c.glance),
                &[("X-Auth-Token", c.member_token()), ("Content-Type", patch)],
                Some(
                    &json!([{"op": "replace", "path": "/visibility", "value": "shared"}])
                        .to_string(),
                ),
            )
            .unwrap()
            .expect(200);
            Call::new(
                "POST",
                format!("{}/v2/images/{id}/members", c.glance),
                Some(json!({"member": c.other.project})),
            )
        }),
    ]
}

fn neutron_rows() -> Vec<Row> {
    use Svc::Neutron as Q;
    use Who::{Admin as A, Member as M};
    let q = |c: &Cloud, m: &'static str, path: String, body: Option<Value>| {
        Call::new(m, format!("{}{path}", c.neutron), body)
    };
    vec![
        row(Q, "create_network", M, &[201], None, move |c| {
            q(
                c,
                "POST",
                "/networks".into(),
                Some(json!({"network": {"name": c.name("n")}})),
            )
        }),
        row(Q, "create_network:shared", A, &[201], None, move |c| {
            q(
                c,
                "POST",
                "/networks".into(),
                Some(json!({"network": {"name": c.name("n"), "shared": true}})),
            )
        })
        .or_refused_as(&["create_network"]),
        row(Q, "update_network", M, &[200], NF, move |c| {
            q(
                c,
                "PUT",
                format!("/networks/{}", c.network()),
                Some(json!({"network": {"name": "x"}})),
            )
        }),
        row(Q, "delete_network", M, &[204], NF, move |c| {
            q(c, "DELETE", format!("/networks/{}", c.network()), None)
        }),
        row(Q, "create_subnet", M, &[201], None, move |c| {
            // Project B names a network it cannot see: that is the create's cross-project case (below).
            q(
                c,
                "POST",
                "/subnets".into(),
                Some(json!({"subnet": {"network_id": c.network(),
                "cidr": "10.8.0.0/24", "ip_version": 4}})),
            )
        }),
        row(Q, "update_subnet", M, &[200], NF, move |c| {
            q(
                c,
                "PUT",
                format!("/subnets/{}", c.subnet().1),
                Some(json!({"subnet": {"name": "x"}})),
            )
        }),
        row(Q, "delete_subnet", M, &[204], NF, move |c| {
            q(c, "DELETE", format!("/subnets/{}", c.subnet().1), None)
        }),
        row(Q, "create_port", M, &[201], None, move |c| {
            q(
                c,
                "POST",
                "/ports".into(),
                Some(json!({"port": {"network_id": c.subnet().0}})),
            )
        }),
        row(Q, "update_port", M, &[200], NF, move |c| {
            q(
                c,
                "PUT",
                format!("/ports/{}", c.port()),
                Some(json!({"port": {"name": "x"}})),
            )
        }),
        row(Q, "delete_port", M, &[204], NF, move |c| {
            q(c, "DELETE", format!("/ports/{}", c.port()), None)
        }),
        row(Q, "create_router", M, &[201], None, move |c| {
            q(
                c,
                "POST",
                "/routers".into(),
                Some(json!({"router": {"name": c.name("r")}})),
            )
        }),
        row(Q, "update_router", M, &[200], NF, move |c| {
            q(
                c,
                "PUT",
                format!("/routers/{}", c.router()),
                Some(json!({"router": {"name": "x"}})),
            )
        }),
        row(Q, "delete_router", M, &[204], NF, move |c| {
            q(c, "DELETE", format!("/routers/{}", c.router()), None)
        }),
        row(Q, "add_router_interface", M, &[200], NF, move |c| {
            q(
                c,
                "PUT",
                format!("/routers/{}/add_router_interface", c.router()),
                Some(json!({"subnet_id": c.subnet().1})),
            )
        }),
        row(Q, "remove_router_interface", M, &[200], NF, move |c| {
            let (r, s) = (c.router(), c.subnet().1);
            request(
                "PUT",
                &format!("{}/routers/{r}/add_router_interface", c.neutron),
                Some(c.member_token()),
                Some(&json!({"subnet_id": s})),
            )
            .expect(200);
            q(
                c,
                "PUT",
                format!("/routers/{r}/remove_router_interface"),
                Some(json!({"subnet_id": s})),
            )
        }),
        row(Q, "create_floatingip", M, &[201], None, move |c| {
            q(
                c,
                "POST",
                "/floatingips".into(),
                Some(json!({"floatingip": {"floating_network_id": c.public_net}})),
            )
        }),
        row(Q, "update_floatingip", M, &[200], NF, move |c| {
            q(
                c,
                "PUT",
                format!("/floatingips/{}", c.floating_ip()),
                Some(json!({"floatingip": {"description": "x"}})),
            )
        }),
        row(Q, "delete_floatingip", M, &[204], NF, move |c| {
            q(
                c,
                "DELETE",
                format!("/floatingips/{}", c.floating_ip()),
                None,
            )
        }),
        row(Q, "create_security_group", M, &[201], None, move |c| {
            q(
                c,
                "POST",
                "/security-groups".into(),
                Some(json!({"security_group": {"name": c.name("g")}})),
            )
        }),
        row(Q, "update_security_group", M, &[200], NF, move |c| {
            q(
                c,
                "PUT",
                format!("/security-groups/{}", c.security_group()),
                Some(json!({"security_group": {"description": "x"}})),
            )
        }),
        row(Q, "delete_security_group", M, &[204], NF, move |c| {
            q(
                c,
                "DELETE",
                format!("/security-groups/{}", c.security_group()),
                None,
            )
        }),
        row(
            Q,
            "create_security_group_rule",
            M,
            &[201],
            Some(&[403, 404]),
            move |c| {
                q(
                    c,
                    "POST",
                    "/security-group-rules".into(),
                    Some(json!({"security_group_rule": {
                "security_group_id": c.security_group(), "direction": "ingress", "protocol": "tcp",
                "port_range_min": 23, "port_range_max": 23}})),
                )
            },
        ),
        row(Q, "delete_security_group_rule", M, &[204], NF, move |c| {
            q(
                c,
                "DELETE",
                format!("/security-group-rules/{}", c.rule()),
                None,
            )
        }),
        row(Q, "update_quota", A, &[200], None, move |c| {
            q(
                c,
                "PUT",
                format!("/quotas/{}", c.member.project),
                Some(json!({"quota": {"network": -1}})),
            )
        }),
        row(Q, "update_network:tags", M, &[200], NF, move |c| {
            q(
                c,
                "PUT",
                format!("/networks/{}/tags", c.network()),
                Some(json!({"tags": ["a"]})),
            )
        }),
        row(Q, "update_port:tags", M, &[201], NF, move |c| {
            q(c, "PUT", format!("/ports/{}/tags/t", c.port()), None)
        }),
        row(Q, "delete_router:tags", M, &[204], NF, move |c| {
            q(c, "DELETE", format!("/routers/{}/tags", c.router()), None)
        }),
    ]
}

fn swift_rows() -> Vec<Row> {
    use Svc::Swift as S;
    use Who::Member as M;
    let s = |c: &Cloud, m: &'static str, path: String, body: Option<Value>| {
        Call::new(m, c.swift(&path), body)
    };
    vec![
        row(S, "account POST", M, &[204], FORBIDDEN, move |c| {
            s(c, "POST", String::new(), None).header("X-Account-Meta-Color", "blue")
        }),
        row(S, "container PUT", M, &[201], FORBIDDEN, move |c| {
            s(c, "PUT", c.name("ctr"), None)
        }),
        row(S, "container POST", M, &[204], FORBIDDEN, move |c| {
            s(c, "POST", c.container(), None).header("X-Container-Meta-Color", "blue")
        }),
        row(S, "container DELETE", M, &[204], FORBIDDEN, move |c| {
            s(c, "DELETE", c.container(), None)
        }),
        row(S, "object PUT", M, &[201], FORBIDDEN, move |c| {
            s(
                c,
                "PUT",
                format!("{}/o", c.container()),
                Some(json!("data")),
            )
        }),
        row(S, "object POST", M, &[202], FORBIDDEN, move |c| {
            s(c, "POST", c.object(), None).header("X-Object-Meta-Color", "blue")
        }),
        row(S, "object DELETE", M, &[204], FORBIDDEN, move |c| {
            s(c, "DELETE", c.object(), None)
        }),
        row(S, "object COPY", M, &[201], FORBIDDEN, move |c| {
            let o = c.object();
            let dest = format!("{}/copy", o.split('/').next().unwrap());
            s(c, "COPY", o, None).header("Destination", &dest)
        }),
    ]
}

// ---------------------------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------------------------

/// The events the audit API has for request `rid` (the log's events carry their request's id).
fn events_of(c: &Cloud, rid: &str) -> usize {
    let v = get(
        &format!("{}/events?request_id={rid}&limit=10", c.audit),
        Some(&c.admin.token),
    )
    .expect(200)
    .json();
    v["events"].as_array().map_or(0, Vec::len)
}

#[test]
fn every_write_route_of_every_service_by_reader_member_admin_and_another_project() {
    let c = cloud();
    let mut rows = keystone_rows();
    rows.extend(nova_rows());
    rows.extend(cinder_rows());
    rows.extend(glance_rows());
    rows.extend(neutron_rows());
    rows.extend(swift_rows());
    let mut refused = Vec::new();
    let mut tried = 0;
    for r in &rows {
        // The refused personas try one set of resources (they change nothing), the allowed ones each
        // their own (a delete uses it up).
        let shared = (r.call)(&c);
        let personas: [(&Persona, bool); 4] = [
            (&c.reader, r.who == Who::OwnUser),
            (&c.member, r.who != Who::Admin),
            (&c.admin, true),
            (&c.other, false),
        ];
        for (p, allowed) in personas {
            if p.label == "other" && r.other.is_none() {
                continue;
            }
            let call = if allowed {
                (r.call)(&c)
            } else {
                clone_call(&shared)
            };
            let resp = call.send(&p.token);
            tried += 1;
            let what = format!(
                "{:?} {} by {} ({} {})",
                r.svc, r.action, p.label, call.method, call.url
            );
            if allowed {
                assert!(is_allowed(&resp, r.ok), "{what}: {}", resp.describe());
            } else if p.label == "other" {
                let want = r.other.unwrap_or(&[404]);
                assert!(want.contains(&resp.status), "{what}: {}", resp.describe());
                refused.push((what, resp.request_id().unwrap_or_default().to_string()));
            } else {
                let mut names = vec![r.action];
                names.extend(r.also);
                check_refused(r.svc, &names, &resp);
                refused.push((what, resp.request_id().unwrap_or_default().to_string()));
            }
        }
    }
    assert!(tried > 300, "only {tried} requests");
    // Refused requests appended nothing: once the audit index shows the events of a write made after all
    // of them, no event carries a refused request's id.
    let last = post(
        &format!("{}/networks", c.neutron),
        Some(c.member_token()),
        &json!({"network": {"name": "matrix-last"}}),
    )
    .expect(201);
    let last = last.request_id().expect("request id").to_string();
    wait_until(|| events_of(&c, &last) > 0);
    for (what, rid) in &refused {
        assert!(!rid.is_empty(), "{what}: no request id");
        assert_eq!(
            events_of(&c, rid),
            0,
            "{what}: a refused request appended events"
        );
    }
}

fn clone_call(c: &Call) -> Call {
    Call {
        method: c.method,
        url: c.url.clone(),
        body: c.body.clone(),
        headers: c.headers.clone(),
    }
}
