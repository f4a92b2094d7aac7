//! os-quota-sets, os-quota-class-sets and /limits: Nova's quotas per project and their usage.

use super::*;

/// The nova-network quotas (shown as unlimited until 2.36; Strata has no nova-network).
pub(super) const NETWORK_QUOTAS: &[&str] = &[
    "fixed_ips",
    "floating_ips",
    "security_group_rules",
    "security_groups",
];
/// The personality (injected file) quotas, gone from 2.57.
pub(super) const FILE_QUOTAS: &[&str] = &[
    "injected_files",
    "injected_file_content_bytes",
    "injected_file_path_bytes",
];

/// The quota names os-quota-sets shows and accepts at this microversion.
pub(super) fn quota_names(mv: Microversion) -> Vec<&'static str> {
    let mut names: Vec<&'static str> = QUOTA_NAMES
        .iter()
        .copied()
        .filter(|n| mv.0 < 57 || !FILE_QUOTAS.contains(n))
        .collect();
    if mv.0 < 36 {
        names.extend(NETWORK_QUOTAS);
    }
    names.sort_unstable();
    names
}

/// What a project uses of each quota. `user` is whose keypairs count (keypairs belong to users).
pub(super) fn quota_usage(
    view: &ComputeView,
    project_id: &str,
    user: Option<&str>,
) -> BTreeMap<&'static str, i64> {
    let used = view.usage_of(project_id);
    let groups = view
        .groups
        .values()
        .filter(|g| g.state.project_id == project_id)
        .count() as i64;
    let key_pairs = user.map_or(0, |u| view.keypairs_of(u).count() as i64);
    BTreeMap::from([
        ("instances", used.instances),
        ("cores", used.cores),
        ("ram", used.ram),
        ("server_groups", groups),
        ("key_pairs", key_pairs),
    ])
}

pub(super) fn limit_of(limits: &BTreeMap<String, i64>, name: &str) -> i64 {
    limits.get(name).copied().unwrap_or(-1)
}

pub(super) fn quota_set_json(
    mv: Microversion,
    id: Option<&str>,
    limits: &BTreeMap<String, i64>,
) -> Value {
    let mut set = Map::new();
    if let Some(id) = id {
        set.insert("id".into(), json!(id));
    }
    for name in quota_names(mv) {
        set.insert(name.into(), json!(limit_of(limits, name)));
    }
    json!({ "quota_set": set })
}

/// Nova checks the project exists (in Keystone) before showing or setting its quotas.
pub(super) fn check_project(identity: &Identity, id: &str) -> Result<(), NovaError> {
    if identity.view.snapshot().projects.contains_key(id) {
        Ok(())
    } else {
        Err(NovaError::bad_request(format!(
            "Project ID {id} is not a valid project."
        )))
    }
}

/// Who may read a project's quotas: its members and admins; `user_id` names another user only for admins.
pub(super) fn quota_reader(
    caller: &Caller,
    project_id: &str,
    q: &Query,
    mv: Microversion,
    action: &str,
) -> Result<Option<String>, NovaError> {
    if !caller.is_admin && caller.project_id != project_id {
        return Err(NovaError::policy(&format!(
            "os_compute_api:os-quota-sets:{action}"
        )));
    }
    if mv.0 >= 75 {
        q.only(&["user_id"])?;
    }
    match q.get("user_id") {
        Some(u) if !caller.is_admin && u != caller.auth.user_id => Err(NovaError::policy(
            &format!("os_compute_api:os-quota-sets:{action}"),
        )),
        Some(u) => Ok(Some(u.to_string())),
        None => Ok(None),
    }
}

pub(super) async fn quota_show(
    compute: web::Data<Compute>,
    identity: web::Data<Identity>,
    caller: Caller,
    req: HttpRequest,
    mv: Microversion,
    path: web::Path<String>,
) -> Result<HttpResponse, NovaError> {
    let project_id = path.into_inner();
    let q = Query::of(&req);
    // Strata keeps quotas per project only; a user's quotas are the project's.
    quota_reader(&caller, &project_id, &q, mv, "show")?;
    check_project(&identity, &project_id)?;
    let limits = compute.limits(&project_id);
    Ok(HttpResponse::Ok().json(quota_set_json(mv, Some(&project_id), &limits)))
}

