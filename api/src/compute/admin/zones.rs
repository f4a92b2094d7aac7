//! os-availability-zone: the zones that hosts are in, and their services.

use super::*;

/// Zones with an enabled service, and zones whose services are all disabled (Nova's two lists).
pub(super) fn zones(rows: &[ServiceRow]) -> (BTreeSet<&str>, BTreeSet<&str>) {
    let available: BTreeSet<&str> = rows
        .iter()
        .filter(|s| !s.disabled)
        .map(|s| s.zone.as_str())
        .collect();
    let unavailable = rows
        .iter()
        .filter(|s| s.disabled && !available.contains(s.zone.as_str()))
        .map(|s| s.zone.as_str())
        .collect();
    (available, unavailable)
}

pub(super) async fn zone_list(compute: web::Data<Compute>, _caller: Caller) -> HttpResponse {
    let rows = services(&compute);
    let (available, unavailable) = zones(&rows);
    let entry = |zone: &str, up: bool| json!({ "zoneName": zone, "zoneState": { "available": up }, "hosts": null });
    // The internal zone is hidden from the summary, as in Nova.
    let list: Vec<Value> = available
        .iter()
        .filter(|z| **z != INTERNAL_ZONE)
        .map(|z| entry(z, true))
        .chain(
            unavailable
                .iter()
                .filter(|z| **z != INTERNAL_ZONE)
                .map(|z| entry(z, false)),
        )
        .collect();
    HttpResponse::Ok().json(json!({ "availabilityZoneInfo": list }))
}

pub(super) async fn zone_detail(
    compute: web::Data<Compute>,
    caller: Caller,
) -> Result<HttpResponse, NovaError> {
    admin(&caller, "os_compute_api:os-availability-zone:detail")?;
    let rows = services(&compute);
    let (available, unavailable) = zones(&rows);
    let mut list = Vec::new();
    for zone in &available {
        let mut hosts: BTreeMap<&str, Map<String, Value>> = BTreeMap::new();
        for s in rows.iter().filter(|s| !s.disabled && s.zone == *zone) {
            hosts.entry(&s.host).or_default().insert(
                s.binary.to_string(),
                json!({ "available": s.up, "active": true, "updated_at": s.updated_at }),
            );
        }
        list.push(json!({ "zoneName": zone, "zoneState": { "available": true }, "hosts": hosts }));
    }
    for zone in &unavailable {
        list.push(json!({ "zoneName": zone, "zoneState": { "available": false }, "hosts": null }));
    }
    Ok(HttpResponse::Ok().json(json!({ "availabilityZoneInfo": list })))
}
