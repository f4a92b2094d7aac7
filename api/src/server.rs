//! Binding and running the HTTP services.

use std::net::{IpAddr, SocketAddr};

use actix_web::{middleware, web, App, HttpServer};

use crate::common::request_id_middleware;
use crate::identity::{self, Identity};

/// Where each service is listening.
#[derive(Debug, Clone)]
pub struct ServiceAddrs {
    pub identity: SocketAddr,
}

/// The running HTTP services.
pub struct Services {
    pub addrs: ServiceAddrs,
    pub server: actix_web::dev::Server,
}

/// Largest request body any identity call accepts.
const MAX_BODY: usize = 1 << 20;

impl Services {
    /// Bind every service (port 0 picks a free port) and start serving.
    pub fn start(
        identity: web::Data<Identity>,
        bind: IpAddr,
        identity_port: u16,
        workers: usize,
    ) -> std::io::Result<Self> {
        let server = HttpServer::new(move || {
            App::new()
                .app_data(identity.clone())
                .app_data(web::PayloadConfig::new(MAX_BODY))
                .wrap(middleware::Compress::default())
                .wrap_fn(request_id_middleware)
                .configure(identity::configure)
        })
        .workers(workers.max(1))
        .bind((bind, identity_port))?;
        let addr = server
            .addrs()
            .first()
            .copied()
            .ok_or_else(|| std::io::Error::other("identity API bound to no address"))?;
        Ok(Services {
            addrs: ServiceAddrs { identity: addr },
            server: server.run(),
        })
    }
}
