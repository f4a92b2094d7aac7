//! os-hypervisors: the compute hosts as hypervisors (list, detail, show, uptime, statistics,
//! search, servers).

use super::*;

pub(super) fn hypervisor_id(mv: Microversion, pos: usize, h: &HostRow) -> Value {
    if mv.0 >= 53 {
        json!(h.state.hypervisor_id)
    } else {
        json!(pos)
    }
}

/// Whether path or marker id `id` names the hypervisor at `pos`.
pub(super) fn is_hypervisor(mv: Microversion, pos: usize, h: &HostRow, id: &str) -> bool {
    if mv.0 >= 53 {
        h.state.hypervisor_id == id
    } else {
        id.parse::<usize>() == Ok(pos)
    }
}

pub(super) fn compute_service_id(mv: Microversion, pos: usize, h: &HostRow) -> Value {
    if mv.0 >= 53 {
        json!(h.state.service_id)
    } else {
        json!(pos + INTERNAL_BINARIES.len())
    }
}

pub(super) fn hypervisor_json(
    view: &ComputeView,
    clock: &Clock,
    mv: Microversion,
    (pos, h): (usize, &HostRow),
    detail: bool,
    with_servers: bool,
) -> Value {
    let s = &h.state;
    let mut v = json!({
        "id": hypervisor_id(mv, pos, h),
        "hypervisor_hostname": h.name,
        "state": if clock.up(h) { "up" } else { "down" },
        "status": if s.disabled { "disabled" } else { "enabled" },
    });
    if detail {
        let inv = &s.inventory;
        let (vcpus_used, ram_used, disk_used) = s.used();
        let free_ram = inv.ram_mb as i64 - ram_used as i64;
        let free_disk = inv.disk_gb as i64 - disk_used as i64;
        let (running, busy) = view.servers_on(&h.name).fold((0u64, 0u64), |(r, b), sv| {
            (r + 1, b + u64::from(!sv.state.task_state.is_empty()))
        });
        v["vcpus"] = json!(inv.vcpus);
        v["vcpus_used"] = json!(vcpus_used);
        v["memory_mb"] = json!(inv.ram_mb);
        v["memory_mb_used"] = json!(ram_used);
        v["free_ram_mb"] = json!(free_ram);
        v["local_gb"] = json!(inv.disk_gb);
        v["local_gb_used"] = json!(disk_used);
        v["free_disk_gb"] = json!(free_disk);
        v["disk_available_least"] = json!(free_disk);
        v["running_vms"] = json!(running);
        v["current_workload"] = json!(busy);
        v["hypervisor_type"] = json!(s.hypervisor_type);
        v["hypervisor_version"] = json!(HYPERVISOR_VERSION);
        v["host_ip"] = json!(s.host_ip);
        // The fake driver reports no CPU model: Nova shows `{}` (a JSON string of it before 2.28).
        v["cpu_info"] = if mv.0 >= 28 { json!({}) } else { json!("{}") };
        v["service"] = json!({
            "host": h.name,
            "id": compute_service_id(mv, pos, h),
            "disabled_reason": null_if_empty(&s.disabled_reason),
        });
    }
    if with_servers {
        let servers: Vec<Value> = view
            .servers_on(&h.name)
            .map(|sv| json!({ "name": sv.state.name, "uuid": sv.id }))
            .collect();
        // Before 2.75 Nova leaves the key out when there are none.
        if !servers.is_empty() || mv.0 >= 75 {
            v["servers"] = json!(servers);
        }
    }
    v
}

pub(super) fn no_match(pattern: &str) -> NovaError {
    NovaError::not_found(format!(
        "No hypervisor matching '{pattern}' could be found."
    ))
}

/// Hosts whose name contains `pattern` (Nova matches `%pattern%`); 404 when none does.
pub(super) fn matching<'a>(
    hosts: Vec<(usize, &'a HostRow)>,
    pattern: &str,
) -> Result<Vec<(usize, &'a HostRow)>, NovaError> {
    let found: Vec<_> = hosts
        .into_iter()
        .filter(|(_, h)| h.name.contains(pattern))
        .collect();
    if found.is_empty() {
        return Err(no_match(pattern));
    }
    Ok(found)
}

