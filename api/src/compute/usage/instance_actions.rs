//! os-instance-actions: what was done to a server, with its events.

use super::*;

pub(super) fn action_json(server_id: &str, a: &ActionRow, mv: Microversion) -> Value {
    let mut v = json!({
        "action": a.action,
        "instance_uuid": server_id,
        "request_id": a.request_id,
        "user_id": a.user_id,
        "project_id": a.project_id,
        "start_time": a.start_time,
        "message": null_if_empty(&a.message),
    });
    if mv.0 >= 58 {
        v["updated_at"] = null_if_empty(&a.updated_at);
    }
    v
}

pub(super) async fn action_list(
    compute: web::Data<Compute>,
    caller: Caller,
    req: HttpRequest,
    mv: Microversion,
    path: web::Path<String>,
) -> Result<HttpResponse, NovaError> {
    let server_id = path.into_inner();
    // From 2.21 the actions of a deleted server can still be read.
    let s = visible_server(&compute.view.snapshot(), &caller, &server_id, mv.0 >= 21).cloned()?;
    let q = Query::of(&req);
    let mut rows: Vec<&ActionRow> = s.actions.iter().rev().collect();
    let mut links = None;
    if mv.0 >= 58 {
        let (since, before) = q.changes(mv, 58, 66)?;
        let limit = q.page_size()?;
        rows.retain(|a| updated_between(&a.updated_at, since, before));
        if let Some(marker) = q.get("marker") {
            skip_past_marker(
                &mut rows,
                marker,
                |a| a.request_id == marker,
                marker_unknown,
            )?;
        }
        rows.truncate(limit);
        if let (true, Some(last)) = (rows.len() == limit, rows.last()) {
            links = Some(next_link(
                &req,
                &format!("/v2.1/servers/{server_id}/os-instance-actions"),
                &q,
                &last.request_id,
            ));
        }
    }
    let actions: Vec<Value> = rows
        .iter()
        .map(|a| action_json(&server_id, a, mv))
        .collect();
    let mut body = json!({ "instanceActions": actions });
    if let Some(l) = links {
        body["links"] = l;
    }
    Ok(HttpResponse::Ok().json(body))
}

pub(super) async fn action_show(
    compute: web::Data<Compute>,
    caller: Caller,
    mv: Microversion,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, NovaError> {
    let (server_id, request_id) = path.into_inner();
    let s = visible_server(&compute.view.snapshot(), &caller, &server_id, mv.0 >= 21).cloned()?;
    let a = s
        .actions
        .iter()
        .rev()
        .find(|a| a.request_id == request_id)
        .ok_or_else(|| NovaError::not_found(format!("Action {request_id} not found")))?;
    let mut v = action_json(&server_id, a, mv);
    // Admins always see the events (with tracebacks and, from 2.62, hosts); others from 2.51, without them.
    if caller.is_admin || mv.0 >= 51 {
        let project = if a.project_id.is_empty() {
            &s.state.project_id
        } else {
            &a.project_id
        };
        let events: Vec<Value> = a
            .events
            .iter()
            .map(|e| {
                let mut ev = json!({
                    "event": e.event,
                    "start_time": null_if_empty(&e.start_time),
                    "finish_time": null_if_empty(&e.finish_time),
                    "result": null_if_empty(&e.result),
                });
                if caller.is_admin {
                    ev["traceback"] = null_if_empty(&e.traceback);
                    if mv.0 >= 62 {
                        ev["host"] = json!(e.host);
                    }
                }
                if mv.0 >= 62 {
                    ev["hostId"] = json!(host_id(project, &e.host));
                }
                ev
            })
            .collect();
        v["events"] = json!(events);
    }
    Ok(HttpResponse::Ok().json(json!({ "instanceAction": v })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_novas_formats() {
        let t = |s: &str| parse_time(s).map(|t| t.to_rfc3339());
        assert_eq!(
            t("2015-08-27T09:49:58").as_deref(),
            Some("2015-08-27T09:49:58+00:00")
        );
        assert_eq!(
            t("2015-08-27T09:49:58.123456").as_deref(),
            Some("2015-08-27T09:49:58.123456+00:00")
        );
        assert_eq!(
            t("2015-08-27 09:49:58.5").as_deref(),
            Some("2015-08-27T09:49:58.500+00:00")
        );
        assert_eq!(
            t("2015-08-27T09:49:58Z").as_deref(),
            Some("2015-08-27T09:49:58+00:00")
        );
        assert_eq!(
            t("2015-08-27T09:49:58-05:00").as_deref(),
            Some("2015-08-27T14:49:58+00:00")
        );
        // A `+` that a query string decoded as a space.
        assert_eq!(
            t("2015-08-27T09:49:58 01:00").as_deref(),
            Some("2015-08-27T08:49:58+00:00")
        );
        assert_eq!(
            t("2015-08-27").as_deref(),
            Some("2015-08-27T00:00:00+00:00")
        );
        assert_eq!(t("yesterday"), None);
        assert_eq!(t(""), None);
    }

    #[test]
    fn quota_names_follow_the_microversion() {
        let v21 = quota_names(Microversion(1));
        assert!(v21.contains(&"floating_ips") && v21.contains(&"injected_files"));
        let v236 = quota_names(Microversion(36));
        assert!(!v236.contains(&"floating_ips") && v236.contains(&"injected_files"));
        let v257 = quota_names(Microversion(57));
        assert_eq!(
            v257,
            vec![
                "cores",
                "instances",
                "key_pairs",
                "metadata_items",
                "ram",
                "server_group_members",
                "server_groups"
            ]
        );
    }

    #[test]
    fn integers_and_booleans_as_nova_reads_them() {
        assert_eq!(int_value(&json!(5)), Some(5));
        assert_eq!(int_value(&json!("-1")), Some(-1));
        assert_eq!(int_value(&json!("1.5")), None);
        assert_eq!(int_value(&json!(1.5)), None);
        assert_eq!(int_value(&json!("")), None);
        assert_eq!(bool_value(&json!("True")), Some(true));
        assert_eq!(bool_value(&json!(false)), Some(false));
        assert_eq!(bool_value(&json!("maybe")), None);
    }

    #[test]
    fn host_ids_hash_project_and_host() {
        assert_eq!(host_id("p", ""), "");
        let a = host_id("p", "h1");
        assert_eq!(a.len(), 56);
        assert_ne!(a, host_id("q", "h1"));
    }
}