pub(super) async fn quota_detail(
    compute: web::Data<Compute>,
    identity: web::Data<Identity>,
    caller: Caller,
    req: HttpRequest,
    mv: Microversion,
    path: web::Path<String>,
) -> Result<HttpResponse, NovaError> {
    let project_id = path.into_inner();
    let q = Query::of(&req);
    let user = quota_reader(&caller, &project_id, &q, mv, "detail")?;
    check_project(&identity, &project_id)?;
    // Keypairs are counted for the named user, else for the caller when it asks about its own project.
    let user =
        user.or_else(|| (caller.project_id == project_id).then(|| caller.auth.user_id.clone()));
    let limits = compute.limits(&project_id);
    let used = quota_usage(&compute.view.snapshot(), &project_id, user.as_deref());
    let mut set = Map::new();
    set.insert("id".into(), json!(project_id));
    for name in quota_names(mv) {
        set.insert(
            name.into(),
            json!({
                "limit": limit_of(&limits, name),
                "in_use": used.get(name).copied().unwrap_or(0),
                "reserved": 0,
            }),
        );
    }
    Ok(HttpResponse::Ok().json(json!({ "quota_set": set })))
}

pub(super) async fn quota_defaults(
    compute: web::Data<Compute>,
    identity: web::Data<Identity>,
    _caller: Caller,
    mv: Microversion,
    path: web::Path<String>,
) -> Result<HttpResponse, NovaError> {
    let project_id = path.into_inner();
    check_project(&identity, &project_id)?;
    Ok(HttpResponse::Ok().json(quota_set_json(
        mv,
        Some(&project_id),
        &compute.default_limits,
    )))
}