pub(super) fn hypervisors(
    compute: &Compute,
    caller: &Caller,
    req: &HttpRequest,
    mv: Microversion,
    detail: bool,
) -> Result<HttpResponse, NovaError> {
    admin(
        caller,
        if detail {
            "os_compute_api:os-hypervisors:list-detail"
        } else {
            "os_compute_api:os-hypervisors:list"
        },
    )?;
    let q = Query::of(req);
    let (mut limit, mut marker, mut pattern, mut with_servers) = (None, None, None, false);
    if mv.0 >= 53 {
        q.only(&[
            "limit",
            "marker",
            "hypervisor_hostname_pattern",
            "with_servers",
        ])?;
        if let Some(p) = q.get("hypervisor_hostname_pattern") {
            if !valid_hostname(p) {
                return Err(NovaError::bad_request(format!(
                    "Invalid input for query parameters hypervisor_hostname_pattern. Value: {p}."
                )));
            }
            pattern = Some(p.to_string());
        }
        with_servers = q.boolean("with_servers")?;
    }
    if mv.0 >= 33 {
        if let Some(l) = q.get("limit") {
            limit = Some(l.parse::<usize>().map_err(|_| {
                NovaError::bad_request(format!(
                    "Invalid input for query parameters limit. Value: {l}. '{l}' does not match '^[0-9]*$'"
                ))
            })?);
        }
        marker = q.get("marker").map(str::to_string);
    }
    if pattern.is_some() && (limit.is_some() || marker.is_some()) {
        return Err(NovaError::bad_request(
            "Paging over hypervisors with the hypervisor_hostname_pattern query parameter is not supported.",
        ));
    }
    let clock = Clock::of(compute);
    let view = compute.view.snapshot();
    let mut rows = compute_hosts(&view);
    if let Some(p) = &pattern {
        rows = matching(rows, p)?;
    }
    if let Some(m) = &marker {
        skip_past_marker(
            &mut rows,
            m,
            |(pos, h)| is_hypervisor(mv, *pos, h, m),
            marker_not_found,
        )?;
    }
    let page = limit.unwrap_or(MAX_LIMIT).min(MAX_LIMIT);
    rows.truncate(page);
    let list: Vec<Value> = rows
        .iter()
        .map(|&row| hypervisor_json(&view, &clock, mv, row, detail, with_servers))
        .collect();
    let mut out = json!({ "hypervisors": list });
    // Paging links from 2.33, when the page is full (never with a hostname pattern).
    if mv.0 >= 33 && pattern.is_none() && page > 0 && rows.len() == page {
        if let Some(&(pos, h)) = rows.last() {
            let base = crate::common::base_url(req);
            let last = hypervisor_id(mv, pos, h);
            let last = last
                .as_str()
                .map_or_else(|| last.to_string(), str::to_string);
            out["hypervisors_links"] = json!([{
                "rel": "next",
                "href": format!(
                    "{base}/v2.1/os-hypervisors{}?limit={page}&marker={}",
                    if detail { "/detail" } else { "" },
                    crate::common::encode(&last)
                ),
            }]);
        }
    }
    Ok(HttpResponse::Ok().json(out))
}

/// `GET /os-hypervisors` (`DETAIL` false) and `/os-hypervisors/detail` (true).
pub(super) async fn hypervisor_list<const DETAIL: bool>(
    compute: web::Data<Compute>,
    caller: Caller,
    req: HttpRequest,
    mv: Microversion,
) -> Result<HttpResponse, NovaError> {
    hypervisors(&compute, &caller, &req, mv, DETAIL)
}

/// The hypervisor a path names: a uuid from 2.53 (400 otherwise), an integer before (404 otherwise).
pub(super) fn find_hypervisor<'a>(
    view: &'a ComputeView,
    mv: Microversion,
    id: &str,
) -> Result<(usize, &'a HostRow), NovaError> {
    if mv.0 >= 53 && uuid::Uuid::parse_str(id).is_err() {
        return Err(NovaError::bad_request(format!("Invalid uuid {id}")));
    }
    compute_hosts(view)
        .into_iter()
        .find(|(pos, h)| is_hypervisor(mv, *pos, h, id))
        .ok_or_else(|| {
            NovaError::not_found(format!("Hypervisor with ID '{id}' could not be found."))
        })
}

