//! POST /servers/{id}/action: the server actions (power, reboot, resize, migrate, evacuate, rebuild,
//! createImage, rescue, lock ...), each checked against policy and the server's state.

use super::*;

pub(super) async fn action(
    compute: web::Data<Compute>,
    caller: Caller,
    req: HttpRequest,
    mv: Microversion,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, NovaError> {
    let id = path.into_inner();
    // As Nova: the body names exactly one known action, then the server is looked up and the action's
    // policy checked against the server's project.
    let v = parse_json(&body)?;
    let (name, arg) = match v.as_object() {
        Some(m) if m.len() == 1 => m.iter().next().ok_or_else(malformed)?,
        _ => return Err(malformed()),
    };
    let policy = crate::compute::policy::server_action(name)
        .ok_or_else(|| NovaError::bad_request(format!("There is no such action: {name}")))?;
    let row = writable(&compute, &caller, &id, policy)?;
    let arg = arg.clone();
    let accepted = || Ok(HttpResponse::Accepted().finish());
    match name.as_str() {
        "os-stop" => {
            begin(&compute, &caller, &id, Action::Stop).await?;
            accepted()
        }
        "os-start" => {
            begin(&compute, &caller, &id, Action::Start).await?;
            accepted()
        }
        "reboot" => {
            let kind = arg
                .get("type")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid("reboot", &arg, "'type' is a required property"))?;
            let hard = match kind.to_uppercase().as_str() {
                "HARD" => true,
                "SOFT" => false,
                _ => {
                    return Err(invalid(
                        "type",
                        &json!(kind),
                        "is not one of ['HARD', 'Hard', 'hard', 'SOFT', 'Soft', 'soft']",
                    ))
                }
            };
            begin(&compute, &caller, &id, Action::Reboot { hard }).await?;
            accepted()
        }
        "pause" => {
            begin(&compute, &caller, &id, Action::Pause).await?;
            accepted()
        }
        "unpause" => {
            begin(&compute, &caller, &id, Action::Unpause).await?;
            accepted()
        }
        "suspend" => {
            begin(&compute, &caller, &id, Action::Suspend).await?;
            accepted()
        }
        "resume" => {
            begin(&compute, &caller, &id, Action::Resume).await?;
            accepted()
        }
        "addSecurityGroup" => {
            crate::compute::network::change_security_group(&compute, &caller, &row, &arg, true)
                .await
        }
        "removeSecurityGroup" => {
            crate::compute::network::change_security_group(&compute, &caller, &row, &arg, false)
                .await
        }
        "lock" => {
            let reason = match arg.get("locked_reason") {
                Some(Value::String(r)) if mv.0 >= 73 => r.clone(),
                Some(other) => return Err(invalid("locked_reason", other, "is not allowed here")),
                None => String::new(),
            };
            compute
                .run(
                    &compute.servers,
                    &id,
                    ServerCommand::Lock {
                        reason,
                        admin: caller.is_admin,
                        request_id: caller.meta.correlation_id.clone(),
                    },
                    &caller.meta,
                )
                .await?;
            accepted()
        }
        "unlock" => {
            compute
                .run(
                    &compute.servers,
                    &id,
                    ServerCommand::Unlock {
                        admin: caller.is_admin,
                        request_id: caller.meta.correlation_id.clone(),
                    },
                    &caller.meta,
                )
                .await?;
            accepted()
        }
        "resize" => {
            let f = arg
                .get("flavorRef")
                .and_then(|f| {
                    f.as_str()
                        .map(str::to_string)
                        .or_else(|| f.as_u64().map(|n| n.to_string()))
                })
                .ok_or_else(|| invalid("resize", &arg, "'flavorRef' is a required property"))?;
            let new = flavor_spec(&flavor_ref(&compute, &caller, &f)?);
            if new.id == row.state.flavor.id {
                return Err(NovaError::bad_request(
                    "When resizing, instances must change flavor!",
                ));
            }
            image_ref(&compute, &caller, &row.state.image_id, Some(&new)).ok();
            // Quota for the new flavor, atomically against the project's other servers.
            compute
                .usage
                .execute(
                    &row.state.project_id,
                    UsageCommand::Reserve {
                        holders: vec![(id.clone(), flavor_amounts(&new))],
                        limits: quota_limits(&compute, &row.state.project_id),
                    },
                    caller.meta.clone(),
                )
                .await?;
            let started = migrate(&compute, &caller, &id, "resize", String::new(), Some(new)).await;
            if started.is_err() {
                let _ = compute
                    .usage
                    .execute(
                        &row.state.project_id,
                        UsageCommand::Reserve {
                            holders: vec![(id.clone(), flavor_amounts(&row.state.flavor))],
                            limits: UNLIMITED,
                        },
                        caller.meta.clone(),
                    )
                    .await;
            }
            started?;
            accepted()
        }
        "confirmResize" => {
            run_unlocked(
                &compute,
                &caller,
                &id,
                ServerCommand::ConfirmResize {
                    request_id: caller.meta.correlation_id.clone(),
                    admin: caller.is_admin,
                },
            )
            .await?;
            Ok(HttpResponse::NoContent().finish())
        }
        "revertResize" => {
            run_unlocked(
                &compute,
                &caller,
                &id,
                ServerCommand::RevertResize {
                    request_id: caller.meta.correlation_id.clone(),
                    admin: caller.is_admin,
                },
            )
            .await?;
            accepted()
        }
        "migrate" => {
            let host = match arg.get("host") {
                Some(Value::String(h)) if mv.0 >= 56 => h.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => return Err(invalid("host", other, "is not allowed here")),
            };
            check_dest(&compute, &host)?;
            migrate(&compute, &caller, &id, "migration", host, None).await?;
            accepted()
        }
        "os-migrateLive" => {
            if mv.0 >= 68 && arg.get("force").is_some() {
                return Err(invalid(
                    "os-migrateLive",
                    &arg,
                    "Additional properties are not allowed ('force' was unexpected)",
                ));
            }
            if !arg.is_object() || arg.get("block_migration").is_none() {
                return Err(invalid(
                    "os-migrateLive",
                    &arg,
                    "'block_migration' is a required property",
                ));
            }
            let host = match arg.get("host") {
                Some(Value::String(h)) => h.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => return Err(invalid("host", other, "is not of type 'string'")),
            };
            check_dest(&compute, &host)?;
            migrate(&compute, &caller, &id, "live-migration", host, None).await?;
            accepted()
        }
        "evacuate" => {
            if mv.0 >= 68 && arg.get("force").is_some() {
                return Err(invalid(
                    "evacuate",
                    &arg,
                    "Additional properties are not allowed ('force' was unexpected)",
                ));
            }
            let host = match arg.get("host") {
                Some(Value::String(h)) => h.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => return Err(invalid("host", other, "is not of type 'string'")),
            };
            check_dest(&compute, &host)?;
            if compute.host_up(&compute.view.snapshot(), &row.state.host) {
                return Err(NovaError::bad_request(format!(
                    "Compute service of {} is still in use.",
                    row.state.host
                )));
            }
            migrate(&compute, &caller, &id, "evacuation", host, None).await?;
            if mv.0 >= 14 {
                Ok(HttpResponse::Ok().finish())
            } else {
                let pass = arg
                    .get("adminPass")
                    .and_then(Value::as_str)
                    .unwrap_or("evacuated");
                Ok(HttpResponse::Ok().json(json!({ "adminPass": pass })))
            }
        }
        "rebuild" => rebuild(&compute, &caller, &req, mv, &id, &arg).await,
        "createImage" => create_image(&compute, &caller, &req, mv, &row, &arg).await,
        "shelve" => {
            begin(&compute, &caller, &id, Action::Shelve).await?;
            accepted()
        }
        "shelveOffload" => {
            // Shelving offloads at once, so a shelved server is already offloaded.
            if row.state.vm_state != vm::SHELVED_OFFLOADED {
                return Err(NovaError::conflict(format!(
                    "Cannot 'shelveOffload' instance {id} while it is in vm_state {}",
                    row.state.vm_state
                )));
            }
            accepted()
        }
        "unshelve" => {
            if let Some(az) = arg.get("availability_zone").filter(|a| !a.is_null()) {
                if mv.0 < 77 {
                    return Err(invalid("unshelve", &arg, "Additional properties are not allowed ('availability_zone' was unexpected)"));
                }
                let az = az.as_str().unwrap_or_default();
                if az != row.state.availability_zone && !row.state.availability_zone.is_empty() {
                    return Err(NovaError::bad_request(format!(
                        "Unshelving into availability zone {az} is not supported; the server stays in {}",
                        row.state.availability_zone
                    )));
                }
            }
            if row.state.vm_state != vm::SHELVED_OFFLOADED && row.state.vm_state != vm::SHELVED {
                return Err(NovaError::conflict(format!(
                    "Cannot 'unshelve' instance {id} while it is in vm_state {}",
                    row.state.vm_state
                )));
            }
            compute
                .usage
                .execute(
                    &row.state.project_id,
                    UsageCommand::Reserve {
                        holders: vec![(id.clone(), flavor_amounts(&row.state.flavor))],
                        limits: quota_limits(&compute, &row.state.project_id),
                    },
                    caller.meta.clone(),
                )
                .await?;
            if let Err(e) = begin(&compute, &caller, &id, Action::Unshelve).await {
                let _ = compute
                    .usage
                    .execute(
                        &row.state.project_id,
                        UsageCommand::Reserve {
                            holders: vec![(
                                id.clone(),
                                Amounts {
                                    instances: 1,
                                    cores: 0,
                                    ram: 0,
                                },
                            )],
                            limits: UNLIMITED,
                        },
                        caller.meta.clone(),
                    )
                    .await;
                return Err(e);
            }
            accepted()
        }
        "os-getConsoleOutput" => {
            let length = match arg.get("length") {
                None | Some(Value::Null) => None,
                Some(n) => match n
                    .as_i64()
                    .or_else(|| n.as_str().and_then(|s| s.parse().ok()))
                {
                    Some(-1) => None,
                    Some(n) if n >= 0 => Some(n as usize),
                    _ => return Err(invalid("length", n, "must be an integer of at least -1")),
                },
            };
            if row.state.host.is_empty() || row.state.power_state == power::NOSTATE {
                return Err(NovaError::conflict(format!(
                    "Cannot 'get_console_output' instance {id} while it is in vm_state {}",
                    row.state.vm_state
                )));
            }
            let output = compute
                .engine
                .console_output(&id, length)
                .await
                .map_err(|e| NovaError::conflict(e.to_string()))?;
            Ok(HttpResponse::Ok().json(json!({ "output": output })))
        }
        other => Err(NovaError::bad_request(format!(
            "There is no such action: {other}"
        ))),
    }
}

