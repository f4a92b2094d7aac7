//! os-aggregates: host aggregates, their hosts, metadata and availability zones.

use super::*;

pub(super) fn aggregate_id(raw: &str) -> Result<i64, NovaError> {
    raw.parse().map_err(|_| {
        NovaError::bad_request(format!(
            "Invalid input received: id must be an integer: {raw}"
        ))
    })
}

pub(super) fn aggregate_not_found(id: i64) -> NovaError {
    NovaError::not_found(format!("Aggregate {id} could not be found."))
}

pub(super) fn aggregate_row(compute: &Compute, id: i64) -> Result<AggregateRow, NovaError> {
    compute
        .view
        .snapshot()
        .aggregates
        .get(&id)
        .filter(|a| a.state.exists && !a.state.deleted)
        .cloned()
        .ok_or_else(|| aggregate_not_found(id))
}

/// An aggregate as Nova shows it; `full` adds hosts and metadata (everything but the create answer).
pub(super) fn aggregate_json(mv: Microversion, a: &AggregateRow, full: bool) -> Value {
    let s = &a.state;
    let mut v = json!({
        "id": a.id,
        "name": s.name,
        "availability_zone": null_if_empty(&s.availability_zone),
        "created_at": nova_time(&a.created_at),
        "updated_at": nova_time(&a.updated_at),
        "deleted": false,
        "deleted_at": null,
    });
    if mv.0 >= 41 {
        v["uuid"] = json!(s.uuid);
    }
    if full {
        let mut metadata: Map<String, Value> = s
            .metadata
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        if !s.availability_zone.is_empty() {
            metadata.insert("availability_zone".into(), json!(s.availability_zone));
        }
        v["hosts"] = json!(s.hosts);
        v["metadata"] = Value::Object(metadata);
    }
    v
}

pub(super) fn aggregate_ok(mv: Microversion, a: &AggregateRow) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "aggregate": aggregate_json(mv, a, true) }))
}

/// Other aggregates that put any of `hosts` in a zone other than `zone`: their zones.
pub(super) fn conflicting_zones(
    view: &ComputeView,
    aggregate: i64,
    hosts: &BTreeSet<String>,
    zone: &str,
) -> BTreeSet<String> {
    view.aggregates
        .values()
        .filter(|a| a.id != aggregate)
        .filter(|a| !a.state.availability_zone.is_empty() && a.state.availability_zone != zone)
        .filter(|a| a.state.hosts.iter().any(|h| hosts.contains(h)))
        .map(|a| a.state.availability_zone.clone())
        .collect()
}

/// Nova's checks before an aggregate's zone becomes `zone` (`prefix` says which request failed): the zone
/// has a name, no host of the aggregate is in another zone through another aggregate, and a real change
/// moves no server.
pub(super) fn check_zone_change(
    compute: &Compute,
    a: &AggregateRow,
    zone: &str,
    prefix: &str,
) -> Result<(), NovaError> {
    let fail = |why: String| NovaError::bad_request(format!("{prefix} {}. Reason: {why}", a.id));
    if zone.is_empty() {
        return Err(fail(format!(
            "Aggregate {} does not support empty named availability zone",
            a.state.name
        )));
    }
    if !valid_zone(zone) {
        return Err(invalid(
            "availability_zone",
            &json!(zone),
            "It is not a valid zone name.",
        ));
    }
    let view = compute.view.snapshot();
    let conflicts = conflicting_zones(&view, a.id, &a.state.hosts, zone);
    if !conflicts.is_empty() {
        return Err(fail(format!(
            "One or more hosts already in availability zone(s) {conflicts:?}"
        )));
    }
    if zone != a.state.availability_zone
        && a.state
            .hosts
            .iter()
            .any(|h| view.servers_on(h).next().is_some())
    {
        return Err(fail(
            "One or more hosts contain instances in this zone".into(),
        ));
    }
    Ok(())
}

pub(super) async fn aggregate_list(
    compute: web::Data<Compute>,
    caller: Caller,
    mv: Microversion,
) -> Result<HttpResponse, NovaError> {
    admin(&caller, "os_compute_api:os-aggregates:index")?;
    let list: Vec<Value> = compute
        .view
        .snapshot()
        .aggregates
        .values()
        .filter(|a| a.state.exists && !a.state.deleted)
        .map(|a| aggregate_json(mv, a, true))
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "aggregates": list })))
}

pub(super) fn name_taken(name: &str) -> NovaError {
    NovaError::conflict(format!("Aggregate {name} already exists."))
}

