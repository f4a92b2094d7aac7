//! Operators' view of the process: `GET /healthcheck` (JSON; 200 while every log follower is following, 503
//! while one waits to resume after a read error) and `GET /metrics` (Prometheus text: the log head and, per
//! follower, its position, lag, read errors, resumes and whether it is up). Neither needs a token: they
//! carry no tenant data, and the listener binds to loopback unless told otherwise.

use actix_web::{web, HttpResponse};
use prometheus::{Encoder, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};
use serde_json::json;
use strata_events::{followers, FollowerStatus};

use super::Audit;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthcheck", web::get().to(healthcheck))
        .route("/metrics", web::get().to(metrics));
}

fn lag(head: u64, f: &FollowerStatus) -> u64 {
    head.saturating_sub(f.position())
}

async fn healthcheck(audit: web::Data<Audit>) -> HttpResponse {
    let head = audit.log.watch_head().borrow().to_owned();
    let all = followers();
    let healthy = all.iter().all(|f| f.healthy());
    let body = json!({
        "status": if healthy { "OK" } else { "DEGRADED" },
        "log_head": head,
        "followers": all.iter().map(|f| json!({
            "name": f.name(),
            "healthy": f.healthy(),
            "position": f.position(),
            "lag": lag(head, f),
            "read_errors": f.errors(),
            "resumes": f.resumes(),
            "last_error": f.last_error(),
        })).collect::<Vec<_>>(),
    });
    if healthy {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

fn render(head: u64, all: &[std::sync::Arc<FollowerStatus>]) -> prometheus::Result<Vec<u8>> {
    let registry = Registry::new();
    let head_gauge = IntGauge::new(
        "strata_log_head_position",
        "The last position of the event log",
    )?;
    head_gauge.set(head as i64);
    registry.register(Box::new(head_gauge))?;
    let gauge = |name: &str, help: &str| -> prometheus::Result<IntGaugeVec> {
        let g = IntGaugeVec::new(Opts::new(name, help), &["follower"])?;
        registry.register(Box::new(g.clone()))?;
        Ok(g)
    };
    let counter = |name: &str, help: &str| -> prometheus::Result<IntCounterVec> {
        let c = IntCounterVec::new(Opts::new(name, help), &["follower"])?;
        registry.register(Box::new(c.clone()))?;
        Ok(c)
    };
    let position = gauge(
        "strata_log_follower_position",
        "The last log position a follower handled",
    )?;
    let behind = gauge(
        "strata_log_follower_lag",
        "Events between the log head and a follower's position",
    )?;
    let up = gauge(
        "strata_log_follower_up",
        "1 while a follower follows the log, 0 while it waits to resume after a read error",
    )?;
    let errors = counter(
        "strata_log_follower_read_errors_total",
        "Read errors a follower met",
    )?;
    let resumes = counter(
        "strata_log_follower_resumes_total",
        "Times a follower subscribed again after a read error",
    )?;
    for f in all {
        let l = [f.name()];
        position.with_label_values(&l).set(f.position() as i64);
        behind.with_label_values(&l).set(lag(head, f) as i64);
        up.with_label_values(&l).set(i64::from(f.healthy()));
        errors.with_label_values(&l).inc_by(f.errors());
        resumes.with_label_values(&l).inc_by(f.resumes());
    }
    let mut out = Vec::new();
    TextEncoder::new().encode(&registry.gather(), &mut out)?;
    Ok(out)
}

async fn metrics(audit: web::Data<Audit>) -> HttpResponse {
    let head = audit.log.watch_head().borrow().to_owned();
    match render(head, &followers()) {
        Ok(body) => HttpResponse::Ok()
            .content_type(TextEncoder::new().format_type())
            .body(body),
        Err(e) => {
            tracing::error!(error = %e, "rendering /metrics failed");
            HttpResponse::InternalServerError().body(e.to_string())
        }
    }
}