pub(super) async fn hypervisor_show(
    compute: web::Data<Compute>,
    caller: Caller,
    req: HttpRequest,
    mv: Microversion,
    path: web::Path<String>,
) -> Result<HttpResponse, NovaError> {
    admin(&caller, "os_compute_api:os-hypervisors:show")?;
    let mut with_servers = false;
    if mv.0 >= 53 {
        let q = Query::of(&req);
        q.only(&["with_servers"])?;
        with_servers = q.boolean("with_servers")?;
    }
    let id = path.into_inner();
    let clock = Clock::of(&compute);
    let view = compute.view.snapshot();
    let row = find_hypervisor(&view, mv, &id)?;
    let v = hypervisor_json(&view, &clock, mv, row, true, with_servers);
    Ok(HttpResponse::Ok().json(json!({ "hypervisor": v })))
}

pub(super) async fn hypervisor_uptime(
    compute: web::Data<Compute>,
    caller: Caller,
    mv: Microversion,
    path: web::Path<String>,
) -> Result<HttpResponse, NovaError> {
    admin(&caller, "os_compute_api:os-hypervisors:uptime")?;
    let id = path.into_inner();
    find_hypervisor(&compute.view.snapshot(), mv, &id)?;
    Err(NovaError::new(
        StatusCode::NOT_IMPLEMENTED,
        "Virt driver does not implement host uptime.",
    ))
}

pub(super) async fn hypervisor_statistics(
    compute: web::Data<Compute>,
    caller: Caller,
) -> Result<HttpResponse, NovaError> {
    admin(&caller, "os_compute_api:os-hypervisors:statistics")?;
    let view = compute.view.snapshot();
    // Nova sums the hypervisors of enabled services only.
    let mut t = BTreeMap::<&str, i64>::new();
    for (_, h) in compute_hosts(&view) {
        if h.state.disabled {
            continue;
        }
        let inv = &h.state.inventory;
        let (c, r, d) = h.state.used();
        let (running, busy) = view.servers_on(&h.name).fold((0i64, 0i64), |(n, b), s| {
            (n + 1, b + i64::from(!s.state.task_state.is_empty()))
        });
        let free_disk = inv.disk_gb as i64 - d as i64;
        for (k, v) in [
            ("count", 1),
            ("vcpus", i64::from(inv.vcpus)),
            ("vcpus_used", c as i64),
            ("memory_mb", inv.ram_mb as i64),
            ("memory_mb_used", r as i64),
            ("free_ram_mb", inv.ram_mb as i64 - r as i64),
            ("local_gb", inv.disk_gb as i64),
            ("local_gb_used", d as i64),
            ("free_disk_gb", free_disk),
            ("disk_available_least", free_disk),
            ("running_vms", running),
            ("current_workload", busy),
        ] {
            *t.entry(k).or_default() += v;
        }
    }
    let keys = [
        "count",
        "vcpus",
        "vcpus_used",
        "memory_mb",
        "memory_mb_used",
        "free_ram_mb",
        "local_gb",
        "local_gb_used",
        "free_disk_gb",
        "disk_available_least",
        "running_vms",
        "current_workload",
    ];
    let stats: Map<String, Value> = keys
        .iter()
        .map(|k| (k.to_string(), json!(t.get(k).copied().unwrap_or(0))))
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "hypervisor_statistics": stats })))
}

/// `GET /os-hypervisors/{pattern}/search` and `/servers` (before 2.53).
pub(super) fn legacy_search(
    compute: &Compute,
    caller: &Caller,
    req: &HttpRequest,
    mv: Microversion,
    pattern: &str,
    with_servers: bool,
) -> Result<HttpResponse, NovaError> {
    if mv.0 >= 53 {
        return Err(not_in_version(req));
    }
    admin(
        caller,
        if with_servers {
            "os_compute_api:os-hypervisors:servers"
        } else {
            "os_compute_api:os-hypervisors:search"
        },
    )?;
    let clock = Clock::of(compute);
    let view = compute.view.snapshot();
    let list: Vec<Value> = matching(compute_hosts(&view), pattern)?
        .into_iter()
        .map(|row| hypervisor_json(&view, &clock, mv, row, false, with_servers))
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "hypervisors": list })))
}

/// `GET /os-hypervisors/{pattern}/search` (`WITH_SERVERS` false) and `/servers` (true).
pub(super) async fn hypervisor_search<const WITH_SERVERS: bool>(
    compute: web::Data<Compute>,
    caller: Caller,
    req: HttpRequest,
    mv: Microversion,
    path: web::Path<String>,
) -> Result<HttpResponse, NovaError> {
    legacy_search(
        &compute,
        &caller,
        &req,
        mv,
        &path.into_inner(),
        WITH_SERVERS,
    )
}