pub(super) async fn aggregate_create(
    compute: web::Data<Compute>,
    identity: web::Data<Identity>,
    caller: Caller,
    mv: Microversion,
    body: web::Bytes,
) -> Result<HttpResponse, NovaError> {
    admin(&caller, "os_compute_api:os-aggregates:create")?;
    let v = parse_json(&body)?;
    let m = wrapped(&v, "aggregate", &["name", "availability_zone"])?;
    let name = match m.get("name") {
        Some(Value::String(n)) if valid_name(n) => n.clone(),
        Some(other) => return Err(invalid("name", other, "It is not a valid name.")),
        None => return Err(invalid("aggregate", &v, "'name' is a required property")),
    };
    let zone = match m.get("availability_zone") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(z)) if valid_zone(z) => z.clone(),
        Some(other) => {
            return Err(invalid(
                "availability_zone",
                other,
                "It is not a valid zone name.",
            ))
        }
    };
    let uuid = uuid::Uuid::new_v4().to_string();
    if identity
        .claim_name(NAME_KIND, "", &name, &uuid, &caller.meta)
        .await
        .is_err()
    {
        return Err(name_taken(&name));
    }
    let created = async {
        let seq = compute
            .run(&compute.sequences, AGGREGATE_SEQUENCE, Next, &caller.meta)
            .await?;
        let id = seq.state.value;
        let cmd = HostAggregateCommand::Create {
            uuid: uuid.clone(),
            name: name.clone(),
            availability_zone: zone,
        };
        compute
            .run(&compute.aggregates, &id.to_string(), cmd, &caller.meta)
            .await?;
        Ok::<i64, NovaError>(id)
    }
    .await;
    let id = match created {
        Ok(id) => id,
        Err(e) => {
            identity
                .release_name(NAME_KIND, "", &name, &uuid, &caller.meta)
                .await;
            return Err(e);
        }
    };
    let a = aggregate_row(&compute, id)?;
    Ok(HttpResponse::Ok().json(json!({ "aggregate": aggregate_json(mv, &a, false) })))
}

pub(super) async fn aggregate_show(
    compute: web::Data<Compute>,
    caller: Caller,
    mv: Microversion,
    path: web::Path<String>,
) -> Result<HttpResponse, NovaError> {
    admin(&caller, "os_compute_api:os-aggregates:show")?;
    let id = aggregate_id(&path.into_inner())?;
    Ok(aggregate_ok(mv, &aggregate_row(&compute, id)?))
}