/// A move's destination must be a known compute host.
pub(super) fn check_dest(compute: &Compute, host: &str) -> Result<(), NovaError> {
    if !host.is_empty() && !compute.view.snapshot().hosts.contains_key(host) {
        return Err(NovaError::bad_request(format!(
            "Compute host {host} could not be found."
        )));
    }
    Ok(())
}

pub(super) async fn migrate(
    compute: &Compute,
    caller: &Caller,
    id: &str,
    kind: &str,
    dest_host: String,
    new_flavor: Option<FlavorSpec>,
) -> Result<(), NovaError> {
    run_unlocked(
        compute,
        caller,
        id,
        ServerCommand::StartMigration {
            migration_id: uuid::Uuid::new_v4().to_string(),
            kind: kind.to_string(),
            dest_host,
            new_flavor,
            request_id: caller.meta.correlation_id.clone(),
            admin: caller.is_admin,
        },
    )
    .await
}

pub(super) async fn rebuild(
    compute: &Compute,
    caller: &Caller,
    req: &HttpRequest,
    mv: Microversion,
    id: &str,
    arg: &Value,
) -> Result<HttpResponse, NovaError> {
    let Value::Object(m) = arg else {
        return Err(invalid("rebuild", arg, "is not of type 'object'"));
    };
    let image_r = string_field(m, "imageRef")?
        .ok_or_else(|| invalid("rebuild", arg, "'imageRef' is a required property"))?;
    let row = server_row(compute, caller, id)?;
    let image_id = image_ref(compute, caller, &image_r, Some(&row.state.flavor))?;
    let name = string_field(m, "name")?;
    if let Some(n) = &name {
        check_name(n)?;
    }
    let metadata = m
        .get("metadata")
        .map(|v| metadata_field(v, "metadata"))
        .transpose()?;
    if let Some(md) = &metadata {
        check_metadata_quota(compute, &row.state.project_id, md.len())?;
    }
    let description = match m.get("description") {
        Some(_) if mv.0 < 19 => {
            return Err(invalid(
                "rebuild",
                arg,
                "Additional properties are not allowed ('description' was unexpected)",
            ))
        }
        Some(Value::Null) => Some(String::new()),
        Some(Value::String(d)) => Some(d.clone()),
        Some(other) => return Err(invalid("description", other, "is not of type 'string'")),
        None => None,
    };
    if row.state.boots_from_volume() {
        return Err(NovaError::bad_request(format!(
            "Unable to rebuild volume-backed instance {id} with a different image."
        )));
    }
    begin(compute, caller, id, Action::Rebuild { image_id }).await?;
    if let Some(n) = name {
        rename(compute, caller, id, n).await?;
    }
    if let Some(items) = metadata {
        compute
            .run(
                &compute.servers,
                id,
                ServerCommand::SetMetadata {
                    items,
                    replace: true,
                    admin: caller.is_admin,
                },
                &caller.meta,
            )
            .await?;
    }
    if let Some(d) = description {
        describe(compute, caller, id, d).await?;
    }
    let mut server = server_answer(compute, req, mv, caller, id)?;
    if let Some(p) = m.get("adminPass").and_then(Value::as_str) {
        server["adminPass"] = json!(p);
    }
    Ok(HttpResponse::Accepted().json(json!({ "server": server })))
}

