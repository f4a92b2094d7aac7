//! os-server-groups: affinity and anti-affinity groups with their policies and rules.

use super::*;

pub(super) fn group_json(view: &ComputeView, g: &GroupRow, mv: Microversion) -> Value {
    let s = &g.state;
    // Members deleted since they joined are not shown.
    let members: Vec<&String> = s
        .members
        .iter()
        .filter(|m| view.servers.get(*m).is_none_or(|r| !r.is_deleted()))
        .collect();
    let mut v = json!({ "id": g.id, "name": s.name, "members": members });
    if mv.0 >= 64 {
        v["policy"] = json!(s.policy);
        v["rules"] = if s.max_server_per_host > 0 {
            json!({ "max_server_per_host": s.max_server_per_host })
        } else {
            json!({})
        };
    } else {
        v["policies"] = json!([s.policy]);
        v["metadata"] = json!({});
    }
    if mv.0 >= 13 {
        v["project_id"] = json!(s.project_id);
        v["user_id"] = json!(s.user_id);
    }
    v
}

pub(super) fn visible_group(
    view: &ComputeView,
    caller: &Caller,
    id: &str,
) -> Result<GroupRow, NovaError> {
    view.group(id)
        .filter(|g| caller.is_admin || g.state.project_id == caller.project_id)
        .cloned()
        .ok_or_else(|| NovaError::not_found(format!("Instance group {id} could not be found.")))
}

pub(super) async fn group_list(
    compute: web::Data<Compute>,
    caller: Caller,
    req: HttpRequest,
    mv: Microversion,
) -> Result<HttpResponse, NovaError> {
    let q = Query::of(&req);
    // Nova lists every project's groups when an admin passes `all_projects`; others get their own.
    let all = caller.is_admin
        && q.has("all_projects")
        && q.get("all_projects")
            .is_none_or(|v| bool_value(&json!(v)) != Some(false));
    let offset = q.count("offset")?.unwrap_or(0);
    let limit = q.page_size()?;
    let view = compute.view.snapshot();
    let mut rows: Vec<&GroupRow> = view
        .groups
        .values()
        .filter(|g| all || g.state.project_id == caller.project_id)
        .collect();
    rows.sort_by(|a, b| (&a.created_at, &a.id).cmp(&(&b.created_at, &b.id)));
    let groups: Vec<Value> = rows
        .into_iter()
        .skip(offset)
        .take(limit)
        .map(|g| group_json(&view, g, mv))
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "server_groups": groups })))
}

pub(super) fn bad_group(field: &str, why: impl std::fmt::Display) -> NovaError {
    NovaError::bad_request(format!("Invalid input for field/attribute {field}. {why}"))
}

/// The policy, name and max_server_per_host of a create request, in the shape of its microversion.
pub(super) fn parse_group(
    body: &[u8],
    mv: Microversion,
) -> Result<(String, String, i64), NovaError> {
    let g = body_object(&parse_json(body)?, "server_group")?;
    let allowed: &[&str] = if mv.0 >= 64 {
        &["name", "policy", "rules"]
    } else {
        &["name", "policies"]
    };
    if let Some(k) = g.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(bad_group(
            "server_group",
            format!("Additional properties are not allowed ('{k}' was unexpected)"),
        ));
    }
    let name = match g.get("name") {
        Some(Value::String(n)) => n.clone(),
        Some(other) => {
            return Err(bad_group(
                "name",
                format!("Value: {other}. {other} is not of type 'string'"),
            ))
        }
        None => return Err(bad_group("server_group", "'name' is a required property")),
    };
    if name.is_empty() || name.chars().count() > 255 {
        return Err(bad_group(
            "name",
            format!("Value: {name}. The name must be 1 to 255 characters long"),
        ));
    }
    if name.trim() != name {
        return Err(bad_group(
            "name",
            format!("Value: {name}. Leading and trailing whitespace is not allowed"),
        ));
    }
    let mut allowed_policies = vec!["anti-affinity", "affinity"];
    if mv.0 >= 15 {
        allowed_policies.extend(["soft-anti-affinity", "soft-affinity"]);
    }
    let check = |p: &Value, field: &str| -> Result<String, NovaError> {
        match p.as_str() {
            Some(s) if allowed_policies.contains(&s) => Ok(s.to_string()),
            _ => Err(bad_group(
                field,
                format!("Value: {p}. {p} is not one of {allowed_policies:?}"),
            )),
        }
    };
    if mv.0 >= 64 {
        let policy = check(
            g.get("policy")
                .ok_or_else(|| bad_group("server_group", "'policy' is a required property"))?,
            "policy",
        )?;
        let mut max = 0;
        match g.get("rules") {
            None => {}
            Some(Value::Object(rules)) => {
                if let Some(k) = rules.keys().find(|k| *k != "max_server_per_host") {
                    return Err(bad_group(
                        "rules",
                        format!("Additional properties are not allowed ('{k}' was unexpected)"),
                    ));
                }
                if let Some(v) = rules.get("max_server_per_host") {
                    max = int_value(v).filter(|n| *n >= 1).ok_or_else(|| {
                        bad_group(
                            "max_server_per_host",
                            format!("Value: {v}. {v} is not a positive integer"),
                        )
                    })?;
                }
                if !rules.is_empty() && policy != "anti-affinity" {
                    return Err(NovaError::bad_request(
                        "Only anti-affinity policy supports rules.",
                    ));
                }
            }
            Some(other) => {
                return Err(bad_group(
                    "rules",
                    format!("Value: {other}. {other} is not of type 'object'"),
                ))
            }
        }
        Ok((name, policy, max))
    } else {
        let policies = match g.get("policies") {
            Some(Value::Array(p)) => p,
            Some(other) => {
                return Err(bad_group(
                    "policies",
                    format!("Value: {other}. {other} is not of type 'array'"),
                ))
            }
            None => {
                return Err(bad_group(
                    "server_group",
                    "'policies' is a required property",
                ))
            }
        };
        if policies.len() != 1 {
            return Err(bad_group(
                "policies",
                format!(
                    "Value: {}. Exactly one policy must be given",
                    Value::Array(policies.clone())
                ),
            ));
        }
        Ok((name, check(&policies[0], "policies")?, 0))
    }
}