pub(super) async fn aggregate_update(
    compute: web::Data<Compute>,
    identity: web::Data<Identity>,
    caller: Caller,
    mv: Microversion,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, NovaError> {
    admin(&caller, "os_compute_api:os-aggregates:update")?;
    let v = parse_json(&body)?;
    let m = wrapped(&v, "aggregate", &["name", "availability_zone"])?;
    if m.is_empty() {
        return Err(invalid(
            "aggregate",
            &v,
            "'name' or 'availability_zone' is a required property",
        ));
    }
    // The update schema accepts surrounding spaces in the name; Nova strips them.
    let name = match m.get("name") {
        None => None,
        Some(Value::String(n)) if valid_name(n.trim()) => Some(n.trim().to_string()),
        Some(other) => return Err(invalid("name", other, "It is not a valid name.")),
    };
    let zone = match m.get("availability_zone") {
        None => None,
        Some(Value::Null) => Some(String::new()),
        Some(Value::String(z)) => Some(z.clone()),
        Some(other) => {
            return Err(invalid(
                "availability_zone",
                other,
                "It is not a valid zone name.",
            ))
        }
    };
    let id = aggregate_id(&path.into_inner())?;
    let a = aggregate_row(&compute, id)?;
    if let Some(z) = &zone {
        check_zone_change(&compute, &a, z, "Cannot update aggregate")?;
    }
    let new_name = name.unwrap_or_else(|| a.state.name.clone());
    let new_zone = zone.unwrap_or_else(|| a.state.availability_zone.clone());
    let renamed = new_name != a.state.name;
    if renamed
        && identity
            .claim_name(NAME_KIND, "", &new_name, &a.state.uuid, &caller.meta)
            .await
            .is_err()
    {
        return Err(name_taken(&new_name));
    }
    let cmd = HostAggregateCommand::Update {
        name: new_name.clone(),
        availability_zone: new_zone,
    };
    if let Err(e) = compute
        .run(&compute.aggregates, &id.to_string(), cmd, &caller.meta)
        .await
    {
        if renamed {
            identity
                .release_name(NAME_KIND, "", &new_name, &a.state.uuid, &caller.meta)
                .await;
        }
        return Err(e.into());
    }
    if renamed {
        identity
            .release_name(NAME_KIND, "", &a.state.name, &a.state.uuid, &caller.meta)
            .await;
    }
    Ok(aggregate_ok(mv, &aggregate_row(&compute, id)?))
}

pub(super) async fn aggregate_delete(
    compute: web::Data<Compute>,
    identity: web::Data<Identity>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, NovaError> {
    admin(&caller, "os_compute_api:os-aggregates:delete")?;
    let id = aggregate_id(&path.into_inner())?;
    let a = aggregate_row(&compute, id)?;
    if !a.state.hosts.is_empty() {
        return Err(NovaError::bad_request(format!(
            "Cannot remove aggregate {id}. Reason: Host aggregate is not empty."
        )));
    }
    compute
        .run(
            &compute.aggregates,
            &id.to_string(),
            HostAggregateCommand::Delete,
            &caller.meta,
        )
        .await?;
    identity
        .release_name(NAME_KIND, "", &a.state.name, &a.state.uuid, &caller.meta)
        .await;
    Ok(HttpResponse::Ok().finish())
}

/// `{"host": "<compute host>"}` of add_host / remove_host.
pub(super) fn host_field(inner: &Value, action: &str) -> Result<String, NovaError> {
    let m = object(inner, action, &["host"])?;
    match m.get("host") {
        Some(Value::String(h)) if valid_hostname(h) => Ok(h.clone()),
        Some(other) => Err(invalid("host", other, "It must be a host name.")),
        None => Err(invalid(action, inner, "'host' is a required property")),
    }
}

/// The items of set_metadata: keys of Nova's metadata pattern, string values (null removes).
pub(super) fn metadata_items(inner: &Value) -> Result<BTreeMap<String, Option<String>>, NovaError> {
    let m = object(inner, "set_metadata", &["metadata"])?;
    let md = m
        .get("metadata")
        .ok_or_else(|| invalid("set_metadata", inner, "'metadata' is a required property"))?;
    let items = md
        .as_object()
        .ok_or_else(|| invalid("metadata", md, "It must be an object."))?;
    items
        .iter()
        .map(|(k, v)| {
            let key_ok = (1..=255).contains(&k.len())
                && k.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ':' | '.' | ' '));
            if !key_ok {
                return Err(invalid(
                    "metadata",
                    md,
                    &format!("'{k}' is not a valid metadata key."),
                ));
            }
            match v {
                Value::Null => Ok((k.clone(), None)),
                Value::String(s) if s.chars().count() <= 255 => Ok((k.clone(), Some(s.clone()))),
                other => Err(invalid(
                    &format!("metadata.{k}"),
                    other,
                    "It must be a string of at most 255 characters or null.",
                )),
            }
        })
        .collect()
}

pub(super) enum AggregateAction {
    AddHost(String),
    RemoveHost(String),
    SetMetadata(BTreeMap<String, Option<String>>),
}

