//! os-services: the compute services (list, enable/disable, force down, delete).

use super::*;

/// One row of `os-services`.
pub(super) struct ServiceRow {
    pub(super) binary: &'static str,
    pub(super) host: String,
    /// Nova's id before 2.53.
    pub(super) number: usize,
    pub(super) uuid: String,
    pub(super) zone: String,
    pub(super) disabled: bool,
    pub(super) disabled_reason: String,
    pub(super) forced_down: bool,
    pub(super) up: bool,
    pub(super) updated_at: Value,
}

/// A stable uuid for an in-process service (the same on every start).
pub(super) fn internal_uuid(binary: &str) -> String {
    let digest = sha2::Sha256::digest(format!("strata/{INTERNAL_HOST}/{binary}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string()
}

/// Every service: the scheduler and conductor, then one nova-compute per compute host.
pub(super) fn services(compute: &Compute) -> Vec<ServiceRow> {
    let default_zone = &compute.engine.config().scheduler.default_availability_zone;
    let clock = Clock::of(compute);
    let now = nova_now();
    let mut rows: Vec<ServiceRow> = INTERNAL_BINARIES
        .iter()
        .enumerate()
        .map(|(i, binary)| ServiceRow {
            binary,
            host: INTERNAL_HOST.to_string(),
            number: i + 1,
            uuid: internal_uuid(binary),
            zone: INTERNAL_ZONE.to_string(),
            disabled: false,
            disabled_reason: String::new(),
            forced_down: false,
            up: true,
            updated_at: now.clone(),
        })
        .collect();
    let view = compute.view.snapshot();
    for (pos, h) in compute_hosts(&view) {
        rows.push(ServiceRow {
            binary: COMPUTE_BINARY,
            host: h.name.clone(),
            number: pos + INTERNAL_BINARIES.len(),
            uuid: h.state.service_id.clone(),
            zone: view.host_az(&h.name, default_zone),
            disabled: h.state.disabled,
            disabled_reason: h.state.disabled_reason.clone(),
            forced_down: h.state.forced_down,
            up: clock.up(h),
            updated_at: nova_time(&h.updated_at),
        });
    }
    rows
}

pub(super) fn service_json(mv: Microversion, s: &ServiceRow) -> Value {
    let mut v = json!({
        "id": if mv.0 >= 53 { json!(s.uuid) } else { json!(s.number) },
        "binary": s.binary,
        "host": s.host,
        "zone": s.zone,
        "status": if s.disabled { "disabled" } else { "enabled" },
        "state": if s.up { "up" } else { "down" },
        "updated_at": s.updated_at,
        "disabled_reason": null_if_empty(&s.disabled_reason),
    });
    if mv.0 >= 11 {
        v["forced_down"] = json!(s.forced_down);
    }
    v
}

pub(super) async fn service_list(
    compute: web::Data<Compute>,
    caller: Caller,
    req: HttpRequest,
    mv: Microversion,
) -> Result<HttpResponse, NovaError> {
    admin(&caller, "os_compute_api:os-services:list")?;
    let q = Query::of(&req);
    if mv.0 >= 75 {
        q.only(&["host", "binary"])?;
    }
    let host = q.get("host").filter(|h| !h.is_empty());
    let binary = q.get("binary").filter(|b| !b.is_empty());
    let list: Vec<Value> = services(&compute)
        .iter()
        .filter(|s| host.is_none_or(|h| s.host == h) && binary.is_none_or(|b| s.binary == b))
        .map(|s| service_json(mv, s))
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "services": list })))
}

pub(super) fn only_compute(binary: &str) -> Result<(), NovaError> {
    if binary == COMPUTE_BINARY {
        return Ok(());
    }
    Err(NovaError::bad_request(format!(
        "Updating a {binary} service is not supported. Only nova-compute services can be updated."
    )))
}

