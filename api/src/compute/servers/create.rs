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
    let disks = crate::compute::volumes::boot_disks(&compute, &caller, s)?;
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

    let server = pb::ServerCreated {
        project_id: caller.project_id.clone(),
        user_id: caller.auth.user_id.clone(),
        name,
        description,
        flavor: Some(flavor.to_pb()),
        image_id,
        key_name,
        key_data,
        metadata: metadata.into_iter().collect(),
        user_data,
        availability_zone: az,
        group_id,
        same_host,
        different_host,
        networks,
        requested_host,
        ..Default::default()
    };
    let request = strata_compute::service::BootRequest {
        server,
        flavor,
        min_count,
        max_count,
        networks: requested,
        security_groups,
        block_devices: disks.volumes,
    };
    let booted =
        strata_compute::service::boot(&compute, &vols, &identity, &caller, request).await?;
    let reservation_id = booted.reservation_id;
    let ids = booted.ids;
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