pub(super) async fn aggregate_action(
    compute: web::Data<Compute>,
    caller: Caller,
    mv: Microversion,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, NovaError> {
    let v = parse_json(&body)?;
    let top = v
        .as_object()
        .filter(|m| m.len() == 1)
        .ok_or_else(|| NovaError::bad_request("The action body must name exactly one action."))?;
    let (name, inner) = top
        .iter()
        .next()
        .ok_or_else(|| NovaError::bad_request("The action body must name exactly one action."))?;
    let policy = match name.as_str() {
        "add_host" | "remove_host" | "set_metadata" => {
            format!("os_compute_api:os-aggregates:{name}")
        }
        other => {
            return Err(NovaError::bad_request(format!(
                "There is no such action: {other}"
            )))
        }
    };
    admin(&caller, &policy)?;
    let action = match name.as_str() {
        "add_host" => AggregateAction::AddHost(host_field(inner, name)?),
        "remove_host" => AggregateAction::RemoveHost(host_field(inner, name)?),
        _ => AggregateAction::SetMetadata(metadata_items(inner)?),
    };
    let id = aggregate_id(&path.into_inner())?;
    let a = aggregate_row(&compute, id)?;
    let stream = id.to_string();
    match action {
        AggregateAction::AddHost(host) => {
            let zone = &a.state.availability_zone;
            {
                let view = compute.view.snapshot();
                if !view.hosts.get(&host).is_some_and(|h| h.state.exists) {
                    return Err(NovaError::not_found(format!(
                        "Compute host {host} could not be found."
                    )));
                }
                if a.state.hosts.contains(&host) {
                    return Err(NovaError::conflict(format!(
                        "Aggregate {id} already has host {host}."
                    )));
                }
                if !zone.is_empty() {
                    let conflicts =
                        conflicting_zones(&view, id, &BTreeSet::from([host.clone()]), zone);
                    if !conflicts.is_empty() {
                        return Err(NovaError::conflict(format!(
                            "Cannot add host to aggregate {id}. Reason: One or more hosts already in availability zone(s) {conflicts:?}."
                        )));
                    }
                }
            }
            compute
                .run(
                    &compute.aggregates,
                    &stream,
                    HostAggregateCommand::AddHost(host),
                    &caller.meta,
                )
                .await?;
        }
        AggregateAction::RemoveHost(host) => {
            if !a.state.hosts.contains(&host) {
                return Err(NovaError::not_found(format!(
                    "Cannot remove host {host} in aggregate {id}"
                )));
            }
            compute
                .run(
                    &compute.aggregates,
                    &stream,
                    HostAggregateCommand::RemoveHost(host),
                    &caller.meta,
                )
                .await?;
        }
        AggregateAction::SetMetadata(mut items) => {
            // The zone is the aggregate's own field; every other key is plain metadata.
            let zone = items.remove("availability_zone");
            if let Some(z) = &zone {
                check_zone_change(
                    &compute,
                    &a,
                    z.as_deref().unwrap_or_default(),
                    "Cannot update metadata of aggregate",
                )?;
            }
            if let Some(Some(z)) = zone {
                if z != a.state.availability_zone {
                    let cmd = HostAggregateCommand::Update {
                        name: a.state.name.clone(),
                        availability_zone: z,
                    };
                    compute
                        .run(&compute.aggregates, &stream, cmd, &caller.meta)
                        .await?;
                }
            }
            if !items.is_empty() {
                compute
                    .run(
                        &compute.aggregates,
                        &stream,
                        HostAggregateCommand::SetMetadata(items),
                        &caller.meta,
                    )
                    .await?;
            }
        }
    }
    Ok(aggregate_ok(mv, &aggregate_row(&compute, id)?))
}

/// `POST /os-aggregates/{id}/images` (2.81): ask the aggregate's hosts to cache images.
pub(super) async fn aggregate_images(
    compute: web::Data<Compute>,
    caller: Caller,
    req: HttpRequest,
    mv: Microversion,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, NovaError> {
    if mv.0 < 81 {
        return Err(not_in_version(&req));
    }
    admin(&caller, "compute:aggregates:images")?;
    let v = parse_json(&body)?;
    let top = object(&v, "cache", &["cache"])?;
    let cache = top
        .get("cache")
        .ok_or_else(|| invalid("cache", &v, "'cache' is a required property"))?;
    let entries = cache
        .as_array()
        .filter(|a| !a.is_empty())
        .ok_or_else(|| invalid("cache", cache, "It must be a non-empty array."))?;
    let mut ids = Vec::with_capacity(entries.len());
    for e in entries {
        let m = object(e, "cache", &["id"])?;
        match m.get("id") {
            Some(Value::String(s)) if uuid::Uuid::parse_str(s).is_ok() => ids.push(s.clone()),
            Some(other) => return Err(invalid("id", other, "It must be an image uuid.")),
            None => return Err(invalid("cache", e, "'id' is a required property")),
        }
    }
    if ids.iter().collect::<BTreeSet<_>>().len() != ids.len() {
        return Err(NovaError::bad_request("Duplicate images in request"));
    }
    let id = aggregate_id(&path.into_inner())?;
    aggregate_row(&compute, id)?;
    {
        let images = compute.images.snapshot();
        if let Some(missing) = ids.iter().find(|i| images.image(i).is_none()) {
            return Err(NovaError::bad_request(format!(
                "Image {missing} could not be found."
            )));
        }
    }
    compute
        .run(
            &compute.aggregates,
            &id.to_string(),
            HostAggregateCommand::CacheImages(ids),
            &caller.meta,
        )
        .await?;
    Ok(HttpResponse::Accepted().finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nova_timestamps_are_naive_with_microseconds() {
        assert_eq!(
            nova_time("2016-12-27T22:51:32Z"),
            json!("2016-12-27T22:51:32.000000")
        );
        assert_eq!(nova_time(""), Value::Null);
    }

    #[test]
    fn names_and_zones() {
        assert!(valid_name("a1") && !valid_name(" a1") && !valid_name(""));
        assert!(valid_zone("z1") && !valid_zone("z:1"));
        assert!(valid_hostname("fake-0") && !valid_hostname("a b") && !valid_hostname("a"));
    }

    #[test]
    fn internal_service_uuids_are_stable_and_distinct() {
        let s = internal_uuid("nova-scheduler");
        assert_eq!(s, internal_uuid("nova-scheduler"));
        assert_ne!(s, internal_uuid("nova-conductor"));
        assert!(uuid::Uuid::parse_str(&s).is_ok());
    }
}