pub(super) async fn create_image(
    compute: &Compute,
    caller: &Caller,
    req: &HttpRequest,
    mv: Microversion,
    row: &ServerRow,
    arg: &Value,
) -> Result<HttpResponse, NovaError> {
    let Value::Object(m) = arg else {
        return Err(invalid("createImage", arg, "is not of type 'object'"));
    };
    let name = string_field(m, "name")?
        .ok_or_else(|| invalid("createImage", arg, "'name' is a required property"))?;
    check_name(&name)?;
    let extra = m
        .get("metadata")
        .map(|v| metadata_field(v, "metadata"))
        .transpose()?
        .unwrap_or_default();
    check_settled(row, "createImage")?;
    check_unlocked(row, caller)?;
    let s = &row.state;
    let (disk_format, container_format) = {
        let v = compute.images.snapshot();
        v.image(&s.image_id)
            .map(|i| (i.disk_format.clone(), i.container_format.clone()))
            .unwrap_or_else(|| ("qcow2".into(), "bare".into()))
    };
    let image_id = uuid::Uuid::new_v4().to_string();
    let mut properties: BTreeMap<String, Value> =
        extra.into_iter().map(|(k, v)| (k, json!(v))).collect();
    properties.insert("image_type".into(), json!("snapshot"));
    properties.insert("instance_uuid".into(), json!(row.id));
    properties.insert("base_image_ref".into(), json!(s.image_id));
    properties.insert("user_id".into(), json!(caller.auth.user_id));
    let glance = &compute.glance;
    let cmd = ImageCommand::Create {
        image_id: image_id.clone(),
        owner: s.project_id.clone(),
        name,
        disk_format,
        container_format,
        visibility: "private".into(),
        min_disk: s.flavor.disk_gb,
        min_ram: 0,
        protected: false,
        os_hidden: false,
        tags: vec![],
        properties,
    };
    glance
        .create_record(&s.project_id, &image_id, cmd, &caller.meta)
        .await
        .map_err(|e| match e {
            strata_image::ImageError::OverQuota(m) => NovaError::forbidden(m),
            other => {
                let e = crate::image::GlanceError::from(other);
                NovaError::new(e.status, e.message)
            }
        })?;
    if let Err(e) = begin(
        compute,
        caller,
        &row.id,
        Action::CreateImage {
            image_id: image_id.clone(),
        },
    )
    .await
    {
        glance
            .discard_record(&s.project_id, &image_id, &caller.meta)
            .await;
        return Err(e);
    }
    if mv.0 >= 45 {
        return Ok(HttpResponse::Accepted().json(json!({ "image_id": image_id })));
    }
    // Before 2.45 the image is named by the Location header (Nova's points at its own image proxy).
    let base = crate::common::base_url(req);
    Ok(HttpResponse::Accepted()
        .insert_header(("Location", format!("{base}/v2.1/images/{image_id}")))
        .finish())
}