pub(super) async fn quota_update(
    compute: web::Data<Compute>,
    identity: web::Data<Identity>,
    caller: Caller,
    req: HttpRequest,
    mv: Microversion,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, NovaError> {
    caller.enforce("os_compute_api:os-quota-sets:update", &caller.project_id)?;
    let project_id = path.into_inner();
    let q = Query::of(&req);
    if mv.0 >= 75 {
        q.only(&["user_id"])?;
    }
    check_project(&identity, &project_id)?;
    if q.has("user_id") {
        return Err(NovaError::bad_request(
            "Per-user quotas are not supported: set the project's quotas instead.",
        ));
    }
    let set = body_object(&parse_json(&body)?, "quota_set")?;
    let names = quota_names(mv);
    let mut force = false;
    let mut values = BTreeMap::new();
    for (key, value) in &set {
        if key == "force" {
            force = bool_value(value).ok_or_else(|| {
                NovaError::bad_request(format!(
                    "Invalid input for field/attribute force. Value: {value}. {value} is not one of the boolean values"
                ))
            })?;
            continue;
        }
        if !names.contains(&key.as_str()) {
            return Err(NovaError::bad_request(format!(
                "Invalid input for field/attribute quota_set. Value: {}. Additional properties are not allowed ('{key}' was unexpected)",
                Value::Object(set.clone())
            )));
        }
        let n = int_value(value).ok_or_else(|| {
            NovaError::bad_request(format!(
                "Invalid input for field/attribute {key}. Value: {value}. {value} is not of type 'integer', 'string'"
            ))
        })?;
        if n < -1 {
            return Err(NovaError::bad_request(format!(
                "Invalid input for field/attribute {key}. Value: {n}. {n} is less than the minimum of -1"
            )));
        }
        if n > MAX_QUOTA {
            return Err(NovaError::bad_request(format!(
                "Invalid input for field/attribute {key}. Value: {n}. {n} is greater than the maximum of {MAX_QUOTA}"
            )));
        }
        // The nova-network quotas (before 2.36) are accepted and have no effect: there is no nova-network.
        if !NETWORK_QUOTAS.contains(&key.as_str()) {
            values.insert(key.clone(), n);
        }
    }
    if !force {
        // Like Nova, a limit below what the project already uses is refused unless forced. Keypairs are
        // counted per user and server group members per group, so neither limits a project-wide setting.
        let used = quota_usage(&compute.view.snapshot(), &project_id, None);
        for (key, &limit) in &values {
            let in_use = used.get(key.as_str()).copied().unwrap_or(0);
            if key != "key_pairs" && limit != -1 && limit < in_use {
                return Err(NovaError::bad_request(format!(
                    "Quota limit {limit} for {key} must be greater than or equal to already used and reserved {in_use}."
                )));
            }
        }
    }
    if !values.is_empty() {
        compute
            .run(
                &compute.quotas,
                &project_id,
                QuotaCommand::Set(values),
                &caller.meta,
            )
            .await?;
    }
    let limits = compute.limits(&project_id);
    Ok(HttpResponse::Ok().json(quota_set_json(mv, None, &limits)))
}

pub(super) async fn quota_delete(
    compute: web::Data<Compute>,
    caller: Caller,
    req: HttpRequest,
    mv: Microversion,
    path: web::Path<String>,
) -> Result<HttpResponse, NovaError> {
    caller.enforce("os_compute_api:os-quota-sets:delete", &caller.project_id)?;
    let q = Query::of(&req);
    if mv.0 >= 75 {
        q.only(&["user_id"])?;
    }
    if q.has("user_id") {
        return Err(NovaError::bad_request(
            "Per-user quotas are not supported: reset the project's quotas instead.",
        ));
    }
    let project_id = path.into_inner();
    compute
        .run(
            &compute.quotas,
            &project_id,
            QuotaCommand::Reset,
            &caller.meta,
        )
        .await?;
    Ok(HttpResponse::Accepted().finish())
}

/// `GET /os-quota-class-sets/{class}`: every class shows the defaults (Strata has no other classes).
pub(super) async fn quota_class_show(
    compute: web::Data<Compute>,
    caller: Caller,
    mv: Microversion,
    path: web::Path<String>,
) -> Result<HttpResponse, NovaError> {
    caller.enforce(
        "os_compute_api:os-quota-class-sets:show",
        &caller.project_id,
    )?;
    let class = path.into_inner();
    let mut set = Map::new();
    set.insert("id".into(), json!(class));
    // Before 2.50 the class set shows the network quotas but not the server group ones.
    let mut names: Vec<&str> = QUOTA_NAMES
        .iter()
        .copied()
        .filter(|n| mv.0 < 57 || !FILE_QUOTAS.contains(n))
        .filter(|n| mv.0 >= 50 || !n.starts_with("server_group"))
        .collect();
    if mv.0 < 50 {
        names.extend(NETWORK_QUOTAS);
    }
    for name in names {
        set.insert(name.into(), json!(limit_of(&compute.default_limits, name)));
    }
    Ok(HttpResponse::Ok().json(json!({ "quota_class_set": set })))
}

pub(super) async fn limits(
    compute: web::Data<Compute>,
    caller: Caller,
    req: HttpRequest,
    mv: Microversion,
) -> Result<HttpResponse, NovaError> {
    let q = Query::of(&req);
    if mv.0 >= 75 {
        q.only(&["tenant_id", "reserved"])?;
    }
    let project_id = match q.get("tenant_id") {
        Some(t) if t != caller.project_id && !caller.is_admin => {
            return Err(NovaError::policy("os_compute_api:limits:other_project"))
        }
        Some(t) if !t.is_empty() => t.to_string(),
        _ => caller.project_id.clone(),
    };
    let limits = compute.limits(&project_id);
    let used = quota_usage(&compute.view.snapshot(), &project_id, None);
    let l = |n: &str| json!(limit_of(&limits, n));
    let u = |n: &str| json!(used.get(n).copied().unwrap_or(0));
    let mut abs = Map::new();
    for (k, v) in [
        ("maxServerMeta", l("metadata_items")),
        ("maxTotalInstances", l("instances")),
        ("maxTotalCores", l("cores")),
        ("maxTotalRAMSize", l("ram")),
        ("maxTotalKeypairs", l("key_pairs")),
        ("maxServerGroups", l("server_groups")),
        ("maxServerGroupMembers", l("server_group_members")),
        ("totalInstancesUsed", u("instances")),
        ("totalCoresUsed", u("cores")),
        ("totalRAMUsed", u("ram")),
        ("totalServerGroupsUsed", u("server_groups")),
    ] {
        abs.insert(k.into(), v);
    }
    if mv.0 < 57 {
        abs.insert("maxPersonality".into(), l("injected_files"));
        abs.insert(
            "maxPersonalitySize".into(),
            l("injected_file_content_bytes"),
        );
    }
    if mv.0 < 39 {
        abs.insert("maxImageMeta".into(), l("metadata_items"));
    }
    if mv.0 < 36 {
        for k in [
            "maxSecurityGroupRules",
            "maxSecurityGroups",
            "maxTotalFloatingIps",
        ] {
            abs.insert(k.into(), json!(-1));
        }
        for k in ["totalSecurityGroupsUsed", "totalFloatingIpsUsed"] {
            abs.insert(k.into(), json!(0));
        }
    }
    Ok(HttpResponse::Ok().json(json!({ "limits": { "rate": [], "absolute": abs } })))
}
