//! POST /servers: parse and check the request, then boot through quota, the server group, Cinder
//! (boot volumes) and Neutron (ports), giving back what was taken when a later step refuses.

use super::*;

pub(super) async fn create(
    compute: web::Data<Compute>,
    vols: web::Data<crate::volume::Volumes>,
    identity: web::Data<crate::identity::Identity>,
    caller: Caller,
    req: HttpRequest,
    mv: Microversion,
    body: web::Bytes,
) -> Result<HttpResponse, NovaError> {
    caller.enforce("os_compute_api:servers:create", &caller.project_id)?;
    let v = parse_json(&body)?;
    let s = required_object(&v, "server")?;
    let name = string_field(s, "name")?
        .ok_or_else(|| invalid("server", &v["server"], "'name' is a required property"))?;
    check_name(&name)?;
    let flavor_r = string_field(s, "flavorRef")?
        .ok_or_else(|| invalid("server", &v["server"], "'flavorRef' is a required property"))?;
    let flavor = flavor_spec(&flavor_ref(&compute, &caller, &flavor_r)?);
    // The root disk: an image (imageRef, or a local image mapping) or a Cinder volume (boot from volume).
    let mut disks = crate::compute::volumes::boot_disks(&compute, &caller, s)?;
    let image_r = match string_field(s, "imageRef")?.unwrap_or_default() {
        r if r.is_empty() => disks.image.clone().unwrap_or_default(),
        r => r,
    };
    let image_id = if disks.boot_volume() {
        String::new()
    } else if image_r.is_empty() {
        return Err(NovaError::bad_request(
            "Block Device Mapping is Invalid: You specified more local devices than the limit allows",
        ));
    } else {
        image_ref(&compute, &caller, &image_r, Some(&flavor))?
    };
    // Networks: required from 2.37 ("auto", "none" or a list); without a network service only "auto" and
    // "none" can be served.
    // Networks: "auto", "none" or a list of networks, ports and fixed IPs; security groups for new ports.
    let requested = crate::compute::network::parse_networks(s.get("networks"), mv.0)?;
    let networks = requested.label().to_string();
    let security_groups =
        crate::compute::network::security_group_ids(&compute.networks, &caller, s)?;
    if matches!(&requested, crate::compute::network::Requested::List(l) if l.iter().any(|n| n.port_id.is_some() || n.fixed_ip.is_some()))
    {
        // A port or an address belongs to one server.
        let many = |k: &str| s.get(k).and_then(Value::as_u64).unwrap_or(1) > 1;
        if many("max_count") || many("min_count") {
            return Err(NovaError::bad_request(
                "Unable to launch multiple instances with a single configured port or fixed IP",
            ));
        }
    }
    let key_name = string_field(s, "key_name")?.unwrap_or_default();
    let mut key_data = String::new();
    if !key_name.is_empty() {
        let view = compute.view.snapshot();
        match view.keypair(&caller.auth.user_id, &key_name) {
            Some(k) => key_data = k.public_key.clone(),
            None => return Err(NovaError::bad_request("Invalid key_name provided.")),
        }
    }
    let metadata = match s.get("metadata") {
        Some(m) => metadata_field(m, "metadata")?,
        None => BTreeMap::new(),
    };
    check_metadata_quota(&compute, &caller.project_id, metadata.len())?;
    let user_data = string_field(s, "user_data")?.unwrap_or_default();
    if !user_data.is_empty() {
        if user_data.len() > 65535 {
            return Err(invalid("user_data", &json!("..."), "is too long"));
        }
        base64::engine::general_purpose::STANDARD
            .decode(user_data.trim())
            .map_err(|_| NovaError::bad_request("User data needs to be valid base 64."))?;
    }
    let description = match string_field(s, "description")? {
        Some(d) if mv.0 >= 19 => {
            if d.chars().count() > 255 {
                return Err(invalid("description", &json!(d), "is too long"));
            }
            d
        }
        Some(_) => {
            return Err(invalid(
                "server",
                &v["server"],
                "Additional properties are not allowed ('description' was unexpected)",
            ))
        }
        None => String::new(),
    };
    // availability_zone: "zone", or (admins) "zone:host" / ":host".
    let mut az = string_field(s, "availability_zone")?.unwrap_or_default();
    let mut requested_host = String::new();
    if let Some((zone, host)) = az.clone().split_once(':') {
        caller.enforce(
            "os_compute_api:servers:create:forced_host",
            &caller.project_id,
        )?;
        requested_host = host.to_string();
        az = zone.to_string();
    }
    if !az.is_empty() {
        let view = compute.view.snapshot();
        let default = &compute.engine.config().scheduler.default_availability_zone;
        let known = view.hosts.keys().any(|h| view.host_az(h, default) == az);
        if !known {
            return Err(NovaError::bad_request(format!(
                "The requested availability zone is not available: {az}"
            )));
        }
    }
    for key in ["host", "hypervisor_hostname"] {
        if let Some(h) = string_field(s, key)? {
            if mv.0 < 74 {
                return Err(invalid(
                    "server",
                    &v["server"],
                    &format!("Additional properties are not allowed ('{key}' was unexpected)"),
                ));
            }
            caller.enforce(
                "compute:servers:create:requested_destination",
                &caller.project_id,
            )?;
            requested_host = h;
        }
    }
    if !requested_host.is_empty() && !compute.view.snapshot().hosts.contains_key(&requested_host) {
        return Err(NovaError::bad_request(format!(
            "Compute host {requested_host} could not be found."
        )));
    }
    let count = |k: &str| -> Result<Option<u32>, NovaError> {
        match s.get(k) {
            None => Ok(None),
            Some(n) => n
                .as_u64()
                .or_else(|| n.as_str().and_then(|x| x.parse().ok()))
                .filter(|n| *n >= 1 && *n <= 1000)
                .map(|n| Some(n as u32))
                .ok_or_else(|| invalid(k, n, "must be an integer of at least 1")),
        }
    };
    let min_count = count("min_count")?.unwrap_or(1);
    let max_count = count("max_count")?.unwrap_or(min_count);
    if min_count > max_count {
        return Err(NovaError::bad_request("min_count must be <= max_count"));
    }
    if max_count > 1 && !disks.volumes.is_empty() {
        return Err(NovaError::bad_request(
            "Block Device Mapping is Invalid: volumes cannot be shared by multiple instances; create one server per request.",
        ));
    }
    // Scheduler hints.
    let hints = v
        .get("os:scheduler_hints")
        .or_else(|| v.get("OS-SCH-HNT:scheduler_hints"))
        .cloned()
        .unwrap_or(json!({}));
    let hint_list = |k: &str| -> Vec<String> {
        match hints.get(k) {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect(),
            _ => vec![],
        }
    };
    let group_id = hint_list("group").into_iter().next().unwrap_or_default();
    if !group_id.is_empty() {
        let view = compute.view.snapshot();
        match view.group(&group_id) {
            Some(g) if caller.is_admin || g.state.project_id == caller.project_id => {}
            _ => {
                return Err(NovaError::bad_request(format!(
                    "Invalid server group {group_id}"
                )))
            }
        }
    }
    let same_host = hint_list("same_host");
    let different_host = hint_list("different_host");
    for sid in same_host.iter().chain(&different_host) {
        if compute.view.snapshot().server(sid).is_none() {
            return Err(NovaError::bad_request(format!(
                "Invalid instance {sid} in scheduler hints"
            )));
        }
    }

    // Quota: reserve max_count servers, or as many as fit down to min_count.
    let limits = quota_limits(&compute, &caller.project_id);
    let mut ids: Vec<String> = Vec::new();
    let mut last_err = None;
    let mut n = max_count;
    while n >= min_count {
        let try_ids: Vec<String> = (0..n).map(|_| uuid::Uuid::new_v4().to_string()).collect();
        let holders = try_ids
            .iter()
            .map(|id| (id.clone(), flavor_amounts(&flavor)))
            .collect();
        match compute
            .usage
            .execute(
                &caller.project_id,
                UsageCommand::Reserve { holders, limits },
                caller.meta.clone(),
            )
            .await
        {
            Ok(_) => {
                ids = try_ids;
                break;
            }
            Err(e) => {
                last_err = Some(e);
                if n == min_count {
                    break;
                }
                n -= 1;
            }
        }
    }
    if ids.is_empty() {
        return Err(last_err
            .map(NovaError::from)
            .unwrap_or_else(|| NovaError::forbidden("Quota exceeded")));
    }
    let release_all = |ids: Vec<String>| {
        let compute = compute.clone();
        let project = caller.project_id.clone();
        let meta = caller.meta.clone();
        async move {
            for id in ids {
                let _ = compute
                    .usage
                    .execute(&project, UsageCommand::Release { holder: id }, meta.clone())
                    .await;
            }
        }
    };
    if !group_id.is_empty() {
        let limit = compute
            .limits(&caller.project_id)
            .get("server_group_members")
            .copied()
            .unwrap_or(-1);
        if let Err(e) = compute
            .groups
            .execute(
                &group_id,
                ServerGroupCommand::AddMembers {
                    servers: ids.clone(),
                    limit,
                },
                caller.meta.clone(),
            )
            .await
        {
            release_all(ids).await;
            return Err(e.into());
        }
    }
    // New volumes (from an image, a snapshot or blank) are made through Cinder before the server exists.
    if let Err(e) =
        crate::compute::volumes::make_boot_volumes(&vols, &identity, &caller, &mut disks.volumes)
            .await
    {
        release_all(ids).await;
        return Err(e);
    }
    // Each server's ports, made through Neutron before the servers are recorded.
    let mut server_ports: Vec<Vec<strata_actors::compute::ServerPort>> = Vec::new();
    for id in &ids {
        match crate::compute::network::make_ports(
            &compute.networks,
            &caller,
            id,
            &requested,
            &security_groups,
        )
        .await
        {
            Ok(p) => server_ports.push(p),
            Err(e) => {
                for made in &server_ports {
                    crate::compute::network::discard_ports(&compute.networks, &caller, made).await;
                }
                crate::compute::volumes::discard_boot_volumes(&vols, &caller, &disks.volumes).await;
                release_all(ids).await;
                return Err(e);
            }
        }
    }
    let reservation_id = format!("r-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let request_id = caller.meta.correlation_id.clone();
    let multiple = ids.len() > 1;
    for (i, id) in ids.iter().enumerate() {
        let name = if multiple {
            format!("{name}-{}", i + 1)
        } else {
            name.clone()
        };
        let hostname = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect::<String>();
        let created = pb::ServerCreated {
            project_id: caller.project_id.clone(),
            user_id: caller.auth.user_id.clone(),
            name,
            description: description.clone(),
            flavor: Some(flavor.to_pb()),
            image_id: image_id.clone(),
            key_name: key_name.clone(),
            key_data: key_data.clone(),
            metadata: metadata.clone().into_iter().collect(),
            user_data: user_data.clone(),
            availability_zone: az.clone(),
            group_id: group_id.clone(),
            same_host: same_host.clone(),
            different_host: different_host.clone(),
            reservation_id: reservation_id.clone(),
            launch_index: i as u32,
            networks: networks.clone(),
            request_id: request_id.clone(),
            hostname,
            requested_host: requested_host.clone(),
            block_devices: disks.volumes.iter().map(|b| b.to_pb()).collect(),
            ports: server_ports[i].iter().map(|p| p.to_pb()).collect(),
        };
        if let Err(e) = compute
            .run(
                &compute.servers,
                id,
                ServerCommand::Create(Box::new(created)),
                &caller.meta,
            )
            .await
        {
            release_all(ids[i..].to_vec()).await;
            crate::compute::volumes::discard_boot_volumes(&vols, &caller, &disks.volumes).await;
            for made in &server_ports[i..] {
                crate::compute::network::discard_ports(&compute.networks, &caller, made).await;
            }
            return Err(e);
        }
    }
    let base = crate::common::base_url(&req);
    if s.get("return_reservation_id").and_then(Value::as_bool) == Some(true) {
        return Ok(HttpResponse::Accepted().json(json!({ "reservation_id": reservation_id })));
    }
    let id = &ids[0];
    let admin_pass = string_field(s, "adminPass")?.unwrap_or_else(|| {
        use rand::Rng;
        rand::thread_rng()
            .sample_iter(&rand::distributions::Alphanumeric)
            .take(12)
            .map(char::from)
            .collect()
    });
    Ok(HttpResponse::Accepted()
        .insert_header(("Location", format!("{base}/v2.1/servers/{id}")))
        .json(json!({ "server": {
            "id": id,
            "links": links(&base, "servers", id),
            "OS-DCF:diskConfig": "MANUAL",
            "security_groups": [{ "name": "default" }],
            "adminPass": admin_pass,
        }})))
}