/// `PUT /os-services/{id}`: from 2.53 `{id}` is the service's uuid; before, it is the action
/// (`enable`, `disable`, `disable-log-reason`, and from 2.11 `force-down`) and the body names host and binary.
pub(super) async fn service_update(
    compute: web::Data<Compute>,
    caller: Caller,
    mv: Microversion,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, NovaError> {
    admin(&caller, "os_compute_api:os-services:update")?;
    let id = path.into_inner();
    let v = parse_json(&body)?;
    if mv.0 >= 53 {
        update_by_uuid(&compute, &caller, mv, &id, &v).await
    } else {
        legacy_action(&compute, &caller, mv, &id, &v).await
    }
}

pub(super) async fn update_by_uuid(
    compute: &Compute,
    caller: &Caller,
    mv: Microversion,
    id: &str,
    v: &Value,
) -> Result<HttpResponse, NovaError> {
    if uuid::Uuid::parse_str(id).is_err() {
        return Err(NovaError::bad_request(format!("Invalid uuid {id}")));
    }
    let m = object(v, "service", &["status", "disabled_reason", "forced_down"])?;
    let status = match m.get("status") {
        None => None,
        Some(Value::String(s)) if s == "enabled" || s == "disabled" => Some(s.as_str()),
        Some(other) => {
            return Err(invalid(
                "status",
                other,
                "It must be one of ['enabled', 'disabled'].",
            ))
        }
    };
    let reason = short_string(m, "disabled_reason")?;
    let forced_down = m
        .get("forced_down")
        .map(|f| bool_value(f).ok_or_else(|| invalid("forced_down", f, "It must be a boolean.")))
        .transpose()?;
    let service = services(compute)
        .into_iter()
        .find(|s| s.uuid == id)
        .ok_or_else(|| NovaError::not_found(format!("Service {id} could not be found.")))?;
    only_compute(service.binary)?;
    if status == Some("enabled") && reason.is_some() {
        return Err(NovaError::bad_request(
            "Specifying 'disabled_reason' with status 'enabled' is invalid.",
        ));
    }
    if status.is_none() && forced_down.is_none() {
        return Err(NovaError::bad_request(
            "No updates were requested. Fields 'status' or 'forced_down' should be specified.",
        ));
    }
    let host = service.host;
    match status {
        Some("enabled") => {
            compute
                .run(&compute.hosts, &host, HostCommand::Enable, &caller.meta)
                .await?;
        }
        Some(_) => {
            let reason = reason.unwrap_or_default().to_string();
            compute
                .run(
                    &compute.hosts,
                    &host,
                    HostCommand::Disable { reason },
                    &caller.meta,
                )
                .await?;
        }
        None => {}
    }
    if let Some(down) = forced_down {
        compute
            .run(
                &compute.hosts,
                &host,
                HostCommand::SetForcedDown(down),
                &caller.meta,
            )
            .await?;
    }
    let service = services(compute)
        .into_iter()
        .find(|s| s.uuid == id)
        .ok_or_else(|| NovaError::not_found(format!("Service {id} could not be found.")))?;
    Ok(HttpResponse::Ok().json(json!({ "service": service_json(mv, &service) })))
}

pub(super) async fn legacy_action(
    compute: &Compute,
    caller: &Caller,
    mv: Microversion,
    action: &str,
    v: &Value,
) -> Result<HttpResponse, NovaError> {
    let allowed: &[&str] = if mv.0 >= 11 {
        &["host", "binary", "disabled_reason", "forced_down"]
    } else {
        &["host", "binary", "disabled_reason"]
    };
    let m = object(v, "service", allowed)?;
    let host = match m.get("host") {
        Some(Value::String(h)) if valid_hostname(h) => h.clone(),
        Some(other) => return Err(invalid("host", other, "It must be a host name.")),
        None => return Err(invalid("service", v, "'host' is a required property")),
    };
    let binary = short_string(m, "binary")?
        .ok_or_else(|| invalid("service", v, "'binary' is a required property"))?
        .to_string();
    let reason = short_string(m, "disabled_reason")?.map(str::to_string);
    let forced_down = match m.get("forced_down") {
        None => None,
        Some(f) => {
            Some(bool_value(f).ok_or_else(|| invalid("forced_down", f, "It must be a boolean."))?)
        }
    };
    let (cmd, answer) = match action {
        "enable" => (
            HostCommand::Enable,
            json!({ "host": host, "binary": binary, "status": "enabled" }),
        ),
        "disable" => (
            HostCommand::Disable {
                reason: String::new(),
            },
            json!({ "host": host, "binary": binary, "status": "disabled" }),
        ),
        "disable-log-reason" => {
            let reason =
                reason.ok_or_else(|| NovaError::bad_request("Missing disabled reason field"))?;
            let answer = json!({
                "host": host, "binary": binary, "status": "disabled", "disabled_reason": reason,
            });
            (HostCommand::Disable { reason }, answer)
        }
        "force-down" if mv.0 >= 11 => {
            let down =
                forced_down.ok_or_else(|| NovaError::bad_request("Missing forced_down field"))?;
            (
                HostCommand::SetForcedDown(down),
                json!({ "host": host, "binary": binary, "forced_down": down }),
            )
        }
        _ => return Err(NovaError::not_found("Unknown action")),
    };
    only_compute(&binary)?;
    if !services(compute)
        .iter()
        .any(|s| s.binary == COMPUTE_BINARY && s.host == host)
    {
        return Err(NovaError::not_found(format!(
            "Could not find binary {binary} on host {host}."
        )));
    }
    compute
        .run(&compute.hosts, &host, cmd, &caller.meta)
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "service": answer })))
}

/// Deleting a service: compute hosts are agents inside this server (they would register again), the
/// scheduler and conductor are this server, so nothing is deleted; the answers say why.
pub(super) async fn service_delete(
    compute: web::Data<Compute>,
    caller: Caller,
    mv: Microversion,
    path: web::Path<String>,
) -> Result<HttpResponse, NovaError> {
    admin(&caller, "os_compute_api:os-services:delete")?;
    let id = path.into_inner();
    let rows = services(&compute);
    let found = if mv.0 >= 53 {
        if uuid::Uuid::parse_str(&id).is_err() {
            return Err(NovaError::bad_request(format!("Invalid uuid {id}")));
        }
        rows.iter().find(|s| s.uuid == id)
    } else {
        let n: usize = id.parse().map_err(|_| {
            NovaError::bad_request(format!(
                "Invalid input received: id must be an integer: {id}"
            ))
        })?;
        rows.iter().find(|s| s.number == n)
    };
    let s = found.ok_or_else(|| NovaError::not_found(format!("Service {id} not found.")))?;
    if s.binary != COMPUTE_BINARY {
        return Err(NovaError::conflict(format!(
            "Service {} on host {} runs inside this Strata server and cannot be deleted.",
            s.binary, s.host
        )));
    }
    if compute.view.snapshot().servers_on(&s.host).next().is_some() {
        return Err(NovaError::conflict(
            "Unable to delete compute service that is hosting instances. Migrate or delete the instances first.",
        ));
    }
    Err(NovaError::new(
        StatusCode::NOT_IMPLEMENTED,
        format!(
            "Deleting compute service {} is not supported: its agent runs inside this Strata server and would register the host again.",
            s.host
        ),
    ))
}