pub(super) async fn group_create(
    compute: web::Data<Compute>,
    caller: Caller,
    mv: Microversion,
    body: web::Bytes,
) -> Result<HttpResponse, NovaError> {
    caller.enforce("os_compute_api:os-server-groups:create", &caller.project_id)?;
    let (name, policy, max_server_per_host) = parse_group(&body, mv)?;
    // The group quota is a counted holder on the project's usage stream: one append with the expected
    // version, so concurrent creates cannot both take the last slot.
    let limit = limit_of(&compute.limits(&caller.project_id), "server_groups");
    let id = uuid::Uuid::new_v4().to_string();
    compute
        .usage
        .execute(
            &caller.project_id,
            UsageCommand::Count {
                holder: format!("group:{id}"),
                resource: "server_groups".into(),
                scope: String::new(),
                limit,
            },
            caller.meta.clone(),
        )
        .await?;
    let created = compute
        .run(
            &compute.groups,
            &id,
            ServerGroupCommand::Create {
                project_id: caller.project_id.clone(),
                user_id: caller.auth.user_id.clone(),
                name,
                policy,
                max_server_per_host,
            },
            &caller.meta,
        )
        .await;
    if let Err(e) = created {
        release_counted(
            &compute,
            &caller.project_id,
            &format!("group:{id}"),
            &caller,
        )
        .await;
        return Err(e.into());
    }
    let view = compute.view.snapshot();
    let g = view.group(&id).ok_or_else(|| {
        NovaError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "The server group was created but is not visible yet; retry the request.",
        )
    })?;
    Ok(HttpResponse::Ok().json(json!({ "server_group": group_json(&view, g, mv) })))
}

pub(super) async fn group_show(
    compute: web::Data<Compute>,
    caller: Caller,
    mv: Microversion,
    path: web::Path<String>,
) -> Result<HttpResponse, NovaError> {
    let view = compute.view.snapshot();
    let g = visible_group(&view, &caller, &path.into_inner())?;
    Ok(HttpResponse::Ok().json(json!({ "server_group": group_json(&view, &g, mv) })))
}

pub(super) async fn group_delete(
    compute: web::Data<Compute>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, NovaError> {
    let id = path.into_inner();
    let project = visible_group(&compute.view.snapshot(), &caller, &id)?
        .state
        .project_id
        .clone();
    caller.enforce("os_compute_api:os-server-groups:delete", &project)?;
    compute
        .run(
            &compute.groups,
            &id,
            ServerGroupCommand::Delete,
            &caller.meta,
        )
        .await
        .map_err(|e| {
            let e = NovaError::from(e);
            if e.status == StatusCode::NOT_FOUND {
                NovaError::not_found(format!("Instance group {id} could not be found."))
            } else {
                e
            }
        })?;
    release_counted(&compute, &project, &format!("group:{id}"), &caller).await;
    Ok(HttpResponse::NoContent().finish())
}

/// Give back a counted quota holder (a server group or keypair).
pub(crate) async fn release_counted(
    compute: &Compute,
    stream: &str,
    holder: &str,
    caller: &Caller,
) {
    if let Err(e) = compute
        .usage
        .execute(
            stream,
            UsageCommand::Release {
                holder: holder.to_string(),
            },
            caller.meta.clone(),
        )
        .await
    {
        tracing::warn!(%holder, error = %e, "could not release a counted quota holder");
    }
}
